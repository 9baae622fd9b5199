//! The rollout rules hold under the controller model: what rollguard admits
//! in enforce mode rolls stateful pods one flush at a time and keeps a ready
//! pod through a broken release; and what it writes is never refused by the
//! API server's own validation (minReadySeconds < progressDeadlineSeconds,
//! native preStop sleep < grace period).

use proptest::prelude::*;
use rollguard::policy::{evaluate, EvalRequest, Mode, Stage, Verdict};
use rollguard::rollout::scenario::{from_object, Assumptions};
use rollguard::rollout::simulate;
use rollguard::rules::Rule;
use rollguard::settings::Settings;
use rollguard::workload::WorkloadKind;
use serde_json::{json, Value};

fn enforce(object: &Value) -> Verdict {
    let request = EvalRequest {
        kind: WorkloadKind::from_object(object).unwrap(),
        object,
        stage: Stage::Full,
        mode: Mode::Enforce,
    };
    evaluate(&request, &Settings::default()).unwrap()
}

fn int_or_percent() -> impl Strategy<Value = Value> {
    prop_oneof![
        (0..4i32).prop_map(Value::from),
        prop::sample::select(vec!["0%", "25%", "50%", "100%"]).prop_map(Value::from),
    ]
}

#[allow(clippy::too_many_arguments)]
fn deployment(
    replicas: i64,
    recreate: bool,
    surge: Value,
    unavailable: Value,
    min_ready: Option<i64>,
    deadline: Option<i64>,
    grace: Option<i64>,
    annotations: Value,
    pre_stop: Option<i64>,
) -> Value {
    let strategy = if recreate {
        json!({"type": "Recreate"})
    } else {
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}})
    };
    let mut container =
        json!({"name": "app", "image": "app:2", "ports": [{"containerPort": 8080}]});
    if let Some(s) = pre_stop {
        container["lifecycle"] = json!({"preStop": {"sleep": {"seconds": s}}});
    }
    let mut d = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "w", "annotations": annotations},
        "spec": {
            "replicas": replicas, "strategy": strategy,
            "selector": {"matchLabels": {"app": "w"}},
            "template": {"metadata": {"labels": {"app": "w"}}, "spec": {"containers": [container]}}
        }
    });
    if let Some(m) = min_ready {
        d["spec"]["minReadySeconds"] = json!(m);
    }
    if let Some(p) = deadline {
        d["spec"]["progressDeadlineSeconds"] = json!(p);
    }
    if let Some(g) = grace {
        d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = json!(g);
    }
    d
}

fn annotations() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec!["stateful", "pull-based", "default"]),
        prop::option::of(prop::sample::select(vec!["5s", "30s", "2m", "40m"])),
        prop::option::of(prop::sample::select(vec!["10s", "1m", "15m"])),
    )
        .prop_map(|(profile, timeout, warmup)| {
            let mut a = json!({"rollguard.io/profile": profile});
            if let Some(t) = timeout {
                a["rollguard.io/shutdown-timeout"] = json!(t);
            }
            if let Some(w) = warmup {
                a["rollguard.io/warmup"] = json!(w);
            }
            a
        })
}

prop_compose! {
    fn any_deployment()(
        replicas in 0..7i64,
        recreate in prop::bool::weighted(0.15),
        surge in int_or_percent(),
        unavailable in int_or_percent(),
        min_ready in prop::option::of(0..200i64),
        deadline in prop::option::of(prop::sample::select(vec![30i64, 120, 600, 3600])),
        grace in prop::option::of(0..120i64),
        annotations in annotations(),
        pre_stop in prop::option::of(0..40i64),
    ) -> Value {
        deployment(replicas, recreate, surge, unavailable, min_ready, deadline, grace, annotations, pre_stop)
    }
}

