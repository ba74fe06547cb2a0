//! MQTT topic names under a prefix (default [`DEFAULT_PREFIX`]); builders take a device id that is already valid ([`is_valid_device_id`]).

#[cfg(doc)]
use super::DEFAULT_PREFIX;
use super::is_valid_device_id;

/// Why a prefix cannot carry our topics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("MQTT prefix {0:?}: expected segments of letters, digits, '_', '-' or '.' joined by '/'")]
pub struct BadPrefix(pub String);

/// A prefix is one or more `/`-separated segments, none empty and none holding
/// a wildcard (`+`, `#`) or anything else MQTT gives meaning to.
pub fn validate_prefix(prefix: &str) -> Result<(), BadPrefix> {
    let segment_ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    };
    if prefix.len() <= 200 && prefix.split('/').all(segment_ok) {
        Ok(())
    } else {
        Err(BadPrefix(prefix.chars().take(64).collect()))
    }
}

fn device_topic(prefix: &str, device_id: &str, leaf: &str) -> String {
    format!("{prefix}/devices/{device_id}/{leaf}")
}

/// Device -> gateway: envelopes of `PaymentRequest`.
pub fn requests(prefix: &str, device_id: &str) -> String {
    device_topic(prefix, device_id, "requests")
}

/// Gateway -> device: envelopes of `PaymentResponse`.
pub fn responses(prefix: &str, device_id: &str) -> String {
    device_topic(prefix, device_id, "responses")
}

/// Agent -> device: envelopes of agent tasks.
pub fn tasks(prefix: &str, device_id: &str) -> String {
    device_topic(prefix, device_id, "tasks")
}

/// Device -> agent: the signed, retained status of one task. `task_id` is a
/// valid topic segment ([`crate::protocol::AgentTask::validate`]).
pub fn task_status(prefix: &str, device_id: &str, task_id: &str) -> String {
    device_topic(prefix, device_id, &format!("tasks/{task_id}/status"))
}

/// Button -> device: `start` / `stop` of push-to-talk (plain text).
pub fn push_to_talk(prefix: &str, device_id: &str) -> String {
    device_topic(prefix, device_id, "ptt")
}

/// Device -> apps: plain JSON events.
pub fn events(prefix: &str, device_id: &str) -> String {
    device_topic(prefix, device_id, "events")
}

/// The gateway's retained `online` / `offline` (its last will): devices
/// learn from it whether requests can be answered now.
pub fn gateway_status(prefix: &str) -> String {
    format!("{prefix}/gateway/status")
}

/// One worker's retained status, when gateways share a ledger: each says
/// its own `online` and leaves its own will, so one that dies takes no
/// other offline (see [`super::GatewayBelief`]).
pub fn worker_status(prefix: &str, worker: &str) -> String {
    format!("{}/{worker}", gateway_status(prefix))
}

/// What devices subscribe to: the gateway's status and every worker's.
pub fn gateway_statuses_filter(prefix: &str) -> String {
    format!("{}/#", gateway_status(prefix))
}

/// Whose status `topic` carries: `Some(None)` the one gateway's,
/// `Some(Some(worker))` a worker's, `None` neither (a deeper topic, or a
/// worker name no worker can have).
pub fn status_worker<'a>(prefix: &str, topic: &'a str) -> Option<Option<&'a str>> {
    let rest = topic
        .strip_prefix(prefix)?
        .strip_prefix("/gateway/status")?;
    match rest.strip_prefix('/') {
        None if rest.is_empty() => Some(None),
        None => None,
        Some(worker) => is_plain_name(worker).then_some(Some(worker)),
    }
}

/// Retained `online` / `offline`, also the last will.
pub fn status(prefix: &str, device_id: &str) -> String {
    device_topic(prefix, device_id, "status")
}

/// Vehicle -> device: retained `true` / `false`, whether the car moves
/// (see [`super::driving`]).
pub fn driving(prefix: &str, device_id: &str) -> String {
    device_topic(prefix, device_id, "driving")
}

/// The gateway's subscription to every device's requests.
pub fn all_requests_filter(prefix: &str) -> String {
    device_topic(prefix, "+", "requests")
}

/// `all_requests_filter` as an MQTT shared subscription of `group`
/// (`$share/{group}/...`): the broker hands each request to one subscriber
/// of the group, so gateway workers split the devices' requests.
pub fn shared_requests_filter(group: &str, prefix: &str) -> String {
    format!("$share/{group}/{}", all_requests_filter(prefix))
}

/// Whether `group` can name a shared subscription: 1-64 of A-Z a-z 0-9 _ -
/// (MQTT forbids `/`, `+` and `#` in it; the rest is our choice).
pub fn is_valid_share_group(group: &str) -> bool {
    is_plain_name(group)
}

/// Whether `worker` can name a gateway worker's status topic: the same rule.
pub fn is_valid_worker(worker: &str) -> bool {
    is_plain_name(worker)
}

