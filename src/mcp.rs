//! `voicepay mcp --agent NAME`: a Model Context Protocol server on stdio through which an AI agent asks the device to pay, signing each task with that agent's key and returning the device's signed answer.
//!
//! The server holds the agent's key, never the device's: it can only ask.
//! `request_payment` signs an [`AgentTask`], publishes it on the device's
//! tasks topic and waits (up to `wait_seconds`) for the device's signed
//! [`TaskStatus`] on the task's retained status topic; `get_task_status`
//! reads that topic later; `spending_summary` asks the device's store
//! (through the running daemon's control socket) what the agent has spent.
//! Statuses are believed only when the device key signed them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::{ErrorData, Json, ServerHandler, ServiceExt, schemars, tool, tool_handler, tool_router};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::clock::now_ms;
use crate::keys::{PublicKey, SigningKey};
use crate::money::{Currency, Money};
use crate::protocol::{
    self, AgentTask, Envelope, SubscriptionPeriod, TaskKind, TaskState, TaskStatus, topics,
};
use crate::transport::BrokerUrl;

/// How long a task may wait for the user: the device refuses it afterwards.
const TASK_TTL_MS: u64 = 10 * 60 * 1000;
/// The longest a tool call waits for the user's answer.
const MAX_WAIT_S: u64 = 600;

/// What the server needs: whose key signs, which device is asked, where.
pub struct McpConfig {
    pub agent: String,
    pub key: SigningKey,
    pub device_id: String,
    /// Statuses are believed only with this key's signature.
    pub device_key: PublicKey,
    pub broker: BrokerUrl,
    pub prefix: String,
    /// The device's data directory, for `spending_summary`.
    pub data_dir: PathBuf,
    /// Amounts without a currency are in this one (the profile's).
    pub currency: Currency,
    /// What "today" is for the agent's daily spending (the profile's).
    pub calendar: crate::clock::Calendar,
}

/// Serves MCP on stdin/stdout until the client goes away.
pub async fn serve_stdio(config: McpConfig) -> anyhow::Result<()> {
    let server = PaymentTools::connect(config);
    let running = server.serve(rmcp::transport::stdio()).await?;
    running.waiting().await?;
    Ok(())
}

/// The latest signed status of each of the agent's tasks, as the broker
/// delivers them (retained ones at once).
#[derive(Default)]
struct Statuses {
    latest: Mutex<HashMap<String, TaskStatus>>,
    changed: Notify,
}

impl Statuses {
    fn get(&self, task_id: &str) -> Option<TaskStatus> {
        self.latest
            .lock()
            .ok()
            .and_then(|map| map.get(task_id).cloned())
    }

    /// Waits until `task_id` has a final status, or `wait` has passed; the
    /// latest status then, if any.
    async fn wait_final(&self, task_id: &str, wait: Duration) -> Option<TaskStatus> {
        let until = tokio::time::Instant::now() + wait;
        loop {
            let changed = self.changed.notified();
            let latest = self.get(task_id);
            if latest.as_ref().is_some_and(|s| s.status.is_final()) {
                return latest;
            }
            if tokio::time::timeout_at(until, changed).await.is_err() {
                return self.get(task_id);
            }
        }
    }
}

#[derive(Clone)]
pub struct PaymentTools {
    config: Arc<McpConfig>,
    client: rumqttc::AsyncClient,
    statuses: Arc<Statuses>,
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
    /// pending, approved, paid, declined, rejected, refused, revoked, expired; or unknown (no word from the device yet).
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
                reason: Some("no word from the device yet".to_owned()),
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
    }
}

