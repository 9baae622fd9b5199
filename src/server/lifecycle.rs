//! Where the server is in its life: readiness, start-up, the signals that
//! end it, the shutdown delay and the drain.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tracing::{info, warn};

use super::accept::{serve_plain, serve_tls};
use super::routes::{app, ops_app};
use super::{RunOptions, ServerError};

/// How long the ops server may take to finish its last probe or scrape.
const OPS_DRAIN: Duration = Duration::from_secs(1);

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
    let tls_addr = local_addr(&tls_listener, "webhook")?;
    let ops_addr = local_addr(&ops_listener, "ops")?;

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
        max_buffered_body_bytes = state.body_budget.total_bytes(),
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
    let tls_listener = bind(listen, "webhook (--listen)").await?;
    let ops_listener = bind(ops_listen, "ops endpoints (--ops-listen)").await?;

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

fn local_addr(listener: &TcpListener, what: &'static str) -> Result<SocketAddr, ServerError> {
    listener
        .local_addr()
        .map_err(|source| ServerError::LocalAddr { what, source })
}

async fn bind(addr: SocketAddr, what: &'static str) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { what, addr, source })
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
