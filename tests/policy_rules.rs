//! Every rule of POLICY.md, in both directions: it fires where the contract
//! says, and stays quiet where it does not.

mod support;

use rollguard::patch::Step;
use rollguard::policy::{evaluate, EffectiveMode, EvalRequest, Mode, Stage, Verdict};
use rollguard::rules::{Action, Rule};
use rollguard::settings::{PrestopHandler, Settings};
use rollguard::workload::WorkloadKind;
use serde_json::{json, Value};

/// A Deployment as the API server hands it over (defaults filled in), with a
/// serving container that already has its preStop and readiness probe, so a
/// case only sees the rule it is about.
fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "annotations": {}},
        "spec": {
            "replicas": 3,
            "progressDeadlineSeconds": 600,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "terminationGracePeriodSeconds": 30,
                    "containers": [{
                        "name": "web",
                        "image": "nginx",
                        "ports": [{"containerPort": 80, "protocol": "TCP"}],
                        "readinessProbe": {"tcpSocket": {"port": 80}},
                        "lifecycle": {"preStop": {"sleep": {"seconds": 10}}}
                    }]
                }
            }
        }
    })
}

fn pod() -> Value {
    let mut d = deployment();
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"generateName": "web-", "namespace": "shop", "annotations": {}},
        "spec": d["spec"]["template"]["spec"].take(),
    })
}

/// Sets a field by JSON pointer (`~1` for `/` in keys); `null` removes it.
fn with(mut object: Value, changes: &[(&str, Value)]) -> Value {
    for (pointer, value) in changes {
        let steps: Vec<Step> = pointer
            .split('/')
            .skip(1)
            .map(|s| {
                let key = s.replace("~1", "/").replace("~0", "~");
                match key.parse::<usize>() {
                    Ok(i) => Step::Index(i),
                    Err(_) => Step::from(key),
                }
            })
            .collect();
        if value.is_null() {
            let (last, parent) = steps.split_last().unwrap();
            let Step::Key(key) = last else {
                panic!("remove by key only")
            };
            if let Some(map) = support::json::get(&object, parent)
                .cloned()
                .and_then(|p| p.as_object().cloned())
            {
                let mut map = map;
                map.remove(key.as_ref());
                assert!(support::json::set(&mut object, parent, Value::Object(map)));
            }
        } else {
            assert!(
                support::json::set(&mut object, &steps, value.clone()),
                "cannot set {pointer}"
            );
        }
    }
    object
}

fn annotate(object: Value, pairs: &[(&str, &str)]) -> Value {
    let changes: Vec<(String, Value)> = pairs
        .iter()
        .map(|(k, v)| {
            (
                format!("/metadata/annotations/{}", k.replace('/', "~1")),
                json!(v),
            )
        })
        .collect();
    let borrowed: Vec<(&str, Value)> = changes
        .iter()
        .map(|(p, v)| (p.as_str(), v.clone()))
        .collect();
    with(object, &borrowed)
}

fn run(object: &Value, stage: Stage, mode: Mode, settings: &Settings) -> Verdict {
    let kind = WorkloadKind::from_object(object).unwrap();
    evaluate(
        &EvalRequest {
            kind,
            object,
            stage,
            mode,
        },
        settings,
    )
    .unwrap()
}

fn mutate(object: &Value) -> Verdict {
    run(object, Stage::Mutate, Mode::Enforce, &Settings::default())
}

fn validate(object: &Value) -> Verdict {
    run(object, Stage::Validate, Mode::Enforce, &Settings::default())
}

fn mutated_rules(verdict: &Verdict) -> Vec<Rule> {
    let mut rules: Vec<Rule> = verdict.mutations.iter().map(|m| m.rule).collect();
    rules.dedup();
    rules
}

fn violated(verdict: &Verdict) -> Vec<(Rule, Action)> {
    verdict
        .violations
        .iter()
        .map(|v| (v.rule, v.action))
        .collect()
}

fn at<'a>(v: &'a Verdict, pointer: &str) -> &'a Value {
    v.admitted.pointer(pointer).unwrap_or(&Value::Null)
}

const C0: &str = "/spec/template/spec/containers/0";

// ---- baseline ------------------------------------------------------------

#[test]
fn a_safe_deployment_is_left_alone_and_passes() {
    let d = deployment();
    assert!(mutate(&d).patch.0.is_empty());
    assert!(validate(&d).violations.is_empty());
}

// ---- prestop-sleep ---------------------------------------------------------

#[test]
fn prestop_sleep_is_injected_into_serving_containers_without_one() {
    let d = with(deployment(), &[(&format!("{C0}/lifecycle"), Value::Null)]);
    let v = mutate(&d);
    assert_eq!(mutated_rules(&v), [Rule::PrestopSleep, Rule::GracePeriod]);
    assert_eq!(
        at(&v, &format!("{C0}/lifecycle/preStop")),
        &json!({"sleep": {"seconds": 10}})
    );
    assert_eq!(
        at(&v, "/spec/template/spec/terminationGracePeriodSeconds"),
        &json!(40)
    );
}

#[test]
fn prestop_uses_exec_sleep_when_configured_for_older_clusters() {
    let d = with(deployment(), &[(&format!("{C0}/lifecycle"), Value::Null)]);
    let settings = Settings {
        prestop_handler: PrestopHandler::Exec,
        ..Settings::default()
    };
    let v = run(&d, Stage::Mutate, Mode::Enforce, &settings);
    assert_eq!(
        at(&v, &format!("{C0}/lifecycle/preStop")),
        &json!({"exec": {"command": ["sleep", "10"]}})
    );
}

#[test]
fn prestop_annotation_overrides_the_default_and_zero_disables_it() {
    let d = with(deployment(), &[(&format!("{C0}/lifecycle"), Value::Null)]);
    let v = mutate(&annotate(
        d.clone(),
        &[("rollguard.io/prestop-sleep", "20s")],
    ));
    assert_eq!(
        at(&v, &format!("{C0}/lifecycle/preStop/sleep/seconds")),
        &json!(20)
    );
    assert_eq!(
        at(&v, "/spec/template/spec/terminationGracePeriodSeconds"),
        &json!(50)
    );
    let v = mutate(&annotate(d, &[("rollguard.io/prestop-sleep", "0s")]));
    assert!(!mutated_rules(&v).contains(&Rule::PrestopSleep));
}

