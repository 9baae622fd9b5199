//! Reading a review body: within the size limit, at a pace, and within the
//! byte budget shared by every request in flight.
//!
//! An over-limit body is refused with 413 as soon as that is known: from
//! `Content-Length` before a byte of the body is read, else when the limit is
//! crossed. What the client is still sending is then read and discarded in
//! the background, within a bound: a client that writes its whole body before
//! reading (as many HTTP clients do) would otherwise have its connection reset
//! by the kernel under unread data, and an HTTP/2 client would see its stream
//! reset, instead of either reading the 413.
//!
//! A request whose body does not come holds a connection that cannot be
//! evicted (it has a request in flight), so the body must keep a pace: its
//! first [`BodyPace::grace`] is free, after that it must have arrived at
//! [`BodyPace::bytes_per_second`] on average, else 408.
//!
//! Buffered bodies are what a review's memory is mostly made of, so all of
//! them together stay within a [`BodyBudget`]: a body reserves its declared
//! length (one without `Content-Length` reserves as it grows) before it is
//! read, and keeps the reservation until its answer is built. A body that
//! does not fit waits for at most the budget wait, then gets 503 with
//! `Retry-After`: the server is full, not the client at fault.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Most bytes read and discarded after refusing a body; a client sending more
/// has its connection (HTTP/1) or stream (HTTP/2) reset.
pub const DISCARD_AT_MOST_BYTES: u64 = 64 * 1024 * 1024;

/// The budget is counted in KiB (a semaphore takes at most `u32` permits at
/// once); a reservation is rounded up.
const BUDGET_UNIT: usize = 1024;

/// Seconds a client refused for the budget is told to wait (`Retry-After`).
pub const RETRY_AFTER_SECONDS: u64 = 1;

/// Why a body was not read.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    /// Larger than the limit (declared or sent).
    TooLarge { limit: usize },
    /// Slower than the pace: nothing in the grace, or too little after it.
    TooSlow { pace: BodyPace },
    /// The bodies already buffered leave no room for this one in time.
    Busy { budget: usize },
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
            BodyError::TooSlow { pace } => (
                408,
                format!(
                    "request body too slow: it must start within {} ms and then arrive at {} bytes/s \
                     or more\n",
                    pace.grace.as_millis(),
                    pace.bytes_per_second
                ),
            ),
            BodyError::Busy { budget } => (
                503,
                format!(
                    "too many request bodies buffered at once ({budget} bytes in all): retry after \
                     {RETRY_AFTER_SECONDS} s, or raise --max-buffered-body-bytes (and the memory \
                     limit with it)\n"
                ),
            ),
            BodyError::Unreadable(reason) => (400, format!("cannot read the request body: {reason}\n")),
        }
    }
}

/// The pace a body must keep: after `grace`, at least `bytes_per_second` on
/// average since the body was first polled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyPace {
    pub grace: Duration,
    pub bytes_per_second: u64,
}

impl Default for BodyPace {
    /// One second, then 128 KiB/s: a 7 MiB body in under a minute. The API
    /// server, next to the webhook, sends far faster; a body slower than this
    /// would miss its `timeoutSeconds` anyway.
    fn default() -> Self {
        BodyPace {
            grace: Duration::from_secs(1),
            bytes_per_second: 128 * 1024,
        }
    }
}

impl BodyPace {
    /// When the byte after `received` must have arrived, the body having
    /// started at `started`.
    fn next_byte_due(&self, started: Instant, received: usize) -> Instant {
        let rate = self.bytes_per_second.max(1);
        let received = u64::try_from(received).unwrap_or(u64::MAX);
        let allowed = Duration::from_secs(received / rate)
            + Duration::from_nanos((received % rate).saturating_mul(1_000_000_000) / rate);
        // Past what an Instant holds: no deadline the request time would not
        // come to first.
        const FAR: Duration = Duration::from_secs(365 * 24 * 3600);
        started
            .checked_add(self.grace.saturating_add(allowed))
            .unwrap_or(started + FAR)
    }
}

