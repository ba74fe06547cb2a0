//! AI agents pay through the user's voice: a real `voicepay run` (the model hearing spoken fixtures), mosquitto and the gateway; tasks signed by agent keys, statuses signed by the device.

#![allow(clippy::unwrap_used)] // a test that cannot set up should fail loudly

mod util;

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use util::*;
use voicepay_core::clock::now_ms;
use voicepay_core::keys::{PublicKey, SigningKey};
use voicepay_core::money::{Currency, Money};
use voicepay_core::protocol::{self, AgentTask, Envelope, TaskKind, TaskState, TaskStatus, topics};

/// A paired device with agents let in, its daemon listening on named
/// pipes, the gateway, and an MQTT client that hears every task status the
/// device signs.
struct Rig {
    installed: Installed,
    statuses: Receiver<TaskStatus>,
    client: rumqttc::Client,
    _alone: std::sync::MutexGuard<'static, ()>,
}

impl std::ops::Deref for Rig {
    type Target = Installed;
    fn deref(&self) -> &Installed {
        &self.installed
    }
}

impl std::ops::DerefMut for Rig {
    fn deref_mut(&mut self) -> &mut Installed {
        &mut self.installed
    }
}

/// One installation at a time: four daemons transcribing at once on two
/// cores were seen to leave one of them without its control socket for a
/// minute (not understood yet; see the closing note).
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Rig {
    /// `pipes` named inputs; the profile's confirmation window is `window_s`;
    /// each of `agents` is the arguments of a `voicepay agents` command.
    fn start(pipes: usize, window_s: u32, agents: &[&[&str]]) -> Rig {
        Rig::start_with(pipes, window_s, agents, true)
    }

    /// As `start`, the gateway left out when `with_gateway` is false (the
    /// device pays offline until [`Installed::start_gateway`]).
    fn start_with(pipes: usize, window_s: u32, agents: &[&[&str]], with_gateway: bool) -> Rig {
        let alone = ONE_AT_A_TIME
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        model();
        let keys = Keys::new();
        keys.set_limits(&["--auto", "0", "--daily", "none", "--code", "none"]);
        for args in agents {
            let mut all = vec!["agents"];
            all.extend_from_slice(args);
            keys.on_device(&all);
        }
        let installed = Installed::start(keys, pipes, window_s, with_gateway);
        let device_key = device_key(&installed.keys.dev());
        let (client, statuses) =
            status_listener(installed.broker.port, &installed.device_id, device_key);
        Rig {
            installed,
            statuses,
            client,
            _alone: alone,
        }
    }

    /// Publishes a task as its agent would, QoS 1.
    fn send(&self, message: Vec<u8>) {
        let topic = topics::tasks(protocol::DEFAULT_PREFIX, &self.device_id);
        self.client
            .publish(topic, rumqttc::QoS::AtLeastOnce, false, message)
            .unwrap();
    }

    /// Waits for the device to tell `task_id`'s agent `state`; every
    /// status heard on the way is returned, in order.
    fn wait_status(&self, task_id: &str, state: TaskState) -> Vec<TaskStatus> {
        let started = voicepay_core::clock::Stopwatch::start();
        let mut heard = Vec::new();
        while started.elapsed() < ANSWER_LIMIT {
            if let Ok(status) = self.statuses.recv_timeout(Duration::from_millis(200)) {
                let done = status.task_id == task_id && status.status == state;
                heard.push(status);
                if done {
                    return heard;
                }
            }
        }
        panic!("no {state:?} for {task_id} within {ANSWER_LIMIT:?}; heard {heard:#?}");
    }

    /// Stops the daemon and the gateway; the gateway's ledger lines.
    fn stop(self) -> (Keys, Vec<serde_json::Value>) {
        self.installed.stop()
    }
}

/// Subscribes to every task status of the device and hands over those the
/// device's key signed (anything else on those topics fails the test).
fn status_listener(
    port: u16,
    device_id: &str,
    device_key: PublicKey,
) -> (rumqttc::Client, Receiver<TaskStatus>) {
    let options = rumqttc::MqttOptions::new("agent-side", "127.0.0.1", port);
    let (client, mut connection) = rumqttc::Client::new(options, 64);
    let filter = format!(
        "{}/devices/{device_id}/tasks/+/status",
        protocol::DEFAULT_PREFIX
    );
    client.subscribe(filter, rumqttc::QoS::AtLeastOnce).unwrap();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for event in connection.iter() {
            let Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) = event else {
                continue;
            };
            let opened = protocol::open(&p.payload, |kid| {
                (kid == device_key.key_id()).then_some(device_key)
            })
            .expect("a task status signed by the device");
            let status: TaskStatus = opened.parse().unwrap();
            assert!(
                p.topic
                    .ends_with(&format!("/tasks/{}/status", status.task_id))
            );
            if tx.send(status).is_err() {
                break;
            }
        }
    });
    (client, rx)
}

