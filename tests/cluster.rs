//! `check --cluster` against a fake API server on 127.0.0.1 (HTTP and HTTPS)
//! serving real list responses: paged with continue tokens, label selectors,
//! 401/403/410/500, a slow server and servers that page wrongly. The
//! findings must be those of `check` over the same objects as files.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use rollguard::check::cluster::{self, ClusterOptions, Scope, EXCLUDED_NAMESPACES};
use rollguard::check::{run, CheckOptions, Format, Input, Summary};
use rollguard::policy::Mode;
use rollguard::settings::Settings;
use serde_json::{json, Value};
use support::temp::TempDir;

/// How the fake server pages.
#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum Paging {
    #[default]
    Honest,
    /// Always answers the first continue token again.
    RepeatToken,
    /// Answers an empty page that still has a continue token.
    EmptyWithToken,
    /// Sends every object whatever the limit.
    IgnoreLimit,
    /// Answers 410 Gone to the first continue request.
    GoneOnFirstContinue,
}

/// What the fake server holds and how it misbehaves.
#[derive(Default)]
struct Fake {
    /// (namespace, plural, object without apiVersion/kind, as in a list)
    objects: Vec<(String, String, Value)>,
    /// namespace -> its rollguard.io/mode label (None: unlabelled). A
    /// namespace not listed here is labelled audit when its name says so,
    /// else enforce.
    labels: Vec<(String, Option<String>)>,
    /// namespace -> status code answered for its lists
    failing: Vec<(String, u16)>,
    /// Every list request is answered after this delay.
    delay: Duration,
    paging: Paging,
    gone_sent: AtomicBool,
    requests: AtomicUsize,
    /// Requests answered after their delay.
    answered: AtomicUsize,
    /// Path and query of every request, in order.
    log: Mutex<Vec<String>>,
}

impl Fake {
    fn with(objects: Vec<(String, String, Value)>) -> Fake {
        Fake {
            objects,
            ..Fake::default()
        }
    }

    fn namespaces(&self) -> BTreeMap<String, Option<String>> {
        let mut namespaces: BTreeMap<String, Option<String>> = BTreeMap::new();
        let named = self.objects.iter().map(|(ns, _, _)| ns);
        for ns in named.chain(self.failing.iter().map(|(ns, _)| ns)) {
            let mode = if ns.contains("audit") {
                "audit"
            } else {
                "enforce"
            };
            namespaces.insert(ns.clone(), Some(mode.to_string()));
        }
        for (ns, label) in &self.labels {
            namespaces.insert(ns.clone(), label.clone());
        }
        namespaces
    }

    fn requested(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

fn status(code: u16, reason: &str) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                      "message": format!("fake {reason}"), "reason": reason, "code": code});
    (StatusCode::from_u16(code).unwrap(), Json(body)).into_response()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                decoded.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            }
            b'+' => {
                decoded.push(b' ');
                i += 1;
            }
            byte => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(decoded).unwrap()
}

/// Kubernetes label selector semantics, for the forms rollguard and users
/// send: `key`, `!key`, `key=value`, `key!=value`, `key in (a,b)`,
/// `key notin (a,b)`, requirements separated by commas.
fn selector_matches(selector: &str, labels: &BTreeMap<String, String>) -> bool {
    let mut requirements = Vec::new();
    let mut depth = 0;
    let mut current = String::new();
    for c in selector.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                requirements.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    requirements.push(current);
    requirements.iter().all(|requirement| {
        let requirement = requirement.trim();
        let set = |rest: &str| -> Vec<String> {
            rest.trim()
                .trim_start_matches('(')
                .trim_end_matches(')')
                .split(',')
                .map(|v| v.trim().to_string())
                .collect()
        };
        if let Some((key, rest)) = requirement.split_once(" notin ") {
            return !labels
                .get(key.trim())
                .is_some_and(|v| set(rest).contains(v));
        }
        if let Some((key, rest)) = requirement.split_once(" in ") {
            return labels
                .get(key.trim())
                .is_some_and(|v| set(rest).contains(v));
        }
        if let Some((key, value)) = requirement.split_once("!=") {
            return labels.get(key) != Some(&value.to_string());
        }
        if let Some((key, value)) = requirement.split_once('=') {
            return labels.get(key) == Some(&value.trim_start_matches('=').to_string());
        }
        if let Some(key) = requirement.strip_prefix('!') {
            return !labels.contains_key(key);
        }
        requirement.is_empty() || labels.contains_key(requirement)
    })
}

