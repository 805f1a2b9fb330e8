//! The [`Pool`] handle and the state every handle and guard shares.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::builder::Builder;
use crate::clock;
use crate::config::PoolConfig;
use crate::error::PoolError;
use crate::guard::PooledConnection;
use crate::inventory::Inventory;
use crate::manager::Manager;
use crate::observe::{Event, InvalidationCause, Observer};
use crate::status::{CheckoutInfo, CloseReason, Counters, PoolStatus};

/// A pool of database connections. Cheap to clone: clones share one pool.
///
/// Build one with [`Pool::builder`].
pub struct Pool<M: Manager> {
    pub(crate) shared: Arc<Shared<M>>,
}

impl<M: Manager> Clone for Pool<M> {
    fn clone(&self) -> Self {
        Pool {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<M: Manager> std::fmt::Debug for Pool<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("name", &self.shared.cfg.name)
            .field("status", &self.status())
            .finish()
    }
}

/// What every handle and guard of one pool shares.
pub(crate) struct Shared<M: Manager> {
    pub(crate) manager: M,
    pub(crate) cfg: PoolConfig,
    /// The connections and their accounting (`inventory.rs`).
    pub(crate) inv: Inventory<M::Connection>,
    /// Connections opened in an older generation are retired (F2).
    pub(crate) generation: AtomicU64,
    /// Connections opened in a generation older than this were inherited
    /// from a parent process: they are forgotten, never closed (F8).
    pub(crate) fork_generation: AtomicU64,
    pub(crate) pid: AtomicU32,
    pub(crate) counters: Counters,
    /// Woken when connecting succeeds or fails, when a connection closes and
    /// when the server stops answering: waiters re-plan, `close()` re-checks.
    pub(crate) wake: Notify,
    /// Waiting checkouts' deadlines, enforced by one sweeper task
    /// (`deadlines.rs`).
    pub(crate) deadlines: Arc<crate::deadlines::Deadlines>,
    pub(crate) observer: Option<Arc<dyn Observer>>,
    /// Set while a maintenance task runs; its task clears it when dropped
    /// (its runtime shut down), so the next checkout starts another.
    pub(crate) maintenance_running: AtomicBool,
    /// The runtime of the latest maintenance task, for background work
    /// started where no runtime is current (a guard dropped on a plain
    /// thread).
    pub(crate) runtime: Mutex<Option<tokio::runtime::Handle>>,
    #[cfg(feature = "metrics")]
    pub(crate) metrics: crate::observe::Metrics,
}

impl<M: Manager> Drop for Shared<M> {
    fn drop(&mut self) {
        self.deadlines.shut_down();
    }
}

impl<M: Manager> Shared<M> {
    pub(crate) fn new(manager: M, cfg: PoolConfig, observer: Option<Arc<dyn Observer>>) -> Self {
        Shared {
            manager,
            inv: Inventory::new(cfg.max_size, cfg.max_open(), cfg.idle_order),
            generation: AtomicU64::new(0),
            fork_generation: AtomicU64::new(0),
            pid: AtomicU32::new(std::process::id()),
            counters: Counters::default(),
            wake: Notify::new(),
            deadlines: crate::deadlines::Deadlines::new(),
            observer,
            maintenance_running: AtomicBool::new(false),
            runtime: Mutex::new(None),
            #[cfg(feature = "metrics")]
            metrics: crate::observe::Metrics::new(&cfg.name),
            cfg,
        }
    }

    pub(crate) fn emit(&self, event: Event<'_>) {
        if let Some(o) = &self.observer {
            o.on_event(&event);
        }
    }

    /// Spawn background work on the pool's runtime. Returns `false` when no
    /// runtime is reachable (the work is then not done; callers fall back to
    /// closing the connection).
    pub(crate) fn spawn<F>(&self, fut: F) -> bool
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let handle = match tokio::runtime::Handle::try_current() {
            Ok(h) => h,
            Err(_) => match self.runtime.lock().clone() {
                Some(h) => h,
                None => return false,
            },
        };
        drop(handle.spawn(fut));
        true
    }

