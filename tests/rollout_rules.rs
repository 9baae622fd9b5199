//! The rollout rules hold under the controller model: what rollguard admits
//! in enforce mode rolls stateful pods one flush at a time and keeps a ready
//! pod through a broken release; and what it writes is never refused by the
//! API server's own validation (minReadySeconds < progressDeadlineSeconds,
//! native preStop sleep < grace period).

use proptest::prelude::*;
use rollguard::admission::{answer, PolicyConfig, Route};
use rollguard::policy::{evaluate, EvalRequest, Mode, Stage, Verdict};
use rollguard::rollout::scenario::{from_object, Assumptions};
use rollguard::rollout::simulate;
use rollguard::rules::Rule;
use rollguard::settings::Settings;
use rollguard::workload::WorkloadKind;
use serde_json::{json, Value};

fn enforce(object: &Value) -> Verdict {
    enforce_with(object, &Settings::default())
}

fn enforce_with(object: &Value, settings: &Settings) -> Verdict {
    let request = EvalRequest {
        kind: WorkloadKind::from_object(object).unwrap(),
        object,
        stage: Stage::Full,
        mode: Mode::Enforce,
    };
    evaluate(&request, settings).unwrap()
}

/// Default settings, or `stateful-serial` only suggested: then nothing but
/// the denials stands between a stateful object and parallel flushes.
fn settings(serial_suggested_only: bool) -> Settings {
    let mut settings = Settings::default();
    if serial_suggested_only {
        settings
            .rule_actions
            .insert(Rule::StatefulSerial, rollguard::rules::Action::Warn);
    }
    settings
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

/// Grace periods an app really uses, and the type limits: minReadySeconds
/// and progressDeadlineSeconds are int32, the grace period int64.
fn grace_seconds() -> impl Strategy<Value = i64> {
    let limit = i64::from(i32::MAX);
    prop_oneof![
        8 => 0..120i64,
        1 => (limit - 700)..(limit + 10),
        1 => prop::sample::select(vec![3_000_000_000, 9_223_372_036_854_775_800, i64::MAX]),
    ]
}

/// Replica counts a `kubectl scale` or an autoscaler can bring an admitted
/// object to, without the webhook seeing it.
const SCALED_TO: [i64; 5] = [1, 2, 3, 5, 10];

/// The admitted object with `spec.replicas` changed as the scale subresource does.
fn scaled(admitted: &Value, replicas: i64) -> Value {
    let mut object = admitted.clone();
    object["spec"]["replicas"] = json!(replicas);
    object
}

fn max_flushing(object: &Value, ready_after: u32) -> i32 {
    let assume = Assumptions {
        ready_after: Some(ready_after),
        shutdown: None,
        new_never_ready: false,
    };
    simulate(&from_object(object, assume).unwrap().unwrap())
        .figures
        .max_terminating
}

prop_compose! {
    fn any_deployment()(
        replicas in 0..7i64,
        recreate in prop::bool::weighted(0.15),
        surge in int_or_percent(),
        unavailable in int_or_percent(),
        min_ready in prop::option::of(0..200i64),
        deadline in prop::option::of(prop::sample::select(vec![30i64, 120, 600, 3600])),
        grace in prop::option::of(grace_seconds()),
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
        serial_suggested_only in any::<bool>(),
    ) {
        let verdict = enforce_with(&object, &settings(serial_suggested_only));
        prop_assume!(!verdict.denied());
        let admitted = &verdict.admitted;
        let stateful = object.pointer("/metadata/annotations/rollguard.io~1profile") == Some(&json!("stateful"));
        let rolling = admitted.pointer("/spec/strategy/type") != Some(&json!("Recreate"));
        let replicas = at_i64(admitted, "/spec/replicas").unwrap_or(1);
        if stateful {
            // At the admitted count and at every count a scale reaches. Not
            // for Recreate: admitted only at 1 replica (serial and Recreate
            // are then the same), and the rollout at a count scaled up since
            // starts with an UPDATE the webhook judges at the live replicas,
            // which denies stateful-recreate.
            let counts = if rolling { &SCALED_TO[..] } else { &[] };
            for n in std::iter::once(replicas).chain(counts.iter().copied()) {
                let flushing = max_flushing(&scaled(admitted, n), ready_after);
                prop_assert!(flushing <= 1,
                    "stateful at {n} replicas: {flushing} flushing at once\n{}", admitted);
            }
        }
        // Recreate is excluded by the user's explicit choice: it stops every
        // pod before starting the new version, so a broken release leaves 0
        // ready by definition (docs/rollouts.md, "Recreate").
        if rolling && replicas >= 1 {
            let assume = Assumptions { ready_after: Some(ready_after), shutdown: None, new_never_ready: true };
            let timeline = simulate(&from_object(admitted, assume).unwrap().unwrap());
            prop_assert!(timeline.figures.min_ready >= 1,
                "broken release takes the service down\n{}", admitted);
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
        for (field, value) in [("minReadySeconds", min_ready), ("progressDeadlineSeconds", deadline)] {
            prop_assert!(i32::try_from(value).is_ok(), "{field} {value} is not an int32");
        }
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
        for n in std::iter::once(replicas).chain(SCALED_TO) {
            let flushing = max_flushing(&scaled(&verdict.admitted, n), ready_after);
            prop_assert!(flushing <= 1, "at {n} replicas: {flushing} flushing\n{}", verdict.admitted);
        }
    }
}

#[test]
fn stateful_set_rules_follow_the_model() {
    let update =
        |n: Value| json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": n}});
    let parallel = enforce(&stateful_set(3, "Parallel", update(json!(2))));
    assert_detail(&parallel, Rule::StatefulParallel, "2 flush at once");
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
    reply(Route::Mutate, "CREATE", object)
}

/// The reply of `route` to a review of `object`; an UPDATE carries the same
/// object as its old one (what changed does not matter to the rules).
fn reply(route: Route, operation: &str, object: Value) -> Value {
    let kind = WorkloadKind::from_object(&object).unwrap().name();
    let resource = format!("{}s", kind.to_lowercase());
    let mut request = json!({
        "uid": "u-1",
        "kind": {"group": "apps", "version": "v1", "kind": kind},
        "resource": {"group": "apps", "version": "v1", "resource": resource},
        "operation": operation, "userInfo": {}, "object": object,
    });
    if operation == "UPDATE" {
        request["oldObject"] = request["object"].clone();
    }
    let review =
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request});
    let reply = answer(
        route,
        &serde_json::to_vec(&review).unwrap(),
        &PolicyConfig::default(),
    );
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    serde_json::from_slice(&reply.body).unwrap()
}

