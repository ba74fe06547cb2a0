//! The device daemon: one loop over what it hears, the gateway's answers, the dialog's deadline, agent tasks and shutdown.
//!
//! The stages are wired here and nowhere else: a [`Source`] of heard
//! utterances (an audio source feeding the transcriber stage, or typed text),
//! the [`Dialog`] with the [`voicepay_core::policy`] behind it, the [`Outbox`] that
//! signs and commits, the MQTT [`DeviceLink`], and the [`Feedback`] the user
//! hears. A payment is durable in the outbox before it is published and leaves
//! it only when the gateway's signed answer arrives; waiting for that answer
//! never holds up hearing the next utterance.

use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::agents::{LetIn, TaskRejection};
use crate::audio::gate::Gate;
use crate::dialog::{Action, Assess, Dialog, DialogSettings, Said, random_code};
use crate::feedback::{Event, Feedback, Status};
use crate::identity::DeviceIdentity;
use crate::intent::language::Listening;
use crate::intent::{LimitScope, Period};
use crate::order::{AgentOrder, Approval, DropReason, PaymentOrder, Purchase};
use crate::outbox::{CommitError, Outbox, SettleError};
use crate::payees::SharedPayees;
use crate::phrasebook::{Phrasebook, Speech};
use crate::profile::DeviceProfile;
use crate::recognizer::SharedListening;
use crate::recognizer::{Heard, Source};
use crate::store::{HistoryEvent, Store, StoreConfig};
use crate::wake::Addressed;
use voicepay_core::agent::Agent;
use voicepay_core::clock::now_ms;
use voicepay_core::money::Money;
use voicepay_core::policy::{self, Decision, Link, OfflineFloor, Refusal};
use voicepay_core::protocol::{
    AgentRef, AgentTask, Evidence, ResponseStatus, TaskKind, TaskState, TaskStatus,
};
use voicepay_core::transport::{BrokerUrl, DeviceLink, LinkState, LogLimiter};

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

/// Runs the daemon until `source` ends (then waits up to `drain_wait` for the
/// answers still due) or `shutdown` is cancelled (then stops at once: the
/// outbox is durable, and the next start sends what it holds).
pub async fn run(
    config: DaemonConfig,
    mut source: Source,
    feedback: Box<dyn Feedback>,
    shutdown: CancellationToken,
) -> Result<(), DaemonError> {
    let started = Instant::now();
    let (feedback, live) = crate::service::Observed::new(feedback);
    let mut daemon = Daemon::start(config, Box::new(feedback))?;
    // The CLI's store commands, answered while we hold the store.
    let control_stop = shutdown.child_token();
    let store = daemon.store.clone();
    let (profile_book, payees) = (daemon.profile_book.clone(), daemon.payees.clone());
    let device_id = daemon.device_id.clone();
    let gateway = daemon.gateway;
    let calendar = daemon.config.profile.payments.calendar.clone();
    let handler = move |request: &voicepay_core::control::Request| match request {
        voicepay_core::control::Request::Status { json } => {
            let running = crate::control::Running {
                live: *live.borrow(),
                uptime: started.elapsed(),
            };
            crate::control::status(&store, Some(&device_id), Some(&running), *json)
        }
        _ => {
            let book = crate::control::DeviceBook {
                profile: profile_book.read().clone(),
                live: Some(payees.clone()),
                calendar: calendar.clone(),
                gateway: Some(gateway),
            };
            crate::control::device(&store, &book, request)
        }
    };
    let control = tokio::spawn(voicepay_core::control::serve(
        daemon.config.data_dir.clone(),
        std::sync::Arc::new(handler),
        control_stop.clone(),
    ));
    daemon.count_waiting();
    daemon.wait_online(&shutdown).await;
    daemon.notifier.ready();
    let ending = daemon.serve(&mut source, &shutdown).await;
    daemon.notifier.stopping();
    daemon.finish(ending, &shutdown).await;
    control_stop.cancel();
    let _ = control.await;
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    InputEnded,
    Shutdown,
}

/// What woke the loop.
enum Step {
    Heard(Box<Heard>),
    InputEnded,
    Answer(Vec<u8>),
    AnswersClosed,
    Task(Vec<u8>),
    TasksClosed,
    PushToTalk(bool),
    PushToTalkClosed,
    Deadline,
    LinkChanged,
    LinkClosed,
    Watchdog,
    Reload,
    Resend,
    Shutdown,
}

struct Daemon {
    config: DaemonConfig,
    device_id: String,
    /// The trusted gateway's key: `history --verify` checks answers with it.
    gateway: voicepay_core::keys::PublicKey,
    store: Store,
    outbox: Outbox,
    dialog: Dialog,
    /// The payee book the dialog resolves names in; the control socket updates it.
    payees: SharedPayees,
    /// The profile's part of it, which a reload replaces.
    profile_book: SharedPayees,
    notifier: crate::service::Notifier,
    hangups: crate::service::Hangups,
    phrasebook: Phrasebook,
    link: DeviceLink,
    feedback: Box<dyn Feedback>,
    /// The last status published.
    status: Status,
    /// Utterances handled (counted apart from `status`, so that a new one
    /// is a change to publish).
    heard: u64,
    /// Published online in this run and not answered yet.
    unanswered: HashSet<Uuid>,
    /// The gateway was reachable at the last look.
    was_online: bool,
    /// Hostile answers are logged a few a second.
    rejections: LogLimiter,
    /// Payments in the outbox: read from the store where they change (a
    /// commit, a settlement), not on every turn of the loop.
    waiting: usize,
    /// Committed while the disk failed: not sent until the store is durable.
    held: Vec<(Uuid, Vec<u8>)>,
    /// After the wake phrase alone, the next utterance needs none until then.
    awake_until: Option<Instant>,
    /// Agents' tasks let in, waiting for the user to be free.
    tasks_waiting: VecDeque<WaitingTask>,
    /// Tasks that are not a registered agent's are logged a few a second.
    task_rejections: LogLimiter,
    /// The payment-code lock as kept in the store.
    code_lock: crate::store::CodeLock,
    /// When the outbox is sent again for want of answers.
    resend: Resend,
    /// What the user said may cross the broker (`mqtt.transcripts`, read
    /// at start like the rest of `[mqtt]`).
    transcripts: bool,
}