    /// Retire every connection opened before now (F2). Only a connection of
    /// the current generation can trigger it, so one server restart counts
    /// as one invalidation, not one per dead connection.
    pub(crate) fn invalidate(&self, seen_on_generation: Option<u64>, cause: InvalidationCause) {
        let new = match seen_on_generation {
            Some(g) => match self.generation.compare_exchange(g, g + 1, Relaxed, Relaxed) {
                Ok(_) => g + 1,
                Err(_) => return,
            },
            None => self.generation.fetch_add(1, Relaxed) + 1,
        };
        self.counters.invalidations.fetch_add(1, Relaxed);
        #[cfg(feature = "metrics")]
        self.metrics.invalidations.increment(1);
        tracing::warn!(pool = %self.cfg.name, generation = new, ?cause, "invalidating every connection opened before now");
        self.emit(Event::Invalidated {
            generation: new,
            cause,
        });
    }

    /// Detect a fork (F8): the child forgets every inherited connection.
    /// Called off the hot path (slow checkouts, validation, maintenance).
    pub(crate) fn check_fork(&self) {
        let pid = std::process::id();
        let old = self.pid.load(Relaxed);
        if pid != old
            && self
                .pid
                .compare_exchange(old, pid, Relaxed, Relaxed)
                .is_ok()
        {
            let generation = self.generation.fetch_add(1, Relaxed) + 1;
            self.fork_generation.store(generation, Relaxed);
            self.counters.invalidations.fetch_add(1, Relaxed);
            tracing::warn!(pool = %self.cfg.name, parent = old, child = pid, "process forked: the pool will not touch the parent's connections");
            self.emit(Event::Invalidated {
                generation,
                cause: InvalidationCause::Forked,
            });
        }
    }

    pub(crate) fn status(&self) -> PoolStatus {
        let mut s = PoolStatus {
            max_size: self.cfg.max_size,
            max_open: self.cfg.max_open(),
            generation: self.generation.load(Relaxed),
            ..PoolStatus::default()
        };
        let slots = {
            let st = self.inv.lock();
            s.open = st.open();
            s.idle = st.idle();
            s.in_use = st.in_use();
            s.background = st.background();
            s.connecting = st.connecting();
            st.all_slots()
        };
        s.waiting = self.inv.waiting();
        s.checkouts = slots.iter().map(|c| c.lock().handed_out).sum();
        s.overflow = s.open.saturating_sub(self.cfg.max_size);
        self.counters.fill(&mut s);
        s
    }

    pub(crate) fn count_close(&self, connection_id: u64, reason: CloseReason) {
        self.counters.closed(reason);
        #[cfg(feature = "metrics")]
        self.metrics.closed(reason);
        tracing::debug!(pool = %self.cfg.name, connection_id, reason = reason.as_str(), "connection closed");
        self.emit(Event::Discarded {
            connection_id,
            reason,
        });
        // A connection that failed (rather than one retired by policy)
        // feeds the connect backoff, whatever made it fail (defect 1).
        if reason.is_failure() {
            self.note_connection_failure();
        }
    }
}

impl<M: Manager> Pool<M> {
    /// Start configuring a pool for `manager`.
    pub fn builder(manager: M) -> Builder<M> {
        Builder::new(manager)
    }

