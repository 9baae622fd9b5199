//! Lists and maps inside the fields the rules read (ports, commands, probe
//! headers, owner references, annotations) cost memory per element, far more
//! than their JSON text. Past the read limit (`workload::MAX_ITEMS_REVIEWED`
//! items, `MAX_TEXT_BYTES_REVIEWED` bytes of text) the rest is checked, not
//! built, and the object is allowed untouched with a warning, as an object
//! with too many containers is: never judged or patched on part of a list.

mod support;

use std::future::Future;
use std::time::Duration;

use axum::body::Body;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

use rollguard::admission::PolicyConfig;
use rollguard::policy::{self, EngineError, EvalRequest, Mode, Stage};
use rollguard::server::{app, AppState};
use rollguard::settings::Settings;
use rollguard::workload::{
    WorkloadKind, MAX_CONTAINERS_REVIEWED, MAX_ITEMS_REVIEWED, MAX_TEXT_BYTES_REVIEWED,
};
use support::binary::{peak_rss_kib, Binary, SHIPPED_MEMORY_LIMIT_MIB};
use support::tls::{trusting_client, H1};

const POD_REVIEW: &str = include_str!("fixtures/admission/pod-create.json");

/// Hostile bodies stay under the default body limit (7 MiB).
const HOSTILE_BODY_BYTES: usize = 7_000_000;

/// Peak RSS a hostile review may reach: well within the shipped limit.
const PEAK_RSS_BOUND_MIB: u64 = 48;

/// Upper bound for a whole test: it stops a hung test, it measures nothing.
const TEST_BOUND: Duration = Duration::from_secs(300);

async fn bounded<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(TEST_BOUND, future)
        .await
        .expect("test exceeded its time bound")
}

/// The captured Pod review with `edit` applied to it.
fn pod_review(edit: impl FnOnce(&mut Value)) -> Value {
    let mut review: Value = serde_json::from_str(POD_REVIEW).expect("fixture");
    edit(&mut review);
    review
}

fn encode(review: &Value) -> Vec<u8> {
    serde_json::to_vec(review).expect("encode")
}

/// As many elements made by `element` as fit in about `bytes` of JSON.
fn filling(bytes: usize, element: impl Fn(usize) -> Value) -> Vec<Value> {
    let mut elements = Vec::new();
    let mut size = 0;
    while size < bytes {
        let next = element(elements.len());
        size += next.to_string().len() + 1;
        elements.push(next);
    }
    elements
}

/// A map of about `bytes` of JSON, its entries made by `entry`.
fn filling_map(bytes: usize, entry: impl Fn(usize) -> (String, Value)) -> Value {
    let mut map = serde_json::Map::new();
    let mut size = 0;
    while size < bytes {
        let (key, value) = entry(map.len());
        size += key.len() + value.to_string().len() + 4;
        map.insert(key, value);
    }
    Value::Object(map)
}

fn container(review: &mut Value) -> &mut Value {
    &mut review["request"]["object"]["spec"]["containers"][0]
}

/// A review sent to a fresh server, and whether rollguard should review it.
struct Hostile {
    field: &'static str,
    route: &'static str,
    body: Vec<u8>,
    reviewed: bool,
}

fn past_the_limit(field: &'static str, review: Value) -> Hostile {
    Hostile {
        field,
        route: "/mutate",
        body: encode(&review),
        reviewed: false,
    }
}