async fn serve_list(State(fake): State<Arc<Fake>>, request: Request) -> Response {
    fake.requests.fetch_add(1, Ordering::Relaxed);
    let path = request.uri().path().to_string();
    let query = request.uri().query().unwrap_or("").to_string();
    fake.log.lock().unwrap().push(format!("{path}?{query}"));
    tokio::time::sleep(fake.delay).await;
    fake.answered.fetch_add(1, Ordering::Relaxed);
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix(&format!("{name}=")).map(percent_decode))
    };
    if path == "/version" {
        return Json(json!({"major": "1", "minor": "29", "gitVersion": "v1.29.4"})).into_response();
    }
    if path == "/api/v1/namespaces" {
        let selector = param("labelSelector").unwrap_or_default();
        let items: Vec<Value> = fake
            .namespaces()
            .into_iter()
            .filter_map(|(ns, mode)| {
                let mut labels = BTreeMap::new();
                labels.insert("kubernetes.io/metadata.name".to_string(), ns.clone());
                if let Some(mode) = mode {
                    labels.insert("rollguard.io/mode".to_string(), mode);
                }
                selector_matches(&selector, &labels)
                    .then(|| json!({"metadata": {"name": ns, "labels": labels}}))
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
    let token = param("continue");
    if token.is_some()
        && fake.paging == Paging::GoneOnFirstContinue
        && !fake.gone_sent.swap(true, Ordering::Relaxed)
    {
        return status(410, "Expired");
    }
    let limit: usize = match fake.paging {
        Paging::IgnoreLimit => usize::MAX,
        _ => param("limit")
            .and_then(|l| l.parse().ok())
            .unwrap_or(usize::MAX),
    };
    let start: usize = token.and_then(|c| c.parse().ok()).unwrap_or(0);
    let end = start.saturating_add(limit).min(matching.len());
    let (items, next) = match fake.paging {
        Paging::RepeatToken if !matching.is_empty() => (&matching[..1], "1".to_string()),
        Paging::EmptyWithToken if !matching.is_empty() => (&matching[..0], "7".to_string()),
        _ if end < matching.len() => (&matching[start.min(end)..end], end.to_string()),
        _ => (&matching[start.min(end)..end], String::new()),
    };
    Json(json!({"kind": "List", "apiVersion": "v1",
                "metadata": {"resourceVersion": "1", "continue": next},
                "items": items}))
    .into_response()
}

fn app(fake: &Arc<Fake>) -> axum::Router {
    axum::Router::new()
        .fallback(serve_list)
        .with_state(fake.clone())
}

async fn start(fake: Fake) -> (String, Arc<Fake>) {
    let fake = Arc::new(fake);
    let (url, _) = support::net::serve_http(app(&fake)).await;
    (url, fake)
}

/// The fake over HTTPS with a fresh self-signed certificate: its URL and the
/// certificate's PEM.
async fn start_https(fake: Fake) -> (String, String, Arc<Fake>) {
    let fake = Arc::new(fake);
    let tls = rollguard::tls::self_signed().unwrap();
    let resolver = rollguard::tls::CertResolver::new(tls.certified_key.clone());
    let config = rollguard::tls::server_config(resolver).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let service = hyper_util::service::TowerToHyperService::new(app(&fake));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, service) = (acceptor.clone(), service.clone());
            tokio::spawn(async move {
                // A client that refuses the certificate ends the handshake.
                let Ok(stream) = acceptor.accept(stream).await else {
                    return;
                };
                let builder = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                );
                let _ = builder
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url, tls.cert_pem, fake)
}

/// A kubeconfig for `url`, trusting `ca_pem` when given.
fn kubeconfig(dir: &TempDir, url: &str, ca_pem: Option<&str>) -> std::path::PathBuf {
    use base64::Engine;
    let ca = ca_pem.map_or(String::new(), |pem| {
        format!(
            "    certificate-authority-data: {}\n",
            base64::engine::general_purpose::STANDARD.encode(pem)
        )
    });
    dir.write(
        "kubeconfig",
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {url}\n{ca}\
             users:\n- name: me\n  user:\n    token: t\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: me\n\
             current-context: fake\n"
        ),
    )
}

/// A client through a kubeconfig file in a fresh temp dir, as users have.
async fn client_trusting(url: &str, ca_pem: Option<&str>, timeout: Duration) -> kube::Client {
    let dir = TempDir::new();
    let path = kubeconfig(&dir, url, ca_pem);
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    cluster::client_from(config, timeout).unwrap()
}

async fn client(url: &str, timeout: Duration) -> kube::Client {
    client_trusting(url, None, timeout).await
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
    json!({"metadata": {"name": name, "namespace": ns, "uid": format!("uid-{ns}-{name}")},
           "spec": {"replicas": 3, "strategy": {"rollingUpdate": {"maxUnavailable": max_unavailable}},
                    "selector": {"matchLabels": {"app": name}},
                    "template": {"metadata": {"labels": {"app": name}},
                                 "spec": {"containers": [{"name": name, "image": "registry.example.com/x:1",
                                     "ports": [{"containerPort": 8080}],
                                     "readinessProbe": {"tcpSocket": {"port": 8080}}}]}}}})
}