/// The object with the reply's JSON Patch applied.
fn patched(object: &Value, reply: &Value) -> Value {
    use base64::Engine as _;
    let mut object = object.clone();
    if let Some(text) = reply["response"]["patch"].as_str() {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap();
        let patch: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
        json_patch::patch(&mut object, &patch).unwrap();
    }
    object
}

fn denial_message(reply: &Value) -> &str {
    reply["response"]["status"]["message"]
        .as_str()
        .unwrap_or("")
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

#[test]
fn mutate_denies_only_the_prestop_sleeps_the_api_server_refuses() {
    let with_pre_stop = |pre_stop: Value| {
        let mut d = deployment(
            3,
            false,
            json!(1),
            json!(0),
            None,
            None,
            Some(30),
            json!({}),
            None,
        );
        d["spec"]["template"]["spec"]["containers"][0]["lifecycle"] = json!({"preStop": pre_stop});
        d
    };
    // validateSleepAction refuses sleep.Seconds > gracePeriod: /mutate denies it
    // with rollguard's message, as the validating webhook would never run.
    let refused = mutate_reply(with_pre_stop(json!({"sleep": {"seconds": 31}})));
    assert_eq!(refused["response"]["allowed"], json!(false), "{refused}");
    let message = denial_message(&refused);
    assert!(message.contains("prestop-exceeds-grace"), "{message}");
    assert!(
        message.contains("rollguard.io/waive: prestop-exceeds-grace"),
        "{message}"
    );
    // An equal native sleep and any exec sleep pass the API server: /mutate
    // admits them, /validate keeps rollguard's own rule (>= grace).
    for pre_stop in [
        json!({"sleep": {"seconds": 30}}),
        json!({"exec": {"command": ["sleep", "45"]}}),
        json!({"exec": {"command": ["sh", "-c", "sleep 30"]}}),
    ] {
        let object = with_pre_stop(pre_stop.clone());
        let mutated = mutate_reply(object.clone());
        assert_eq!(
            mutated["response"]["allowed"],
            json!(true),
            "{pre_stop}: {mutated}"
        );
        let validated = reply(Route::Validate, "CREATE", patched(&object, &mutated));
        assert_eq!(validated["response"]["allowed"], json!(false), "{pre_stop}");
        assert!(denial_message(&validated).contains("prestop-exceeds-grace"));
    }
}

#[test]
fn grace_periods_at_the_type_limits_are_answered_never_a_500_or_an_invalid_int32() {
    let stateful = json!({"rollguard.io/profile": "stateful"});
    for grace in [
        2_147_483_000_i64,
        2_147_483_646,
        2_147_483_647,
        3_000_000_000,
        9_223_372_036_854_775_800,
        i64::MAX,
    ] {
        let d = deployment(
            3,
            false,
            json!(0),
            json!(1),
            None,
            None,
            Some(grace),
            stateful.clone(),
            None,
        );
        let mutated = mutate_reply(d.clone());
        let admitted = patched(&d, &mutated);
        let min_ready = at_i64(&admitted, "/spec/minReadySeconds").unwrap_or(0);
        let deadline = at_i64(&admitted, "/spec/progressDeadlineSeconds").unwrap_or(600);
        assert!(
            i32::try_from(min_ready).is_ok() && i32::try_from(deadline).is_ok(),
            "grace {grace}: {min_ready}/{deadline}"
        );
        assert!(
            min_ready < deadline,
            "grace {grace}: {min_ready} >= {deadline}"
        );
        let validated = reply(Route::Validate, "CREATE", admitted.clone());
        let covered = min_ready >= grace;
        assert_eq!(
            validated["response"]["allowed"],
            json!(covered),
            "grace {grace}: {validated}"
        );
        if !covered {
            let message = denial_message(&validated);
            assert!(
                message.contains("stateful-parallel") && message.contains("flushes may overlap"),
                "{message}"
            );
        }
    }
}

#[test]
fn a_rollout_started_at_a_scaled_down_count_is_judged_at_the_live_replicas() {
    // Admitted at 3 replicas with maxUnavailable 1, scaled to 1 through the
    // scale subresource (no review). The rollout then starts with an UPDATE
    // of the Deployment (template edit, set image, restart, undo), which the
    // webhook sees with the live spec.replicas: 1.
    let written = deployment(
        3,
        false,
        json!(0),
        json!(1),
        None,
        None,
        None,
        json!({}),
        None,
    );
    let at_three = patched(&written, &mutate_reply(written.clone()));
    assert_eq!(
        at_three.pointer("/spec/strategy/rollingUpdate/maxUnavailable"),
        Some(&json!(1))
    );
    let mut live = scaled(&at_three, 1);
    live["spec"]["template"]["spec"]["containers"][0]["image"] = json!("app:3");
    let assume = Assumptions {
        ready_after: Some(5),
        shutdown: None,
        new_never_ready: true,
    };
    let silent = simulate(&from_object(&live, assume).unwrap().unwrap());
    assert!(silent.outage(), "as scaled, a broken release has 0 ready");
    let update = reply(Route::Mutate, "UPDATE", live.clone());
    assert_eq!(update["response"]["allowed"], json!(true), "{update}");
    let rolled = patched(&live, &update);
    assert_eq!(
        rolled.pointer("/spec/strategy/rollingUpdate"),
        Some(&json!({"maxSurge": 1, "maxUnavailable": 0})),
        "single-replica forces surge-first at the live count"
    );
    let after = simulate(&from_object(&rolled, assume).unwrap().unwrap());
    assert!(
        after.figures.min_ready >= 1,
        "the old pod stays until the new one is available"
    );
}

#[test]
fn a_stateful_deployment_admitted_at_one_replica_stays_serial_when_scaled() {
    // Replicas omitted, as HPA users write it; 25%/25% is 1/0 at 1 replica
    // but 3/2 at 10. As written, scaled to 3, it flushes 3 at once.
    let mut written = deployment(
        1,
        false,
        json!("25%"),
        json!("25%"),
        None,
        None,
        Some(30),
        json!({"rollguard.io/profile": "stateful"}),
        None,
    );
    written["spec"].as_object_mut().unwrap().remove("replicas");
    assert!(max_flushing(&scaled(&written, 3), 3) > 1);
    let admitted = enforce(&written).admitted;
    for n in SCALED_TO {
        assert_eq!(
            max_flushing(&scaled(&admitted, n), 3),
            1,
            "at {n} replicas\n{admitted}"
        );
    }
}

/// One object per validation rule (each finding of stateful-parallel), and
/// the consequence its warning must keep.
fn every_rule_case() -> Vec<(Rule, Value, &'static str)> {
    let stateful = json!({"rollguard.io/profile": "stateful"});
    let plain = |replicas, surge: Value, unavailable: Value| {
        deployment(
            replicas,
            false,
            surge,
            unavailable,
            None,
            None,
            None,
            json!({}),
            None,
        )
    };
    let mut pre_stop = plain(3, json!(1), json!(0));
    pre_stop["spec"]["template"]["spec"]["containers"][0]["lifecycle"] =
        json!({"preStop": {"exec": {"command": ["sleep", "45"]}}});
    let mut host_port = plain(1, json!(0), json!(1));
    host_port["spec"]["template"]["spec"]["containers"][0]["ports"][0]["hostPort"] = json!(80);
    let mut probes = plain(3, json!(1), json!(0));
    let probe = json!({"httpGet": {"path": "/healthz", "port": 8080}});
    probes["spec"]["template"]["spec"]["containers"][0]["readinessProbe"] = probe.clone();
    probes["spec"]["template"]["spec"]["containers"][0]["livenessProbe"] = probe;
    let update = |rolling: Value| json!({"type": "RollingUpdate", "rollingUpdate": rolling});
    vec![
        (
            Rule::RolloutAllUnavailable,
            plain(3, json!(0), json!("100%")),
            "all may be down at once",
        ),
        (
            Rule::RolloutFencepost,
            plain(3, json!("0%"), json!("25%")),
            "maxUnavailable 1 is used",
        ),
        (
            Rule::StatefulRecreate,
            deployment(
                3,
                true,
                json!(0),
                json!(0),
                None,
                None,
                None,
                stateful.clone(),
                None,
            ),
            "3 flush together",
        ),
        (
            Rule::StatefulParallel,
            deployment(
                3,
                false,
                json!("25%"),
                json!("25%"),
                Some(30),
                None,
                None,
                stateful.clone(),
                None,
            ),
            "if scaled to 4: 2 flush at once",
        ),
        (
            Rule::StatefulParallel,
            deployment(
                3,
                false,
                json!(0),
                json!(1),
                None,
                None,
                None,
                stateful.clone(),
                None,
            ),
            "the next pod stops mid-flush",
        ),
        (
            Rule::StatefulParallel,
            deployment(
                3,
                false,
                json!(0),
                json!(1),
                None,
                None,
                Some(i64::MAX),
                stateful.clone(),
                None,
            ),
            "flushes may overlap",
        ),
        (
            Rule::StatefulParallel,
            stateful_set(3, "OrderedReady", update(json!({"maxUnavailable": 2}))),
            "2 flush at once",
        ),
        (
            Rule::StatefulParallel,
            stateful_set(2, "OrderedReady", update(json!({"maxUnavailable": "50%"}))),
            "if scaled to 4: 2 flush at once",
        ),
        (
            Rule::StatefulOnDelete,
            stateful_set(3, "OrderedReady", json!({"type": "OnDelete"})),
            "delete them one at a time",
        ),
        (
            Rule::GraceBelowShutdown,
            deployment(
                3,
                false,
                json!(1),
                json!(0),
                None,
                None,
                Some(30),
                json!({"rollguard.io/shutdown-timeout": "30s"}),
                Some(10),
            ),
            "killed mid-shutdown",
        ),
        (
            Rule::PrestopExceedsGrace,
            pre_stop,
            "no time to stop after SIGTERM",
        ),
        (
            Rule::MinReadyExceedsDeadline,
            deployment(
                3,
                false,
                json!(1),
                json!(0),
                Some(900),
                Some(600),
                None,
                json!({}),
                None,
            ),
            "every rollout reports failure",
        ),
        (
            Rule::InvalidAnnotation,
            deployment(
                3,
                false,
                json!(1),
                json!(0),
                None,
                None,
                None,
                json!({"rollguard.io/profile": "stateless"}),
                None,
            ),
            "rollguard.io/profile \"stateless\" is not valid",
        ),
        (
            Rule::ReadinessMissing,
            plain(3, json!(1), json!(0)),
            "has no readinessProbe",
        ),
        (
            Rule::ReadinessIsLiveness,
            probes,
            "identical readiness and liveness probes",
        ),
        (Rule::SingleReplicaHostPort, host_port, "down each rollout"),
    ]
}

#[test]
fn every_rules_warning_fits_120_characters_and_keeps_the_consequence_in_every_mode() {
    use rollguard::rules::{Action, RuleKind};
    // Mutations off, so each object is judged as written.
    let unmutated = || Settings {
        rule_actions: Rule::ALL
            .iter()
            .filter(|r| r.kind() == RuleKind::Mutation)
            .map(|r| (*r, Action::Off))
            .collect(),
        ..Settings::default()
    };
    let cases = every_rule_case();
    let covered: std::collections::BTreeSet<Rule> = cases.iter().map(|c| c.0).collect();
    for rule in Rule::ALL
        .iter()
        .filter(|r| r.kind() == RuleKind::Validation)
    {
        assert!(covered.contains(rule), "no warning case for {rule}");
    }
    for (rule, object, consequence) in cases {
        let mut waived = object.clone();
        waived["metadata"]["annotations"]["rollguard.io/waive"] = json!(rule.name());
        let mut warn_only = unmutated();
        warn_only.rule_actions.insert(rule, Action::Warn);
        let modes = [
            ("audit", Route::Audit, &object, unmutated()),
            ("audit, waived", Route::Audit, &waived, unmutated()),
            ("enforce, waived", Route::Validate, &waived, unmutated()),
            (
                "enforce, rule set to warn",
                Route::Validate,
                &object,
                warn_only,
            ),
        ];
        for (mode, route, object, settings) in modes {
            let config = PolicyConfig {
                settings,
                audit_only: false,
            };
            let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
                "uid": "u-1",
                "kind": {"group": "apps", "version": "v1", "kind": object["kind"]},
                "resource": {"group": "apps", "version": "v1", "resource": "x"},
                "operation": "CREATE", "userInfo": {}, "object": object,
            }});
            let reply = answer(route, &serde_json::to_vec(&review).unwrap(), &config);
            let body: Value = serde_json::from_slice(&reply.body).unwrap();
            let warnings: Vec<&str> = body["response"]["warnings"]
                .as_array()
                .map(|w| w.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let ours: Vec<&str> = warnings
                .iter()
                .copied()
                .filter(|w| {
                    w.contains(&format!("{rule}:")) || w.contains(&format!("{rule} (waived):"))
                })
                .collect();
            if rule == Rule::InvalidAnnotation && mode.contains("waived") {
                continue; // not waivable: the waiver is an annotation like any other
            }
            assert!(
                !ours.is_empty(),
                "{rule} ({mode}): no warning among {warnings:?}"
            );
            for warning in ours {
                println!("{:>3} {warning}", warning.chars().count());
                assert!(warning.chars().count() <= 120, "{rule} ({mode}): {warning}");
                assert!(
                    warning.contains(consequence),
                    "{rule} ({mode}) lost {consequence:?}: {warning}"
                );
            }
        }
    }
}
