//! The edges of every request on the admission listener: its time bound
//! (the server's own, lowered by the API server's `?timeout=`), and
//! `Connection: close` on HTTP/1 answers once shutting down.

use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode, Version};
use axum::middleware::Next;
use axum::response::Response;

use super::lifecycle::ReadyState;
use super::request_log::log_review;
use super::routes::text;
use super::AppState;
use crate::admission::{ReviewLog, Route};
use crate::duration;
use crate::outcome::Outcome;

/// Bounds the request in time, body upload included (a client trickling its
/// body cannot hold a connection for long), and closes HTTP/1 connections
/// after their answer once shutdown has begun, so clients reconnect to
/// another replica instead of racing the listener's close.
pub(super) async fn request_edges(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
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
    // A 408 from a body too slow leaves the rest of that body unread: the
    // connection cannot carry another request.
    let timed_out = timed_out || response.status() == StatusCode::REQUEST_TIMEOUT;
    if http1 && (timed_out || state.readiness.state() == ReadyState::ShuttingDown) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// The time one request may take: the API server's `?timeout=` (Go duration
/// syntax, e.g. `10s`) when it is shorter than the server's bound.
pub(super) fn request_budget(query: Option<&str>, max: Duration) -> Duration {
    query
        .into_iter()
        .flat_map(|query| query.split('&'))
        .find_map(|pair| pair.strip_prefix("timeout="))
        .and_then(duration::parse_go)
        .filter(|asked| !asked.is_zero())
        .map_or(max, |asked| asked.min(max))
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
