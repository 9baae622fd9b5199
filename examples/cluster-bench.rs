//! `check --cluster -A` over N Deployments in namespaces of 100 from an
//! in-process fake API server (paged lists, each page generated when asked:
//! the server holds no list), against `check` over the same objects as one
//! file, in the same run. Phases: `files`, `cluster` (JSON output,
//! cluster-wide lists), `nolimit` (as `cluster` from a server that ignores
//! `limit` and sends everything in one page) and `report` (report output,
//! listed namespace by namespace). Prints time, peak RSS and output bytes for each phase (each in
//! its own process, so peaks do not mix). Run: scripts/cluster-bench.sh [N]

use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::response::IntoResponse;
use axum::Json;
use rollguard::check::cluster::{self, ClusterOptions, Scope};
use rollguard::check::{run, CheckOptions, Format, Input};
use rollguard::policy::Mode;
use rollguard::settings::Settings;
use serde_json::{json, Value};

/// As the rollguard binary (src/main.rs): time and peak RSS of `check` are
/// measured as the binary runs it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Deployments per namespace.
const PER_NAMESPACE: usize = 100;

fn namespace(i: usize) -> String {
    format!("bench-{}", i / PER_NAMESPACE)
}

fn deployment(i: usize) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": format!("d{i}"), "namespace": namespace(i), "uid": format!("uid-{i}")},
           "spec": {"replicas": 3, "strategy": {"rollingUpdate": {"maxUnavailable": if i % 2 == 0 { json!("100%") } else { json!(1) }}},
                    "selector": {"matchLabels": {"app": "a"}},
                    "template": {"metadata": {"labels": {"app": "a"}},
                                 "spec": {"containers": [{"name": "c", "image": "r.example.com/x:1",
                                     "ports": [{"containerPort": 8080}]}]}}}})
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

async fn list(
    State((n, ignore_limit)): State<(usize, bool)>,
    Query(q): Query<std::collections::HashMap<String, String>>,
    uri: axum::http::Uri,
) -> axum::response::Response {
    let path = uri.path();
    if path == "/api/v1/namespaces" {
        let items: Vec<Value> = (0..n.div_ceil(PER_NAMESPACE))
            .map(|k| json!({"metadata": {"name": format!("bench-{k}")}}))
            .collect();
        return Json(json!({"kind": "List", "apiVersion": "v1", "metadata": {}, "items": items}))
            .into_response();
    }
    // The objects of this list: all, or one namespace's.
    let (first, total) = match path.split('/').collect::<Vec<_>>().as_slice() {
        [.., "namespaces", ns, "deployments"] => {
            let k: usize = ns
                .trim_start_matches("bench-")
                .parse()
                .unwrap_or(usize::MAX);
            let first = k.saturating_mul(PER_NAMESPACE).min(n);
            (first, (first + PER_NAMESPACE).min(n) - first)
        }
        [.., "deployments"] => (0, n),
        _ => (0, 0),
    };
    let limit: usize = match ignore_limit {
        true => total,
        false => q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(total),
    };
    let start: usize = q.get("continue").and_then(|c| c.parse().ok()).unwrap_or(0);
    let end = (start + limit).min(total);
    let next = if end < total {
        end.to_string()
    } else {
        String::new()
    };
    // The page is written item by item as text: the server holds the body,
    // not a tree of it, so the peak RSS is mostly the client's.
    let mut body = format!(
        r#"{{"kind":"List","apiVersion":"v1","metadata":{{"continue":"{next}"}},"items":["#
    );
    for i in start..end {
        if i > start {
            body.push(',');
        }
        body.push_str(&deployment(first + i).to_string());
    }
    body.push_str("]}");
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let phase = args.next().unwrap_or_else(|| "cluster".into());
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let options = CheckOptions {
        mode: Mode::Enforce,
        format: if phase == "report" {
            Format::Report
        } else {
            Format::Json
        },
        color: false,
        settings: Settings::default(),
    };
    let mut sink = Counting(0);
    let begun;
    let summary = if phase == "files" {
        let path =
            std::env::temp_dir().join(format!("rollguard-bench-{}.yaml", std::process::id()));
        let text: String = (0..n)
            .map(|i| format!("---\n{}\n", deployment(i)))
            .collect();
        std::fs::write(&path, text).unwrap();
        begun = Instant::now();
        let summary = run(
            &[Input::File(path.clone())],
            &options,
            &mut &b""[..],
            &mut sink,
        )
        .unwrap();
        let _ = std::fs::remove_file(path);
        summary
    } else {
        let ignore_limit = phase == "nolimit";
        let app = axum::Router::new()
            .fallback(list)
            .with_state((n, ignore_limit));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let config = kube::Config::new(url.parse().unwrap());
        let client = cluster::client_from(config, Duration::from_secs(30)).unwrap();
        let cluster = ClusterOptions {
            scope: Scope::All,
            page_size: 500,
            timeout: Duration::from_secs(30),
            progress: false,
        };
        begun = Instant::now();
        cluster::run(client, &cluster, &options, &mut sink)
            .await
            .unwrap()
    };
    let elapsed = begun.elapsed();
    assert_eq!(summary.objects, n);
    println!(
        "{phase}: {n} workloads in {:.3}s, peak RSS {} KiB, output {} bytes ({} per namespace of {PER_NAMESPACE})",
        elapsed.as_secs_f64(),
        peak_rss_kib(),
        sink.0,
        sink.0 / n.div_ceil(PER_NAMESPACE).max(1)
    );
}

/// A sink that counts what is written (the size of the report).
struct Counting(usize);

impl std::io::Write for Counting {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
