//! Reading a review body within the size limit.
//!
//! An over-limit body is refused with 413 as soon as that is known: from
//! `Content-Length` before a byte of the body is read, else when the limit is
//! crossed. What the client is still sending is then read and discarded in
//! the background, within a bound: a client that writes its whole body before
//! reading (as many HTTP clients do) would otherwise have its connection reset
//! by the kernel under unread data, and an HTTP/2 client would see its stream
//! reset, instead of either reading the 413.

use std::time::Duration;

use axum::body::{Body, Bytes};
use http_body_util::BodyExt;

/// Most bytes read and discarded after refusing a body; a client sending more
/// has its connection (HTTP/1) or stream (HTTP/2) reset.
pub const DISCARD_AT_MOST_BYTES: u64 = 64 * 1024 * 1024;

/// Why a body was not read.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    /// Larger than the limit (declared or sent).
    TooLarge { limit: usize },
    /// The client went away or sent a malformed body.
    Unreadable(String),
}

impl BodyError {
    /// The HTTP status and the plain-text message of the refusal.
    pub fn status_and_message(&self) -> (u16, String) {
        match self {
            BodyError::TooLarge { limit } => (
                413,
                format!(
                    "request body larger than the limit of {limit} bytes: raise --max-body-bytes if \
                     objects this large are expected\n"
                ),
            ),
            BodyError::Unreadable(reason) => (400, format!("cannot read the request body: {reason}\n")),
        }
    }
}

/// Reads `body` whole when it fits in `limit` bytes. `declared` is the
/// request's `Content-Length`. When refused as too large, the rest of the
/// body is discarded in the background for at most `discard_for`.
pub async fn read_within(
    body: Body,
    declared: Option<u64>,
    limit: usize,
    discard_for: Duration,
) -> Result<Bytes, BodyError> {
    let limit_bytes = u64::try_from(limit).unwrap_or(u64::MAX);
    if declared.is_some_and(|length| length > limit_bytes) {
        if declared.is_some_and(|length| length <= DISCARD_AT_MOST_BYTES) {
            discard_in_background(body, discard_for);
        }
        return Err(BodyError::TooLarge { limit });
    }
    let capacity = declared.map_or(0, |length| usize::try_from(length).unwrap_or(limit));
    let mut received = Vec::with_capacity(capacity.min(limit));
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|err| BodyError::Unreadable(err.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if received.len().saturating_add(data.len()) > limit {
            discard_in_background(body, discard_for);
            return Err(BodyError::TooLarge { limit });
        }
        received.extend_from_slice(&data);
    }
    Ok(Bytes::from(received))
}

/// Reads and drops what is left of `body`, up to [`DISCARD_AT_MOST_BYTES`]
/// and `within`, so the client's upload completes and it reads the answer.
fn discard_in_background(mut body: Body, within: Duration) {
    tokio::spawn(async move {
        let drain = async {
            let mut discarded: u64 = 0;
            while let Some(Ok(frame)) = body.frame().await {
                if let Ok(data) = frame.into_data() {
                    discarded = discarded.saturating_add(data.len() as u64);
                    if discarded > DISCARD_AT_MOST_BYTES {
                        break;
                    }
                }
            }
        };
        let _ = tokio::time::timeout(within, drain).await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(5);

    /// A body whose bytes never come.
    struct Endless;

    impl axum::body::HttpBody for Endless {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
            std::task::Poll::Pending
        }
    }

    #[tokio::test]
    async fn a_body_within_the_limit_is_read_whole() {
        let body = read_within(Body::from("0123456789"), Some(10), 10, LONG).await;
        assert_eq!(body, Ok(Bytes::from_static(b"0123456789")));
        let undeclared = read_within(Body::from("0123456789"), None, 10, LONG).await;
        assert_eq!(undeclared, Ok(Bytes::from_static(b"0123456789")));
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_refused_before_reading() {
        // The body never ends: refusing must not wait for it.
        let refused =
            tokio::time::timeout(LONG, read_within(Body::new(Endless), Some(11), 10, LONG)).await;
        assert_eq!(refused, Ok(Err(BodyError::TooLarge { limit: 10 })));
    }

    #[tokio::test]
    async fn an_undeclared_body_is_refused_once_it_crosses_the_limit() {
        let refused = read_within(Body::from("0123456789a"), None, 10, LONG).await;
        assert_eq!(refused, Err(BodyError::TooLarge { limit: 10 }));
    }
}
