//! The decision for one payment: pay by itself, ask, ask with a code, or decline (with the reason to speak).
//!
//! The checks are the store's own ([`crate::store`] runs them again, atomically,
//! when the payment is committed): the policy answers early so the user is not
//! asked to confirm a payment that would be refused.

use crate::dialog::Decision;
use crate::money::Money;
use crate::store::{Limits, OfflineCounters, OfflineFloor, check_daily, check_floor};

/// Whether the gateway can answer now.
#[derive(Debug, Clone, Copy)]
pub enum Link<'a> {
    Online,
    Offline {
        floor: &'a OfflineFloor,
        counters: &'a OfflineCounters,
        now_ms: u64,
    },
}

/// `spent_today`: what the day's counter holds in the payment's currency.
pub fn decide(amount: Money, limits: &Limits, spent_today: Money, link: Link) -> Decision {
    let decline = |reason: &str| Decision::Decline {
        reason: reason.to_owned(),
    };
    if !amount.is_positive() {
        return decline("The amount must be more than zero.");
    }
    if let Some(limit) = limits.daily {
        let Ok(after) = spent_today.checked_add(amount) else {
            return decline("That amount is too large.");
        };
        if let Err(refusal) = check_daily(limit, spent_today, amount, after) {
            return decline(&refusal.to_string());
        }
    }
    if let Link::Offline {
        floor,
        counters,
        now_ms,
    } = link
        && let Err(refusal) = check_floor(floor, counters, amount, now_ms)
    {
        return decline(&refusal.to_string());
    }
    let same = |limit: &Money| limit.currency == amount.currency;
    if limits
        .payment_code_above
        .is_some_and(|code| same(&code) && amount.minor > code.minor)
    {
        return Decision::ConfirmWithCode;
    }
    if same(&limits.auto_pay) && amount.minor <= limits.auto_pay.minor {
        return Decision::Auto;
    }
    Decision::Confirm
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;

    fn cny(minor: i64) -> Money {
        Money::new(minor, Currency::CNY)
    }

    fn limits() -> Limits {
        Limits {
            auto_pay: cny(2_000),
            daily: Some(cny(50_000)),
            payment_code_above: Some(cny(20_000)),
        }
    }

    #[test]
    fn auto_confirm_code_and_decline_by_amount() {
        let l = limits();
        let d = |minor| decide(cny(minor), &l, cny(0), Link::Online);
        assert_eq!(d(2_000), Decision::Auto);
        assert_eq!(d(2_001), Decision::Confirm);
        assert_eq!(d(20_001), Decision::ConfirmWithCode);
        assert!(matches!(d(50_001), Decision::Decline { .. }));
        assert!(matches!(d(0), Decision::Decline { .. }));
    }

    #[test]
    fn a_zero_auto_limit_always_asks_and_other_currencies_never_auto_pay() {
        let mut l = Limits::default();
        assert_eq!(decide(cny(1), &l, cny(0), Link::Online), Decision::Confirm);
        l.auto_pay = cny(2_000);
        let usd = Money::new(100, Currency::USD);
        assert_eq!(
            decide(usd, &l, Money::zero(Currency::USD), Link::Online),
            Decision::Confirm
        );
    }

    #[test]
    fn the_daily_limit_counts_what_was_spent_today() {
        let Decision::Decline { reason } =
            decide(cny(20_000), &limits(), cny(40_000), Link::Online)
        else {
            panic!("over the daily limit must decline");
        };
        assert_eq!(
            reason,
            "That is over your daily limit of 500 yuan; you have 100 yuan left today."
        );
    }

    #[test]
    fn offline_the_floor_limits_apply() {
        let floor = OfflineFloor {
            per_payment: cny(5_000),
            cumulative: cny(10_000),
            max_consecutive: 3,
            max_age_ms: 3_600_000,
        };
        let counters = OfflineCounters::default();
        let offline = Link::Offline {
            floor: &floor,
            counters: &counters,
            now_ms: 0,
        };
        assert_eq!(
            decide(cny(1_000), &limits(), cny(0), offline),
            Decision::Auto
        );
        assert!(matches!(
            decide(cny(5_001), &limits(), cny(0), offline),
            Decision::Decline { reason } if reason.starts_with("Offline")
        ));
    }
}