#[test]
fn an_existing_user_prestop_is_kept() {
    let d = with(
        deployment(),
        &[(
            &format!("{C0}/lifecycle/preStop"),
            json!({"exec": {"command": ["nginx", "-s", "quit"]}}),
        )],
    );
    let v = mutate(&d);
    assert!(v.patch.0.is_empty(), "{:?}", v.mutations);
}

#[test]
fn init_containers_skip_listed_sidecars_and_portless_containers_get_no_prestop() {
    let d = with(
        deployment(),
        &[
            (&format!("{C0}/lifecycle"), Value::Null),
            (&format!("{C0}/ports"), Value::Null),
            (&format!("{C0}/readinessProbe"), Value::Null),
            (
                "/spec/template/spec/initContainers",
                json!([{"name": "init", "image": "busybox", "ports": [{"containerPort": 81}]}]),
            ),
        ],
    );
    let mut d = d;
    d["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "istio-proxy", "image": "istio/proxyv2", "ports": [{"containerPort": 15090}]}));
    let v = mutate(&d);
    assert!(v.patch.0.is_empty(), "{:?}", v.mutations);
}

#[test]
fn pull_based_workloads_get_no_prestop() {
    let d = with(deployment(), &[(&format!("{C0}/lifecycle"), Value::Null)]);
    let v = mutate(&annotate(d, &[("rollguard.io/profile", "pull-based")]));
    assert!(!mutated_rules(&v).contains(&Rule::PrestopSleep));
}

// ---- readiness-probe -------------------------------------------------------

#[test]
fn readiness_probe_is_a_tcp_probe_on_the_first_port_by_name_when_named() {
    let d = with(
        deployment(),
        &[
            (&format!("{C0}/readinessProbe"), Value::Null),
            (
                &format!("{C0}/ports"),
                json!([{"name": "http", "containerPort": 8080}, {"containerPort": 9090}]),
            ),
        ],
    );
    let v = mutate(&d);
    assert_eq!(mutated_rules(&v), [Rule::ReadinessProbe]);
    assert_eq!(
        at(&v, &format!("{C0}/readinessProbe")),
        &json!({"tcpSocket": {"port": "http"}})
    );
    let d = with(
        d,
        &[(&format!("{C0}/ports"), json!([{"containerPort": 8080}]))],
    );
    assert_eq!(
        at(&mutate(&d), &format!("{C0}/readinessProbe")),
        &json!({"tcpSocket": {"port": 8080}})
    );
}

#[test]
fn readiness_annotations_make_an_http_probe() {
    let d = with(
        deployment(),
        &[(&format!("{C0}/readinessProbe"), Value::Null)],
    );
    let d = annotate(
        d,
        &[
            ("rollguard.io/readiness-path", "/ready"),
            ("rollguard.io/readiness-port", "8081"),
        ],
    );
    let v = mutate(&d);
    assert_eq!(
        at(&v, &format!("{C0}/readinessProbe")),
        &json!({"httpGet": {"path": "/ready", "port": 8081}})
    );
}

#[test]
fn an_existing_readiness_probe_is_kept_and_pull_based_gets_none_unless_annotated() {
    assert!(mutate(&deployment()).mutations.is_empty());
    let d = with(
        deployment(),
        &[(&format!("{C0}/readinessProbe"), Value::Null)],
    );
    let pull = annotate(d, &[("rollguard.io/profile", "pull-based")]);
    assert!(!mutated_rules(&mutate(&pull)).contains(&Rule::ReadinessProbe));
    let annotated = annotate(pull, &[("rollguard.io/readiness-path", "/healthz")]);
    assert_eq!(
        at(&mutate(&annotated), &format!("{C0}/readinessProbe")),
        &json!({"httpGet": {"path": "/healthz", "port": 80}})
    );
}

// ---- grace-period ----------------------------------------------------------

#[test]
fn grace_period_follows_the_declared_shutdown_timeout_down_and_up() {
    for (grace, expected) in [(400, 35), (5, 35)] {
        let d = with(
            deployment(),
            &[(
                "/spec/template/spec/terminationGracePeriodSeconds",
                json!(grace),
            )],
        );
        let v = mutate(&annotate(d, &[("rollguard.io/shutdown-timeout", "20s")]));
        assert_eq!(mutated_rules(&v), [Rule::GracePeriod]);
        // preStop 10 + timeout 20 + buffer 5.
        assert_eq!(
            at(&v, "/spec/template/spec/terminationGracePeriodSeconds"),
            &json!(expected)
        );
    }
}

#[test]
fn grace_period_is_untouched_without_timeout_or_injection() {
    let d = with(
        deployment(),
        &[(
            "/spec/template/spec/terminationGracePeriodSeconds",
            json!(400),
        )],
    );
    assert!(mutate(&d).mutations.is_empty());
}

// ---- single-replica --------------------------------------------------------

#[test]
fn single_replica_with_max_unavailable_one_is_made_surge_first() {
    let d = with(
        deployment(),
        &[
            ("/spec/replicas", json!(1)),
            (
                "/spec/strategy/rollingUpdate",
                json!({"maxSurge": 0, "maxUnavailable": 1}),
            ),
        ],
    );
    let v = mutate(&d);
    assert_eq!(mutated_rules(&v), [Rule::SingleReplica]);
    assert_eq!(
        at(&v, "/spec/strategy/rollingUpdate"),
        &json!({"maxSurge": 1, "maxUnavailable": 0})
    );
}

#[test]
fn unset_replicas_count_as_one() {
    let d = with(
        deployment(),
        &[
            ("/spec/replicas", Value::Null),
            (
                "/spec/strategy/rollingUpdate",
                json!({"maxSurge": 1, "maxUnavailable": 1}),
            ),
        ],
    );
    let v = mutate(&d);
    assert_eq!(
        at(&v, "/spec/strategy/rollingUpdate/maxUnavailable"),
        &json!(0)
    );
}

#[test]
fn single_replica_keeps_percentages_that_already_resolve_surge_first() {
    // 25%/25% of 1: surge rounds up to 1, unavailable down to 0.
    let d = with(deployment(), &[("/spec/replicas", json!(1))]);
    assert!(mutate(&d).mutations.is_empty());
}

#[test]
fn single_replica_does_not_touch_recreate_or_zero_replicas() {
    let recreate = with(
        deployment(),
        &[
            ("/spec/replicas", json!(1)),
            ("/spec/strategy", json!({"type": "Recreate"})),
        ],
    );
    assert!(mutate(&recreate).mutations.is_empty());
    let zero = with(
        deployment(),
        &[
            ("/spec/replicas", json!(0)),
            (
                "/spec/strategy/rollingUpdate",
                json!({"maxSurge": 0, "maxUnavailable": 1}),
            ),
        ],
    );
    assert!(mutate(&zero).mutations.is_empty());
}

#[test]
fn strategy_unset_is_treated_as_rolling_update_25_25() {
    let d = with(
        deployment(),
        &[
            ("/spec/replicas", json!(1)),
            ("/spec/strategy", Value::Null),
        ],
    );
    assert!(mutate(&d).mutations.is_empty());
    let d = annotate(d, &[("rollguard.io/profile", "pull-based")]);
    // 25% of 1 gives unavailable 0 today, but not once scaled to 4: written as 0.
    let v = mutate(&d);
    assert_eq!(mutated_rules(&v), [Rule::PullBasedSurge]);
    assert_eq!(
        at(&v, "/spec/strategy/rollingUpdate"),
        &json!({"maxUnavailable": 0})
    );
}

// ---- stateful-serial -------------------------------------------------------

#[test]
fn stateful_with_several_replicas_rolls_one_at_a_time() {
    let d = annotate(
        with(deployment(), &[("/spec/replicas", json!(4))]),
        &[("rollguard.io/profile", "stateful")],
    );
    let v = mutate(&d);
    assert_eq!(mutated_rules(&v), [Rule::StatefulSerial]);
    assert_eq!(
        at(&v, "/spec/strategy/rollingUpdate"),
        &json!({"maxSurge": 0, "maxUnavailable": 1})
    );
}

#[test]
fn stateful_with_one_replica_is_surge_first_instead() {
    let d = annotate(
        with(
            deployment(),
            &[
                ("/spec/replicas", json!(1)),
                (
                    "/spec/strategy/rollingUpdate",
                    json!({"maxSurge": 0, "maxUnavailable": 1}),
                ),
            ],
        ),
        &[("rollguard.io/profile", "stateful")],
    );
    let v = mutate(&d);
    // minReadySeconds covers the 30 s flush at one replica too: scaled to 3
    // (never seen by the webhook), 1/0 stays one flush at a time.
    assert_eq!(
        mutated_rules(&v),
        [Rule::StatefulSerial, Rule::SingleReplica]
    );
    assert_eq!(at(&v, "/spec/minReadySeconds"), &json!(30));
    assert_eq!(
        at(&v, "/spec/strategy/rollingUpdate"),
        &json!({"maxSurge": 1, "maxUnavailable": 0})
    );
}

#[test]
fn stateful_with_replicas_omitted_gets_an_absolute_surge_first_strategy_and_min_ready() {
    // As HPA users write it: no replicas, 25%/25% (1/0 at 1 replica, 3/2 at 10).
    let d = annotate(
        with(deployment(), &[("/spec/replicas", Value::Null)]),
        &[("rollguard.io/profile", "stateful")],
    );
    let v = mutate(&d);
    assert_eq!(
        at(&v, "/spec/strategy/rollingUpdate"),
        &json!({"maxSurge": 1, "maxUnavailable": 0})
    );
    assert_eq!(at(&v, "/spec/minReadySeconds"), &json!(30));
    assert_eq!(at(&v, "/spec/progressDeadlineSeconds"), &json!(600));
    let judged = validate(&v.admitted);
    assert!(judged.violations.is_empty(), "{:?}", judged.violations);
    // Without the mutation, the written strategy is judged at every count.
    let as_written = validate(&d);
    assert_eq!(
        violated(&as_written),
        [(Rule::StatefulParallel, Action::Deny)]
    );
    assert!(
        as_written.violations[0].detail.contains("if scaled to"),
        "{:?}",
        as_written.violations[0]
    );
}

fn parallel_detail(verdict: &Verdict) -> &str {
    verdict
        .violations
        .iter()
        .find(|v| v.rule == Rule::StatefulParallel)
        .map_or("", |v| v.detail.as_str())
}

#[test]
fn stateful_serial_as_a_warning_leaves_the_written_strategy_judged_at_every_count() {
    let warn_only = Settings {
        rule_actions: [(Rule::StatefulSerial, Action::Warn)].into_iter().collect(),
        ..Settings::default()
    };
    let stateful = |rolling: Value| {
        annotate(
            with(
                deployment(),
                &[
                    ("/spec/strategy/rollingUpdate", rolling),
                    ("/spec/minReadySeconds", json!(30)),
                ],
            ),
            &[("rollguard.io/profile", "stateful")],
        )
    };
    let full = |d: &Value| run(d, Stage::Full, Mode::Enforce, &warn_only);
    // 0/25% is 0/0 → 0/1 at 3 replicas, 0/2 at 8.
    let percent = full(&stateful(json!({"maxSurge": 0, "maxUnavailable": "25%"})));
    assert!(percent.denied(), "{:?}", percent.violations);
    assert!(
        parallel_detail(&percent).contains("if scaled to 8: 2 flush at once"),
        "{:?}",
        percent.violations
    );
    // Two surge pods become available together: two old pods stop together.
    let surge = full(&stateful(json!({"maxSurge": 2, "maxUnavailable": 0})));
    assert!(
        parallel_detail(&surge).contains("at 3 replicas: 2 flush at once"),
        "{:?}",
        surge.violations
    );
    for serial in [
        json!({"maxSurge": 0, "maxUnavailable": 1}),
        json!({"maxSurge": 1, "maxUnavailable": 0}),
    ] {
        let v = full(&stateful(serial.clone()));
        assert!(v.violations.is_empty(), "{serial}: {:?}", v.violations);
    }
}

// ---- pull-based-surge ------------------------------------------------------

#[test]
fn pull_based_never_stops_the_old_pod_first() {
    let d = annotate(
        with(
            deployment(),
            &[(
                "/spec/strategy/rollingUpdate",
                json!({"maxSurge": 0, "maxUnavailable": 2}),
            )],
        ),
        &[("rollguard.io/profile", "pull-based")],
    );
    let v = mutate(&d);
    assert_eq!(mutated_rules(&v), [Rule::PullBasedSurge]);
    assert_eq!(
        at(&v, "/spec/strategy/rollingUpdate"),
        &json!({"maxSurge": 1, "maxUnavailable": 0})
    );
    let generous = annotate(
        with(
            deployment(),
            &[(
                "/spec/strategy/rollingUpdate",
                json!({"maxSurge": 3, "maxUnavailable": 0}),
            )],
        ),
        &[("rollguard.io/profile", "pull-based")],
    );
    assert!(mutate(&generous).mutations.is_empty());
}

// ---- warmup ----------------------------------------------------------------

#[test]
fn warmup_raises_min_ready_and_adds_one_pod_at_a_time() {
    let d = annotate(
        with(
            deployment(),
            &[(
                "/spec/strategy/rollingUpdate",
                json!({"maxSurge": 3, "maxUnavailable": 2}),
            )],
        ),
        &[("rollguard.io/warmup", "1m")],
    );
    let v = mutate(&d);
    assert_eq!(at(&v, "/spec/minReadySeconds"), &json!(60));
    assert_eq!(
        at(&v, "/spec/strategy/rollingUpdate"),
        &json!({"maxSurge": 1, "maxUnavailable": 0})
    );
}

#[test]
fn warmup_never_lowers_min_ready_and_leaves_stateful_strategy_to_its_rule() {
    let d = annotate(
        with(
            deployment(),
            &[
                ("/spec/minReadySeconds", json!(90)),
                ("/spec/replicas", json!(4)),
            ],
        ),
        &[
            ("rollguard.io/warmup", "1m"),
            ("rollguard.io/profile", "stateful"),
        ],
    );
    let v = mutate(&d);
    assert_eq!(at(&v, "/spec/minReadySeconds"), &json!(90));
    assert_eq!(
        at(&v, "/spec/strategy/rollingUpdate"),
        &json!({"maxSurge": 0, "maxUnavailable": 1})
    );
}

// ---- rollout-all-unavailable -------------------------------------------------

#[test]
fn all_unavailable_is_denied_and_just_below_is_fine() {
    let d = with(
        deployment(),
        &[("/spec/strategy/rollingUpdate/maxUnavailable", json!("100%"))],
    );
    assert_eq!(
        violated(&validate(&d)),
        [(Rule::RolloutAllUnavailable, Action::Deny)]
    );
    let d = with(
        deployment(),
        &[("/spec/strategy/rollingUpdate/maxUnavailable", json!(2))],
    );
    assert!(validate(&d).violations.is_empty());
    let one = with(
        deployment(),
        &[
            ("/spec/replicas", json!(1)),
            ("/spec/strategy/rollingUpdate/maxUnavailable", json!(1)),
        ],
    );
    assert_eq!(
        violated(&validate(&one)),
        [(Rule::RolloutAllUnavailable, Action::Deny)]
    );
}

#[test]
fn zero_replicas_and_recreate_are_not_all_unavailable() {
    let zero = with(
        deployment(),
        &[
            ("/spec/replicas", json!(0)),
            ("/spec/strategy/rollingUpdate/maxUnavailable", json!("100%")),
        ],
    );
    assert!(validate(&zero).violations.is_empty());
    let recreate = with(
        deployment(),
        &[("/spec/strategy", json!({"type": "Recreate"}))],
    );
    assert!(validate(&recreate).violations.is_empty());
}

// ---- rollout-fencepost -----------------------------------------------------

#[test]
fn percentages_that_round_to_zero_zero_are_a_fencepost() {
    // 1 replica: maxSurge 0%, maxUnavailable 25% → 0 and 0.
    let one = with(
        deployment(),
        &[
            ("/spec/replicas", json!(1)),
            (
                "/spec/strategy/rollingUpdate",
                json!({"maxSurge": "0%", "maxUnavailable": "25%"}),
            ),
        ],
    );
    assert_eq!(
        violated(&validate(&one)),
        [(Rule::RolloutFencepost, Action::Deny)]
    );
    // 4 replicas: 25% unavailable is 1: fine.
    let four = with(
        deployment(),
        &[
            ("/spec/replicas", json!(4)),
            (
                "/spec/strategy/rollingUpdate",
                json!({"maxSurge": "0%", "maxUnavailable": "25%"}),
            ),
        ],
    );
    assert!(validate(&four).violations.is_empty());
    // 3 replicas: 25% unavailable rounds down to 0.
    let three = with(four.clone(), &[("/spec/replicas", json!(3))]);
    assert_eq!(
        violated(&validate(&three)),
        [(Rule::RolloutFencepost, Action::Deny)]
    );
}

#[test]
fn explicit_zero_zero_is_a_fencepost_and_single_replica_mutation_fixes_it() {
    let d = with(
        deployment(),
        &[
            ("/spec/replicas", json!(1)),
            (
                "/spec/strategy/rollingUpdate",
                json!({"maxSurge": 0, "maxUnavailable": 0}),
            ),
        ],
    );
    assert_eq!(
        violated(&validate(&d)),
        [(Rule::RolloutFencepost, Action::Deny)]
    );
    let full = run(&d, Stage::Full, Mode::Enforce, &Settings::default());
    assert!(full.violations.is_empty(), "{:?}", full.violations);
}

// ---- stateful-recreate / stateful-parallel -------------------------------------

#[test]
fn stateful_recreate_is_denied_but_serving_recreate_is_not() {
    let d = with(
        deployment(),
        &[("/spec/strategy", json!({"type": "Recreate"}))],
    );
    assert!(validate(&d).violations.is_empty());
    let d = annotate(d, &[("rollguard.io/profile", "stateful")]);
    assert_eq!(
        violated(&validate(&d)),
        [(Rule::StatefulRecreate, Action::Deny)]
    );
}

#[test]
fn stateful_parallel_is_denied_above_one_unavailable() {
    let d = annotate(
        with(
            deployment(),
            &[
                ("/spec/replicas", json!(8)),
                (
                    "/spec/strategy/rollingUpdate",
                    json!({"maxSurge": 0, "maxUnavailable": "25%"}),
                ),
            ],
        ),
        &[("rollguard.io/profile", "stateful")],
    );
    assert_eq!(
        violated(&validate(&d)),
        [(Rule::StatefulParallel, Action::Deny)]
    );
    let d = with(
        d,
        &[("/spec/strategy/rollingUpdate/maxUnavailable", json!(1))],
    );
    // Serial, but minReadySeconds 0 below the 30 s grace period: the next
    // old pod stops while the previous one still flushes.
    let verdict = validate(&d);
    assert_eq!(violated(&verdict), [(Rule::StatefulParallel, Action::Deny)]);
    assert_eq!(verdict.violations[0].field, "spec.minReadySeconds");
    let d = with(d, &[("/spec/minReadySeconds", json!(30))]);
    assert!(validate(&d).violations.is_empty());
}

// ---- grace-below-shutdown / prestop-exceeds-grace --------------------------------

#[test]
fn grace_below_shutdown_is_denied_and_enough_grace_passes() {
    let d = annotate(deployment(), &[("rollguard.io/shutdown-timeout", "30s")]);
    // grace 30 < preStop 10 + 30.
    assert_eq!(
        violated(&validate(&d)),
        [(Rule::GraceBelowShutdown, Action::Deny)]
    );
    let d = with(
        d,
        &[(
            "/spec/template/spec/terminationGracePeriodSeconds",
            json!(40),
        )],
    );
    assert!(validate(&d).violations.is_empty());
}

#[test]
fn prestop_at_or_above_grace_is_denied_in_every_form() {
    for pre_stop in [
        json!({"sleep": {"seconds": 30}}),
        json!({"exec": {"command": ["sleep", "45"]}}),
        json!({"exec": {"command": ["/bin/sh", "-c", "sleep 30"]}}),
    ] {
        let d = with(
            deployment(),
            &[(&format!("{C0}/lifecycle/preStop"), pre_stop.clone())],
        );
        assert_eq!(
            violated(&validate(&d)),
            [(Rule::PrestopExceedsGrace, Action::Deny)],
            "{pre_stop}"
        );
    }
    let d = with(
        deployment(),
        &[(
            &format!("{C0}/lifecycle/preStop"),
            json!({"sleep": {"seconds": 29}}),
        )],
    );
    assert!(validate(&d).violations.is_empty());
}

// ---- min-ready-exceeds-deadline ---------------------------------------------

#[test]
fn min_ready_at_the_progress_deadline_is_denied() {
    let d = with(deployment(), &[("/spec/minReadySeconds", json!(600))]);
    assert_eq!(
        violated(&validate(&d)),
        [(Rule::MinReadyExceedsDeadline, Action::Deny)]
    );
    let d = with(d, &[("/spec/progressDeadlineSeconds", json!(900))]);
    assert!(validate(&d).violations.is_empty());
    let unset = with(
        deployment(),
        &[
            ("/spec/progressDeadlineSeconds", Value::Null),
            ("/spec/minReadySeconds", json!(599)),
        ],
    );
    assert!(validate(&unset).violations.is_empty());
}

// ---- invalid-annotation ------------------------------------------------------

#[test]
fn malformed_and_unknown_annotations_are_denied_naming_key_value_and_forms() {
    for (key, value) in [
        ("rollguard.io/profile", "stateless"),
        ("rollguard.io/shutdown-timeout", "forever"),
        ("rollguard.io/shutdown-timout", "20s"),
    ] {
        let v = validate(&annotate(deployment(), &[(key, value)]));
        assert_eq!(
            violated(&v),
            [(Rule::InvalidAnnotation, Action::Deny)],
            "{key}"
        );
        let message = v.violations[0].message();
        assert!(
            message.contains(key) && message.contains(value),
            "{message}"
        );
        assert!(
            message.contains("accepted") || message.contains("known keys"),
            "{message}"
        );
    }
}

#[test]
fn invalid_annotations_block_mutation_and_are_only_warned_in_audit() {
    let d = with(
        annotate(deployment(), &[("rollguard.io/warmup", "soon")]),
        &[(&format!("{C0}/lifecycle"), Value::Null)],
    );
    assert!(mutate(&d).patch.0.is_empty());
    let audit = run(&d, Stage::Validate, Mode::Audit, &Settings::default());
    assert_eq!(audit.mode, EffectiveMode::Audit);
    assert!(!audit.denied());
    assert!(audit
        .violations
        .iter()
        .any(|v| v.rule == Rule::InvalidAnnotation));
}

// ---- readiness-missing / readiness-is-liveness (warn) -------------------------

#[test]
fn readiness_missing_warns_for_serving_containers_only() {
    let d = with(
        deployment(),
        &[(&format!("{C0}/readinessProbe"), Value::Null)],
    );
    assert_eq!(
        violated(&validate(&d)),
        [(Rule::ReadinessMissing, Action::Warn)]
    );
    let pull = annotate(d, &[("rollguard.io/profile", "pull-based")]);
    assert!(validate(&pull).violations.is_empty());
}

#[test]
fn identical_readiness_and_liveness_probes_warn() {
    let d = with(
        deployment(),
        &[(
            &format!("{C0}/livenessProbe"),
            json!({"tcpSocket": {"port": 80}}),
        )],
    );
    assert_eq!(
        violated(&validate(&d)),
        [(Rule::ReadinessIsLiveness, Action::Warn)]
    );
    let d = with(
        d,
        &[(
            &format!("{C0}/livenessProbe"),
            json!({"tcpSocket": {"port": 80}, "periodSeconds": 30}),
        )],
    );
    assert!(validate(&d).violations.is_empty());
}

// ---- annotations: precedence, waivers, modes ---------------------------------

#[test]
fn workload_annotation_wins_over_the_template() {
    let d = with(
        annotate(
            with(deployment(), &[("/spec/replicas", json!(4))]),
            &[("rollguard.io/profile", "stateful")],
        ),
        &[(
            "/spec/template/metadata/annotations",
            json!({"rollguard.io/profile": "pull-based"}),
        )],
    );
    let v = mutate(&d);
    assert_eq!(mutated_rules(&v), [Rule::StatefulSerial]);
    // The template is brought in line so pods decide the same way.
    assert_eq!(
        at(
            &v,
            "/spec/template/metadata/annotations/rollguard.io~1profile"
        ),
        &json!("stateful")
    );
}

#[test]
fn template_annotations_apply_when_the_workload_has_none() {
    let d = with(
        deployment(),
        &[
            ("/spec/replicas", json!(4)),
            (
                "/spec/template/metadata/annotations",
                json!({"rollguard.io/profile": "stateful"}),
            ),
        ],
    );
    assert_eq!(mutated_rules(&mutate(&d)), [Rule::StatefulSerial]);
}

#[test]
fn a_waiver_turns_a_denial_into_a_warning() {
    let d = with(
        deployment(),
        &[("/spec/strategy/rollingUpdate/maxUnavailable", json!("100%"))],
    );
    let d = annotate(d, &[("rollguard.io/waive", "rollout-all-unavailable")]);
    let v = validate(&d);
    assert!(!v.denied());
    assert_eq!(violated(&v), [(Rule::RolloutAllUnavailable, Action::Warn)]);
    assert!(v.violations[0].waived);
}

#[test]
fn mode_off_on_the_object_skips_it_entirely() {
    let d = with(
        annotate(deployment(), &[("rollguard.io/mode", "off")]),
        &[
            ("/spec/strategy/rollingUpdate/maxUnavailable", json!("100%")),
            (&format!("{C0}/lifecycle"), Value::Null),
        ],
    );
    for stage in [Stage::Mutate, Stage::Validate, Stage::Full] {
        let v = run(&d, stage, Mode::Enforce, &Settings::default());
        assert_eq!(v.mode, EffectiveMode::Off);
        assert!(v.violations.is_empty() && v.mutations.is_empty());
        // The one change: the mode copied into the template, so the pods
        // are left alone too (the validating stage never patches).
        assert_eq!(
            v.patch.0.len(),
            usize::from(stage != Stage::Validate),
            "{stage:?}"
        );
        let mut patched = d.clone();
        json_patch::patch(&mut patched, &v.patch).unwrap();
        let mut expected = d.clone();
        if stage != Stage::Validate {
            expected["spec"]["template"]["metadata"]["annotations"] =
                json!({"rollguard.io/mode": "off"});
        }
        assert_eq!(patched, expected, "{stage:?}");
    }
}

#[test]
fn mode_audit_on_the_object_reports_without_changing_or_denying() {
    let d = with(
        annotate(deployment(), &[("rollguard.io/mode", "audit")]),
        &[
            ("/spec/strategy/rollingUpdate/maxUnavailable", json!("100%")),
            (&format!("{C0}/lifecycle"), Value::Null),
        ],
    );
    let v = run(&d, Stage::Full, Mode::Enforce, &Settings::default());
    assert_eq!(v.mode, EffectiveMode::Audit);
    assert!(v.patch.0.is_empty());
    assert!(!v.denied());
    assert_eq!(mutated_rules(&v), [Rule::PrestopSleep, Rule::GracePeriod]);
    assert_eq!(violated(&v), [(Rule::RolloutAllUnavailable, Action::Deny)]);
    assert_eq!(v.admitted, d, "audit admits the object unchanged");
}

#[test]
fn rule_actions_are_configurable() {
    let d = with(
        deployment(),
        &[("/spec/strategy/rollingUpdate/maxUnavailable", json!("100%"))],
    );
    let mut settings = Settings::default();
    settings
        .rule_actions
        .insert(Rule::RolloutAllUnavailable, Action::Warn);
    let v = run(&d, Stage::Validate, Mode::Enforce, &settings);
    assert_eq!(violated(&v), [(Rule::RolloutAllUnavailable, Action::Warn)]);
    settings
        .rule_actions
        .insert(Rule::RolloutAllUnavailable, Action::Off);
    assert!(run(&d, Stage::Validate, Mode::Enforce, &settings)
        .violations
        .is_empty());
    // A mutation rule set to warn is suggested, not applied.
    let bare = with(deployment(), &[(&format!("{C0}/lifecycle"), Value::Null)]);
    settings
        .rule_actions
        .insert(Rule::PrestopSleep, Action::Warn);
    let v = run(&bare, Stage::Mutate, Mode::Enforce, &settings);
    assert!(v.patch.0.is_empty(), "{:?}", v.patch);
    assert_eq!(v.mutations[0].action, Action::Warn);
}

// ---- pods, StatefulSets, DaemonSets ---------------------------------------------

#[test]
fn bare_pods_get_the_pod_rules() {
    let p = with(pod(), &[("/spec/containers/0/lifecycle", Value::Null)]);
    let v = mutate(&p);
    assert_eq!(mutated_rules(&v), [Rule::PrestopSleep, Rule::GracePeriod]);
    assert_eq!(at(&v, "/spec/terminationGracePeriodSeconds"), &json!(40));
}

#[test]
fn pods_of_a_mutated_deployment_are_a_no_op() {
    let d = annotate(
        with(
            deployment(),
            &[
                (&format!("{C0}/lifecycle"), Value::Null),
                (&format!("{C0}/readinessProbe"), Value::Null),
            ],
        ),
        &[
            ("rollguard.io/profile", "pull-based"),
            ("rollguard.io/shutdown-timeout", "20s"),
        ],
    );
    let admitted = mutate(&d).admitted;
    let p = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "web-abc-",
            "annotations": admitted["spec"]["template"]["metadata"]["annotations"].clone(),
        },
        "spec": admitted["spec"]["template"]["spec"].clone(),
    });
    let v = mutate(&p);
    assert!(v.patch.0.is_empty(), "{:?}", v.mutations);
}

