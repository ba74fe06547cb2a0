//! The device daemon: one loop over what it hears, the gateway's answers, the dialog's deadline, agent tasks and shutdown.
//!
//! The stages are wired here and nowhere else: a [`Source`] of heard
//! utterances (an audio source feeding the transcriber stage, or typed text),
//! the [`Dialog`] with the [`voicepay_core::policy`] behind it, the agent
//! [`Desk`] that lets agents' tasks in, the [`Payments`] stage that commits
//! to the outbox and settles answers, the MQTT [`DeviceLink`], and the
//! [`Outlet`] through which the user and the device's apps hear back. The stages decide and return what to do (the
//! dialog's [`Action`]s, the others' [`Effect`]s); the daemon carries it out.
//! A payment is durable in the outbox before it is published and leaves it
//! only when the gateway's signed answer arrives; waiting for that answer
//! never holds up hearing the next utterance.

use std::sync::Arc;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::desk::{Desk, Rules};
use crate::dialog::{Action, Dialog, DialogSettings, random_code};
use crate::effect::{Effect, Refused};
use crate::feedback::{Feedback, Status};
use crate::identity::DeviceIdentity;
use crate::order::PaymentOrder;
use crate::outbox::Outbox;
use crate::outlet::Outlet;
use crate::payees::SharedPayees;
use crate::payments::{Assessor, Payments};
use crate::phrasebook::{Phrasebook, Speech};
use crate::recognizer::{Heard, Source};
use crate::store::{Store, StoreConfig};
use crate::wake::{Attention, Heed};
use voicepay_core::clock::now_ms;
use voicepay_core::protocol::{TaskState, TaskStatus};
use voicepay_core::transport::{DeviceLink, LinkState};

mod config;