/// An agent's task let in, and the signed bytes it came in (their hash is
/// the evidence of the request made for it).
struct WaitingTask {
    agent: Agent,
    task: AgentTask,
    message: Vec<u8>,
}

/// More tasks than this waiting for the user are answered "busy".
const MAX_WAITING_TASKS: usize = 16;
/// Tasks whose signature verified, not yet taken by the loop.
const VERIFIED_TASKS: usize = 256;

/// Checks each incoming task's signature on a task of its own, ahead of the
/// daemon's loop: a flood of forged tasks is dropped as fast as it arrives
/// (logged a few lines a second), so the link's queue does not fill with it
/// and a genuine task is not crowded out. Only what a registered agent
/// signed reaches the loop, which opens it fully.
fn spawn_task_verifier(
    store: Store,
    mut raw: tokio::sync::mpsc::Receiver<Vec<u8>>,
) -> tokio::sync::mpsc::Receiver<Vec<u8>> {
    let (verified, tasks) = tokio::sync::mpsc::channel(VERIFIED_TASKS);
    tokio::spawn(async move {
        let mut rejections = LogLimiter::new(10);
        while let Some(message) = raw.recv().await {
            match crate::agents::verify_signer(&store, &message) {
                Ok(()) => {
                    if verified.send(message).await.is_err() {
                        return;
                    }
                }
                Err(rejection) => {
                    if let Some(held_back) = rejections.allow() {
                        tracing::warn!(%rejection, held_back, "agent task rejected");
                    }
                }
            }
        }
    });
    tasks
}

/// The first wait, without an answer, before the outbox is sent again, and
/// the longest (each wait doubles).
const RESEND_FIRST: Duration = Duration::from_secs(5);
const RESEND_MAX: Duration = Duration::from_secs(120);

/// When the outbox is sent again. A broker drops what it cannot queue (a
/// stock mosquitto keeps 1,000 QoS 1 messages per client), so a request can
/// be lost with the gateway online and the device connected: while
/// payments wait and the gateway is online, a stretch without any answer
/// sends them all again (the gateway answers a repeat with its first
/// answer), after 5 s, then 10, 20 ... up to 2 min, each wait drawn within
/// half of it either way so that devices dropped together do not come back
/// together. An answer starts the waits again from the first.
#[derive(Debug, Default)]
struct Resend {
    attempt: u32,
    due: Option<Instant>,
}

impl Resend {
    /// A resend is due while `needed`, none otherwise.
    fn arm(&mut self, needed: bool, now: Instant) {
        if !needed {
            *self = Resend::default();
        } else if self.due.is_none() {
            self.due = Some(
                now + jittered(
                    RESEND_FIRST
                        .saturating_mul(1 << self.attempt.min(6))
                        .min(RESEND_MAX),
                ),
            );
        }
    }

    /// The gateway answered: it hears us.
    fn answered(&mut self) {
        *self = Resend::default();
    }

    fn fired(&mut self) {
        self.attempt = self.attempt.saturating_add(1);
        self.due = None;
    }
}

/// `wait` times a random factor between 0.5 and 1.5.
fn jittered(wait: Duration) -> Duration {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 2];
    // A failing source gives the wait itself: still a wait.
    let draw = match ring::rand::SystemRandom::new().fill(&mut bytes) {
        Ok(()) => u32::from(u16::from_be_bytes(bytes)),
        Err(_) => 32_768,
    };
    wait / 2 + wait.mul_f64(f64::from(draw) / 65_536.0)
}

impl Daemon {
    /// Opens the identity and the store and starts connecting.
    fn start(config: DaemonConfig, feedback: Box<dyn Feedback>) -> Result<Daemon, DaemonError> {
        let identity = DeviceIdentity::load(&config.data_dir)?;
        let store = Store::open(
            &StoreConfig::new(config.data_dir.join("store"))
                .with_initial_limits(config.profile.limits.clone()),
        )?;
        // A history sealed with a secret that is gone cannot take another
        // entry: paying on would leave payments nowhere to be recorded.
        store.check_history_secret()?;
        let profile = &config.profile;
        let settings = DialogSettings {
            window: profile.payments.confirm_window,
            min_confidence: profile.asr.min_confidence,
            wrong_codes_allowed: 3,
            lockout: profile.payments.code_lockout,
        };
        let payees = config.payees.clone();
        payees.replace(crate::payees::book_with_added(
            &profile.payee_book(),
            &store,
        )?);
        let mut dialog = Dialog::new(settings, profile.parse_context(), Box::new(random_code))
            .with_payees(payees.clone());
        // Wrong codes and a lockout outlive the run that heard them.
        let code_lock = store.code_lock()?;
        let left = code_lock
            .locked_until
            .map(|until| Duration::from_millis(until.saturating_sub(now_ms())));
        dialog.restore_code_lock(code_lock.wrong_codes, left, Instant::now());
        let outbox_store = store.clone();
        let mut link = DeviceLink::start(
            &config.broker,
            &profile.mqtt.prefix,
            &identity.device_id,
            identity.gateway,
            profile.wake.button_key().unwrap_or_else(|error| {
                // The profile was checked when it loaded: not reached.
                tracing::error!(%error, "push-to-talk over MQTT is off");
                None
            }),
            // Nothing is sent that the disk has not taken, nor what a
            // stopped agent asked for.
            move || {
                outbox_store
                    .flush_durably()
                    .and_then(|()| outbox_store.sendable_outbox())
                    .map(|o| o.into_iter().map(|p| p.envelope).collect())
                    .unwrap_or_else(|error| {
                        tracing::error!(%error, "not republishing the outbox");
                        Vec::new()
                    })
            },
        );
        // Signatures are checked before a task is queued for the loop.
        let (_closed, unused) = tokio::sync::mpsc::channel(1);
        let raw_tasks = std::mem::replace(&mut link.tasks, unused);
        link.tasks = spawn_task_verifier(store.clone(), raw_tasks);
        let hangups = crate::service::Hangups::new(config.profile_file.is_some());
        let profile_book = SharedPayees::new(profile.payee_book());
        let outbox = Outbox::new(
            store.clone(),
            identity.key,
            identity.device_id.clone(),
            identity.gateway,
            profile.payments.request_ttl_ms,
            profile.payments.calendar.clone(),
        )
        .with_transcripts(profile.mqtt.transcripts);
        let transcripts = profile.mqtt.transcripts;
        Ok(Daemon {
            phrasebook: Phrasebook::new(profile.language),
            device_id: identity.device_id,
            gateway: identity.gateway,
            config,
            store,
            outbox,
            dialog,
            payees,
            profile_book,
            notifier: crate::service::Notifier::from_env(),
            hangups,
            link,
            feedback,
            status: Status::default(),
            heard: 0,
            unanswered: HashSet::new(),
            was_online: false,
            rejections: LogLimiter::new(10),
            waiting: 0,
            held: Vec::new(),
            awake_until: None,
            tasks_waiting: VecDeque::new(),
            task_rejections: LogLimiter::new(10),
            code_lock,
            resend: Resend::default(),
            transcripts,
        })
    }

