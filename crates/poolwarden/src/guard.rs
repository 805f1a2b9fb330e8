//! [`PooledConnection`]: the checkout guard, and the return path that runs
//! when it drops.

use std::borrow::Cow;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{self, Tick};
use crate::health::{self, AtReturn, Returned};
use crate::inventory::Live;
use crate::manager::{ErrorClass, Manager, Probe};
use crate::observe::{Event, InvalidationCause};
use crate::recycle::Held;
use crate::shared::Shared;
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
    shared: Arc<Shared<M>>,
    /// `None` only after `detach`, or inside `drop`.
    live: Option<Live<M::Connection>>,
    checkout_id: u64,
    since: Tick,
    /// Set when the connection must be closed on return.
    doomed: Option<CloseReason>,
    /// The deadline the checkout carries (`Pool::get_until`).
    deadline: Option<tokio::time::Instant>,
}

impl<M: Manager> PooledConnection<M> {
    pub(crate) fn new(
        shared: &Arc<Shared<M>>,
        live: Live<M::Connection>,
        checkout_id: u64,
        since: Tick,
    ) -> Self {
        PooledConnection {
            shared: Arc::clone(shared),
            live: Some(live),
            checkout_id,
            since,
            doomed: None,
            deadline: None,
        }
    }

    pub(crate) fn live(&self) -> &Live<M::Connection> {
        self.live
            .as_ref()
            .expect("a live guard holds its connection")
    }

    pub(crate) fn conn_mut(&mut self) -> &mut M::Connection {
        &mut self
            .live
            .as_mut()
            .expect("a live guard holds its connection")
            .conn
    }

    pub(crate) fn set_deadline(&mut self, deadline: Option<tokio::time::Instant>) {
        self.deadline = deadline;
    }

    /// The deadline this checkout carries for the borrower's commands: the
    /// one given to [`Pool::get_until`](crate::Pool::get_until), `None` for
    /// [`get`](crate::Pool::get). An associated function, so it never
    /// shadows a method of the connection.
    pub fn deadline(this: &Self) -> Option<tokio::time::Instant> {
        this.deadline
    }

    /// The generation the connection was opened in.
    fn generation(&self) -> u64 {
        self.live().slot.lock().meta.generation
    }

    /// Label this checkout (a request id, a job name). The label appears in
    /// leak reports, timeout errors and [`Pool::checkouts`](crate::Pool::checkouts) (F6, F7).
    pub fn label(&mut self, label: impl Into<Cow<'static, str>>) -> &mut Self {
        if let Some(live) = &self.live {
            let label = label.into();
            live.slot.lock().record.label = Some(label);
        }
        self
    }

    /// Close this connection when it is returned instead of reusing it.
    pub fn invalidate(&mut self) {
        self.doomed = Some(CloseReason::Invalidated);
    }

    /// Tell the pool about an error the application got on this connection.
    /// Returns the manager's classification: a disconnect retires every
    /// older connection (F2); an unresponsive server black-holes the pool
    /// ([`ErrorClass::Unresponsive`]); a broken connection or a usage error
    /// closes this one on return.
    pub fn report_error(&mut self, error: &M::Error) -> ErrorClass {
        let class = self.shared.classify(error);
        match class {
            ErrorClass::Disconnect => {
                self.doomed = Some(CloseReason::Closed);
                self.shared
                    .invalidate(Some(self.generation()), InvalidationCause::Disconnect);
            }
            ErrorClass::Unresponsive => {
                self.doomed = Some(CloseReason::Invalidated);
                tracing::warn!(pool = %self.shared.cfg.name, %error, "the server did not answer a borrower's command in time; waiting checkouts fail fast, older connections are retired");
                let source: crate::SharedError =
                    Arc::new(crate::error::Reported(error.to_string()));
                self.shared.black_hole(self.generation(), source);
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
        let live = this.live.take().expect("a live guard holds its connection");
        live.slot.lock().unregister();
        this.shared.inv.forget(&live.slot, false);
        this.shared.wake_all();
        *live.conn
    }

    /// This checkout's id.
    pub fn checkout_id(&self) -> u64 {
        self.checkout_id
    }

    /// The connection's id.
    pub fn connection_id(&self) -> u64 {
        self.live().slot.lock().meta.id
    }

    /// How long this checkout has been held.
    pub fn held_for(&self) -> Duration {
        clock::now().since(self.since)
    }

    /// The server's idle timeout for this connection, when the manager
    /// reported one.
    pub fn server_idle_timeout(&self) -> Option<Duration> {
        self.live().slot.lock().meta.server_idle_timeout
    }
}

impl<M: Manager> Deref for PooledConnection<M> {
    type Target = M::Connection;

    fn deref(&self) -> &M::Connection {
        &self.live().conn
    }
}

impl<M: Manager> DerefMut for PooledConnection<M> {
    fn deref_mut(&mut self) -> &mut M::Connection {
        self.conn_mut()
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
        if let Some(live) = self.live.take() {
            self.shared
                .check_in(live, self.checkout_id, self.since, self.doomed);
        }
    }
}

impl<M: Manager> Shared<M> {
    /// The return path. Never blocks, never panics into the caller: the
    /// decision is taken under the connection's slot lock; a clean
    /// connection goes back through `put_idle` (one short pool lock), a
    /// reset runs in the background, a close happens after the locks.
    fn check_in(
        self: &Arc<Self>,
        mut live: Live<M::Connection>,
        checkout_id: u64,
        since: Tick,
        doomed: Option<CloseReason>,
    ) {
        let panicking = std::thread::panicking();
        let probe = if doomed.is_some() || panicking {
            Probe::Corrupt
        } else {
            self.probe(&mut live.conn, true, &live.slot)
        };
        // One clock read per return, so `max_lifetime` and the server idle
        // limit hold at return whatever the maintenance interval (defect 6).
        let now = clock::now();
        let returned = Returned {
            probe,
            since,
            invalidated: doomed.is_some(),
            panicking,
        };
        let generation = self.generation.load(Relaxed);
        let (decision, disconnect, connection_id, conn_generation, leaked) = {
            let mut slot = live.slot.lock();
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
        match decision {
            // Used by a borrower and clean: proof the server works.
            AtReturn::Idle => self.put_idle(live, true),
            AtReturn::Reset => {
                self.reset_in_background(Held::new(self, live, CloseReason::ResetFailed))
            }
            AtReturn::Discard(reason) => {
                if disconnect {
                    self.invalidate(Some(conn_generation), InvalidationCause::Disconnect);
                }
                self.close_conn(live, reason, false);
            }
        }
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
