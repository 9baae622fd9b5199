//! Validation results and the messages users read: a denial names the rule,
//! the field, the conflicting values, why it is unsafe and the fix; a warning
//! says the same in at most 120 characters.

use crate::annotations::{Origin, Problem};
use crate::rules::{Action, Rule};

/// Warnings longer than this may be cut by the API server or kubectl.
pub const MAX_WARNING_CHARS: usize = 120;

/// A rule that fired, before its configured action is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub rule: Rule,
    /// Human path of the offending field.
    pub field: String,
    /// The values that conflict, in a few words.
    pub detail: String,
}

impl Finding {
    pub fn new(rule: Rule, field: impl Into<String>, detail: impl Into<String>) -> Finding {
        Finding {
            rule,
            field: field.into(),
            detail: detail.into(),
        }
    }
}

/// A finding with the action it resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub rule: Rule,
    /// `Deny` or `Warn`.
    pub action: Action,
    /// A denial turned into a warning by `rollguard.io/waive`.
    pub waived: bool,
    pub field: String,
    pub detail: String,
}

impl Violation {
    pub fn new(finding: Finding, action: Action, waived: bool) -> Violation {
        Violation {
            rule: finding.rule,
            action,
            waived,
            field: finding.field,
            detail: finding.detail,
        }
    }

    /// The full explanation, used for denials, logs and `rollguard check`.
    pub fn message(&self) -> String {
        let waive = if self.rule == Rule::InvalidAnnotation {
            String::new()
        } else {
            format!(
                " To accept the risk instead, annotate the workload with rollguard.io/waive: {}.",
                self.rule
            )
        };
        format!(
            "{rule}: {field}: {detail}. Why: {why} Fix: {fix}{waive}",
            rule = self.rule,
            field = self.field,
            detail = self.detail,
            why = self.rule.why(),
            fix = self.rule.fix(),
        )
    }

    /// The short form for admission warnings (at most 120 characters): rule,
    /// field and detail, whole. [`Violation::message`] is the full form.
    ///
    /// Compact by construction: the detail never repeats the container the
    /// field names, and when the line is too long the container name is
    /// shortened first ([`fit`]); the rule and the values are never cut.
    pub fn warning(&self, prefix: &str) -> String {
        let label = if self.waived { " (waived)" } else { "" };
        let head = format!("{prefix}{}{label}: ", self.rule);
        let tail = format!(": {}", self.detail);
        fit(&head, short_field(&self.field), &tail)
            .unwrap_or_else(|| short(&format!("{head}{}", self.detail)))
    }
}

/// Shortest kept start of a container name shortened by [`fit`].
const MIN_NAME_CHARS: usize = 6;

/// `head + field + tail` within [`MAX_WARNING_CHARS`]: when too long, the
/// container name in `field` (`containers[NAME]…`) is shortened to its start
/// and `..` (`containers[argocd-applic..].readinessProbe`). None when even
/// that does not fit (no rule writes such a detail): the caller leaves the
/// field out.
pub fn fit(head: &str, field: &str, tail: &str) -> Option<String> {
    let line = |field: &str| format!("{head}{field}{tail}");
    let full = line(field);
    let excess = full.chars().count().saturating_sub(MAX_WARNING_CHARS);
    if excess == 0 {
        return Some(full);
    }
    shorten_container(field, excess).map(|shorter| line(&shorter))
}

/// `field` with its container name shortened by at least `excess`
/// characters (plus the two of `..`), or None when the name is too short
/// for that.
fn shorten_container(field: &str, excess: usize) -> Option<String> {
    let open = field.find('[')? + 1;
    let close = open + field[open..].find(']')?;
    let name = &field[open..close];
    let keep = name.chars().count().checked_sub(excess + 2)?;
    if keep < MIN_NAME_CHARS {
        return None;
    }
    let kept: String = name.chars().take(keep).collect();
    Some(format!("{}{kept}..{}", &field[..open], &field[close..]))
}

/// A field path without the prefixes every workload of a kind shares:
/// `containers[app].lifecycle.preStop`, `maxUnavailable`, `minReadySeconds`.
pub fn short_field(field: &str) -> &str {
    [
        "spec.template.spec.",
        "spec.template.",
        "spec.strategy.rollingUpdate.",
        "spec.updateStrategy.rollingUpdate.",
        "spec.",
    ]
    .iter()
    .find_map(|prefix| field.strip_prefix(prefix))
    .unwrap_or(field)
}

