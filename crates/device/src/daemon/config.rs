//! What a daemon is started with: the profile, the data directory, the broker, and the state it shares with the transcriber stage; and why it may fail to start.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::audio::gate::Gate;
use crate::payees::SharedPayees;
use crate::profile::DeviceProfile;
use crate::recognizer::SharedListening;
use voicepay_core::transport::BrokerUrl;

#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub profile: DeviceProfile,
    pub data_dir: PathBuf,
    pub broker: BrokerUrl,
    /// How long to wait for the gateway before hearing anything (offline
    /// payments start after it).
    pub connect_wait: Duration,
    /// When the input ends, how long to wait for the answers still due.
    pub drain_wait: Duration,
    /// The microphone's gate: push-to-talk holds it open (the speaker shuts
    /// it while the device talks).
    pub gate: Arc<Gate>,
    /// The profile file SIGHUP rereads (see [`crate::service::reread`]);
    /// `None`: SIGHUP is left alone.
    pub profile_file: Option<PathBuf>,
    /// The payee book, shared with the transcriber stage (see
    /// [`crate::recognizer::Recognizer::with_payees`]): the daemon fills it
    /// at start, a reload and `voicepay payees add` change it.
    pub payees: SharedPayees,
    /// What the dialog waits for, shared with the transcriber stage (see
    /// [`crate::recognizer::Recognizer::with_listening`]): the next
    /// utterance is heard in that state's closed-domain language.
    pub listening: SharedListening,
}

impl DaemonConfig {
    pub fn new(profile: DeviceProfile, data_dir: PathBuf, broker: BrokerUrl) -> DaemonConfig {
        let payees = SharedPayees::new(profile.payee_book());
        DaemonConfig {
            profile,
            data_dir,
            broker,
            connect_wait: Duration::from_secs(5),
            drain_wait: Duration::from_secs(10),
            gate: Arc::new(Gate::open()),
            profile_file: None,
            payees,
            listening: SharedListening::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Identity(#[from] voicepay_core::identity::IdentityError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("the payee book: {0}")]
    Payees(#[from] crate::payees::BookError),
}
