//! The [`Pool`] handle and the state every handle and guard shares.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{Notify, Semaphore};

use crate::builder::Builder;
use crate::clock;
use crate::config::PoolConfig;
use crate::error::PoolError;
use crate::guard::PooledConnection;
use crate::manager::Manager;
use crate::observe::{Event, InvalidationCause, Observer};
use crate::slots::{Slots, State};
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
    /// One permit per idle connection not yet claimed (see `slots.rs`).
    /// Its FIFO queue is the waiter queue: a returned connection goes to the
    /// oldest waiter, and a new checkout cannot barge ahead of it (F7).
    pub(crate) sem: Semaphore,
    pub(crate) state: Mutex<State<M::Connection>>,
    /// Per-connection facts and checkout records (see `slots.rs`).
    pub(crate) slots: Slots,
    /// Connections opened in an older generation are retired (F2).
    pub(crate) generation: AtomicU64,
    /// Connections opened in a generation older than this were inherited
    /// from a parent process: they are forgotten, never closed (F8).
    pub(crate) fork_generation: AtomicU64,
    pub(crate) pid: AtomicU32,
    /// A recent reading of the clock, refreshed by maintenance and slow
    /// checkouts: the return path estimates "now" as the later of this and
    /// the hand-out time, so a clean return reads no clock (see `check_in`).
    pub(crate) recent: AtomicU64,
    pub(crate) counters: Counters,
    /// Published by the state for lock-free reads (see `slots.rs`).
    pub(crate) summary: Arc<crate::slots::Summary>,
    /// Woken when connecting succeeds or fails, and when a connection
    /// closes: waiters re-plan, `close()` re-checks.
    pub(crate) wake: Notify,
    pub(crate) observer: Option<Arc<dyn Observer>>,
    pub(crate) maintenance_started: AtomicBool,
    pub(crate) runtime: OnceLock<tokio::runtime::Handle>,
    #[cfg(feature = "metrics")]
    pub(crate) metrics: crate::observe::Metrics,
}

impl<M: Manager> Shared<M> {
    pub(crate) fn new(manager: M, cfg: PoolConfig, observer: Option<Arc<dyn Observer>>) -> Self {
        let state = State::new(cfg.max_open());
        let summary = Arc::clone(&state.summary);
        Shared {
            summary,
            manager,
            sem: Semaphore::new(0),
            state: Mutex::new(state),
            slots: Slots::new(cfg.max_open()),
            generation: AtomicU64::new(0),
            fork_generation: AtomicU64::new(0),
            pid: AtomicU32::new(std::process::id()),
            recent: AtomicU64::new(clock::now().as_nanos()),
            counters: Counters::default(),
            wake: Notify::new(),
            observer,
            maintenance_started: AtomicBool::new(false),
            runtime: OnceLock::new(),
            #[cfg(feature = "metrics")]
            metrics: crate::observe::Metrics::new(&cfg.name),
            cfg,
        }
    }

    /// Read the clock and remember the reading for the return path.
    pub(crate) fn now_refresh(&self) -> clock::Tick {
        let now = clock::now();
        self.recent.fetch_max(now.as_nanos(), Relaxed);
        now
    }

    /// The last remembered reading (never later than now).
    pub(crate) fn recent(&self) -> clock::Tick {
        clock::Tick::from_nanos(self.recent.load(Relaxed))
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
            Err(_) => match self.runtime.get() {
                Some(h) => h.clone(),
                None => return false,
            },
        };
        let _ = self.runtime.set(handle.clone());
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
        {
            let st = self.state.lock();
            s.open = st.open;
            s.idle = st.idle.len() as u32;
            s.in_use = st.in_use();
            s.waiting = st.waiting();
            s.connecting = st.connecting;
        }
        s.checkouts = self.slots.handed_out();
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
    /// - [`PoolError::Closed`] after [`Pool::close`].
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
        async move { self.shared.checkout(location, timeout).await }
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
        async move { self.shared.checkout(location, timeout).await }
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
        self.shared.slots.checkouts(clock::now())
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
        self.shared.state.lock().closed
    }
}
