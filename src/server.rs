//! The HTTPS admission server and the plain-HTTP ops server.
//!
//! Shutdown follows what a Deployment rollout needs: on SIGTERM readiness
//! fails at once, the server keeps answering for `shutdown_delay` while the
//! endpoints controller and the kube-apiserver stop sending here (HTTP/1
//! answers now carry `Connection: close`, so busy keep-alive connections move
//! away cleanly), then it stops accepting and drains open connections within
//! `drain`.
//!
//! Limits keep slow or greedy clients from pinning the server: request
//! headers within `header_read`, the whole request within the API server's
//! `?timeout=` capped by [`AppState::request_timeout`], bodies up to
//! `max_body_bytes`, at most `max_connections` connections at once.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode, Version};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn, Level};

use crate::admission::{self, PolicyConfig, ReviewLog, ReviewReply, Route};
use crate::body_limit::{self, BodyError};
use crate::connections::{Activity, Registry};
use crate::duration;
use crate::evaluation_pool::EvaluationPool;
use crate::metrics::{self, Metrics};
use crate::outcome::Outcome;

/// Largest admission request body accepted. The kube-apiserver caps objects
/// near 3 MiB (etcd's limit plus overhead) and a review carries two of them.
pub const DEFAULT_MAX_BODY_BYTES: usize = 7 * 1024 * 1024;

/// How long the ops server may take to finish its last probe or scrape.
const OPS_DRAIN: Duration = Duration::from_secs(1);

/// Default upper bound on one admission request, body upload included. The
/// API server's own `timeoutSeconds` is at most 30.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Default bound on a connection without a request in flight. Longer than
/// the idle timeout of Go's HTTP client (90 s), the API server's, so that
/// the client, which knows when it will send next, closes first.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a connection closed for idleness may take to say goodbye.
const IDLE_CLOSE_GRACE: Duration = Duration::from_secs(1);

/// While the cap is reached and every connection is busy, how often to look
/// again for one that has become idle.
const EVICTION_RETRY: Duration = Duration::from_millis(100);

/// Default cap on concurrent connections to the admission listener.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// Cap on concurrent connections to the ops listener: probes and scrapes.
const OPS_MAX_CONNECTIONS: usize = 64;

/// At most one "connection cap reached" warning per interval.
const CAP_WARNING_INTERVAL: Duration = Duration::from_secs(60);

/// Pause after a failed `accept` (for example out of file descriptors), so
/// the loop does not spin while the condition lasts.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

#[derive(Debug, Error)]
pub enum ServerError {
    #[error("cannot listen on {addr} for the {what}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: io::Error,
    },
    #[error("cannot read the address of the {what} listener: {source}")]
    LocalAddr {
        what: &'static str,
        source: io::Error,
    },
    #[error("cannot install the {signal} handler: {source}")]
    Signal {
        signal: &'static str,
        source: io::Error,
    },
    #[error("the {what} server task failed: {reason}")]
    Task { what: &'static str, reason: String },
}

/// Time limits of the servers, and their connection cap.
#[derive(Debug, Clone)]
pub struct Timeouts {
    /// A TLS handshake longer than this drops the connection.
    pub tls_handshake: Duration,
    /// HTTP/1 request headers must arrive within this, which also closes
    /// keep-alive connections idle for that long; any connection (HTTP/2
    /// too) that has not started a request within this is closed.
    pub header_read: Duration,
    /// A connection with no request in flight for this long is closed
    /// (HTTP/2 with a GOAWAY); HTTP/1 ones already are after `header_read`.
    pub idle: Duration,
    /// Time between failing readiness and closing the listener.
    pub shutdown_delay: Duration,
    /// Bound on waiting for open connections once the listener is closed.
    pub drain: Duration,
    /// Connections served at once on the admission listener; further ones
    /// wait in the listen backlog until one closes.
    pub max_connections: usize,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tls_handshake: Duration::from_secs(10),
            header_read: Duration::from_secs(10),
            idle: DEFAULT_IDLE_TIMEOUT,
            shutdown_delay: Duration::from_secs(5),
            drain: Duration::from_secs(10),
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Where the server is in its life, as `/readyz` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadyState {
    Starting,
    Ready,
    ShuttingDown,
}

/// Shared readiness flag; once shutting down it never turns ready again.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicU8>);

const STARTING: u8 = 0;
const READY: u8 = 1;
const SHUTTING_DOWN: u8 = 2;

impl Readiness {
    pub fn mark_ready(&self) {
        let _ = self
            .0
            .compare_exchange(STARTING, READY, Ordering::SeqCst, Ordering::SeqCst);
    }

