//! `--prestop-handler auto` against a stand-in for the API server's
//! `/version` on 127.0.0.1.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use rollguard::cluster_version::detect_with;
use rollguard::settings::PrestopHandler;
use serde_json::json;
use support::net::serve_http as fake_apiserver;

fn client(url: &str) -> kube::Client {
    kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap()
}

fn version(minor: &'static str) -> Router {
    Router::new().route(
        "/version",
        get(move || async move {
            axum::Json(json!({
                "major": "1", "minor": minor, "gitVersion": format!("v1.{minor}.0"),
                "gitCommit": "x", "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
                "goVersion": "go1.25", "compiler": "gc", "platform": "linux/amd64"
            }))
        }),
    )
}

#[tokio::test]
async fn clusters_from_1_30_get_the_native_sleep_and_older_ones_exec() {
    for (minor, expected) in [
        ("30", PrestopHandler::Sleep),
        ("33+", PrestopHandler::Sleep),
        ("29", PrestopHandler::Exec),
        ("25", PrestopHandler::Exec),
    ] {
        let (url, task) = fake_apiserver(version(minor)).await;
        assert_eq!(
            detect_with(client(&url), Duration::from_secs(5)).await,
            expected,
            "1.{minor}"
        );
        task.abort();
    }
}

#[tokio::test]
async fn an_api_server_that_fails_or_hangs_means_exec() {
    let (url, task) = fake_apiserver(Router::new().route(
        "/version",
        get(|| async { (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
    ))
    .await;
    assert_eq!(
        detect_with(client(&url), Duration::from_secs(5)).await,
        PrestopHandler::Exec
    );
    task.abort();

    let answered = Arc::new(AtomicBool::new(false));
    let late = answered.clone();
    let (url, task) = fake_apiserver(Router::new().route(
        "/version",
        get(move || async move {
            tokio::time::sleep(Duration::from_secs(30)).await;
            late.store(true, Ordering::SeqCst);
            "late"
        }),
    ))
    .await;
    assert_eq!(
        detect_with(client(&url), Duration::from_millis(300)).await,
        PrestopHandler::Exec
    );
    // Decided while the server still held the request: by the timeout.
    assert!(
        !answered.load(Ordering::SeqCst),
        "waited for the late answer"
    );
    task.abort();
}

#[tokio::test]
async fn no_api_server_at_all_means_exec() {
    let url = format!("http://{}", support::net::closed_addr());
    assert_eq!(
        detect_with(client(&url), Duration::from_secs(5)).await,
        PrestopHandler::Exec
    );
}