/// A StatefulSet or DaemonSet (by `plural`) whose preStop sleep is as long
/// as its grace period: denied by prestop-exceeds-grace.
fn pod_template_workload(ns: &str, name: &str) -> Value {
    json!({"metadata": {"name": name, "namespace": ns},
           "spec": {"selector": {"matchLabels": {"app": name}}, "serviceName": name,
                    "template": {"metadata": {"labels": {"app": name}},
                                 "spec": {"terminationGracePeriodSeconds": 30,
                                          "containers": [{"name": name, "image": "registry.example.com/x:1",
                                     "ports": [{"containerPort": 8080}],
                                     "lifecycle": {"preStop": {"sleep": {"seconds": 30}}}}]}}}})
}

/// A pod whose controller is `owner` (`Kind` or `Kind+hash` for a pod of a
/// Deployment's ReplicaSet, which carries pod-template-hash).
fn pod(ns: &str, name: &str, owner: Option<&str>) -> Value {
    let mut pod = json!({"metadata": {"name": name, "namespace": ns},
                         "spec": {"containers": [{"name": "c", "image": "registry.example.com/x:1",
                                                  "ports": [{"containerPort": 80}]}]}});
    if let Some(owner) = owner {
        let (kind, hashed) = match owner.strip_suffix("+hash") {
            Some(kind) => (kind, true),
            None => (owner, false),
        };
        let api_version = if kind == "Job" { "batch/v1" } else { "apps/v1" };
        // In the order the API server's client writes them back.
        pod["metadata"]["ownerReferences"] = json!([{"apiVersion": api_version, "controller": true,
            "kind": kind, "name": "owner", "uid": "u"}]);
        if hashed {
            pod["metadata"]["labels"] = json!({"pod-template-hash": "5d4f8"});
        }
    }
    pod
}

