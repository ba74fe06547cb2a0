//! MQTT: broker addresses and client options shared by the device and the gateway.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::MqttOptions;

use crate::protocol::GatewayStatus;

use crate::protocol::MAX_MESSAGE_BYTES;

/// The largest packet read off the wire by the v4 clients (the MCP server's):
/// a larger one breaks their connection, so the broker's
/// `message_size_limit` should sit below this.
pub const MAX_INCOMING_PACKET: usize = 4 * 1024 * 1024;

/// The largest packet the daemon and the gateway take: our message limit
/// and room for a topic and MQTT's framing. They connect with MQTT 5 and
/// say this as their Maximum Packet Size, so the broker itself drops a
/// larger message for them (and logs it) instead of sending it: one
/// message over a client's limit, retained or queued for it, would
/// otherwise break its connection on every reconnect.
pub const MAX_PACKET: u32 = (MAX_MESSAGE_BYTES + 2048) as u32;

/// `mqtt://HOST:PORT` (port 1883 when absent) or `mqtts://HOST:PORT` (TLS,
/// port 8883), with the access settings of [`BrokerUrl::with_access`].
#[derive(Clone)]
pub struct BrokerUrl {
    pub host: String,
    pub port: u16,
    pub tls: bool,
    /// Built once from the access settings: reading files happens at start,
    /// where an error can be reported, not on every reconnect.
    tls_config: Option<Arc<rustls::ClientConfig>>,
    login: Option<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
#[error("broker {0:?}: expected mqtt://HOST:PORT or mqtts://HOST:PORT")]
pub struct BadBrokerUrl(String);

/// How to reach a broker in a deployment: whom to trust, who we are, and a
/// login. Paths are read when the connection is set up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrokerAccess {
    /// PEM certificates of the CAs that may sign the broker's certificate
    /// (the system's roots when absent).
    pub ca_file: Option<PathBuf>,
    /// A PEM client certificate chain and its key, for brokers that ask.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub username: Option<String>,
    /// A file holding the password (kept out of profiles, command lines
    /// and the process list).
    pub password_file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: no PEM {what} in it", path.display())]
    NoPem { path: PathBuf, what: &'static str },
    #[error("{}: {detail}", path.display())]
    BadPem { path: PathBuf, detail: String },
    #[error("TLS settings: {0}")]
    Tls(String),
    #[error("{0} is given without {1}")]
    Incomplete(&'static str, &'static str),
    #[error("{}: group or others may read it (mode {mode:o}); chmod 600 it", path.display())]
    Readable { path: PathBuf, mode: u32 },
    #[error("TLS files are set but the broker URL is not mqtts://")]
    TlsFilesWithoutTls,
}

/// A secret's file, refused (as key files are) when group or others may
/// read or write it. The opened file is checked, not the path, so it cannot
/// be swapped between the check and the read.
fn read_private(path: &Path) -> Result<String, AccessError> {
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;
    let read_error = |source| AccessError::Read {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(read_error)?;
    let mode = file.metadata().map_err(read_error)?.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(AccessError::Readable {
            path: path.to_owned(),
            mode,
        });
    }
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(read_error)?;
    Ok(text)
}

impl FromStr for BrokerUrl {
    type Err = BadBrokerUrl;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        let bad = || BadBrokerUrl(url.to_owned());
        let (tls, rest) = match (url.strip_prefix("mqtt://"), url.strip_prefix("mqtts://")) {
            (Some(rest), _) => (false, rest),
            (_, Some(rest)) => (true, rest),
            _ => return Err(bad()),
        };
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) => (host, port.parse().map_err(|_| bad())?),
            None => (rest, if tls { 8883 } else { 1883 }),
        };
        if host.is_empty() || host.contains(['/', '@']) {
            return Err(bad());
        }
        Ok(Self {
            host: host.to_owned(),
            port,
            tls,
            tls_config: None,
            login: None,
        })
    }
}

impl fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        write!(f, "{scheme}://{}:{}", self.host, self.port)
    }
}

/// Never prints the password.
impl fmt::Debug for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerUrl")
            .field("url", &self.to_string())
            .field("user", &self.login.as_ref().map(|(user, _)| user))
            .finish()
    }
}

impl BrokerUrl {
    /// `mqtt://HOST:PORT`, no TLS, no login.
    pub fn plain(host: &str, port: u16) -> BrokerUrl {
        BrokerUrl {
            host: host.to_owned(),
            port,
            tls: false,
            tls_config: None,
            login: None,
        }
    }