/// A task of `agent` to `device_id` for `amount` (minor units of yuan) to
/// `payee`, signed by `key`.
fn task_to(
    device_id: &str,
    key: &SigningKey,
    agent: &str,
    task_id: &str,
    amount: i64,
    payee: &str,
) -> Vec<u8> {
    task_of(
        key,
        AgentTask {
            task_id: task_id.into(),
            agent_id: agent.into(),
            device_id: device_id.into(),
            description: format!("task {task_id}"),
            payee: payee.into(),
            amount: Money::new(amount, Currency::CNY),
            kind: TaskKind::Purchase,
            tokens: None,
            period: None,
            created_at: now_ms(),
            expires_at: now_ms() + 120_000,
        },
    )
}

fn task_of(key: &SigningKey, task: AgentTask) -> Vec<u8> {
    Envelope::seal_json(&task, key).unwrap().0.to_bytes()
}

fn states(statuses: &[TaskStatus], task_id: &str) -> Vec<TaskState> {
    statuses
        .iter()
        .filter(|s| s.task_id == task_id)
        .map(|s| s.status)
        .collect()
}

#[test]
fn agent_tasks_are_approved_or_rejected_by_voice_paid_unasked_under_their_amount_and_refused_past_their_budget()
 {
    let shopper = SigningKey::generate().unwrap();
    let shopper_key = shopper.public_key().to_base64url();
    // 30 s to answer: nothing here waits a window out, and on a starved
    // machine an 8 s window closed before the spoken approval was heard.
    let mut rig = Rig::start(
        4,
        30,
        &[
            &[
                "keygen",
                "claude-code",
                "--daily-budget",
                "100.00",
                "--auto-under",
                "5.00",
                // Anthropic is in no payee book: said so explicitly.
                "--auto-pay-any-payee",
            ],
            &[
                "add",
                "shopper",
                "--public-key",
                &shopper_key,
                "--per-task",
                "50.00",
            ],
        ],
    );
    let coder = SigningKey::load_file(&rig.keys.device_dir.join("agents/claude-code.key")).unwrap();

    // Read to the user, approved by voice, paid by the gateway.
    let mut top_up = AgentTask {
        task_id: "t-approve".into(),
        agent_id: "claude-code".into(),
        device_id: rig.device_id.clone(),
        description: "a third of a million tokens".into(),
        payee: "Claude".into(),
        // The profile's price: 90.00 a million.
        amount: Money::new(3_000, Currency::CNY),
        kind: TaskKind::TokenTopUp,
        tokens: Some(333_333),
        period: None,
        created_at: now_ms(),
        expires_at: now_ms() + 120_000,
    };
    rig.send(task_of(&coder, top_up.clone()));
    let asked = rig.wait_said("asks to");
    assert!(
        asked.contains("claude code asks to buy 333333 Claude tokens for 30 yuan"),
        "{asked}"
    );
    rig.feed(0, "approve_task");
    let heard = rig.wait_status("t-approve", TaskState::Paid);
    assert_eq!(
        states(&heard, "t-approve"),
        [TaskState::Pending, TaskState::Approved, TaskState::Paid]
    );
    let paid = heard.last().unwrap();
    assert!(paid.request_id.is_some() && paid.device_id == rig.device_id);

    // Tokens only from a provider the device's table knows.
    let mut unknown_provider = top_up.clone();
    unknown_provider.task_id = "t-provider".into();
    unknown_provider.payee = "Anthropic".into();
    rig.send(task_of(&coder, unknown_provider));
    let heard = rig.wait_status("t-provider", TaskState::Refused);
    assert_eq!(
        heard.last().unwrap().reason.as_deref(),
        Some("Anthropic is not a token provider this device knows")
    );

    // At the profile's price only: a million Claude tokens offered at 30
    // yuan against the table's 90 is refused, and nobody is asked.
    let mut cheap = top_up.clone();
    cheap.task_id = "t-price".into();
    cheap.tokens = Some(1_000_000);
    rig.send(task_of(&coder, cheap));
    let heard = rig.wait_status("t-price", TaskState::Refused);
    assert_eq!(
        heard.last().unwrap().reason.as_deref(),
        Some("1000000 Claude tokens cost 90.00 CNY at this device's prices, not 30.00 CNY")
    );

    // Said no to.
    rig.send(task_to(
        &rig.device_id,
        &coder,
        "claude-code",
        "t-reject",
        2_000,
        "Anthropic",
    ));
    rig.wait_said("t-reject");
    rig.feed(1, "reject_task");
    let heard = rig.wait_status("t-reject", TaskState::Rejected);
    assert_eq!(
        states(&heard, "t-reject"),
        [TaskState::Pending, TaskState::Rejected]
    );
    assert_ne!(
        heard.last().unwrap().reason.as_deref(),
        Some("no answer in time"),
        "the user rejected it, not the window"
    );

    // Under its auto amount: paid without a question, and the user is told.
    rig.send(task_to(
        &rig.device_id,
        &coder,
        "claude-code",
        "t-auto",
        400,
        "Anthropic",
    ));
    let heard = rig.wait_status("t-auto", TaskState::Paid);
    assert_eq!(
        states(&heard, "t-auto"),
        [TaskState::Approved, TaskState::Paid]
    );
    rig.wait_said("within what you let claude code pay alone");

    // 34 of its 100 spent today: 80 more is refused, and nobody is asked.
    rig.send(task_to(
        &rig.device_id,
        &coder,
        "claude-code",
        "t-over",
        8_000,
        "Anthropic",
    ));
    let heard = rig.wait_status("t-over", TaskState::Refused);
    let refused = heard.last().unwrap();
    assert!(
        refused
            .reason
            .as_deref()
            .unwrap()
            .contains("66.00 CNY left today"),
        "{refused:?}"
    );

    // Not let in, and not answered: an unknown key, a task signed by one
    // agent in another's name, a broken signature, a replay, an expired
    // one, one for another device.
    let stranger = SigningKey::generate().unwrap();
    rig.send(task_to(
        &rig.device_id,
        &stranger,
        "claude-code",
        "t-stranger",
        100,
        "Anthropic",
    ));
    rig.send(task_to(
        &rig.device_id,
        &shopper,
        "claude-code",
        "t-impostor",
        100,
        "Anthropic",
    ));
    let mut forged: serde_json::Value = serde_json::from_slice(&task_to(
        &rig.device_id,
        &coder,
        "claude-code",
        "t-forged",
        100,
        "Anthropic",
    ))
    .unwrap();
    forged["sig"] = serde_json::Value::String("A".repeat(86));
    rig.send(serde_json::to_vec(&forged).unwrap());
    top_up.created_at = now_ms() - 200_000;
    top_up.expires_at = now_ms() - 100_000;
    top_up.task_id = "t-expired".into();
    rig.send(task_of(&coder, top_up));
    rig.send(b"not even json".to_vec());
    // A payee whose bidi override would make it read as another name.
    rig.send(task_to(
        &rig.device_id,
        &coder,
        "claude-code",
        "t-bidi",
        100,
        "Anthropic\u{202E}nozamA",
    ));
    // A task the agent signed for another device that knows it.
    rig.send(task_to(
        "dev-the-car",
        &coder,
        "claude-code",
        "t-elsewhere",
        100,
        "Anthropic",
    ));
    let replayed = task_to(
        &rig.device_id,
        &coder,
        "claude-code",
        "t-auto-2",
        300,
        "Anthropic",
    );
    rig.send(replayed.clone());
    rig.send(replayed);
    // Over the shopper's per-task amount: refused without asking.
    rig.send(task_to(
        &rig.device_id,
        &shopper,
        "shopper",
        "t-shop-big",
        6_000,
        "Amazon",
    ));
    let heard = rig.wait_status("t-shop-big", TaskState::Refused);
    let mut all = heard;
    // The replay's first copy paid; let its answer come.
    all.extend(rig.wait_status("t-auto-2", TaskState::Paid));
    let told: HashMap<&str, usize> = all.iter().fold(HashMap::new(), |mut m, s| {
        *m.entry(s.task_id.as_str()).or_default() += 1;
        m
    });
    for never in [
        "t-stranger",
        "t-impostor",
        "t-forged",
        "t-expired",
        "t-elsewhere",
        "t-bidi",
    ] {
        assert!(!told.contains_key(never), "{never} was answered: {all:#?}");
    }
    // The replay is answered from the device's record (what its first copy
    // became), and never paid again.
    let mut replay_told = states(&all, "t-auto-2");
    replay_told.dedup();
    assert_eq!(
        replay_told,
        [TaskState::Approved, TaskState::Paid],
        "a replay is not paid twice"
    );

    // Asked what was spent, the device says the agents' share.
    rig.feed(2, "query_today");
    let spent = rig.wait_said("You spent");
    assert!(
        spent.contains("You spent 37 yuan today, 37 yuan of it through agents."),
        "{spent}"
    );

    let (keys, ledger) = rig.stop();
    assert_eq!(ledger.len(), 3, "{ledger:#?}");
    assert!(
        ledger.iter().all(|e| e["kind"] == "agent_task"),
        "{ledger:#?}"
    );
    let history = ok(&[
        "history",
        "--json",
        "--agent",
        "claude-code",
        "--data-dir",
        &keys.dev(),
    ]);
    let entries: Vec<serde_json::Value> = history
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["event"]["kind"].as_str().unwrap(),
                e["event"]["agent"]["task_id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("paid", "t-approve"),
            ("refused", "t-provider"),
            ("refused", "t-price"),
            ("cancelled", "t-reject"),
            ("paid", "t-auto"),
            ("refused", "t-over"),
            ("paid", "t-auto-2"),
        ]
    );
    let shopper_history = ok(&["history", "--agent", "shopper", "--data-dir", &keys.dev()]);
    assert_eq!(shopper_history.lines().count(), 1, "{shopper_history}");
}