/// One ~7 MB review per field the rules read that can hold a list or map,
/// and the largest object within the read limit.
fn hostile_reviews() -> Vec<Hostile> {
    let room = HOSTILE_BODY_BYTES - POD_REVIEW.len();
    let ports = || filling(room, |i| json!({"containerPort": 1 + i % 65535}));
    let named_ports = || {
        filling(
            room,
            |i| json!({"containerPort": 1 + i % 65535, "name": format!("p{i}"), "protocol": "TCP"}),
        )
    };
    let strings = || filling(room, |_| json!(""));
    let mut hostile = vec![
        past_the_limit(
            "ports",
            pod_review(|r| container(r)["ports"] = json!(ports())),
        ),
        past_the_limit(
            "annotations",
            pod_review(|r| {
                r["request"]["object"]["metadata"]["annotations"] =
                    filling_map(room, |i| (format!("a{i}"), json!("")))
            }),
        ),
        past_the_limit(
            "ports with name and protocol",
            pod_review(|r| container(r)["ports"] = json!(named_ports())),
        ),
        past_the_limit(
            "lifecycle.preStop.exec.command",
            pod_review(|r| {
                container(r)["lifecycle"] = json!({"preStop": {"exec": {"command": strings()}}})
            }),
        ),
        past_the_limit(
            "readinessProbe.exec.command",
            pod_review(|r| {
                container(r)["readinessProbe"] = json!({"exec": {"command": strings()}})
            }),
        ),
        past_the_limit(
            "ownerReferences",
            pod_review(|r| {
                r["request"]["object"]["metadata"]["ownerReferences"] =
                    json!(filling(room, |_| json!({"kind": "D"})))
            }),
        ),
        past_the_limit(
            "readinessProbe.httpGet.httpHeaders",
            pod_review(|r| {
                let headers = filling(room, |_| json!({"name": "a", "value": "b"}));
                container(r)["readinessProbe"] =
                    json!({"httpGet": {"port": 8080, "httpHeaders": headers}})
            }),
        ),
        past_the_limit(
            "one 7 MB preStop command string",
            pod_review(|r| {
                container(r)["lifecycle"] =
                    json!({"preStop": {"exec": {"command": ["sh", "-c", "x".repeat(room)]}}})
            }),
        ),
    ];
    // Before the limit, the validating webhook listed every port of these
    // in its denial (1.1 MB).
    hostile.push(Hostile {
        route: "/validate",
        ..past_the_limit(
            "named ports, a readiness-port nobody declares (/validate)",
            pod_review(|r| {
                r["request"]["object"]["metadata"]["annotations"] =
                    json!({"rollguard.io/readiness-port": "metrics"});
                container(r)["ports"] = json!(named_ports())
            }),
        )
    });
    // The most an object may hold and still be reviewed: the review that
    // bounds memory, since one past the limit is not evaluated at all.
    let items_left = MAX_ITEMS_REVIEWED - 10;
    let name_bytes = 40;
    let within = pod_review(|r| {
        let ports: Vec<Value> = (0..items_left)
            .map(
                |i| json!({"containerPort": 1 + i, "name": format!("{i:0>40}"), "protocol": "TCP"}),
            )
            .collect();
        let text_left = MAX_TEXT_BYTES_REVIEWED - items_left * (name_bytes + 3) - 10_000;
        container(r)["ports"] = json!(ports);
        container(r)["lifecycle"] =
            json!({"preStop": {"exec": {"command": ["sh", "-c", "x".repeat(text_left)]}}});
    });
    hostile.push(Hostile {
        field: "just within the read limit: ports and text (reviewed)",
        route: "/mutate",
        body: encode(&within),
        reviewed: true,
    });
    // As many containers as rollguard reviews, each with every list it
    // reads but a preStop hook, which every one of them gets: ten items a
    // container.
    let containers: Vec<Value> = (0..MAX_CONTAINERS_REVIEWED.min(MAX_ITEMS_REVIEWED / 10 - 1))
        .map(|i| {
            json!({
                "name": format!("c{i}"),
                "image": "registry.example/app:1",
                "readinessProbe": {"httpGet": {"port": "http", "httpHeaders": [
                    {"name": "X-Probe", "value": "ready"}, {"name": "X-Pod", "value": "c"}]}},
                "livenessProbe": {"exec": {"command": ["cat", "/tmp/alive"]}},
                "ports": [{"containerPort": 8080, "name": "http"},
                          {"containerPort": 9090, "name": "metrics"},
                          {"containerPort": 9091, "name": "admin"},
                          {"containerPort": 9092, "name": "debug"},
                          {"containerPort": 9093, "name": "grpc"}],
            })
        })
        .collect();
    hostile.push(Hostile {
        field: "just within the read limit: containers with every list (reviewed)",
        route: "/mutate",
        body: encode(&pod_review(|r| {
            r["request"]["object"]["spec"]["containers"] = json!(containers)
        })),
        reviewed: true,
    });
    hostile
}

fn insecure_client() -> reqwest::Client {
    trusting_client(H1, TEST_BOUND)
}

