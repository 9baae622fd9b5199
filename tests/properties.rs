//! Properties of the engine over generated workloads: mutation is idempotent,
//! the patch reproduces the mutated object, unknown fields survive, what
//! enforce mode admits breaks no rule it could have fixed, and no input panics.

use proptest::prelude::*;
use rollguard::admission::{answer, PolicyConfig, Route};
use rollguard::policy::{evaluate, EvalRequest, Mode, Stage, Verdict};
use rollguard::rules::Rule;
use rollguard::settings::Settings;
use rollguard::workload::WorkloadKind;
use serde_json::{json, Map, Value};

fn int_or_percent() -> impl Strategy<Value = Value> {
    prop_oneof![
        (0..4i32).prop_map(Value::from),
        prop::sample::select(vec!["0%", "1%", "25%", "50%", "100%"]).prop_map(Value::from),
    ]
}

fn duration() -> impl Strategy<Value = String> {
    prop_oneof![
        (0..120i64).prop_map(|s| format!("{s}s")),
        (1..50i64).prop_map(|m| format!("{m}m")),
        (0..600i64).prop_map(|s| s.to_string()),
    ]
}

fn pre_stop() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        Just(None),
        (0..60i64).prop_map(|s| Some(json!({"sleep": {"seconds": s}}))),
        (0..60i64)
            .prop_map(|s| Some(json!({"exec": {"command": ["sh", "-c", format!("sleep {s}")]}}))),
        Just(Some(json!({"exec": {"command": ["nginx", "-s", "quit"]}}))),
    ]
}

fn container(index: usize) -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec!["app", "istio-proxy", "worker", "linkerd-proxy"]),
        prop_oneof![
            Just(None),
            (1..65535i32).prop_map(|p| Some(json!([{"containerPort": p}]))),
            (1..65535i32).prop_map(|p| Some(
                json!([{"name": "http", "containerPort": p}, {"containerPort": 9090}])
            )),
        ],
        pre_stop(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(move |(name, ports, pre_stop, readiness, liveness)| {
            let mut c =
                json!({"name": format!("{name}-{index}"), "image": "registry.example.com/app:1"});
            if index == 0 {
                c["name"] = json!(name);
            }
            if let Some(ports) = ports {
                c["ports"] = ports;
            }
            if let Some(pre_stop) = pre_stop {
                c["lifecycle"] = json!({"preStop": pre_stop});
            }
            if readiness {
                c["readinessProbe"] = json!({"tcpSocket": {"port": 8080}});
            }
            if liveness {
                c["livenessProbe"] = json!({"tcpSocket": {"port": 8080}, "periodSeconds": 20});
            }
            c
        })
}

fn annotations() -> impl Strategy<Value = Map<String, Value>> {
    (
        prop::option::of(prop::sample::select(vec![
            "serving",
            "stateful",
            "pull-based",
        ])),
        prop::option::of(duration()),
        prop::option::of(duration()),
        prop::option::of(duration()),
        prop::option::of(Just("/ready")),
        prop::option::of(Just("rollout-fencepost")),
    )
        .prop_map(|(profile, shutdown, sleep, warmup, path, waive)| {
            let mut map = Map::new();
            let mut put = |k: &str, v: Option<String>| {
                if let Some(v) = v {
                    map.insert(format!("rollguard.io/{k}"), Value::String(v));
                }
            };
            put("profile", profile.map(str::to_string));
            put("shutdown-timeout", shutdown);
            put("prestop-sleep", sleep);
            put("warmup", warmup);
            put("readiness-path", path.map(str::to_string));
            put("waive", waive.map(str::to_string));
            map
        })
}

/// A Deployment, StatefulSet, DaemonSet or Pod with fields unknown to
/// k8s-openapi sprinkled at every level.
fn workload() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec!["Deployment", "StatefulSet", "DaemonSet", "Pod"]),
        annotations(),
        prop::option::of(0..6i32),
        prop_oneof![
            Just(None),
            Just(Some(json!({"type": "Recreate"}))),
            (prop::option::of(int_or_percent()), prop::option::of(int_or_percent())).prop_map(|(s, u)| {
                let mut ru = Map::new();
                if let Some(s) = s {
                    ru.insert("maxSurge".into(), s);
                }
                if let Some(u) = u {
                    ru.insert("maxUnavailable".into(), u);
                }
                Some(json!({"type": "RollingUpdate", "rollingUpdate": ru}))
            }),
        ],
        prop::option::of(0..700i64),
        prop::option::of(0..120i32),
        (1..4usize).prop_flat_map(|n| (0..n).map(container).collect::<Vec<_>>()),
    )
        .prop_map(|(kind, annotations, replicas, strategy, grace, min_ready, containers)| {
            let mut pod_spec = json!({"containers": containers, "x-unknown-pod-field": {"keep": [1, 2]}});
            if let Some(grace) = grace {
                pod_spec["terminationGracePeriodSeconds"] = json!(grace);
            }
            if let Some(c) = pod_spec["containers"].get_mut(0) {
                c["x-unknown-container-field"] = json!("keep");
            }
            let metadata = json!({
                "name": "w",
                "annotations": annotations,
                "x-unknown-meta-field": true,
            });
            if kind == "Pod" {
                return json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": pod_spec, "x-unknown-top": 1});
            }
            let mut spec = json!({
                "selector": {"matchLabels": {"app": "w"}},
                "template": {"metadata": {"labels": {"app": "w"}}, "spec": pod_spec},
                "x-unknown-spec-field": "keep",
            });
            if let Some(replicas) = replicas.filter(|_| kind != "DaemonSet") {
                spec["replicas"] = json!(replicas);
            }
            if let Some(strategy) = strategy.filter(|_| kind == "Deployment") {
                spec["strategy"] = strategy;
            }
            if let Some(min_ready) = min_ready {
                spec["minReadySeconds"] = json!(min_ready);
            }
            json!({"apiVersion": "apps/v1", "kind": kind, "metadata": metadata, "spec": spec, "x-unknown-top": 1})
        })
}