#[test]
fn statefulsets_and_daemonsets_get_the_pod_template_rules() {
    for kind in ["StatefulSet", "DaemonSet"] {
        let d = with(
            deployment(),
            &[
                ("/kind", json!(kind)),
                ("/spec/strategy", Value::Null),
                (&format!("{C0}/lifecycle"), Value::Null),
            ],
        );
        let d = annotate(d, &[("rollguard.io/warmup", "10s")]);
        let v = mutate(&d);
        // A DaemonSet gets a preStop sleep only when it asks for one: a
        // default sleep would cost every node's rollout for nothing.
        let expected: &[Rule] = if kind == "DaemonSet" {
            &[Rule::Warmup]
        } else {
            &[Rule::PrestopSleep, Rule::GracePeriod, Rule::Warmup]
        };
        assert_eq!(mutated_rules(&v), expected, "{kind}");
        if kind == "DaemonSet" {
            let asked = annotate(d.clone(), &[("rollguard.io/prestop-sleep", "5s")]);
            assert_eq!(
                mutated_rules(&mutate(&asked)),
                [Rule::PrestopSleep, Rule::GracePeriod, Rule::Warmup]
            );
        }
        assert_eq!(at(&v, "/spec/minReadySeconds"), &json!(10));
        assert!(
            at(&v, "/spec/strategy").is_null(),
            "{kind}: no Deployment strategy written"
        );
    }
}