fn entry(ns: &str, plural: &str, object: Value) -> (String, String, Value) {
    (ns.to_string(), plural.to_string(), object)
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

/// Text or diff output without the positions `(source)` / `(file:line)`.
fn without_positions(output: &str, file: &str) -> String {
    let mut text = output.to_string();
    for marker in [format!(" ({file}:"), " (cluster:".to_string()] {
        while let Some(start) = text.find(&marker) {
            let end = start + text[start..].find(')').unwrap() + 1;
            text.replace_range(start..end, "");
        }
    }
    text
}

/// Every YAML document of an output (reports or admitted objects).
fn documents(output: &str) -> Vec<Value> {
    output
        .split("---\n")
        .filter(|doc| !doc.trim().is_empty())
        .map(|doc| serde_saphyr::from_str(doc).unwrap_or_else(|err| panic!("{err}: {doc}")))
        .collect()
}

/// SARIF results without their locations.
fn sarif_results(output: &str) -> Vec<Value> {
    let sarif: Value = serde_json::from_str(output).unwrap();
    let mut results = sarif["runs"][0]["results"].as_array().unwrap().clone();
    for result in &mut results {
        result.as_object_mut().unwrap().remove("locations");
    }
    results
}

async fn check_cluster_in(
    url: &str,
    scope: Scope,
    page: u32,
    format: Format,
    mode: Mode,
) -> (Summary, String) {
    let client = client(url, Duration::from_secs(5)).await;
    let cluster = ClusterOptions {
        scope,
        page_size: page,
        timeout: Duration::from_secs(5),
        progress: false,
    };
    let mut out = Vec::new();
    let summary = cluster::run(client, &cluster, &options(format, mode), &mut out)
        .await
        .unwrap();
    (summary, String::from_utf8(out).unwrap())
}

async fn check_cluster(url: &str, scope: Scope, page: u32, format: Format) -> (Summary, String) {
    check_cluster_in(url, scope, page, format, Mode::Enforce).await
}

/// Deployments (some denied), a StatefulSet and a DaemonSet (denied), and
/// pods: bare, of a Job, of a bare ReplicaSet (judged: rollguard lists
/// neither), of a Deployment's ReplicaSet, of a StatefulSet (judged through
/// their owner).
fn shop() -> Vec<(String, String, Value)> {
    let mut objects = Vec::new();
    for i in 0..7 {
        let unavailable = if i % 3 == 0 { json!("100%") } else { json!(1) };
        let name = format!("d{i}");
        objects.push(entry(
            "shop",
            "deployments",
            deployment("shop", &name, unavailable),
        ));
    }
    objects.push(entry(
        "shop",
        "statefulsets",
        pod_template_workload("shop", "db"),
    ));
    objects.push(entry(
        "shop",
        "daemonsets",
        pod_template_workload("shop", "agent"),
    ));
    for (name, owner) in [
        ("bare", None),
        ("job", Some("Job")),
        ("bare-rs", Some("ReplicaSet")),
        ("of-deployment", Some("ReplicaSet+hash")),
        ("of-statefulset", Some("StatefulSet")),
    ] {
        objects.push(entry("shop", "pods", pod("shop", name, owner)));
    }
    objects
}

#[tokio::test]
async fn paged_cluster_findings_are_those_of_check_over_the_same_files_in_every_format() {
    let objects = shop();
    let (url, fake) = start(Fake::with(objects.clone())).await;
    let judged_themselves = ["of-deployment", "of-statefulset"];
    let text: String = objects
        .iter()
        .filter(|(_, _, o)| !judged_themselves.contains(&o["metadata"]["name"].as_str().unwrap()))
        .map(|(_, plural, o)| format!("---\n{}\n", typed(plural, o)))
        .collect();
    let dir = TempDir::new();
    let files = dir.write("cluster-files.yaml", text);
    let file = files.display().to_string();
    for mode in [Mode::Enforce, Mode::Audit] {
        for format in [
            Format::Json,
            Format::Text,
            Format::Yaml,
            Format::Diff,
            Format::Sarif,
            Format::Report,
        ] {
            let (summary, output) =
                check_cluster_in(&url, Scope::Named(vec!["shop".into()]), 3, format, mode).await;
            let mut file_out = Vec::new();
            let file_summary = run(
                &[Input::File(files.clone())],
                &options(format, mode),
                &mut &b""[..],
                &mut file_out,
            )
            .unwrap();
            let file_output = String::from_utf8(file_out).unwrap();
            let case = format!("{format} in {mode:?}");
            assert_eq!(summary, file_summary, "{case}");
            assert_eq!(
                summary.objects, 12,
                "{case}: two pods judged through their owner"
            );
            match format {
                Format::Json => assert_eq!(findings(&output), findings(&file_output), "{case}"),
                Format::Text | Format::Diff => assert_eq!(
                    without_positions(&output, &file),
                    without_positions(&file_output, &file),
                    "{case}"
                ),
                Format::Sarif => {
                    assert_eq!(
                        sarif_results(&output),
                        sarif_results(&file_output),
                        "{case}"
                    )
                }
                Format::Report => {
                    assert_eq!(documents(&output), documents(&file_output), "{case}")
                }
                // The cluster's copy leaves out the uid the API server set.
                Format::Yaml => {
                    let mut from_files = documents(&file_output);
                    for doc in &mut from_files {
                        doc["metadata"].as_object_mut().unwrap().remove("uid");
                    }
                    assert_eq!(documents(&output), from_files, "{case}")
                }
            }
            let (denied, would_deny) = (summary.denied, summary.would_deny);
            match mode {
                // 3 deployments, the StatefulSet and the DaemonSet.
                Mode::Enforce => assert_eq!((denied, would_deny, summary.exit_code()), (5, 0, 1)),
                Mode::Audit => assert_eq!((denied, would_deny, summary.exit_code()), (0, 5, 0)),
            }
        }
    }
    // 7 deployments in pages of 3 are 3 requests.
    let deployment_lists = fake
        .requested()
        .iter()
        .filter(|r| r.contains("/namespaces/shop/deployments"))
        .count();
    assert_eq!(deployment_lists, 3 * 12, "3 pages in each of 12 runs");
}

#[tokio::test]
async fn audit_namespaces_report_would_be_denials_without_failing_the_run() {
    let objects = vec![
        entry("shop", "deployments", deployment("shop", "ok", json!(1))),
        entry(
            "web-audit",
            "deployments",
            deployment("web-audit", "bad", json!("100%")),
        ),
    ];
    let (url, _fake) = start(Fake::with(objects)).await;
    let (summary, output) = check_cluster(&url, Scope::Labelled, 10, Format::Json).await;
    assert_eq!((summary.denied, summary.would_deny), (0, 1), "{output}");
    assert_eq!(summary.exit_code(), 0, "an audit namespace never denies");
    let bad = findings(&output)
        .into_iter()
        .find(|e| e["namespace"] == "web-audit")
        .unwrap();
    assert_eq!(
        (bad["mode"].as_str(), bad["denied"].as_bool()),
        (Some("audit"), Some(false))
    );

    let (_, text) = check_cluster(&url, Scope::Labelled, 10, Format::Text).await;
    assert!(
        text.contains("would deny rollout-all-unavailable"),
        "{text}"
    );
    assert!(text.contains("0 denied, 1 would be denied"), "{text}");
}

#[tokio::test]
async fn the_default_scope_is_the_namespaces_the_webhook_acts_on() {
    let mut objects = Vec::new();
    let labels = [
        ("shop", Some("enforce")),
        ("web", Some("audit")),
        ("legacy", Some("off")),
        ("typo", Some("Enforce")),
        ("loose", Some("yes")),
        ("plain", None),
        ("kube-system", Some("enforce")),
        ("rollguard-system", Some("audit")),
    ];
    for (ns, _) in labels {
        objects.push(entry(ns, "deployments", deployment(ns, "d", json!(1))));
    }
    let (url, fake) = start(Fake {
        objects,
        labels: labels
            .iter()
            .map(|(ns, label)| (ns.to_string(), label.map(str::to_string)))
            .collect(),
        ..Fake::default()
    })
    .await;
    let (summary, output) = check_cluster(&url, Scope::Labelled, 10, Format::Text).await;
    let judged: Vec<&str> = output
        .lines()
        .filter_map(|l| l.strip_prefix("Deployment/"))
        .map(|l| l.split('/').next().unwrap())
        .collect();
    assert_eq!(judged, ["shop", "web"], "{output}");
    assert_eq!(summary.objects, 2);
    for ns in ["typo", "loose", "kube-system", "rollguard-system"] {
        assert!(
            output
                .lines()
                .any(|l| l.starts_with("warning: cluster: namespace ")
                    && l.contains(&format!(" {ns}:"))),
            "{ns} is named: {output}"
        );
    }
    assert!(
        !output.contains("legacy") && !output.contains("plain"),
        "{output}"
    );
    assert!(output.contains(r#"rollguard.io/mode="Enforce" is not enforce, audit or off"#));
    // Only the selected namespaces were listed: the selector reached the server.
    let lists: Vec<String> = fake.requested();
    assert!(
        lists[0].starts_with("/api/v1/namespaces?")
            && lists[0].contains("labelSelector=rollguard.io")
    );
    assert!(!lists
        .iter()
        .any(|r| r.contains("/namespaces/plain/") || r.contains("/namespaces/kube-system/")));
}

/// The exclusions `check --cluster` applies are those of the shipped webhook
/// configurations, read from the manifests.
#[test]
fn excluded_namespaces_are_those_of_the_shipped_webhook_configurations() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/base");
    let mut webhooks = 0;
    for file in [
        "mutatingwebhookconfiguration.yaml",
        "validatingwebhookconfiguration.yaml",
    ] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let config: Value = serde_saphyr::from_str(&text).unwrap();
        for webhook in config["webhooks"].as_array().unwrap() {
            webhooks += 1;
            let expressions = webhook["namespaceSelector"]["matchExpressions"]
                .as_array()
                .unwrap();
            let excluded = expressions
                .iter()
                .find(|e| e["key"] == "kubernetes.io/metadata.name" && e["operator"] == "NotIn")
                .unwrap_or_else(|| panic!("{file}: {webhook}"));
            assert_eq!(excluded["values"], json!(EXCLUDED_NAMESPACES), "{file}");
            let modes = expressions
                .iter()
                .find(|e| e["key"] == "rollguard.io/mode")
                .unwrap();
            for mode in modes["values"].as_array().unwrap() {
                let mode = mode.as_str().unwrap();
                assert!(
                    cluster::labelled_mode("shop", mode).is_ok_and(|m| m.is_some()),
                    "{mode}"
                );
            }
        }
    }
    assert!(
        webhooks >= 3,
        "the enforce mutate/validate and audit webhooks"
    );
}

#[tokio::test]
async fn a_server_that_pages_forever_ends_that_list_with_an_error() {
    for paging in [Paging::RepeatToken, Paging::EmptyWithToken] {
        let objects = vec![
            entry("shop", "deployments", deployment("shop", "a", json!(1))),
            entry("shop", "deployments", deployment("shop", "b", json!(1))),
        ];
        let (url, fake) = start(Fake {
            paging,
            ..Fake::with(objects)
        })
        .await;
        let (summary, output) =
            check_cluster(&url, Scope::Named(vec!["shop".into()]), 1, Format::Text).await;
        assert_eq!(summary.errors, 1, "{output}");
        assert!(
            output.contains("error: cluster:shop/deployments: the API server answered")
                && output.contains("paging would never end"),
            "{output}"
        );
        // 1 or 2 deployment pages, then the other three kinds.
        assert!(
            fake.requests.load(Ordering::Relaxed) <= 5,
            "{:?}",
            fake.requested()
        );
    }
}

#[tokio::test]
async fn a_server_that_ignores_limit_is_named() {
    let objects = (0..5)
        .map(|i| {
            entry(
                "shop",
                "deployments",
                deployment("shop", &format!("d{i}"), json!(1)),
            )
        })
        .collect();
    let (url, _fake) = start(Fake {
        paging: Paging::IgnoreLimit,
        ..Fake::with(objects)
    })
    .await;
    let (summary, output) =
        check_cluster(&url, Scope::Named(vec!["shop".into()]), 2, Format::Text).await;
    assert_eq!((summary.objects, summary.errors), (5, 0), "{output}");
    assert!(
        output.contains("answered 5 objects for limit 2: it ignores limit"),
        "{output}"
    );
}

#[tokio::test]
async fn gone_on_a_continue_request_lists_again_and_judges_each_object_once() {
    let objects: Vec<_> = (0..7)
        .map(|i| {
            entry(
                "shop",
                "deployments",
                deployment("shop", &format!("d{i}"), json!(1)),
            )
        })
        .collect();
    let (url, fake) = start(Fake {
        paging: Paging::GoneOnFirstContinue,
        ..Fake::with(objects)
    })
    .await;
    let (summary, output) =
        check_cluster(&url, Scope::Named(vec!["shop".into()]), 3, Format::Json).await;
    assert_eq!((summary.objects, summary.errors), (7, 0), "{output}");
    let mut names: Vec<String> = findings(&output)
        .iter()
        .filter_map(|e| e["name"].as_str().map(str::to_string))
        .collect();
    names.sort();
    assert_eq!(names, (0..7).map(|i| format!("d{i}")).collect::<Vec<_>>());
    assert!(fake.gone_sent.load(Ordering::Relaxed));
    let deployment_lists: Vec<String> = fake
        .requested()
        .into_iter()
        .filter(|r| r.contains("/deployments"))
        .collect();
    // page 1, continue (410), page 1 again, then the two pages after it.
    assert_eq!(deployment_lists.len(), 5, "{deployment_lists:?}");
}

#[tokio::test]
async fn forbidden_namespaces_are_reported_and_the_others_still_checked() {
    let objects = vec![entry(
        "shop",
        "deployments",
        deployment("shop", "d", json!(1)),
    )];
    for (code, words) in [
        (403, "403 Forbidden"),
        (410, "410 Gone"),
        (500, "error 500"),
    ] {
        let (url, _fake) = start(Fake {
            failing: vec![("locked".into(), code)],
            ..Fake::with(objects.clone())
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
async fn refused_credentials_stop_the_run_at_the_first_list() {
    let objects = vec![entry(
        "shop",
        "deployments",
        deployment("shop", "d", json!(1)),
    )];
    let (url, fake) = start(Fake {
        failing: vec![("billing".into(), 401), ("locked".into(), 401)],
        ..Fake::with(objects)
    })
    .await;
    let (summary, output) = check_cluster(&url, Scope::Labelled, 50, Format::Text).await;
    assert_eq!((summary.objects, summary.errors), (0, 1), "{output}");
    assert!(
        output.contains("401 Unauthorized") && output.contains("stopped"),
        "{output}"
    );
    assert_eq!(
        fake.requests.load(Ordering::Relaxed),
        2,
        "namespaces, then one list"
    );
    assert_eq!(summary.exit_code(), 2);
}

#[tokio::test]
async fn a_slow_api_server_is_an_error_within_the_timeout() {
    let (url, fake) = start(Fake {
        delay: Duration::from_secs(30),
        ..Fake::default()
    })
    .await;
    let timeout = Duration::from_millis(300);
    let cluster_options = |scope| ClusterOptions {
        scope,
        page_size: 10,
        timeout,
        progress: false,
    };
    let err = cluster::run(
        client(&url, timeout).await,
        &cluster_options(Scope::Labelled),
        &options(Format::Text, Mode::Enforce),
        &mut Vec::new(),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("did not answer in time (--timeout 300ms)"),
        "{err}"
    );
    // It gave up while the server still held every request: the timeout
    // ended them, not an answer.
    assert!(fake.requests.load(Ordering::Relaxed) >= 1);
    assert_eq!(fake.answered.load(Ordering::Relaxed), 0);

    // Named namespaces: the first list times out and nothing more is asked.
    let before = fake.requests.load(Ordering::Relaxed);
    let mut out = Vec::new();
    let summary = cluster::run(
        client(&url, timeout).await,
        &cluster_options(Scope::Named(vec!["a".into(), "b".into()])),
        &options(Format::Text, Mode::Enforce),
        &mut out,
    )
    .await
    .unwrap();
    let output = String::from_utf8(out).unwrap();
    assert_eq!(summary.errors, 1, "{output}");
    assert_eq!(
        fake.requests.load(Ordering::Relaxed) - before,
        1,
        "{output}"
    );
}

#[tokio::test]
async fn an_unreachable_api_server_is_a_clear_error_once() {
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
    assert_eq!(summary.errors, 1, "{output}");
    assert!(
        output.contains("unreachable: the connection was refused"),
        "{output}"
    );
}

#[tokio::test]
async fn https_api_server_is_read_when_trusted_and_an_untrusted_certificate_says_tls() {
    let objects = vec![entry(
        "shop",
        "deployments",
        deployment("shop", "bad", json!("100%")),
    )];
    let (url, ca, _fake) = start_https(Fake::with(objects)).await;
    let cluster = ClusterOptions {
        scope: Scope::Named(vec!["shop".into()]),
        page_size: 10,
        timeout: Duration::from_secs(5),
        progress: false,
    };
    let text = options(Format::Text, Mode::Enforce);
    let trusted = client_trusting(&url, Some(&ca), Duration::from_secs(5)).await;
    let summary = cluster::run(trusted, &cluster, &text, &mut Vec::new())
        .await
        .unwrap();
    assert_eq!((summary.objects, summary.denied, summary.errors), (1, 1, 0));

    let untrusted = client_trusting(&url, None, Duration::from_secs(5)).await;
    let mut out = Vec::new();
    let summary = cluster::run(untrusted, &cluster, &text, &mut out)
        .await
        .unwrap();
    let output = String::from_utf8(out).unwrap();
    assert_eq!((summary.objects, summary.errors), (0, 1), "{output}");
    assert!(
        output.contains("TLS handshake with the API server failed"),
        "{output}"
    );
    assert!(
        !output.contains("did not answer in time") && !output.contains("refused"),
        "{output}"
    );
}

/// The fields of an OpenReports `openreports.io/v1alpha1` Report and their
/// types, from the CRD's openAPIV3Schema (reports.openreports.io in
/// https://github.com/openreports/reports-api, chart/templates/openreports.io_reports.yaml):
/// an apply with fields outside it would be pruned or refused.
fn assert_is_openreports_report(report: &Value) {
    let top = [
        "apiVersion",
        "kind",
        "metadata",
        "source",
        "summary",
        "results",
        "scope",
        "scopeSelector",
        "configuration",
    ];
    for (field, _) in report.as_object().unwrap() {
        assert!(
            top.contains(&field.as_str()),
            "{field} is not a Report field"
        );
    }
    assert_eq!(report["apiVersion"], "openreports.io/v1alpha1");
    assert_eq!(report["kind"], "Report");
    assert!(report["metadata"]["name"].is_string() && report["metadata"]["namespace"].is_string());
    assert!(report["source"].is_string());
    for (field, count) in report["summary"].as_object().unwrap() {
        assert!(
            ["pass", "fail", "warn", "error", "skip"].contains(&field.as_str()),
            "{field}"
        );
        assert!(count.is_u64(), "summary.{field} is an integer");
    }
    let result_fields = [
        "category",
        "message",
        "policy",
        "properties",
        "resourceSelector",
        "resources",
        "result",
        "rule",
        "scored",
        "severity",
        "source",
        "timestamp",
    ];
    let reference_fields = [
        "apiVersion",
        "fieldPath",
        "kind",
        "name",
        "namespace",
        "resourceVersion",
        "uid",
    ];
    for result in report["results"].as_array().unwrap() {
        for (field, value) in result.as_object().unwrap() {
            assert!(
                result_fields.contains(&field.as_str()),
                "{field} is not a result field"
            );
            if ["category", "message", "policy", "rule", "source"].contains(&field.as_str()) {
                assert!(value.is_string(), "{field}: {value}");
            }
        }
        assert!(result["policy"].is_string(), "policy is required: {result}");
        assert!(
            ["pass", "fail", "warn", "error", "skip"].contains(&result["result"].as_str().unwrap())
        );
        for resource in result["resources"].as_array().into_iter().flatten() {
            for (field, value) in resource.as_object().unwrap() {
                assert!(
                    reference_fields.contains(&field.as_str()) && value.is_string(),
                    "{field}"
                );
            }
        }
    }
}

#[tokio::test]
async fn report_output_is_one_openreports_report_per_namespace_written_as_each_is_done() {
    let objects = vec![
        entry(
            "shop",
            "deployments",
            deployment("shop", "bad", json!("100%")),
        ),
        entry("shop", "deployments", deployment("shop", "ok", json!(1))),
        entry(
            "web-audit",
            "deployments",
            deployment("web-audit", "bad", json!("100%")),
        ),
    ];
    let (url, _fake) = start(Fake {
        failing: vec![("locked".into(), 403)],
        ..Fake::with(objects.clone())
    })
    .await;
    let (summary, output) = check_cluster(&url, Scope::Labelled, 1, Format::Report).await;
    let reports = documents(&output);
    let names: Vec<&str> = reports
        .iter()
        .map(|r| r["metadata"]["namespace"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["locked", "shop", "web-audit"], "{output}");
    for report in &reports {
        assert_is_openreports_report(report);
        let results = report["results"].as_array().unwrap();
        for outcome in ["pass", "fail", "warn", "error"] {
            let counted = results.iter().filter(|r| r["result"] == outcome).count();
            assert_eq!(
                report["summary"][outcome].as_u64().unwrap() as usize,
                counted
            );
        }
    }
    let locked = &reports[0];
    assert_eq!(
        locked["summary"]["error"], 4,
        "one error result per unreadable kind: {locked}"
    );
    assert!(locked["results"][0]["message"]
        .as_str()
        .unwrap()
        .contains("403 Forbidden"));
    assert!(reports[1]["summary"]["fail"].as_u64().unwrap() >= 1);
    // The audit one is a would-be denial: reported, not counted as denied.
    assert_eq!((summary.denied, summary.would_deny), (1, 1));
    assert_eq!(summary.exit_code(), 2, "the forbidden namespace");

    // -A with report output lists namespace by namespace, so each Report is
    // written when its namespace is done.
    let (url, fake) = start(Fake::with(objects)).await;
    let (_, output) = check_cluster(&url, Scope::All, 10, Format::Report).await;
    assert_eq!(documents(&output).len(), 2, "{output}");
    let cluster_wide = fake
        .requested()
        .iter()
        .any(|r| r.starts_with("/apis/apps/v1/deployments"));
    assert!(!cluster_wide, "{:?}", fake.requested());
}

#[tokio::test]
async fn yaml_output_leaves_out_what_the_api_server_fills_in() {
    let mut stored = deployment("shop", "bad", json!("100%"));
    stored["metadata"]["resourceVersion"] = json!("4711");
    stored["metadata"]["managedFields"] = json!([{"manager": "kubectl", "operation": "Update"}]);
    stored["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
    stored["metadata"]["generation"] = json!(3);
    stored["status"] = json!({"replicas": 3, "readyReplicas": 3});
    let (url, _fake) = start(Fake::with(vec![entry("shop", "deployments", stored)])).await;
    let (_, output) =
        check_cluster(&url, Scope::Named(vec!["shop".into()]), 10, Format::Yaml).await;
    let docs = documents(&output);
    assert_eq!(docs.len(), 1, "{output}");
    let admitted = &docs[0];
    assert_eq!(admitted["kind"], "Deployment");
    assert_eq!(admitted["metadata"]["name"], "bad");
    for field in [
        "uid",
        "resourceVersion",
        "managedFields",
        "creationTimestamp",
        "generation",
    ] {
        assert!(
            admitted["metadata"].get(field).is_none(),
            "{field}: {output}"
        );
    }
    assert!(admitted.get("status").is_none(), "{output}");
    assert!(admitted["metadata"]["annotations"]["rollguard.io/mutated"].is_string());
}

#[tokio::test]
async fn the_binary_checks_the_cluster_of_kubeconfig() {
    let objects = vec![
        entry(
            "shop",
            "deployments",
            deployment("shop", "bad", json!("100%")),
        ),
        entry(
            "web-audit",
            "deployments",
            deployment("web-audit", "bad", json!("100%")),
        ),
        entry("shop", "pods", pod("shop", "bare", None)),
    ];
    let (url, _fake) = start(Fake {
        failing: vec![("locked".into(), 403)],
        ..Fake::with(objects)
    })
    .await;
    let dir = TempDir::new();
    let config = kubeconfig(&dir, &url, None);
    let run = |args: &'static [&'static str]| {
        let config = config.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let output = support::binary::command()
                    .env("KUBECONFIG", &config)
                    .env_remove("RUST_LOG")
                    .args(["check", "--cluster"])
                    .args(args)
                    .output()
                    .unwrap();
                let stdout = String::from_utf8(output.stdout).unwrap();
                let stderr = String::from_utf8(output.stderr).unwrap();
                (output.status.code(), stdout, stderr)
            })
            .await
            .unwrap()
        }
    };
    // The enforce namespace's denial fails the run; the audit one would not.
    let (code, stdout, stderr) =
        run(&["-n", "shop", "-o", "json", "--prestop-handler", "auto"]).await;
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    // auto asked the fake's /version (1.29): no native sleep action there.
    assert!(
        stdout.contains(r#"{"exec":{"command":["sleep","10"]}}"#),
        "{stdout}"
    );
    let (code, stdout, stderr) = run(&["-n", "web-audit", "--mode", "audit"]).await;
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    // Labelled scope with a forbidden namespace: exit 2, no kube log lines.
    let (code, stdout, stderr) = run(&[]).await;
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    assert!(stdout.contains("403 Forbidden"), "{stdout}");
    assert!(
        !stderr.contains("ERROR") && !stderr.contains("WARN") && !stderr.contains("kube"),
        "{stderr}"
    );
    // --mode with the labelled scope, and files with --cluster, are refused.
    let (code, _, stderr) = run(&["--mode", "audit"]).await;
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("--mode applies to --namespace, --selector or --all-namespaces"),
        "{stderr}"
    );
    let (code, _, stderr) = run(&["examples"]).await;
    assert_eq!(code, Some(2));
    assert!(stderr.contains("cannot be used with"), "{stderr}");
    let (code, _, stderr) = run(&["-A", "-n", "shop"]).await;
    assert_eq!(code, Some(2), "{stderr}");
}