/// What the agent has spent and may still spend, from the device's store.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SpendingSummary {
    pub agent: String,
    pub currency: String,
    pub spent_today: String,
    pub spent_total: String,
    pub per_task: Option<String>,
    pub daily_budget: Option<String>,
    pub total_budget: Option<String>,
    pub paid_unasked_up_to: Option<String>,
    pub stopped: bool,
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
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let opened = protocol::open(&p.payload, |kid| {
                            (kid == device_key.key_id()).then_some(device_key)
                        });
                        match opened.and_then(|o| o.parse::<TaskStatus>()) {
                            Ok(status) if status.agent_id == agent => {
                                if let Ok(mut map) = seen.latest.lock() {
                                    map.insert(status.task_id.clone(), status);
                                }
                                seen.changed.notify_waiters();
                            }
                            Ok(_) => {}
                            Err(error) => {
                                tracing::warn!(%error, "ignored a task status the device did not sign")
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(error) => {
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
            tool_router: Self::tool_router(),
        }
    }

    #[tool(
        description = "Ask the user, through their voicepay device, to approve a payment. The device reads it to the user, who approves or rejects it by voice (small amounts within this agent's budget may be paid without asking). Waits up to wait_seconds for the decision; if none came yet, returns status pending and the task_id to check with get_task_status."
    )]
    async fn request_payment(
        &self,
        Parameters(ask): Parameters<PaymentAsk>,
    ) -> Result<Json<TaskOutcome>, ErrorData> {
        let task = self
            .task(&ask)
            .map_err(|e| ErrorData::invalid_params(e, None))?;
        let message = Envelope::seal_json(&task, &self.config.key)
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))?
            .0
            .to_bytes();
        let topic = topics::tasks(&self.config.prefix, &self.config.device_id);
        self.client
            .publish(topic, rumqttc::QoS::AtLeastOnce, false, message)
            .await
            .map_err(|e| {
                ErrorData::internal_error(format!("cannot reach the broker: {e}"), None)
            })?;
        let wait = Duration::from_secs(ask.wait_seconds.unwrap_or(60).min(MAX_WAIT_S));
        let status = self.statuses.wait_final(&task.task_id, wait).await;
        Ok(Json(TaskOutcome::of(&task.task_id, status)))
    }

    #[tool(
        description = "Where a payment task stands, as the device signed it: pending, approved, paid, declined, rejected, refused, revoked or expired."
    )]
    async fn get_task_status(
        &self,
        Parameters(ask): Parameters<StatusAsk>,
    ) -> Result<Json<TaskOutcome>, ErrorData> {
        let wait = Duration::from_secs(ask.wait_seconds.unwrap_or(0).min(MAX_WAIT_S));
        let status = self.statuses.wait_final(&ask.task_id, wait).await;
        Ok(Json(TaskOutcome::of(&ask.task_id, status)))
    }

    #[tool(
        description = "What this agent has spent through the device today and in all, and its budgets."
    )]
    async fn spending_summary(&self) -> Result<Json<SpendingSummary>, ErrorData> {
        let request = crate::control::Request::AgentSpending {
            name: self.config.agent.clone(),
        };
        let (data_dir, calendar) = (self.config.data_dir.clone(), self.config.calendar.clone());
        // The running daemon answers; when none runs, the store itself (for
        // a moment: sled lets one process hold it).
        let reply = tokio::task::spawn_blocking(move || {
            if let Some(reply) = crate::control::call(&data_dir, &request)? {
                return Ok(reply);
            }
            let store =
                crate::store::Store::open(&crate::store::StoreConfig::new(data_dir.join("store")))
                    .map_err(std::io::Error::other)?;
            let book = crate::control::DeviceBook {
                profile: crate::payees::PayeeBook::default(),
                live: None,
                calendar,
            };
            Ok::<_, std::io::Error>(crate::control::device(&store, &book, &request))
        })
        .await
        .map_err(|e| ErrorData::internal_error(e.to_string(), None))?
        .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        if !reply.ok {
            return Err(ErrorData::internal_error(
                reply.stderr.trim().to_owned(),
                None,
            ));
        }
        serde_json::from_str(&reply.stdout)
            .map(Json)
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))
    }
}

impl PaymentTools {
    /// The agent's task for `ask`, with a fresh id, checked as the device will.
    fn task(&self, ask: &PaymentAsk) -> Result<AgentTask, String> {
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
            task_id: uuid::Uuid::now_v7().simple().to_string(),
            agent_id: self.config.agent.clone(),
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
             within the budget they gave this agent. Never retry a rejected or refused payment \
             without asking the user first.",
        )
    }
}
