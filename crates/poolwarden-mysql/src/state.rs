//! What the manager remembers about each open connection: the facts read at
//! connect, the `autocommit` mode after init SQL, and whether the connection
//! may have been handed out since its last reset.
//!
//! # Finding a connection's record without a round trip
//!
//! [`Manager::facts`](poolwarden::Manager::facts) and
//! [`Manager::probe`](poolwarden::Manager::probe) are synchronous and get only
//! the `Conn`. A `Conn` has no user-data slot, and its server id is not unique
//! across servers (after a failover two live connections can share one). So
//! every connection is opened with its own [`Opts`] whose `after_connect`
//! callback is a fresh `Arc` that wraps the user's callback (if any) and does
//! nothing else. `Conn::opts().after_connect()` hands that `Arc` back, and its
//! address is the connection's key here. The table keeps a `Weak` to it, so:
//!
//! * the address cannot be reused by another callback while the record
//!   exists (the allocation outlives every strong reference while a `Weak`
//!   does), and
//! * a record whose connection was dropped is recognisable
//!   (`strong_count() == 0`) and is pruned on the next connect. The pool has
//!   no "connection closed" hook, so this is how the table stays bounded.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use mysql_async::{Conn, Opts, OptsBuilder};
use poolwarden::ConnectionFacts;

/// The future type of a mysql_async `after_connect` callback.
type HookFuture<'a> = Pin<Box<dyn Future<Output = mysql_async::Result<()>> + Send + 'a>>;
/// A mysql_async `after_connect` callback, as `Opts::after_connect` returns it.
type Hook = dyn for<'a> Fn(&'a mut Conn) -> HookFuture<'a> + Send + Sync;

/// Whether a connection may have been used since the manager last made it
/// clean (connect or reset). Only [`ResetPolicy::Full`] consults it.
///
/// The manager never sees a hand-out: the pool gives the borrower the `Conn`
/// directly. What it does see is its own `connect`, `reset` and `validate`
/// calls and the pool's probes. The pool (crates/poolwarden, `checkout.rs`,
/// `recycle.rs`, `guard.rs`) probes:
///
/// * once right after a successful reset (it closes the connection unless
///   the probe says `Clean`),
/// * once when it takes an idle connection for a checkout, unless it
///   validates it instead (then `validate` runs and no probe),
/// * once at return.
///
/// So a connection is known clean for exactly the probes that can come
/// before the next hand-out: two after a reset, one after a connect; a
/// `validate` may be the last step before a hand-out, so it spends them all.
/// An extra probe the pool might add later costs a reset or a replaced
/// connection, never a leak; a missing one (for example no probe after
/// reset) would let one borrower's state through, which is why the tests in
/// this file pin the sequence.
///
/// [`ResetPolicy::Full`]: crate::ResetPolicy::Full
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lease {
    /// Clean, and this many more probes may answer `Clean`.
    Clean {
        /// Probes left before the connection counts as handed out.
        probes: u8,
    },
    /// May have been handed out since it was last made clean.
    Lent,
}

impl Lease {
    /// After `connect`: the checkout probe is the only one before hand-out.
    pub(crate) const AFTER_CONNECT: Lease = Lease::Clean { probes: 1 };
    /// After `reset`: the pool's post-reset check, then the checkout probe.
    pub(crate) const AFTER_RESET: Lease = Lease::Clean { probes: 2 };

    /// Spend one probe: `true` while the connection is still known clean.
    pub(crate) fn spend(&mut self) -> bool {
        match *self {
            Lease::Clean { probes } if probes > 0 => {
                *self = if probes == 1 {
                    Lease::Lent
                } else {
                    Lease::Clean { probes: probes - 1 }
                };
                true
            }
            _ => {
                *self = Lease::Lent;
                false
            }
        }
    }
}

/// The manager's record of one connection.
#[derive(Debug, Clone)]
pub(crate) struct ConnState {
    /// What the server said at connect.
    pub(crate) facts: ConnectionFacts,
    /// `SERVER_STATUS_AUTOCOMMIT` after connect and init SQL.
    pub(crate) autocommit: bool,
    /// See [`Lease`].
    pub(crate) lease: Lease,
}

impl Default for ConnState {
    fn default() -> Self {
        ConnState {
            facts: ConnectionFacts::default(),
            autocommit: true,
            lease: Lease::Lent,
        }
    }
}

struct Entry {
    tag: Weak<Hook>,
    state: ConnState,
}

