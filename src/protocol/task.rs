//! `AgentTask`: what an AI agent asks the device to pay, signed by the agent's own key (the type only, for now).
//!
//! In AP2's terms a task with a budget is an open mandate: the agent proposes,
//! the user approves by voice (or the agent's auto-approve budget does), and
//! only then does the device sign a closed `PaymentRequest` of kind `agent_task`.

use serde::{Deserialize, Serialize};

use super::RequestKind;
use crate::money::Money;

/// An agent's request, as it arrives on `{prefix}/devices/{device_id}/tasks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentTask {
    pub task_id: String,
    pub agent_id: String,
    /// One sentence the device reads to the user.
    pub description: String,
    pub payee: String,
    pub amount: Money,
    /// `purchase` or `token_top_up`; subscriptions come with their period later.
    pub kind: RequestKind,
    /// Tokens bought, for `token_top_up` only.
    pub tokens: Option<u64>,
    /// Unix milliseconds.
    pub created_at: u64,
    /// Unix milliseconds; no answer by then rejects the task.
    pub expires_at: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;

    #[test]
    fn an_agent_task_has_designs_json_names_and_refuses_unknown_fields() {
        let task = AgentTask {
            task_id: "t-1".into(),
            agent_id: "claude-code".into(),
            description: "one million tokens".into(),
            payee: "Anthropic".into(),
            amount: Money::new(3000, Currency::CNY),
            kind: RequestKind::TokenTopUp,
            tokens: Some(1_000_000),
            created_at: 1,
            expires_at: 2,
        };
        let json = serde_json::to_value(&task).unwrap();
        assert_eq!(json["kind"], "token_top_up");
        assert_eq!(json["amount"]["minor"], 3000);
        assert_eq!(
            serde_json::from_value::<AgentTask>(json.clone()).unwrap(),
            task
        );
        let mut extra = json;
        extra["approve"] = true.into();
        assert!(serde_json::from_value::<AgentTask>(extra).is_err());
    }
}