#[test]
fn mutated_annotation_records_rules_and_merges_with_earlier_ones() {
    let d = annotate(
        with(deployment(), &[(&format!("{C0}/lifecycle"), Value::Null)]),
        &[("rollguard.io/mutated", "single-replica")],
    );
    let v = mutate(&d);
    assert_eq!(
        at(&v, "/metadata/annotations/rollguard.io~1mutated"),
        &json!("single-replica,prestop-sleep,grace-period")
    );
}

/// The API server calls mutating webhooks before it validates, so an object
/// without containers (Go writes an empty list as `null`) or with a nameless
/// container reaches rollguard. It must not answer 500: the API server's own
/// "Required value" error is the one the user needs.
#[test]
fn missing_or_null_containers_and_names_read_as_empty() {
    for containers in [json!(null), json!([])] {
        let mut d = deployment();
        d["spec"]["template"]["spec"]["containers"] = containers.clone();
        let v = mutate(&d);
        assert!(
            v.mutations.iter().all(|m| !m.field.contains("containers")),
            "{containers}: {:?}",
            v.mutations
        );
    }
    let mut d = deployment();
    d["spec"]["template"]["spec"]
        .as_object_mut()
        .unwrap()
        .remove("containers");
    run(&d, Stage::Full, Mode::Enforce, &Settings::default());

    let mut d = deployment();
    let container = d["spec"]["template"]["spec"]["containers"][0]
        .as_object_mut()
        .unwrap();
    container.remove("name");
    container.remove("lifecycle");
    let v = mutate(&d);
    assert!(
        v.mutations
            .iter()
            .any(|m| m.field == "spec.template.spec.containers[].lifecycle.preStop"),
        "{:?}",
        v.mutations
    );
}

