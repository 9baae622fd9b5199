//! The HTTPS and ops servers, in-process and as the compiled binary. Every
//! test binds 127.0.0.1 port 0 and is bounded in time.
//!
//! These tests depend only on the HTTP layer: the admission engine may answer
//! anything, so a review's status is only checked to be the engine's (not a
//! routing or body-limit error) and to carry the matching content type.

mod support;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::post;
use axum::Router;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use rollguard::admission::{PolicyConfig, Route};
use rollguard::metrics::Metrics;
use rollguard::server::{self, AppState, Timeouts};
use rollguard::tls;
use support::binary::{run_to_exit, Binary};
use support::fixtures::admission_reviews as fixture_reviews;
use support::http::{assert_closed_within, closed_within, read_response, wait_ready};
use support::server::{quick_timeouts, TestServer};
use support::temp::TempDir;
use support::tls::{
    client_config, https_client, plain_client, reqwest_builder, trusting_client, H1, H2, H2_AND_H1,
};
use support::WAIT_BOUND;

/// Upper bound for any single test.
const TEST_BOUND: Duration = Duration::from_secs(30);

async fn bounded<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(TEST_BOUND, future)
        .await
        .expect("test exceeded its time bound")
}

// ---------------------------------------------------------------- in-process server

async fn start(max_body_bytes: usize, timeouts: Timeouts) -> TestServer {
    start_with(PolicyConfig::default(), max_body_bytes, timeouts).await
}

async fn start_with(policy: PolicyConfig, max_body_bytes: usize, timeouts: Timeouts) -> TestServer {
    let state = AppState::new(policy).with_max_body_bytes(max_body_bytes);
    support::server::start(state, timeouts).await
}

impl TestServer {
    fn client(&self, alpn: &[&[u8]]) -> reqwest::Client {
        https_client(&self.cert_pem, alpn)
    }
}

/// The engine's reply, whatever it is, comes with the content type of its
/// status; a routing or body-limit error would show up as 404/405/413.
fn assert_engine_reply(status: u16, content_type: Option<&str>) {
    assert!(
        ![404, 405, 413].contains(&status),
        "request did not reach the engine: {status}"
    );
    let content_type = content_type.unwrap_or_default();
    if status == 200 {
        assert_eq!(content_type, "application/json");
    } else {
        assert!(content_type.starts_with("text/plain"), "{content_type}");
    }
}

async fn post_review(client: &reqwest::Client, url: String, body: Vec<u8>) -> reqwest::Response {
    client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("request")
}

fn content_type(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .map(str::to_string)
}

// ---------------------------------------------------------------- raw TLS

async fn tls_connect(
    server: &TestServer,
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let config = client_config(&[&server.cert_pem], None, alpn);
    support::tls::tls_connect(server.https, Arc::new(config)).await
}

// ---------------------------------------------------------------- tests: protocols