#[test]
fn an_unanswered_task_is_rejected_and_stop_all_agents_revokes_pending_tasks_and_budgets_at_once() {
    let coder = SigningKey::generate().unwrap();
    let key = coder.public_key().to_base64url();
    // A window short enough to wait out, long enough for the answer to
    // reach the transcriber on a loaded machine (then it no longer expires):
    // 4 s was missed with the other tests' daemons transcribing beside it,
    // and 8 s with two busy loops beside them.
    let mut rig = Rig::start(
        2,
        20,
        &[&[
            "add",
            "coder",
            "--public-key",
            &key,
            "--daily-budget",
            "500.00",
            "--auto-under",
            "50.00",
        ]],
    );

    // Under its auto amount, to a payee in the payee book: paid unasked.
    rig.send(task_to(
        &rig.device_id,
        &coder,
        "coder",
        "t-book",
        100,
        "Amazon",
    ));
    let heard = rig.wait_status("t-book", TaskState::Paid);
    assert_eq!(
        states(&heard, "t-book"),
        [TaskState::Approved, TaskState::Paid]
    );

    // Under it too, but to a payee nobody named and a mandate that does not
    // say "any payee": asked, and no answer within the window rejects it.
    rig.send(task_to(
        &rig.device_id,
        &coder,
        "coder",
        "t-silence",
        1_000,
        "Anthropic",
    ));
    let heard = rig.wait_status("t-silence", TaskState::Rejected);
    assert_eq!(
        heard.last().unwrap().reason.as_deref(),
        Some("no answer in time")
    );

    // Asked about a task, the user stops the agents instead.
    rig.send(task_to(
        &rig.device_id,
        &coder,
        "coder",
        "t-pending",
        1_000,
        "Anthropic",
    ));
    rig.wait_status("t-pending", TaskState::Pending);
    rig.feed(0, "stop_agents");
    rig.wait_status("t-pending", TaskState::Revoked);
    rig.wait_said("Stopped coder");

    // From now on nothing of it is let near the user or the money.
    rig.send(task_to(
        &rig.device_id,
        &coder,
        "coder",
        "t-after",
        100,
        "Anthropic",
    ));
    let heard = rig.wait_status("t-after", TaskState::Refused);
    assert_eq!(
        heard.last().unwrap().reason.as_deref(),
        Some("the user stopped this agent")
    );
    let listed = ok(&["agents", "list", "--data-dir", &rig.keys.dev()]);
    assert!(listed.contains("stopped"), "{listed}");

    let (_keys, ledger) = rig.stop();
    assert_eq!(ledger.len(), 1, "{ledger:#?}");
    assert_eq!(ledger[0]["payee"], "Amazon", "{ledger:#?}");
}

