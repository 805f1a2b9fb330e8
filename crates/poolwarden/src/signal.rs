//! [`ServerSignal`]: how a manager tells its pool what it learned about the
//! server outside the pool's own calls (a side connection that got no
//! answer after a command deadline).

use std::fmt;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Weak};

use crate::error::SharedError;
use crate::manager::Manager;
use crate::shared::Shared;

/// The pool end of [`ServerSignal`], type-erased.
trait Receiver: Send + Sync {
    /// Returns whether the pool took it (not closed).
    fn unresponsive(&self, error: SharedError) -> bool;
}

impl<M: Manager> Receiver for Shared<M> {
    fn unresponsive(&self, error: SharedError) -> bool {
        if self.inv.is_closed() {
            return false;
        }
        tracing::warn!(pool = %self.cfg.name, %error, "the manager reports that the server stopped answering; waiting checkouts fail fast, older connections are retired");
        // NOTE: the current generation, not a connection's: the manager
        // signals once per episode (see `ServerSignal::unresponsive`).
        let generation = self.generation.load(Relaxed);
        self.black_hole(generation, error);
        true
    }
}

/// A handle a manager gets from its pool once, when the pool is built
/// ([`Manager::attach`]). Cheap to clone; it does not keep the pool alive.
#[derive(Clone)]
pub struct ServerSignal {
    pool: Option<Weak<dyn Receiver>>,
}

impl ServerSignal {
    pub(crate) fn new<M: Manager>(shared: &Arc<Shared<M>>) -> Self {
        let weak: Weak<dyn Receiver> = Arc::downgrade(shared) as Weak<dyn Receiver>;
        ServerSignal { pool: Some(weak) }
    }

    /// A handle attached to no pool: every signal is dropped. What a
    /// manager holds before [`Manager::attach`] (or outside a pool).
    pub fn detached() -> Self {
        ServerSignal { pool: None }
    }

    /// The server stopped answering while its sockets stayed open, as seen
    /// off the pool's own calls (for example: a command passed its deadline
    /// and a side connection got no answer either). The pool reacts as to
    /// an [`ErrorClass::Unresponsive`](crate::ErrorClass::Unresponsive)
    /// error: waiting checkouts fail fast with `error` as the source,
    /// connections opened before now are retired, and one successful round
    /// trip clears it.
    ///
    /// Send it once per episode (not once per cut command): each signal
    /// retires every connection opened before it. Returns whether a pool
    /// got it (`false` when detached, after the pool was dropped, or after
    /// [`Pool::close`](crate::Pool::close)).
    pub fn unresponsive<E>(&self, error: E) -> bool
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        let Some(pool) = self.pool.as_ref().and_then(Weak::upgrade) else {
            return false;
        };
        pool.unresponsive(Arc::new(error))
    }

    /// Whether this handle reaches a live pool.
    pub fn is_attached(&self) -> bool {
        self.pool.as_ref().is_some_and(|p| p.strong_count() > 0)
    }
}

impl Default for ServerSignal {
    fn default() -> Self {
        ServerSignal::detached()
    }
}

impl fmt::Debug for ServerSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerSignal")
            .field("attached", &self.is_attached())
            .finish()
    }
}
