//! The webhook's servers in-process: `server::run` on 127.0.0.1 port 0 with
//! a fresh self-signed certificate, stopped on request.

use std::net::SocketAddr;
use std::time::Duration;

use rollguard::server::{self, AppState, RunOptions, ServerError, Timeouts};
use rollguard::tls;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::http::wait_ready;
use super::WAIT_BOUND;

pub struct TestServer {
    pub https: SocketAddr,
    pub ops: SocketAddr,
    /// The serving certificate, for clients to trust.
    pub cert_pem: String,
    pub state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ServerError>>,
}

/// No shutdown delay and a short drain: tests stop at once.
pub fn quick_timeouts() -> Timeouts {
    Timeouts {
        shutdown_delay: Duration::ZERO,
        drain: Duration::from_secs(2),
        ..Timeouts::default()
    }
}

/// Starts both servers and waits until they are ready.
pub async fn start(state: AppState, timeouts: Timeouts) -> TestServer {
    let generated = tls::self_signed().expect("self-signed certificate");
    let tls_config =
        tls::server_config(tls::CertResolver::new(generated.certified_key)).expect("TLS config");
    let tls_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let ops_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let https = tls_listener.local_addr().expect("address");
    let ops = ops_listener.local_addr().expect("address");
    let (shutdown, shutdown_requested) = oneshot::channel::<()>();
    let options = RunOptions {
        tls_config,
        state: state.clone(),
        timeouts,
    };
    let task = tokio::spawn(server::run(
        tls_listener,
        ops_listener,
        options,
        async move {
            let _ = shutdown_requested.await;
        },
    ));
    wait_ready(ops).await;
    TestServer {
        https,
        ops,
        cert_pem: generated.cert_pem,
        state,
        shutdown: Some(shutdown),
        task,
    }
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.https.port())
    }

    pub fn ops_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.ops)
    }

    pub fn request_shutdown(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }

    /// Requests the shutdown and waits for `server::run` to return.
    pub async fn stop(mut self) -> Result<(), ServerError> {
        self.request_shutdown();
        tokio::time::timeout(WAIT_BOUND, &mut self.task)
            .await
            .expect("server did not stop in time")
            .expect("server task panicked")
    }
}