    pub fn mark_shutting_down(&self) {
        self.0.store(SHUTTING_DOWN, Ordering::SeqCst);
    }

    pub fn state(&self) -> ReadyState {
        match self.0.load(Ordering::SeqCst) {
            STARTING => ReadyState::Starting,
            READY => ReadyState::Ready,
            _ => ReadyState::ShuttingDown,
        }
    }
}

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    pub policy: Arc<PolicyConfig>,
    pub metrics: Arc<Metrics>,
    pub readiness: Readiness,
    pub max_body_bytes: usize,
    /// Upper bound on one admission request from its headers to its answer;
    /// the API server's `?timeout=` lowers it per request.
    pub request_timeout: Duration,
    /// Where reviews are evaluated (large ones off the async workers).
    pub evaluation: EvaluationPool,
}

impl AppState {
    pub fn new(policy: PolicyConfig) -> Self {
        AppState {
            policy: Arc::new(policy),
            metrics: Arc::new(Metrics::new()),
            readiness: Readiness::default(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            evaluation: EvaluationPool::for_this_machine(),
        }
    }

    pub fn with_max_body_bytes(mut self, max_body_bytes: usize) -> Self {
        self.max_body_bytes = max_body_bytes;
        self
    }

    pub fn with_request_timeout(mut self, request_timeout: Duration) -> Self {
        self.request_timeout = request_timeout;
        self
    }

    pub fn with_evaluation(mut self, evaluation: EvaluationPool) -> Self {
        self.evaluation = evaluation;
        self
    }
}

/// The admission routes: `POST` on every [`Route::path`], each bounded in
/// time, with `Connection: close` on HTTP/1 answers once shutting down.
pub fn app(state: AppState) -> Router {
    let mut router = Router::new();
    for route in Route::ALL {
        router = router.route(
            route.path(),
            post(
                move |State(state): State<AppState>, request: Request| async move {
                    review(route, &state, request).await
                },
            ),
        );
    }
    router
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), request_edges))
        .with_state(state)
}

/// Bounds the request in time, body upload included (a client trickling its
/// body cannot hold a connection for long), and closes HTTP/1 connections
/// after their answer once shutdown has begun, so clients reconnect to
/// another replica instead of racing the listener's close.
async fn request_edges(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let budget = request_budget(request.uri().query(), state.request_timeout);
    let route = Route::ALL
        .into_iter()
        .find(|route| route.path() == request.uri().path());
    let http1 = request.version() <= Version::HTTP_11;
    let (mut response, timed_out) = match tokio::time::timeout(budget, next.run(request)).await {
        Ok(response) => (response, false),
        Err(_) => {
            let elapsed = started.elapsed();
            let log = ReviewLog {
                outcome: Outcome::Timeout,
                ..ReviewLog::default()
            };
            if let Some(route) = route {
                state.metrics.record(route, &log, elapsed);
                log_review(route, StatusCode::REQUEST_TIMEOUT.as_u16(), &log, elapsed);
            }
            let response = text(
                StatusCode::REQUEST_TIMEOUT,
                "request not completed in time: the body must arrive within the request timeout\n",
            );
            (response, true)
        }
    };
    if http1 && (timed_out || state.readiness.state() == ReadyState::ShuttingDown) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// The time one request may take: the API server's `?timeout=` (Go duration
/// syntax, e.g. `10s`) when it is shorter than the server's bound.
fn request_budget(query: Option<&str>, max: Duration) -> Duration {
    query
        .into_iter()
        .flat_map(|query| query.split('&'))
        .find_map(|pair| pair.strip_prefix("timeout="))
        .and_then(duration::parse_go)
        .filter(|asked| !asked.is_zero())
        .map_or(max, |asked| asked.min(max))
}

/// The ops routes: `/healthz`, `/readyz`, `/metrics`.
pub fn ops_app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .fallback(not_found)
        .with_state(state)
}

async fn not_found() -> Response {
    text(StatusCode::NOT_FOUND, "not found\n")
}