/// 1-64 of A-Z a-z 0-9 _ -: one topic level, never a wildcard.
fn is_plain_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The device id in `{prefix}/devices/{device_id}/requests`, or `None` if
/// `topic` is not exactly that shape with a valid device id.
pub fn device_id_from_requests_topic<'a>(prefix: &str, topic: &'a str) -> Option<&'a str> {
    let id = topic
        .strip_prefix(prefix)?
        .strip_prefix("/devices/")?
        .strip_suffix("/requests")?;
    is_valid_device_id(id).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::testing::*;
    use crate::protocol::{DEFAULT_PREFIX, device_id_for, topics};

    #[test]
    fn topics_and_device_ids() {
        let p = DEFAULT_PREFIX;
        let id = "dev-0123456789abcdef";
        assert_eq!(
            topics::requests(p, id),
            "voicepay/v1/devices/dev-0123456789abcdef/requests"
        );
        assert_eq!(
            topics::responses(p, id),
            "voicepay/v1/devices/dev-0123456789abcdef/responses"
        );
        assert_eq!(
            topics::tasks(p, id),
            "voicepay/v1/devices/dev-0123456789abcdef/tasks"
        );
        assert_eq!(
            topics::events(p, id),
            "voicepay/v1/devices/dev-0123456789abcdef/events"
        );
        assert_eq!(
            topics::driving(p, id),
            "voicepay/v1/devices/dev-0123456789abcdef/driving"
        );
        assert_eq!(
            topics::status(p, id),
            "voicepay/v1/devices/dev-0123456789abcdef/status"
        );
        assert_eq!(
            topics::all_requests_filter(p),
            "voicepay/v1/devices/+/requests"
        );
        assert_eq!(
            topics::shared_requests_filter("gateways", p),
            "$share/gateways/voicepay/v1/devices/+/requests"
        );
        assert_eq!(
            topics::requests("acme/pay", "x"),
            "acme/pay/devices/x/requests"
        );

        let topic = topics::requests(p, id);
        assert_eq!(topics::device_id_from_requests_topic(p, &topic), Some(id));
        let long_ok = "a".repeat(64);
        assert_eq!(
            topics::device_id_from_requests_topic(p, &topics::requests(p, &long_ok)),
            Some(long_ok.as_str())
        );
        let too_long = topics::requests(p, &"a".repeat(65));
        for bad in [
            "voicepay/v1/devices/+/requests",
            "voicepay/v1/devices/#/requests",
            "voicepay/v1/devices//requests",
            "voicepay/v1/devices/a/b/requests",
            "voicepay/v1/devices/dev-1/requests/extra",
            "voicepay/v1/devices/dev-1/responses",
            "voicepay/v1/devices/dev-1",
            "voicepay/v2/devices/dev-1/requests",
            "xvoicepay/v1/devices/dev-1/requests",
            "voicepay/v1x/devices/dev-1/requests",
            "other/voicepay/v1/devices/dev-1/requests",
            "voicepay/v1/devices/dev 1/requests",
            "voicepay/v1/devices/dév/requests",
            "voicepay/v1/devices/dev.1/requests",
            too_long.as_str(),
            "",
        ] {
            assert_eq!(topics::device_id_from_requests_topic(p, bad), None, "{bad}");
        }

        let pk = key().public_key();
        let dev = device_id_for(&pk);
        assert_eq!(dev, format!("dev-{}", pk.key_id()));
        assert!(is_valid_device_id(&dev));
        assert!(!is_valid_device_id(""));
        assert!(is_valid_device_id("A_z-09"));
    }

    #[test]
    fn prefixes_with_wildcards_or_empty_segments_are_refused() {
        for good in ["voicepay/v1", "acme/pay", "a", "fleet-7/voicepay.v1"] {
            assert_eq!(validate_prefix(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "/voicepay",
            "voicepay/",
            "a//b",
            "a/+/b",
            "#",
            "a b",
            "$SYS",
        ] {
            assert!(validate_prefix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_share_group_is_a_plain_name_never_a_wildcard_or_a_level() {
        for good in ["gateways", "eu-west_1", "g"] {
            assert!(is_valid_share_group(good), "{good}");
        }
        let long = "g".repeat(65);
        for bad in ["", "a/b", "+", "#", "a b", long.as_str()] {
            assert!(!is_valid_share_group(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_status_topic_names_the_one_gateway_or_one_worker_and_nothing_deeper() {
        let p = DEFAULT_PREFIX;
        assert_eq!(gateway_statuses_filter(p), "voicepay/v1/gateway/status/#");
        assert_eq!(status_worker(p, &gateway_status(p)), Some(None));
        let worker = worker_status(p, "w-1f3a");
        assert_eq!(worker, "voicepay/v1/gateway/status/w-1f3a");
        assert_eq!(status_worker(p, &worker), Some(Some("w-1f3a")));
        for not_a_status in [
            "voicepay/v1/gateway/status/",
            "voicepay/v1/gateway/status/a/b",
            "voicepay/v1/gateway/statusx",
            "voicepay/v1/gateway/status/a b",
            "other/v1/gateway/status",
        ] {
            assert_eq!(status_worker(p, not_a_status), None, "{not_a_status}");
        }
    }
}
