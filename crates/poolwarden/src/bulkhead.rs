//! Bulkheads: a cap on how many connections one class of work (reports,
//! exports, background jobs) may hold at once, so it can never take the
//! connections requests need (the post-mortem's failure: work off the
//! request path holding the pool).
//!
//! # Implementation Details
//!
//! A [`Bulkhead`] is a named semaphore in front of a pool. A checkout through
//! it first takes a permit (the class's budget), then checks out from the
//! pool; both waits together are bounded by one timeout (the pool's
//! `checkout_timeout` unless given). The permit travels with the connection
//! in a [`BulkheadConnection`] and is released only after the connection is
//! back in the pool, so the class never holds more than `limit` connections
//! and never has more than `limit` checkouts queued in the pool: other work
//! queues behind at most `limit` of this class's waiters.
//!
//! ```
//! # async fn run<M: poolwarden::Manager>(pool: poolwarden::Pool<M>) -> Result<(), Box<dyn std::error::Error>> {
//! use poolwarden::Bulkhead;
//! let reports = Bulkhead::new("reports", 2);   // at most 2 of the pool's connections
//! let mut conn = reports.get(&pool).await?;    // waits for the budget, then the pool
//! # let _ = &mut conn; Ok(()) }
//! ```

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::error::{PoolError, TimeoutError};
use crate::{Manager, Pool, PooledConnection};

/// A cap on the connections one class of work may hold; cheap to clone
/// (clones share the budget).
#[derive(Clone)]
pub struct Bulkhead {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    limit: u32,
    permits: Arc<Semaphore>,
    waiting: AtomicU32,
}

impl std::fmt::Debug for Bulkhead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bulkhead")
            .field("name", &self.inner.name)
            .field("limit", &self.inner.limit)
            .field("in_use", &self.in_use())
            .field("waiting", &self.waiting())
            .finish()
    }
}

/// Why a checkout through a [`Bulkhead`] failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum BulkheadError {
    /// The class's budget stayed exhausted for the whole timeout: `limit`
    /// connections were held by this class. The rest of the pool was kept
    /// for other work; retry later or raise the limit.
    #[error(
        "bulkhead {bulkhead:?}: no budget within {:.3}s: {in_use}/{limit} connections of this class in use, {waiting} waiting; the rest of the pool is kept for other work, retry later",
        waited.as_secs_f64()
    )]
    Full {
        /// The bulkhead's name.
        bulkhead: String,
        /// Its limit.
        limit: u32,
        /// Connections it held when the checkout gave up.
        in_use: u32,
        /// Checkouts waiting for its budget then.
        waiting: u32,
        /// How long the checkout waited.
        waited: Duration,
    },
    /// The class had budget, but the pool's checkout failed.
    #[error(transparent)]
    Pool(#[from] PoolError),
}

impl BulkheadError {
    /// Whether the checkout ran out of time (the budget's or the pool's).
    pub fn is_timeout(&self) -> bool {
        match self {
            BulkheadError::Full { .. } => true,
            BulkheadError::Pool(e) => e.is_timeout(),
        }
    }
}

impl Bulkhead {
    /// A bulkhead letting at most `limit` checkouts through it at once
    /// (`limit` is at least 1).
    pub fn new(name: impl Into<String>, limit: u32) -> Self {
        let limit = limit.max(1);
        Bulkhead {
            inner: Arc::new(Inner {
                name: name.into(),
                limit,
                permits: Arc::new(Semaphore::new(limit as usize)),
                waiting: AtomicU32::new(0),
            }),
        }
    }

    /// Its name (shown in errors).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Its limit.
    pub fn limit(&self) -> u32 {
        self.inner.limit
    }

    /// Connections checked out through it now.
    pub fn in_use(&self) -> u32 {
        let free = u32::try_from(self.inner.permits.available_permits()).unwrap_or(u32::MAX);
        self.inner.limit.saturating_sub(free)
    }