/// Cuts a message to at most [`MAX_WARNING_CHARS`] characters at the last
/// space that fits, so a value (a word) is either whole or absent.
pub fn short(text: &str) -> String {
    if text.chars().count() <= MAX_WARNING_CHARS {
        return text.to_string();
    }
    let limit = MAX_WARNING_CHARS - 2;
    let head: String = text.chars().take(limit + 1).collect();
    let cut = match head.rfind(' ') {
        Some(space) if space > 0 => &head[..space],
        _ => {
            &head[..head
                .char_indices()
                .nth(limit)
                .map_or(head.len(), |(i, _)| i)]
        }
    };
    format!("{} …", cut.trim_end_matches([',', ';', ':', ' ']))
}

pub(super) fn annotation_problem(problem: &Problem) -> Finding {
    let field = match problem.origin {
        Origin::Object => format!("metadata.annotations[{}]", problem.key),
        Origin::Template => format!("spec.template.metadata.annotations[{}]", problem.key),
    };
    Finding::new(
        Rule::InvalidAnnotation,
        field,
        format!(
            "{} {:?} is not valid: {}",
            problem.key, problem.value, problem.reason
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denial_message_names_rule_field_values_why_fix_and_waiver() {
        let v = Violation::new(
            Finding::new(
                Rule::RolloutFencepost,
                "spec.strategy.rollingUpdate",
                "maxSurge 0 and maxUnavailable 25% both resolve to 0 for 1 replica",
            ),
            Action::Deny,
            false,
        );
        let message = v.message();
        for part in [
            "rollout-fencepost",
            "spec.strategy.rollingUpdate",
            "maxSurge 0",
            Rule::RolloutFencepost.why(),
            Rule::RolloutFencepost.fix(),
            "rollguard.io/waive: rollout-fencepost",
        ] {
            assert!(message.contains(part), "{message} lacks {part}");
        }
    }

    #[test]
    fn warnings_never_exceed_120_characters() {
        let v = Violation::new(
            Finding::new(Rule::ReadinessMissing, "f", "x".repeat(500)),
            Action::Warn,
            false,
        );
        let warning = v.warning("rollguard ");
        assert!(warning.chars().count() <= MAX_WARNING_CHARS);
        assert!(warning.ends_with('…'));
        assert_eq!(short("ünïcödé"), "ünïcödé");
    }

    #[test]
    fn a_long_container_name_is_shortened_before_anything_else() {
        let name = "c".repeat(63);
        let finding = Finding::new(
            Rule::PrestopExceedsGrace,
            format!("spec.template.spec.containers[{name}].lifecycle.preStop"),
            "sleep 45s >= grace 30s",
        );
        let warning = Violation::new(finding, Action::Warn, true).warning("rollguard audit warns ");
        assert_eq!(warning.chars().count(), MAX_WARNING_CHARS, "{warning}");
        let kept = MAX_WARNING_CHARS
            - "rollguard audit warns prestop-exceeds-grace (waived): containers[..].lifecycle.preStop: sleep 45s >= grace 30s".chars().count();
        assert_eq!(
            warning,
            format!(
                "rollguard audit warns prestop-exceeds-grace (waived): containers[{}..].lifecycle.preStop: sleep 45s >= grace 30s",
                "c".repeat(kept)
            )
        );
        // A name too short to shorten enough: the field goes, the detail stays whole.
        let finding = Finding::new(Rule::PrestopExceedsGrace, "spec.x", "y ".repeat(50));
        let warning = Violation::new(finding, Action::Warn, false).warning("rollguard ");
        assert!(
            !warning.contains("spec.x") && !warning.contains("x:"),
            "{warning}"
        );
        assert_eq!(
            short_field("spec.updateStrategy.rollingUpdate.maxUnavailable"),
            "maxUnavailable"
        );
        assert_eq!(
            short_field("spec.strategy.rollingUpdate"),
            "strategy.rollingUpdate"
        );
        assert_eq!(
            short_field("spec.template.spec.containers[a].ports"),
            "containers[a].ports"
        );
    }

    #[test]
    fn warnings_are_cut_between_words_never_inside_a_value() {
        let values: Vec<String> = (0..40).map(|n| format!("value-{n}")).collect();
        let text = format!("rollguard warns x: {}", values.join(" "));
        let cut = short(&text);
        assert!(cut.chars().count() <= MAX_WARNING_CHARS, "{cut}");
        let body = cut.strip_suffix(" …").expect("marked as cut");
        for word in body.split(' ').skip(3) {
            assert!(values.iter().any(|v| v == word), "{word:?} was cut");
        }
    }

    #[test]
    fn unknown_annotation_problem_names_the_key() {
        let finding = annotation_problem(&Problem {
            key: "rollguard.io/shutdown-timout".into(),
            value: "20s".into(),
            origin: Origin::Object,
            reason: "unknown rollguard annotation".into(),
        });
        let warning = Violation::new(finding, Action::Warn, false).warning("rollguard ");
        assert!(
            warning.contains("rollguard.io/shutdown-timout \"20s\""),
            "{warning}"
        );
    }
}
