//! What a returned connection goes through before the next borrower gets
//! it (F13), and the plan for one connection.

use crate::sql::SessionEffect;
use crate::track::Seen;

/// How much of the borrower's session state is undone when a connection
/// comes back to the pool, and when.
///
/// | policy | reset when | with | cost of a borrow that ran only `SELECT`s |
/// |---|---|---|---|
/// | [`Auto`](ResetPolicy::Auto) (default) | the borrower may have changed something | the cheapest sufficient reset (below) | nothing |
/// | [`Clean`](ResetPolicy::Clean) | every return | [`CLEAN_SQL`](crate::CLEAN_SQL) (prepared statements kept) | one round trip, off the caller's path |
/// | [`Full`](ResetPolicy::Full) | every return | `DISCARD ALL` | one round trip, prepared statements lost |
/// | [`Rollback`](ResetPolicy::Rollback) | a transaction is or may be open | `ROLLBACK` | nothing |
/// | [`None`](ResetPolicy::None) | never | nothing | nothing |
///
/// Under `Auto`: an open transaction alone costs a `ROLLBACK`; `SET`,
/// temporary tables, advisory locks, `LISTEN`, cursors `WITH HOLD` cost the
/// "Clean" sequence (which keeps the statement cache); SQL `PREPARE`,
/// `DISCARD`, `DO`, `CALL`, unknown statements and raw use of the client
/// cost `DISCARD ALL` (which also empties the statement cache). The init
/// SQL runs again after "Clean" and `DISCARD ALL`, in the same round trip.
///
/// Whatever the policy, a command dropped mid-flight is cancelled on the
/// server and waited for before the connection is handed out again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ResetPolicy {
    /// Never reset: the next borrower inherits whatever the last one left.
    None,
    /// Roll back when a transaction is or may be open; session state
    /// (`SET`, temporary tables, locks) is left.
    Rollback,
    /// The "Clean" sequence after every borrow, whatever the borrower did
    /// (what deadpool-postgres calls `RecyclingMethod::Clean`).
    Clean,
    /// `DISCARD ALL` after every borrow: for code whose functions change
    /// session state that no SQL text shows.
    Full,
    /// The default: safe, and free when the borrower changed nothing.
    #[default]
    Auto,
}

/// What one connection needs before it is handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Plan {
    /// Nothing: hand it out.
    Nothing,
    /// Only wait until the server has finished an interrupted command.
    Settle,
    /// `ROLLBACK`.
    Rollback,
    /// The "Clean" sequence and the init SQL.
    Clean,
    /// `DISCARD ALL` and the init SQL.
    Full,
}

/// Which probe the pool runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum At {
    /// Before a hand-out and right after a reset.
    Checkout,
    /// When the borrower gives the connection back (and in the reset).
    Return,
}

/// The plan for a connection in state `seen`.
pub(crate) fn plan(seen: Seen, policy: ResetPolicy, at: At) -> Plan {
    let tracked = match seen.session {
        SessionEffect::Deep => Plan::Full,
        SessionEffect::State => Plan::Clean,
        SessionEffect::None if seen.tx_open => Plan::Rollback,
        SessionEffect::None => Plan::Nothing,
    };
    let by_policy = match (policy, at) {
        (ResetPolicy::None, _) => Plan::Nothing,
        (ResetPolicy::Rollback, _) if seen.tx_open => Plan::Rollback,
        (ResetPolicy::Rollback, _) => Plan::Nothing,
        (ResetPolicy::Clean, At::Return) => Plan::Clean,
        (ResetPolicy::Full, At::Return) => Plan::Full,
        (ResetPolicy::Clean, At::Checkout) => tracked.min(Plan::Clean),
        (ResetPolicy::Full | ResetPolicy::Auto, _) => tracked,
    };
    if seen.interrupted {
        by_policy.max(Plan::Settle)
    } else {
        by_policy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLEAN: Seen = Seen {
        session: SessionEffect::None,
        tx_open: false,
        interrupted: false,
    };

    fn with(session: SessionEffect, tx_open: bool, interrupted: bool) -> Seen {
        Seen {
            session,
            tx_open,
            interrupted,
        }
    }

    #[test]
    fn auto_is_free_when_nothing_changed_and_cheapest_otherwise() {
        for at in [At::Checkout, At::Return] {
            let p = ResetPolicy::Auto;
            assert_eq!(plan(CLEAN, p, at), Plan::Nothing);
            assert_eq!(
                plan(with(SessionEffect::None, true, false), p, at),
                Plan::Rollback
            );
            assert_eq!(
                plan(with(SessionEffect::State, true, false), p, at),
                Plan::Clean
            );
            assert_eq!(
                plan(with(SessionEffect::Deep, false, false), p, at),
                Plan::Full
            );
        }
    }

    #[test]
    fn clean_and_full_reset_every_return() {
        assert_eq!(plan(CLEAN, ResetPolicy::Clean, At::Return), Plan::Clean);
        assert_eq!(plan(CLEAN, ResetPolicy::Full, At::Return), Plan::Full);
        assert_eq!(plan(CLEAN, ResetPolicy::Clean, At::Checkout), Plan::Nothing);
        assert_eq!(
            plan(
                with(SessionEffect::Deep, false, false),
                ResetPolicy::Clean,
                At::Checkout
            ),
            Plan::Clean
        );
    }

    #[test]
    fn rollback_and_none_ignore_session_state() {
        let dirty = with(SessionEffect::State, false, false);
        assert_eq!(
            plan(dirty, ResetPolicy::Rollback, At::Return),
            Plan::Nothing
        );
        assert_eq!(
            plan(
                with(SessionEffect::State, true, false),
                ResetPolicy::Rollback,
                At::Return
            ),
            Plan::Rollback
        );
        assert_eq!(
            plan(
                with(SessionEffect::Deep, true, false),
                ResetPolicy::None,
                At::Return
            ),
            Plan::Nothing
        );
    }

    #[test]
    fn an_interrupted_command_is_settled_under_every_policy() {
        let cut = with(SessionEffect::None, true, true);
        for p in [
            ResetPolicy::None,
            ResetPolicy::Rollback,
            ResetPolicy::Clean,
            ResetPolicy::Full,
            ResetPolicy::Auto,
        ] {
            assert!(plan(cut, p, At::Return) >= Plan::Settle, "{p:?}");
            assert!(plan(cut, p, At::Checkout) >= Plan::Settle, "{p:?}");
        }
        assert_eq!(plan(cut, ResetPolicy::Auto, At::Return), Plan::Rollback);
    }
}
