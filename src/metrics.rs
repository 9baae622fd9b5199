//! Prometheus metrics for the admission routes.
//!
//! Label values come from fixed lists: `kind` and `operation` are read from
//! requests, and any client that reaches the port could otherwise grow the
//! series without bound.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::admission::{ReviewLog, Route};

/// Content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Kinds counted under their own name; anything else counts as `other`.
const KNOWN_KINDS: &[&str] = &[
    "Pod",
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "ReplicationController",
    "Job",
    "CronJob",
    "PodDisruptionBudget",
    "HorizontalPodAutoscaler",
    "Service",
];

const KNOWN_OPERATIONS: &[&str] = &["CREATE", "UPDATE", "DELETE", "CONNECT"];

const KNOWN_OUTCOMES: &[&str] = &[
    "allowed",
    "patched",
    "denied",
    "skipped",
    "ignored",
    "bad-request",
    "too-large",
    "error",
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    kind: &'static str,
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

fn duration_histogram() -> Histogram {
    // 50 µs .. ~0.4 s: reviews are CPU-only and usually sub-millisecond.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 14))
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    tls_handshake_failures: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let duration = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            duration_histogram,
        );
        let tls_handshake_failures = Counter::default();
        registry.register(
            "rollguard_admission_requests",
            "Admission reviews answered, by route, object kind, operation and outcome",
            requests.clone(),
        );
        registry.register(
            "rollguard_admission_duration_seconds",
            "Time to answer an admission review once its body is read",
            duration.clone(),
        );
        registry.register(
            "rollguard_tls_handshake_failures",
            "TLS handshakes that failed or timed out (an untrusted certificate shows here)",
            tls_handshake_failures.clone(),
        );
        // Create the per-route histograms up front so dashboards see zeros.
        for route in Route::ALL {
            let _ = duration.get_or_create(&RouteLabels {
                route: route.name(),
            });
        }
        Metrics {
            registry,
            requests,
            duration,
            tls_handshake_failures,
        }
    }

    /// Counts one answered review and its latency.
    pub fn record(&self, route: Route, log: &ReviewLog, elapsed: Duration) {
        let labels = RequestLabels {
            route: route.name(),
            kind: known(&log.kind, KNOWN_KINDS),
            operation: known(&log.operation, KNOWN_OPERATIONS),
            outcome: known(log.outcome, KNOWN_OUTCOMES),
        };
        self.requests.get_or_create(&labels).inc();
        self.duration
            .get_or_create(&RouteLabels {
                route: route.name(),
            })
            .observe(elapsed.as_secs_f64());
    }

    pub fn record_tls_handshake_failure(&self) {
        self.tls_handshake_failures.inc();
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Maps a request-supplied value onto a fixed label: empty → `none`,
/// unlisted → `other`.
fn known(value: &str, list: &[&'static str]) -> &'static str {
    if value.is_empty() {
        return "none";
    }
    list.iter()
        .copied()
        .find(|known| *known == value)
        .unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(kind: &str, operation: &str, outcome: &'static str) -> ReviewLog {
        ReviewLog {
            kind: kind.to_string(),
            operation: operation.to_string(),
            outcome,
            ..ReviewLog::default()
        }
    }

    #[test]
    fn records_counter_and_histogram_with_labels() {
        let metrics = Metrics::new();
        metrics.record(
            Route::Mutate,
            &log("Deployment", "CREATE", "patched"),
            Duration::from_micros(120),
        );
        metrics.record(
            Route::Mutate,
            &log("Deployment", "CREATE", "patched"),
            Duration::from_micros(80),
        );
        let text = metrics.encode();
        assert!(
            text.contains(
                r#"rollguard_admission_requests_total{route="mutate",kind="Deployment",operation="CREATE",outcome="patched"} 2"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"rollguard_admission_duration_seconds_count{route="mutate"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"rollguard_admission_duration_seconds_bucket{le="0.0001",route="mutate"} 1"#
            ) || text.contains(
                r#"rollguard_admission_duration_seconds_bucket{route="mutate",le="0.0001"} 1"#
            ),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn request_supplied_values_cannot_create_new_series() {
        let metrics = Metrics::new();
        for i in 0..50 {
            metrics.record(
                Route::Validate,
                &log(&format!("Kind{i}"), &format!("OP{i}"), "bad-request"),
                Duration::ZERO,
            );
        }
        metrics.record(Route::Validate, &log("", "", "error"), Duration::ZERO);
        let text = metrics.encode();
        assert!(
            text.contains(
                r#"rollguard_admission_requests_total{route="validate",kind="other",operation="other",outcome="bad-request"} 50"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"kind="none",operation="none",outcome="error"} 1"#),
            "{text}"
        );
        assert!(!text.contains("Kind1"), "{text}");
    }

    #[test]
    fn histograms_exist_for_every_route_before_any_request() {
        let text = Metrics::new().encode();
        for route in Route::ALL {
            assert!(
                text.contains(&format!(
                    "rollguard_admission_duration_seconds_count{{route=\"{}\"}} 0",
                    route.name()
                )),
                "{text}"
            );
        }
        assert!(
            text.contains("rollguard_tls_handshake_failures_total 0"),
            "{text}"
        );
    }
}
