//! `voicepay mcp --agent NAME`: a Model Context Protocol server on stdio through which an AI agent asks the device to pay, signing each task with that agent's key and returning the device's signed answer.
//!
//! The server holds the agent's key, never the device's: it can only ask.
//! `request_payment` signs an [`AgentTask`] whose id is the agent's
//! idempotency key, publishes it on the device's tasks topic and waits (up
//! to `wait_seconds`) for the device's signed [`TaskStatus`] on the task's
//! retained status topic; the device lets a task id in once, so a retry is
//! the same task and answered from the device's record. `get_task_status`
//! asks the device (a signed [`TaskQuery`]), which answers from its record.
//! Statuses are believed only when the device key signed them. Bad
//! arguments are tool results marked as errors, which clients show to the
//! model, not protocol errors.
//!
//! It needs the agent's key and the device's public identity
//! ([`voicepay_core::identity::PublicIdentity`]) only, so it runs as a user that
//! cannot read the device's key, store or control socket: the device alone
//! signs as the device. For the same reason there is no spending tool: what
//! an agent spent is in the device's store, and the device does not publish
//! it on the broker (anyone allowed to read the device's topics would learn
//! the user's spending); a task past a budget comes back `refused` with the
//! budget named, and the user sees the spending with
//! `voicepay agents spending NAME`.
//!
//! # Layout
//!
//! One file: [`McpConfig`], [`serve_stdio`], the tools' argument and result
//! types. It links `voicepay-core` only (the wire protocol, keys, the MQTT
//! link): no speech, audio or store, and no way to the device's key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, ServerCapabilities, ServerConfig};
use rmcp::{Json, ServerHandler, ServiceExt, schemars, tool, tool_handler, tool_router};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};

use voicepay_core::clock::now_ms;
use voicepay_core::keys::{PublicKey, SigningKey};
use voicepay_core::money::{Currency, Money};
use voicepay_core::protocol::{
    self, AgentTask, Envelope, SubscriptionPeriod, TaskKind, TaskQuery, TaskState, TaskStatus,
    topics,
};
use voicepay_core::transport::BrokerUrl;

/// How long a task may wait for the user: the device refuses it afterwards.
const TASK_TTL_MS: u64 = 10 * 60 * 1000;
/// The longest a tool call waits for the user's answer.
const MAX_WAIT_S: u64 = 600;
/// How long a call waits for the subscription to the statuses (so that
/// what the broker retains is seen before anything is sent).
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(5);
/// How long `get_task_status` waits for the device to answer its question.
const DEVICE_ANSWER_WAIT: Duration = Duration::from_secs(5);

/// What the server needs: whose key signs, which device is asked, where.
pub struct McpConfig {
    pub agent: String,
    pub key: SigningKey,
    pub device_id: String,
    /// Statuses are believed only with this key's signature.
    pub device_key: PublicKey,
    pub broker: BrokerUrl,
    pub prefix: String,
    /// Amounts without a currency are in this one (the device's).
    pub currency: Currency,
}

/// Serves MCP on stdin/stdout until the client goes away.
pub async fn serve_stdio(config: McpConfig) -> anyhow::Result<()> {
    let server = PaymentTools::connect(config);
    let running = server.serve(rmcp::transport::stdio()).await?;
    running.waiting().await?;
    Ok(())
}

/// The latest signed status of each of the agent's tasks, as the broker
/// delivers them (retained ones at once), each with the number of statuses
/// heard before it (so a call can tell an answer to its question from what
/// was known already).
#[derive(Default)]
struct Statuses {
    latest: Mutex<HashMap<String, (TaskStatus, u64)>>,
    heard: std::sync::atomic::AtomicU64,
    changed: Notify,
}

impl Statuses {
    fn get(&self, task_id: &str) -> Option<(TaskStatus, u64)> {
        self.latest
            .lock()
            .ok()
            .and_then(|map| map.get(task_id).cloned())
    }

    fn put(&self, status: TaskStatus) {
        let n = self.heard.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        if let Ok(mut map) = self.latest.lock() {
            map.insert(status.task_id.clone(), (status, n));
        }
        self.changed.notify_waiters();
    }

