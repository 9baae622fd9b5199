//! What each open connection is doing, so that idle ones cannot hold the
//! connection cap.
//!
//! A connection that has sent no request for a while costs a slot of
//! `--max-connections` and nothing else; a few hundred of them (or one
//! misbehaving client that opens HTTP/2 connections and never sends a frame)
//! would otherwise lock the API server out. So: a connection that never
//! starts a request is closed after the first-request bound, one idle
//! between requests after the idle bound, and when the cap is reached the
//! connection idle for longest is closed to make room for the one waiting.
//! A connection with a request in flight is never closed by this.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use tokio::sync::Notify;

/// Why a connection is closed for being idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleClose {
    /// No request within the first-request bound.
    NoRequest,
    /// No request in flight for the idle bound.
    Idle,
    /// The cap was reached and this one was idle for longest.
    Evicted,
}

/// The open connections of one listener.
#[derive(Debug)]
pub struct Registry {
    epoch: Instant,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Activity>>>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
        }
    }
}

impl Registry {
    /// Registers a new connection; it leaves the registry when the returned
    /// handle is dropped.
    pub fn open(self: &Arc<Self>) -> Connection {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let activity = Arc::new(Activity {
            epoch: self.epoch,
            in_flight: AtomicUsize::new(0),
            started: AtomicU64::new(0),
            idle_since_ms: AtomicU64::new(millis_since(self.epoch)),
            evict: Notify::new(),
        });
        self.lock().insert(id, activity.clone());
        Connection {
            id,
            registry: self.clone(),
            activity,
        }
    }

    /// Asks the connection idle for longest to close; false when every open
    /// connection has a request in flight.
    pub fn evict_idlest(&self) -> bool {
        let open = self.lock();
        let idlest = open
            .values()
            .filter(|activity| activity.in_flight.load(Ordering::Acquire) == 0)
            .min_by_key(|activity| activity.idle_since_ms.load(Ordering::Acquire));
        match idlest {
            Some(activity) => {
                activity.evict.notify_one();
                true
            }
            None => false,
        }
    }

    /// Connections open now (what the tests count).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Activity>>> {
        // A panic while holding this lock leaves a map that is still whole.
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One open connection's entry; dropping it removes the entry.
#[derive(Debug)]
pub struct Connection {
    id: u64,
    registry: Arc<Registry>,
    activity: Arc<Activity>,
}

impl Connection {
    pub fn activity(&self) -> Arc<Activity> {
        self.activity.clone()
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
    }
}

/// Requests in flight on a connection and since when it has had none.
#[derive(Debug)]
pub struct Activity {
    epoch: Instant,
    in_flight: AtomicUsize,
    started: AtomicU64,
    idle_since_ms: AtomicU64,
    evict: Notify,
}

impl Activity {
    /// Marks a request in flight until the guard is dropped.
    pub fn begin(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.started.fetch_add(1, Ordering::Relaxed);
        Busy(self.clone())
    }

    fn idle_for(&self) -> Duration {
        let since = self.idle_since_ms.load(Ordering::Acquire);
        Duration::from_millis(millis_since(self.epoch).saturating_sub(since))
    }

    fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
    }

    /// Completes when the connection should be closed for idleness: no
    /// request started within `first_request`, no request in flight for
    /// `idle`, or evicted while idle.
    pub async fn idle_close(self: Arc<Self>, first_request: Duration, idle: Duration) -> IdleClose {
        loop {
            let never_used = self.started.load(Ordering::Relaxed) == 0;
            let bound = if never_used { first_request } else { idle };
            let wait = if self.is_idle() {
                bound.saturating_sub(self.idle_for())
            } else {
                bound
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {
                    if self.is_idle() && self.idle_for() >= bound {
                        return if self.started.load(Ordering::Relaxed) == 0 {
                            IdleClose::NoRequest
                        } else {
                            IdleClose::Idle
                        };
                    }
                }
                () = self.evict.notified() => {
                    if self.is_idle() {
                        return IdleClose::Evicted;
                    }
                }
            }
        }
    }
}

/// A request in flight.
#[derive(Debug)]
pub struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let activity = &self.0;
        activity
            .idle_since_ms
            .store(millis_since(activity.epoch), Ordering::Release);
        activity.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

fn millis_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(3600);

    #[tokio::test(start_paused = true)]
    async fn a_connection_without_a_request_closes_after_the_first_request_bound() {
        let registry = Arc::new(Registry::default());
        let connection = registry.open();
        let closed = connection
            .activity()
            .idle_close(Duration::from_secs(10), LONG)
            .await;
        assert_eq!(closed, IdleClose::NoRequest);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_keeps_the_connection_and_idleness_counts_from_its_end() {
        let registry = Arc::new(Registry::default());
        let connection = registry.open();
        let activity = connection.activity();
        let busy = activity.begin();
        let close = tokio::spawn(
            activity
                .clone()
                .idle_close(Duration::from_secs(1), Duration::from_secs(5)),
        );
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(!close.is_finished(), "closed while a request was in flight");
        assert!(
            !registry.evict_idlest(),
            "a busy connection is not evictable"
        );
        drop(busy);
        assert_eq!(close.await.unwrap(), IdleClose::Idle);
    }

    #[tokio::test(start_paused = true)]
    async fn eviction_picks_the_connection_idle_for_longest() {
        let registry = Arc::new(Registry::default());
        let oldest = registry.open();
        tokio::time::advance(Duration::from_secs(1)).await;
        let newer = registry.open();
        let busy_one = registry.open();
        let _busy = busy_one.activity().begin();
        assert_eq!(registry.len(), 3);

        assert!(registry.evict_idlest());
        let evicted = tokio::time::timeout(
            Duration::from_secs(1),
            oldest.activity().idle_close(LONG, LONG),
        )
        .await;
        assert_eq!(evicted, Ok(IdleClose::Evicted));
        let untouched = tokio::time::timeout(
            Duration::from_secs(1),
            newer.activity().idle_close(LONG, LONG),
        )
        .await;
        assert!(untouched.is_err(), "only the idlest connection is evicted");
        drop(oldest);
        assert_eq!(registry.len(), 2);
    }
}