fn run(object: &Value, stage: Stage) -> Verdict {
    let kind = WorkloadKind::from_object(object).unwrap();
    let request = EvalRequest {
        kind,
        object,
        stage,
        mode: Mode::Enforce,
    };
    evaluate(&request, &Settings::default()).unwrap()
}

fn unknown_fields(value: &Value, path: &str, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let here = format!("{path}/{k}");
                if k.starts_with("x-unknown") {
                    out.push((here.clone(), v.clone()));
                }
                unknown_fields(v, &here, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                unknown_fields(v, &format!("{path}/{i}"), out);
            }
        }
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn a_second_mutation_pass_yields_no_patch(object in workload()) {
        let first = run(&object, Stage::Mutate);
        let second = run(&first.admitted, Stage::Mutate);
        prop_assert!(second.patch.0.is_empty(), "second pass: {:?}", second.patch);
    }

    #[test]
    fn the_patch_applied_to_the_input_is_the_mutated_object(object in workload()) {
        let verdict = run(&object, Stage::Mutate);
        let mut patched = object.clone();
        json_patch::patch(&mut patched, &verdict.patch).unwrap();
        prop_assert_eq!(patched, verdict.admitted);
    }

    #[test]
    fn fields_unknown_to_k8s_openapi_are_untouched(object in workload()) {
        let verdict = run(&object, Stage::Full);
        let (mut before, mut after) = (Vec::new(), Vec::new());
        unknown_fields(&object, "", &mut before);
        unknown_fields(&verdict.admitted, "", &mut after);
        prop_assert!(before.len() >= 4);
        prop_assert_eq!(before, after);
    }

    #[test]
    fn after_enforce_mutation_no_auto_fixable_denial_remains(object in workload()) {
        let verdict = run(&object, Stage::Full);
        let annotations = &object["metadata"]["annotations"];
        let shutdown = annotations.get("rollguard.io/shutdown-timeout").is_some();
        let stateful = annotations.get("rollguard.io/profile") == Some(&json!("stateful"));
        let recreate = object["spec"]["strategy"]["type"] == "Recreate";
        let replicas = object["spec"]["replicas"].as_i64().unwrap_or(1);
        for v in verdict.denials() {
            let fixable = match v.rule {
                Rule::GraceBelowShutdown => true,
                Rule::PrestopExceedsGrace => shutdown,
                Rule::StatefulParallel => !recreate,
                Rule::RolloutFencepost | Rule::RolloutAllUnavailable => replicas == 1 || stateful,
                _ => false,
            };
            prop_assert!(!fixable, "{} remains after mutation: {}", v.rule, v.message());
        }
    }

    #[test]
    fn arbitrary_json_never_panics_the_engine(
        kind in prop::sample::select(vec![WorkloadKind::Deployment, WorkloadKind::Pod, WorkloadKind::StatefulSet]),
        object in arbitrary_json(),
    ) {
        let request = EvalRequest { kind, object: &object, stage: Stage::Full, mode: Mode::Enforce };
        let _ = evaluate(&request, &Settings::default());
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_handler(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let reply = answer(Route::Mutate, &body, &PolicyConfig::default());
        prop_assert_eq!(reply.status, 400);
    }

    #[test]
    fn reviews_with_arbitrary_objects_get_an_answer(object in arbitrary_json()) {
        let review = json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "u-1",
                "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
                "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
                "operation": "CREATE",
                "userInfo": {},
                "object": object,
            }
        });
        let reply = answer(Route::Audit, &serde_json::to_vec(&review).unwrap(), &PolicyConfig::default());
        prop_assert!([200, 400, 500].contains(&reply.status));
    }
}

/// JSON shaped loosely like a workload: known keys with random values.
fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[a-z%0-9/]{0,6}".prop_map(Value::from),
    ];
    let keys = prop::sample::select(vec![
        "spec",
        "template",
        "metadata",
        "annotations",
        "containers",
        "replicas",
        "strategy",
        "rollingUpdate",
        "maxSurge",
        "maxUnavailable",
        "lifecycle",
        "preStop",
        "sleep",
        "seconds",
        "ports",
        "containerPort",
        "name",
        "rollguard.io/profile",
        "terminationGracePeriodSeconds",
    ]);
    leaf.prop_recursive(6, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(keys.clone(), inner, 0..5).prop_map(|m| Value::Object(
                m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
            )),
        ]
    })
}