/// The bytes that all buffered request bodies may hold together.
#[derive(Debug, Clone)]
pub struct BodyBudget {
    units: Arc<Semaphore>,
    total_bytes: usize,
}

impl BodyBudget {
    pub fn new(total_bytes: usize) -> Self {
        let units = total_bytes
            .div_ceil(BUDGET_UNIT)
            .clamp(1, Semaphore::MAX_PERMITS);
        BodyBudget {
            units: Arc::new(Semaphore::new(units)),
            total_bytes,
        }
    }

    pub fn total_bytes(&self) -> usize {
        self.total_bytes
    }

    /// Bytes not reserved now (what the tests look at).
    pub fn available_bytes(&self) -> usize {
        self.units.available_permits().saturating_mul(BUDGET_UNIT)
    }

    /// Adds room for `bytes` more to `reservation`, waiting until `deadline`.
    async fn grow(
        &self,
        reservation: &mut Option<OwnedSemaphorePermit>,
        bytes: usize,
        deadline: Instant,
    ) -> Result<(), BodyError> {
        let units = u32::try_from(bytes.div_ceil(BUDGET_UNIT)).unwrap_or(u32::MAX);
        if units == 0 {
            return Ok(());
        }
        let busy = BodyError::Busy {
            budget: self.total_bytes,
        };
        let acquired =
            tokio::time::timeout_at(deadline, self.units.clone().acquire_many_owned(units)).await;
        match acquired {
            Ok(Ok(permit)) => {
                match reservation {
                    Some(held) => held.merge(permit),
                    None => *reservation = Some(permit),
                }
                Ok(())
            }
            _ => Err(busy),
        }
    }
}

/// What [`read_within`] enforces.
#[derive(Debug, Clone)]
pub struct BodyRules {
    /// Largest body accepted.
    pub limit: usize,
    pub pace: BodyPace,
    pub budget: BodyBudget,
    /// Longest wait for room in the budget.
    pub budget_wait: Duration,
}

/// A body read whole, with its share of the budget until it is dropped.
#[derive(Debug)]
pub struct ReadBody {
    pub bytes: Bytes,
    _reserved: Option<OwnedSemaphorePermit>,
}