async fn readyz(State(state): State<AppState>) -> Response {
    match state.readiness.state() {
        ReadyState::Ready => text(StatusCode::OK, "ready\n"),
        ReadyState::Starting => text(StatusCode::SERVICE_UNAVAILABLE, "starting\n"),
        ReadyState::ShuttingDown => text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n"),
    }
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        state.metrics.encode(),
    )
        .into_response()
}

fn text(status: StatusCode, body: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

async fn review(route: Route, state: &AppState, request: Request) -> Response {
    let started = Instant::now();
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    let budget = request_budget(request.uri().query(), state.request_timeout);
    let body =
        body_limit::read_within(request.into_body(), declared, state.max_body_bytes, budget).await;
    let reply = match body {
        Ok(body) => {
            let policy = state.policy.clone();
            let size = body.len();
            state
                .evaluation
                .run(size, move || answer_or_500(route, &body, &policy))
                .await
                .unwrap_or_else(|_| internal_error())
        }
        Err(refused) => rejected(&refused),
    };
    let elapsed = started.elapsed();
    state.metrics.record(route, &reply.log, elapsed);
    log_review(route, reply.status, &reply.log, elapsed);

    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let content_type = if status == StatusCode::OK {
        "application/json"
    } else {
        "text/plain; charset=utf-8"
    };
    (status, [(header::CONTENT_TYPE, content_type)], reply.body).into_response()
}

/// A panic on one odd object must cost that review a 500, not the connection
/// (and the other requests multiplexed on it) a reset.
fn answer_or_500(route: Route, body: &[u8], policy: &PolicyConfig) -> ReviewReply {
    std::panic::catch_unwind(AssertUnwindSafe(|| admission::answer(route, body, policy)))
        .unwrap_or_else(|_| internal_error())
}

fn internal_error() -> ReviewReply {
    ReviewReply {
        status: 500,
        body: b"internal error while reviewing the object\n".to_vec(),
        log: ReviewLog {
            outcome: Outcome::Error,
            ..ReviewLog::default()
        },
    }
}

/// A body that could not be read: too large, or the client went away.
fn rejected(refused: &BodyError) -> ReviewReply {
    let (status, message) = refused.status_and_message();
    let outcome = match refused {
        BodyError::TooLarge { .. } => Outcome::TooLarge,
        BodyError::Unreadable(_) => Outcome::BadRequest,
    };
    ReviewReply {
        status,
        body: message.into_bytes(),
        log: ReviewLog {
            outcome,
            ..ReviewLog::default()
        },
    }
}

/// One line per review. Strings from the request are passed as `&str` so the
/// text format quotes and escapes them: a crafted name cannot forge a line.
fn log_review(route: Route, status: u16, log: &ReviewLog, elapsed: Duration) {
    let rules = log.rules.join(",");
    let duration_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    macro_rules! review_event {
        ($level:expr) => {
            tracing::event!(
                $level,
                route = route.name(),
                status,
                uid = log.uid.as_str(),
                kind = log.kind.as_str(),
                namespace = log.namespace.as_str(),
                name = log.name.as_str(),
                operation = log.operation.as_str(),
                outcome = log.outcome.label(),
                rules = rules.as_str(),
                warnings = log.warnings,
                duration_us,
                "admission review"
            )
        };
    }
    match status {
        200..=399 => review_event!(Level::INFO),
        400..=499 => review_event!(Level::WARN),
        _ => review_event!(Level::ERROR),
    }
}

/// Connection builders, one per protocol: the protocol comes from ALPN, so no
/// bytes are sniffed and the HTTP/1 header deadline starts with the
/// connection.
struct Builders {
    http1: auto::Builder<TokioExecutor>,
    http2: auto::Builder<TokioExecutor>,
}

impl Builders {
    fn new(header_read: Duration) -> Arc<Self> {
        let base = || {
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .keep_alive(true)
                .header_read_timeout(header_read);
            // Pings find dead peers on otherwise idle h2 connections.
            builder
                .http2()
                .timer(TokioTimer::new())
                .keep_alive_interval(Some(Duration::from_secs(30)))
                .keep_alive_timeout(Duration::from_secs(10));
            builder
        };
        Arc::new(Builders {
            http1: base().http1_only(),
            http2: base().http2_only(),
        })
    }
}

#[derive(Clone)]
enum Transport {
    Plain,
    Tls {
        acceptor: TlsAcceptor,
        handshake_timeout: Duration,
        metrics: Arc<Metrics>,
    },
}

/// Serves `app` over TLS on an already-bound listener until `stop` completes,
/// then closes the listener and drains open connections for at most
/// `timeouts.drain`; connections still open after that are dropped.
pub async fn serve_tls(
    listener: TcpListener,
    tls_config: Arc<ServerConfig>,
    app: Router,
    metrics: Arc<Metrics>,
    timeouts: Timeouts,
    stop: impl Future<Output = ()>,
) {
    let transport = Transport::Tls {
        acceptor: TlsAcceptor::from(tls_config),
        handshake_timeout: timeouts.tls_handshake,
        metrics,
    };
    accept_loop(
        "webhook",
        listener,
        transport,
        app,
        Limits {
            header_read: timeouts.header_read,
            idle: timeouts.idle,
            drain: timeouts.drain,
            max_connections: timeouts.max_connections,
        },
        stop,
    )
    .await;
}

/// Serves `app` over plain HTTP/1.1 (probes and scrapes) until `stop`
/// completes, then drains within `drain`.
pub async fn serve_plain(
    listener: TcpListener,
    app: Router,
    header_read: Duration,
    drain: Duration,
    stop: impl Future<Output = ()>,
) {
    accept_loop(
        "ops",
        listener,
        Transport::Plain,
        app,
        Limits {
            header_read,
            idle: header_read,
            drain,
            max_connections: OPS_MAX_CONNECTIONS,
        },
        stop,
    )
    .await;
}

/// What one accept loop enforces.
struct Limits {
    header_read: Duration,
    idle: Duration,
    drain: Duration,
    max_connections: usize,
}

async fn accept_loop(
    label: &'static str,
    listener: TcpListener,
    transport: Transport,
    app: Router,
    limits: Limits,
    stop: impl Future<Output = ()>,
) {
    let Limits {
        header_read,
        idle,
        drain,
        max_connections,
    } = limits;
    let builders = Builders::new(header_read);
    let bounds = IdleBounds {
        first_request: header_read,
        idle,
    };
    let registry = Arc::new(Registry::default());
    let (draining, drain_signal) = watch::channel(false);
    let mut connections = JoinSet::new();
    // A permit per connection. Past the cap, one accepted connection waits
    // for a slot (the idlest open connection is asked to make room) and the
    // others wait in the kernel's listen backlog instead of each costing a
    // task, a TLS state and buffers.
    let slots = Arc::new(Semaphore::new(max_connections.max(1)));
    let mut cap_warned: Option<Instant> = None;
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    warn!(listener = label, error = %err, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    continue;
                }
            },
        };
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                if cap_warned.is_none_or(|at| at.elapsed() >= CAP_WARNING_INTERVAL) {
                    warn!(
                        listener = label,
                        max_connections,
                        "connection cap reached; closing the idlest connections to make room"
                    );
                    cap_warned = Some(Instant::now());
                }
                let room = async {
                    loop {
                        registry.evict_idlest();
                        if let Ok(Ok(slot)) =
                            tokio::time::timeout(EVICTION_RETRY, slots.clone().acquire_owned())
                                .await
                        {
                            return slot;
                        }
                    }
                };
                tokio::select! {
                    biased;
                    () = &mut stop => break,
                    slot = room => slot,
                }
            }
        };
        // Without it, Nagle's algorithm and delayed ACKs stall small
        // responses by ~40 ms.
        if let Err(err) = stream.set_nodelay(true) {
            debug!(listener = label, %peer, error = %err, "cannot set TCP_NODELAY");
        }
        let entry = registry.open();
        let task = connection(
            stream,
            peer,
            transport.clone(),
            builders.clone(),
            app.clone(),
            Watch {
                activity: entry.activity(),
                bounds,
                drain: drain_signal.clone(),
            },
        );
        connections.spawn(async move {
            task.await;
            drop(entry);
            drop(slot);
        });
        while connections.try_join_next().is_some() {}
    }
    drop(listener);

    let open = connections.len();
    if open > 0 {
        info!(
            listener = label,
            connections = open,
            "draining open connections"
        );
    }
    // Connections still handshaking see the signal as soon as they start
    // serving: a watch channel keeps its last value.
    let _ = draining.send(true);
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(drain, drained).await.is_err() {
        warn!(
            listener = label,
            drain_ms = u64::try_from(drain.as_millis()).unwrap_or(u64::MAX),
            "connections still open after the drain bound; closing them"
        );
    }
    // Dropping the set aborts whatever is left.
    connections.shutdown().await;
}

