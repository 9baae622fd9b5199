//! Loopback helpers: a stand-in HTTP server on port 0, and an address
//! nothing listens on.

use std::net::SocketAddr;

use tokio::task::JoinHandle;

/// Serves `app` over plain HTTP on 127.0.0.1 port 0: its `http://` URL and
/// the serving task.
pub async fn serve_http(app: axum::Router) -> (String, JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve");
    });
    (url, task)
}

/// A loopback address that was just free and is no longer listened on:
/// connecting to it is refused.
pub fn closed_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address")
}
