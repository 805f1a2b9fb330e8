//! Cutting commands in flight from outside the borrower: when a cluster
//! node is marked down (its connections' commands would otherwise wait for
//! their deadline on a frozen node) and when `Pool::close` reaches
//! `close_timeout` ([`Manager::cut_in_flight`](poolwarden::Manager::cut_in_flight)).
//!
//! # Implementation Details
//!
//! A [`Switch`] is a [`CancellationToken`] plus the reason it was flipped.
//! Switches form a tree: the manager's switch (flipped by `cut_in_flight`),
//! under it a cluster node's (flipped and replaced each time the node is
//! marked down), under that one child per connection, so each command waits
//! on its own connection's token (no contention between connections) while
//! one flip reaches every connection below it. A command races its
//! connection's token with its deadline (`deadline::run`); a flipped switch
//! wins like a passed deadline: the driver's future is dropped, the
//! connection marked (the probe says `Corrupt`), the server told to stop
//! the work (`KILL CONNECTION`, best effort), and the borrower gets a
//! [`CommandCut`].

use std::fmt;
use std::sync::{Arc, OnceLock};

use tokio_util::sync::{
    CancellationToken, WaitForCancellationFuture, WaitForCancellationFutureOwned,
};

/// Why commands in flight were cut.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CutReason {
    /// `Pool::close` reached its `close_timeout` with the connection still
    /// checked out.
    PoolClosed,
    /// The cluster manager marked the connection's node down.
    NodeDown {
        /// The node's `host:port`.
        address: String,
        /// Why (`unreachable`, `not in the primary component`, ...).
        why: String,
    },
}

impl fmt::Display for CutReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CutReason::PoolClosed => f.write_str(
                "the pool was closed and close_timeout passed with this connection still \
                 checked out",
            ),
            CutReason::NodeDown { address, why } => write!(
                f,
                "cluster node {address} was marked down ({why}); retry: new checkouts go to a \
                 healthy node"
            ),
        }
    }
}

/// A command cut before it finished because its connection's pool closed or
/// its cluster node was marked down: the error a borrower gets, inside
/// [`mysql_async::Error::Other`]. Find it with [`CommandCut::find`].
///
/// Like a lost connection: the connection is discarded by the pool (never
/// reused) and the server is asked to stop the work (`KILL CONNECTION`,
/// best effort). Whether a write that was sent took effect is unknown
/// (see [`OutcomeUnknown`](crate::OutcomeUnknown) for a `COMMIT`).
/// [`classify_error`](crate::classify_error) maps a node's cut to
/// [`ErrorClass::Disconnect`](poolwarden::ErrorClass::Disconnect) and a
/// closed pool's to [`ErrorClass::Broken`](poolwarden::ErrorClass::Broken).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CommandCut {
    /// The method that ran the command (`"query_drop"`, `"exec_first"`, ...).
    pub command: &'static str,
    /// The server's id of the connection (`CONNECTION_ID()`).
    pub connection_id: u32,
    /// Why it was cut.
    pub reason: CutReason,
    /// Whether the command had been sent. `false`: the switch had flipped
    /// before it was called; nothing was sent.
    pub sent: bool,
}

impl CommandCut {
    /// The cut-command error inside `error`, if that is what it is (also
    /// through an [`OutcomeUnknown`](crate::OutcomeUnknown)).
    pub fn find(error: &mysql_async::Error) -> Option<&CommandCut> {
        crate::ambiguous::find(error)
    }
}

impl fmt::Display for CommandCut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.sent {
            "was cut before its answer came"
        } else {
            "was not sent"
        };
        write!(
            f,
            "MySQL command `{}` on connection {} {what}: {}; the connection is discarded",
            self.command, self.connection_id, self.reason
        )
    }
}

impl std::error::Error for CommandCut {}

impl From<CommandCut> for mysql_async::Error {
    fn from(e: CommandCut) -> Self {
        mysql_async::Error::Other(Box::new(e))
    }
}

/// A switch that cuts the commands of every connection below it; flipped
/// once, never reset.
#[derive(Clone)]
pub(crate) struct Switch(Arc<Inner>);

struct Inner {
    token: CancellationToken,
    reason: OnceLock<CutReason>,
    parent: Option<Switch>,
}

impl Switch {
    /// A switch of its own (a manager's).
    pub(crate) fn root() -> Switch {
        Switch(Arc::new(Inner {
            token: CancellationToken::new(),
            reason: OnceLock::new(),
            parent: None,
        }))
    }

    /// A switch flipped with this one (and on its own).
    pub(crate) fn child(&self) -> Switch {
        Switch(Arc::new(Inner {
            token: self.0.token.child_token(),
            reason: OnceLock::new(),
            parent: Some(self.clone()),
        }))
    }

    /// Cut every command below this switch, now and from now on. The first
    /// reason stays.
    pub(crate) fn flip(&self, reason: CutReason) {
        let _ = self.0.reason.set(reason);
        self.0.token.cancel();
    }

    pub(crate) fn is_flipped(&self) -> bool {
        self.0.token.is_cancelled()
    }

    /// Completes when the switch (or one above it) flips.
    pub(crate) fn flipped(&self) -> WaitForCancellationFuture<'_> {
        self.0.token.cancelled()
    }

    /// As [`flipped`](Self::flipped), owning its token (for a stream).
    pub(crate) fn flipped_owned(&self) -> WaitForCancellationFutureOwned {
        self.0.token.clone().cancelled_owned()
    }

    /// Why it flipped: its own reason, or the nearest one above it.
    pub(crate) fn reason(&self) -> CutReason {
        match (self.0.reason.get(), &self.0.parent) {
            (Some(r), _) => r.clone(),
            (None, Some(parent)) => parent.reason(),
            // Flipped with no reason recorded cannot happen (`flip` sets
            // it first); say something true anyway.
            (None, None) => CutReason::PoolClosed,
        }
    }
}

impl fmt::Debug for Switch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Switch")
            .field("flipped", &self.is_flipped())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_flip_reaches_every_switch_below_with_its_reason() {
        let manager = Switch::root();
        let node = manager.child();
        let conn = node.child();
        let other = manager.child().child();
        node.flip(CutReason::NodeDown {
            address: "n1:3306".into(),
            why: "unreachable".into(),
        });
        conn.flipped().await;
        assert!(conn.is_flipped() && !other.is_flipped() && !manager.is_flipped());
        assert!(conn.reason().to_string().contains("n1:3306"));
        manager.flip(CutReason::PoolClosed);
        other.flipped().await;
        assert_eq!(other.reason(), CutReason::PoolClosed);
        // The node's own reason stays.
        assert!(matches!(conn.reason(), CutReason::NodeDown { .. }));
    }

    #[test]
    fn a_node_down_cut_is_a_disconnect_a_pool_close_cut_is_broken() {
        use poolwarden::ErrorClass;
        let cut = |reason| {
            mysql_async::Error::from(CommandCut {
                command: "exec_drop",
                connection_id: 1,
                reason,
                sent: true,
            })
        };
        let node = CutReason::NodeDown {
            address: "n0:3306".into(),
            why: "unreachable".into(),
        };
        assert_eq!(crate::classify_error(&cut(node)), ErrorClass::Disconnect);
        assert_eq!(
            crate::classify_error(&cut(CutReason::PoolClosed)),
            ErrorClass::Broken
        );
    }
}