    /// How many statuses were heard so far.
    fn count(&self) -> u64 {
        self.heard.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits until `task_id`'s latest status satisfies `done`, or `wait`
    /// has passed; the latest status then, if any.
    async fn wait_for(
        &self,
        task_id: &str,
        wait: Duration,
        done: impl Fn(&TaskStatus, u64) -> bool,
    ) -> Option<TaskStatus> {
        let until = tokio::time::Instant::now() + wait;
        loop {
            let changed = self.changed.notified();
            let latest = self.get(task_id);
            if latest.as_ref().is_some_and(|(s, n)| done(s, *n)) {
                return latest.map(|(s, _)| s);
            }
            if tokio::time::timeout_at(until, changed).await.is_err() {
                return self.get(task_id).map(|(s, _)| s);
            }
        }
    }
}

/// Arguments as the client sent them, read by the tool itself: arguments
/// that do not fit `T` are the tool's error result (shown to the model),
/// not a protocol error. The schema is `T`'s.
struct Args<T>(Result<T, String>);

impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for Args<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        Ok(Args(
            serde_json::from_value(value).map_err(|e| e.to_string()),
        ))
    }
}

impl<T: schemars::JsonSchema> schemars::JsonSchema for Args<T> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        T::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }
}

/// A tool result marked as an error: the model reads `message`.
fn tool_error(message: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message.into())])
}

#[derive(Clone)]
pub struct PaymentTools {
    config: Arc<McpConfig>,
    client: rumqttc::AsyncClient,
    statuses: Arc<Statuses>,
    /// Subscribed to the statuses (the broker has acknowledged it).
    subscribed: watch::Receiver<bool>,
    tool_router: ToolRouter<Self>,
}

#[derive(Debug, Clone, Copy, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Purchase,
    TokenTopUp,
    Subscription,
}