// ---- numbers at the type limits ----------------------------------------------
// The API server accepts these values; wrapping arithmetic in release builds
// turned them into wrong answers.

#[test]
fn a_huge_grace_period_is_raised_by_the_sleep_without_wrapping() {
    let d = with(
        deployment(),
        &[
            (&format!("{C0}/lifecycle"), Value::Null),
            (
                "/spec/template/spec/terminationGracePeriodSeconds",
                json!(9_223_372_036_854_775_800_i64),
            ),
        ],
    );
    let v = mutate(&d);
    assert_eq!(
        at(&v, "/spec/template/spec/terminationGracePeriodSeconds"),
        &json!(i64::MAX),
        "grace + sleep saturates; it must never come out small"
    );
    assert!(validate(&v.admitted).violations.is_empty());
}

#[test]
fn sleeps_and_timeouts_at_the_limit_saturate_in_both_grace_rules() {
    let d = with(
        deployment(),
        &[(
            &format!("{C0}/lifecycle/preStop/sleep/seconds"),
            json!(i64::MAX),
        )],
    );
    let d = annotate(d, &[("rollguard.io/shutdown-timeout", "1h")]);
    let v = mutate(&d);
    assert_eq!(
        at(&v, "/spec/template/spec/terminationGracePeriodSeconds"),
        &json!(i64::MAX)
    );
    // A sleep of i64::MAX is never below any grace period: denied, not wrapped.
    let judged = validate(&v.admitted);
    assert!(violated(&judged).contains(&(Rule::PrestopExceedsGrace, Action::Deny)));
}

