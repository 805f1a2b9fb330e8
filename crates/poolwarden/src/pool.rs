//! The [`Pool`] handle: the public API of a pool (the state it shares with
//! guards and background tasks is `Shared`, in `shared.rs`).

use std::sync::Arc;
use std::time::Duration;

use crate::clock;
use crate::config::PoolConfig;
use crate::error::PoolError;
use crate::guard::PooledConnection;
use crate::manager::Manager;
use crate::observe::InvalidationCause;
use crate::shared::Shared;
use crate::status::{CheckoutInfo, PoolStatus};

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

impl<M: Manager> Pool<M> {
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
    ///   a checkout waiting when that is seen fails at once.
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
        self.shared.checkout(location, timeout, None)
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
        self.shared.checkout(location, timeout, Some(deadline))
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
        self.shared.checkout(location, timeout, None)
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