#[derive(Debug, Clone, Copy, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
enum Period {
    Week,
    Month,
    Year,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct PaymentAsk {
    /// Your own id for this payment, 1-64 of A-Z a-z 0-9 _ - (a UUID will do): a new one for each payment you mean, the same one when you retry it. It becomes the task_id.
    idempotency_key: String,
    /// Who is paid (for a token top-up: the provider).
    payee: String,
    /// A decimal amount with the currency's minor digits, e.g. "30.00".
    amount: String,
    /// ISO 4217 code; the device's own currency when left out.
    currency: Option<String>,
    /// One sentence the device reads to the user: what the money buys.
    description: String,
    /// purchase (default), token_top_up (with tokens) or subscription (with period).
    kind: Option<Kind>,
    tokens: Option<u64>,
    period: Option<Period>,
    /// How long to wait for the user's decision before answering "pending" (default 60, at most 600).
    wait_seconds: Option<u64>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct StatusAsk {
    task_id: String,
    /// How long to wait for a final status (default 0: what is known now).
    wait_seconds: Option<u64>,
}

/// Where a task stands, as the device signed it.
#[derive(Debug, Serialize, schemars::JsonSchema)]
struct TaskOutcome {
    task_id: String,
    /// pending, approved, paid, declined, rejected, refused, revoked, expired; busy (not taken: send it again later with the same idempotency_key); or unknown (the device has no record of it, or did not answer).
    status: String,
    /// Nothing more will change.
    r#final: bool,
    reason: Option<String>,
    /// The device's payment request, once approved.
    request_id: Option<String>,
}

impl TaskOutcome {
    fn of(task_id: &str, status: Option<TaskStatus>) -> TaskOutcome {
        match status {
            Some(s) => TaskOutcome {
                task_id: s.task_id,
                status: state_name(s.status).to_owned(),
                r#final: s.status.is_final(),
                reason: s.reason,
                request_id: s.request_id.map(|id| id.to_string()),
            },
            None => TaskOutcome {
                task_id: task_id.to_owned(),
                status: "unknown".to_owned(),
                r#final: false,
                reason: Some(
                    "no word from the device (it may be off or unreachable): asking again later \
                     is safe, and so is request_payment with the same idempotency_key and terms"
                        .to_owned(),
                ),
                request_id: None,
            },
        }
    }
}

fn state_name(state: TaskState) -> &'static str {
    match state {
        TaskState::Pending => "pending",
        TaskState::Approved => "approved",
        TaskState::Rejected => "rejected",
        TaskState::Refused => "refused",
        TaskState::Revoked => "revoked",
        TaskState::Expired => "expired",
        TaskState::Paid => "paid",
        TaskState::Declined => "declined",
        TaskState::Unknown => "unknown",
        TaskState::Busy => "busy",
    }
}

#[tool_router]
impl PaymentTools {
    /// Connects to the broker in the background and follows the agent's
    /// task statuses.
    fn connect(config: McpConfig) -> PaymentTools {
        let client_id = format!(
            "voicepay-mcp-{}-{}",
            config.agent,
            &uuid::Uuid::now_v7().simple().to_string()[20..]
        );
        let (client, mut eventloop) =
            rumqttc::AsyncClient::new(config.broker.options(&client_id), 64);
        let statuses = Arc::new(Statuses::default());
        let (subscribed_tx, subscribed) = watch::channel(false);
        let filter = format!(
            "{}/devices/{}/tasks/+/status",
            config.prefix, config.device_id
        );
        let (subscriber, seen) = (client.clone(), statuses.clone());
        let (device_key, agent) = (config.device_key, config.agent.clone());
        tokio::spawn(async move {
            use rumqttc::{Event, Packet, QoS};
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = subscriber.subscribe(&filter, QoS::AtLeastOnce).await;
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        subscribed_tx.send_replace(true);
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let opened = protocol::open(&p.payload, |kid| {
                            (kid == device_key.key_id()).then_some(device_key)
                        });
                        match opened.and_then(|o| o.parse::<TaskStatus>()) {
                            Ok(status) if status.agent_id == agent => seen.put(status),
                            Ok(_) => {}
                            Err(error) => {
                                tracing::warn!(%error, "ignored a task status the device did not sign")
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(error) => {
                        subscribed_tx.send_replace(false);
                        tracing::warn!(%error, "MQTT: reconnecting");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
        PaymentTools {
            config: Arc::new(config),
            client,
            statuses,
            subscribed,
            tool_router: Self::tool_router(),
        }
    }

    #[tool(
        description = "Ask the user, through their voicepay device, to approve a payment. The device reads it to the user, who approves or rejects it by voice (small amounts within this agent's budget may be paid without asking). Waits up to wait_seconds for the decision; if none came yet, returns status pending; check later with get_task_status. Give each payment you mean its own idempotency_key and reuse that key to retry it: the same key with the same payee, amount, currency, kind, tokens and period is the same task and is never paid twice, so a retry after a timeout, an error, pending or unknown is always safe. The same key with other terms is refused. Use a new key only for a new payment: after a final status other than paid (rejected, refused, declined, expired, revoked), and only if the user wants to try again."
    )]
    async fn request_payment(
        &self,
        Parameters(Args(ask)): Parameters<Args<PaymentAsk>>,
    ) -> Result<Json<TaskOutcome>, CallToolResult> {
        let ask = ask.map_err(|e| tool_error(format!("invalid arguments: {e}")))?;
        let task = self.task(&ask).map_err(tool_error)?;
        let terms = task.terms_sha256();
        let other_terms = |s: &TaskStatus| s.terms.as_ref().is_some_and(|t| *t != terms);
        let refused = || {
            tool_error(format!(
                "idempotency_key {:?} was already used for a payment with other terms (payee, \
                 amount, kind, tokens or period): nothing was sent. Use that payment's own terms \
                 to retry it, or a new key for a new payment.",
                task.task_id
            ))
        };
        // What the broker retains of an earlier try is seen before sending.
        self.wait_subscribed().await;
        if let Some((known, _)) = self.statuses.get(&task.task_id) {
            if other_terms(&known) {
                return Err(refused());
            }
            if known.status.is_final() {
                return Ok(Json(TaskOutcome::of(&task.task_id, Some(known))));
            }
        }
        self.send(&task).await?;
        let wait = Duration::from_secs(ask.wait_seconds.unwrap_or(60).min(MAX_WAIT_S));
        let status = self
            .statuses
            .wait_for(&task.task_id, wait, |s, _| {
                s.status.is_final() || s.status == TaskState::Busy || other_terms(s)
            })
            .await;
        if status.as_ref().is_some_and(other_terms) {
            return Err(refused());
        }
        Ok(Json(TaskOutcome::of(&task.task_id, status)))
    }

    #[tool(
        description = "Where a payment task stands, from the device's own record: pending, approved, paid, declined, rejected, refused, revoked, expired, or unknown (the device has no record of it: it never reached the device, and request_payment with the same idempotency_key and terms is safe). wait_seconds waits for a final status."
    )]
    async fn get_task_status(
        &self,
        Parameters(Args(ask)): Parameters<Args<StatusAsk>>,
    ) -> Result<Json<TaskOutcome>, CallToolResult> {
        let ask = ask.map_err(|e| tool_error(format!("invalid arguments: {e}")))?;
        if !protocol::is_valid_device_id(&ask.task_id) {
            return Err(tool_error(format!(
                "task_id {:?}: a task id is 1-64 of A-Z a-z 0-9 _ -",
                ask.task_id.chars().take(64).collect::<String>()
            )));
        }
        self.wait_subscribed().await;
        let before = self.statuses.count();
        let query = TaskQuery {
            status_of: ask.task_id.clone(),
            agent_id: self.config.agent.clone(),
            device_id: self.config.device_id.clone(),
            asked_at: now_ms(),
        };
        self.send(&query).await?;
        let wait = Duration::from_secs(ask.wait_seconds.unwrap_or(0).min(MAX_WAIT_S));
        // The device's answer, or (with wait_seconds) its final word.
        let answered = |s: &TaskStatus, n: u64| {
            n > before && (wait.is_zero() || s.status.is_final() || s.status == TaskState::Unknown)
        };
        let status = self
            .statuses
            .wait_for(&ask.task_id, wait.max(DEVICE_ANSWER_WAIT), answered)
            .await;
        Ok(Json(TaskOutcome::of(&ask.task_id, status)))
    }
}

impl PaymentTools {
    /// Waits (briefly) for the subscription to the statuses.
    async fn wait_subscribed(&self) {
        let mut subscribed = self.subscribed.clone();
        let _ = tokio::time::timeout(SUBSCRIBE_WAIT, subscribed.wait_for(|s| *s)).await;
    }

