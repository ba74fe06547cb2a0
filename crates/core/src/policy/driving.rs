//! The car's driving mode as a money rule: while the vehicle moves, only payees of the allowed categories are paid.

use serde::Deserialize;

use super::Motion;

/// The `[driving]` table: while the vehicle says it moves, only payees of
/// the allowed categories are paid, and only after a spoken confirmation.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DrivingRule {
    /// Whether the device heeds the vehicle's driving state at all.
    pub enabled: bool,
    /// The categories of `payee_categories` that may be paid while driving.
    pub allowed: Vec<String>,
    /// Until the vehicle has said whether it moves (or while the broker is
    /// away), behave as if it does: the safe side.
    pub assume_driving: bool,
}

impl Default for DrivingRule {
    fn default() -> Self {
        DrivingRule {
            enabled: false,
            allowed: Vec::new(),
            assume_driving: true,
        }
    }
}

/// Whether a payment to a payee of `category` may be made now, given what
/// the vehicle last said (`driving`: `None` when nothing yet, or the broker
/// is away). A payee without a category is never allowed while driving.
pub fn motion(rule: &DrivingRule, driving: Option<bool>, category: Option<&str>) -> Motion {
    if !rule.enabled || !driving.unwrap_or(rule.assume_driving) {
        return Motion::Still;
    }
    Motion::Driving {
        allowed: category.is_some_and(|c| rule.allowed.iter().any(|a| a == c)),
        categories: rule.allowed.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn car() -> DrivingRule {
        DrivingRule {
            enabled: true,
            allowed: vec!["tolls".into(), "fuel".into()],
            assume_driving: true,
        }
    }

    #[test]
    fn while_moving_only_a_payee_of_an_allowed_category_may_be_paid() {
        let driving = |allowed| Motion::Driving {
            allowed,
            categories: car().allowed,
        };
        assert_eq!(motion(&car(), Some(true), Some("fuel")), driving(true));
        assert_eq!(motion(&car(), Some(true), Some("coffee")), driving(false));
        assert_eq!(motion(&car(), Some(true), None), driving(false));
        assert_eq!(motion(&car(), Some(false), Some("coffee")), Motion::Still);
    }

    #[test]
    fn a_car_that_has_not_said_whether_it_moves_is_taken_as_moving_unless_the_rule_says_otherwise()
    {
        assert!(matches!(
            motion(&car(), None, Some("coffee")),
            Motion::Driving { allowed: false, .. }
        ));
        let trusting = DrivingRule {
            assume_driving: false,
            ..car()
        };
        assert_eq!(motion(&trusting, None, Some("coffee")), Motion::Still);
    }

    #[test]
    fn a_device_without_the_driving_mode_never_restricts() {
        let off = DrivingRule::default();
        assert_eq!(motion(&off, Some(true), None), Motion::Still);
    }
}
