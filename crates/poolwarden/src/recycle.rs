//! Off-path work on single connections: closing, resetting after return,
//! and the RAII guard that keeps the accounting right while a connection is
//! out of both the idle set and a borrower's hands.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use crate::clock::{self, Tick};
use crate::manager::{ErrorClass, Manager, Probe};
use crate::observe::{Event, InvalidationCause};
use crate::pool::Shared;
use crate::slots::Idle;
use crate::status::CheckoutInfo;
use crate::status::CloseReason;

/// A connection the pool is working on in the background (reset,
/// keepalive ping). If the work is dropped half-way (runtime shutting down,
/// timeout), the connection is closed and its slot freed: the accounting
/// never loses a connection.
pub(crate) struct Working<M: Manager> {
    shared: Arc<Shared<M>>,
    idle: Option<Idle<M::Connection>>,
    /// Counted in `State::resetting` while held.
    resetting: bool,
}

impl<M: Manager> Working<M> {
    pub(crate) fn new(shared: Arc<Shared<M>>, idle: Idle<M::Connection>, resetting: bool) -> Self {
        Working {
            shared,
            idle: Some(idle),
            resetting,
        }
    }

    pub(crate) fn idle_mut(&mut self) -> &mut Idle<M::Connection> {
        self.idle.as_mut().expect("held until finished")
    }

    fn take(&mut self) -> Idle<M::Connection> {
        let idle = self.idle.take().expect("held until finished");
        if self.resetting {
            self.shared.state.lock().resetting -= 1;
        }
        idle
    }

    /// Back to the idle set (or closed, if the pool closed meanwhile),
    /// known good as of `now`.
    pub(crate) fn finish_idle(mut self, now: Tick) {
        let idle = self.take();
        {
            let mut slot = self.shared.slots.get(idle.slot);
            slot.meta.last_io = now;
            slot.meta.last_ok = now;
        }
        self.shared.put_idle(idle);
    }

    /// The generation the connection was opened in.
    pub(crate) fn generation(&self) -> u64 {
        let slot = self.idle.as_ref().map_or(0, |i| i.slot);
        self.shared.slots.get(slot).meta.generation
    }

    /// Close it.
    pub(crate) fn finish_close(mut self, reason: CloseReason) {
        let idle = self.take();
        self.shared.close_conn(idle, reason);
    }
}

impl<M: Manager> Drop for Working<M> {
    fn drop(&mut self) {
        if self.idle.is_some() {
            let idle = self.take();
            self.shared.close_conn(idle, CloseReason::ResetFailed);
        }
    }
}

impl<M: Manager> Shared<M> {
    /// Put a connection nobody holds back into the idle set.
    ///
    /// Like a clean return, an overflow connection is closed instead when
    /// `max_size` connections are already idle (F7).
    pub(crate) fn put_idle(&self, idle: Idle<M::Connection>) {
        let mut st = self.state.lock();
        let reason = if st.closed {
            Some(CloseReason::PoolClosed)
        } else if st.idle.len() as u32 >= self.cfg.max_size {
            Some(CloseReason::Overflow)
        } else {
            None
        };
        if let Some(reason) = reason {
            drop(st);
            self.close_conn(idle, reason);
            return;
        }
        st.push_idle(idle);
        drop(st);
        self.sem.add_permits(1);
    }

    /// Close a connection that is in no borrower's hands and not idle, and
    /// free its slot. Connections inherited across a fork are forgotten
    /// instead, so the child never writes to the parent's socket (F8).
    pub(crate) fn close_conn(&self, idle: Idle<M::Connection>, reason: CloseReason) {
        let (id, reason) = {
            let mut slot = self.slots.get(idle.slot);
            slot.unregister();
            let reason = if slot.meta.generation < self.fork_generation.load(Relaxed) {
                CloseReason::Forked
            } else {
                reason
            };
            (slot.meta.id, reason)
        };
        let Idle { conn, slot } = idle;
        // The connection is gone before its slot is free, so a new connect
        // can never overlap it: at most `max_open` exist at any moment.
        if reason == CloseReason::Forked {
            std::mem::forget(conn);
        } else {
            drop(conn);
        }
        self.state.lock().forget(slot);
        self.count_close(id, reason);
        self.after_close();
    }

    /// A connection closed: wake waiting checkouts (they plan its
    /// replacement) and `close()`.
    pub(crate) fn after_close(&self) {
        self.wake.notify_waiters();
    }

    /// Reset a returned connection off the caller's path, bounded by
    /// `reset_timeout`; a failure or timeout closes it quietly (F4).
    pub(crate) fn reset_in_background(self: &Arc<Self>, idle: Idle<M::Connection>) {
        let working = Working::new(Arc::clone(self), idle, true);
        let shared = Arc::clone(self);
        // Without a runtime `working` is dropped here, which closes it.
        self.spawn(async move {
            let mut working = working;
            shared.counters.resets.fetch_add(1, Relaxed);
            #[cfg(feature = "metrics")]
            let started = clock::now();
            let res = {
                let idle = working.idle_mut();
                tokio::time::timeout(shared.cfg.reset_timeout, shared.manager.reset(&mut idle.conn))
                    .await
            };
            #[cfg(feature = "metrics")]
            shared
                .metrics
                .reset
                .record(clock::now().since(started).as_secs_f64());
            match res {
                Ok(Ok(())) => {
                    let idle = working.idle_mut();
                    if shared.manager.probe(&mut idle.conn) == Probe::Clean {
                        working.finish_idle(clock::now());
                    } else {
                        working.finish_close(CloseReason::ResetFailed);
                    }
                }
                Ok(Err(e)) => {
                    let class = shared.manager.classify(&e);
                    tracing::debug!(pool = %shared.cfg.name, error = %e, ?class, "reset on return failed; connection closed");
                    if class == ErrorClass::Disconnect {
                        let generation = working.generation();
                        shared.invalidate(Some(generation), InvalidationCause::Disconnect);
                    }
                    working.finish_close(CloseReason::ResetFailed);
                }
                Err(_) => {
                    tracing::debug!(pool = %shared.cfg.name, "reset on return timed out; connection closed");
                    working.finish_close(CloseReason::ResetFailed);
                }
            }
        });
    }

    /// Say that a checkout reported as a leak came back (F6).
    pub(crate) fn report_returned(&self, info: CheckoutInfo) {
        {
            tracing::warn!(
                pool = %self.cfg.name,
                checkout_id = info.id,
                location = %info.location,
                label = info.label.as_deref().unwrap_or(""),
                held_for_secs = info.held_for.as_secs_f64(),
                "leaked connection returned after {:.1}s (checked out at {})",
                info.held_for.as_secs_f64(),
                info.location,
            );
            self.emit(Event::LeakResolved { checkout: &info });
        }
    }
}
