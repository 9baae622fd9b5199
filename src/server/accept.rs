//! Accepting connections and serving each: the connection cap (one
//! connection in its handshake or idle makes room, see `connections`),
//! TCP_NODELAY, the TLS handshake, HTTP/1 or HTTP/2 by ALPN, idle
//! connections closed, and the drain when the listener stops.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use super::Timeouts;
use crate::connections::{Activity, Registry};
use crate::metrics::Metrics;

/// How long a connection closed for idleness, after at least one request,
/// may take to say goodbye (an HTTP/2 GOAWAY read by its client). One that
/// never started a request is dropped at once.
const IDLE_CLOSE_GRACE: Duration = Duration::from_secs(1);

/// While the cap is reached and every connection is busy, how often to look
/// again for one that has become idle.
const EVICTION_RETRY: Duration = Duration::from_millis(100);

/// HTTP/2 flow-control windows: what a client may send before the server
/// reads it, per stream and per connection (the connection's is hyper's
/// default). 128 KiB per stream still carries 128 MB/s over a round trip of
/// a millisecond.
const H2_STREAM_WINDOW_BYTES: u32 = 128 * 1024;
const H2_CONNECTION_WINDOW_BYTES: u32 = 1024 * 1024;

/// Cap on concurrent connections to the ops listener: probes and scrapes.
const OPS_MAX_CONNECTIONS: usize = 64;

/// At most one "connection cap reached" warning per interval.
const CAP_WARNING_INTERVAL: Duration = Duration::from_secs(60);

/// Pause after a failed `accept` (for example out of file descriptors), so
/// the loop does not spin while the condition lasts.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

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
            // Pings find dead peers on otherwise idle h2 connections. A
            // stream waiting for room in the body budget leaves its window
            // unread: an eighth of the connection's, so it takes eight such
            // streams, not one, to hold back the others on the connection
            // (hyper's default gives each stream the whole window).
            builder
                .http2()
                .timer(TokioTimer::new())
                .initial_stream_window_size(H2_STREAM_WINDOW_BYTES)
                .initial_connection_window_size(H2_CONNECTION_WINDOW_BYTES)
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
    // for a slot (an open connection is evicted and gives its slot back at
    // once) and the others wait in the kernel's listen backlog instead of
    // each costing a task, a TLS state and buffers.
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
                        "connection cap reached; closing idle connections to make room"
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
        let entry = registry.open(Some(slot));
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
        Transport::Plain => {
            watch.activity.handshake_done();
            serve_http(&builders.http1, stream, peer, app, watch).await;
        }
        Transport::Tls {
            acceptor,
            handshake_timeout,
            metrics,
        } => {
            let _open = metrics.connection_opened();
            let handshake = tokio::time::timeout(handshake_timeout, acceptor.accept(stream));
            let handshake = tokio::select! {
                handshake = handshake => handshake,
                () = watch.activity.closing_requested() => {
                    // A silent TCP connection (or a slow handshake) at the
                    // cap: the first to make room.
                    debug!(%peer, "closing a connection still in its TLS handshake to make room");
                    return;
                }
            };
            let tls = match handshake {
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
            watch.activity.handshake_done();
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
    let idle_close = activity
        .clone()
        .idle_close(bounds.first_request, bounds.idle);
    let drain_started = async move {
        // Err only when the listener is gone: drain then too.
        let _ = drain.wait_for(|draining| *draining).await;
    };
    let result = tokio::select! {
        result = conn.as_mut() => result,
        reason = idle_close => {
            debug!(%peer, ?reason, "closing an idle connection");
            if !activity.ever_used() {
                // Nothing to say goodbye to: dropped at once.
                return;
            }
            // HTTP/2 gets a GOAWAY. A request that began as the eviction
            // was decided (a race) is answered, within its own time bound.
            conn.as_mut().graceful_shutdown();
            if activity.is_idle() {
                tokio::time::timeout(IDLE_CLOSE_GRACE, conn.as_mut())
                    .await
                    .unwrap_or(Ok(()))
            } else {
                conn.as_mut().await
            }
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
