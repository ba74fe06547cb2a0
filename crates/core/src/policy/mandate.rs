//! An agent's mandate: what it may spend without the user's say and at all (AP2's open mandate), and why a task falls outside it.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::money::{Currency, Money};

/// What an agent may spend without the user's say, and at all: AP2's open
/// mandate. Amounts are in `currency`, the device's when it was added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mandate {
    pub currency: Currency,
    /// At most this much in one task.
    #[serde(default)]
    pub per_task: Option<Money>,
    /// At most this much a day (the profile's calendar day).
    #[serde(default)]
    pub daily: Option<Money>,
    /// At most this much over the agent's whole life.
    #[serde(default)]
    pub total: Option<Money>,
    /// Tasks of at most this much are paid without asking (the user is told).
    #[serde(default)]
    pub auto_under: Option<Money>,
    /// Only these payees (compared without case); empty: any payee.
    #[serde(default)]
    pub payees: Vec<String>,
    /// Unix milliseconds after which the agent may ask nothing.
    #[serde(default)]
    pub expires_at: Option<u64>,
    /// `auto_under` pays payees outside the device's payee book too. Without
    /// it (and without a `payees` list, which names them) a task to a payee
    /// the user never named is asked about, whatever its amount.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub auto_any_payee: bool,
}

impl Mandate {
    /// An open mandate in `currency`: no budget, nothing paid unasked.
    pub fn new(currency: Currency) -> Mandate {
        Mandate {
            currency,
            per_task: None,
            daily: None,
            total: None,
            auto_under: None,
            payees: Vec::new(),
            expires_at: None,
            auto_any_payee: false,
        }
    }

    /// Whether a task of `amount` to `payee` fits, with `spent_today` and
    /// `spent_total` already reserved by this agent (in the mandate's currency).
    pub fn check(
        &self,
        amount: Money,
        payee: &str,
        spent_today: i64,
        spent_total: i64,
        now_ms: u64,
    ) -> Result<(), OutsideMandate> {
        if self.expires_at.is_some_and(|end| now_ms >= end) {
            return Err(OutsideMandate::Expired);
        }
        if amount.currency != self.currency {
            return Err(OutsideMandate::Currency(self.currency));
        }
        if !self.payees.is_empty() && !self.payees.iter().any(|p| p.eq_ignore_ascii_case(payee)) {
            return Err(OutsideMandate::Payee);
        }
        if let Some(limit) = self.per_task
            && amount.minor > limit.minor
        {
            return Err(OutsideMandate::PerTask(limit));
        }
        let over = |limit: Option<Money>, spent: i64| {
            limit.and_then(|limit| {
                let left = limit.minor.saturating_sub(spent).max(0);
                (amount.minor > left).then(|| Money::new(left, self.currency))
            })
        };
        if let Some(left) = over(self.daily, spent_today) {
            return Err(OutsideMandate::Daily { left });
        }
        if let Some(left) = over(self.total, spent_total) {
            return Err(OutsideMandate::Total { left });
        }
        Ok(())
    }

    /// Whether a task of `amount` (inside the mandate) is paid without
    /// asking the user: under `auto_under`, to a payee the user named (in
    /// the device's payee book, `in_book`, or the mandate's own list) unless
    /// the mandate says any payee will do.
    pub fn pays_unasked(&self, amount: Money, in_book: bool) -> bool {
        let named = in_book || !self.payees.is_empty() || self.auto_any_payee;
        named
            && self.auto_under.is_some_and(|limit| {
                amount.currency == limit.currency && amount.minor <= limit.minor
            })
    }

    /// Why this mandate deserves a second look when it is given: it pays
    /// unasked with no payee list and no daily or total budget.
    pub fn warning(&self) -> Option<String> {
        let limit = self.auto_under?;
        (self.payees.is_empty() && self.daily.is_none() && self.total.is_none()).then(|| {
            let whom = if self.auto_any_payee {
                "any payee"
            } else {
                "any payee in the payee book"
            };
            format!(
                "it may pay up to {limit} a task without asking, to {whom}, with no daily or \
                 total budget: consider --payee, --daily-budget or --total-budget"
            )
        })
    }
}