    fn link_state(&self) -> LinkState {
        *self.link.state.borrow()
    }

    /// Long enough for a loaded machine to connect.
    async fn wait_online(&mut self, shutdown: &CancellationToken) {
        let mut state = self.link.state.clone();
        let online =
            tokio::time::timeout(self.config.connect_wait, state.wait_for(LinkState::online));
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = online => {}
        }
    }

    async fn serve(&mut self, source: &mut Source, shutdown: &CancellationToken) -> Ending {
        let (mut answers_open, mut tasks_open, mut link_open) = (true, true, true);
        let mut push_to_talk_open = true;
        // A press lapses by itself: a lost `stop` (or a captured `start`)
        // cannot hold the microphone open.
        let mut held_until: Option<Instant> = None;
        loop {
            self.offer_waiting_tasks().await;
            self.publish_status();
            self.arm_resend();
            self.config
                .listening
                .set(listening_for(self.dialog.expecting().as_ref()));
            let deadline = self.dialog.deadline();
            let step = tokio::select! {
                biased;
                _ = shutdown.cancelled() => Step::Shutdown,
                _ = self.notifier.watchdog_due() => Step::Watchdog,
                answer = self.link.answers.recv(), if answers_open => match answer {
                    Some(message) => Step::Answer(message),
                    None => Step::AnswersClosed,
                },
                heard = source.next() => match heard {
                    Some(heard) => Step::Heard(Box::new(heard)),
                    None => Step::InputEnded,
                },
                task = self.link.tasks.recv(), if tasks_open => match task {
                    Some(message) => Step::Task(message),
                    None => Step::TasksClosed,
                },
                held = self.link.push_to_talk.recv(), if push_to_talk_open => match held {
                    Some(held) => Step::PushToTalk(held),
                    None => Step::PushToTalkClosed,
                },
                changed = self.link.state.changed(), if link_open => match changed {
                    Ok(()) => Step::LinkChanged,
                    Err(_) => Step::LinkClosed,
                },
                _ = sleep_until(held_until), if held_until.is_some() => Step::PushToTalk(false),
                _ = sleep_until(self.resend.due), if self.resend.due.is_some() => Step::Resend,
                _ = self.hangups.next() => Step::Reload,
                // An utterance being transcribed is an answer already given.
                _ = sleep_until(deadline), if deadline.is_some() && !source.in_flight() => Step::Deadline,
            };
            match step {
                Step::Shutdown => return Ending::Shutdown,
                Step::InputEnded => return Ending::InputEnded,
                Step::Heard(heard) => self.hear(*heard).await,
                Step::Answer(message) => self.settle(&message),
                Step::AnswersClosed => answers_open = false,
                Step::Task(message) => self.take_task(message),
                Step::TasksClosed => tasks_open = false,
                Step::PushToTalk(held) => {
                    held_until = held.then(|| Instant::now() + self.config.profile.wake.ptt_hold());
                    self.config.gate.hold(held);
                }
                Step::PushToTalkClosed => push_to_talk_open = false,
                Step::LinkChanged => self.link_changed(),
                Step::LinkClosed => link_open = false,
                Step::Watchdog => self.notifier.watchdog(),
                Step::Reload => self.reload(),
                Step::Resend => self.resend_outbox(),
                Step::Deadline if source.in_flight() => {}
                Step::Deadline if self.still_asking() => {}
                Step::Deadline => {
                    let actions = self.dialog.expire(Instant::now());
                    self.act(actions).await;
                }
            }
        }
    }

    /// The device is still saying its question, or said it less than a
    /// window ago: the window counts from the end of its voice (a spoken
    /// read-back takes seconds of an 8 s window), so it starts again there.
    fn still_asking(&mut self) -> bool {
        let window = self.config.profile.payments.confirm_window;
        match self.config.gate.last_voice() {
            Some(voice) if voice + window > Instant::now() => {
                self.dialog.question_spoken(voice);
                true
            }
            _ => false,
        }
    }

    /// A question still open is dropped; after the input ended, the answers
    /// still due are awaited; then the device says `offline` and disconnects.
    async fn finish(&mut self, ending: Ending, shutdown: &CancellationToken) {
        let actions = self.dialog.end_of_input();
        self.act(actions).await;
        if ending == Ending::InputEnded {
            self.drain(shutdown).await;
        }
        if !self.unanswered.is_empty() {
            self.say(&Speech::NoAnswerYet);
        }
        self.publish_status();
        self.link
            .close(&self.config.profile.mqtt.prefix, &self.device_id)
            .await;
    }

    async fn drain(&mut self, shutdown: &CancellationToken) {
        let deadline = Instant::now() + self.config.drain_wait;
        while self.waiting > 0 {
            self.publish_status();
            self.arm_resend();
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep_until(deadline) => return,
                _ = self.notifier.watchdog_due() => self.notifier.watchdog(),
                _ = sleep_until(self.resend.due), if self.resend.due.is_some() => self.resend_outbox(),
                answer = self.link.answers.recv() => match answer {
                    Some(message) => self.settle(&message),
                    None => return,
                },
            }
        }
    }

    /// SIGHUP: the profile file read again; what can change live is applied
    /// (see [`crate::service::reread`]), a bad file changes nothing.
    fn reload(&mut self) {
        let Some(path) = self.config.profile_file.clone() else {
            return;
        };
        self.notifier.reloading();
        let reloaded = crate::service::reread(&path, &self.config.profile)
            .map_err(|e| e.to_string())
            .and_then(|reloaded| {
                let profile_book = reloaded.profile.payee_book();
                let whole = crate::payees::book_with_added(&profile_book, &self.store)
                    .map_err(|e| e.to_string())?;
                Ok((reloaded, profile_book, whole))
            });
        match reloaded {
            Err(error) => {
                tracing::error!(%error, "profile not reloaded: the running one stays")
            }
            Ok((reloaded, profile_book, whole)) => {
                self.profile_book.replace(profile_book);
                self.payees.replace(whole);
                let payments = &reloaded.profile.payments;
                self.dialog.reconfigure(
                    payments.confirm_window,
                    payments.code_lockout,
                    reloaded.profile.parse_context(),
                );
                self.config.profile = reloaded.profile;
                tracing::info!(
                    path = %path.display(),
                    applied = ?reloaded.applied,
                    need_restart = ?reloaded.need_restart,
                    "profile reloaded"
                );
                if !reloaded.need_restart.is_empty() {
                    tracing::warn!(keys = ?reloaded.need_restart, "these profile keys changed and take effect at the next restart");
                }
            }
        }
        self.notifier.ready();
    }

    fn arm_resend(&mut self) {
        let needed = self.waiting > 0 && self.link_state().online();
        self.resend.arm(needed, Instant::now());
    }

    /// No answer for a while with payments waiting: the broker may have
    /// dropped them, so they all go again (only what the disk holds, less
    /// what a stopped agent asked for, as when the gateway appears).
    fn resend_outbox(&mut self) {
        self.resend.fired();
        if !self.link_state().online() {
            return;
        }
        let waiting = self
            .store
            .flush_durably()
            .and_then(|()| self.store.sendable_outbox());
        match waiting {
            Ok(waiting) => {
                tracing::info!(
                    waiting = waiting.len(),
                    attempt = self.resend.attempt,
                    "no answer for a while: sending the outbox again"
                );
                for payment in waiting {
                    if !self.link.publish(payment.envelope) {
                        break;
                    }
                }
            }
            Err(error) => tracing::error!(%error, "not resending the outbox"),
        }
    }

    fn count_waiting(&mut self) {
        match self.store.outbox_len() {
            Ok(n) => self.waiting = n,
            Err(error) => tracing::warn!(%error, "cannot count the outbox"),
        }
    }

    fn publish_status(&mut self) {
        let status = Status {
            link: self.link_state(),
            outbox: self.waiting,
            heard: self.heard,
            asking: self.dialog.is_waiting(),
        };
        if status != self.status {
            self.status = status;
            self.feedback.status(&status);
        }
    }

    /// One utterance: understood, answered, acted on.
    async fn hear(&mut self, heard: Heard) {
        self.heard += 1;
        let understanding = match heard.outcome {
            Ok(understanding) => understanding,
            Err(message) => {
                self.fail(message);
                return self.say(&Speech::NotHeard);
            }
        };
        match understanding.addressed {
            Addressed::Command(_) => self.awake_until = None,
            Addressed::PhraseAlone => {
                self.awake_until = Some(heard.arrived + self.config.profile.wake.follow());
                return self.say(&Speech::Listening);
            }
            // An answer to the question the device asked needs no phrase;
            // nor does the command just after the phrase alone.
            Addressed::Not
                if self.dialog.is_waiting()
                    || self.awake_until.is_some_and(|until| heard.arrived <= until) =>
            {
                self.awake_until = None;
            }
            Addressed::Not => {
                // Not for us: how much, never what.
                let words = understanding.transcript.split_whitespace().count();
                return tracing::debug!(words, "not said to the device: ignored");
            }
        }
        // The broker hears what was said only when the profile lets it, and
        // never an answer to the code question (the code is in it).
        let answering_code = matches!(
            self.dialog.expecting(),
            Some(crate::dialog::Expecting::Code)
        );
        let public = (!self.transcripts || answering_code)
            .then(|| serde_json::json!({"step": "heard", "file": heard.name}));
        self.emit_as(
            Event::Heard {
                file: heard.name,
                transcript: understanding.transcript.clone(),
                intent: understanding.intent.clone(),
            },
            public,
        );
        let command = match &understanding.addressed {
            Addressed::Command(command) => command.as_str(),
            _ => understanding.transcript.as_str(),
        };
        let said = Said {
            intent: &understanding.intent,
            command,
            evidence: &understanding.evidence,
            doubt: understanding.doubt,
            payee: understanding.payee.as_ref(),
            reply: understanding.reply.as_ref(),
        };
        let actions = {
            let assessor = Assessor::of(&self.store, &self.link, &self.config.profile);
            self.dialog.hear_said(&said, heard.arrived, &assessor)
        };
        self.keep_code_lock();
        self.act(actions).await;
        self.dialog.question_spoken(Instant::now());
    }

    /// Keeps the dialog's wrong codes and lockout in the store when they
    /// changed, so a restart does not lift them.
    fn keep_code_lock(&mut self) {
        let (wrong_codes, until) = self.dialog.code_lock();
        let (now, clock) = (Instant::now(), now_ms());
        let lock = crate::store::CodeLock {
            wrong_codes,
            locked_until: until.map(|u| {
                let left = u.saturating_duration_since(now).as_millis();
                clock.saturating_add(u64::try_from(left).unwrap_or(u64::MAX))
            }),
        };
        let kept = (
            self.code_lock.wrong_codes,
            self.code_lock.locked_until.is_some(),
        );
        if kept == (lock.wrong_codes, lock.locked_until.is_some()) {
            return;
        }
        match self.store.set_code_lock(&lock) {
            Ok(()) => self.code_lock = lock,
            Err(error) => self.fail(format!("cannot keep the payment-code lock: {error}")),
        }
    }

    async fn act(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Say(speech) => self.say(&speech),
                Action::Pay { order, approval } => self.pay(order, approval).await,
                Action::Declined { order, reason } => {
                    let reason = self.phrasebook.refusal(&reason);
                    self.refused(&order, reason);
                }
                Action::Dropped { order, reason } => self.dropped(&order, reason),
                Action::RevokeAgents => self.revoke_agents(),
                Action::SetLimit { scope, amount } => self.set_limit(scope, amount),
                Action::ReportSpending { period } => self.report_spending(period),
            }
        }
    }

    /// Signs and commits durably, then publishes (or leaves it queued offline).
    async fn pay(&mut self, order: PaymentOrder, approval: Approval) {
        // A payment held unsaved goes first, or nothing new is taken: the
        // user may repeat it, and both must not go out.
        if !self.held.is_empty() {
            if let Err(error) = self.store.flush_durably() {
                let error = error.to_string();
                tracing::error!(%error, "storage still failing; payment not taken");
                return self.say(&Speech::StorageFailing { error });
            }
            self.send_held();
        }
        let offline = !self.link_state().online();
        let floor = offline.then_some(&self.config.profile.offline);
        let committed = match self.outbox.commit(&order, &approval, floor) {
            Ok(committed) => committed,
            Err(CommitError::Refused(refusal)) => {
                let reason = self.phrasebook.refusal(&refusal);
                self.emit(Event::Say {
                    text: reason.clone(),
                });
                return self.refused(&order, reason);
            }
            // Stopped or spent since it was put to the user: the user hears
            // it was not paid, the agent why.
            Err(CommitError::AgentRefused(refusal)) => {
                let reason = refusal.to_string();
                if let Some(agent) = &order.agent {
                    self.say(&Speech::AgentTaskDropped {
                        agent: agent.spoken_name.clone(),
                        reason: DropReason::Revoked,
                    });
                }
                return self.refused(&order, reason);
            }
            Err(CommitError::Failed(error)) => {
                tracing::error!(%error, "payment not recorded");
                return self.say(&Speech::NotRecorded { error });
            }
            Err(CommitError::NotDurable { committed, error }) => {
                tracing::error!(%error, request_id = %committed.request.request_id, "payment held: the disk did not take it");
                self.count_waiting();
                self.held
                    .push((committed.request.request_id, committed.message));
                return self.say(&Speech::HeldUnsaved {
                    purchase: order.purchase,
                    amount: order.amount,
                    error,
                });
            }
        };
        let request_id = committed.request.request_id;
        self.count_waiting();
        if let Some(task) = order.agent_ref() {
            self.tell_agent(&task, TaskState::Approved, None, Some(request_id));
        }
        self.emit(Event::Sent {
            request_id,
            offline,
            envelope: serde_json::to_value(&committed.envelope).unwrap_or_default(),
        });
        if offline {
            return self.say(&Speech::PaidOffline {
                purchase: order.purchase,
                amount: order.amount,
            });
        }
        self.unanswered.insert(request_id);
        if !self.link.publish(committed.message) {
            // Still in the outbox: the gateway's next appearance sends it.
            tracing::warn!(%request_id, "not queued for MQTT; the outbox keeps the payment");
        }
    }

    /// The store is durable again: what was held goes out (offline, the
    /// gateway's next appearance sends it with the rest of the outbox).
    fn send_held(&mut self) {
        let online = self.link_state().online();
        for (request_id, message) in std::mem::take(&mut self.held) {
            tracing::info!(%request_id, "storage works again; sending the held payment");
            if online {
                self.unanswered.insert(request_id);
                self.link.publish(message);
            }
        }
    }

    /// Cancelled, not answered, or the agent stopped: remembered, and an
    /// agent told.
    fn dropped(&mut self, order: &PaymentOrder, reason: DropReason) {
        let said = self.phrasebook.drop_reason(reason);
        if let Some(task) = order.agent_ref() {
            let state = match reason {
                DropReason::Revoked => TaskState::Revoked,
                _ => TaskState::Rejected,
            };
            self.tell_agent(&task, state, Some(said.clone()), None);
        }
        self.remember(HistoryEvent::Cancelled {
            amount: order.amount,
            payee: order.purchase.payee().to_owned(),
            at: now_ms(),
            reason: said,
            agent: order.agent_ref(),
        });
    }

    fn refused(&mut self, order: &PaymentOrder, reason: String) {
        if let Some(task) = order.agent_ref() {
            self.tell_agent(&task, TaskState::Refused, Some(reason.clone()), None);
        }
        self.remember(HistoryEvent::Refused {
            amount: order.amount,
            payee: order.purchase.payee().to_owned(),
            at: now_ms(),
            reason,
            agent: order.agent_ref(),
        });
    }

    /// An agent's task as it arrives: let in (registered key, good
    /// signature, its own, well formed, new) and queued for the user, or
    /// logged and dropped without a word to anyone.
    fn take_task(&mut self, message: Vec<u8>) {
        match crate::agents::open_task(&self.store, &self.device_id, &message, now_ms()) {
            Ok(LetIn::Task(agent, task)) => {
                tracing::info!(agent = %agent.name, task_id = %task.task_id, amount = %task.amount, "agent task let in");
                self.queue_task(agent, task, message);
            }
            Ok(LetIn::Query(agent, query)) => {
                tracing::debug!(agent = %agent.name, task_id = %query.status_of, "asked where a task stands");
                self.tell_record(&agent.name, &query.status_of);
            }
            Err(TaskRejection::Replayed {
                agent,
                task,
                same_terms,
            }) => {
                tracing::info!(agent = %agent.name, task_id = %task.task_id, same_terms, "a task sent again: its agent is told the record");
                if same_terms && self.lost_task(&agent.name, &task.task_id) {
                    // Let in by a run that ended before the user heard it:
                    // the agent's retry is the task itself, put to the user now.
                    return self.queue_task(*agent, *task, message);
                }
                self.tell_record(&agent.name, &task.task_id);
            }
            Err(TaskRejection::Store(error)) => {
                self.fail(format!("cannot check an agent task: {error}"))
            }
            Err(rejection) => {
                if let Some(held_back) = self.task_rejections.allow() {
                    tracing::warn!(%rejection, held_back, "agent task rejected");
                }
            }
        }
    }

    /// Queues a task let in for the user, or refuses it as "busy".
    fn queue_task(&mut self, agent: Agent, task: AgentTask, message: Vec<u8>) {
        if self.tasks_waiting.len() >= MAX_WAITING_TASKS {
            // Not taken: the same task sent again later is let in then.
            let busy = "the device has too many tasks waiting: send the same task again later";
            return self.tell_agent(&task_ref(&task), TaskState::Busy, Some(busy.into()), None);
        }
        self.tasks_waiting.push_back(WaitingTask {
            agent,
            task,
            message,
        });
    }

    /// A task the store says is pending (or was turned away busy), that
    /// neither waits in this run nor is being asked about, and whose time
    /// has not run out: let in by an earlier run that stopped before the
    /// user answered, or not taken for want of room.
    fn lost_task(&self, agent: &str, task_id: &str) -> bool {
        let task = AgentRef {
            agent_id: agent.to_owned(),
            task_id: task_id.to_owned(),
        };
        let record = match self.store.task_record(agent, task_id) {
            Ok(Some(record)) => record,
            _ => return false,
        };
        matches!(record.state, TaskState::Pending | TaskState::Busy)
            && record.request_id.is_none()
            && record.expires_at > now_ms()
            && !self.waits_in_this_run(&task)
    }

    /// Tells an agent what the device's record says of its task: the
    /// answer to a question or a retry. `unknown` (not retained) when there
    /// is none; `expired` for one left pending by an earlier run past its time.
    fn tell_record(&mut self, agent: &str, task_id: &str) {
        let task = AgentRef {
            agent_id: agent.to_owned(),
            task_id: task_id.to_owned(),
        };
        let record = match self.store.task_record(agent, task_id) {
            Ok(record) => record,
            Err(error) => return self.fail(format!("cannot read a task's record: {error}")),
        };
        let Some(record) = record else {
            let status = TaskStatus {
                task_id: task.task_id,
                agent_id: task.agent_id,
                device_id: self.device_id.clone(),
                status: TaskState::Unknown,
                reason: Some("the device has no record of this task".into()),
                request_id: None,
                terms: None,
                at: now_ms(),
            };
            return self.publish_task_status(&status, false);
        };
        if record.state == TaskState::Pending
            && record.expires_at <= now_ms()
            && !self.waits_in_this_run(&task)
        {
            let why = "it expired before the user could be asked";
            return self.tell_agent(&task, TaskState::Expired, Some(why.into()), None);
        }
        let status = TaskStatus {
            task_id: task.task_id,
            agent_id: task.agent_id,
            device_id: self.device_id.clone(),
            status: record.state,
            reason: record.reason,
            request_id: record.request_id,
            terms: record.terms,
            at: record.at.unwrap_or_else(now_ms),
        };
        self.publish_task_status(&status, true);
    }

    /// Whether `task` waits in this run or is being asked about.
    fn waits_in_this_run(&self, task: &AgentRef) -> bool {
        self.tasks_waiting
            .iter()
            .any(|w| task_ref(&w.task) == *task)
            || self.dialog.pending_task().is_some_and(|o| o.task == *task)
    }

    /// While no question waits, the next task goes to the user: checked
    /// again first (its time, the agent stopped or spent meanwhile).
    async fn offer_waiting_tasks(&mut self) {
        while !self.dialog.is_waiting() {
            let Some(waiting) = self.tasks_waiting.pop_front() else {
                return;
            };
            let task = &waiting.task;
            let now = now_ms();
            if task.expires_at <= now {
                let why = "it expired before the user could be asked";
                self.tell_agent(&task_ref(task), TaskState::Expired, Some(why.into()), None);
                continue;
            }
            let agent = match self.store.agent(&waiting.agent.name) {
                Ok(Some(agent)) => agent,
                Ok(None) => {
                    let why = "the agent was removed";
                    self.tell_agent(&task_ref(task), TaskState::Refused, Some(why.into()), None);
                    continue;
                }
                Err(error) => {
                    self.fail(format!("cannot read the agents: {error}"));
                    continue;
                }
            };
            let order = task_order(&agent, task, &waiting.message, self.phrasebook.language());
            if agent.revoked_at.is_some() {
                self.refused(
                    &order,
                    voicepay_core::policy::OutsideMandate::Revoked.to_string(),
                );
                continue;
            }
            // Tokens come only from a provider the profile's table knows
            // (spelled as the agent typed it: nothing is guessed).
            let providers = &self.config.profile.known_providers;
            if task.kind == TaskKind::TokenTopUp
                && !providers
                    .iter()
                    .any(|p| p.eq_ignore_ascii_case(&task.payee))
            {
                let why = format!("{} is not a token provider this device knows", task.payee);
                self.refused(&order, why);
                continue;
            }
            // At the profile's price, so what the user hears ("1000000 Claude
            // tokens for 90 yuan") is what the provider sells for the money.
            if let (TaskKind::TokenTopUp, Some(tokens)) = (task.kind, task.tokens)
                && let Some(price) = self.config.profile.token_price(tokens, &task.payee)
                && price != task.amount
            {
                let why = format!(
                    "{tokens} {} tokens cost {price} at this device's prices, not {}",
                    task.payee, task.amount
                );
                self.refused(&order, why);
                continue;
            }
            let today = self.config.profile.payments.calendar.day_of(now);
            let inside = self
                .store
                .agent_spent(&agent.name, today)
                .map_err(|e| e.to_string())
                .and_then(|(today, total)| {
                    agent
                        .mandate
                        .check(task.amount, &task.payee, today, total, now)
                        .map_err(|e| e.to_string())
                });
            if let Err(reason) = inside {
                // Outside what the user allowed it: refused, the user undisturbed.
                tracing::info!(agent = %agent.name, task_id = %task.task_id, %reason, "agent task refused");
                self.refused(&order, reason);
                continue;
            }
            // A payee the user named: in the payee book, or for tokens a
            // provider of the profile's table (checked above).
            let in_book = task.kind == TaskKind::TokenTopUp
                || self
                    .payees
                    .read()
                    .names()
                    .iter()
                    .any(|name| name.eq_ignore_ascii_case(&task.payee));
            let unasked = agent.mandate.pays_unasked(task.amount, in_book);
            let actions = {
                let assessor = Assessor::of(&self.store, &self.link, &self.config.profile);
                self.dialog
                    .offer_task(order, unasked, Instant::now(), &assessor)
            };
            if self.dialog.is_waiting() {
                self.tell_agent(&task_ref(task), TaskState::Pending, None, None);
            }
            self.act(actions).await;
            self.dialog.question_spoken(Instant::now());
        }
    }

    /// "Stop the agents": every agent stopped in the store (so nothing of
    /// theirs is committed after this, also offline and after a restart),
    /// and every task waiting for its turn dropped.
    fn revoke_agents(&mut self) {
        let stopped = match self.store.revoke_agents(None, now_ms()) {
            Ok(stopped) => stopped,
            Err(error) => {
                let error = error.to_string();
                self.fail(format!("cannot stop the agents: {error}"));
                return self.say(&Speech::AgentsNotStopped { error });
            }
        };
        for waiting in std::mem::take(&mut self.tasks_waiting) {
            let order = task_order(
                &waiting.agent,
                &waiting.task,
                &waiting.message,
                self.phrasebook.language(),
            );
            self.dropped(&order, DropReason::Revoked);
        }
        let names = stopped
            .iter()
            .map(|name| voicepay_core::agent::spoken_name(name))
            .collect();
        self.say(&Speech::AgentsStopped { names });
    }

    /// Tells an agent where its task stands: signed by the device, retained
    /// on the task's topic, and remembered in the store.
    fn tell_agent(
        &mut self,
        task: &AgentRef,
        state: TaskState,
        reason: Option<String>,
        request_id: Option<Uuid>,
    ) {
        let terms = self
            .store
            .task_record(&task.agent_id, &task.task_id)
            .ok()
            .flatten()
            .and_then(|r| r.terms);
        let status = TaskStatus {
            task_id: task.task_id.clone(),
            agent_id: task.agent_id.clone(),
            device_id: self.device_id.clone(),
            status: state,
            reason,
            request_id,
            terms,
            at: now_ms(),
        };
        if let Err(error) = self.store.record_task_status(&status) {
            tracing::warn!(%error, task_id = %task.task_id, "cannot record the task's state");
        }
        self.publish_task_status(&status, true);
    }

    /// Signs and publishes a task's status on its topic.
    fn publish_task_status(&mut self, status: &TaskStatus, retain: bool) {
        match self.outbox.seal(status) {
            Ok(envelope) => {
                tracing::info!(agent = %status.agent_id, task_id = %status.task_id, state = ?status.status, "told the agent");
                self.link
                    .publish_task_status(&status.task_id, envelope, retain);
            }
            Err(error) => tracing::error!(%error, "cannot sign a task status"),
        }
    }

    /// Verifies and applies one answer from the gateway.
    fn settle(&mut self, message: &[u8]) {
        let settled = match self.outbox.settle(message) {
            Ok(settled) => settled,
            Err(error @ SettleError::Unbound(_)) => {
                if let Some(held_back) = self.rejections.allow() {
                    tracing::warn!(%error, held_back, "rejected an answer");
                }
                return;
            }
            Err(SettleError::Rejected(error)) => {
                if let Some(held_back) = self.rejections.allow() {
                    tracing::warn!(%error, held_back, "rejected an answer");
                }
                return;
            }
            // A repeated answer, or one for a payment that is not ours.
            Err(SettleError::NotWaiting(request_id)) => {
                return tracing::debug!(%request_id, "answer for no waiting payment");
            }
            Err(error @ SettleError::Store(_)) => return self.fail(error.to_string()),
            Err(SettleError::NotRecorded {
                response,
                payment,
                error,
            }) => {
                let error = error.to_string();
                tracing::error!(%error, request_id = %response.request_id, "answer not recorded");
                return self.say(&Speech::AnswerNotRecorded {
                    approved: response.status == ResponseStatus::Approved,
                    amount: payment.amount,
                    payee: payment.payee,
                    error,
                });
            }
        };
        let response = settled.response;
        self.resend.answered();
        self.count_waiting();
        if let Some(task) = settled.entry.event.agent().cloned() {
            let (state, reason) = match response.status {
                ResponseStatus::Approved => (TaskState::Paid, None),
                ResponseStatus::Declined => (TaskState::Declined, response.reason.clone()),
            };
            self.tell_agent(&task, state, reason, Some(response.request_id));
        }
        self.unanswered.remove(&response.request_id);
        self.emit(Event::Answer {
            request_id: response.request_id,
            status: response.status,
            reason: response.reason.clone(),
            envelope: serde_json::from_slice(message).unwrap_or_default(),
        });
        let speech = match settled.entry.event {
            HistoryEvent::Paid { amount, payee, .. } => Some(Speech::Paid { amount, payee }),
            HistoryEvent::Declined {
                amount,
                payee,
                reason,
                ..
            } => Some(Speech::DeclinedByBank {
                amount,
                payee,
                reason,
            }),
            _ => None,
        };
        if let Some(speech) = speech {
            self.say(&speech);
        }
        self.end_offline_spell();
    }

    fn link_changed(&mut self) {
        let online = self.link_state().online();
        // The offline age counts from the last contact with the gateway.
        if self.was_online
            && !online
            && let Err(error) = self.store.mark_link_down(now_ms())
        {
            tracing::warn!(%error, "cannot record when the link went down");
        }
        self.was_online = online;
        self.end_offline_spell();
    }

    /// Back online with nothing queued: a new offline spell starts fresh.
    fn end_offline_spell(&mut self) {
        if self.link_state().online()
            && self.waiting == 0
            && let Err(error) = self.store.reset_offline_counters()
        {
            tracing::warn!(%error, "cannot reset the offline counters");
        }
    }

    fn set_limit(&mut self, scope: LimitScope, amount: Money) {
        let result = self.store.limits().and_then(|mut limits| {
            match scope {
                LimitScope::Auto => limits.auto_pay = amount,
                LimitScope::Daily => limits.daily = Some(amount),
            }
            self.store.set_limits(&limits)
        });
        if let Err(error) = result {
            self.fail(format!("cannot change the limit: {error}"));
        }
    }

    fn report_spending(&mut self, period: Period) {
        let today = self.config.profile.payments.calendar.day_of(now_ms());
        let days = match period {
            Period::Today => 0,
            Period::Week => 6,
            Period::Month => 29,
        };
        let from = today.saturating_sub(days);
        let spent = self
            .store
            .spending(from, today)
            .and_then(|totals| Ok((totals, self.store.agents_spending(from, today)?)));
        let speech = match spent {
            Ok((totals, by_agents)) => Speech::Spent {
                period,
                totals,
                by_agents,
            },
            Err(error) => Speech::HistoryUnreadable {
                error: error.to_string(),
            },
        };
        self.say(&speech);
    }

    fn remember(&mut self, event: HistoryEvent) {
        if let Err(error) = self.store.record(event) {
            self.fail(format!("cannot write the history: {error}"));
        }
    }

    fn fail(&mut self, message: String) {
        tracing::error!(%message);
        self.emit(Event::Error { message });
    }

    fn say(&mut self, speech: &Speech) {
        let text = self.phrasebook.say(speech);
        // The user hears the code; the events topic hears it masked.
        let public = speech.has_code().then(|| {
            let masked = self.phrasebook.say(&speech.without_code());
            serde_json::json!({"step": "say", "text": masked})
        });
        self.emit_as(Event::Say { text }, public);
    }

    fn emit(&mut self, event: Event) {
        self.emit_as(event, None);
    }

    /// `event` to the feedback; to the events topic as itself or, when
    /// given, as `public` (what may cross the broker in its place).
    fn emit_as(&mut self, event: Event, public: Option<serde_json::Value>) {
        self.feedback.event(&event);
        if !self.config.profile.feedback.events {
            return;
        }
        let json = match public {
            Some(public) => serde_json::to_vec(&public),
            None => serde_json::to_vec(&event),
        };
        if let Ok(json) = json {
            self.link.publish_event(json);
        }
    }
}