/// What one hostile review did to a fresh server.
struct Measured {
    field: &'static str,
    reviewed: bool,
    body_bytes: usize,
    before_kib: u64,
    peak_kib: u64,
    status: u16,
    reply_bytes: usize,
    reply: Value,
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hostile_field_is_answered_within_the_memory_bound() {
    bounded(async {
        let client = insecure_client();
        let mut measured = Vec::new();
        for Hostile {
            field,
            route,
            body,
            reviewed,
        } in hostile_reviews()
        {
            // A fresh server each, so that each peak is this review's own.
            let (mut binary, https, _ops) =
                Binary::serve(&["--self-signed", "--shutdown-delay", "0"]).await;
            let url = format!("https://{https}{route}");
            let small = client.post(&url).body(POD_REVIEW).send().await;
            assert_eq!(small.expect("small review").status(), 200);
            let before_kib = peak_rss_kib(binary.child.id());
            let answer = client
                .post(&url)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .expect("hostile review");
            let status = answer.status().as_u16();
            let bytes = answer.bytes().await.expect("reply body");
            measured.push(Measured {
                field,
                reviewed,
                body_bytes: body.len(),
                before_kib,
                peak_kib: peak_rss_kib(binary.child.id()),
                status,
                reply_bytes: bytes.len(),
                reply: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            });
            binary.terminate();
            binary.wait_exit_async(support::WAIT_BOUND).await;
        }
        println!("| field | body | peak RSS before | peak RSS after | reply |");
        for m in &measured {
            println!(
                "| {} | {:.1} MB | {:.1} MiB | {:.1} MiB | {} bytes |",
                m.field,
                m.body_bytes as f64 / 1e6,
                m.before_kib as f64 / 1024.0,
                m.peak_kib as f64 / 1024.0,
                m.reply_bytes,
            );
        }
        for m in &measured {
            assert_eq!(m.status, 200, "{}", m.field);
            let response = &m.reply["response"];
            assert_eq!(response["allowed"], true, "{}: {response}", m.field);
            let warnings: Vec<&str> = response["warnings"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            assert!(
                warnings.iter().all(|w| w.len() <= 120),
                "{}: {warnings:?}",
                m.field
            );
            let not_reviewed = warnings.iter().any(|w| w.contains("did not review"));
            if m.reviewed {
                assert!(!not_reviewed, "{}: {warnings:?}", m.field);
                assert!(response.get("patch").is_some(), "{}: {response}", m.field);
            } else {
                assert_eq!(warnings.len(), 1, "{}: {response}", m.field);
                assert!(not_reviewed, "{}: {warnings:?}", m.field);
                assert!(
                    warnings[0].contains(&MAX_ITEMS_REVIEWED.to_string()),
                    "{}: {warnings:?}",
                    m.field
                );
                assert!(response.get("patch").is_none(), "{}: {response}", m.field);
            }
            assert!(
                m.peak_kib < PEAK_RSS_BOUND_MIB * 1024,
                "{}: peak RSS {} KiB is not under {PEAK_RSS_BOUND_MIB} MiB (shipped limit \
                 {SHIPPED_MEMORY_LIMIT_MIB} MiB)",
                m.field,
                m.peak_kib
            );
        }
    })
    .await;
}

// ---------------------------------------------------------------- in-process: never an answer from part of a list

/// The fixture's Pod object with `ports` on its one container.
fn pod_with_ports(ports: Vec<Value>, readiness_port: Option<&str>) -> Value {
    pod_review(|r| {
        if let Some(port) = readiness_port {
            r["request"]["object"]["metadata"]["annotations"] =
                json!({"rollguard.io/readiness-port": port});
        }
        container(r)["ports"] = json!(ports);
    })
}

fn numbered_ports(count: usize) -> Vec<Value> {
    (0..count)
        .map(|i| json!({"containerPort": 1000 + i}))
        .collect()
}

async fn call(route: &str, body: Vec<u8>) -> (u16, Value) {
    let request = axum::http::Request::post(route)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .expect("request");
    let response = app(AppState::new(PolicyConfig::default()))
        .oneshot(request)
        .await
        .expect("answer");
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

const ROUTES: [&str; 3] = ["/mutate", "/validate", "/audit"];

#[tokio::test]
async fn a_list_cut_short_leaves_the_object_untouched_on_every_route() {
    // The one port the annotation names comes after the read limit: judged
    // on the ports read, the object would be denied on /validate for a port
    // nobody declares, and /mutate would probe the first port.
    let mut ports = numbered_ports(MAX_ITEMS_REVIEWED + 10);
    ports.push(json!({"containerPort": 9090, "name": "metrics"}));
    let past = pod_with_ports(ports, Some("metrics"));
    for route in ROUTES {
        let (status, reply) = call(route, encode(&past)).await;
        assert_eq!(status, 200, "{route}: {reply}");
        let response = &reply["response"];
        assert_eq!(response["allowed"], true, "{route}: {response}");
        assert!(response.get("patch").is_none(), "{route}: {response}");
        assert!(
            response.get("auditAnnotations").is_none(),
            "{route}: {response}"
        );
        let warnings = response["warnings"].as_array().expect("a warning");
        assert_eq!(warnings.len(), 1, "{route}: {response}");
        let warning = warnings[0].as_str().unwrap_or_default();
        assert!(
            warning.starts_with("rollguard did not review this Pod"),
            "{warning}"
        );
        assert!(warning.len() <= 120, "{warning}");
    }

    // The same object within the limit is reviewed: patched on /mutate.
    let mut ports = numbered_ports(10);
    ports.push(json!({"containerPort": 9090, "name": "metrics"}));
    let within = pod_with_ports(ports, Some("metrics"));
    let (status, reply) = call("/mutate", encode(&within)).await;
    assert_eq!(status, 200);
    assert!(reply["response"].get("patch").is_some(), "{reply}");
}

#[test]
fn the_engine_refuses_to_judge_a_view_cut_short_at_every_stage() {
    for (what, object) in [
        (
            "ports",
            pod_with_ports(numbered_ports(MAX_ITEMS_REVIEWED + 1), None),
        ),
        (
            "annotations",
            pod_review(|r| {
                let annotations = (0..=MAX_ITEMS_REVIEWED)
                    .map(|i| (format!("a{i}"), json!("")))
                    .collect::<serde_json::Map<_, _>>();
                r["request"]["object"]["metadata"]["annotations"] = Value::Object(annotations);
            }),
        ),
        (
            "text",
            pod_review(|r| {
                let command = json!(["sh", "-c", "x".repeat(MAX_TEXT_BYTES_REVIEWED)]);
                container(r)["lifecycle"] = json!({"preStop": {"exec": {"command": command}}});
            }),
        ),
    ] {
        let object = &object["request"]["object"];
        for stage in [Stage::Mutate, Stage::Validate, Stage::Full] {
            let request = EvalRequest {
                kind: WorkloadKind::Pod,
                object,
                stage,
                mode: Mode::Enforce,
            };
            match policy::evaluate(&request, &Settings::default()) {
                Err(EngineError::OverReadLimit { kind }) => assert_eq!(kind, WorkloadKind::Pod),
                other => panic!("{what} at {stage:?}: {other:?}"),
            }
        }
    }
}

#[tokio::test]
async fn a_broken_value_past_the_limit_is_still_refused() {
    // What serde_json's fast skip lets through and a full parser refuses.
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    for (what, broken) in [
        ("a lone surrogate", r#""\ud800""#.to_string()),
        ("nesting past the depth limit", deep),
    ] {
        for at in [5, MAX_ITEMS_REVIEWED + 5] {
            let mut ports = numbered_ports(at);
            ports.push(json!("BROKEN"));
            ports.extend(numbered_ports(3));
            let mut annotations: Vec<(String, Value)> =
                (0..at).map(|i| (format!("a{i}"), json!(""))).collect();
            annotations.push(("broken".to_string(), json!("BROKEN")));
            let with_ports = encode(&pod_with_ports(ports, None));
            let with_annotations = encode(&pod_review(|r| {
                r["request"]["object"]["metadata"]["annotations"] =
                    Value::Object(annotations.into_iter().collect());
            }));
            for body in [with_ports, with_annotations] {
                let body = String::from_utf8(body)
                    .expect("JSON text")
                    .replace(r#""BROKEN""#, &broken);
                assert!(serde_json::from_str::<Value>(&body).is_err(), "{what}");
                let (status, _) = call("/mutate", body.into_bytes()).await;
                assert_eq!(status, 400, "{what} after {at} elements");
            }
        }
    }
}

#[tokio::test]
async fn a_denial_lists_a_few_ports_and_counts_the_rest() {
    let ports = (0..40)
        .map(|i| json!({"containerPort": 1000 + i, "name": format!("p{i}")}))
        .collect();
    let review = pod_with_ports(ports, Some("metrics"));
    let (status, reply) = call("/validate", encode(&review)).await;
    assert_eq!(status, 200);
    let response = &reply["response"];
    assert_eq!(response["allowed"], false, "{response}");
    let message = response["status"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("p0 (1000)"), "{message}");
    assert!(message.contains("and 35 more"), "{message}");
    assert!(!message.contains("p39"), "{message}");
}

#[tokio::test]
async fn an_object_its_own_patch_takes_past_the_limit_is_left_alone_too() {
    // The fixture's Pod reads as two items besides its ports: its container
    // and its one annotation. Its patch adds one: `rollguard.io/mutated`.
    let reply_with = |ports| async move {
        let (status, reply) = call(
            "/mutate",
            encode(&pod_with_ports(numbered_ports(ports), None)),
        )
        .await;
        assert_eq!(status, 200, "{reply}");
        reply["response"].clone()
    };
    let fits = reply_with(MAX_ITEMS_REVIEWED - 3).await;
    assert!(fits.get("patch").is_some(), "{fits}");
    assert!(fits.get("warnings").is_none(), "{fits}");

    let past_once_patched = reply_with(MAX_ITEMS_REVIEWED - 2).await;
    assert_eq!(past_once_patched["allowed"], true);
    assert!(
        past_once_patched.get("patch").is_none(),
        "{past_once_patched}"
    );
    let warning = past_once_patched["warnings"][0]
        .as_str()
        .unwrap_or_default();
    assert!(
        warning.starts_with("rollguard did not review this Pod"),
        "{warning}"
    );
}
