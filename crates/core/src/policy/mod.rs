//! The money rules: the user's limits, the offline floor, and the decision for one payment (pay by itself, ask, ask with a code, or refuse with a typed reason).
//!
//! The checks here are the only copies: the dialog asks [`decide`] early so
//! the user is not asked to confirm a payment that would be refused, the store
//! runs [`check_daily`] and [`check_floor`] again inside the transaction that
//! commits the payment, and the gateway [`judge`]s each request by its
//! device's sequence and its own daily limit.
//! Refusals are values; the phrasebook words them. The token prices
//! ([`prices`]), the driving mode ([`driving`]) and the agents' mandates
//! ([`mandate`]) are here too: every money rule the device applies.

use serde::{Deserialize, Serialize};

use crate::money::{Currency, Money};

mod driving;
mod gateway;
mod mandate;
mod prices;
pub use driving::{DrivingRule, motion};
pub use gateway::{DeviceBooks, GatewayRules, Judgement, Verdict, judge};
pub use mandate::{Mandate, OutsideMandate};
pub use prices::{TokenPrices, TopUpRefusal, check_top_up, per_million, token_price, tokens_for};

/// The user's limits. `auto_pay` zero means "always ask".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub auto_pay: Money,
    pub daily: Option<Money>,
    pub payment_code_above: Option<Money>,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            auto_pay: Money::zero(Currency::CNY),
            daily: None,
            payment_code_above: None,
        }
    }
}

/// Which of the user's limits a spoken change names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitScope {
    /// Payments below this go through without a spoken confirmation.
    Auto,
    /// Total spending per day.
    Daily,
}

impl Limits {
    /// The limit of `scope` as it stands; no daily limit is zero in `currency`.
    pub fn of(&self, scope: LimitScope, currency: Currency) -> Money {
        match scope {
            LimitScope::Auto => self.auto_pay,
            LimitScope::Daily => self.daily.unwrap_or(Money::zero(currency)),
        }
    }

    /// The limits with `scope` set to `amount`.
    pub fn with(mut self, scope: LimitScope, amount: Money) -> Limits {
        match scope {
            LimitScope::Auto => self.auto_pay = amount,
            LimitScope::Daily => self.daily = Some(amount),
        }
        self
    }
}

/// The limit of `scope` a spoken change is compared with; `limits` none
/// when they cannot be read: zero, so every change counts as a raise and is
/// confirmed.
pub fn current_limit(limits: Option<&Limits>, scope: LimitScope, currency: Currency) -> Money {
    limits.map_or(Money::zero(currency), |limits| limits.of(scope, currency))
}

/// `voicepay limits show`: one limit a line.
impl std::fmt::Display for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let or_none = |m: Option<Money>| m.map_or("none".to_owned(), |m| m.to_string());
        writeln!(f, "auto-pay   {}", self.auto_pay)?;
        writeln!(f, "daily      {}", or_none(self.daily))?;
        write!(f, "code above {}", or_none(self.payment_code_above))
    }
}

/// Limits on paying while the gateway is unreachable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfflineFloor {
    pub per_payment: Money,
    pub cumulative: Money,
    pub max_consecutive: u32,
    pub max_age_ms: u64,
}

/// Offline payments since the link was last up (the store keeps them).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OfflineCounters {
    pub count: u32,
    pub total: Option<Money>,
    /// When the offline period began: the link going down, else the first offline payment.
    pub since_ms: Option<u64>,
}

/// Why a payment may not be made (the device's history keeps it as it is).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    #[error("the amount is not positive")]
    NotPositive,
    #[error("the amount overflows the day's total")]
    TooLarge,
    #[error("over the daily limit of {limit} ({left} left)")]
    OverDailyLimit { limit: Money, left: Money },
    #[error("the daily limit is in {limit}, the payment in {payment}")]
    DailyLimitInOtherCurrency { limit: Currency, payment: Currency },
    #[error("offline payments are in {0} only")]
    OfflineCurrency(Currency),
    #[error("offline payments are at most {0} each")]
    OfflinePerPayment(Money),
    #[error("offline payments are at most {0} in total")]
    OfflineCumulative(Money),
    #[error("at most {0} offline payments in a row")]
    OfflineConsecutive(u32),
    #[error("offline for too long")]
    OfflineTooLong,
    #[error("the limits or counters cannot be read")]
    RecordsUnreadable,
    #[error("too many wrong codes in a row: payments that need a code are locked")]
    CodeLockedOut,
    /// The car moves and the payee is in none of these categories.
    #[error("while driving, only payments for {} are made", .allowed.join(", "))]
    WhileDriving { allowed: Vec<String> },
}