#[test]
fn a_stateful_flush_is_covered_within_int32_or_denied_as_not_one_at_a_time() {
    let stateful = |grace: i64| {
        annotate(
            with(
                deployment(),
                &[(
                    "/spec/template/spec/terminationGracePeriodSeconds",
                    json!(grace),
                )],
            ),
            &[("rollguard.io/profile", "stateful")],
        )
    };
    // The longest flush that still fits: minReadySeconds i32::MAX - 1, the
    // deadline saturates at i32::MAX, still above it.
    let edge = i64::from(i32::MAX) - 1;
    let v = run(
        &stateful(edge),
        Stage::Full,
        Mode::Enforce,
        &Settings::default(),
    );
    assert_eq!(at(&v, "/spec/minReadySeconds"), &json!(edge));
    assert_eq!(at(&v, "/spec/progressDeadlineSeconds"), &json!(i32::MAX));
    assert!(!v.denied(), "{:?}", v.violations);
    // 2147483000 (+ 10 s injected preStop) + 600 still fits in int32.
    let v = run(
        &stateful(2_147_483_000),
        Stage::Full,
        Mode::Enforce,
        &Settings::default(),
    );
    assert_eq!(at(&v, "/spec/minReadySeconds"), &json!(2_147_483_000));
    assert_eq!(
        at(&v, "/spec/progressDeadlineSeconds"),
        &json!(2_147_483_600)
    );
    for grace in [
        i64::from(i32::MAX),
        3_000_000_000,
        9_223_372_036_854_775_800,
        i64::MAX,
    ] {
        let v = run(
            &stateful(grace),
            Stage::Full,
            Mode::Enforce,
            &Settings::default(),
        );
        for field in ["minReadySeconds", "progressDeadlineSeconds"] {
            let written = at(&v, &format!("/spec/{field}"));
            assert!(
                written.as_i64().is_none_or(|n| i32::try_from(n).is_ok()),
                "grace {grace}: {field} {written}"
            );
        }
        assert!(v.denied(), "grace {grace}: {:?}", v.violations);
        let denial = v.denials().next().unwrap();
        assert_eq!(denial.rule, Rule::StatefulParallel);
        assert!(
            denial.detail.contains("flushes may overlap"),
            "{}",
            denial.detail
        );
    }
}