    /// Checkouts waiting for its budget now.
    pub fn waiting(&self) -> u32 {
        self.inner.waiting.load(Ordering::Relaxed)
    }

    /// Check out a connection from `pool` within this class's budget; the
    /// wait for the budget and the pool's checkout together last at most the
    /// pool's `checkout_timeout`.
    ///
    /// # Errors
    /// [`BulkheadError::Full`] when the budget stayed exhausted for the whole
    /// timeout; [`BulkheadError::Pool`] with the pool's error otherwise (a
    /// pool timeout names the pool's holders, as [`Pool::get`] does).
    ///
    /// # Cancel safety
    /// Cancel safe: dropping the future gives up the place in the budget's
    /// queue and, as [`Pool::get`], in the pool's.
    #[track_caller]
    pub fn get<'a, M: Manager>(
        &'a self,
        pool: &'a Pool<M>,
    ) -> impl std::future::Future<Output = Result<BulkheadConnection<M>, BulkheadError>> + Send + 'a
    {
        self.get_timeout(pool, pool.config().checkout_timeout)
    }

    /// Like [`get`](Bulkhead::get) with another timeout.
    ///
    /// # Errors
    /// As [`get`](Bulkhead::get).
    ///
    /// # Cancel safety
    /// As [`get`](Bulkhead::get).
    #[track_caller]
    pub fn get_timeout<'a, M: Manager>(
        &'a self,
        pool: &'a Pool<M>,
        timeout: Duration,
    ) -> impl std::future::Future<Output = Result<BulkheadConnection<M>, BulkheadError>> + Send + 'a
    {
        // Made here, not in the async block, so the pool records the
        // caller's location rather than this file's. It does nothing until
        // polled, i.e. until the budget is granted.
        let checkout = pool.get_timeout(timeout);
        async move {
            let start = Instant::now();
            let deadline = start + timeout;
            let permit = {
                self.inner.waiting.fetch_add(1, Ordering::Relaxed);
                let _waiting = WaitingGuard(&self.inner.waiting);
                let acquire = self.inner.permits.clone().acquire_owned();
                match tokio::time::timeout_at(deadline, acquire).await {
                    Ok(Ok(permit)) => permit,
                    // The semaphore is never closed; treat it as full.
                    Ok(Err(_)) | Err(_) => return Err(self.full(start.elapsed())),
                }
            };
            // The pool's own timeout counts from its first poll (now); the
            // outer deadline keeps the total within `timeout`.
            match tokio::time::timeout_at(deadline, checkout).await {
                Ok(Ok(conn)) => Ok(BulkheadConnection {
                    conn,
                    _permit: permit,
                }),
                Ok(Err(e)) => Err(BulkheadError::Pool(e)),
                Err(_) => Err(BulkheadError::Pool(pool_timeout(pool, start.elapsed()))),
            }
        }
    }

    fn full(&self, waited: Duration) -> BulkheadError {
        BulkheadError::Full {
            bulkhead: self.inner.name.clone(),
            limit: self.inner.limit,
            in_use: self.in_use(),
            waiting: self.waiting().saturating_sub(1),
            waited,
        }
    }
}

struct WaitingGuard<'a>(&'a AtomicU32);

impl Drop for WaitingGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The pool's timeout error, for a pool checkout cut short by the
/// bulkhead's deadline.
fn pool_timeout<M: Manager>(pool: &Pool<M>, waited: Duration) -> PoolError {
    let mut holders = pool.checkouts();
    holders.truncate(3);
    PoolError::Timeout(Box::new(TimeoutError {
        waited,
        status: pool.status(),
        holders,
        last_connect_error: None,
        pool: pool.config().name.clone(),
    }))
}

/// A connection checked out through a [`Bulkhead`]; derefs to the
/// [`PooledConnection`] (and through it to the driver's connection).
#[must_use = "dropping it returns the connection at once"]
pub struct BulkheadConnection<M: Manager> {
    // NOTE: field order matters: the connection goes back to the pool
    // before the permit is released, so the class never exceeds its limit.
    conn: PooledConnection<M>,
    _permit: OwnedSemaphorePermit,
}