    /// Applies `access`: reads the CA, the client certificate and key and
    /// the password now, so a missing or bad file is an error at start.
    pub fn with_access(mut self, access: &BrokerAccess) -> Result<BrokerUrl, AccessError> {
        let tls_files = access.ca_file.is_some() || access.client_cert.is_some();
        if tls_files && !self.tls {
            return Err(AccessError::TlsFilesWithoutTls);
        }
        if self.tls {
            self.tls_config = Some(Arc::new(tls_config(access)?));
        }
        self.login = match (&access.username, &access.password_file) {
            (Some(user), Some(path)) => {
                let password = read_private(path)?;
                Some((
                    user.clone(),
                    password.trim_end_matches(['\r', '\n']).to_owned(),
                ))
            }
            (Some(user), None) => Some((user.clone(), String::new())),
            (None, Some(_)) => return Err(AccessError::Incomplete("password_file", "username")),
            (None, None) => None,
        };
        Ok(self)
    }

    /// MQTT 3.1.1 client options (the MCP server's). We send at most our
    /// message limit (plus MQTT framing) but read packets up to
    /// [`MAX_INCOMING_PACKET`]: a packet over the client's limit breaks the
    /// connection, and a retained one comes back on every reconnect, so we
    /// read it and drop it ourselves (every reader refuses what is over
    /// [`MAX_MESSAGE_BYTES`] before parsing).
    pub fn options(&self, client_id: &str) -> MqttOptions {
        let mut options = MqttOptions::new(client_id, self.host.clone(), self.port);
        options.set_max_packet_size(MAX_INCOMING_PACKET, MAX_MESSAGE_BYTES + 1024);
        options.set_keep_alive(Duration::from_secs(15));
        if let Some(transport) = self.transport() {
            options.set_transport(transport);
        }
        if let Some((user, password)) = &self.login {
            options.set_credentials(user.clone(), password.clone());
        }
        options
    }

    /// MQTT 5 client options (the daemon's and the gateway's), with
    /// [`MAX_PACKET`] as the Maximum Packet Size: the broker drops what is
    /// larger for this client, retained or not.
    pub fn options_v5(&self, client_id: &str) -> rumqttc::v5::MqttOptions {
        let mut options = rumqttc::v5::MqttOptions::new(client_id, self.host.clone(), self.port);
        options.set_max_packet_size(Some(MAX_PACKET));
        options.set_keep_alive(Duration::from_secs(15));
        if let Some(transport) = self.transport() {
            options.set_transport(transport);
        }
        if let Some((user, password)) = &self.login {
            options.set_credentials(user.clone(), password.clone());
        }
        options
    }

    fn transport(&self) -> Option<rumqttc::Transport> {
        if !self.tls {
            return None;
        }
        let config = self.tls_config.clone().unwrap_or_else(|| {
            // No access settings given: the system's roots.
            let config = tls_config(&BrokerAccess::default()).unwrap_or_else(|error| {
                tracing::error!(%error, "no TLS trust: the broker cannot be verified");
                empty_trust()
            });
            Arc::new(config)
        });
        Some(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(config),
        ))
    }
}

/// rustls with the ring provider, made the process default once, so the
/// builder cannot fail for want of one.
fn tls_builder() -> rustls::ConfigBuilder<rustls::ClientConfig, rustls::WantsVerifier> {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        // Err means another provider is already the default: also fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    rustls::ClientConfig::builder()
}

fn empty_trust() -> rustls::ClientConfig {
    tls_builder()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth()
}