#[test]
fn stateful_sets_are_judged_on_the_written_max_unavailable() {
    let set = |replicas: i64, rolling: Value| {
        json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "db", "annotations": {"rollguard.io/profile": "stateful"}},
            "spec": {
                "replicas": replicas, "serviceName": "db",
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": rolling},
                "selector": {"matchLabels": {"app": "db"}},
                "template": {"metadata": {"labels": {"app": "db"}},
                    "spec": {"containers": [{"name": "db", "image": "db"}]}}
            }
        })
    };
    // 1 pod above the partition now, 2 flushing once scaled to 4.
    for (replicas, rolling, scaled) in [
        (
            3,
            json!({"partition": 2, "maxUnavailable": 2}),
            "if scaled to 4",
        ),
        (2, json!({"maxUnavailable": "50%"}), "if scaled to 4"),
        (3, json!({"maxUnavailable": 2}), "at 3 replicas"),
        (
            3,
            json!({"partition": 3, "maxUnavailable": 2}),
            "if scaled to 5",
        ),
    ] {
        let v = validate(&set(replicas, rolling.clone()));
        assert_eq!(
            violated(&v),
            [(Rule::StatefulParallel, Action::Deny)],
            "{rolling}"
        );
        assert!(
            v.violations[0]
                .detail
                .contains(&format!("{scaled}: 2 flush at once")),
            "{rolling}: {}",
            v.violations[0].detail
        );
    }
    for rolling in [
        json!({}),
        json!({"maxUnavailable": 1}),
        json!({"partition": 5, "maxUnavailable": 1}),
    ] {
        assert!(
            validate(&set(3, rolling.clone())).violations.is_empty(),
            "{rolling}"
        );
    }
    // A partition above replicas neither panics nor wraps.
    let v = validate(&set(1, json!({"partition": i32::MAX, "maxUnavailable": 2})));
    assert!(v.violations.is_empty(), "{:?}", v.violations);
}

