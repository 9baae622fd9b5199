//! HTTP/1.1 by hand: what a test needs to see exactly what the server
//! writes, or to find out when it closes a connection.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::WAIT_BOUND;

/// Reads one HTTP/1.1 response with a Content-Length body from `stream`:
/// status, lower-cased head, body.
pub async fn read_response<S: AsyncRead + Unpin>(stream: &mut S) -> (u16, String, Vec<u8>) {
    let mut buffer = Vec::new();
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        let mut chunk = [0u8; 4096];
        let read = stream.read(&mut chunk).await.expect("read response");
        assert!(read > 0, "connection closed before a full response head");
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("status code");
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse().ok())
        .expect("content-length");
    let mut body = buffer[head_end..].to_vec();
    while body.len() < length {
        let mut chunk = [0u8; 4096];
        let read = stream.read(&mut chunk).await.expect("read body");
        assert!(read > 0, "connection closed mid-body");
        body.extend_from_slice(&chunk[..read]);
    }
    (status, head, body)
}

/// Whether the peer closes `stream` (EOF or reset) within `bound`; what it
/// sends before (an h2 server's SETTINGS) is read and dropped.
pub async fn closed_within<S: AsyncRead + Unpin>(stream: &mut S, bound: Duration) -> bool {
    let mut chunk = [0u8; 1024];
    tokio::time::timeout(bound, async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await
    .is_ok()
}

/// Waits until the peer closes `stream` (EOF or reset), within `bound`.
pub async fn assert_closed_within<S: AsyncRead + Unpin>(stream: &mut S, bound: Duration) {
    assert!(
        closed_within(stream, bound).await,
        "server did not close the connection within {bound:?}"
    );
}

/// Plain-HTTP GET (the ops port): status and body.
pub async fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut tcp = TcpStream::connect(addr).await?;
    tcp.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// Waits until the ops port at `ops` answers `/readyz` with 200.
pub async fn wait_ready(ops: SocketAddr) {
    tokio::time::timeout(WAIT_BOUND, async {
        loop {
            if let Ok((200, _)) = http_get(ops, "/readyz").await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("server never became ready");
}
