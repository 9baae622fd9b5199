//! What became of one admission review: the `outcome` of its log line and
//! of `rollguard_admission_requests_total` (docs/operations.md lists them).

/// What became of one admission review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Outcome {
    /// Allowed unchanged.
    Allowed,
    /// Allowed with a JSON Patch.
    Patched,
    Denied,
    /// Report-only: allowed, the findings as warnings.
    Audited,
    /// Left alone: `rollguard.io/mode: off`, or more containers than reviewed.
    Skipped,
    /// A kind or operation rollguard does not handle.
    Ignored,
    /// 400: the body is not an AdmissionReview, or could not be read.
    BadRequest,
    /// 413: the body is over the size limit.
    TooLarge,
    /// 408: not answered within the request's time bound.
    Timeout,
    /// 503: no room in the budget of buffered bodies in time.
    Busy,
    /// 500. Also what a review that never set its outcome counts as.
    #[default]
    Error,
}

impl Outcome {
    pub const ALL: [Outcome; 11] = [
        Outcome::Allowed,
        Outcome::Patched,
        Outcome::Denied,
        Outcome::Audited,
        Outcome::Skipped,
        Outcome::Ignored,
        Outcome::BadRequest,
        Outcome::TooLarge,
        Outcome::Timeout,
        Outcome::Busy,
        Outcome::Error,
    ];

    /// The label in logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Patched => "patched",
            Outcome::Denied => "denied",
            Outcome::Audited => "audited",
            Outcome::Skipped => "skipped",
            Outcome::Ignored => "ignored",
            Outcome::BadRequest => "bad-request",
            Outcome::TooLarge => "too-large",
            Outcome::Timeout => "timeout",
            Outcome::Busy => "busy",
            Outcome::Error => "error",
        }
    }
}

/// Compares by label, as the logs and metrics show it.
impl PartialEq<&str> for Outcome {
    fn eq(&self, label: &&str) -> bool {
        self.label() == *label
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_distinct_and_all_documented() {
        let operations = include_str!("../docs/operations.md");
        let row = operations
            .lines()
            .find(|line| line.starts_with("| `rollguard_admission_requests_total`"))
            .expect("the requests metric in docs/operations.md");
        for (i, outcome) in Outcome::ALL.into_iter().enumerate() {
            assert!(
                Outcome::ALL[..i]
                    .iter()
                    .all(|earlier| earlier.label() != outcome.label()),
                "{outcome:?}"
            );
            assert!(
                row.contains(&format!("`{}`", outcome.label())),
                "{outcome:?} in {row}"
            );
        }
    }
}
