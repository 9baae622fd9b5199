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
//! `max_body_bytes` each and `body_budget` together, at most
//! `max_connections` connections at once.
//!
//! Where each part lives:
//! - `routes`: the admission and ops routes, one review from body to answer;
//! - `timeout`: the time bound of one request (`?timeout=`), and
//!   `Connection: close` once shutting down;
//! - `request_log`: the log line of each review;
//! - `accept`: the accept loop (connection cap, TCP_NODELAY, drain) and each
//!   connection (TLS handshake, HTTP/1 or HTTP/2 by ALPN, idle close);
//! - `lifecycle`: readiness, start-up, signals, shutdown delay and drain.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use thiserror::Error;

use crate::admission::PolicyConfig;
use crate::body_limit::BodyRules;
use crate::evaluation_pool::EvaluationPool;
use crate::metrics::Metrics;

mod accept;
mod lifecycle;
mod request_log;
mod routes;
mod timeout;

pub use crate::body_limit::{BodyBudget, BodyPace};
pub use accept::{serve_plain, serve_tls};
pub use lifecycle::{run, serve, Readiness, ReadyState};
pub use routes::{app, ops_app};

/// Largest admission request body accepted. The kube-apiserver caps objects
/// near 3 MiB (etcd's limit plus overhead) and a review carries two of them.
pub const DEFAULT_MAX_BODY_BYTES: usize = 7 * 1024 * 1024;

/// Default bound on the bytes of all request bodies buffered at once. Peak
/// memory is about the baseline (~15 MiB), plus the buffered bodies, plus
/// the evaluation of the one large review running at a time (a few times
/// its body): 16 MiB (two reviews at the body limit, or a few hundred
/// typical ones) keeps the shipped 64Mi limit with room.
pub const DEFAULT_MAX_BUFFERED_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Longest a request waits for room in the body budget before its 503: short
/// against the API server's `timeoutSeconds` (3 in the shipped manifests),
/// long enough for a review ahead of it to finish.
pub const BODY_BUDGET_WAIT: Duration = Duration::from_secs(1);

/// Default bound on a TLS handshake: a client on the cluster network takes
/// milliseconds, and the API server's whole request is bounded by its
/// `timeoutSeconds` (3 in the shipped manifests, 30 at most).
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Default upper bound on one admission request, body upload included. The
/// API server's own `timeoutSeconds` is at most 30.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Default bound on a connection without a request in flight. Longer than
/// the idle timeout of Go's HTTP client (90 s), the API server's, so that
/// the client, which knows when it will send next, closes first.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// Default cap on concurrent connections to the admission listener.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

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
    /// A TLS handshake longer than this drops the connection; at the cap,
    /// connections still in their handshake are evicted first.
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
            tls_handshake: DEFAULT_TLS_HANDSHAKE_TIMEOUT,
            header_read: Duration::from_secs(10),
            idle: DEFAULT_IDLE_TIMEOUT,
            shutdown_delay: Duration::from_secs(5),
            drain: Duration::from_secs(10),
            max_connections: DEFAULT_MAX_CONNECTIONS,
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
    /// What all buffered bodies may hold together.
    pub body_budget: BodyBudget,
    /// The pace a body must keep.
    pub body_pace: BodyPace,
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
            body_budget: BodyBudget::new(DEFAULT_MAX_BUFFERED_BODY_BYTES),
            body_pace: BodyPace::default(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            evaluation: EvaluationPool::for_this_machine(),
        }
    }

    /// The largest body accepted; the body budget is raised to hold one
    /// such body when it is smaller.
    pub fn with_max_body_bytes(mut self, max_body_bytes: usize) -> Self {
        self.max_body_bytes = max_body_bytes;
        if self.body_budget.total_bytes() < max_body_bytes {
            self.body_budget = BodyBudget::new(max_body_bytes);
        }
        self
    }

    /// The bytes all buffered request bodies may hold together; a budget
    /// smaller than one body at the limit is raised to it.
    pub fn with_max_buffered_body_bytes(mut self, bytes: usize) -> Self {
        self.body_budget = BodyBudget::new(bytes.max(self.max_body_bytes));
        self
    }

    pub fn with_body_pace(mut self, pace: BodyPace) -> Self {
        self.body_pace = pace;
        self
    }

    /// What reading one body enforces, waiting for the budget at most `wait`.
    pub(crate) fn body_rules(&self, wait: Duration) -> BodyRules {
        BodyRules {
            limit: self.max_body_bytes,
            pace: self.body_pace,
            budget: self.body_budget.clone(),
            budget_wait: wait.min(BODY_BUDGET_WAIT),
        }
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

/// Everything [`run`] needs besides the listeners.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub tls_config: Arc<ServerConfig>,
    pub state: AppState,
    pub timeouts: Timeouts,
}
