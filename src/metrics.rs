//! Prometheus metrics: admission reviews, what the rules did, the serving
//! certificate and the connections (docs/operations.md lists them all).
//!
//! Label values come from fixed lists: `kind` and `operation` are read from
//! requests, and any client that reaches the port could otherwise grow the
//! series without bound. Rule names come from the rule table, outcomes from
//! [`Outcome`](crate::outcome::Outcome).

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::admission::{ReviewLog, Route};
use crate::rules::{Action, Rule, RuleKind};

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

/// The kinds rollguard evaluates, and so can skip.
const EVALUATED_KINDS: &[&str] = &["Pod", "Deployment", "StatefulSet", "DaemonSet"];

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

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabels {
    rule: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ViolationLabels {
    rule: &'static str,
    action: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
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
    mutations: Family<RuleLabels, Counter>,
    violations: Family<ViolationLabels, Counter>,
    audit_findings: Family<RuleLabels, Counter>,
    skipped: Family<KindLabels, Counter>,
    certificate_reloads: Counter,
    certificate_reload_errors: Counter,
    certificate_expiry: Gauge,
    connections_open: Gauge,
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
            "TLS handshakes that failed or timed out (an untrusted certificate, or a missing client certificate with --client-ca, shows here)",
            tls_handshake_failures.clone(),
        );
        let mutations = Family::<RuleLabels, Counter>::default();
        registry.register(
            "rollguard_mutations",
            "Objects changed by each mutation rule (enforce mode)",
            mutations.clone(),
        );
        let violations = Family::<ViolationLabels, Counter>::default();
        registry.register(
            "rollguard_violations",
            "Objects that violated each validation rule in enforce mode, by action: deny (rejected) or warn (admitted with a warning, waived denials included)",
            violations.clone(),
        );
        let audit_findings = Family::<RuleLabels, Counter>::default();
        registry.register(
            "rollguard_audit_findings",
            "Objects in audit mode on which each rule would have mutated or fired",
            audit_findings.clone(),
        );
        let skipped = Family::<KindLabels, Counter>::default();
        registry.register(
            "rollguard_skipped",
            "Objects left alone because they carry rollguard.io/mode: off",
            skipped.clone(),
        );
        let certificate_reloads = Counter::default();
        registry.register(
            "rollguard_certificate_reloads",
            "Serving certificates reloaded from changed files",
            certificate_reloads.clone(),
        );
        let certificate_reload_errors = Counter::default();
        registry.register(
            "rollguard_certificate_reload_errors",
            "Changed certificate files refused (unreadable, broken or mismatched pair); the previous certificate is still served",
            certificate_reload_errors.clone(),
        );
        let certificate_expiry = Gauge::default();
        registry.register(
            "rollguard_certificate_expiry_timestamp_seconds",
            "notAfter of the serving certificate, in seconds since the Unix epoch",
            certificate_expiry.clone(),
        );
        let connections_open = Gauge::default();
        registry.register(
            "rollguard_connections_open",
            "Open connections on the admission listener (bounded by --max-connections)",
            connections_open.clone(),
        );
        let build_info = Family::<BuildLabels, Gauge>::default();
        registry.register(
            "rollguard_build_info",
            "Always 1; the version label is the running rollguard version",
            build_info.clone(),
        );
        build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);

        // Create the series up front so dashboards and rate() see zeros.
        for route in Route::ALL {
            let _ = duration.get_or_create(&RouteLabels {
                route: route.name(),
            });
        }
        for rule in Rule::ALL {
            let labels = RuleLabels { rule: rule.name() };
            match rule.kind() {
                RuleKind::Mutation => {
                    let _ = mutations.get_or_create(&labels);
                }
                RuleKind::Validation => {
                    for action in [Action::Deny, Action::Warn] {
                        let _ = violations.get_or_create(&ViolationLabels {
                            rule: rule.name(),
                            action: action.label(),
                        });
                    }
                }
            }
            let _ = audit_findings.get_or_create(&labels);
        }
        for kind in EVALUATED_KINDS {
            let _ = skipped.get_or_create(&KindLabels { kind });
        }
        Metrics {
            registry,
            requests,
            duration,
            tls_handshake_failures,
            mutations,
            violations,
            audit_findings,
            skipped,
            certificate_reloads,
            certificate_reload_errors,
            certificate_expiry,
            connections_open,
        }
    }

    /// Counts one answered review and its latency.
    pub fn record(&self, route: Route, log: &ReviewLog, elapsed: Duration) {
        let labels = RequestLabels {
            route: route.name(),
            kind: known(&log.kind, KNOWN_KINDS),
            operation: known(&log.operation, KNOWN_OPERATIONS),
            outcome: log.outcome.label(),
        };
        self.requests.get_or_create(&labels).inc();
        self.duration
            .get_or_create(&RouteLabels {
                route: route.name(),
            })
            .observe(elapsed.as_secs_f64());
        for rule in &log.mutated {
            self.mutations
                .get_or_create(&RuleLabels { rule: rule.name() })
                .inc();
        }
        for (rule, action) in &log.violations {
            self.violations
                .get_or_create(&ViolationLabels {
                    rule: rule.name(),
                    action: action.label(),
                })
                .inc();
        }
        for rule in &log.audit_findings {
            self.audit_findings
                .get_or_create(&RuleLabels { rule: rule.name() })
                .inc();
        }
        if log.skipped {
            self.skipped
                .get_or_create(&KindLabels {
                    kind: known(&log.kind, EVALUATED_KINDS),
                })
                .inc();
        }
    }

    pub fn record_tls_handshake_failure(&self) {
        self.tls_handshake_failures.inc();
    }

    /// The certificate now served expires at `not_after` (Unix seconds).
    pub fn set_certificate_expiry(&self, not_after: i64) {
        self.certificate_expiry.set(not_after);
    }

    pub fn record_certificate_reload(&self) {
        self.certificate_reloads.inc();
    }

    pub fn record_certificate_reload_error(&self) {
        self.certificate_reload_errors.inc();
    }

    /// Counts a connection on the admission listener as open until the
    /// returned guard is dropped.
    pub fn connection_opened(&self) -> ConnectionGuard {
        self.connections_open.inc();
        ConnectionGuard(self.connections_open.clone())
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

/// Keeps `rollguard_connections_open` right however the connection ends.
#[derive(Debug)]
pub struct ConnectionGuard(Gauge);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.dec();
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
    use crate::outcome::Outcome;

    fn log(kind: &str, operation: &str, outcome: Outcome) -> ReviewLog {
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
            &log("Deployment", "CREATE", Outcome::Patched),
            Duration::from_micros(120),
        );
        metrics.record(
            Route::Mutate,
            &log("Deployment", "CREATE", Outcome::Patched),
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
                &log(&format!("Kind{i}"), &format!("OP{i}"), Outcome::BadRequest),
                Duration::ZERO,
            );
        }
        metrics.record(
            Route::Validate,
            &log("", "", Outcome::Error),
            Duration::ZERO,
        );
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
    fn rule_counters_follow_the_review_log_with_zeros_for_every_rule() {
        let metrics = Metrics::new();
        let before = metrics.encode();
        assert!(
            before.contains(r#"rollguard_mutations_total{rule="prestop-sleep"} 0"#),
            "{before}"
        );
        assert!(
            before.contains(
                r#"rollguard_violations_total{rule="stateful-recreate",action="deny"} 0"#
            ),
            "{before}"
        );
        assert!(
            before.contains(r#"rollguard_skipped_total{kind="Pod"} 0"#),
            "{before}"
        );
        assert!(
            before.contains(&format!(
                "rollguard_build_info{{version=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION")
            )),
            "{before}"
        );
        let review = ReviewLog {
            kind: "Deployment".to_string(),
            mutated: vec![Rule::PrestopSleep, Rule::GracePeriod],
            violations: vec![
                (Rule::StatefulRecreate, Action::Deny),
                (Rule::ReadinessMissing, Action::Warn),
            ],
            audit_findings: vec![Rule::Warmup],
            skipped: true,
            ..log("Deployment", "CREATE", Outcome::Patched)
        };
        metrics.record(Route::Mutate, &review, Duration::ZERO);
        metrics.record(Route::Mutate, &review, Duration::ZERO);
        let text = metrics.encode();
        for line in [
            r#"rollguard_mutations_total{rule="prestop-sleep"} 2"#,
            r#"rollguard_mutations_total{rule="grace-period"} 2"#,
            r#"rollguard_mutations_total{rule="readiness-probe"} 0"#,
            r#"rollguard_violations_total{rule="stateful-recreate",action="deny"} 2"#,
            r#"rollguard_violations_total{rule="readiness-missing",action="warn"} 2"#,
            r#"rollguard_audit_findings_total{rule="warmup"} 2"#,
            r#"rollguard_skipped_total{kind="Deployment"} 2"#,
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
    }

    #[test]
    fn certificate_and_connection_gauges() {
        let metrics = Metrics::new();
        metrics.set_certificate_expiry(1_800_000_000);
        metrics.record_certificate_reload();
        metrics.record_certificate_reload_error();
        metrics.record_certificate_reload_error();
        let open = metrics.connection_opened();
        let text = metrics.encode();
        for line in [
            "rollguard_certificate_expiry_timestamp_seconds 1800000000",
            "rollguard_certificate_reloads_total 1",
            "rollguard_certificate_reload_errors_total 2",
            "rollguard_connections_open 1",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        drop(open);
        assert!(metrics.encode().contains("rollguard_connections_open 0"));
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
