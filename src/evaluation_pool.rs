//! Where a review is evaluated, so that large ones cannot stall small ones.
//!
//! Evaluation is CPU work without awaits. A typical review (a few KiB) takes
//! tens of microseconds and runs inline on the async worker that read it. A
//! large one (a 3 MB Pod with 50,000 containers takes seconds) would hold that
//! worker for as long, and with one worker per core a handful of them stop
//! every other review, health check and TLS handshake: those run on a
//! bounded set of blocking threads instead, at most `concurrent_large` at a
//! time, the rest waiting (within their request's time budget) for a turn.

use std::sync::Arc;

use tokio::sync::Semaphore;

/// Bodies up to this size are evaluated inline.
pub const INLINE_AT_MOST_BYTES: usize = 256 * 1024;

/// Why an evaluation did not return.
#[derive(Debug, PartialEq, Eq)]
pub enum PoolError {
    /// The evaluation panicked on its blocking thread.
    Panicked,
}

#[derive(Debug, Clone)]
pub struct EvaluationPool {
    large: Arc<Semaphore>,
    concurrent_large: usize,
}

impl EvaluationPool {
    pub fn new(concurrent_large: usize) -> Self {
        let concurrent_large = concurrent_large.max(1);
        EvaluationPool {
            large: Arc::new(Semaphore::new(concurrent_large)),
            concurrent_large,
        }
    }

    /// Half the cores for large reviews (at least one): the other half keep
    /// answering small reviews and probes at full speed.
    pub fn for_this_machine() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::new(cores / 2)
    }

    /// How many large reviews are evaluated at once.
    pub fn concurrent_large(&self) -> usize {
        self.concurrent_large
    }

    /// Runs `work` for a body of `body_bytes`: inline when small, else on a
    /// blocking thread once a large-review slot is free.
    pub async fn run<T, F>(&self, body_bytes: usize, work: F) -> Result<T, PoolError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        if body_bytes <= INLINE_AT_MOST_BYTES {
            return Ok(work());
        }
        // The semaphore is never closed.
        let slot = self
            .large
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| PoolError::Panicked)?;
        tokio::task::spawn_blocking(move || {
            // Held until the work ends, even when the request that asked for
            // it has timed out: the bound is on threads busy, not on waiters.
            let _slot = slot;
            work()
        })
        .await
        .map_err(|_| PoolError::Panicked)
    }
}

impl Default for EvaluationPool {
    fn default() -> Self {
        Self::for_this_machine()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(flavor = "current_thread")]
    async fn small_work_runs_inline_and_large_work_off_the_async_thread() {
        let pool = EvaluationPool::new(1);
        let here = std::thread::current().id();
        let inline = pool.run(10, move || std::thread::current().id()).await;
        assert_eq!(inline, Ok(here));
        let large = pool
            .run(INLINE_AT_MOST_BYTES + 1, move || {
                std::thread::current().id()
            })
            .await;
        assert_ne!(large, Ok(here));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_small_review_is_answered_while_large_ones_hold_every_slot() {
        let pool = EvaluationPool::new(1);
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let (started, running) = tokio::sync::oneshot::channel::<()>();
        let busy = {
            let pool = pool.clone();
            tokio::spawn(async move {
                pool.run(INLINE_AT_MOST_BYTES + 1, move || {
                    let _ = started.send(());
                    hold.recv().is_ok()
                })
                .await
            })
        };
        running.await.unwrap();
        let queued = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run(INLINE_AT_MOST_BYTES + 1, || 2).await })
        };
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        // One large review runs, one waits for its slot: a small one is not
        // behind either.
        let small = tokio::time::timeout(Duration::from_secs(5), pool.run(10, || 1)).await;
        assert_eq!(small, Ok(Ok(1)));
        assert!(
            !queued.is_finished(),
            "the second large review waits its turn"
        );
        release.send(()).unwrap();
        assert_eq!(busy.await.unwrap(), Ok(true));
        assert_eq!(queued.await.unwrap(), Ok(2));
    }

    #[tokio::test]
    async fn a_panic_is_an_error_not_a_lost_slot() {
        let pool = EvaluationPool::new(1);
        let panicked = pool
            .run(INLINE_AT_MOST_BYTES + 1, || -> u8 { panic!("odd object") })
            .await;
        assert_eq!(panicked, Err(PoolError::Panicked));
        assert_eq!(pool.run(INLINE_AT_MOST_BYTES + 1, || 7).await, Ok(7));
    }
}