/// Records of the manager's live connections (see the module docs).
#[derive(Default)]
pub(crate) struct Registry {
    entries: Mutex<HashMap<usize, Entry>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("connections", &self.lock().len())
            .finish()
    }
}

fn key(tag: &Arc<Hook>) -> usize {
    Arc::as_ptr(tag).cast::<()>() as usize
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, HashMap<usize, Entry>> {
        // A panic while holding this lock leaves plain data behind; keep going.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Options for one new connection: `base` plus a fresh identifying
    /// `after_connect` callback (which runs the user's callback, if any),
    /// registered here with a default record. Also forgets the records of
    /// connections that no longer exist.
    pub(crate) fn tagged_opts(&self, base: &Opts) -> Opts {
        let user = base.after_connect();
        let opts: Opts = OptsBuilder::from_opts(base.clone())
            .after_connect(hook(move |conn| match &user {
                Some(callback) => callback(conn),
                None => Box::pin(std::future::ready(Ok(()))),
            }))
            .into();
        let tag = opts
            .after_connect()
            .expect("the after_connect callback was just set");
        let mut entries = self.lock();
        entries.retain(|_, e| e.tag.strong_count() > 0);
        entries.insert(
            key(&tag),
            Entry {
                tag: Arc::downgrade(&tag),
                state: ConnState::default(),
            },
        );
        opts
    }

    /// Run `f` on `conn`'s record; `None` for a connection this manager did
    /// not open.
    pub(crate) fn with<R>(&self, conn: &Conn, f: impl FnOnce(&mut ConnState) -> R) -> Option<R> {
        let tag = conn.opts().after_connect()?;
        let mut entries = self.lock();
        entries.get_mut(&key(&tag)).map(|e| f(&mut e.state))
    }

    /// A copy of `conn`'s record.
    pub(crate) fn get(&self, conn: &Conn) -> Option<ConnState> {
        self.with(conn, |s| s.clone())
    }

    /// How many records are held (for tests and `Debug`).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

/// Pins the closure's signature to the higher-ranked one mysql_async wants.
fn hook<F>(f: F) -> F
where
    F: for<'a> Fn(&'a mut Conn) -> HookFuture<'a> + Send + Sync + 'static,
{
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_follows_the_pools_probe_sequence() {
        // connect -> checkout probe -> (borrow) -> return probe
        let mut l = Lease::AFTER_CONNECT;
        assert!(l.spend(), "checkout probe of a new connection");
        assert!(!l.spend(), "return probe after the borrow");
        // reset -> post-reset probe -> checkout probe -> return probe
        let mut l = Lease::AFTER_RESET;
        assert!(l.spend(), "post-reset probe");
        assert!(l.spend(), "checkout probe");
        assert!(!l.spend(), "return probe");
        assert!(!l.spend(), "stays lent until the next reset");
        assert_eq!(l, Lease::Lent);
    }

    #[test]
    fn records_live_as_long_as_their_options() {
        let reg = Registry::default();
        let base = Opts::from_url("mysql://u@127.0.0.1:1/db").unwrap();
        let a = reg.tagged_opts(&base);
        let b = reg.tagged_opts(&base);
        assert_eq!(reg.len(), 2);
        let ka = key(&a.after_connect().unwrap());
        let kb = key(&b.after_connect().unwrap());
        assert_ne!(ka, kb, "each connection gets its own key");
        // Cloned options (mysql_async clones them into the Conn) keep the key.
        let a2 = a.clone();
        assert_eq!(key(&a2.after_connect().unwrap()), ka);
        drop(a);
        drop(a2);
        drop(b);
        let _c = reg.tagged_opts(&base);
        assert_eq!(reg.len(), 1, "dead records are pruned on the next connect");
    }

    #[test]
    fn the_users_callback_is_kept() {
        let reg = Registry::default();
        let base: Opts =
            OptsBuilder::from_opts(Opts::from_url("mysql://u@127.0.0.1:1/db").unwrap())
                .after_connect(hook(|_conn| Box::pin(std::future::ready(Ok(())))))
                .into();
        let user = base.after_connect().unwrap();
        let tagged = reg.tagged_opts(&base);
        let ours = tagged.after_connect().unwrap();
        assert!(!Arc::ptr_eq(&user, &ours));
        // The wrapper holds the user's callback.
        assert_eq!(Arc::strong_count(&user), 3, "base, `user` and the wrapper");
    }
}
