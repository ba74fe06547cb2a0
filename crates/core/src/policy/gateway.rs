//! The gateway's own rules for a well-signed, unexpired request: a replay far behind its device's sequence is refused, and the device's day stays within the gateway's limits (its books' and its process's own).
//!
//! Whatever keeps the gateway's books (sled or PostgreSQL) reads what they hold for
//! the device, asks [`judge`], and keeps what it decided in the same
//! transaction, so two deliveries racing for one limit see each other.

use crate::money::Money;

/// What the books hold for the request's device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceBooks {
    /// The highest `seq` seen from the device; `None` before its first.
    pub last_seq: Option<u64>,
    /// What the device spent today in the request's currency.
    pub spent_today: Money,
    /// The deployment's limit per device and day, kept in the books
    /// (`voicepay gateway limits`) so every worker judges by the same one.
    pub daily_limit: Option<Money>,
}

/// The gateway's settings that judge a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatewayRules {
    /// A request more than this far behind the device's last `seq` is a replay.
    pub seq_window: u64,
    /// Per device and day, whatever the device's own limits say: this
    /// process's own (`gateway run --daily-limit`), checked as well as the
    /// books' [`DeviceBooks::daily_limit`].
    pub daily_limit: Option<Money>,
}

/// What to do with the request, and what the books keep of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    pub verdict: Verdict,
    /// The device's new last `seq`, when this request raises it (a request
    /// judged is seen, even if it is declined for its amount).
    pub raise_seq_to: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Approve and charge it: the device's day then stands at `spent_today`.
    Charge { spent_today: Money },
    /// Decline it, for this reason (the gateway's words, signed in its answer).
    Decline(String),
}

/// Judges a request of `seq` for `amount` against the device's books.
pub fn judge(seq: u64, amount: Money, books: &DeviceBooks, rules: &GatewayRules) -> Judgement {
    if let Some(last) = books.last_seq
        && seq.saturating_add(rules.seq_window) < last
    {
        return Judgement {
            verdict: Verdict::Decline(format!(
                "replay: seq {seq} is far behind this device's last seq {last}"
            )),
            raise_seq_to: None,
        };
    }
    let raise_seq_to = books.last_seq.is_none_or(|last| seq > last).then_some(seq);
    // The device's own rule, on each of the gateway's limits.
    let within = [rules.daily_limit, books.daily_limit]
        .into_iter()
        .flatten()
        .all(|limit| super::check_daily(limit, books.spent_today, amount).is_ok());
    let total = books
        .spent_today
        .checked_add(amount)
        .ok()
        .filter(|_| within);
    let verdict = match total {
        Some(spent_today) => Verdict::Charge { spent_today },
        None => Verdict::Decline("over the gateway's daily limit for this device".into()),
    };
    Judgement {
        verdict,
        raise_seq_to,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;

    fn cny(minor: i64) -> Money {
        Money::new(minor, Currency::CNY)
    }

    fn books(last_seq: Option<u64>, spent: i64) -> DeviceBooks {
        DeviceBooks {
            last_seq,
            spent_today: cny(spent),
            daily_limit: None,
        }
    }

    fn rules() -> GatewayRules {
        GatewayRules {
            seq_window: 10,
            daily_limit: Some(cny(10_000)),
        }
    }

    #[test]
    fn a_first_request_within_the_limit_is_charged_and_its_seq_kept() {
        let judged = judge(1, cny(3_600), &books(None, 0), &rules());
        assert_eq!(
            judged,
            Judgement {
                verdict: Verdict::Charge {
                    spent_today: cny(3_600)
                },
                raise_seq_to: Some(1),
            }
        );
    }

    #[test]
    fn a_request_over_the_gateways_daily_limit_is_declined_but_its_seq_is_seen() {
        let judged = judge(8, cny(3_600), &books(Some(7), 7_000), &rules());
        assert_eq!(
            judged.verdict,
            Verdict::Decline("over the gateway's daily limit for this device".into())
        );
        assert_eq!(judged.raise_seq_to, Some(8));
    }

    #[test]
    fn a_request_far_behind_the_last_seq_is_a_replay_and_changes_nothing() {
        let judged = judge(5, cny(100), &books(Some(16), 0), &rules());
        assert_eq!(
            judged.verdict,
            Verdict::Decline("replay: seq 5 is far behind this device's last seq 16".into())
        );
        assert_eq!(judged.raise_seq_to, None);
    }

    #[test]
    fn a_late_request_within_the_window_is_charged_without_lowering_the_seq() {
        let judged = judge(6, cny(100), &books(Some(16), 0), &rules());
        assert!(matches!(judged.verdict, Verdict::Charge { .. }));
        assert_eq!(judged.raise_seq_to, None);
    }

    #[test]
    fn without_a_gateway_limit_only_an_overflowing_day_is_declined() {
        let open = GatewayRules {
            daily_limit: None,
            ..rules()
        };
        let judged = judge(2, cny(1), &books(Some(1), i64::MAX), &open);
        assert!(matches!(judged.verdict, Verdict::Decline(_)));
        let judged = judge(2, cny(1), &books(Some(1), 5), &open);
        assert_eq!(
            judged.verdict,
            Verdict::Charge {
                spent_today: cny(6)
            }
        );
    }

    #[test]
    fn the_limit_in_the_books_and_the_processs_own_both_hold() {
        let kept = |limit: i64| DeviceBooks {
            daily_limit: Some(cny(limit)),
            ..books(Some(1), 5_000)
        };
        // The books' limit is the stricter.
        let judged = judge(2, cny(1_000), &kept(5_500), &rules());
        assert!(matches!(judged.verdict, Verdict::Decline(_)));
        // The process's own is the stricter.
        let judged = judge(2, cny(6_000), &kept(50_000), &rules());
        assert!(matches!(judged.verdict, Verdict::Decline(_)));
        // The books' alone.
        let open = GatewayRules {
            daily_limit: None,
            ..rules()
        };
        let judged = judge(2, cny(500), &kept(5_500), &open);
        assert_eq!(
            judged.verdict,
            Verdict::Charge {
                spent_today: cny(5_500)
            }
        );
    }

    #[test]
    fn a_payment_in_another_currency_than_the_limit_is_declined() {
        let judged = judge(1, Money::new(100, Currency::USD), &books(None, 0), &rules());
        assert!(matches!(judged.verdict, Verdict::Decline(_)));
    }
}