    /// Signs `message` with the agent's key and publishes it on the device's tasks topic.
    async fn send<T: Serialize>(&self, message: &T) -> Result<(), CallToolResult> {
        let message = Envelope::seal_json(message, &self.config.key)
            .map_err(|e| tool_error(e.to_string()))?
            .0
            .to_bytes();
        let topic = topics::tasks(&self.config.prefix, &self.config.device_id);
        self.client
            .publish(topic, rumqttc::QoS::AtLeastOnce, false, message)
            .await
            .map_err(|e| tool_error(format!("cannot reach the broker: {e}")))
    }

    /// The agent's task for `ask`, its id the idempotency key, checked as the device will.
    fn task(&self, ask: &PaymentAsk) -> Result<AgentTask, String> {
        if !protocol::is_valid_device_id(&ask.idempotency_key) {
            return Err(format!(
                "idempotency_key {:?}: use 1-64 of A-Z a-z 0-9 _ - (a UUID will do)",
                ask.idempotency_key.chars().take(64).collect::<String>()
            ));
        }
        let currency = match &ask.currency {
            Some(code) => Currency::from_code(code).map_err(|e| e.to_string())?,
            None => self.config.currency,
        };
        let amount = Money::parse_decimal(&ask.amount, currency).map_err(|e| e.to_string())?;
        let kind = match ask.kind.unwrap_or(Kind::Purchase) {
            Kind::Purchase => TaskKind::Purchase,
            Kind::TokenTopUp => TaskKind::TokenTopUp,
            Kind::Subscription => TaskKind::Subscription,
        };
        let period = ask.period.map(|p| match p {
            Period::Week => SubscriptionPeriod::Week,
            Period::Month => SubscriptionPeriod::Month,
            Period::Year => SubscriptionPeriod::Year,
        });
        let now = now_ms();
        let task = AgentTask {
            task_id: ask.idempotency_key.clone(),
            agent_id: self.config.agent.clone(),
            device_id: self.config.device_id.clone(),
            description: ask.description.trim().to_owned(),
            payee: ask.payee.trim().to_owned(),
            amount,
            kind,
            tokens: ask.tokens,
            period,
            created_at: now,
            expires_at: now + TASK_TTL_MS,
        };
        task.validate(now).map_err(|e| e.to_string())?;
        Ok(task)
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for PaymentTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build()).with_instructions(
            "Payments through the user's voicepay device: the user approves each one by voice, \
             within the budget they gave this agent. Give each payment its own idempotency_key \
             and retry only with that same key and the same terms: that is always safe and never \
             pays twice (after a timeout, an error, pending or unknown). Never retry with a new \
             key while a payment may still be paid; never ask again for a rejected, refused or \
             declined payment without asking the user first.",
        )
    }
}