fn tls_config(access: &BrokerAccess) -> Result<rustls::ClientConfig, AccessError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let certs = |path: &PathBuf, what| -> Result<Vec<CertificateDer<'static>>, AccessError> {
        let bad = |e: rustls::pki_types::pem::Error| match e {
            rustls::pki_types::pem::Error::Io(source) => AccessError::Read {
                path: path.clone(),
                source,
            },
            other => AccessError::BadPem {
                path: path.clone(),
                detail: other.to_string(),
            },
        };
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(bad)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(bad)?;
        if certs.is_empty() {
            return Err(AccessError::NoPem {
                path: path.clone(),
                what,
            });
        }
        Ok(certs)
    };
    let mut roots = rustls::RootCertStore::empty();
    match &access.ca_file {
        Some(path) => {
            for cert in certs(path, "certificate")? {
                roots.add(cert).map_err(|e| AccessError::BadPem {
                    path: path.clone(),
                    detail: e.to_string(),
                })?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
            if roots.is_empty() {
                return Err(AccessError::Tls(
                    "no ca_file given and the system has no CA certificates".into(),
                ));
            }
        }
    }
    let builder = tls_builder().with_root_certificates(roots);
    match (&access.client_cert, &access.client_key) {
        (None, None) => Ok(builder.with_no_client_auth()),
        (Some(cert_path), Some(key_path)) => {
            let chain = certs(cert_path, "certificate")?;
            let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| AccessError::BadPem {
                path: key_path.clone(),
                detail: e.to_string(),
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| AccessError::Tls(e.to_string()))
        }
        (Some(_), None) => Err(AccessError::Incomplete("client_cert", "client_key")),
        (None, Some(_)) => Err(AccessError::Incomplete("client_key", "client_cert")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_flood_of_rejections_logs_a_few_lines_a_second_and_counts_the_rest() {
        let mut limiter = LogLimiter::new(10);
        let let_through = (0..10_000).filter(|_| limiter.allow().is_some()).count();
        assert_eq!(let_through, 10);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(
            limiter.allow(),
            Some(9_990),
            "the held-back count comes with the next line"
        );
        assert_eq!(limiter.allow(), Some(0));
    }

    #[test]
    fn a_password_file_group_or_others_can_read_is_refused_as_key_files_are() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("password");
        std::fs::write(&path, "secret\n").unwrap();
        let access = |path: &Path| BrokerAccess {
            username: Some("glasses".into()),
            password_file: Some(path.to_owned()),
            ..BrokerAccess::default()
        };
        let url = || "mqtt://127.0.0.1:1883".parse::<BrokerUrl>().unwrap();
        for mode in [0o644, 0o640, 0o604, 0o660] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = url().with_access(&access(&path)).unwrap_err().to_string();
            assert!(err.contains("chmod 600"), "{mode:o}: {err}");
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let url = url().with_access(&access(&path)).unwrap();
        assert_eq!(url.login.as_ref().map(|(_, p)| p.as_str()), Some("secret"));
    }

    #[test]
    fn broker_urls() {
        let url: BrokerUrl = "mqtt://127.0.0.1:18830".parse().unwrap();
        assert_eq!((url.host.as_str(), url.port), ("127.0.0.1", 18830));
        assert_eq!("mqtt://broker".parse::<BrokerUrl>().unwrap().port, 1883);
        let tls: BrokerUrl = "mqtts://broker".parse().unwrap();
        assert_eq!((tls.tls, tls.port), (true, 8883));
        assert_eq!(tls.to_string(), "mqtts://broker:8883");
        for bad in [
            "127.0.0.1:1883",
            "mqtt://:1883",
            "mqtt://h:port",
            "http://h:1",
            "mqtts://user:pass@h:1",
        ] {
            assert!(bad.parse::<BrokerUrl>().is_err(), "{bad}");
        }
    }
}

/// What the device knows of its connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkState {
    /// Connected to the broker.
    pub broker: bool,
    /// The gateway's retained status says `online`.
    pub gateway: bool,
}

impl LinkState {
    /// A request sent now can be answered now.
    pub fn online(&self) -> bool {
        self.broker && self.gateway
    }
}

/// At most `per_second` log lines of one kind a second: a flood of hostile
/// messages costs a counter, not a disk full of logs. What was held back is
/// counted and reported with the next line let through.
#[derive(Debug)]
pub struct LogLimiter {
    per_second: u32,
    window: Option<tokio::time::Instant>,
    in_window: u32,
    held_back: u64,
}

impl LogLimiter {
    pub fn new(per_second: u32) -> LogLimiter {
        LogLimiter {
            per_second,
            window: None,
            in_window: 0,
            held_back: 0,
        }
    }

    /// `Some(held back since the last line)` when a line may be logged now.
    pub fn allow(&mut self) -> Option<u64> {
        let now = tokio::time::Instant::now();
        match self.window {
            Some(start) if now.duration_since(start) < Duration::from_secs(1) => {}
            _ => {
                self.window = Some(now);
                self.in_window = 0;
            }
        }
        if self.in_window < self.per_second {
            self.in_window += 1;
            Some(std::mem::take(&mut self.held_back))
        } else {
            self.held_back += 1;
            None
        }
    }
}