fn task_ref(task: &AgentTask) -> AgentRef {
    AgentRef {
        agent_id: task.agent_id.clone(),
        task_id: task.task_id.clone(),
    }
}

/// The payment an agent's task asks for. Its evidence is the task itself:
/// the description as the transcript, the hash of the agent's signed bytes
/// as the "audio".
fn task_order(
    agent: &Agent,
    task: &AgentTask,
    message: &[u8],
    language: crate::language::Language,
) -> PaymentOrder {
    let purchase = match (task.kind, task.tokens) {
        (TaskKind::TokenTopUp, Some(tokens)) => Purchase::TopUp {
            tokens,
            provider: task.payee.clone(),
        },
        _ => Purchase::Pay {
            payee: task.payee.clone(),
        },
    };
    PaymentOrder {
        amount: task.amount,
        purchase,
        evidence: Evidence::new(&task.description, message, 1.0, language.code()),
        agent: Some(AgentOrder {
            task: task_ref(task),
            description: task.description.clone(),
            spoken_name: agent.spoken_name(),
            period: task.period,
        }),
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The daemon's answers to the dialog's questions about money.
struct Assessor<'a> {
    store: &'a Store,
    link: LinkState,
    /// What the vehicle last said (a car's driving mode).
    driving: Option<bool>,
    floor: &'a OfflineFloor,
    profile: &'a DeviceProfile,
}

impl<'a> Assessor<'a> {
    /// The money as it stands now: the store, the link and the vehicle.
    fn of(store: &'a Store, link: &DeviceLink, profile: &'a DeviceProfile) -> Assessor<'a> {
        Assessor {
            store,
            link: *link.state.borrow(),
            driving: *link.driving.borrow(),
            floor: &profile.offline,
            profile,
        }
    }
}

