//! `Shared`: what every pool handle, guard and background task of one pool
//! shares, and its pool-wide operations (invalidation, fork detection,
//! status, closes' bookkeeping). The connections themselves are owned by
//! its `Inventory` (`inventory.rs`).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::config::PoolConfig;
use crate::inventory::Inventory;
use crate::manager::Manager;
use crate::observe::{Event, InvalidationCause, Observer};
use crate::status::{CloseReason, Counters, PoolStatus};

/// What every handle and guard of one pool shares.
///
/// Aligned to 128 bytes (two cache lines) so that, inside its `Arc`, the
/// reference counts (written by every checkout and return, from every
/// worker thread) do not share a cache line with the read-mostly fields
/// every checkout reads (the config, the generations).
#[repr(align(128))]
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

    /// Wake everything that waits for a pool event: waiting checkouts
    /// (they look again: deadline, connects, fail fast), `close()` and
    /// `warm_up()`.
    pub(crate) fn wake_all(&self) {
        self.inv.wake_waiters();
        self.wake.notify_waiters();
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
            s.waiting = st.waiting();
            st.all_slots()
        };
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