/// What a link asks of MQTT, queued for the publisher task.
#[derive(Debug)]
enum Outgoing {
    Subscribe(String),
    Publish {
        topic: String,
        payload: Vec<u8>,
        retain: bool,
        /// Seconds the broker keeps it (MQTT 5 message expiry); `None`: for ever.
        expiry: Option<u32>,
    },
    Disconnect,
}

/// A queue in front of rumqttc's client, drained by a task of its own: the
/// loop that polls the connection never waits on a publish (a client call
/// waits for the event loop, so calling it from the loop freezes both).
/// The queue is bounded by a count: past it a message is dropped and logged;
/// everything a link publishes is either durable elsewhere (the outbox, the
/// gateway's answers) or a status that is said again.
#[derive(Debug, Clone)]
pub struct Publisher {
    tx: tokio::sync::mpsc::UnboundedSender<Outgoing>,
    backlog: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    max_backlog: usize,
}

impl Publisher {
    /// All QoS 1. The task ends when every `Publisher` clone is gone.
    pub fn start(
        client: rumqttc::v5::AsyncClient,
        max_backlog: usize,
    ) -> (Publisher, tokio::task::JoinHandle<()>) {
        use std::sync::atomic::Ordering;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Outgoing>();
        let backlog = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = backlog.clone();
        let task = tokio::spawn(async move {
            let qos = rumqttc::v5::mqttbytes::QoS::AtLeastOnce;
            while let Some(outgoing) = rx.recv().await {
                count.fetch_sub(1, Ordering::Relaxed);
                let sent = match outgoing {
                    Outgoing::Subscribe(filter) => client.subscribe(filter, qos).await,
                    Outgoing::Publish {
                        topic,
                        payload,
                        retain,
                        expiry: None,
                    } => client.publish(topic, qos, retain, payload).await,
                    Outgoing::Publish {
                        topic,
                        payload,
                        retain,
                        expiry,
                    } => {
                        let properties = rumqttc::v5::mqttbytes::v5::PublishProperties {
                            message_expiry_interval: expiry,
                            ..Default::default()
                        };
                        (client.publish_with_properties(topic, qos, retain, payload, properties))
                            .await
                    }
                    Outgoing::Disconnect => client.disconnect().await,
                };
                if let Err(error) = sent {
                    // The event loop is gone: nothing more can be sent.
                    tracing::debug!(%error, "MQTT client closed");
                    break;
                }
            }
        });
        let publisher = Publisher {
            tx,
            backlog,
            max_backlog,
        };
        (publisher, task)
    }

    fn push(&self, outgoing: Outgoing) -> bool {
        use std::sync::atomic::Ordering;
        if self.backlog.load(Ordering::Relaxed) >= self.max_backlog {
            tracing::warn!(
                max = self.max_backlog,
                "MQTT send queue full: a message was dropped"
            );
            return false;
        }
        self.backlog.fetch_add(1, Ordering::Relaxed);
        self.tx.send(outgoing).is_ok()
    }

    /// Queues a QoS 1 publish; `false` if it was dropped (queue full or closed).
    pub fn publish(&self, topic: &str, retain: bool, payload: impl Into<Vec<u8>>) -> bool {
        self.push(Outgoing::Publish {
            topic: topic.to_owned(),
            payload: payload.into(),
            retain,
            expiry: None,
        })
    }

    /// A retained publish the broker forgets after `expiry_s` seconds.
    pub fn publish_expiring(
        &self,
        topic: &str,
        payload: impl Into<Vec<u8>>,
        expiry_s: u32,
    ) -> bool {
        self.push(Outgoing::Publish {
            topic: topic.to_owned(),
            payload: payload.into(),
            retain: true,
            expiry: Some(expiry_s),
        })
    }

    pub fn subscribe(&self, filter: &str) -> bool {
        self.push(Outgoing::Subscribe(filter.to_owned()))
    }

    /// After what is queued before it.
    pub fn disconnect(&self) -> bool {
        self.tx.send(Outgoing::Disconnect).is_ok()
    }
}

/// Whether `topic` carries the gateway's status or a worker's.
fn is_gateway_status(prefix: &str, topic: &[u8]) -> bool {
    std::str::from_utf8(topic)
        .is_ok_and(|topic| crate::protocol::topics::status_worker(prefix, topic).is_some())
}

