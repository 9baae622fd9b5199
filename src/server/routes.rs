//! The routes: `POST` per admission route, one review from its body to its
//! answer; `/healthz`, `/readyz` and `/metrics` on the ops listener.

use std::panic::AssertUnwindSafe;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use super::lifecycle::ReadyState;
use super::request_log::log_review;
use super::timeout::{request_budget, request_edges};
use super::AppState;
use crate::admission::{self, PolicyConfig, ReviewLog, ReviewReply, Route};
use crate::body_limit::{self, BodyError};
use crate::metrics;
use crate::outcome::Outcome;

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

pub(super) fn text(status: StatusCode, body: &'static str) -> Response {
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
    let rules = state.body_rules(budget);
    let body = body_limit::read_within(request.into_body(), declared, &rules, budget).await;
    let reply = match body {
        Ok(body) => {
            let policy = state.policy.clone();
            let size = body.bytes.len();
            // The body keeps its share of the budget until the answer is built.
            state
                .evaluation
                .run(size, move || answer_or_500(route, &body.bytes, &policy))
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
    let mut response = (status, [(header::CONTENT_TYPE, content_type)], reply.body).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            header::HeaderValue::from(body_limit::RETRY_AFTER_SECONDS),
        );
    }
    response
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

/// A body that could not be read: too large, too slow, no room in the
/// budget, or the client went away.
fn rejected(refused: &BodyError) -> ReviewReply {
    let (status, message) = refused.status_and_message();
    let outcome = match refused {
        BodyError::TooLarge { .. } => Outcome::TooLarge,
        BodyError::TooSlow { .. } => Outcome::Timeout,
        BodyError::Busy { .. } => Outcome::Busy,
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