fn at_i64(object: &Value, pointer: &str) -> Option<i64> {
    object.pointer(pointer).and_then(Value::as_i64)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn admitted_rollouts_flush_one_at_a_time_and_survive_a_broken_release(
        object in any_deployment(),
        ready_after in prop::sample::select(vec![0u32, 3, 30]),
    ) {
        let verdict = enforce(&object);
        prop_assume!(!verdict.denied());
        let admitted = &verdict.admitted;
        let stateful = object.pointer("/metadata/annotations/rollguard.io~1profile") == Some(&json!("stateful"));
        let rolling = admitted.pointer("/spec/strategy/type") != Some(&json!("Recreate"));
        let replicas = at_i64(admitted, "/spec/replicas").unwrap_or(1);
        for never_ready in [false, true] {
            let assume = Assumptions { ready_after: Some(ready_after), shutdown: None, new_never_ready: never_ready };
            let scenario = from_object(admitted, assume).unwrap().unwrap();
            let timeline = simulate(&scenario);
            if stateful {
                prop_assert!(timeline.figures.max_terminating <= 1,
                    "stateful: {} flushing at once\n{}", timeline.figures.max_terminating, admitted);
            }
            if never_ready && rolling && replicas >= 1 {
                prop_assert!(timeline.figures.min_ready >= 1,
                    "broken release takes the service down\n{}", admitted);
            }
        }
    }

    #[test]
    fn the_api_server_accepts_what_rollguard_writes(object in any_deployment()) {
        let original_min_ready = at_i64(&object, "/spec/minReadySeconds").unwrap_or(0);
        let original_deadline = at_i64(&object, "/spec/progressDeadlineSeconds").unwrap_or(600);
        // The API server refuses the user's own invalid object itself; only what rollguard writes counts.
        prop_assume!(original_min_ready < original_deadline);
        let verdict = enforce(&object);
        let admitted = &verdict.admitted;
        let min_ready = at_i64(admitted, "/spec/minReadySeconds").unwrap_or(0);
        let deadline = at_i64(admitted, "/spec/progressDeadlineSeconds").unwrap_or(600);
        prop_assert!(min_ready < deadline, "minReadySeconds {min_ready} >= progressDeadlineSeconds {deadline}");
        prop_assert!(!verdict.violations.iter().any(|v| v.rule == Rule::MinReadyExceedsDeadline));
        let grace = at_i64(admitted, "/spec/template/spec/terminationGracePeriodSeconds").unwrap_or(30);
        let original_sleep = at_i64(&object, "/spec/template/spec/containers/0/lifecycle/preStop/sleep/seconds");
        let original_grace = at_i64(&object, "/spec/template/spec/terminationGracePeriodSeconds").unwrap_or(30);
        if original_sleep.is_none_or(|s| s <= original_grace) {
            if let Some(sleep) = at_i64(admitted, "/spec/template/spec/containers/0/lifecycle/preStop/sleep/seconds") {
                prop_assert!(sleep <= grace, "preStop sleep {sleep} > grace {grace}");
            }
        }
    }
}

#[test]
fn a_fifteen_minute_warmup_raises_the_deadline_with_min_ready() {
    let d = deployment(
        3,
        false,
        json!(1),
        json!(0),
        None,
        None,
        None,
        json!({"rollguard.io/warmup": "15m"}),
        None,
    );
    let admitted = enforce(&d).admitted;
    assert_eq!(at_i64(&admitted, "/spec/minReadySeconds"), Some(900));
    assert_eq!(
        at_i64(&admitted, "/spec/progressDeadlineSeconds"),
        Some(1500)
    );
}

#[test]
fn stateful_recreate_is_not_reported_for_one_replica() {
    let stateful = json!({"rollguard.io/profile": "stateful"});
    let one = deployment(
        1,
        true,
        json!(0),
        json!(0),
        None,
        None,
        None,
        stateful.clone(),
        None,
    );
    assert!(!enforce(&one)
        .violations
        .iter()
        .any(|v| v.rule == Rule::StatefulRecreate));
    let three = deployment(
        3,
        true,
        json!(0),
        json!(0),
        None,
        None,
        None,
        stateful,
        None,
    );
    assert_detail(&enforce(&three), Rule::StatefulRecreate, "3 flush together");
}

/// The rule fired and its message cites the simulated consequence.
fn assert_detail(verdict: &Verdict, rule: Rule, consequence: &str) {
    let found = verdict.violations.iter().find(|v| v.rule == rule);
    let detail = found.map_or("", |v| v.detail.as_str());
    assert!(detail.contains(consequence), "{rule:?}: {detail:?}");
    assert!(
        detail.len() <= 120,
        "{rule:?} message over 120 chars: {detail}"
    );
}

