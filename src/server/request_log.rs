//! The log line of each admission review.

use std::time::Duration;

use tracing::Level;

use crate::admission::{ReviewLog, Route};

/// One line per review. Strings from the request are passed as `&str` so the
/// text format quotes and escapes them: a crafted name cannot forge a line.
pub(super) fn log_review(route: Route, status: u16, log: &ReviewLog, elapsed: Duration) {
    let rules = log.rules.join(",");
    let duration_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    macro_rules! review_event {
        ($level:expr) => {
            tracing::event!(
                $level,
                route = route.name(),
                status,
                uid = log.uid.as_str(),
                kind = log.kind.as_str(),
                namespace = log.namespace.as_str(),
                name = log.name.as_str(),
                operation = log.operation.as_str(),
                outcome = log.outcome.label(),
                rules = rules.as_str(),
                warnings = log.warnings,
                duration_us,
                "admission review"
            )
        };
    }
    match status {
        200..=399 => review_event!(Level::INFO),
        400..=499 => review_event!(Level::WARN),
        _ => review_event!(Level::ERROR),
    }
}
