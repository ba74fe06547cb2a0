//! A payee as the store keeps it: the name the gateway is paid under, and what people call it.

use serde::{Deserialize, Serialize};

/// One payee: the name the gateway is paid under, and what people call it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payee {
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
}
