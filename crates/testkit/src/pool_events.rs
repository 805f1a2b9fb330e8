//! An [`Observer`] that records a pool's events with their time, for tests
//! that assert on what the pool did (connects, discards, leaks,
//! invalidations), and a bounded polling helper.
//!
//! Shared by the fault suites of every manager crate (MySQL, PostgreSQL), so
//! that a change to the pool's [`Event`]s is followed in one place.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use poolwarden::{CheckoutInfo, CloseReason, ErrorClass, Event, InvalidationCause, Observer};
use tokio::sync::Notify;

/// Polls `cond` every 5 ms until it holds (`true`) or `timeout` passes
/// (`false`).
pub async fn poll_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// One pool event, owned, without the per-checkout noise unless asked for.
#[derive(Debug, Clone)]
pub enum Kind {
    /// A connection opened.
    Connected {
        /// The pool's connection id.
        id: u64,
    },
    /// A connect failed.
    ConnectFailed {
        /// The error's text.
        error: String,
        /// How the manager classified it.
        class: ErrorClass,
    },
    /// A checkout began (only with [`Events::with_checkouts`]).
    CheckedOut {
        /// The checkout's id.
        checkout_id: u64,
        /// The connection's id.
        id: u64,
    },
    /// A checkout ended (only with [`Events::with_checkouts`]).
    CheckedIn {
        /// The checkout's id.
        checkout_id: u64,
        /// The connection's id.
        id: u64,
    },
    /// A connection was closed.
    Discarded {
        /// The connection's id.
        id: u64,
        /// Why.
        reason: CloseReason,
    },
    /// A checkout was held past the leak threshold.
    Leak(CheckoutInfo),
    /// A checkout was held near the server's idle timeout.
    NearServerTimeout(CheckoutInfo),
    /// A reported leak was returned.
    LeakResolved(CheckoutInfo),
    /// The pool retired every connection older than `generation`.
    Invalidated {
        /// The new generation.
        generation: u64,
        /// Why.
        cause: InvalidationCause,
    },
    /// Any other event, as its `Debug` text (for printing only).
    Other(String),
}

/// An event and when it was seen.
#[derive(Debug, Clone)]
pub struct Rec {
    /// When it was seen.
    pub at: Instant,
    /// What it was.
    pub kind: Kind,
}

/// An [`Observer`] that keeps every event with its time and wakes tests
/// waiting for one.
pub struct Events {
    recs: Mutex<Vec<Rec>>,
    notify: Notify,
    checkouts: bool,
}

impl Events {
    /// Without `CheckedOut`/`CheckedIn` (load tests make millions).
    pub fn new() -> Arc<Self> {
        Arc::new(Events {
            recs: Mutex::new(Vec::new()),
            notify: Notify::new(),
            checkouts: false,
        })
    }

    /// With `CheckedOut`/`CheckedIn`.
    pub fn with_checkouts() -> Arc<Self> {
        Arc::new(Events {
            recs: Mutex::new(Vec::new()),
            notify: Notify::new(),
            checkouts: true,
        })
    }

    /// Every event recorded so far.
    pub fn all(&self) -> Vec<Rec> {
        self.recs.lock().clone()
    }

    /// The first event matching `pred`, waiting up to `timeout` for it.
    pub async fn wait_for(&self, timeout: Duration, pred: impl Fn(&Rec) -> bool) -> Option<Rec> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let found = {
                let recs = self.recs.lock();
                recs.iter().find(|r| pred(r)).cloned()
            };
            if found.is_some() {
                return found;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    /// Wait up to `timeout` until `pred` holds for the whole record.
    pub async fn wait_until(&self, timeout: Duration, pred: impl Fn(&[Rec]) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let holds = {
                let recs = self.recs.lock();
                pred(&recs)
            };
            if holds {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }

    /// Connection ids opened, with when.
    pub fn connected(&self) -> Vec<(Instant, u64)> {
        self.recs
            .lock()
            .iter()
            .filter_map(|r| match r.kind {
                Kind::Connected { id } => Some((r.at, id)),
                _ => None,
            })
            .collect()
    }

    /// Connection ids closed, with when and why.
    pub fn discarded(&self) -> Vec<(Instant, u64, CloseReason)> {
        self.recs
            .lock()
            .iter()
            .filter_map(|r| match r.kind {
                Kind::Discarded { id, reason } => Some((r.at, id, reason)),
                _ => None,
            })
            .collect()
    }

    /// Failed connects, with when.
    pub fn connect_failures(&self) -> Vec<(Instant, String, ErrorClass)> {
        self.recs
            .lock()
            .iter()
            .filter_map(|r| match &r.kind {
                Kind::ConnectFailed { error, class } => Some((r.at, error.clone(), *class)),
                _ => None,
            })
            .collect()
    }
}

impl Observer for Events {
    fn on_event(&self, event: &Event<'_>) {
        let kind = match event {
            Event::Connected { connection_id, .. } => Kind::Connected { id: *connection_id },
            Event::ConnectFailed { error, class, .. } => Kind::ConnectFailed {
                error: error.to_string(),
                class: *class,
            },
            Event::CheckedOut {
                checkout_id,
                connection_id,
                ..
            } => {
                if !self.checkouts {
                    return;
                }
                Kind::CheckedOut {
                    checkout_id: *checkout_id,
                    id: *connection_id,
                }
            }
            Event::CheckedIn {
                checkout_id,
                connection_id,
                ..
            } => {
                if !self.checkouts {
                    return;
                }
                Kind::CheckedIn {
                    checkout_id: *checkout_id,
                    id: *connection_id,
                }
            }
            Event::Discarded {
                connection_id,
                reason,
            } => Kind::Discarded {
                id: *connection_id,
                reason: *reason,
            },
            Event::Leak { checkout } => Kind::Leak((*checkout).clone()),
            Event::NearServerTimeout { checkout } => Kind::NearServerTimeout((*checkout).clone()),
            Event::LeakResolved { checkout } => Kind::LeakResolved((*checkout).clone()),
            Event::Invalidated { generation, cause } => Kind::Invalidated {
                generation: *generation,
                cause: *cause,
            },
            other => Kind::Other(format!("{other:?}")),
        };
        self.recs.lock().push(Rec {
            at: Instant::now(),
            kind,
        });
        self.notify.notify_waiters();
    }
}