#[test]
fn a_flood_of_forged_tasks_never_drops_a_genuine_task_silently() {
    let coder = SigningKey::generate().unwrap();
    let key = coder.public_key().to_base64url();
    let rig = Rig::start(
        1,
        8,
        &[&[
            "add",
            "coder",
            "--public-key",
            &key,
            "--auto-under",
            "5.00",
            "--payee",
            "Anthropic",
            "--daily-budget",
            "100.00",
        ]],
    );
    // A forger publishes tasks in the agent's name, signed by another key,
    // as fast as its client goes, at both QoS levels.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let forger = {
        let (stop, device_id, port) = (stop.clone(), rig.device_id.clone(), rig.broker.port);
        std::thread::spawn(move || {
            let options = rumqttc::MqttOptions::new("forger", "127.0.0.1", port);
            let (client, mut connection) = rumqttc::Client::new(options, 1_000);
            std::thread::spawn(move || for _ in connection.iter() {});
            let forged_key = SigningKey::generate().unwrap();
            let topic = topics::tasks(protocol::DEFAULT_PREFIX, &device_id);
            let mut sent = 0_u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let message = task_to(
                    &device_id,
                    &forged_key,
                    "coder",
                    &format!("f-{sent}"),
                    100,
                    "Anthropic",
                );
                let qos = if sent.is_multiple_of(2) {
                    rumqttc::QoS::AtMostOnce
                } else {
                    rumqttc::QoS::AtLeastOnce
                };
                if client.publish(&topic, qos, false, message).is_err() {
                    break;
                }
                sent += 1;
            }
            sent
        })
    };
    // Meanwhile the agent asks 20 times; a task not answered in a few
    // seconds, or answered busy, is sent again as it is (the same id).
    let mut resent = 0;
    for i in 0..20 {
        let task_id = format!("g-{i}");
        let message = task_to(&rig.device_id, &coder, "coder", &task_id, 100, "Anthropic");
        let started = voicepay_core::clock::Stopwatch::start();
        'answered: loop {
            assert!(started.elapsed() < ANSWER_LIMIT, "{task_id} never paid");
            rig.send(message.clone());
            let asked = voicepay_core::clock::Stopwatch::start();
            while asked.elapsed() < Duration::from_secs(5) {
                let Ok(status) = rig.statuses.recv_timeout(Duration::from_millis(200)) else {
                    continue;
                };
                assert!(
                    status.task_id.starts_with("g-"),
                    "a forged task answered: {status:?}"
                );
                if status.task_id != task_id {
                    continue;
                }
                match status.status {
                    TaskState::Paid => break 'answered,
                    TaskState::Approved | TaskState::Pending => {}
                    TaskState::Busy => break,
                    other => panic!("{task_id}: {other:?} {status:?}"),
                }
            }
            resent += 1;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let forged = forger.join().unwrap();
    eprintln!("{forged} forged tasks published; the 20 genuine ones paid, {resent} sent again");
    assert!(forged > 1_000, "the flood was a trickle: {forged}");
    let (_keys, ledger) = rig.stop();
    assert_eq!(ledger.len(), 20, "each genuine task paid once: {ledger:#?}");
}