/// The policy's verdict on one payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// At or under the auto-pay limit: pay and tell.
    Auto,
    /// Read back and wait for "confirm".
    Confirm,
    /// Read back with a fresh code the user must repeat.
    ConfirmWithCode,
    Decline(Refusal),
}

/// Whether the vehicle moves, and if so whether this payment's payee may be
/// paid while it does (the car's `[driving]` mode; other devices are always
/// `Still`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Motion {
    Still,
    Driving {
        /// The payee is in one of `categories`.
        allowed: bool,
        /// What may be paid while driving, for the spoken reason.
        categories: Vec<String>,
    },
}

/// The verdict while driving: a payee outside the allowed categories is
/// refused, and an allowed one is never paid by itself: the driver hears it
/// read back and confirms by voice (a code, if one is due, still is).
pub fn while_driving(decision: Decision, motion: &Motion) -> Decision {
    match (motion, decision) {
        (Motion::Still, decision) => decision,
        (
            Motion::Driving {
                allowed: false,
                categories,
            },
            _,
        ) => Decision::Decline(Refusal::WhileDriving {
            allowed: categories.clone(),
        }),
        (Motion::Driving { .. }, Decision::Auto) => Decision::Confirm,
        (Motion::Driving { .. }, decision) => decision,
    }
}

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

/// The day's total after `amount`, if `limit` allows it; `spent` is what the
/// day's counter already holds in the payment's currency.
pub fn check_daily(limit: Money, spent: Money, amount: Money) -> Result<Money, Refusal> {
    if limit.currency != amount.currency {
        return Err(Refusal::DailyLimitInOtherCurrency {
            limit: limit.currency,
            payment: amount.currency,
        });
    }
    let after = spent.checked_add(amount).map_err(|_| Refusal::TooLarge)?;
    if after.minor <= limit.minor {
        return Ok(after);
    }
    let left = Money::new(
        limit.minor.saturating_sub(spent.minor).max(0),
        limit.currency,
    );
    Err(Refusal::OverDailyLimit { limit, left })
}

/// Whether the device may approve `amount` by itself while offline.
pub fn check_floor(
    floor: &OfflineFloor,
    counters: &OfflineCounters,
    amount: Money,
    now_ms: u64,
) -> Result<(), Refusal> {
    let currency = floor.per_payment.currency;
    if amount.currency != currency || counters.total.is_some_and(|t| t.currency != currency) {
        return Err(Refusal::OfflineCurrency(currency));
    }
    if amount.minor > floor.per_payment.minor {
        return Err(Refusal::OfflinePerPayment(floor.per_payment));
    }
    let before = counters.total.unwrap_or(Money::zero(currency));
    let after = before.checked_add(amount).map_err(|_| Refusal::TooLarge)?;
    if after.minor > floor.cumulative.minor {
        return Err(Refusal::OfflineCumulative(floor.cumulative));
    }
    if counters.count >= floor.max_consecutive {
        return Err(Refusal::OfflineConsecutive(floor.max_consecutive));
    }
    if counters
        .since_ms
        .is_some_and(|since| now_ms.saturating_sub(since) > floor.max_age_ms)
    {
        return Err(Refusal::OfflineTooLong);
    }
    Ok(())
}

/// The counters after one more offline payment of `amount` at `now_ms`.
pub fn count_offline(
    mut counters: OfflineCounters,
    amount: Money,
    now_ms: u64,
) -> Result<OfflineCounters, Refusal> {
    counters.total = Some(match counters.total {
        Some(total) if total.currency != amount.currency => {
            return Err(Refusal::OfflineCurrency(total.currency));
        }
        Some(total) => total.checked_add(amount).map_err(|_| Refusal::TooLarge)?,
        None => amount,
    });
    counters.count = counters.count.saturating_add(1);
    counters.since_ms.get_or_insert(now_ms);
    Ok(counters)
}

