//! The four stories rollguard comes from, as realistic manifests under
//! `examples/`, with the exact fields rollguard admits.

mod support;

use rollguard::policy::{evaluate, EffectiveMode, EvalRequest, Mode, Stage, Verdict};
use rollguard::rules::Rule;
use rollguard::settings::Settings;
use rollguard::workload::WorkloadKind;
use serde_json::{json, Value};
use support::fixtures::example;

fn enforce(object: &Value) -> Verdict {
    let kind = WorkloadKind::from_object(object).unwrap();
    let request = EvalRequest {
        kind,
        object,
        stage: Stage::Full,
        mode: Mode::Enforce,
    };
    evaluate(&request, &Settings::default()).unwrap()
}

fn at<'a>(object: &'a Value, pointer: &str) -> &'a Value {
    object.pointer(pointer).unwrap_or(&Value::Null)
}

fn fired(verdict: &Verdict) -> Vec<Rule> {
    verdict.mutations.iter().map(|m| m.rule).collect()
}

#[test]
fn stateful_ingester_rolls_one_at_a_time_and_gets_its_flush_time() {
    let verdict = enforce(&example("01-stateful-ingester.yaml"));
    let admitted = &verdict.admitted;
    assert_eq!(verdict.mode, EffectiveMode::Enforce);
    assert!(verdict.violations.is_empty(), "{:?}", verdict.violations);
    assert_eq!(
        at(admitted, "/spec/strategy/rollingUpdate/maxSurge"),
        &json!(0)
    );
    assert_eq!(
        at(admitted, "/spec/strategy/rollingUpdate/maxUnavailable"),
        &json!(1)
    );
    assert_eq!(
        at(
            admitted,
            "/spec/template/spec/containers/0/lifecycle/preStop"
        ),
        &json!({"sleep": {"seconds": 10}})
    );
    // preStop sleep 10 + shutdown-timeout 40m + buffer 5.
    assert_eq!(
        at(
            admitted,
            "/spec/template/spec/terminationGracePeriodSeconds"
        ),
        &json!(2415)
    );
    // minReadySeconds covers the flush (the grace period), so the controller
    // stops the next pod only after the previous one is gone; the deadline
    // is raised with it so the API server accepts the object.
    assert_eq!(at(admitted, "/spec/minReadySeconds"), &json!(2415));
    assert_eq!(at(admitted, "/spec/progressDeadlineSeconds"), &json!(3015));
    // It already had a readiness probe: kept as written.
    assert_eq!(
        at(admitted, "/spec/template/spec/containers/0/readinessProbe"),
        &json!({"httpGet": {"path": "/ready", "port": 80}})
    );
    assert_eq!(
        fired(&verdict),
        [
            Rule::PrestopSleep,
            Rule::GracePeriod,
            // minReadySeconds, progressDeadlineSeconds, maxSurge, maxUnavailable.
            Rule::StatefulSerial,
            Rule::StatefulSerial,
            Rule::StatefulSerial,
            Rule::StatefulSerial
        ]
    );
    // Pods the ReplicaSet creates carry the settings and so reach the same decisions.
    assert_eq!(
        at(admitted, "/spec/template/metadata/annotations"),
        &json!({"rollguard.io/profile": "stateful", "rollguard.io/shutdown-timeout": "40m"})
    );
    assert_eq!(
        at(admitted, "/metadata/annotations/rollguard.io~1mutated"),
        &json!("prestop-sleep,grace-period,stateful-serial")
    );
}

#[test]
fn single_replica_consumer_is_made_surge_first_with_a_true_grace_period() {
    let verdict = enforce(&example("02-pull-based-consumer.yaml"));
    let admitted = &verdict.admitted;
    assert!(verdict.violations.is_empty(), "{:?}", verdict.violations);
    assert_eq!(
        at(admitted, "/spec/strategy/rollingUpdate/maxUnavailable"),
        &json!(0)
    );
    assert_eq!(
        at(admitted, "/spec/strategy/rollingUpdate/maxSurge"),
        &json!("100%")
    );
    // shutdown-timeout 20 + buffer 5, no preStop sleep: it was 400.
    assert_eq!(
        at(
            admitted,
            "/spec/template/spec/terminationGracePeriodSeconds"
        ),
        &json!(25)
    );
    let container = at(admitted, "/spec/template/spec/containers/0");
    assert!(
        container.get("lifecycle").is_none(),
        "no preStop for a pull-based consumer"
    );
    assert!(
        container.get("readinessProbe").is_none(),
        "no probe guessed from a metrics port"
    );
}

#[test]
fn http_service_without_prestop_gets_a_native_sleep_and_keeps_its_shutdown_budget() {
    let verdict = enforce(&example("03-http-service.yaml"));
    let admitted = &verdict.admitted;
    assert!(verdict.violations.is_empty(), "{:?}", verdict.violations);
    assert_eq!(
        at(admitted, "/spec/template/spec/containers/0/lifecycle"),
        &json!({"preStop": {"sleep": {"seconds": 10}}})
    );
    assert_eq!(
        at(
            admitted,
            "/spec/template/spec/terminationGracePeriodSeconds"
        ),
        &json!(40)
    );
    assert_eq!(
        at(admitted, "/spec/strategy/rollingUpdate"),
        &json!({"maxSurge": 1, "maxUnavailable": 0})
    );
    assert_eq!(fired(&verdict), [Rule::PrestopSleep, Rule::GracePeriod]);
}

#[test]
fn jvm_service_with_warmup_waits_and_adds_one_pod_at_a_time() {
    let verdict = enforce(&example("04-jvm-warmup.yaml"));
    let admitted = &verdict.admitted;
    assert!(verdict.violations.is_empty(), "{:?}", verdict.violations);
    assert_eq!(at(admitted, "/spec/minReadySeconds"), &json!(3));
    assert_eq!(
        at(admitted, "/spec/strategy/rollingUpdate/maxUnavailable"),
        &json!(0)
    );
    // Written explicitly: 25% would be more than one pod at a larger scale.
    assert_eq!(
        at(admitted, "/spec/strategy/rollingUpdate/maxSurge"),
        &json!(1)
    );
    assert_eq!(fired(&verdict), [Rule::Warmup, Rule::Warmup, Rule::Warmup]);
    // Its own preStop sleep is kept, and the grace period untouched.
    assert_eq!(
        at(
            admitted,
            "/spec/template/spec/containers/0/lifecycle/preStop"
        ),
        &json!({"sleep": {"seconds": 5}})
    );
    assert_eq!(
        at(
            admitted,
            "/spec/template/spec/terminationGracePeriodSeconds"
        ),
        &Value::Null
    );
}

#[test]
fn unsafe_examples_are_denied_with_the_rule_that_explains_why() {
    for (name, rules) in [
        (
            "10-denied-stateful-recreate.yaml",
            vec![Rule::StatefulRecreate],
        ),
        (
            "11-denied-prestop-exceeds-grace.yaml",
            vec![Rule::PrestopExceedsGrace],
        ),
        (
            "12-denied-all-unavailable.yaml",
            vec![Rule::InvalidAnnotation, Rule::RolloutAllUnavailable],
        ),
    ] {
        let verdict = enforce(&example(name));
        assert!(verdict.denied(), "{name}");
        let denied: Vec<Rule> = verdict.denials().map(|v| v.rule).collect();
        assert_eq!(denied, rules, "{name}");
    }
}