impl Assess for Assessor<'_> {
    fn decide(&self, amount: Money) -> Decision {
        let now = now_ms();
        let state = self.store.limits().and_then(|limits| {
            let today = self.profile.payments.calendar.day_of(now);
            let spent = self.store.spent_on_day(today, amount.currency)?;
            let counters = self.store.offline_counters()?;
            Ok((limits, spent, counters))
        });
        let Ok((limits, spent, counters)) = state else {
            return Decision::Decline(Refusal::RecordsUnreadable);
        };
        let link = if self.link.online() {
            Link::Online
        } else {
            Link::Offline {
                floor: self.floor,
                counters: &counters,
                now_ms: now,
            }
        };
        policy::decide(amount, &limits, spent, link)
    }

    fn limit(&self, scope: LimitScope) -> Money {
        let zero = Money::zero(self.profile.default_currency);
        match (self.store.limits(), scope) {
            (Ok(l), LimitScope::Auto) => l.auto_pay,
            (Ok(l), LimitScope::Daily) => l.daily.unwrap_or(zero),
            // Unknown current limit: treat every change as a raise, so it is confirmed.
            (Err(_), _) => zero,
        }
    }

    fn price(&self, tokens: u64, provider: &str) -> Option<Money> {
        self.profile.token_price(tokens, provider)
    }

    fn motion(&self, purchase: &crate::order::Purchase) -> policy::Motion {
        self.profile.motion(self.driving, purchase)
    }
}