/// Reads `body` whole when it fits in `rules.limit` bytes, keeps the pace
/// and finds room in the budget. `declared` is the request's
/// `Content-Length`. When refused as too large, the rest of the body is
/// discarded in the background for at most `discard_for`.
pub async fn read_within(
    body: Body,
    declared: Option<u64>,
    rules: &BodyRules,
    discard_for: Duration,
) -> Result<ReadBody, BodyError> {
    let limit = rules.limit;
    let limit_bytes = u64::try_from(limit).unwrap_or(u64::MAX);
    if declared.is_some_and(|length| length > limit_bytes) {
        if declared.is_some_and(|length| length <= DISCARD_AT_MOST_BYTES) {
            discard_in_background(body, discard_for);
        }
        return Err(BodyError::TooLarge { limit });
    }
    let budget_deadline = Instant::now() + rules.budget_wait;
    let declared = declared.map(|length| usize::try_from(length).unwrap_or(limit).min(limit));
    let mut reserved = None;
    if let Some(length) = declared {
        rules
            .budget
            .grow(&mut reserved, length, budget_deadline)
            .await?;
    }
    let mut reserved_bytes = declared.unwrap_or(0);
    let mut received = Vec::with_capacity(declared.unwrap_or(0));
    let mut body = body;
    let started = Instant::now();
    loop {
        let due = rules.pace.next_byte_due(started, received.len());
        let frame = match tokio::time::timeout_at(due, body.frame()).await {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(_) => return Err(BodyError::TooSlow { pace: rules.pace }),
        };
        let frame = frame.map_err(|err| BodyError::Unreadable(err.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let needed = received.len().saturating_add(data.len());
        if needed > limit {
            discard_in_background(body, discard_for);
            return Err(BodyError::TooLarge { limit });
        }
        if needed > reserved_bytes {
            // Undeclared (or longer than declared, which hyper refuses
            // anyway): reserve in doublings, as the buffer grows.
            let target = needed.max(reserved_bytes.saturating_mul(2)).min(limit);
            let deadline = Instant::now() + rules.budget_wait;
            rules
                .budget
                .grow(&mut reserved, target - reserved_bytes, deadline)
                .await?;
            reserved_bytes = target;
        }
        received.extend_from_slice(&data);
    }
    Ok(ReadBody {
        bytes: Bytes::from(received),
        _reserved: reserved,
    })
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

    fn rules(limit: usize, budget: usize) -> BodyRules {
        BodyRules {
            limit,
            pace: BodyPace::default(),
            budget: BodyBudget::new(budget),
            budget_wait: Duration::from_millis(200),
        }
    }

    async fn read(
        body: Body,
        declared: Option<u64>,
        rules: &BodyRules,
    ) -> Result<Bytes, BodyError> {
        read_within(body, declared, rules, LONG)
            .await
            .map(|read| read.bytes)
    }

    #[tokio::test]
    async fn a_body_within_the_limit_is_read_whole() {
        let rules = rules(10, 1 << 20);
        let body = read(Body::from("0123456789"), Some(10), &rules).await;
        assert_eq!(body, Ok(Bytes::from_static(b"0123456789")));
        let undeclared = read(Body::from("0123456789"), None, &rules).await;
        assert_eq!(undeclared, Ok(Bytes::from_static(b"0123456789")));
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_refused_before_reading() {
        // The body never ends: refusing must not wait for it.
        let rules = rules(10, 1 << 20);
        let refused = tokio::time::timeout(LONG, read(Body::new(Endless), Some(11), &rules)).await;
        assert_eq!(refused, Ok(Err(BodyError::TooLarge { limit: 10 })));
    }

    #[tokio::test]
    async fn an_undeclared_body_is_refused_once_it_crosses_the_limit() {
        let refused = read(Body::from("0123456789a"), None, &rules(10, 1 << 20)).await;
        assert_eq!(refused, Err(BodyError::TooLarge { limit: 10 }));
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_never_comes_is_refused_after_the_grace() {
        let rules = rules(10, 1 << 20);
        let started = Instant::now();
        let refused = read(Body::new(Endless), Some(10), &rules).await;
        assert_eq!(refused, Err(BodyError::TooSlow { pace: rules.pace }));
        assert_eq!(started.elapsed(), rules.pace.grace);
        assert_eq!(refused.unwrap_err().status_and_message().0, 408);
    }

    #[test]
    fn the_pace_allows_the_grace_then_time_in_proportion_to_the_bytes() {
        let pace = BodyPace {
            grace: Duration::from_secs(1),
            bytes_per_second: 1000,
        };
        let start = Instant::now();
        assert_eq!(pace.next_byte_due(start, 0), start + Duration::from_secs(1));
        assert_eq!(
            pace.next_byte_due(start, 2500),
            start + Duration::from_millis(3500)
        );
        // No overflow at the types' limits.
        let slowest = BodyPace {
            grace: Duration::MAX,
            bytes_per_second: 1,
        };
        assert!(slowest.next_byte_due(start, usize::MAX) > start);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_does_not_fit_the_budget_waits_then_gets_503_and_fits_once_room_is_made() {
        let rules = rules(4096, 4096);
        let first = read_within(Body::from(vec![b'x'; 4096]), Some(4096), &rules, LONG)
            .await
            .expect("fits");
        assert_eq!(rules.budget.available_bytes(), 0);
        let refused = read(Body::from("0123456789"), Some(10), &rules).await;
        assert_eq!(refused, Err(BodyError::Busy { budget: 4096 }));
        assert_eq!(refused.unwrap_err().status_and_message().0, 503);
        // Waiting, it gets in as soon as the first one's answer is built.
        let waiting = tokio::spawn({
            let rules = rules.clone();
            async move { read(Body::from("0123456789"), None, &rules).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(first);
        assert_eq!(
            waiting.await.expect("task"),
            Ok(Bytes::from_static(b"0123456789"))
        );
        assert_eq!(rules.budget.available_bytes(), 4096);
    }
}