/// `spent_today`: what the day's counter holds in the payment's currency.
pub fn decide(amount: Money, limits: &Limits, spent_today: Money, link: Link) -> Decision {
    if !amount.is_positive() {
        return Decision::Decline(Refusal::NotPositive);
    }
    if let Some(limit) = limits.daily
        && let Err(refusal) = check_daily(limit, spent_today, amount)
    {
        return Decision::Decline(refusal);
    }
    if let Link::Offline {
        floor,
        counters,
        now_ms,
    } = link
        && let Err(refusal) = check_floor(floor, counters, amount, now_ms)
    {
        return Decision::Decline(refusal);
    }
    let same = |limit: &Money| limit.currency == amount.currency;
    // The limits are in one currency; a payment in another cannot be
    // compared with them, so it always needs the spoken code.
    if !same(&limits.auto_pay)
        || limits
            .payment_code_above
            .is_some_and(|code| !same(&code) || amount.minor > code.minor)
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
            Decision::ConfirmWithCode
        );
    }

    #[test]
    fn a_payment_in_another_currency_than_the_limits_always_needs_the_code() {
        // Regression: the code limit in CNY let 500 USD through on a bare "confirm".
        let usd = |minor| Money::new(minor, Currency::USD);
        let no_daily = Limits {
            daily: None,
            ..limits()
        };
        let d = |amount: Money| {
            decide(
                amount,
                &no_daily,
                Money::zero(amount.currency),
                Link::Online,
            )
        };
        assert_eq!(d(usd(50_000)), Decision::ConfirmWithCode);
        assert_eq!(d(usd(1)), Decision::ConfirmWithCode);
        assert_eq!(
            d(cny(2_001)),
            Decision::Confirm,
            "the home currency as before"
        );
    }

    #[test]
    fn the_daily_limit_counts_what_was_spent_today() {
        assert_eq!(
            decide(cny(20_000), &limits(), cny(40_000), Link::Online),
            Decision::Decline(Refusal::OverDailyLimit {
                limit: cny(50_000),
                left: cny(10_000)
            })
        );
        assert_eq!(check_daily(cny(100), cny(40), cny(60)), Ok(cny(100)));
        assert_eq!(
            check_daily(cny(100), cny(0), Money::new(1, Currency::USD)),
            Err(Refusal::DailyLimitInOtherCurrency {
                limit: Currency::CNY,
                payment: Currency::USD
            })
        );
        assert_eq!(
            check_daily(cny(i64::MAX), cny(i64::MAX), cny(1)),
            Err(Refusal::TooLarge)
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
        assert_eq!(
            decide(cny(5_001), &limits(), cny(0), offline),
            Decision::Decline(Refusal::OfflinePerPayment(cny(5_000)))
        );
    }

    #[test]
    fn while_driving_a_payee_outside_the_allowed_categories_is_refused_and_an_allowed_one_is_never_auto_paid()
     {
        let categories = vec!["tolls".to_owned(), "fuel".to_owned()];
        let allowed = Motion::Driving {
            allowed: true,
            categories: categories.clone(),
        };
        let refused = Motion::Driving {
            allowed: false,
            categories: categories.clone(),
        };
        let l = limits();
        let d = |minor| decide(cny(minor), &l, cny(0), Link::Online);
        assert_eq!(while_driving(d(1_000), &allowed), Decision::Confirm);
        assert_eq!(while_driving(d(5_000), &allowed), Decision::Confirm);
        assert_eq!(
            while_driving(d(20_001), &allowed),
            Decision::ConfirmWithCode,
            "a code still due is still asked"
        );
        assert_eq!(
            while_driving(d(1_000), &refused),
            Decision::Decline(Refusal::WhileDriving {
                allowed: categories
            })
        );
        assert!(matches!(
            while_driving(d(60_000), &allowed),
            Decision::Decline(Refusal::OverDailyLimit { .. })
        ));
        assert_eq!(while_driving(d(1_000), &Motion::Still), Decision::Auto);
    }

    #[test]
    fn a_limit_read_is_the_one_set_and_an_unreadable_one_counts_as_zero_so_any_change_is_confirmed()
    {
        let l = limits().with(LimitScope::Auto, cny(3_000));
        assert_eq!(l.of(LimitScope::Auto, Currency::CNY), cny(3_000));
        assert_eq!(l.of(LimitScope::Daily, Currency::CNY), cny(50_000));
        let no_daily = Limits::default();
        assert_eq!(no_daily.of(LimitScope::Daily, Currency::CNY), cny(0));
        let raised = no_daily.with(LimitScope::Daily, cny(9_000));
        assert_eq!(raised.daily, Some(cny(9_000)));
        assert_eq!(
            current_limit(Some(&raised), LimitScope::Daily, Currency::CNY),
            cny(9_000)
        );
        assert_eq!(
            current_limit(None, LimitScope::Auto, Currency::USD),
            Money::zero(Currency::USD)
        );
    }

    #[test]
    fn offline_counters_grow_and_refuse_a_second_currency() {
        let c = count_offline(OfflineCounters::default(), cny(100), 7).unwrap();
        let c = count_offline(c, cny(200), 9).unwrap();
        assert_eq!((c.count, c.total, c.since_ms), (2, Some(cny(300)), Some(7)));
        assert_eq!(
            count_offline(c, Money::new(1, Currency::USD), 10),
            Err(Refusal::OfflineCurrency(Currency::CNY))
        );
    }
}