#[test]
fn a_huge_surge_percentage_is_not_a_fencepost_and_not_an_error() {
    for surge in ["4611686018427387904%", "999999999999%"] {
        let d = with(
            deployment(),
            &[
                ("/spec/replicas", json!(4)),
                (
                    "/spec/strategy/rollingUpdate",
                    json!({"maxSurge": surge, "maxUnavailable": 0}),
                ),
            ],
        );
        assert!(
            validate(&d).violations.is_empty(),
            "{surge}: {:?}",
            violated(&validate(&d))
        );
        assert!(mutate(&d).patch.0.is_empty(), "{surge}");
    }
}

#[test]
fn a_huge_unavailable_percentage_is_all_unavailable() {
    let d = with(
        deployment(),
        &[(
            "/spec/strategy/rollingUpdate",
            json!({"maxSurge": 1, "maxUnavailable": "99999999999999999999999999999999%"}),
        )],
    );
    assert_eq!(
        violated(&validate(&d)),
        [(Rule::RolloutAllUnavailable, Action::Deny)]
    );
}

#[test]
fn a_readiness_port_name_no_container_declares_is_an_invalid_annotation_naming_the_ports() {
    let d = with(
        deployment(),
        &[(&format!("{C0}/readinessProbe"), Value::Null)],
    );
    let d = with(
        d,
        &[(
            &format!("{C0}/ports"),
            json!([{"name": "http", "containerPort": 8080}, {"containerPort": 9090}]),
        )],
    );
    let named_metrics = annotate(d.clone(), &[("rollguard.io/readiness-port", "metrics")]);
    // No probe on a name the kubelet cannot resolve: the pod would never be Ready.
    assert!(!mutated_rules(&mutate(&named_metrics)).contains(&Rule::ReadinessProbe));
    let judged = validate(&named_metrics);
    assert!(violated(&judged).contains(&(Rule::InvalidAnnotation, Action::Deny)));
    let message = judged
        .violations
        .iter()
        .find(|v| v.rule == Rule::InvalidAnnotation)
        .map(|v| v.message())
        .unwrap();
    for part in [
        "rollguard.io/readiness-port",
        "metrics",
        "http (8080)",
        "9090",
    ] {
        assert!(message.contains(part), "{message} lacks {part}");
    }

    // A declared name, or a number (which need not be declared), is fine.
    let named_http = annotate(d.clone(), &[("rollguard.io/readiness-port", "http")]);
    assert!(mutated_rules(&mutate(&named_http)).contains(&Rule::ReadinessProbe));
    assert!(!violated(&validate(&named_http)).contains(&(Rule::InvalidAnnotation, Action::Deny)));
    let numbered = annotate(d, &[("rollguard.io/readiness-port", "7000")]);
    assert!(mutated_rules(&mutate(&numbered)).contains(&Rule::ReadinessProbe));
    assert!(!violated(&validate(&numbered)).contains(&(Rule::InvalidAnnotation, Action::Deny)));
}