#[test]
fn agents_add_and_keygen_warn_about_an_auto_pay_limit_with_no_payee_list_and_no_budget() {
    let keys = Keys::new();
    let dev = keys.dev();
    let register = |args: &[&str]| {
        let mut all = vec!["agents"];
        all.extend_from_slice(args);
        all.extend(["--data-dir", &dev]);
        let out = run(voicepay(&all));
        assert!(out.status.success(), "{}", stderr(&out));
        stderr(&out)
    };
    let warned = register(&["keygen", "loose", "--auto-under", "5.00"]);
    assert!(
        warned.contains("warning: agent loose: it may pay up to 5.00 CNY a task without asking"),
        "{warned}"
    );
    let key = SigningKey::generate().unwrap().public_key().to_base64url();
    let warned = register(&[
        "add",
        "wide",
        "--public-key",
        &key,
        "--auto-under",
        "5.00",
        "--auto-pay-any-payee",
    ]);
    assert!(warned.contains("to any payee, with no daily"), "{warned}");
    // A budget or a payee list bounds it: no warning.
    for bounded in [
        &[
            "keygen",
            "daily",
            "--auto-under",
            "5.00",
            "--daily-budget",
            "20.00",
        ][..],
        &[
            "keygen",
            "listed",
            "--auto-under",
            "5.00",
            "--payee",
            "Amazon",
        ][..],
        &["keygen", "asks", "--per-task", "5.00"][..],
    ] {
        let quiet = register(bounded);
        assert!(!quiet.contains("warning"), "{bounded:?}: {quiet}");
    }
    let listed = ok(&["agents", "list", "--data-dir", &dev]);
    assert!(listed.contains("unasked to any payee"), "{listed}");
}

/// `voicepay mcp` as an agent client runs it: JSON-RPC lines on its stdin
/// and stdout.
struct McpClient {
    child: Child,
    stdin: std::process::ChildStdin,
    lines: Receiver<String>,
    next_id: u64,
}

impl McpClient {
    /// `voicepay mcp` for `agent` on the rig's device, initialized.
    fn start(rig: &Rig, agent: &str) -> McpClient {
        McpClient::start_in(rig, agent, &rig.keys.dev(), None)
    }

    /// `voicepay mcp` for `agent`, finding the agent's key and the
    /// device's public identity in `dir`, as the user `uid` when given.
    fn start_in(rig: &Rig, agent: &str, dir: &str, uid: Option<u32>) -> McpClient {
        let url = rig.broker.url();
        let mut cmd = voicepay(&["mcp", "--agent", agent, "--broker", &url, "--data-dir", dir]);
        if let Some(uid) = uid {
            use std::os::unix::process::CommandExt;
            cmd.uid(uid).gid(uid).env("HOME", dir);
        }
        let mut mcp = McpClient::spawn(cmd);
        let init = mcp.call(
            "initialize",
            serde_json::json!({
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "voicepay-test", "version": "1"}
            }),
        );
        assert!(init["capabilities"]["tools"].is_object(), "{init}");
        mcp.send(serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        mcp
    }

    /// Ends the server as a client does: its stdin closed.
    fn close(self) {
        let McpClient {
            mut child, stdin, ..
        } = self;
        drop(stdin);
        assert!(child.wait_within(STOP_LIMIT).success());
    }

    fn spawn(mut cmd: std::process::Command) -> McpClient {
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
        let mut child = Child::spawn(cmd);
        let stdin = child.stdin().unwrap();
        let lines = lines(child.stdout().unwrap());
        McpClient {
            child,
            stdin,
            lines,
            next_id: 1,
        }
    }

    fn send(&mut self, message: serde_json::Value) {
        use std::io::Write;
        writeln!(self.stdin, "{message}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// A request that must succeed, and its result.
    fn call(&mut self, method: &str, params: serde_json::Value) -> serde_json::Value {
        let message = self.exchange(method, params);
        assert!(message.get("error").is_none(), "{method}: {message}");
        message["result"].clone()
    }

    /// A request, and the whole answer (whatever else comes first is skipped).
    fn exchange(&mut self, method: &str, params: serde_json::Value) -> serde_json::Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(
            serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
        );
        let started = voicepay_core::clock::Stopwatch::start();
        while started.elapsed() < ANSWER_LIMIT {
            let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) else {
                continue;
            };
            let message: serde_json::Value = serde_json::from_str(&line).unwrap();
            if message["id"] == id {
                return message;
            }
        }
        panic!("no answer to {method} within {ANSWER_LIMIT:?}");
    }