/// The closed-domain language for what the dialog waits for.
fn listening_for(expecting: Option<&crate::dialog::Expecting>) -> Listening {
    use crate::dialog::Expecting;
    match expecting {
        None => Listening::Command,
        Some(Expecting::Confirmation) => Listening::Confirmation,
        Some(Expecting::Code) => Listening::Code,
        Some(Expecting::TaskDecision) => Listening::TaskDecision,
        Some(Expecting::Amount { .. }) => Listening::Amount,
        Some(Expecting::Payee { .. }) => Listening::Payee,
    }
}

#[cfg(test)]
mod resend_tests {
    use super::*;

    #[test]
    fn the_outbox_waits_double_from_5_s_to_2_min_each_within_half_either_way() {
        let now = Instant::now();
        let mut resend = Resend::default();
        let mut expected = RESEND_FIRST;
        for _ in 0..10 {
            resend.arm(true, now);
            let due = resend.due.expect("armed while payments wait online");
            let wait = due - now;
            assert!(
                wait >= expected / 2 && wait <= expected * 3 / 2,
                "{wait:?} for {expected:?}"
            );
            resend.arm(true, now + Duration::from_secs(1));
            assert_eq!(resend.due, Some(due), "arming again keeps the wait");
            resend.fired();
            expected = (expected * 2).min(RESEND_MAX);
        }
        // An answer, or nothing waiting, starts again from the first wait.
        resend.answered();
        resend.arm(true, now);
        assert!(
            resend
                .due
                .is_some_and(|due| due - now <= RESEND_FIRST * 3 / 2)
        );
        resend.arm(false, now);
        assert_eq!((resend.due, resend.attempt), (None, 0));
    }
}