impl<M: Manager> std::fmt::Debug for BulkheadConnection<M>
where
    PooledConnection<M>: std::fmt::Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.conn.fmt(f)
    }
}

impl<M: Manager> Deref for BulkheadConnection<M> {
    type Target = PooledConnection<M>;
    fn deref(&self) -> &PooledConnection<M> {
        &self.conn
    }
}

impl<M: Manager> DerefMut for BulkheadConnection<M> {
    fn deref_mut(&mut self) -> &mut PooledConnection<M> {
        &mut self.conn
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Bulkhead, BulkheadError};
    use crate::{ErrorClass, Manager, Pool, Probe};

    /// A manager whose connections are numbers and always work.
    struct Numbers(std::sync::atomic::AtomicU64);

    impl Manager for Numbers {
        type Connection = u64;
        type Error = std::io::Error;
        async fn connect(&self) -> Result<u64, std::io::Error> {
            Ok(self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
        }
        async fn validate(&self, _: &mut u64) -> Result<(), std::io::Error> {
            Ok(())
        }
        fn probe(&self, _: &mut u64) -> Probe {
            Probe::Clean
        }
        fn classify(&self, _: &std::io::Error) -> ErrorClass {
            ErrorClass::Broken
        }
    }

    fn pool(max: u32) -> Pool<Numbers> {
        Pool::builder(Numbers(0.into()))
            .max_size(max)
            .checkout_timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_class_never_holds_more_than_its_limit_and_others_are_not_starved() {
        let pool = pool(4);
        let reports = Bulkhead::new("reports", 2);
        let a = reports.get(&pool).await.unwrap();
        let b = reports.get(&pool).await.unwrap();
        assert_eq!(reports.in_use(), 2);
        // A third report waits for the budget, not in the pool's queue...
        let third = tokio::spawn({
            let (pool, reports) = (pool.clone(), reports.clone());
            async move { reports.get(&pool).await.map(drop) }
        });
        tokio::task::yield_now().await;
        assert_eq!((reports.waiting(), pool.status().waiting), (1, 0));
        // ...while the rest of the pool serves other work at once.
        let c = pool.get_timeout(Duration::from_millis(1)).await.unwrap();
        let d = pool.get_timeout(Duration::from_millis(1)).await.unwrap();
        assert_eq!(pool.status().in_use, 4);
        drop((c, d));
        // Returning a report connection lets the waiting one through.
        drop(a);
        third.await.unwrap().unwrap();
        drop(b);
        assert_eq!(reports.in_use(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_for_the_budget_is_bounded_and_named() {
        let pool = pool(4);
        let reports = Bulkhead::new("reports", 1);
        let held = reports.get(&pool).await.unwrap();
        let err = reports
            .get_timeout(&pool, Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(err.is_timeout());
        assert!(matches!(
            err,
            BulkheadError::Full {
                limit: 1,
                in_use: 1,
                ..
            }
        ));
        let text = err.to_string();
        assert!(
            text.contains("bulkhead \"reports\"") && text.contains("1/1"),
            "{text}"
        );
        drop(held);
        assert_eq!(reports.waiting(), 0);
        drop(reports.get(&pool).await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn the_pool_wait_counts_against_the_same_timeout() {
        let pool = pool(1);
        let held = pool.get().await.unwrap();
        let reports = Bulkhead::new("reports", 1);
        let start = tokio::time::Instant::now();
        let err = reports
            .get_timeout(&pool, Duration::from_secs(3))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, BulkheadError::Pool(e) if e.is_timeout()),
            "{err}"
        );
        assert_eq!(start.elapsed(), Duration::from_secs(3));
        assert_eq!(reports.in_use(), 0, "the budget is given back");
        drop(held);
    }
}