/// How long a connection may go without a request.
#[derive(Debug, Clone, Copy)]
struct IdleBounds {
    first_request: Duration,
    idle: Duration,
}

/// What a connection watches besides its own bytes: its idleness, and the
/// listener's drain.
struct Watch {
    activity: Arc<Activity>,
    bounds: IdleBounds,
    drain: watch::Receiver<bool>,
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    transport: Transport,
    builders: Arc<Builders>,
    app: Router,
    watch: Watch,
) {
    match transport {
        Transport::Plain => serve_http(&builders.http1, stream, peer, app, watch).await,
        Transport::Tls {
            acceptor,
            handshake_timeout,
            metrics,
        } => {
            let _open = metrics.connection_opened();
            let tls = match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(err)) if err.kind() == io::ErrorKind::UnexpectedEof => {
                    // Closed before a ClientHello: TCP probes and port scans.
                    debug!(%peer, "connection closed before the TLS handshake");
                    return;
                }
                Ok(Err(err)) => {
                    metrics.record_tls_handshake_failure();
                    warn!(%peer, error = %err, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    metrics.record_tls_handshake_failure();
                    warn!(%peer, timeout_ms = u64::try_from(handshake_timeout.as_millis()).unwrap_or(u64::MAX), "TLS handshake timed out");
                    return;
                }
            };
            let builder = if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
                &builders.http2
            } else {
                &builders.http1
            };
            serve_http(builder, tls, peer, app, watch).await;
        }
    }
}