    /// A tool's answer marked as an error (not a protocol error): its text.
    fn tool_error(&mut self, name: &str, arguments: serde_json::Value) -> String {
        let result = self.call(
            "tools/call",
            serde_json::json!({"name": name, "arguments": arguments}),
        );
        assert_eq!(result["isError"], true, "{name}: {result}");
        result["content"][0]["text"].as_str().unwrap().to_owned()
    }

    /// A tool's structured answer.
    fn tool(&mut self, name: &str, arguments: serde_json::Value) -> serde_json::Value {
        let result = self.call(
            "tools/call",
            serde_json::json!({"name": name, "arguments": arguments}),
        );
        assert_ne!(result["isError"], true, "{name}: {result}");
        result["structuredContent"].clone()
    }
}

#[test]
fn an_mcp_client_asks_for_a_payment_and_gets_the_decision_a_spoken_approval_made() {
    // 30 s to answer: under load the approval was heard after an 8 s
    // window had closed, and the task was rejected for want of an answer.
    let mut rig = Rig::start(
        2,
        30,
        &[&["keygen", "claude-code", "--daily-budget", "100.00"]],
    );
    let mut mcp = McpClient::start(&rig, "claude-code");

    let listed = mcp.call("tools/list", serde_json::json!({}));
    let tools: HashMap<&str, &serde_json::Value> = listed["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), t))
        .collect();
    let mut names: Vec<&str> = tools.keys().copied().collect();
    names.sort();
    // No spending tool: the agent's side cannot read the device's store,
    // and the device does not publish its user's spending on the broker.
    assert_eq!(names, ["get_task_status", "request_payment"]);
    let schema = &tools["request_payment"]["inputSchema"];
    assert_eq!(schema["type"], "object");
    for required in ["idempotency_key", "payee", "amount", "description"] {
        assert!(
            schema["required"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r == required),
            "{schema}"
        );
    }

    // The user hears the request and approves it while the tool waits.
    let (answer, said) = top_up_approved_by_voice(&mut mcp, &mut rig, "top-up-1");
    assert!(said.contains("a third of a million tokens"), "{said}");
    assert_eq!(answer["status"], "paid", "{answer}");
    assert_eq!(answer["final"], true);
    let task_id = answer["task_id"].as_str().unwrap().to_owned();

    let status = mcp.tool("get_task_status", serde_json::json!({"task_id": task_id}));
    assert_eq!(status["status"], "paid", "{status}");
    assert_eq!(status["request_id"], answer["request_id"]);

    // The user sees what the agent spent, on the device.
    let spent: serde_json::Value = serde_json::from_str(&ok(&[
        "agents",
        "spending",
        "claude-code",
        "--data-dir",
        &rig.keys.dev(),
    ]))
    .unwrap();
    assert_eq!(spent["spent_today"], "30.00", "{spent}");
    assert_eq!(spent["daily_budget"], "100.00", "{spent}");

    // Bad arguments are the model's to read (a tool error), not a payment.
    let bad = mcp.tool_error(
        "request_payment",
        serde_json::json!({
            "idempotency_key": "k-bad", "payee": "Anthropic", "amount": "thirty", "description": "x"
        }),
    );
    assert!(bad.contains("thirty"), "{bad}");

    mcp.close();
    let (_keys, ledger) = rig.stop();
    assert_eq!(ledger.len(), 1, "{ledger:#?}");
}

/// The user the agent framework runs as in the test: `nobody` when the
/// tests run as root (so the device's 0700 directory is truly closed to
/// it), else the tests' own user, given a directory of its own.
fn agent_user() -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let me = std::fs::metadata("/proc/self").unwrap().uid();
    (me == 0).then_some(65_534)
}