pub use config::{DaemonConfig, DaemonError};

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
    let serving = crate::control::Serving {
        store: daemon.store.clone(),
        device_id: daemon.device_id.clone(),
        started,
        live,
        profile_book: daemon.profile_book.clone(),
        book: crate::control::DeviceBook {
            profile: daemon.profile_book.read().clone(),
            live: Some(daemon.payees.clone()),
            calendar: daemon.config.profile.payments.calendar.clone(),
            gateway: Some(daemon.gateway),
            phrasebook: Phrasebook::new(daemon.config.profile.language),
        },
    };
    let control_stop = shutdown.child_token();
    let control = tokio::spawn(voicepay_core::control::serve(
        daemon.config.data_dir.clone(),
        Arc::new(move |request: &voicepay_core::control::Request| serving.answer(request)),
        control_stop.clone(),
    ));
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
    dialog: Dialog,
    desk: Desk,
    payments: Payments,
    /// The payee book the dialog resolves names in; the control socket updates it.
    payees: SharedPayees,
    /// The profile's part of it, which a reload replaces.
    profile_book: SharedPayees,
    notifier: crate::service::Notifier,
    hangups: crate::service::Hangups,
    link: DeviceLink,
    /// Where the user and the device's apps hear what happens.
    outlet: Outlet,
    /// Utterances handled (counted apart from `status`, so that a new one
    /// is a change to publish).
    heard: u64,
    /// Whether an utterance not addressed is taken all the same.
    attention: Attention,
    /// The payment-code lock as kept in the store.
    code_lock: crate::store::CodeLock,
    /// What the user said may cross the broker (`mqtt.transcripts`, read
    /// at start like the rest of `[mqtt]`).
    transcripts: bool,
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
        let left = code_lock.left(now_ms());
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
            move || crate::payments::sendable(&outbox_store),
        );
        // Signatures are checked before a task is queued for the loop.
        let (_closed, unused) = tokio::sync::mpsc::channel(1);
        let raw_tasks = std::mem::replace(&mut link.tasks, unused);
        link.tasks = crate::desk::verify_ahead(store.clone(), raw_tasks);
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
        let phrasebook = Phrasebook::new(profile.language);
        let events = profile.feedback.events.then(|| link.events());
        let device_id = identity.device_id;
        Ok(Daemon {
            desk: Desk::new(store.clone(), device_id.clone(), profile.language),
            payments: Payments::new(store.clone(), outbox, device_id.clone(), phrasebook),
            outlet: Outlet::new(feedback, phrasebook, events),
            device_id,
            gateway: identity.gateway,
            config,
            store,
            dialog,
            payees,
            profile_book,
            notifier: crate::service::Notifier::from_env(),
            hangups,
            link,
            heard: 0,
            attention: Attention::default(),
            code_lock,
            transcripts,
        })
    }

    fn link_state(&self) -> LinkState {
        *self.link.state.borrow()
    }

    fn online(&self) -> bool {
        self.link_state().online()
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
            self.offer_waiting_tasks();
            self.publish_status();
            let resend = self.payments.resend_due(self.online(), Instant::now());
            self.config.listening.set(self.dialog.listening());
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
                _ = sleep_until(resend), if resend.is_some() => Step::Resend,
                _ = self.hangups.next() => Step::Reload,
                // An utterance being transcribed is an answer already given.
                _ = sleep_until(deadline), if deadline.is_some() && !source.in_flight() => Step::Deadline,
            };
            match step {
                Step::Shutdown => return Ending::Shutdown,
                Step::InputEnded => return Ending::InputEnded,
                Step::Heard(heard) => self.hear(*heard),
                Step::Answer(message) => {
                    let effects = self.payments.settle(&message, self.online());
                    self.carry(effects);
                }
                Step::AnswersClosed => answers_open = false,
                Step::Task(message) => {
                    let asking = self.dialog.pending_task().map(|o| o.task.clone());
                    let effects = self.desk.take(message, asking.as_ref(), now_ms());
                    self.carry(effects);
                }
                Step::TasksClosed => tasks_open = false,
                Step::PushToTalk(held) => {
                    held_until = held.then(|| Instant::now() + self.config.profile.wake.ptt_hold());
                    self.config.gate.hold(held);
                }
                Step::PushToTalkClosed => push_to_talk_open = false,
                Step::LinkChanged => self.payments.link_changed(self.online()),
                Step::LinkClosed => link_open = false,
                Step::Watchdog => self.notifier.watchdog(),
                Step::Reload => self.reload(),
                Step::Resend => {
                    let effects = self.payments.resend(self.online());
                    self.carry(effects);
                }
                Step::Deadline if source.in_flight() => {}
                Step::Deadline
                    if (self.dialog)
                        .still_asking(self.config.gate.last_voice(), Instant::now()) => {}
                Step::Deadline => {
                    let actions = self.dialog.expire(Instant::now());
                    self.act(actions);
                }
            }
        }
    }

    /// A question still open is dropped; after the input ended, the answers
    /// still due are awaited; then the device says `offline` and disconnects.
    async fn finish(&mut self, ending: Ending, shutdown: &CancellationToken) {
        let actions = self.dialog.end_of_input();
        self.act(actions);
        if ending == Ending::InputEnded {
            self.drain(shutdown).await;
        }
        if self.payments.unanswered() > 0 {
            self.outlet.say(&Speech::NoAnswerYet);
        }
        self.publish_status();
        self.link
            .close(&self.config.profile.mqtt.prefix, &self.device_id)
            .await;
    }

    async fn drain(&mut self, shutdown: &CancellationToken) {
        let deadline = Instant::now() + self.config.drain_wait;
        let mut link_open = true;
        while self.payments.waiting() > 0 {
            self.publish_status();
            let resend = self.payments.resend_due(self.online(), Instant::now());
            let effects = tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep_until(deadline) => return,
                _ = self.notifier.watchdog_due() => {
                    self.notifier.watchdog();
                    Vec::new()
                }
                _ = sleep_until(resend), if resend.is_some() => self.payments.resend(self.online()),
                answer = self.link.answers.recv() => match answer {
                    Some(message) => self.payments.settle(&message, self.online()),
                    None => return,
                },
                // While it drains the broker may go or come back: the status
                // and the offline spell must follow, as they do in `serve`.
                changed = self.link.state.changed(), if link_open => {
                    match changed {
                        Ok(()) => self.payments.link_changed(self.online()),
                        Err(_) => link_open = false,
                    }
                    Vec::new()
                }
            };
            self.carry(effects);
        }
    }

    /// SIGHUP: the profile file read again; what can change live is applied
    /// (see [`crate::service::reread`]), a bad file changes nothing.
    fn reload(&mut self) {
        let Some(path) = self.config.profile_file.clone() else {
            return;
        };
        self.notifier.reloading();
        let reloaded = crate::service::reload(&path, &self.config.profile, &self.store);
        if let Some((reloaded, profile_book, whole)) = reloaded {
            self.profile_book.replace(profile_book);
            self.payees.replace(whole);
            let payments = &reloaded.profile.payments;
            self.dialog.reconfigure(
                payments.confirm_window,
                payments.code_lockout,
                reloaded.profile.parse_context(),
            );
            self.config.profile = reloaded.profile;
        }
        self.notifier.ready();
    }

    fn publish_status(&mut self) {
        self.outlet.status(Status {
            link: self.link_state(),
            outbox: self.payments.waiting(),
            heard: self.heard,
            asking: self.dialog.is_waiting(),
        });
    }

    /// One utterance: understood, answered, acted on.
    fn hear(&mut self, heard: Heard) {
        self.heard += 1;
        let understanding = match heard.outcome {
            Ok(understanding) => understanding,
            Err(message) => {
                self.outlet.fail(message);
                return self.outlet.say(&Speech::NotHeard);
            }
        };
        let (follow, asking) = (self.config.profile.wake.follow(), self.dialog.is_waiting());
        match (self.attention).heed(&understanding.addressed, heard.arrived, follow, asking) {
            Heed::Take => {}
            Heed::Listen => return self.outlet.say(&Speech::Listening),
            Heed::Ignore => {
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
        self.outlet.heard(
            heard.name,
            understanding.transcript.clone(),
            understanding.intent.clone(),
            !self.transcripts || answering_code,
        );
        let assessor = Assessor::now(&self.store, &self.link, &self.config.profile);
        let actions = self
            .dialog
            .hear_said(&understanding.said(), heard.arrived, &assessor);
        self.keep_code_lock();
        self.act(actions);
        self.dialog.question_spoken(Instant::now());
    }

    /// Keeps the dialog's wrong codes and lockout in the store when they
    /// changed, so a restart does not lift them.
    fn keep_code_lock(&mut self) {
        let (wrong_codes, until) = self.dialog.code_lock();
        let lock = crate::store::CodeLock::at(wrong_codes, until, Instant::now(), now_ms());
        if !lock.differs(&self.code_lock) {
            return;
        }
        match self.store.set_code_lock(&lock) {
            Ok(()) => self.code_lock = lock,
            Err(error) => (self.outlet).fail(format!("cannot keep the payment-code lock: {error}")),
        }
    }

    /// Carries out what the dialog decided.
    fn act(&mut self, actions: Vec<Action>) {
        for action in actions {
            let effects = match action {
                Action::Say(speech) => vec![Effect::Say(speech)],
                Action::Pay { order, approval } => {
                    let (online, floor) = (self.online(), &self.config.profile.offline);
                    self.payments.pay(order, approval, online, floor)
                }
                Action::Declined { order, reason } => vec![Effect::Refuse {
                    order,
                    reason: Refused::Policy(reason),
                }],
                Action::Dropped { order, reason } => vec![Effect::Drop { order, reason }],
                Action::RevokeAgents => self.desk.stop_agents(now_ms()),
                Action::SetLimit { scope, amount } => self.payments.set_limit(scope, amount),
                Action::ReportSpending { period } => {
                    let calendar = &self.config.profile.payments.calendar;
                    vec![Effect::Say(self.payments.spending(period, calendar))]
                }
            };
            self.carry(effects);
        }
    }

    /// Carries out what the desk and the payments stage decided, in order
    /// (a refusal or a drop is theirs to remember first, then carried on).
    fn carry(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Say(speech) => self.outlet.say(&speech),
                Effect::Emit(event) => self.outlet.emit(event),
                Effect::Fail(message) => self.outlet.fail(message),
                Effect::Tell { status, retain } => self.publish_task_status(&status, retain),
                Effect::Send(message) => {
                    if !self.link.publish(message) {
                        // Still in the outbox: the gateway's next appearance sends it.
                        tracing::warn!("not queued for MQTT; the outbox keeps the payment");
                    }
                }
                Effect::Resend(messages) => {
                    // The link takes no more: the rest waits for the next time.
                    let _ = messages.into_iter().all(|m| self.link.publish(m));
                }
                Effect::Offer { order, unasked } => self.offer(order, unasked),
                Effect::Refuse { order, reason } => {
                    let more = self.payments.refused(&order, reason);
                    self.carry(more);
                }
                Effect::Drop { order, reason } => {
                    let more = self.payments.dropped(&order, reason);
                    self.carry(more);
                }
            }
        }
    }

    /// While no question waits, the next task goes to the user (the desk
    /// checks it again first).
    fn offer_waiting_tasks(&mut self) {
        while !self.dialog.is_waiting() {
            let book = self.payees.read();
            let effects = (self.desk).next(Rules::of(&self.config.profile, &book), now_ms());
            drop(book);
            if effects.is_empty() {
                return;
            }
            self.carry(effects);
        }
    }

    /// An agent's task put to the user (or paid unasked, as its mandate allows).
    fn offer(&mut self, order: PaymentOrder, unasked: bool) {
        let task = order.agent_ref();
        let assessor = Assessor::now(&self.store, &self.link, &self.config.profile);
        let actions = self
            .dialog
            .offer_task(order, unasked, Instant::now(), &assessor);
        if self.dialog.is_waiting()
            && let Some(task) = task
        {
            let pending = self
                .desk
                .tell(&task, TaskState::Pending, None, None, now_ms());
            self.carry(vec![pending]);
        }
        self.act(actions);
        self.dialog.question_spoken(Instant::now());
    }

    /// Signs and publishes a task's status on its topic.
    fn publish_task_status(&mut self, status: &TaskStatus, retain: bool) {
        match self.payments.seal(status) {
            Ok(envelope) => {
                tracing::info!(agent = %status.agent_id, task_id = %status.task_id, state = ?status.status, "told the agent");
                self.link
                    .publish_task_status(&status.task_id, envelope, retain);
            }
            Err(error) => tracing::error!(%error, "cannot sign a task status"),
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