    /// Check out a connection, waiting up to `checkout_timeout`.
    ///
    /// The connection is healthy when handed out: it was used within the
    /// validation bypass window or passed a ping, it is not past its
    /// lifetime or the server's idle timeout, and it was opened after the
    /// last disconnect the pool saw. Dead connections met on the way are
    /// replaced within the same timeout (F1, F2, F3). The caller's source
    /// location is recorded for leak reports (F6).
    ///
    /// # Errors
    /// - [`PoolError::Timeout`] when no healthy connection was available in
    ///   time; the message names the longest holders (F7).
    /// - [`PoolError::Unavailable`] when the pool has no connection and the
    ///   server does not answer (with the default
    ///   [`WhenUnavailable::FailFast`](crate::WhenUnavailable::FailFast)).
    /// - [`PoolError::Fatal`] when the server rejects the connection settings.
    /// - [`PoolError::Unresponsive`] when the server stopped answering while
    ///   its sockets stayed open ([`ErrorClass::Unresponsive`](crate::ErrorClass::Unresponsive)):
    ///   fails fast until a round trip succeeds.
    /// - [`PoolError::Closed`] after [`Pool::close`], including when the pool
    ///   closes while this checkout pings a connection.
    ///
    /// # Cancel safety
    /// Cancel safe. Dropping the future gives up the place in the queue;
    /// a connection being validated for it is closed, a connect started for
    /// it goes on in the background and its connection goes to the next
    /// waiter or to the idle set. Nothing is lost.
    #[track_caller]
    pub fn get(
        &self,
    ) -> impl std::future::Future<Output = Result<PooledConnection<M>, PoolError>> + Send + '_ {
        let location = std::panic::Location::caller();
        let timeout = self.shared.cfg.checkout_timeout;
        async move { self.shared.checkout(location, timeout, None).await }
    }

    /// Like [`get`](Pool::get), but the wait (and validation) ends at
    /// `deadline` if that is earlier than now + `checkout_timeout`; the
    /// deadline is passed to [`Manager::on_hand_out`] so the connection's
    /// commands can be bounded by it, and is available to the borrower as
    /// [`PooledConnection::deadline`].
    ///
    /// # Errors
    /// As [`get`](Pool::get); a deadline already passed fails at once with
    /// [`PoolError::Timeout`].
    ///
    /// # Cancel safety
    /// As [`get`](Pool::get).
    #[track_caller]
    pub fn get_until(
        &self,
        deadline: tokio::time::Instant,
    ) -> impl std::future::Future<Output = Result<PooledConnection<M>, PoolError>> + Send + '_ {
        let location = std::panic::Location::caller();
        let timeout = self.shared.cfg.checkout_timeout;
        async move {
            self.shared
                .checkout(location, timeout, Some(deadline))
                .await
        }
    }

    /// Like [`get`](Pool::get) with another timeout.
    ///
    /// # Errors
    /// As [`get`](Pool::get).
    ///
    /// # Cancel safety
    /// As [`get`](Pool::get).
    #[track_caller]
    pub fn get_timeout(
        &self,
        timeout: Duration,
    ) -> impl std::future::Future<Output = Result<PooledConnection<M>, PoolError>> + Send + '_ {
        let location = std::panic::Location::caller();
        async move { self.shared.checkout(location, timeout, None).await }
    }

    /// Check out an idle connection that needs no ping, without waiting.
    ///
    /// # Errors
    /// [`PoolError::Busy`] when none is available at once (connections that
    /// would need a ping or must be retired count as unavailable; the pool
    /// deals with them in the background), [`PoolError::Closed`] after
    /// [`Pool::close`].
    #[track_caller]
    pub fn try_get(&self) -> Result<PooledConnection<M>, PoolError> {
        self.shared.try_checkout(std::panic::Location::caller())
    }

    /// The pool's counts.
    pub fn status(&self) -> PoolStatus {
        self.shared.status()
    }

    /// Every live checkout, longest held first: who holds what (F6).
    pub fn checkouts(&self) -> Vec<CheckoutInfo> {
        crate::slots::checkouts(&self.shared.inv.all_slots(), clock::now())
    }

    /// Retire every connection opened before now, lazily: idle ones at
    /// their next checkout or maintenance pass, checked-out ones when
    /// returned. Use after a failover the pool could not see.
    pub fn invalidate_all(&self) {
        self.shared.invalidate(None, InvalidationCause::Requested);
    }

    /// The pool's (validated) configuration.
    pub fn config(&self) -> &PoolConfig {
        &self.shared.cfg
    }

    /// The manager.
    pub fn manager(&self) -> &M {
        &self.shared.manager
    }

    /// Whether [`close`](Pool::close) was called.
    pub fn is_closed(&self) -> bool {
        self.shared.inv.is_closed()
    }
}
