//! [`PooledConnection`]: the checkout guard, and the return path that runs
//! when it drops.

use std::borrow::Cow;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{self, Tick};
use crate::health::{self, AtReturn, Returned};
use crate::manager::{ErrorClass, Manager, Probe};
use crate::observe::{Event, InvalidationCause};
use crate::pool::Shared;
use crate::slots::Idle;
use crate::status::CloseReason;

/// A checked-out connection. Derefs to the manager's connection; dropping it
/// returns the connection to the pool.
///
/// The return never blocks and never panics: a connection that is clean
/// goes straight back (no round trip); one that needs a reset is reset in
/// the background with a timeout; one that is broken, mid-protocol, stale,
/// too old or returned by a panicking thread is closed (F4, F5, F12, F13).
#[must_use = "dropping the guard returns the connection at once"]
pub struct PooledConnection<M: Manager> {
    pub(crate) shared: Arc<Shared<M>>,
    /// `None` only after `detach`, or inside `drop`.
    pub(crate) inner: Option<Idle<M::Connection>>,
    checkout_id: u64,
    since: Tick,
    /// Set when the connection must be closed on return.
    doomed: Option<CloseReason>,
}

impl<M: Manager> PooledConnection<M> {
    pub(crate) fn new(
        shared: &Arc<Shared<M>>,
        idle: Idle<M::Connection>,
        checkout_id: u64,
        since: Tick,
    ) -> Self {
        PooledConnection {
            shared: Arc::clone(shared),
            inner: Some(idle),
            checkout_id,
            since,
            doomed: None,
        }
    }

    /// The connection's slot.
    pub(crate) fn slot(&self) -> u32 {
        self.inner.as_ref().map_or(0, |i| i.slot)
    }

    /// The generation the connection was opened in.
    pub(crate) fn generation(&self) -> u64 {
        self.shared.slots.get(self.slot()).meta.generation
    }

    pub(crate) fn conn_mut(&mut self) -> Option<&mut M::Connection> {
        self.inner.as_mut().map(|i| &mut i.conn)
    }

    pub(crate) fn mark(&mut self, reason: CloseReason) {
        self.doomed = Some(reason);
    }

    pub(crate) fn unmark(&mut self) {
        self.doomed = None;
    }

    /// Undo a claim that never became a hand-out: take the connection back
    /// out of the guard, end its checkout record and uncount it.
    fn unclaim(&mut self) -> Option<Idle<M::Connection>> {
        let idle = self.inner.take()?;
        let mut slot = self.shared.slots.get(idle.slot);
        slot.unregister();
        slot.handed_out -= 1;
        drop(slot);
        Some(idle)
    }

    /// Close the connection now, without the return-path checks.
    pub(crate) fn discard(mut self, reason: CloseReason) {
        if let Some(idle) = self.unclaim() {
            self.shared.close_conn(idle, reason);
        }
    }

    /// Put an untouched connection back as it was (its `last_ok` unchanged).
    pub(crate) fn release_unused(mut self) {
        if let Some(idle) = self.unclaim() {
            self.shared.put_idle(idle);
        }
    }

    /// Label this checkout (a request id, a job name). The label appears in
    /// leak reports, timeout errors and [`Pool::checkouts`](crate::Pool::checkouts) (F6, F7).
    pub fn label(&mut self, label: impl Into<Cow<'static, str>>) -> &mut Self {
        if let Some(idle) = &self.inner {
            let label = label.into();
            self.shared.slots.get(idle.slot).record.label = Some(label);
        }
        self
    }

    /// Close this connection when it is returned instead of reusing it.
    pub fn invalidate(&mut self) {
        self.doomed = Some(CloseReason::Invalidated);
    }

    /// Tell the pool about an error the application got on this connection.
    /// Returns the manager's classification: a disconnect retires every
    /// older connection (F2); a broken connection or a usage error closes
    /// this one on return.
    pub fn report_error(&mut self, error: &M::Error) -> ErrorClass {
        let class = self.shared.manager.classify(error);
        match class {
            ErrorClass::Disconnect => {
                self.doomed = Some(CloseReason::Closed);
                self.shared
                    .invalidate(Some(self.generation()), InvalidationCause::Disconnect);
            }
            ErrorClass::Broken | ErrorClass::Fatal => self.doomed = Some(CloseReason::Invalidated),
            ErrorClass::Usage => {
                tracing::error!(pool = %self.shared.cfg.name, %error, "connection misused (a bug in the caller); it will be closed");
                self.doomed = Some(CloseReason::Corrupt);
            }
            _ => {}
        }
        class
    }

    /// Take the connection out of the pool for good. The pool forgets it and
    /// may open another in its place.
    pub fn detach(mut this: Self) -> M::Connection {
        let idle = this
            .inner
            .take()
            .expect("a live guard holds its connection");
        this.shared.slots.get(idle.slot).unregister();
        this.shared.state.lock().forget(idle.slot);
        this.shared.after_close();
        idle.conn
    }

    /// This checkout's id.
    pub fn checkout_id(&self) -> u64 {
        self.checkout_id
    }