/// A packet over our limit broke the connection.
pub fn is_oversize(error: &rumqttc::v5::ConnectionError) -> bool {
    use rumqttc::v5::{ConnectionError, StateError, mqttbytes::Error};
    matches!(
        error,
        ConnectionError::MqttState(StateError::Deserialization(
            Error::PayloadSizeLimitExceeded { .. }
        ))
    )
}

/// Whether the button is held after a push-to-talk message, or why it is
/// not taken: retained (a press is live or nothing: a retained `start`
/// would hold the microphone open on every reconnect), not signed by the
/// button, or not fresh.
fn read_press(
    message: &rumqttc::v5::mqttbytes::v5::Publish,
    button: &crate::keys::PublicKey,
    presses: &mut crate::protocol::ptt::Presses,
    now: u64,
) -> Result<bool, String> {
    use crate::protocol::ptt::PushToTalk;
    if message.retain {
        return Err("retained".into());
    }
    let press = PushToTalk::open(&message.payload, button).map_err(|e| e.to_string())?;
    presses.take(&press, now).map_err(|e| e.to_string())
}

/// The device's MQTT connection: publishes requests, hands over answers, and
/// republishes the whole outbox from disk whenever the gateway (re)appears.
pub struct DeviceLink {
    publisher: Publisher,
    closing: std::sync::Arc<std::sync::atomic::AtomicBool>,
    requests_topic: String,
    pub state: tokio::sync::watch::Receiver<LinkState>,
    /// What the vehicle last said on the driving topic: `None` before it
    /// has, after it cleared its state, and while the broker is away.
    pub driving: tokio::sync::watch::Receiver<Option<bool>>,
    pub answers: tokio::sync::mpsc::Receiver<Vec<u8>>,
    /// Agent tasks, as they came (signed envelopes, not yet checked).
    pub tasks: tokio::sync::mpsc::Receiver<Vec<u8>>,
    /// Push-to-talk pressed (`true`) or let go, from `{prefix}/devices/{id}/ptt`:
    /// only live presses the button's key signed (see [`crate::protocol::ptt`]).
    pub push_to_talk: tokio::sync::mpsc::Receiver<bool>,
    events_topic: String,
    prefix: String,
    device_id: String,
    task: tokio::task::JoinHandle<()>,
    publisher_task: tokio::task::JoinHandle<()>,
}

/// Where a device tells its apps what happened (`{prefix}/devices/{id}/events`).
#[derive(Debug, Clone)]
pub struct EventsTopic {
    publisher: Publisher,
    topic: String,
    state: tokio::sync::watch::Receiver<LinkState>,
}

impl EventsTopic {
    /// Publishes an event only while the broker is there: events are said
    /// live or not at all, and must never crowd the outbox out of the send
    /// queue.
    pub fn publish(&self, event: Vec<u8>) -> bool {
        self.state.borrow().broker && self.publisher.publish(&self.topic, false, event)
    }
}

/// How many messages a device may have queued for MQTT: an outbox far larger
/// than a device ever holds, plus statuses.
const DEVICE_SEND_QUEUE: usize = 20_000;
/// Agent tasks not yet taken by the daemon; more are dropped (and logged).
const TASKS_QUEUE: usize = 64;
/// QoS 1 publishes a device keeps unacknowledged. rumqttc sizes a slot
/// table by this when the client is made, 65,535 by default: 14 MB held
/// from start to end, the largest part of a device's memory after the
/// model. A broker grants fewer anyway (stock mosquitto 20), and the rest
/// wait in the queue.
const DEVICE_INFLIGHT: u16 = 100;