#[tokio::test]
async fn http1_keep_alive_serves_several_requests_on_one_connection() {
    bounded(async {
        let server = start(server::DEFAULT_MAX_BODY_BYTES, quick_timeouts()).await;
        let mut stream = tls_connect(&server, H1).await;
        assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
        for route in Route::ALL.iter().cycle().take(5) {
            let body = br#"{"kind":"AdmissionReview"}"#;
            let request = format!(
                "POST {} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                route.path(),
                body.len()
            );
            stream.write_all(request.as_bytes()).await.expect("write");
            stream.write_all(body).await.expect("write");
            let (status, head, _) = read_response(&mut stream).await;
            let content_type = head
                .lines()
                .find_map(|line| line.strip_prefix("content-type:"))
                .map(str::trim);
            assert_engine_reply(status, content_type);
            assert!(!head.contains("connection: close"), "{head}");
        }

        // The same through reqwest's pool.
        let client = server.client(H1);
        for _ in 0..5 {
            let response = post_review(&client, server.url("/validate"), b"{}".to_vec()).await;
            assert_eq!(response.version(), reqwest::Version::HTTP_11);
            assert_engine_reply(response.status().as_u16(), content_type(&response).as_deref());
        }
        server.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn h2_is_negotiated_by_alpn_and_multiplexes() {
    bounded(async {
        let server = start(server::DEFAULT_MAX_BODY_BYTES, quick_timeouts()).await;
        let client = server.client(H2_AND_H1);
        // Started together, so they overlap on the one h2 connection.
        let requests: Vec<_> = Route::ALL
            .iter()
            .map(|route| {
                let client = client.clone();
                let url = server.url(route.path());
                tokio::spawn(async move { post_review(&client, url, b"{}".to_vec()).await })
            })
            .collect();
        for request in requests {
            let response = request.await.expect("request task");
            assert_eq!(response.version(), reqwest::Version::HTTP_2);
            assert_engine_reply(
                response.status().as_u16(),
                content_type(&response).as_deref(),
            );
        }

        let prior_knowledge = reqwest_builder(client_config(&[&server.cert_pem], None, H2))
            .http2_prior_knowledge()
            .resolve("localhost", server.https)
            .build()
            .expect("client");
        let url = format!("https://localhost:{}/audit", server.https.port());
        let response = prior_knowledge
            .post(url)
            .body("{}")
            .send()
            .await
            .expect("h2 request to the localhost name");
        assert_eq!(response.version(), reqwest::Version::HTTP_2);
        server.stop().await.expect("clean stop");
    })
    .await;
}

// ---------------------------------------------------------------- tests: HTTP errors

#[tokio::test]
async fn oversized_body_gets_413_and_the_server_keeps_serving() {
    bounded(async {
        let limit = 1024;
        let server = start(limit, quick_timeouts()).await;
        let client = server.client(H1);

        let at_limit = post_review(&client, server.url("/mutate"), vec![b' '; limit]).await;
        assert_engine_reply(
            at_limit.status().as_u16(),
            content_type(&at_limit).as_deref(),
        );

        let over = post_review(&client, server.url("/mutate"), vec![b' '; limit * 4]).await;
        assert_eq!(over.status(), 413);
        assert!(content_type(&over)
            .unwrap_or_default()
            .starts_with("text/plain"));

        let after = post_review(&client, server.url("/mutate"), b"{}".to_vec()).await;
        assert_engine_reply(after.status().as_u16(), content_type(&after).as_deref());

        let metrics = plain_client()
            .get(server.ops_url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics body");
        assert!(
            metrics
                .contains(r#"route="mutate",kind="none",operation="none",outcome="too-large"} 1"#),
            "{metrics}"
        );
        server.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn unknown_paths_are_404_and_wrong_methods_405() {
    bounded(async {
        let server = start(server::DEFAULT_MAX_BODY_BYTES, quick_timeouts()).await;
        let client = server.client(H2_AND_H1);
        for route in Route::ALL {
            for method in [
                reqwest::Method::GET,
                reqwest::Method::PUT,
                reqwest::Method::DELETE,
            ] {
                let response = client
                    .request(method.clone(), server.url(route.path()))
                    .send()
                    .await
                    .expect("request");
                assert_eq!(response.status(), 405, "{method} {}", route.path());
            }
        }
        for path in ["/", "/mutate/extra", "/healthz", "/metrics", "/validate-me"] {
            let response = post_review(&client, server.url(path), b"{}".to_vec()).await;
            assert_eq!(response.status(), 404, "{path}");
        }
        let response = plain_client()
            .get(server.ops_url("/mutate"))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 404);
        server.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn ops_endpoints_report_health_readiness_and_metrics() {
    bounded(async {
        let server = start(server::DEFAULT_MAX_BODY_BYTES, quick_timeouts()).await;
        let ops = plain_client();

        let health = ops
            .get(server.ops_url("/healthz"))
            .send()
            .await
            .expect("healthz");
        assert_eq!(health.status(), 200);
        assert_eq!(health.text().await.expect("body").trim(), "ok");

        let ready = ops
            .get(server.ops_url("/readyz"))
            .send()
            .await
            .expect("readyz");
        assert_eq!(ready.status(), 200);

        let response =
            post_review(&server.client(H1), server.url("/validate"), b"{}".to_vec()).await;
        assert_engine_reply(
            response.status().as_u16(),
            content_type(&response).as_deref(),
        );

        let metrics = ops
            .get(server.ops_url("/metrics"))
            .send()
            .await
            .expect("metrics");
        assert_eq!(metrics.status(), 200);
        let metrics_type = content_type(&metrics).unwrap_or_default();
        assert!(
            metrics_type.starts_with("application/openmetrics-text"),
            "{metrics_type}"
        );
        let text = metrics.text().await.expect("metrics body");
        assert!(
            text.contains("rollguard_admission_requests_total{route=\"validate\""),
            "{text}"
        );
        assert!(
            text.contains("rollguard_admission_duration_seconds_count{route=\"validate\"} 1"),
            "{text}"
        );
        server.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn garbage_and_failed_handshakes_do_not_stop_the_server() {
    bounded(async {
        let server = start(server::DEFAULT_MAX_BODY_BYTES, quick_timeouts()).await;

        // Plain HTTP on the TLS port.
        let mut tcp = TcpStream::connect(server.https).await.expect("connect");
        tcp.write_all(b"GET /validate HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        assert_closed_within(&mut tcp, WAIT_BOUND).await;

        // Connect and leave: what TCP probes do.
        drop(TcpStream::connect(server.https).await.expect("connect"));

        // A client that does not trust the certificate.
        let other = tls::self_signed().expect("certificate");
        let untrusting = https_client(&other.cert_pem, H1);
        assert!(untrusting
            .get(server.url("/validate"))
            .send()
            .await
            .is_err());

        // Not HTTP inside TLS.
        let mut stream = tls_connect(&server, H1).await;
        stream
            .write_all(b"\x00\x01\x02 this is not HTTP\r\n\r\n")
            .await
            .expect("write");
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(WAIT_BOUND, stream.read_to_end(&mut answer)).await;

        // A request header section over hyper's limit.
        let mut stream = tls_connect(&server, H1).await;
        let huge = format!(
            "POST /validate HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
            "a".repeat(512 * 1024)
        );
        let _ = stream.write_all(huge.as_bytes()).await;
        assert_closed_within(&mut stream, WAIT_BOUND).await;

        let client = server.client(H2_AND_H1);
        let response = post_review(&client, server.url("/validate"), b"{}".to_vec()).await;
        assert_engine_reply(
            response.status().as_u16(),
            content_type(&response).as_deref(),
        );

        let metrics = server.state.metrics.encode();
        let failures = metrics
            .lines()
            .find_map(|line| line.strip_prefix("rollguard_tls_handshake_failures_total "))
            .and_then(|value| value.trim().parse::<u64>().ok())
            .expect("handshake failure counter");
        assert!(failures >= 2, "{metrics}");
        server.stop().await.expect("clean stop");
    })
    .await;
}

// ---------------------------------------------------------------- tests: timeouts

/// Whether the peer has not closed `stream`, looking without waiting.
fn still_open(stream: &std::net::TcpStream) -> bool {
    stream.set_nonblocking(true).expect("non-blocking");
    match stream.peek(&mut [0u8; 1]) {
        Ok(read) => read > 0,
        Err(err) => err.kind() == std::io::ErrorKind::WouldBlock,
    }
}

fn handshake_failures(server: &TestServer) -> u64 {
    server
        .state
        .metrics
        .encode()
        .lines()
        .find_map(|line| line.strip_prefix("rollguard_tls_handshake_failures_total "))
        .and_then(|value| value.trim().parse().ok())
        .expect("handshake failure counter")
}

#[tokio::test]
async fn a_stalled_handshake_neither_blocks_others_nor_lives_forever() {
    bounded(async {
        let handshake_timeout = Duration::from_secs(2);
        let timeouts = Timeouts {
            tls_handshake: handshake_timeout,
            ..quick_timeouts()
        };
        let server = start(server::DEFAULT_MAX_BODY_BYTES, timeouts).await;
        // It never sends a ClientHello: only the handshake timeout can end it,
        // and that counts a handshake failure.
        let stalled = std::net::TcpStream::connect(server.https).expect("connect");

        // Answered while the stalled handshake is still pending.
        let client = server.client(H1);
        let response = post_review(&client, server.url("/validate"), b"{}".to_vec()).await;
        assert_engine_reply(
            response.status().as_u16(),
            content_type(&response).as_deref(),
        );
        assert!(
            still_open(&stalled),
            "the stalled connection was closed before another client was answered"
        );
        assert_eq!(handshake_failures(&server), 0);

        let mut stalled = TcpStream::from_std(stalled).expect("tokio stream");
        assert_closed_within(&mut stalled, handshake_timeout * 3).await;
        assert_eq!(
            handshake_failures(&server),
            1,
            "the stalled connection was closed by the handshake timeout"
        );
        server.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn a_connection_without_a_request_is_closed_after_the_header_timeout_h2_included() {
    bounded(async {
        let timeouts = Timeouts {
            header_read: Duration::from_millis(300),
            ..quick_timeouts()
        };
        let server = start(server::DEFAULT_MAX_BODY_BYTES, timeouts).await;
        // HTTP/2: negotiated by ALPN, then not even the preface.
        for alpn in [H1, H2] {
            let mut idle = tls_connect(&server, alpn).await;
            // On tokio's paused clock, which the server's timers run on: the
            // bound is measured, not the machine's speed.
            tokio::time::pause();
            let started = tokio::time::Instant::now();
            assert_closed_within(&mut idle, Duration::from_secs(3)).await;
            let closed_after = started.elapsed();
            tokio::time::resume();
            assert!(
                closed_after >= Duration::from_millis(200),
                "{closed_after:?}"
            );
        }

        // A request split over time but within the deadline is fine.
        let mut slow = tls_connect(&server, H1).await;
        slow.write_all(b"POST /validate HTTP/1.1\r\nHost: x\r\n")
            .await
            .expect("write");
        tokio::time::sleep(Duration::from_millis(100)).await;
        slow.write_all(b"Content-Length: 2\r\n\r\n{}")
            .await
            .expect("write");
        let (status, head, _) = read_response(&mut slow).await;
        let content_type = head
            .lines()
            .find_map(|line| line.strip_prefix("content-type:"))
            .map(str::trim);
        assert_engine_reply(status, content_type);
        server.stop().await.expect("clean stop");
    })
    .await;
}

// ---------------------------------------------------------------- tests: shutdown

#[tokio::test]
async fn shutdown_fails_readiness_first_then_stops_accepting() {
    bounded(async {
        let timeouts = Timeouts {
            shutdown_delay: Duration::from_millis(800),
            ..quick_timeouts()
        };
        let mut server = start(server::DEFAULT_MAX_BODY_BYTES, timeouts).await;
        let ops = plain_client();
        let https = server.client(H1);
        server.request_shutdown();

        let deadline = Instant::now() + WAIT_BOUND;
        loop {
            let response = ops
                .get(server.ops_url("/readyz"))
                .send()
                .await
                .expect("readyz");
            if response.status() == 503 {
                assert_eq!(response.text().await.expect("body").trim(), "shutting down");
                break;
            }
            assert!(Instant::now() < deadline, "readiness never failed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Still serving during the delay, on a new connection too.
        let response = post_review(&https, server.url("/validate"), b"{}".to_vec()).await;
        assert_engine_reply(
            response.status().as_u16(),
            content_type(&response).as_deref(),
        );
        let health = ops
            .get(server.ops_url("/healthz"))
            .send()
            .await
            .expect("healthz");
        assert_eq!(health.status(), 200);

        let https_addr = server.https;
        server.stop().await.expect("clean stop");
        assert!(
            TcpStream::connect(https_addr).await.is_err(),
            "the listener must be closed after shutdown"
        );
    })
    .await;
}

/// A router whose handler tells when it started and then takes `hold`.
fn slow_app(hold: Duration) -> (Router, tokio::sync::mpsc::UnboundedReceiver<()>) {
    let (started, started_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let app = Router::new().route(
        "/slow",
        post(move || {
            let started = started.clone();
            async move {
                let _ = started.send(());
                tokio::time::sleep(hold).await;
                "done"
            }
        }),
    );
    (app, started_rx)
}

async fn start_tls_only(
    app: Router,
    drain: Duration,
) -> (SocketAddr, String, oneshot::Sender<()>, JoinHandle<()>) {
    let generated = tls::self_signed().expect("certificate");
    let config =
        tls::server_config(tls::CertResolver::new(generated.certified_key)).expect("config");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let (stop, stopped) = oneshot::channel::<()>();
    let timeouts = Timeouts {
        drain,
        ..Timeouts::default()
    };
    let task = tokio::spawn(server::serve_tls(
        listener,
        config,
        app,
        Arc::new(Metrics::new()),
        timeouts,
        async move {
            let _ = stopped.await;
        },
    ));
    (addr, generated.cert_pem, stop, task)
}

#[tokio::test]
async fn in_flight_requests_complete_during_the_drain() {
    bounded(async {
        for alpn in [H1, H2] {
            let (app, mut started) = slow_app(Duration::from_millis(400));
            let (addr, cert_pem, stop, task) = start_tls_only(app, Duration::from_secs(5)).await;
            let client = https_client(&cert_pem, alpn);
            let url = format!("https://127.0.0.1:{}/slow", addr.port());
            let request = tokio::spawn(async move { client.post(url).send().await });
            started.recv().await.expect("handler started");
            let _ = stop.send(());

            let response = request
                .await
                .expect("task")
                .expect("in-flight request answered");
            assert_eq!(response.status(), 200);
            assert_eq!(response.text().await.expect("body"), "done");
            tokio::time::timeout(WAIT_BOUND, task)
                .await
                .expect("drain finished")
                .expect("server task");
            assert!(TcpStream::connect(addr).await.is_err());
        }
    })
    .await;
}

#[tokio::test]
async fn the_drain_is_bounded() {
    bounded(async {
        let (app, mut started) = slow_app(Duration::from_secs(120));
        let (addr, cert_pem, stop, task) = start_tls_only(app, Duration::from_millis(300)).await;
        let client = https_client(&cert_pem, H1);
        let url = format!("https://127.0.0.1:{}/slow", addr.port());
        let request = tokio::spawn(async move { client.post(url).send().await });
        started.recv().await.expect("handler started");
        // On tokio's paused clock, which the drain bound and the client's
        // own timeout run on: what ends the drain is measured, not the
        // machine's speed.
        tokio::time::pause();
        let stopping = tokio::time::Instant::now();
        let _ = stop.send(());
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("serve_tls returned despite a stuck request")
            .expect("server task");
        let stopped_after = stopping.elapsed();
        tokio::time::resume();
        assert!(stopped_after < Duration::from_secs(3), "{stopped_after:?}");
        // The stuck request is cut, not answered.
        let outcome = tokio::time::timeout(WAIT_BOUND, request)
            .await
            .expect("client finished");
        assert!(outcome.expect("task").is_err());
    })
    .await;
}

// ---------------------------------------------------------------- the binary

#[tokio::test]
async fn the_binary_serves_and_exits_zero_on_sigterm() {
    bounded(async {
        let mut binary = Binary::start(&[
            "serve",
            "--self-signed",
            "--listen",
            "127.0.0.1:0",
            "--ops-listen",
            "127.0.0.1:0",
            "--shutdown-delay",
            "0",
        ]);
        let https = binary.address_after("listening on https://");
        let ops = binary.address_after("ops on http://");
        assert!(https.ip().is_loopback() && https.port() != 0);
        wait_ready(ops).await;

        binary.terminate();
        let status = binary.wait_exit(WAIT_BOUND);
        assert_eq!(status.code(), Some(0), "log:\n{}", binary.rest_of_log());
        let log = binary.rest_of_log();
        assert!(
            log.contains("SIGTERM") && log.contains("shutdown complete"),
            "{log}"
        );
    })
    .await;
}

#[tokio::test]
async fn auto_prestop_handler_without_a_cluster_falls_back_to_exec_with_one_warning() {
    bounded(async {
        let mut binary = Binary::start(&[
            "serve",
            "--self-signed",
            "--listen",
            "127.0.0.1:0",
            "--ops-listen",
            "127.0.0.1:0",
            "--shutdown-delay",
            "0",
        ]);
        let ops = binary.address_after("ops on http://");
        wait_ready(ops).await;
        binary.terminate();
        binary.wait_exit(WAIT_BOUND);
        let log = binary.rest_of_log();
        assert_eq!(
            log.matches("injecting exec sleep preStop hooks").count(),
            1,
            "{log}"
        );
    })
    .await;
}

// Multi-threaded: the client's h2 connection must keep running (and answer
// the server's shutdown ping) while this test blocks waiting for the exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_https_from_pem_files_and_logs_each_review_without_its_body() {
    bounded(async {
        let dir = TempDir::new();
        let generated =
            rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("certificate");
        let cert = dir.write("tls.crt", generated.cert.pem());
        let key = dir.write("tls.key", generated.signing_key.serialize_pem());
        let mut binary = Binary::start(&[
            "serve",
            "--tls-cert",
            cert.to_str().expect("utf-8 path"),
            "--tls-key",
            key.to_str().expect("utf-8 path"),
            "--listen",
            "127.0.0.1:0",
            "--ops-listen",
            "127.0.0.1:0",
            "--shutdown-delay",
            "0s",
            "--log-format",
            "json",
        ]);
        let https = binary.address_after("listening on https://");
        let ops = binary.address_after("ops on http://");
        wait_ready(ops).await;

        let client = https_client(&generated.cert.pem(), H2_AND_H1);
        let secret = "do-not-log-this-9f2c";
        let body = format!(r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"uid":"x","object":{{"data":"{secret}"}}}}}}"#);
        let response = post_review(
            &client,
            format!("https://127.0.0.1:{}/validate", https.port()),
            body.into_bytes(),
        )
        .await;
        assert_engine_reply(response.status().as_u16(), content_type(&response).as_deref());

        let review = binary.wait_for("an admission review line", |line| {
            let value: serde_json::Value = serde_json::from_str(line).ok()?;
            (value.get("message")?.as_str()? == "admission review").then_some(value)
        });
        assert_eq!(review["route"], "validate");
        for field in [
            "uid", "kind", "namespace", "name", "operation", "outcome", "rules", "warnings",
            "duration_us", "status",
        ] {
            assert!(review.get(field).is_some(), "missing {field}: {review}");
        }

        // The idle h2 connection stays open: it must close through GOAWAY,
        // not by the 10 s drain bound running out (which the log would say).
        binary.terminate();
        let status = binary.wait_exit(WAIT_BOUND);
        let log = binary.rest_of_log();
        assert_eq!(status.code(), Some(0), "log:\n{log}");
        assert!(!log.contains("still open after the drain bound"), "{log}");
        drop(client);
        assert!(!log.contains(secret), "the body leaked into the log:\n{log}");
        for line in log.lines() {
            assert!(serde_json::from_str::<serde_json::Value>(line).is_ok(), "not JSON: {line}");
        }
    })
    .await;
}

#[test]
fn an_invalid_config_file_stops_serve_with_code_2_naming_the_key() {
    let dir = TempDir::new();
    let config = dir.write(
        "rollguard.yaml",
        "prestopSleep: 10s\nrules:\n  no-such-rule: deny\n",
    );
    let config = config.to_str().expect("utf-8 path");
    let (code, log) = run_to_exit(&[
        "serve",
        "--self-signed",
        "--config",
        config,
        "--listen",
        "127.0.0.1:0",
        "--ops-listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(code, Some(2), "{log}");
    assert!(log.contains("rules.no-such-rule"), "{log}");
    assert!(!log.contains("listening on"), "{log}");

    let (code, log) = run_to_exit(&[
        "serve",
        "--self-signed",
        "--rule",
        "readiness-missing",
        "--listen",
        "127.0.0.1:0",
        "--ops-listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(code, Some(2), "{log}");
    assert!(log.contains("RULE=ACTION"), "{log}");
}

#[test]
fn serve_without_a_certificate_exits_2_and_says_how_to_fix_it() {
    let (code, log) = run_to_exit(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--ops-listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(code, Some(2), "{log}");
    assert!(
        log.contains("--tls-cert") && log.contains("--self-signed"),
        "{log}"
    );

    let (code, log) = run_to_exit(&[
        "serve",
        "--self-signed",
        "--tls-cert",
        "a.pem",
        "--tls-key",
        "b.pem",
    ]);
    assert_eq!(code, Some(2), "{log}");
    assert!(log.contains("cannot be used with"), "{log}");
}

#[test]
fn a_body_budget_smaller_than_one_body_exits_2_and_says_what_to_raise() {
    let (code, log) = run_to_exit(&[
        "serve",
        "--self-signed",
        "--listen",
        "127.0.0.1:0",
        "--ops-listen",
        "127.0.0.1:0",
        "--max-body-bytes",
        "2000000",
        "--max-buffered-body-bytes",
        "1000000",
    ]);
    assert_eq!(code, Some(2), "{log}");
    assert!(
        log.contains("--max-buffered-body-bytes") && log.contains("at least 2000000"),
        "{log}"
    );
}

#[test]
fn unusable_tls_files_exit_2_naming_the_file() {
    let dir = TempDir::new();
    let cert = dir.write("tls.crt", &tls::self_signed().expect("cert").cert_pem);
    let missing = dir.path().join("missing.key");
    let (code, log) = run_to_exit(&[
        "serve",
        "--tls-cert",
        cert.to_str().expect("utf-8"),
        "--tls-key",
        missing.to_str().expect("utf-8"),
        "--listen",
        "127.0.0.1:0",
        "--ops-listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(code, Some(2), "{log}");
    assert!(log.contains("missing.key"), "{log}");

    let other_key = dir.write(
        "other.key",
        rcgen::KeyPair::generate().expect("key").serialize_pem(),
    );
    let (code, log) = run_to_exit(&[
        "serve",
        "--tls-cert",
        cert.to_str().expect("utf-8"),
        "--tls-key",
        other_key.to_str().expect("utf-8"),
        "--listen",
        "127.0.0.1:0",
        "--ops-listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(code, Some(2), "{log}");
    assert!(log.contains("does not match"), "{log}");
}

// ---------------------------------------------------------------- the engine over HTTPS

async fn review_json(
    client: &reqwest::Client,
    url: String,
    review: &serde_json::Value,
) -> serde_json::Value {
    let response = post_review(client, url, serde_json::to_vec(review).expect("encode")).await;
    assert_eq!(response.status(), 200);
    response.json().await.expect("AdmissionReview reply")
}

fn decoded_patch(response: &serde_json::Value) -> Option<json_patch::Patch> {
    use base64::Engine as _;
    let text = response
        .get("patch")?
        .as_str()
        .expect("patch is a base64 string");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("base64");
    Some(serde_json::from_slice(&bytes).expect("JSON Patch"))
}

#[tokio::test]
async fn real_reviews_over_https_get_patches_that_decode_and_apply_with_the_uid_echoed() {
    bounded(async {
        let server = start(server::DEFAULT_MAX_BODY_BYTES, quick_timeouts()).await;
        let client = server.client(H2_AND_H1);
        let mut patched = 0;
        for (name, review) in fixture_reviews() {
            let reply = review_json(&client, server.url("/mutate"), &review).await;
            let response = &reply["response"];
            assert_eq!(reply["apiVersion"], "admission.k8s.io/v1", "{name}");
            assert_eq!(response["uid"], review["request"]["uid"], "{name}");
            assert_eq!(response["allowed"], true, "{name}");
            if let Some(patch) = decoded_patch(response) {
                let mut object = review["request"]["object"].clone();
                json_patch::patch(&mut object, &patch).expect("patch applies");
                patched += 1;
            }
        }
        assert!(patched >= 15, "only {patched} fixtures were patched");
        server.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn audit_route_and_audit_server_allow_with_warnings_and_no_patch() {
    bounded(async {
        let (_, review) = fixture_reviews()
            .into_iter()
            .find(|(n, _)| n == "deployment-create")
            .expect("fixture");
        let server = start(server::DEFAULT_MAX_BODY_BYTES, quick_timeouts()).await;
        let client = server.client(H1);
        let reply = review_json(&client, server.url("/audit"), &review).await;
        let response = &reply["response"];
        assert_eq!(response["allowed"], true);
        assert!(response.get("patch").is_none());
        assert!(
            response["warnings"]
                .as_array()
                .is_some_and(|w| !w.is_empty()),
            "{reply}"
        );
        assert_eq!(
            response["auditAnnotations"]["would-mutate"],
            "prestop-sleep,readiness-probe,grace-period"
        );
        server.stop().await.expect("clean stop");

        let dry_run = PolicyConfig {
            audit_only: true,
            ..PolicyConfig::default()
        };
        let server = start_with(dry_run, server::DEFAULT_MAX_BODY_BYTES, quick_timeouts()).await;
        let client = server.client(H1);
        for route in Route::ALL {
            let reply = review_json(&client, server.url(route.path()), &review).await;
            assert_eq!(reply["response"]["allowed"], true, "{route:?}");
            assert!(
                reply["response"].get("patch").is_none(),
                "{route:?}: --audit never patches"
            );
        }
        server.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn a_body_that_is_not_an_admission_review_gets_400_and_the_server_keeps_serving() {
    bounded(async {
        let server = start(server::DEFAULT_MAX_BODY_BYTES, quick_timeouts()).await;
        let client = server.client(H1);
        for body in [
            &b"not json"[..],
            br#"{"kind": "Pod", "apiVersion": "v1"}"#,
            br#"{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1beta1", "request": {}}"#,
            br#"{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1"}"#,
        ] {
            let response = post_review(&client, server.url("/validate"), body.to_vec()).await;
            assert_eq!(response.status(), 400);
            let message = response.text().await.expect("text");
            assert!(message.contains("AdmissionReview") || message.contains("JSON"), "{message}");
        }
        let (_, review) = fixture_reviews().into_iter().next().expect("fixture");
        let reply = review_json(&client, server.url("/validate"), &review).await;
        assert_eq!(reply["response"]["uid"], review["request"]["uid"]);
        server.stop().await.expect("clean stop");
    })
    .await;
}

// ---------------------------------------------------------------- tests: cannot be knocked over

const POD_REVIEW: &str = include_str!("fixtures/admission/pod-create.json");

#[tokio::test]
async fn idle_h2_and_http1_connections_up_to_the_cap_do_not_lock_out_a_new_client() {
    bounded(async {
        // Bounds far longer than the test: only eviction can make room.
        let timeouts = Timeouts {
            max_connections: 4,
            header_read: Duration::from_secs(60),
            idle: Duration::from_secs(60),
            ..quick_timeouts()
        };
        let server = start(server::DEFAULT_MAX_BODY_BYTES, timeouts).await;
        let mut idle = Vec::new();
        for alpn in [H2, H2, H1, H1] {
            idle.push(tls_connect(&server, alpn).await);
        }
        // Kept open, so that each needs a slot of its own.
        let mut clients = Vec::new();
        for alpn in [H2, H1] {
            let client = reqwest_builder(client_config(&[&server.cert_pem], None, alpn))
                .timeout(Duration::from_secs(5))
                .build()
                .expect("client");
            let started = Instant::now();
            let answered = client
                .post(server.url("/mutate"))
                .header("content-type", "application/json")
                .body(POD_REVIEW)
                .send()
                .await
                .expect("a new client is answered although idle connections fill the cap");
            assert_eq!(answered.status(), 200);
            println!(
                "new client ({}) at a full cap of 4: answered in {:?}",
                String::from_utf8_lossy(alpn[0]),
                started.elapsed()
            );
            clients.push(client);
        }
        // The idlest ones made room: at least two of them were closed.
        let mut closed = 0;
        for stream in &mut idle {
            closed += usize::from(closed_within(stream, Duration::from_millis(500)).await);
        }
        assert!(closed >= 2, "{closed} idle connections were closed");
        server.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn an_h2_connection_without_requests_is_closed_after_the_idle_bound() {
    bounded(async {
        let timeouts = Timeouts {
            idle: Duration::from_millis(300),
            ..quick_timeouts()
        };
        let server = start(server::DEFAULT_MAX_BODY_BYTES, timeouts).await;
        let client = server.client(H2);
        let answered = post_review(&client, server.url("/validate"), POD_REVIEW.into()).await;
        assert_eq!(answered.version(), reqwest::Version::HTTP_2);
        assert_eq!(answered.status(), 200);
        let deadline = Instant::now() + WAIT_BOUND;
        loop {
            let metrics = plain_client()
                .get(server.ops_url("/metrics"))
                .send()
                .await
                .expect("metrics")
                .text()
                .await
                .expect("metrics body");
            if metrics
                .lines()
                .any(|line| line == "rollguard_connections_open 0")
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "idle h2 connection still open:\n{metrics}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The server keeps serving. (A fresh client: one that reuses the
        // closed connection races its close, which is why the idle bound is
        // longer than the API server's own.)
        let again = post_review(
            &server.client(H2),
            server.url("/validate"),
            POD_REVIEW.into(),
        )
        .await;
        assert_eq!(again.status(), 200);
        server.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn a_declared_length_over_the_limit_gets_413_before_any_body_is_sent() {
    bounded(async {
        let server = start(1024, quick_timeouts()).await;
        let mut stream = tls_connect(&server, H1).await;
        stream
            .write_all(b"POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\n")
            .await
            .expect("write");
        let (status, _, body) =
            tokio::time::timeout(Duration::from_secs(5), read_response(&mut stream))
                .await
                .expect("answered from the header, without waiting for the body");
        assert_eq!(status, 413);
        assert!(String::from_utf8_lossy(&body).contains("--max-body-bytes"));
        server.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn a_client_that_writes_its_whole_over_limit_body_before_reading_gets_413() {
    bounded(async {
        let server = start(1024 * 1024, quick_timeouts()).await;
        let body = vec![b' '; 12 * 1024 * 1024];
        for declared in [true, false] {
            let mut stream = tls_connect(&server, H1).await;
            let head = if declared {
                format!(
                    "POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                )
            } else {
                "POST /mutate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_string()
            };
            stream.write_all(head.as_bytes()).await.expect("write head");
            if declared {
                stream
                    .write_all(&body)
                    .await
                    .expect("the server reads what it refuses");
            } else {
                for chunk in body.chunks(64 * 1024) {
                    stream
                        .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                        .await
                        .expect("write chunk size");
                    stream
                        .write_all(chunk)
                        .await
                        .expect("the server reads what it refuses");
                    stream.write_all(b"\r\n").await.expect("write chunk end");
                }
                stream
                    .write_all(b"0\r\n\r\n")
                    .await
                    .expect("write last chunk");
            }
            stream.flush().await.expect("flush");
            let (status, _, _) = read_response(&mut stream).await;
            assert_eq!(status, 413, "declared length: {declared}");
        }
        server.stop().await.expect("clean stop");
    })
    .await;
}

/// Over HTTP/2 the server must not reset the stream of a body it refused:
/// clients such as curl then drop the 413 they were sent. The body here is
/// still being sent when the 413 arrives, and all of it must go through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2_client_still_sending_a_refused_body_can_finish_sending_it() {
    bounded(async {
        let limit = 1024 * 1024;
        let server = start(limit, quick_timeouts()).await;
        let tls = tls_connect(&server, H2).await;
        let (mut sender, connection) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tls),
        )
        .await
        .expect("h2 handshake");
        tokio::spawn(connection);

        let chunk = axum::body::Bytes::from(vec![b' '; 64 * 1024]);
        let chunks = 9 * 16; // 9 MiB
        let (frames, body) = tokio::sync::mpsc::channel(4);
        let request = hyper::Request::post(server.url("/mutate"))
            .header("content-type", "application/json")
            .header("content-length", (chunk.len() * chunks).to_string())
            .body(ChannelBody(body))
            .expect("request");
        let response = tokio::spawn(sender.send_request(request));
        let mut sent = 0;
        for _ in 0..chunks {
            if frames.send(chunk.clone()).await.is_err() {
                break;
            }
            sent += 1;
        }
        drop(frames);
        let response = response.await.expect("task").expect("response");
        assert_eq!(response.status(), 413);
        assert_eq!(
            sent, chunks,
            "the stream was reset after {sent} of {chunks} chunks"
        );
        server.stop().await.expect("clean stop");
    })
    .await;
}

/// A request body whose chunks the test sends one by one.
struct ChannelBody(tokio::sync::mpsc::Receiver<axum::body::Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = axum::body::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|chunk| Ok(hyper::body::Frame::data(chunk))))
    }
}

#[tokio::test]
async fn an_over_limit_body_over_h2_gets_413_and_the_connection_keeps_serving() {
    bounded(async {
        let server = start(1024 * 1024, quick_timeouts()).await;
        let client = server.client(H2);
        let over = post_review(&client, server.url("/mutate"), vec![b' '; 9 * 1024 * 1024]).await;
        assert_eq!(over.version(), reqwest::Version::HTTP_2);
        assert_eq!(over.status(), 413);
        let after = post_review(&client, server.url("/mutate"), POD_REVIEW.into()).await;
        assert_eq!(after.status(), 200);
        server.stop().await.expect("clean stop");
    })
    .await;
}

/// A captured Pod review with `edit` applied to it.
fn pod_review(edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let mut review: serde_json::Value = serde_json::from_str(POD_REVIEW).expect("fixture");
    edit(&mut review);
    serde_json::to_vec(&review).expect("encode")
}

fn containers(count: usize, env_per_container: usize) -> serde_json::Value {
    (0..count)
        .map(|i| {
            let env: Vec<serde_json::Value> = (0..env_per_container)
                .map(|j| serde_json::json!({"name": format!("V{j}"), "value": "x".repeat(40)}))
                .collect();
            serde_json::json!({
                "name": format!("c{i}"),
                "image": "registry.example/app:1",
                "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                "env": env,
            })
        })
        .collect()
}

use support::binary::{peak_rss_kib, SHIPPED_MEMORY_LIMIT_MIB};

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_and_huge_reviews_stay_well_within_the_shipped_memory_limit() {
    bounded(async {
        let (mut binary, https, _) =
            Binary::serve(&["--self-signed", "--shutdown-delay", "0"]).await;
        let insecure = |alpn: &[&[u8]]| trusting_client(alpn, TEST_BOUND);
        let url = format!("https://{https}/mutate");
        let small = post_review(&insecure(H1), url.clone(), POD_REVIEW.into()).await;
        assert_eq!(small.status(), 200);
        let before = peak_rss_kib(binary.child.id());

        let bodies = [
            // 7 MB whose envelope carries a 3.6 M-element array.
            pod_review(|r| r["request"]["extra"] = serde_json::json!(vec![0; 3_600_000])),
            pod_review(|r| {
                r["request"]["userInfo"]["extra"] = serde_json::json!({"k": vec!["a"; 1_500_000]})
            }),
            // 50,000 containers: past what rollguard reviews, never read.
            pod_review(|r| r["request"]["object"]["spec"]["containers"] = containers(50_000, 0)),
            // 1,000 containers (reviewed) with large skipped env lists.
            pod_review(|r| r["request"]["object"]["spec"]["containers"] = containers(1_000, 100)),
        ];
        for alpn in [H1, H2] {
            let client = insecure(alpn);
            for (index, body) in bodies.iter().enumerate() {
                let answer = post_review(&client, url.clone(), body.clone()).await;
                assert_eq!(answer.status(), 200, "{} bytes", body.len());
                let reply: serde_json::Value = answer.json().await.expect("review reply");
                let response = &reply["response"];
                assert_eq!(response["allowed"], true);
                if index == 2 {
                    assert!(response.get("patch").is_none(), "{response}");
                    let warning = response["warnings"][0].as_str().unwrap_or_default();
                    assert!(
                        warning.contains("did not review") && warning.contains("1000 containers"),
                        "{warning}"
                    );
                }
            }
        }
        let peak = peak_rss_kib(binary.child.id());
        println!(
            "peak RSS: {:.1} MiB after one small review, {:.1} MiB after the hostile ones \
             (largest body {:.1} MB; shipped limit {SHIPPED_MEMORY_LIMIT_MIB} MiB)",
            before as f64 / 1024.0,
            peak as f64 / 1024.0,
            bodies.iter().map(Vec::len).max().unwrap_or(0) as f64 / 1e6,
        );
        assert!(
            peak < SHIPPED_MEMORY_LIMIT_MIB * 1024 * 3 / 4,
            "peak RSS {peak} KiB is not well within the {SHIPPED_MEMORY_LIMIT_MIB} MiB limit"
        );
        binary.terminate();
        binary.wait_exit(WAIT_BOUND);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_reviews_do_not_hold_back_small_ones_and_all_answer_within_their_timeout() {
    bounded(async {
        let server = start(server::DEFAULT_MAX_BODY_BYTES, quick_timeouts()).await;
        // As the API server sends them: the shipped timeout, as ?timeout=
        // and as the client's own bound.
        let client = api_server_like_client(&server, H2_AND_H1);
        let url = server.url("/mutate?timeout=3s");
        let large =
            pod_review(|r| r["request"]["object"]["spec"]["containers"] = containers(1_000, 100));
        let mut larges = tokio::task::JoinSet::new();
        for _ in 0..4 {
            let (client, url, body) = (client.clone(), url.clone(), large.clone());
            larges.spawn(async move {
                let started = Instant::now();
                let status = post_review(&client, url, body).await.status();
                (status, started.elapsed())
            });
        }
        let mut slowest_small = Duration::ZERO;
        for _ in 0..8 {
            let (status, took) = timed_review(&client, &url).await;
            assert_eq!(
                status,
                Some(200),
                "a small review while large ones run, within the shipped {SHIPPED_WEBHOOK_TIMEOUT:?}"
            );
            slowest_small = slowest_small.max(took);
        }
        println!(
            "small review while 4 large ones ({:.1} MB each) run: slowest of 8 in {slowest_small:?}",
            large.len() as f64 / 1e6
        );
        while let Some(answered) = larges.join_next().await {
            let (status, took) = answered.expect("large review task");
            println!("large review: {status} in {took:?}");
            // Within the timeout: answered, or refused for lack of room in
            // the body budget (503), never left to time out.
            assert!([200, 503].contains(&status.as_u16()), "{status}");
        }
        server.stop().await.expect("clean stop");
    })
    .await;
}

// ---------------------------------------------------------------- tests: the cap, the handshake, slow and many bodies

/// The API server's timeout for the shipped webhooks (`timeoutSeconds: 3` in
/// manifests/base/*webhookconfiguration.yaml).
const SHIPPED_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(3);

/// The client's HTTP/2 connection preface and an empty SETTINGS frame.
const H2_PREFACE_AND_SETTINGS: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0";

/// An HTTP/2 PING frame (not an ACK) with an 8-byte payload.
const H2_PING: &[u8] = b"\0\0\x08\x06\0\0\0\0\0pingpong";

fn connections_open(server: &TestServer) -> u64 {
    server
        .state
        .metrics
        .encode()
        .lines()
        .find_map(|line| line.strip_prefix("rollguard_connections_open "))
        .and_then(|value| value.trim().parse().ok())
        .expect("open connections gauge")
}

async fn wait_for_connections_open(server: &TestServer, expected: u64) {
    tokio::time::timeout(WAIT_BOUND, async {
        while connections_open(server) != expected {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "{} connections open, not {expected}",
            connections_open(server)
        )
    });
}

/// A client as the API server is one: keep-alive, bounded by the shipped
/// webhook timeout, which it also sends as `?timeout=`.
fn api_server_like_client(server: &TestServer, alpn: &[&[u8]]) -> reqwest::Client {
    reqwest_builder(client_config(&[&server.cert_pem], None, alpn))
        .timeout(SHIPPED_WEBHOOK_TIMEOUT)
        .build()
        .expect("client")
}

/// Sends the fixture review and returns its status and how long it took;
/// None when it was not answered within the client's timeout.
async fn timed_review(client: &reqwest::Client, url: &str) -> (Option<u16>, Duration) {
    let started = Instant::now();
    let status = client
        .post(url)
        .header("content-type", "application/json")
        .body(POD_REVIEW)
        .send()
        .await
        .ok()
        .map(|response| response.status().as_u16());
    (status, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cap_full_of_idle_h2_http1_and_silent_tcp_connections_still_answers_new_clients_in_time()
{
    bounded(async {
        let cap: usize = 20;
        // Bounds far longer than the test: only eviction can make room.
        let timeouts = Timeouts {
            max_connections: cap,
            tls_handshake: Duration::from_secs(60),
            header_read: Duration::from_secs(60),
            idle: Duration::from_secs(60),
            ..quick_timeouts()
        };
        let server = start(server::DEFAULT_MAX_BODY_BYTES, timeouts).await;
        // Silent TCP first: the oldest, which used to be picked for eviction
        // again and again while it could not be evicted.
        let mut silent = Vec::new();
        for _ in 0..5 {
            silent.push(TcpStream::connect(server.https).await.expect("connect"));
        }
        let mut idle = Vec::new();
        for _ in 0..5 {
            idle.push(tls_connect(&server, H2).await);
        }
        for _ in 0..4 {
            let mut after_preface = tls_connect(&server, H2).await;
            after_preface
                .write_all(H2_PREFACE_AND_SETTINGS)
                .await
                .expect("preface");
            idle.push(after_preface);
        }
        for _ in 0..3 {
            idle.push(tls_connect(&server, H1).await);
        }
        for _ in 0..3 {
            // Keep-alive after one answered request: what an idle API
            // server connection looks like.
            let mut used = tls_connect(&server, H1).await;
            used.write_all(
                format!(
                    "POST /validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\n\r\n{POD_REVIEW}",
                    POD_REVIEW.len()
                )
                .as_bytes(),
            )
            .await
            .expect("request");
            let (status, _, _) = read_response(&mut used).await;
            assert_eq!(status, 200);
            idle.push(used);
        }
        wait_for_connections_open(&server, cap as u64).await;

        let url = server.url("/mutate?timeout=3s");
        let mut clients = tokio::task::JoinSet::new();
        for (index, alpn) in [H2, H1, H2_AND_H1, H2, H1, H2_AND_H1].into_iter().enumerate() {
            let (client, url) = (api_server_like_client(&server, alpn), url.clone());
            clients.spawn(async move {
                let first = timed_review(&client, &url).await;
                let again = timed_review(&client, &url).await;
                (index, first, again)
            });
        }
        let mut worst = Duration::ZERO;
        while let Some(answered) = clients.join_next().await {
            let (index, first, again) = answered.expect("client task");
            println!(
                "new client {index}: answered {:?} in {:?}, again on the same connection {:?} in {:?}",
                first.0, first.1, again.0, again.1
            );
            for (status, took) in [first, again] {
                assert_eq!(
                    status,
                    Some(200),
                    "client {index} not answered within the shipped {SHIPPED_WEBHOOK_TIMEOUT:?}"
                );
                worst = worst.max(took);
            }
        }
        println!("slowest answer at a full cap of {cap}: {worst:?}");
        // The silent TCP connections, open for longest and never used, made
        // room first.
        for mut stream in silent {
            assert_closed_within(&mut stream, Duration::from_secs(1)).await;
        }
        server.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn silent_tcp_connections_at_the_cap_do_not_lock_out_a_client_before_the_handshake_bound() {
    bounded(async {
        let cap = 20;
        let timeouts = Timeouts {
            max_connections: cap,
            tls_handshake: Duration::from_secs(60),
            ..quick_timeouts()
        };
        let server = start(server::DEFAULT_MAX_BODY_BYTES, timeouts).await;
        let mut silent = Vec::new();
        for _ in 0..cap {
            silent.push(TcpStream::connect(server.https).await.expect("connect"));
        }
        wait_for_connections_open(&server, cap as u64).await;
        let client = api_server_like_client(&server, H2_AND_H1);
        let (status, took) = timed_review(&client, &server.url("/validate?timeout=3s")).await;
        println!("answered {status:?} in {took:?} with {cap} silent TCP connections at the cap");
        assert_eq!(status, Some(200));
        // A connection evicted during its handshake is dropped, not served.
        let mut closed = 0;
        for stream in &mut silent {
            closed += usize::from(closed_within(stream, Duration::from_millis(200)).await);
        }
        assert!(closed >= 1, "no silent connection made room");
        server.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn an_h2_connection_that_sends_its_preface_then_only_pings_is_closed_after_the_first_request_bound(
) {
    bounded(async {
        let first_request = Duration::from_secs(1);
        let timeouts = Timeouts {
            header_read: first_request,
            ..quick_timeouts()
        };
        let server = start(server::DEFAULT_MAX_BODY_BYTES, timeouts).await;
        for pings in [false, true] {
            let stream = tls_connect(&server, H2).await;
            let (mut reader, mut writer) = tokio::io::split(stream);
            writer
                .write_all(H2_PREFACE_AND_SETTINGS)
                .await
                .expect("preface");
            let started = Instant::now();
            let pinging = tokio::spawn(async move {
                if pings {
                    loop {
                        if writer.write_all(H2_PING).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
                // Keeps the writing half open.
                std::future::pending::<()>().await;
            });
            assert_closed_within(&mut reader, first_request * 5).await;
            println!(
                "h2 after its preface{}: closed after {:?} (first-request bound {first_request:?})",
                if pings { ", pinging every 200 ms" } else { "" },
                started.elapsed()
            );
            pinging.abort();
        }
        server.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn a_body_that_never_arrives_gets_408_after_the_grace_and_the_connection_closes() {
    bounded(async {
        let server = start(server::DEFAULT_MAX_BODY_BYTES, quick_timeouts()).await;
        let grace = server.state.body_pace.grace;
        let mut stream = tls_connect(&server, H1).await;
        stream
            .write_all(
                b"POST /validate?timeout=3s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                  Content-Length: 1000\r\n\r\n{",
            )
            .await
            .expect("headers");
        let started = Instant::now();
        let (status, head, _) = read_response(&mut stream).await;
        println!(
            "a body that stops after one byte: {status} after {:?} (grace {grace:?})",
            started.elapsed()
        );
        assert_eq!(status, 408);
        assert!(head.contains("connection: close"), "{head}");
        assert_closed_within(&mut stream, WAIT_BOUND).await;
        server.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn bodies_past_the_budget_wait_then_get_503_with_retry_after_and_fit_once_room_is_made() {
    bounded(async {
        let body_limit = 64 * 1024;
        // A slow first body is allowed (long grace): it holds the whole budget.
        let state = AppState::new(PolicyConfig::default())
            .with_max_body_bytes(body_limit)
            .with_max_buffered_body_bytes(body_limit)
            .with_body_pace(server::BodyPace {
                grace: Duration::from_secs(20),
                bytes_per_second: 1,
            });
        let server = support::server::start(state, quick_timeouts()).await;
        let review = pod_review(|r| {
            r["request"]["object"]["metadata"]["annotations"] =
                serde_json::json!({"pad": "x".repeat(body_limit - POD_REVIEW.len() - 200)})
        });
        assert!(review.len() <= body_limit);
        let mut holder = tls_connect(&server, H1).await;
        holder
            .write_all(
                format!(
                    "POST /validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\n\r\n",
                    review.len()
                )
                .as_bytes(),
            )
            .await
            .expect("headers");
        tokio::time::timeout(WAIT_BOUND, async {
            while server.state.body_budget.available_bytes() >= POD_REVIEW.len() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("the first body reserves the budget");

        let client = server.client(H2_AND_H1);
        let started = Instant::now();
        let refused = post_review(&client, server.url("/validate"), POD_REVIEW.into()).await;
        println!(
            "no room in the budget: {} after {:?}",
            refused.status(),
            started.elapsed()
        );
        assert_eq!(refused.status(), 503);
        assert_eq!(
            refused
                .headers()
                .get("retry-after")
                .and_then(|value| value.to_str().ok()),
            Some("1")
        );
        assert!(refused
            .text()
            .await
            .expect("body")
            .contains("--max-buffered-body-bytes"));

        holder.write_all(&review).await.expect("body");
        let (status, _, _) = read_response(&mut holder).await;
        assert_eq!(status, 200);
        let fits = post_review(&client, server.url("/validate"), POD_REVIEW.into()).await;
        assert_eq!(fits.status(), 200);
        server.stop().await.expect("clean stop");
    })
    .await;
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reviews_at_the_body_limit_stay_within_the_shipped_memory_limit() {
    bounded(async {
        let (mut binary, https, _) =
            Binary::serve(&["--self-signed", "--shutdown-delay", "0"]).await;
        let client = trusting_client(H2_AND_H1, TEST_BOUND);
        let url = format!("https://{https}/mutate?timeout=10s");
        // 7 MB each, under the body limit: 8 of them buffered at once were
        // 56 MB of bodies alone.
        let body = pod_review(|r| r["request"]["extra"] = serde_json::json!(vec![0; 3_600_000]));
        let before = peak_rss_kib(binary.child.id());
        let mut reviews = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let (client, url, body) = (client.clone(), url.clone(), body.clone());
            reviews.spawn(async move {
                let started = Instant::now();
                let answer = client
                    .post(url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .expect("answered");
                let retry_after = answer.headers().contains_key("retry-after");
                (answer.status().as_u16(), retry_after, started.elapsed())
            });
        }
        let mut statuses = Vec::new();
        while let Some(answered) = reviews.join_next().await {
            let (status, retry_after, took) = answered.expect("review task");
            assert!(
                status == 200 || (status == 503 && retry_after),
                "{status}: neither answered nor refused for the budget"
            );
            statuses.push((status, took));
        }
        statuses.sort();
        let peak = peak_rss_kib(binary.child.id());
        println!(
            "8 concurrent {:.1} MB reviews: {statuses:?}; peak RSS {:.1} MiB (before {:.1} MiB, \
             shipped limit {SHIPPED_MEMORY_LIMIT_MIB} MiB)",
            body.len() as f64 / 1e6,
            peak as f64 / 1024.0,
            before as f64 / 1024.0,
        );
        assert!(statuses.iter().any(|(status, _)| *status == 200));
        assert!(
            peak < SHIPPED_MEMORY_LIMIT_MIB * 1024 * 3 / 4,
            "peak RSS {peak} KiB is not well within the {SHIPPED_MEMORY_LIMIT_MIB} MiB limit"
        );
        binary.terminate();
        binary.wait_exit(WAIT_BOUND);
    })
    .await;
}