#[test]
fn the_mcp_server_pays_as_another_user_with_only_the_agents_key_and_the_devices_public_identity() {
    use std::os::unix::fs::{PermissionsExt, chown};
    // 30 s to answer: the spoken approval is heard on a loaded machine.
    let mut rig = Rig::start(
        1,
        30,
        &[&["keygen", "claude-code", "--daily-budget", "100.00"]],
    );
    let dev = rig.keys.dev();

    // What the agent's user is given: a copy of the device's public
    // identity and its own key, in a directory of its own; nothing else.
    let home = tempfile::tempdir().unwrap();
    let agent_dir = home.path().join("voicepay");
    std::fs::create_dir(&agent_dir).unwrap();
    std::fs::create_dir(agent_dir.join("agents")).unwrap();
    let identity = agent_dir.join("device.pub.json");
    ok(&[
        "keys",
        "export",
        "--data-dir",
        &dev,
        "--out",
        identity.to_str().unwrap(),
    ]);
    let exported = std::fs::read_to_string(&identity).unwrap();
    assert!(exported.contains(&rig.device_id), "{exported}");
    let mode = std::fs::metadata(&identity).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644, "nothing secret in it");
    let key = agent_dir.join("agents/claude-code.key");
    std::fs::copy(
        std::path::Path::new(&dev).join("agents/claude-code.key"),
        &key,
    )
    .unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut files: Vec<String> = walk(&agent_dir);
    files.sort();
    assert_eq!(files, ["agents/claude-code.key", "device.pub.json"]);

    let uid = agent_user();
    if let Some(uid) = uid {
        let agents_dir = agent_dir.join("agents");
        let theirs: [&std::path::Path; 5] = [home.path(), &agent_dir, &agents_dir, &identity, &key];
        for path in theirs {
            chown(path, Some(uid), Some(uid)).unwrap();
        }
        // The agent's user can read neither the device's key, nor its
        // store, nor reach its control socket.
        let as_agent = |args: &[&str]| {
            use std::os::unix::process::CommandExt;
            let mut cmd = voicepay(args);
            cmd.uid(uid).gid(uid).env("HOME", home.path());
            run(cmd)
        };
        for args in [
            &["keys", "show", "--data-dir", &dev][..],
            &["agents", "spending", "claude-code", "--data-dir", &dev][..],
            &["status", "--data-dir", &dev][..],
        ] {
            let out = as_agent(args);
            assert!(!out.status.success(), "{args:?}: {}", stderr(&out));
            assert!(
                stderr(&out).contains("ermission denied"),
                "{args:?}: {}",
                stderr(&out)
            );
        }
    }

    let mut mcp = McpClient::start_in(&rig, "claude-code", agent_dir.to_str().unwrap(), uid);
    let (answer, _) = top_up_approved_by_voice(&mut mcp, &mut rig, "separate-user-1");
    assert_eq!(answer["status"], "paid", "{answer}");
    let status = mcp.tool(
        "get_task_status",
        serde_json::json!({"task_id": "separate-user-1"}),
    );
    assert_eq!(status["status"], "paid", "{status}");
    mcp.close();

    let (_keys, ledger) = rig.stop();
    assert_eq!(ledger.len(), 1, "{ledger:#?}");
    assert_eq!(ledger[0]["request_id"], answer["request_id"], "{ledger:#?}");
}

/// The agent asks through its MCP server for a third of a million Claude
/// tokens (30 yuan) and waits; the user hears the question and approves it
/// by voice. The tool's answer, and what the device said when it asked.
fn top_up_approved_by_voice(
    mcp: &mut McpClient,
    rig: &mut Rig,
    idempotency_key: &str,
) -> (serde_json::Value, String) {
    std::thread::scope(|scope| {
        let asked = scope.spawn(|| {
            mcp.tool(
                "request_payment",
                serde_json::json!({
                    "idempotency_key": idempotency_key,
                    "payee": "Claude",
                    "amount": "30.00",
                    "description": "a third of a million tokens",
                    "kind": "token_top_up",
                    "tokens": 333_333,
                    "wait_seconds": 120
                }),
            )
        });
        let said = rig.wait_said("claude code asks to");
        rig.feed(0, "approve_task");
        (asked.join().unwrap(), said)
    })
}

/// The files under `dir`, relative to it.
fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            files.extend(walk(&path).into_iter().map(|f| format!("{name}/{f}")));
        } else {
            files.push(name);
        }
    }
    files
}