async fn serve_http<I>(
    builder: &auto::Builder<TokioExecutor>,
    io: I,
    peer: SocketAddr,
    app: Router,
    watch: Watch,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Watch {
        activity,
        bounds,
        mut drain,
    } = watch;
    let busy_while_answering = activity.clone();
    let service = tower::ServiceExt::<hyper::Request<hyper::body::Incoming>>::map_future(
        app,
        move |answer| {
            let busy = busy_while_answering.begin();
            async move {
                let response = answer.await;
                drop(busy);
                response
            }
        },
    );
    let conn = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
    tokio::pin!(conn);
    let idle_close = activity.idle_close(bounds.first_request, bounds.idle);
    let drain_started = async move {
        // Err only when the listener is gone: drain then too.
        let _ = drain.wait_for(|draining| *draining).await;
    };
    let result = tokio::select! {
        result = conn.as_mut() => result,
        reason = idle_close => {
            debug!(%peer, ?reason, "closing an idle connection");
            // HTTP/2 gets a GOAWAY; a connection still before its preface is
            // dropped at once.
            conn.as_mut().graceful_shutdown();
            tokio::time::timeout(IDLE_CLOSE_GRACE, conn.as_mut())
                .await
                .unwrap_or(Ok(()))
        }
        () = drain_started => {
            conn.as_mut().graceful_shutdown();
            conn.as_mut().await
        }
    };
    if let Err(err) = result {
        // Header timeouts, resets and malformed requests end up here.
        debug!(%peer, error = %err, "connection ended with an error");
    }
}

/// Everything [`run`] needs besides the listeners.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub tls_config: Arc<ServerConfig>,
    pub state: AppState,
    pub timeouts: Timeouts,
}

