//! What each open connection is doing, so that idle ones cannot hold the
//! connection cap.
//!
//! A connection that has sent no request for a while costs a slot of
//! `--max-connections` and nothing else; a few hundred of them (or one
//! misbehaving client that opens HTTP/2 connections and never sends a frame,
//! or TCP connections that never send a ClientHello) would otherwise lock
//! the API server out. So: a connection that never starts a request is
//! closed after the first-request bound, one idle between requests after the
//! idle bound, and when the cap is reached one connection is evicted to make
//! room for the one waiting, chosen in this order:
//!
//! 1. never started a request, whether still in its TLS handshake (a TCP
//!    connection that sends no ClientHello) or past it, open for longest
//!    first (counted from the handshake's end once it is done): a real
//!    client's handshake takes milliseconds, so one in it for long is not
//!    one;
//! 2. idle between requests, idle for longest first.
//!
//! An evicted connection gives its slot back at once, while it closes, and
//! is never chosen again. A connection with a request in flight is never
//! evicted.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit};
use tokio::time::Instant;

/// Why a connection is closed for being idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleClose {
    /// No request within the first-request bound.
    NoRequest,
    /// No request in flight for the idle bound.
    Idle,
    /// The cap was reached and this one was the first to make room.
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
    /// Registers a new connection, still before its handshake, holding
    /// `slot` of the cap; it leaves the registry (and gives the slot back)
    /// when the returned handle is dropped, or gives the slot back when
    /// evicted.
    pub fn open(self: &Arc<Self>, slot: Option<OwnedSemaphorePermit>) -> Connection {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let activity = Arc::new(Activity {
            epoch: self.epoch,
            in_flight: AtomicUsize::new(0),
            started: AtomicU64::new(0),
            idle_since_ms: AtomicU64::new(millis_since(self.epoch)),
            closing: AtomicBool::new(false),
            slot: Mutex::new(slot),
            evict: Notify::new(),
        });
        self.lock().insert(id, activity.clone());
        Connection {
            id,
            registry: self.clone(),
            activity,
        }
    }

    /// Asks the first connection in eviction order to close and takes its
    /// slot back; false when every open connection has a request in flight
    /// or is closing already.
    pub fn evict_idlest(&self) -> bool {
        let open = self.lock();
        let idlest = open
            .values()
            .filter(|activity| activity.is_idle() && !activity.is_closing())
            .min_by_key(|activity| {
                (
                    activity.eviction_rank(),
                    activity.idle_since_ms.load(Ordering::Acquire),
                )
            });
        match idlest {
            Some(activity) => {
                activity.start_closing();
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
        drop(self.activity.take_slot());
        self.registry.lock().remove(&self.id);
    }
}

/// Requests in flight on a connection, since when it has had none (or since
/// its handshake, or its opening), and whether it is closing.
#[derive(Debug)]
pub struct Activity {
    epoch: Instant,
    in_flight: AtomicUsize,
    started: AtomicU64,
    idle_since_ms: AtomicU64,
    closing: AtomicBool,
    slot: Mutex<Option<OwnedSemaphorePermit>>,
    /// Wakes the waiters of [`Activity::closing_requested`]; the durable
    /// state is `closing` (no stored permit that a later waiter would take
    /// for a fresh eviction).
    evict: Notify,
}

impl Activity {
    /// Marks a request in flight until the guard is dropped.
    pub fn begin(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.started.fetch_add(1, Ordering::Relaxed);
        Busy(self.clone())
    }

    /// The TLS handshake is done: the first-request bound starts now.
    pub fn handshake_done(&self) {
        self.idle_since_ms
            .store(millis_since(self.epoch), Ordering::Release);
    }

    /// Whether the connection has started a request yet.
    pub fn ever_used(&self) -> bool {
        self.started.load(Ordering::Relaxed) > 0
    }

    pub fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
    }

    fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Lower is evicted first: never used (handshaking included), then used.
    fn eviction_rank(&self) -> u8 {
        u8::from(self.ever_used())
    }

    fn take_slot(&self) -> Option<OwnedSemaphorePermit> {
        self.slot
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
    }

    fn start_closing(&self) {
        self.closing.store(true, Ordering::Release);
        drop(self.take_slot());
        self.evict.notify_waiters();
    }

    /// Completes once the connection has been evicted (at once if it was
    /// before this is called).
    pub async fn closing_requested(&self) {
        loop {
            let notified = self.evict.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_closing() {
                return;
            }
            notified.await;
        }
    }

    fn idle_for(&self) -> Duration {
        let since = self.idle_since_ms.load(Ordering::Acquire);
        Duration::from_millis(millis_since(self.epoch).saturating_sub(since))
    }

    /// Completes when the connection should be closed for idleness: no
    /// request started within `first_request`, no request in flight for
    /// `idle`, or evicted.
    pub async fn idle_close(self: Arc<Self>, first_request: Duration, idle: Duration) -> IdleClose {
        loop {
            let never_used = !self.ever_used();
            let bound = if never_used { first_request } else { idle };
            let wait = if self.is_idle() {
                bound.saturating_sub(self.idle_for())
            } else {
                bound
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {
                    if self.is_idle() && self.idle_for() >= bound {
                        return if self.ever_used() {
                            IdleClose::Idle
                        } else {
                            IdleClose::NoRequest
                        };
                    }
                }
                () = self.closing_requested() => return IdleClose::Evicted,
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
    use tokio::sync::Semaphore;

    const LONG: Duration = Duration::from_secs(3600);

    /// A connection past its handshake.
    fn open(registry: &Arc<Registry>, slot: Option<OwnedSemaphorePermit>) -> Connection {
        let connection = registry.open(slot);
        connection.activity().handshake_done();
        connection
    }

    async fn evicted(connection: &Connection) -> bool {
        tokio::time::timeout(
            Duration::from_secs(1),
            connection.activity().idle_close(LONG, LONG),
        )
        .await
            == Ok(IdleClose::Evicted)
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_without_a_request_closes_after_the_first_request_bound() {
        let registry = Arc::new(Registry::default());
        let connection = open(&registry, None);
        let closed = connection
            .activity()
            .idle_close(Duration::from_secs(10), LONG)
            .await;
        assert_eq!(closed, IdleClose::NoRequest);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_keeps_the_connection_and_idleness_counts_from_its_end() {
        let registry = Arc::new(Registry::default());
        let connection = open(&registry, None);
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
        let oldest = open(&registry, None);
        tokio::time::advance(Duration::from_secs(1)).await;
        let newer = open(&registry, None);
        let busy_one = open(&registry, None);
        let _busy = busy_one.activity().begin();
        assert_eq!(registry.len(), 3);

        assert!(registry.evict_idlest());
        assert!(evicted(&oldest).await);
        assert!(
            !evicted(&newer).await,
            "only the idlest connection is evicted"
        );
        drop(oldest);
        assert_eq!(registry.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn an_evicted_connection_gives_its_slot_back_at_once_and_is_not_chosen_again() {
        let registry = Arc::new(Registry::default());
        let slots = Arc::new(Semaphore::new(2));
        let first = open(&registry, Some(slots.clone().try_acquire_owned().unwrap()));
        tokio::time::advance(Duration::from_secs(1)).await;
        let second = open(&registry, Some(slots.clone().try_acquire_owned().unwrap()));
        assert_eq!(slots.available_permits(), 0);

        assert!(registry.evict_idlest());
        // Still open (closing), but its slot is free.
        assert_eq!(registry.len(), 2);
        assert_eq!(slots.available_permits(), 1);
        assert!(registry.evict_idlest());
        assert!(evicted(&first).await && evicted(&second).await);
        assert_eq!(slots.available_permits(), 2);
        assert!(!registry.evict_idlest(), "both are closing already");
        drop((first, second));
        assert_eq!(slots.available_permits(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn connections_never_used_go_first_handshaking_ones_included_oldest_first() {
        let registry = Arc::new(Registry::default());
        let used = open(&registry, None);
        drop(used.activity().begin());
        let old_handshake = registry.open(None);
        tokio::time::advance(Duration::from_secs(10)).await;
        let never_used = open(&registry, None);
        tokio::time::advance(Duration::from_secs(10)).await;
        let new_handshake = registry.open(None);

        let mut order = Vec::new();
        for _ in 0..4 {
            assert!(registry.evict_idlest());
            for (name, connection) in [
                ("old handshake", &old_handshake),
                ("never used", &never_used),
                ("new handshake", &new_handshake),
                ("used", &used),
            ] {
                if !order.contains(&name) && connection.activity().is_closing() {
                    order.push(name);
                }
            }
        }
        assert_eq!(
            order,
            ["old handshake", "never used", "new handshake", "used"]
        );
        assert!(!registry.evict_idlest());
    }

    #[tokio::test(start_paused = true)]
    async fn an_eviction_before_anyone_waits_is_seen_when_the_wait_starts() {
        let registry = Arc::new(Registry::default());
        let handshaking = registry.open(None);
        assert!(registry.evict_idlest());
        tokio::time::timeout(
            Duration::from_secs(1),
            handshaking.activity().closing_requested(),
        )
        .await
        .expect("eviction seen");
    }
}