    /// The connection's id.
    pub fn connection_id(&self) -> u64 {
        self.shared.slots.get(self.slot()).meta.id
    }

    /// How long this checkout has been held.
    pub fn held_for(&self) -> Duration {
        clock::now().since(self.since)
    }

    /// The server's idle timeout for this connection, when the manager
    /// reported one.
    pub fn server_idle_timeout(&self) -> Option<Duration> {
        self.shared.slots.get(self.slot()).meta.server_idle_timeout
    }
}

impl<M: Manager> Deref for PooledConnection<M> {
    type Target = M::Connection;

    fn deref(&self) -> &M::Connection {
        &self
            .inner
            .as_ref()
            .expect("a live guard holds its connection")
            .conn
    }
}

impl<M: Manager> DerefMut for PooledConnection<M> {
    fn deref_mut(&mut self) -> &mut M::Connection {
        &mut self
            .inner
            .as_mut()
            .expect("a live guard holds its connection")
            .conn
    }
}

impl<M: Manager> std::fmt::Debug for PooledConnection<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledConnection")
            .field("checkout_id", &self.checkout_id)
            .field("connection_id", &self.connection_id())
            .finish_non_exhaustive()
    }
}

impl<M: Manager> Drop for PooledConnection<M> {
    fn drop(&mut self) {
        if let Some(idle) = self.inner.take() {
            self.shared
                .check_in(idle, self.checkout_id, self.since, self.doomed);
        }
    }
}

impl<M: Manager> Shared<M> {
    /// The return path. Never blocks, never panics into the caller: the
    /// decision and the bookkeeping happen under one short lock; resets run
    /// in the background; closes happen after the lock is released.
    fn check_in(
        self: &Arc<Self>,
        mut idle: Idle<M::Connection>,
        checkout_id: u64,
        since: Tick,
        doomed: Option<CloseReason>,
    ) {
        let panicking = std::thread::panicking();
        let probe = if doomed.is_some() || panicking {
            Probe::Corrupt
        } else {
            self.manager.probe_returned(&mut idle.conn)
        };
        // A clean return reads no clock: "now" is estimated as the later of
        // the hand-out time and the pool's recent reading (at most one
        // maintenance interval old). The estimate is never later than the
        // truth, so idle and server timeouts measured from it err towards
        // retiring early (F1), and a lifetime passed during the hold is
        // caught at the latest by the next checkout, which reads the clock.
        let exact = probe != Probe::Clean || self.observer.is_some() || cfg!(feature = "metrics");
        let now = if exact {
            clock::now()
        } else {
            since.max(self.recent())
        };
        let returned = Returned {
            probe,
            since,
            invalidated: doomed.is_some(),
            panicking,
        };
        let generation = self.generation.load(Relaxed);
        let (mut decision, disconnect, connection_id, conn_generation, leaked) = {
            let mut slot = self.slots.get(idle.slot);
            let meta = &mut slot.meta;
            let mut decision = health::at_return(meta, returned, now, generation);
            match (doomed, decision) {
                (Some(reason), AtReturn::Discard(_)) => decision = AtReturn::Discard(reason),
                (_, AtReturn::Idle) => {
                    meta.last_io = now;
                    meta.idle_since = now;
                }
                _ => {}
            }
            let disconnect = decision == AtReturn::Discard(CloseReason::Closed)
                && doomed.is_none()
                && health::closed_means_disconnect(meta, since, now);
            let (id, conn_generation) = (meta.id, meta.generation);
            (decision, disconnect, id, conn_generation, slot.unregister())
        };
        if decision != AtReturn::Discard(CloseReason::Closed) {
            let mut st = self.state.lock();
            if decision == AtReturn::Idle {
                if st.closed {
                    decision = AtReturn::Discard(CloseReason::PoolClosed);
                } else if st.idle.len() as u32 >= self.cfg.max_size {
                    decision = AtReturn::Discard(CloseReason::Overflow);
                } else {
                    st.push_idle(idle);
                    drop(st);
                    self.sem.add_permits(1);
                    self.after_check_in(checkout_id, connection_id, since, now, leaked);
                    return;
                }
            } else if decision == AtReturn::Reset {
                st.resetting += 1;
            }
        }
        match decision {
            AtReturn::Idle => unreachable!("handled above"),
            AtReturn::Reset => self.reset_in_background(idle),
            AtReturn::Discard(reason) => {
                if disconnect {
                    self.invalidate(Some(conn_generation), InvalidationCause::Disconnect);
                }
                self.close_conn(idle, reason);
            }
        }
        self.after_check_in(checkout_id, connection_id, since, now, leaked);
    }

    fn after_check_in(
        &self,
        checkout_id: u64,
        connection_id: u64,
        since: Tick,
        now: Tick,
        leaked: Option<crate::status::CheckoutInfo>,
    ) {
        #[cfg(feature = "metrics")]
        self.metrics.hold.record(now.since(since).as_secs_f64());
        if let Some(o) = &self.observer {
            o.on_event(&Event::CheckedIn {
                checkout_id,
                connection_id,
                held_for: now.since(since),
            });
        }
        if let Some(info) = leaked {
            self.report_returned(info);
        }
    }
}
