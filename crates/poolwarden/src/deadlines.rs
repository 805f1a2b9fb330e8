//! # One timer per pool for every waiting checkout
//!
//! A waiting checkout registers no timer of its own. Its entry in the
//! waiter queue (`waiters.rs`) records when it must be woken (`wake_at`:
//! its deadline, or the end of a backoff or of a black-hole probe), and
//! when that changes it publishes the instant into
//! [`Deadlines::earliest`] (a `fetch_min`, skipped after a plain load when
//! an earlier one is already there, which is the steady state: with one
//! `checkout_timeout`, older waiters have earlier deadlines). One sweeper
//! task per pool sleeps until the earliest published instant, empties it,
//! wakes the waiters whose `wake_at` has passed (each checks its own
//! deadline and fails with a timeout, or re-plans), and publishes the
//! earliest `wake_at` of the others.
//!
//! Never a missed wake-up:
//! - a waiter publishes under the pool lock, after recording `wake_at` in
//!   its entry; the sweeper empties `earliest` *before* it scans the queue
//!   under that lock, so a publication it erased is seen by its scan and
//!   published again;
//! - a publication after the scan lands in the emptied `earliest`, and one
//!   earlier than the instant the sweeper sleeps on re-arms it.

use std::sync::atomic::{
    AtomicBool, AtomicU64, Ordering::AcqRel, Ordering::Acquire, Ordering::Relaxed,
};
use std::sync::{Arc, Weak};

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::manager::Manager;
use crate::shared::Shared;

const NONE: u64 = u64::MAX;

/// The pool's waiter deadlines, shared with its sweeper task (which holds
/// no strong reference to the pool, so dropping the pool ends it).
pub(crate) struct Deadlines {
    /// Nanoseconds after `base` of the earliest deadline published since
    /// the last sweep; `NONE` when none.
    earliest: AtomicU64,
    /// Wakes the sweeper: an earlier deadline, or the pool dropped.
    rearm: Notify,
    base: Instant,
    running: AtomicBool,
}

impl Deadlines {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Deadlines {
            earliest: AtomicU64::new(NONE),
            rearm: Notify::new(),
            base: Instant::now(),
            running: AtomicBool::new(false),
        })
    }

    fn to_nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_nanos())
            .unwrap_or(NONE - 1)
            .min(NONE - 1)
    }

    /// Make sure the sweeper sees `deadline`. Call after registering on
    /// the pool's wake-up `Notify`.
    pub(crate) fn publish(&self, deadline: Instant) {
        let n = self.to_nanos(deadline);
        if n < self.earliest.load(Acquire) && n < self.earliest.fetch_min(n, AcqRel) {
            self.rearm.notify_one();
        }
    }

    /// The pool is gone: let the sweeper end.
    pub(crate) fn shut_down(&self) {
        self.rearm.notify_one();
    }
}

/// Clears `running` when the sweeper ends or its runtime drops it, and
/// wakes the waiters: one of them starts a sweeper on its own runtime (a
/// pool shared by two runtimes keeps its deadlines when one shuts down).
struct Running<M: Manager> {
    deadlines: Arc<Deadlines>,
    pool: Weak<Shared<M>>,
}

impl<M: Manager> Drop for Running<M> {
    fn drop(&mut self) {
        self.deadlines.running.store(false, Relaxed);
        if let Some(shared) = self.pool.upgrade() {
            shared.wake_all();
        }
    }
}

impl<M: Manager> Shared<M> {
    /// Start the sweeper on the current runtime unless one runs.
    pub(crate) fn ensure_sweeper(self: &Arc<Self>) {
        let d = &self.deadlines;
        if d.running.load(Relaxed) || d.running.swap(true, Relaxed) {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            d.running.store(false, Relaxed);
            return;
        };
        let weak = Arc::downgrade(self);
        let running = Running {
            deadlines: Arc::clone(d),
            pool: weak.clone(),
        };
        drop(handle.spawn(sweep(weak, running)));
    }
}

async fn sweep<M: Manager>(pool: Weak<Shared<M>>, running: Running<M>) {
    let d = Arc::clone(&running.deadlines);
    loop {
        let rearm = d.rearm.notified();
        tokio::pin!(rearm);
        rearm.as_mut().enable();
        if pool.strong_count() == 0 {
            return;
        }
        let earliest = d.earliest.load(Acquire);
        if earliest == NONE {
            rearm.await;
            continue;
        }
        let at = d.base + std::time::Duration::from_nanos(earliest);
        tokio::select! {
            () = tokio::time::sleep_until(at) => {
                d.earliest.swap(NONE, AcqRel);
                let Some(shared) = pool.upgrade() else { return };
                if let Some(next) = shared.inv.sweep(tokio::time::Instant::now()) {
                    d.publish(next);
                }
            }
            () = &mut rearm => {}
        }
    }
}
