//! Connections in no borrower's hands: back to idle, closed, or worked on in
//! the background ([`Held`]: a checkout's validation ping, a reset after
//! return, a keepalive ping).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use crate::call::Target;
use crate::clock::{self, Tick};
use crate::inventory::Live;
use crate::manager::{Manager, Probe};
use crate::observe::{Event, ManagerCall};
use crate::shared::Shared;
use crate::status::{CheckoutInfo, CloseReason};

/// A connection the pool works on off any borrower's hands, counted in
/// `background` while held. Every way out is a method that consumes it:
/// [`Held::into_live`] (the work succeeded, the caller decides),
/// [`Held::finish_idle`], [`Held::close`]. Dropped half-way (a timeout, a
/// cancelled checkout, a runtime shutting down), it closes the connection
/// with its `if_dropped` reason: the accounting never loses one.
pub(crate) struct Held<M: Manager> {
    shared: Arc<Shared<M>>,
    live: Option<Live<M::Connection>>,
    if_dropped: CloseReason,
}

impl<M: Manager> Held<M> {
    /// owned -> background.
    pub(crate) fn new(
        shared: &Arc<Shared<M>>,
        live: Live<M::Connection>,
        if_dropped: CloseReason,
    ) -> Self {
        shared.inv.enter_background();
        Held::counted(shared, live, if_dropped)
    }

    /// A connection the inventory already counted in `background`
    /// ([`Inventory::take_idle_where`](crate::inventory::Inventory::take_idle_where)).
    pub(crate) fn counted(
        shared: &Arc<Shared<M>>,
        live: Live<M::Connection>,
        if_dropped: CloseReason,
    ) -> Self {
        Held {
            shared: Arc::clone(shared),
            live: Some(live),
            if_dropped,
        }
    }

    pub(crate) fn conn_mut(&mut self) -> &mut M::Connection {
        &mut self.live_mut().conn
    }

    fn live_mut(&mut self) -> &mut Live<M::Connection> {
        self.live.as_mut().expect("held until finished")
    }

    /// Who it is, for reports.
    pub(crate) fn target(&self) -> Target {
        Target::of(&self.live.as_ref().expect("held until finished").slot)
    }

    /// background -> owned.
    pub(crate) fn into_live(mut self) -> Live<M::Connection> {
        let live = self.live.take().expect("held until finished");
        self.shared.inv.leave_background();
        live
    }

    /// background -> idle, known good as of `now`.
    pub(crate) fn finish_idle(self, now: Tick) {
        let shared = Arc::clone(&self.shared);
        let live = self.into_live();
        {
            let mut slot = live.slot.lock();
            slot.meta.last_io = now;
            slot.meta.last_ok = now;
            slot.meta.idle_since = now;
        }
        shared.put_idle(live, true);
    }

    /// background -> gone.
    pub(crate) fn close(mut self, reason: CloseReason) {
        let live = self.live.take().expect("held until finished");
        self.shared.close_conn(live, reason, true);
    }
}

impl<M: Manager> Drop for Held<M> {
    fn drop(&mut self) {
        if let Some(live) = self.live.take() {
            self.shared.close_conn(live, self.if_dropped, true);
        }
    }
}

impl<M: Manager> Shared<M> {
    /// owned -> idle, or closed when the pool is closed or enough
    /// connections are idle (overflow, F7). `proven`: it just did a round
    /// trip (a borrower's clean return, a reset, a ping), which ends the
    /// connect backoff.
    pub(crate) fn put_idle(&self, live: Live<M::Connection>, proven: bool) {
        if proven {
            self.note_proven();
        }
        if let Err((live, reason)) = self.inv.put_idle(live) {
            self.close_conn(live, reason, false);
        }
    }

    /// owned (or background) -> gone: close the connection and free its
    /// slot. Connections inherited across a fork are forgotten instead, so
    /// the child never writes to the parent's socket (F8).
    pub(crate) fn close_conn(
        &self,
        live: Live<M::Connection>,
        reason: CloseReason,
        background: bool,
    ) {
        let (id, reason) = {
            let mut slot = live.slot.lock();
            slot.unregister();
            let reason = if slot.meta.generation < self.fork_generation.load(Relaxed) {
                CloseReason::Forked
            } else {
                reason
            };
            (slot.meta.id, reason)
        };
        let slot = Arc::clone(&live.slot);
        // The connection is gone before its slot is free, so a new connect
        // can never overlap it: at most `max_open` exist at any moment.
        if reason == CloseReason::Forked {
            std::mem::forget(live.conn);
        } else {
            drop(live.conn);
        }
        self.inv.forget(&slot, background);
        self.count_close(id, reason);
        // Waiting checkouts plan its replacement; `close()` re-checks.
        self.wake_all();
    }

    /// Reset a returned connection off the caller's path, bounded by
    /// `reset_timeout`; a failure, timeout or panic closes it (F4), and is
    /// logged at `warn` and observed.
    pub(crate) fn reset_in_background(self: &Arc<Self>, held: Held<M>) {
        let shared = Arc::clone(self);
        // Without a runtime `held` is dropped here, which closes it.
        self.spawn(async move {
            let mut held = held;
            shared.counters.resets.fetch_add(1, Relaxed);
            #[cfg(feature = "metrics")]
            let started = clock::now();
            let target = held.target();
            let res = shared
                .bounded(
                    ManagerCall::Reset,
                    target,
                    shared.cfg.reset_timeout,
                    shared.manager.reset(held.conn_mut()),
                )
                .await;
            #[cfg(feature = "metrics")]
            shared
                .metrics
                .reset
                .record(clock::now().since(started).as_secs_f64());
            match res {
                Ok(()) => {
                    let live = held.live_mut();
                    if shared.probe(&mut live.conn, false, &live.slot) == Probe::Clean {
                        held.finish_idle(clock::now());
                    } else {
                        held.close(CloseReason::ResetFailed);
                    }
                }
                Err(_) => held.close(CloseReason::ResetFailed),
            }
        });
    }

    /// Say that a checkout reported as a leak came back (F6).
    pub(crate) fn report_returned(&self, info: CheckoutInfo) {
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