#[test]
fn the_measured_stateful_rollout_is_serial_once_admitted() {
    // 3 replicas, stateful, 30 s grace: as written 0/1 lets all 3 flush at once.
    let d = deployment(
        3,
        false,
        json!(0),
        json!(1),
        None,
        None,
        Some(30),
        json!({"rollguard.io/profile": "stateful"}),
        None,
    );
    let assume = Assumptions {
        ready_after: Some(3),
        shutdown: Some(30),
        new_never_ready: false,
    };
    let written = simulate(&from_object(&d, assume).unwrap().unwrap());
    assert_eq!(written.figures.max_terminating, 3);
    let admitted = enforce(&d).admitted;
    let after = simulate(&from_object(&admitted, assume).unwrap().unwrap());
    assert_eq!(after.figures.max_terminating, 1);
}

fn stateful_set(replicas: i64, policy: &str, update: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db", "annotations": {"rollguard.io/profile": "stateful"}},
        "spec": {
            "replicas": replicas, "podManagementPolicy": policy, "updateStrategy": update,
            "selector": {"matchLabels": {"app": "db"}}, "serviceName": "db",
            "template": {"metadata": {"labels": {"app": "db"}},
                "spec": {"containers": [{"name": "db", "image": "db:2", "ports": [{"containerPort": 5432}]}]}}
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn admitted_stateful_sets_flush_one_at_a_time(
        replicas in 0..8i64,
        parallel in any::<bool>(),
        max_unavailable in int_or_percent(),
        partition in 0..4i64,
        ready_after in prop::sample::select(vec![0u32, 3, 30]),
    ) {
        let update = json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": max_unavailable, "partition": partition}});
        let set = stateful_set(replicas, if parallel { "Parallel" } else { "OrderedReady" }, update);
        let verdict = enforce(&set);
        prop_assume!(!verdict.denied());
        let assume = Assumptions { ready_after: Some(ready_after), shutdown: None, new_never_ready: false };
        let timeline = simulate(&from_object(&verdict.admitted, assume).unwrap().unwrap());
        prop_assert!(timeline.figures.max_terminating <= 1, "{}", verdict.admitted);
    }
}

#[test]
fn stateful_set_rules_follow_the_model() {
    let update =
        |n: Value| json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": n}});
    let parallel = enforce(&stateful_set(3, "Parallel", update(json!(2))));
    assert_detail(
        &parallel,
        Rule::StatefulParallel,
        "2 stateful pods flush at once",
    );
    assert!(parallel.denied());
    assert!(!enforce(&stateful_set(3, "OrderedReady", update(json!(1)))).denied());
    let on_delete = enforce(&stateful_set(
        3,
        "OrderedReady",
        json!({"type": "OnDelete"}),
    ));
    assert!(!on_delete.denied());
    assert!(on_delete
        .violations
        .iter()
        .any(|v| v.rule == Rule::StatefulOnDelete));
}

/// `/mutate` answers for an object the API server would refuse itself.
fn mutate_reply(object: Value) -> Value {
    use rollguard::admission::{answer, PolicyConfig, Route};
    let review = json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "u-1",
            "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "operation": "CREATE", "userInfo": {}, "object": object,
        }
    });
    let reply = answer(
        Route::Mutate,
        &serde_json::to_vec(&review).unwrap(),
        &PolicyConfig::default(),
    );
    assert_eq!(reply.status, 200);
    serde_json::from_slice(&reply.body).unwrap()
}

#[test]
fn mutate_denies_what_the_api_server_would_refuse_with_rollguards_message() {
    // minReadySeconds 900 >= progressDeadlineSeconds 600, written by the user:
    // the validating webhook would never run, so /mutate says which rule and how to fix.
    let d = deployment(
        3,
        false,
        json!(1),
        json!(0),
        Some(900),
        Some(600),
        None,
        json!({}),
        None,
    );
    let reply = mutate_reply(d);
    assert_eq!(reply["response"]["allowed"], json!(false), "{reply}");
    let message = reply["response"]["status"]["message"].as_str().unwrap();
    assert!(message.contains("min-ready-exceeds-deadline"), "{message}");
    assert!(message.contains("progressDeadlineSeconds"), "{message}");
    // The same object with a deadline above it is only mutated.
    let ok = deployment(
        3,
        false,
        json!(1),
        json!(0),
        Some(900),
        Some(1200),
        None,
        json!({}),
        None,
    );
    assert_eq!(mutate_reply(ok)["response"]["allowed"], json!(true));
}
