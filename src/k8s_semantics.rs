//! Kubernetes' own defaulting and rounding for Deployments, so rollguard judges
//! an object the way the deployment controller will run it.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// `spec.replicas` when unset.
pub const DEFAULT_REPLICAS: i32 = 1;
/// `maxSurge` and `maxUnavailable` when unset on a RollingUpdate.
pub const DEFAULT_MAX_SURGE: &str = "25%";
pub const DEFAULT_MAX_UNAVAILABLE: &str = "25%";
/// `spec.progressDeadlineSeconds` when unset.
pub const DEFAULT_PROGRESS_DEADLINE_SECONDS: i32 = 600;
/// `terminationGracePeriodSeconds` when unset.
pub const DEFAULT_GRACE_PERIOD_SECONDS: i64 = 30;

/// Resolves an int-or-percent against a total like
/// `intstr.GetScaledValueFromIntOrPercent`: percentages of the total, rounded
/// up for maxSurge and down for maxUnavailable.
pub fn scaled_value(value: &IntOrString, total: i32, round_up: bool) -> Result<i32, String> {
    match value {
        IntOrString::Int(n) => Ok(*n),
        IntOrString::String(text) => {
            let digits = text
                .strip_suffix('%')
                .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| {
                    format!("{text:?} is neither an integer nor a percentage like 25%")
                })?;
            // The API server accepts any run of digits (`^[0-9]+%$`): a
            // percentage too large for the arithmetic saturates instead of
            // wrapping round to a small (or zero) number of pods.
            let percent: i128 = digits.parse().unwrap_or(i128::MAX);
            let product = percent.saturating_mul(i128::from(total));
            let scaled = if round_up {
                product.div_euclid(100) + i128::from(product.rem_euclid(100) != 0)
            } else {
                product.div_euclid(100)
            };
            Ok(saturate_i32(scaled))
        }
    }
}

/// `value` clamped into `i32`, the type of every replica count.
fn saturate_i32(value: i128) -> i32 {
    i32::try_from(value).unwrap_or(if value < 0 { i32::MIN } else { i32::MAX })
}

/// maxSurge and maxUnavailable as the deployment controller computes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fenceposts {
    pub surge: i32,
    pub unavailable: i32,
    /// Both resolved to 0: the controller then uses maxUnavailable 1.
    pub both_zero: bool,
}

impl Fenceposts {
    /// The maxUnavailable the controller really uses.
    pub fn effective_unavailable(&self) -> i32 {
        if self.both_zero {
            1
        } else {
            self.unavailable
        }
    }
}

/// `deploymentutil.ResolveFenceposts`.
pub fn resolve_fenceposts(
    max_surge: &IntOrString,
    max_unavailable: &IntOrString,
    replicas: i32,
) -> Result<Fenceposts, String> {
    let surge = scaled_value(max_surge, replicas, true)?;
    let unavailable = scaled_value(max_unavailable, replicas, false)?;
    Ok(Fenceposts {
        surge,
        unavailable,
        both_zero: surge == 0 && unavailable == 0,
    })
}

/// Shows an int-or-string the way users write it in YAML.
pub fn show(value: &IntOrString) -> String {
    match value {
        IntOrString::Int(n) => n.to_string(),
        IntOrString::String(s) => s.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pct(s: &str) -> IntOrString {
        IntOrString::String(s.to_string())
    }

    #[test]
    fn percentages_round_up_for_surge_and_down_for_unavailable() {
        assert_eq!(scaled_value(&pct("25%"), 1, true), Ok(1));
        assert_eq!(scaled_value(&pct("25%"), 1, false), Ok(0));
        assert_eq!(scaled_value(&pct("25%"), 4, true), Ok(1));
        assert_eq!(scaled_value(&pct("25%"), 4, false), Ok(1));
        assert_eq!(scaled_value(&pct("25%"), 5, true), Ok(2));
        assert_eq!(scaled_value(&pct("25%"), 5, false), Ok(1));
        assert_eq!(scaled_value(&pct("100%"), 3, false), Ok(3));
        assert_eq!(scaled_value(&pct("0%"), 3, true), Ok(0));
        assert_eq!(scaled_value(&IntOrString::Int(2), 10, false), Ok(2));
    }

    #[test]
    fn malformed_percentages_are_errors() {
        for text in ["25", "abc", "%", "2.5%", "+25%", "-25%", " 25%"] {
            assert!(scaled_value(&pct(text), 4, true).is_err(), "{text}");
        }
    }

    #[test]
    fn huge_percentages_saturate_instead_of_wrapping() {
        // 2^62 % of 4 is 2^62 * 4 / 100: wrapping i64 arithmetic made it 0.
        let huge = pct("4611686018427387904%");
        assert_eq!(scaled_value(&huge, 4, true), Ok(i32::MAX));
        assert_eq!(scaled_value(&huge, 4, false), Ok(i32::MAX));
        assert_eq!(scaled_value(&pct("999999999999%"), 4, true), Ok(i32::MAX));
        let beyond_any_integer = format!("{}%", "9".repeat(60));
        assert_eq!(
            scaled_value(&pct(&beyond_any_integer), 1, false),
            Ok(i32::MAX)
        );
        assert_eq!(scaled_value(&huge, 0, true), Ok(0));
        assert_eq!(scaled_value(&pct("100%"), i32::MAX, false), Ok(i32::MAX));
        let f = resolve_fenceposts(&huge, &IntOrString::Int(0), 4).unwrap();
        assert!(!f.both_zero);
        assert_eq!(f.surge, i32::MAX);
    }

    #[test]
    fn both_zero_makes_the_controller_use_one_unavailable() {
        let f = resolve_fenceposts(&IntOrString::Int(0), &pct("25%"), 1).unwrap();
        assert!(f.both_zero);
        assert_eq!(f.effective_unavailable(), 1);
        let f = resolve_fenceposts(&pct("25%"), &pct("25%"), 4).unwrap();
        assert_eq!((f.surge, f.unavailable, f.both_zero), (1, 1, false));
        let f = resolve_fenceposts(&pct("25%"), &pct("25%"), 0).unwrap();
        assert_eq!((f.surge, f.unavailable, f.both_zero), (0, 0, true));
    }
}