/// Runs both servers on already-bound listeners until `shutdown` completes,
/// then fails readiness, waits `shutdown_delay`, and drains.
pub async fn run(
    tls_listener: TcpListener,
    ops_listener: TcpListener,
    options: RunOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let RunOptions {
        tls_config,
        state,
        timeouts,
    } = options;
    let tls_addr = tls_listener
        .local_addr()
        .map_err(|source| ServerError::LocalAddr {
            what: "webhook",
            source,
        })?;
    let ops_addr = ops_listener
        .local_addr()
        .map_err(|source| ServerError::LocalAddr {
            what: "ops",
            source,
        })?;

    let (stop_tls, tls_stopped) = oneshot::channel::<()>();
    let (stop_ops, ops_stopped) = oneshot::channel::<()>();
    let tls_task = tokio::spawn(serve_tls(
        tls_listener,
        tls_config,
        app(state.clone()),
        state.metrics.clone(),
        timeouts.clone(),
        async move {
            let _ = tls_stopped.await;
        },
    ));
    let ops_task = tokio::spawn(serve_plain(
        ops_listener,
        ops_app(state.clone()),
        timeouts.header_read,
        OPS_DRAIN,
        async move {
            let _ = ops_stopped.await;
        },
    ));
    state.readiness.mark_ready();
    info!(
        max_body_bytes = state.max_body_bytes,
        audit_only = state.policy.audit_only,
        "listening on https://{tls_addr}"
    );
    info!("ops on http://{ops_addr} (/healthz, /readyz, /metrics)");

    shutdown.await;
    state.readiness.mark_shutting_down();
    info!(
        shutdown_delay_ms = millis(timeouts.shutdown_delay),
        "shutting down: readiness now fails; still serving during the shutdown delay"
    );
    tokio::time::sleep(timeouts.shutdown_delay).await;
    info!(
        drain_ms = millis(timeouts.drain),
        "no longer accepting connections; draining"
    );
    let _ = stop_tls.send(());
    let tls_result = tls_task.await;
    let _ = stop_ops.send(());
    let ops_result = ops_task.await;
    tls_result.map_err(|err| ServerError::Task {
        what: "webhook",
        reason: err.to_string(),
    })?;
    ops_result.map_err(|err| ServerError::Task {
        what: "ops",
        reason: err.to_string(),
    })?;
    info!("shutdown complete");
    Ok(())
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Binds both listeners and runs until SIGTERM or SIGINT. A second signal
/// returns at once without waiting for the drain.
pub async fn serve(
    listen: SocketAddr,
    ops_listen: SocketAddr,
    options: RunOptions,
) -> Result<(), ServerError> {
    // Installed before binding so a signal during start-up is not lost.
    let mut signals = Signals::install()?;
    let tls_listener = TcpListener::bind(listen)
        .await
        .map_err(|source| ServerError::Bind {
            what: "webhook (--listen)",
            addr: listen,
            source,
        })?;
    let ops_listener = TcpListener::bind(ops_listen)
        .await
        .map_err(|source| ServerError::Bind {
            what: "ops endpoints (--ops-listen)",
            addr: ops_listen,
            source,
        })?;

    let (begin_shutdown, shutdown_requested) = oneshot::channel::<()>();
    let server = run(tls_listener, ops_listener, options, async move {
        let _ = shutdown_requested.await;
    });
    tokio::pin!(server);
    let signal = tokio::select! {
        result = &mut server => return result,
        signal = signals.next() => signal,
    };
    info!(signal, "received signal");
    let _ = begin_shutdown.send(());
    tokio::select! {
        result = &mut server => result,
        signal = signals.next() => {
            warn!(signal, "second signal: exiting without waiting for the drain");
            Ok(())
        }
    }
}

#[cfg(unix)]
struct Signals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn install() -> Result<Self, ServerError> {
        use tokio::signal::unix::{signal, SignalKind};
        let terminate = signal(SignalKind::terminate()).map_err(|source| ServerError::Signal {
            signal: "SIGTERM",
            source,
        })?;
        let interrupt = signal(SignalKind::interrupt()).map_err(|source| ServerError::Signal {
            signal: "SIGINT",
            source,
        })?;
        Ok(Signals {
            terminate,
            interrupt,
        })
    }

    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
        }
    }
}

#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn install() -> Result<Self, ServerError> {
        Ok(Signals)
    }

    async fn next(&mut self) -> &'static str {
        match tokio::signal::ctrl_c().await {
            Ok(()) => "ctrl-c",
            Err(_) => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_server_timeout_lowers_the_request_budget_but_never_raises_it() {
        let max = Duration::from_secs(30);
        assert_eq!(request_budget(None, max), max);
        assert_eq!(
            request_budget(Some("timeout=10s"), max),
            Duration::from_secs(10)
        );
        assert_eq!(
            request_budget(Some("dryRun=true&timeout=2s"), max),
            Duration::from_secs(2)
        );
        assert_eq!(request_budget(Some("timeout=5m"), max), max);
        assert_eq!(request_budget(Some("timeout=0s"), max), max);
        assert_eq!(request_budget(Some("timeout=soon"), max), max);
    }
}