impl DeviceLink {
    /// Connects in the background; `outbox` gives the signed requests still
    /// waiting, in order, each time they must be published again. `button`:
    /// the push-to-talk button's key (none: push-to-talk is not taken from MQTT).
    pub fn start(
        broker: &BrokerUrl,
        prefix: &str,
        device_id: &str,
        gateway: crate::keys::PublicKey,
        button: Option<crate::keys::PublicKey>,
        outbox: impl Fn() -> Vec<Vec<u8>> + Send + 'static,
    ) -> DeviceLink {
        use crate::protocol::topics;
        use rumqttc::v5::Event;
        use rumqttc::v5::mqttbytes::QoS;
        use rumqttc::v5::mqttbytes::v5::{LastWill, Packet};

        let status = topics::status(prefix, device_id);
        let responses = topics::responses(prefix, device_id);
        let gateway_statuses = topics::gateway_statuses_filter(prefix);
        let status_prefix = prefix.to_owned();
        let driving_topic = topics::driving(prefix, device_id);
        let mut options = broker.options_v5(&format!("voicepay-{device_id}"));
        options.set_last_will(LastWill::new(
            &status,
            "offline",
            QoS::AtLeastOnce,
            true,
            None,
        ));
        // The session is ours across reconnects and restarts (MQTT 5 ends
        // it at once unless told otherwise): answers sent while we were
        // away are still delivered.
        options.set_clean_start(false);
        options.set_session_expiry_interval(Some(u32::MAX));
        options.set_outgoing_inflight_upper_limit(DEVICE_INFLIGHT);
        let (client, mut eventloop) = rumqttc::v5::AsyncClient::new(options, 256);
        let (publisher, publisher_task) = Publisher::start(client, DEVICE_SEND_QUEUE);
        let (state_tx, state) = tokio::sync::watch::channel(LinkState::default());
        let (driving_tx, driving) = tokio::sync::watch::channel(None::<bool>);
        let (answers_tx, answers) = tokio::sync::mpsc::channel(64);
        let (tasks_tx, tasks) = tokio::sync::mpsc::channel::<Vec<u8>>(TASKS_QUEUE);
        let tasks_topic = topics::tasks(prefix, device_id);
        let (ptt_tx, push_to_talk) = tokio::sync::mpsc::channel::<bool>(16);
        let ptt = topics::push_to_talk(prefix, device_id);
        let ptt_device = device_id.to_owned();
        let requests_topic = topics::requests(prefix, device_id);
        let requests = requests_topic.clone();
        let closing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let closed = closing.clone();
        let queue = publisher.clone();
        let task = tokio::spawn(async move {
            let mut backoff = Duration::from_millis(200);
            let mut unreadable_driving = LogLimiter::new(10);
            // What the signed statuses seen so far make us believe.
            let mut belief = crate::protocol::GatewayBelief::default();
            let mut rejected_statuses = LogLimiter::new(10);
            let mut rejected_ptt = LogLimiter::new(2);
            let mut presses = crate::protocol::ptt::Presses::new(&ptt_device);
            let mut dropped_tasks = LogLimiter::new(2);
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        backoff = Duration::from_millis(200);
                        state_tx.send_modify(|s| s.broker = true);
                        queue.subscribe(&responses);
                        // Before the gateway's: the vehicle's retained state
                        // is known by the time the device counts as online.
                        queue.subscribe(&driving_topic);
                        queue.subscribe(&gateway_statuses);
                        if button.is_some() {
                            queue.subscribe(&ptt);
                        }
                        queue.subscribe(&tasks_topic);
                        queue.publish(&status, true, "online");
                    }
                    Ok(Event::Incoming(Packet::Publish(p)))
                        if is_gateway_status(&status_prefix, &p.topic) =>
                    {
                        // Checked just above: a status topic, in UTF-8.
                        let topic = String::from_utf8_lossy(&p.topic);
                        let worker = topics::status_worker(&status_prefix, &topic).flatten();
                        let online = match GatewayStatus::open(&p.payload, &gateway) {
                            // A status signed for another worker's topic,
                            // or a recording: nothing changes.
                            Ok(status) => match belief.see(worker, &status) {
                                Some(online) => online,
                                // A recording, or an old session's.
                                None => continue,
                            },
                            Err(error) => {
                                // Anyone can publish here: a flood costs a
                                // signature check each, and a log line now and then.
                                if let Some(held_back) = rejected_statuses.allow() {
                                    tracing::warn!(%error, held_back, "ignored a gateway status that is not the gateway's");
                                }
                                continue;
                            }
                        };
                        let appeared = state_tx.send_if_modified(|s| {
                            let changed = s.gateway != online;
                            s.gateway = online;
                            changed
                        }) && online;
                        // Only when it appears: the same signed "online"
                        // played back again and again republishes nothing.
                        if appeared {
                            // Whatever is still in the outbox may never have
                            // arrived: send it again; the gateway deduplicates.
                            for envelope in outbox() {
                                if !queue.publish(&requests, false, envelope) {
                                    break;
                                }
                            }
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) if p.topic == ptt => {
                        // Not subscribed without a button key: nothing to take.
                        let Some(button) = &button else { continue };
                        let now = crate::clock::now_ms();
                        match read_press(&p, button, &mut presses, now) {
                            // Full: the daemon is behind; a held button says
                            // start again, and a start lapses by itself.
                            Ok(held) => {
                                let _ = ptt_tx.try_send(held);
                            }
                            Err(why) => {
                                if let Some(held_back) = rejected_ptt.allow() {
                                    tracing::warn!(
                                        bytes = p.payload.len(),
                                        %why,
                                        held_back,
                                        "ignored a push-to-talk message"
                                    );
                                }
                            }
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) if p.topic == tasks_topic => {
                        // Never waited for: a flood of tasks must not hold up
                        // the gateway's answers. The agent asks again, or asks
                        // for the task's status and hears nothing.
                        if tasks_tx.try_send(p.payload.to_vec()).is_err()
                            && let Some(held_back) = dropped_tasks.allow()
                        {
                            tracing::warn!(held_back, "agent task dropped: the device is behind");
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) if p.topic == responses => {
                        if answers_tx.send(p.payload.to_vec()).await.is_err() {
                            break;
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) if p.topic == driving_topic => {
                        match crate::protocol::driving::read_driving(&p.payload) {
                            Ok(state) => {
                                if driving_tx
                                    .send_if_modified(|s| std::mem::replace(s, state) != state)
                                {
                                    tracing::info!(driving = ?state, "the vehicle's driving state");
                                }
                            }
                            Err(error) => {
                                if let Some(held_back) = unreadable_driving.allow() {
                                    tracing::warn!(%error, held_back, "ignored a driving state");
                                }
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(error) => {
                        let expected = closed.load(std::sync::atomic::Ordering::Relaxed);
                        if state_tx.borrow().broker && !expected {
                            tracing::warn!(%error, "lost the broker");
                        }
                        if is_oversize(&error) {
                            // A broker that ignores our Maximum Packet Size
                            // sends it again on every reconnect.
                            tracing::error!(%error, max = MAX_PACKET, "the broker sent a message over our limit: set its message_size_limit (README, deployment)");
                        }
                        state_tx.send_if_modified(|s| {
                            let changed = *s != LinkState::default();
                            *s = LinkState::default();
                            changed
                        });
                        belief.forget_online();
                        // The vehicle may start or stop unheard: unknown
                        // until its retained state comes again.
                        driving_tx.send_if_modified(|s| s.take().is_some());
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
        });
        DeviceLink {
            publisher,
            closing,
            requests_topic,
            state,
            driving,
            answers,
            tasks,
            push_to_talk,
            events_topic: topics::events(prefix, device_id),
            prefix: prefix.to_owned(),
            device_id: device_id.to_owned(),
            task,
            publisher_task,
        }
    }

    /// The device's events topic, for whoever tells the device's apps what
    /// happened.
    pub fn events(&self) -> EventsTopic {
        EventsTopic {
            publisher: self.publisher.clone(),
            topic: self.events_topic.clone(),
            state: self.state.clone(),
        }
    }

    /// Tells an agent where its task stands: a signed status on the task's
    /// own topic, retained (so an agent that looks later still learns it)
    /// unless it is only an answer to a question.
    pub fn publish_task_status(&self, task_id: &str, envelope: Vec<u8>, retain: bool) -> bool {
        let topic = crate::protocol::topics::task_status(&self.prefix, &self.device_id, task_id);
        self.publisher.publish(&topic, retain, envelope)
    }

    /// Queues a signed request for MQTT (QoS 1) without waiting. Delivery is
    /// not confirmation: the payment stays in the outbox until the gateway's
    /// answer arrives, and is sent again whenever the gateway reappears.
    pub fn publish(&self, envelope: Vec<u8>) -> bool {
        self.publisher
            .publish(&self.requests_topic, false, envelope)
    }

    /// Says `offline` and disconnects, waiting briefly for the broker to take it.
    pub async fn close(&mut self, prefix: &str, device_id: &str) {
        let status = crate::protocol::topics::status(prefix, device_id);
        self.publisher.publish(&status, true, "offline");
        self.closing
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.publisher.disconnect();
        // The event loop sends both, then sees the connection end.
        let mut state = self.state.clone();
        let _ = tokio::time::timeout(Duration::from_secs(2), state.wait_for(|s| !s.broker)).await;
        self.task.abort();
        self.publisher_task.abort();
        // Gone for good before we return: the task holds a handle on the
        // store, which must be free for whoever opens it next.
        let _ = (&mut self.task).await;
        let _ = (&mut self.publisher_task).await;
    }
}
