//! `check --cluster` against a fake API server on 127.0.0.1 serving real list
//! responses: paged with continue tokens, 401/403/410/500 and a slow server.
//! The findings must be those of `check` over the same objects as files.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use rollguard::check::cluster::{self, ClusterOptions, Scope};
use rollguard::check::{run, CheckOptions, Format, Input, Summary};
use rollguard::policy::Mode;
use rollguard::settings::Settings;
use serde_json::{json, Value};
use support::temp::TempDir;

/// What the fake server holds and how it misbehaves.
#[derive(Default)]
struct Fake {
    /// (namespace, plural, object without apiVersion/kind, as in a list)
    objects: Vec<(String, String, Value)>,
    /// namespace -> status code answered for its lists
    failing: Vec<(String, u16)>,
    /// Every list request is answered after this delay.
    delay: Duration,
    requests: AtomicUsize,
    /// Requests answered after their delay.
    answered: AtomicUsize,
}

fn status(code: u16, reason: &str) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                      "message": format!("fake {reason}"), "reason": reason, "code": code});
    (StatusCode::from_u16(code).unwrap(), Json(body)).into_response()
}

async fn serve_list(State(fake): State<Arc<Fake>>, request: Request) -> Response {
    fake.requests.fetch_add(1, Ordering::Relaxed);
    tokio::time::sleep(fake.delay).await;
    fake.answered.fetch_add(1, Ordering::Relaxed);
    let path = request.uri().path().to_string();
    let query = request.uri().query().unwrap_or("").to_string();
    let param = |name: &str| {
        query.split('&').find_map(|pair| {
            pair.strip_prefix(&format!("{name}="))
                .map(|v| v.replace("%2F", "/").replace("%2f", "/"))
        })
    };
    if path == "/api/v1/namespaces" {
        let mut names: Vec<&String> = fake.objects.iter().map(|(ns, _, _)| ns).collect();
        names.extend(fake.failing.iter().map(|(ns, _)| ns));
        names.sort();
        names.dedup();
        let items: Vec<Value> = names
            .iter()
            .map(|ns| {
                let mode = if ns.contains("audit") {
                    "audit"
                } else {
                    "enforce"
                };
                json!({"metadata": {"name": ns, "labels": {"rollguard.io/mode": mode}}})
            })
            .collect();
        return Json(
            json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
                           "metadata": {"resourceVersion": "1"}, "items": items}),
        )
        .into_response();
    }
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    // /api/v1/namespaces/NS/PLURAL or /apis/apps/v1/namespaces/NS/PLURAL
    let (namespace, plural) = match parts.as_slice() {
        [.., "namespaces", ns, plural] => (Some(ns.to_string()), plural.to_string()),
        [.., plural] => (None, plural.to_string()),
        [] => return status(404, "NotFound"),
    };
    if let Some(ns) = &namespace {
        if let Some((_, code)) = fake.failing.iter().find(|(f, _)| f == ns) {
            return status(*code, "Failing");
        }
    }
    let matching: Vec<&Value> = fake
        .objects
        .iter()
        .filter(|(ns, p, _)| *p == plural && namespace.as_ref().is_none_or(|n| n == ns))
        .map(|(_, _, o)| o)
        .collect();
    let limit: usize = param("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(usize::MAX);
    let start: usize = param("continue").and_then(|c| c.parse().ok()).unwrap_or(0);
    let end = start.saturating_add(limit).min(matching.len());
    let next = if end < matching.len() {
        end.to_string()
    } else {
        String::new()
    };
    Json(json!({"kind": "List", "apiVersion": "v1",
                "metadata": {"resourceVersion": "1", "continue": next},
                "items": matching[start.min(end)..end]}))
    .into_response()
}

async fn start(fake: Fake) -> (String, Arc<Fake>) {
    let fake = Arc::new(fake);
    let app = axum::Router::new()
        .fallback(serve_list)
        .with_state(fake.clone());
    let (url, _) = support::net::serve_http(app).await;
    (url, fake)
}

/// A client through a kubeconfig file in a fresh temp dir, as users have.
async fn client(url: &str, timeout: Duration) -> kube::Client {
    let dir = TempDir::new();
    let path = dir.write(
        "kubeconfig",
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {url}\n\
             users:\n- name: me\n  user:\n    token: t\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: me\n\
             current-context: fake\n"
        ),
    );
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    cluster::client_from(config, timeout).unwrap()
}