impl fmt::Display for Mandate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let amount = |m: Option<Money>| m.map_or("-".to_owned(), |m| m.to_string());
        write!(
            f,
            "per task {}, daily {}, total {}, unasked up to {}",
            amount(self.per_task),
            amount(self.daily),
            amount(self.total),
            amount(self.auto_under),
        )?;
        if !self.payees.is_empty() {
            write!(f, ", only to {}", self.payees.join(", "))?;
        }
        if self.auto_any_payee {
            write!(f, ", unasked to any payee")?;
        }
        if let Some(end) = self.expires_at {
            write!(f, ", until {end} ms")?;
        }
        Ok(())
    }
}

/// Why a task falls outside its agent's mandate: refused without asking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum OutsideMandate {
    #[error("the user stopped this agent")]
    Revoked,
    #[error("the agent's mandate has expired")]
    Expired,
    #[error("the agent's budget is in {0}")]
    Currency(Currency),
    #[error("the payee is not one the agent may pay")]
    Payee,
    #[error("over the agent's limit of {0} a task")]
    PerTask(Money),
    #[error("over the agent's daily budget ({left} left today)")]
    Daily { left: Money },
    #[error("over the agent's total budget ({left} left)")]
    Total { left: Money },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cny(minor: i64) -> Money {
        Money::new(minor, Currency::CNY)
    }

    #[test]
    fn a_mandate_refuses_what_lies_outside_it_and_says_what_is_left() {
        let mandate = Mandate {
            per_task: Some(cny(5_000)),
            daily: Some(cny(8_000)),
            total: Some(cny(20_000)),
            auto_under: Some(cny(1_000)),
            payees: vec!["Anthropic".into()],
            expires_at: Some(10_000),
            ..Mandate::new(Currency::CNY)
        };
        let check =
            |amount, payee, today, total, now| mandate.check(amount, payee, today, total, now);
        assert_eq!(check(cny(3_000), "anthropic", 0, 0, 1), Ok(()));
        assert_eq!(
            check(cny(3_000), "Anthropic", 0, 0, 10_000),
            Err(OutsideMandate::Expired)
        );
        assert_eq!(
            check(Money::new(300, Currency::USD), "Anthropic", 0, 0, 1),
            Err(OutsideMandate::Currency(Currency::CNY))
        );
        assert_eq!(
            check(cny(300), "Amazon", 0, 0, 1),
            Err(OutsideMandate::Payee)
        );
        assert_eq!(
            check(cny(5_001), "Anthropic", 0, 0, 1),
            Err(OutsideMandate::PerTask(cny(5_000)))
        );
        assert_eq!(
            check(cny(3_000), "Anthropic", 6_000, 6_000, 1),
            Err(OutsideMandate::Daily { left: cny(2_000) })
        );
        assert_eq!(
            check(cny(3_000), "Anthropic", 0, 18_000, 1),
            Err(OutsideMandate::Total { left: cny(2_000) })
        );
        assert_eq!(check(cny(2_000), "Anthropic", 6_000, 18_000, 1), Ok(()));
        assert!(
            mandate.pays_unasked(cny(1_000), false),
            "its payee list names them"
        );
        assert!(!mandate.pays_unasked(cny(1_001), true));
        assert!(!Mandate::new(Currency::CNY).pays_unasked(cny(1), true));
    }

    #[test]
    fn a_mandate_auto_pays_payees_outside_the_payee_book_only_when_it_says_so() {
        let open = Mandate {
            auto_under: Some(cny(1_000)),
            ..Mandate::new(Currency::CNY)
        };
        assert!(open.pays_unasked(cny(500), true));
        assert!(!open.pays_unasked(cny(500), false), "a payee nobody named");
        let any = Mandate {
            auto_any_payee: true,
            ..open.clone()
        };
        assert!(any.pays_unasked(cny(500), false));
        assert!(any.to_string().contains("unasked to any payee"), "{any}");
        // Unasked, unlisted and unbounded: a warning; a budget or a list quiets it.
        assert!(open.warning().is_some());
        assert!(
            Mandate {
                daily: Some(cny(5_000)),
                ..open.clone()
            }
            .warning()
            .is_none()
        );
        assert!(
            Mandate {
                payees: vec!["Amazon".into()],
                ..open
            }
            .warning()
            .is_none()
        );
        assert!(Mandate::new(Currency::CNY).warning().is_none());
    }
}