#[test]
fn the_mcp_server_refuses_the_device_key_in_place_of_its_public_identity() {
    let keys = Keys::new();
    let dev = keys.dev();
    let agent = tempfile::tempdir().unwrap();
    let agent_key = agent.path().join("coder.key");
    SigningKey::create_file(&agent_key).unwrap();
    let device_key = std::path::Path::new(&dev).join("device.key");
    let out = run(voicepay(&[
        "mcp",
        "--agent",
        "coder",
        "--key-file",
        agent_key.to_str().unwrap(),
        "--identity",
        device_key.to_str().unwrap(),
    ]));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("is a private key"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_agents_retry_never_pays_twice_and_a_fresh_mcp_server_hears_the_devices_record() {
    let mut rig = Rig::start(
        1,
        8,
        &[&[
            "keygen",
            "claude-code",
            "--daily-budget",
            "100.00",
            "--auto-under",
            "10.00",
            "--payee",
            "Anthropic",
        ]],
    );
    let ask = |key: &str, amount: &str, wait: u64| {
        serde_json::json!({
            "idempotency_key": key,
            "payee": "Anthropic",
            "amount": amount,
            "description": "API credit",
            "wait_seconds": wait
        })
    };

    // The daemon is down: the try is not answered, and the agent's retry
    // after "unknown" is the same task.
    rig.stop_daemon();
    let mut mcp = McpClient::start(&rig, "claude-code");
    let first = mcp.tool("request_payment", ask("k-1", "4.00", 1));
    assert_eq!(
        (&first["task_id"], &first["status"]),
        (&"k-1".into(), &"unknown".into()),
        "{first}"
    );
    assert!(
        first["reason"]
            .as_str()
            .unwrap()
            .contains("same idempotency_key"),
        "{first}"
    );
    let retry = mcp.tool("request_payment", ask("k-1", "4.00", 1));
    assert_eq!(retry["status"], "unknown", "{retry}");

    // The daemon starts and gets both: one is paid, the other answered
    // from the device's record.
    rig.start_daemon();
    let heard = rig.wait_status("k-1", TaskState::Paid);
    let paid = heard.last().unwrap().clone();
    let again = mcp.tool("request_payment", ask("k-1", "4.00", 30));
    assert_eq!(again["status"], "paid", "{again}");
    assert_eq!(again["request_id"], paid.request_id.unwrap().to_string());

    // The same key for other terms: refused, nothing sent.
    let other = mcp.tool_error("request_payment", ask("k-1", "5.00", 5));
    assert!(other.contains("other terms"), "{other}");
    mcp.close();

    // A server started afresh hears the device's record, not its own ignorance.
    let mut fresh = McpClient::start(&rig, "claude-code");
    let status = fresh.tool("get_task_status", serde_json::json!({"task_id": "k-1"}));
    assert_eq!(status["status"], "paid", "{status}");
    assert_eq!(status["request_id"], again["request_id"]);
    let other = fresh.tool_error("request_payment", ask("k-1", "5.00", 5));
    assert!(other.contains("other terms"), "{other}");
    let never = fresh.tool("get_task_status", serde_json::json!({"task_id": "k-never"}));
    assert_eq!(never["status"], "unknown", "{never}");
    assert!(
        never["reason"].as_str().unwrap().contains("no record"),
        "{never}"
    );

    // Arguments that do not fit are the model's to read, not protocol errors.
    let no_key = fresh.tool_error(
        "request_payment",
        serde_json::json!({"payee": "Anthropic", "amount": "1.00", "description": "x"}),
    );
    assert!(no_key.contains("idempotency_key"), "{no_key}");
    let mut extra = ask("k-2", "1.00", 1);
    extra["approved"] = true.into();
    let extra = fresh.tool_error("request_payment", extra);
    assert!(extra.contains("approved"), "{extra}");
    let mut hidden = ask("k-3", "1.00", 1);
    hidden["payee"] = "Anthro\u{200B}pic".into();
    let hidden = fresh.tool_error("request_payment", hidden);
    assert!(hidden.contains("payee"), "{hidden}");
    let bad_id = fresh.tool_error("get_task_status", serde_json::json!({"task_id": "a/#"}));
    assert!(bad_id.contains("task_id"), "{bad_id}");
    fresh.close();

    let (_keys, ledger) = rig.stop();
    assert_eq!(
        ledger.len(),
        1,
        "one payment for all the tries: {ledger:#?}"
    );
    assert_eq!(ledger[0]["request_id"], again["request_id"], "{ledger:#?}");
}

#[test]
fn agents_stopped_while_offline_never_have_their_unsent_payments_sent() {
    let coder = SigningKey::generate().unwrap();
    let key = coder.public_key().to_base64url();
    let mut rig = Rig::start_with(
        2,
        8,
        &[&[
            "add",
            "coder",
            "--public-key",
            &key,
            "--auto-under",
            "5.00",
            "--payee",
            "Anthropic",
        ]],
        false,
    );
    let dev = rig.keys.dev();
    ok(&["limits", "set", "--auto", "50.00", "--data-dir", &dev]);

    // Offline: the agent's small task and the user's own payment are both
    // approved under the floor limits and kept in the outbox.
    rig.send(task_to(
        &rig.device_id,
        &coder,
        "coder",
        "t-offline",
        400,
        "Anthropic",
    ));
    rig.wait_status("t-offline", TaskState::Approved);
    rig.feed(0, "pay_alice_20");
    rig.wait_said("offline");
    rig.feed(1, "stop_agents");
    rig.wait_said("Stopped coder");

    // The gateway appears: the outbox goes out, less what the stopped agent asked for.
    rig.start_gateway();
    let answer = rig.wait_said(r#""step":"answer""#);
    assert!(answer.contains(r#""status":"approved""#), "{answer}");

    let (keys, ledger) = rig.stop();
    assert_eq!(ledger.len(), 1, "{ledger:#?}");
    assert_eq!(ledger[0]["payee"], "Alice", "{ledger:#?}");
    let outbox = ok(&["outbox", "--json", "--data-dir", &keys.dev()]);
    let waiting: Vec<serde_json::Value> = outbox
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(waiting.len(), 1, "{outbox}");
    assert_eq!(waiting[0]["agent"]["task_id"], "t-offline", "{outbox}");
}