fn options(format: Format, mode: Mode) -> CheckOptions {
    CheckOptions {
        mode,
        format,
        color: false,
        settings: Settings::default(),
    }
}

fn deployment(ns: &str, name: &str, max_unavailable: Value) -> Value {
    json!({"metadata": {"name": name, "namespace": ns},
           "spec": {"replicas": 3, "strategy": {"rollingUpdate": {"maxUnavailable": max_unavailable}},
                    "selector": {"matchLabels": {"app": name}},
                    "template": {"metadata": {"labels": {"app": name}},
                                 "spec": {"containers": [{"name": name, "image": "registry.example.com/x:1",
                                     "ports": [{"containerPort": 8080}],
                                     "readinessProbe": {"tcpSocket": {"port": 8080}}}]}}}})
}

fn pod(ns: &str, name: &str, owned: bool) -> Value {
    let mut pod = json!({"metadata": {"name": name, "namespace": ns},
                         "spec": {"containers": [{"name": "c", "image": "registry.example.com/x:1"}]}});
    if owned {
        pod["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "name": "rs", "uid": "u", "controller": true}]);
    }
    pod
}

fn typed(plural: &str, object: &Value) -> Value {
    let (api_version, kind) = match plural {
        "deployments" => ("apps/v1", "Deployment"),
        "statefulsets" => ("apps/v1", "StatefulSet"),
        "daemonsets" => ("apps/v1", "DaemonSet"),
        _ => ("v1", "Pod"),
    };
    let mut object = object.clone();
    object["apiVersion"] = json!(api_version);
    object["kind"] = json!(kind);
    object
}

/// The JSON findings without their position (files have lines, the cluster not).
fn findings(output: &str) -> Vec<Value> {
    let mut entries: Vec<Value> = serde_json::from_str::<Value>(output)
        .unwrap_or_else(|err| panic!("{err}: {output}"))
        .as_array()
        .unwrap()
        .clone();
    for entry in &mut entries {
        if let Some(map) = entry.as_object_mut() {
            map.remove("file");
            map.remove("line");
        }
    }
    entries
}

async fn check_cluster(url: &str, scope: Scope, page: u32, format: Format) -> (Summary, String) {
    let client = client(url, Duration::from_secs(5)).await;
    let cluster = ClusterOptions {
        scope,
        page_size: page,
        timeout: Duration::from_secs(5),
        progress: false,
    };
    let mut out = Vec::new();
    let summary = cluster::run(client, &cluster, &options(format, Mode::Enforce), &mut out)
        .await
        .unwrap();
    (summary, String::from_utf8(out).unwrap())
}

#[tokio::test]
async fn paged_cluster_findings_are_those_of_check_over_the_same_files() {
    let mut objects = Vec::new();
    for i in 0..7 {
        let unavailable = if i % 3 == 0 { json!("100%") } else { json!(1) };
        objects.push((
            "shop".to_string(),
            "deployments".to_string(),
            deployment("shop", &format!("d{i}"), unavailable),
        ));
    }
    objects.push((
        "shop".to_string(),
        "pods".to_string(),
        pod("shop", "bare", false),
    ));
    objects.push((
        "shop".to_string(),
        "pods".to_string(),
        pod("shop", "owned", true),
    ));
    let (url, fake) = start(Fake {
        objects: objects.clone(),
        ..Fake::default()
    })
    .await;
    let (summary, output) =
        check_cluster(&url, Scope::Named(vec!["shop".into()]), 3, Format::Json).await;
    // 7 deployments in pages of 3 (3 requests), pods in one page, 2 empty kinds.
    assert!(fake.requests.load(Ordering::Relaxed) >= 6, "paged");

    let text: String = objects
        .iter()
        .filter(|(_, _, o)| o.pointer("/metadata/ownerReferences").is_none())
        .map(|(_, plural, o)| format!("---\n{}\n", typed(plural, o)))
        .collect();
    let dir = TempDir::new();
    let files = dir.write("cluster-files.yaml", text);
    let mut file_out = Vec::new();
    let file_summary = run(
        &[Input::File(files.clone())],
        &options(Format::Json, Mode::Enforce),
        &mut &b""[..],
        &mut file_out,
    )
    .unwrap();
    assert_eq!(summary, file_summary);
    assert_eq!(
        summary.objects, 8,
        "the owned pod is judged through its owner"
    );
    assert!(summary.denied >= 3, "{output}");
    assert_eq!(
        findings(&output),
        findings(&String::from_utf8(file_out).unwrap())
    );
    assert_eq!(summary.exit_code(), 1);
}

#[tokio::test]
async fn forbidden_namespaces_are_reported_and_the_others_still_checked() {
    let objects = vec![(
        "shop".to_string(),
        "deployments".to_string(),
        deployment("shop", "d", json!(1)),
    )];
    for (code, words) in [
        (403, "403 Forbidden"),
        (401, "401 Unauthorized"),
        (410, "410 Gone"),
        (500, "error 500"),
    ] {
        let (url, _fake) = start(Fake {
            objects: objects.clone(),
            failing: vec![("locked".into(), code)],
            ..Fake::default()
        })
        .await;
        let (summary, output) = check_cluster(&url, Scope::Labelled, 50, Format::Text).await;
        assert_eq!(summary.objects, 1, "{output}");
        assert_eq!(
            summary.errors, 4,
            "one per kind in the failing namespace: {output}"
        );
        assert!(
            output.contains(words) && output.contains("cluster:locked/deployments"),
            "{output}"
        );
        assert_eq!(summary.exit_code(), 2);
    }
}

#[tokio::test]
async fn a_slow_api_server_is_an_error_within_the_timeout() {
    let (url, fake) = start(Fake {
        delay: Duration::from_secs(30),
        ..Fake::default()
    })
    .await;
    let client = client(&url, Duration::from_millis(300)).await;
    let cluster = ClusterOptions {
        scope: Scope::Labelled,
        page_size: 10,
        timeout: Duration::from_millis(300),
        progress: false,
    };
    let err = cluster::run(
        client,
        &cluster,
        &options(Format::Text, Mode::Enforce),
        &mut Vec::new(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("did not answer in time"), "{err}");
    // It gave up while the server still held every request: the timeout
    // ended them, not an answer.
    assert!(fake.requests.load(Ordering::Relaxed) >= 1);
    assert_eq!(fake.answered.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn an_unreachable_api_server_is_a_clear_error() {
    let url = format!("http://{}", support::net::closed_addr());
    let client = client(&url, Duration::from_secs(2)).await;
    let cluster = ClusterOptions {
        scope: Scope::All,
        page_size: 10,
        timeout: Duration::from_secs(2),
        progress: false,
    };
    let mut out = Vec::new();
    let summary = cluster::run(
        client,
        &cluster,
        &options(Format::Text, Mode::Enforce),
        &mut out,
    )
    .await
    .unwrap();
    let output = String::from_utf8(out).unwrap();
    assert_eq!(summary.errors, 4, "{output}");
    assert!(output.contains("unreachable"), "{output}");
}

#[tokio::test]
async fn report_output_is_one_openreports_report_per_namespace() {
    let objects = vec![
        (
            "shop".to_string(),
            "deployments".to_string(),
            deployment("shop", "bad", json!("100%")),
        ),
        (
            "shop".to_string(),
            "deployments".to_string(),
            deployment("shop", "ok", json!(1)),
        ),
        (
            "web-audit".to_string(),
            "deployments".to_string(),
            deployment("web-audit", "bad", json!("100%")),
        ),
    ];
    let (url, _fake) = start(Fake {
        objects,
        ..Fake::default()
    })
    .await;
    let (summary, output) = check_cluster(&url, Scope::Labelled, 1, Format::Report).await;
    let reports: Vec<Value> = output
        .split("---\n")
        .filter(|doc| !doc.trim().is_empty())
        .map(|doc| serde_saphyr::from_str(doc).unwrap_or_else(|err| panic!("{err}: {doc}")))
        .collect();
    assert_eq!(reports.len(), 2, "{output}");
    let names: Vec<&str> = reports
        .iter()
        .map(|r| r["metadata"]["namespace"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["shop", "web-audit"]);
    for report in &reports {
        assert_eq!(report["apiVersion"], "openreports.io/v1alpha1");
        assert_eq!(report["kind"], "Report");
        let results = report["results"].as_array().unwrap();
        let fails = results.iter().filter(|r| r["result"] == "fail").count();
        assert_eq!(report["summary"]["fail"].as_u64().unwrap() as usize, fails);
        assert!(fails >= 1, "{report}");
    }
    // Both count as would-be denials (as check counts them); the audit one is
    // reported as such in its own Report.
    assert_eq!(summary.denied, 2);
    assert_eq!(summary.exit_code(), 1);
}
