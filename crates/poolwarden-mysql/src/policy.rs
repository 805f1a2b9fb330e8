//! What a returned connection must go through before the next borrower
//! gets it (F13).

/// How much of the borrower's session state is undone when a connection
/// comes back to the pool.
///
/// | policy | undoes | cost when the borrower ran queries |
/// |---|---|---|
/// | [`Full`](ResetPolicy::Full) (default) | everything: transaction, user variables, session variables, temporary tables, `GET_LOCK` locks, prepared statements, `LAST_INSERT_ID()`, current database | `COM_RESET_CONNECTION` + one query (init SQL), off the caller's path |
/// | [`Rollback`](ResetPolicy::Rollback) | an open transaction, `autocommit` | nothing unless a transaction is open (then one `ROLLBACK`) |
/// | [`None`](ResetPolicy::None) | nothing | nothing |
///
/// Why `Full` resets after *every* borrow: mysql_async 0.37 never asks the
/// server for session-state tracking (`CLIENT_SESSION_TRACK` is not among the
/// capabilities it sends), so no OK packet ever says "session state changed",
/// and the driver shows only the last packet's status flags. A `SET @x = 1`
/// followed by a `SELECT` leaves exactly the same visible trace as the
/// `SELECT` alone. Without a round trip the only safe answer is "the borrower
/// may have changed something". See `RESEARCH.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ResetPolicy {
    /// Never reset. The next borrower inherits whatever the last one left:
    /// only for applications that never touch session state and never leave
    /// a transaction open. Protocol-level damage (a cancelled query, an
    /// unread result) is still caught and the connection discarded.
    None,
    /// Roll back when the last status the server sent shows an open
    /// transaction (`SERVER_STATUS_IN_TRANS`), when `autocommit` differs from
    /// what it was after connect, or when the last command failed (its error
    /// packet carries no status, so a transaction may be open). Free for
    /// borrowers that leave no transaction open. Does **not** undo user
    /// variables, session variables, temporary tables or `GET_LOCK` locks.
    Rollback,
    /// Full session reset after every borrow (the safe default): the
    /// connection is handed back to the pool dirty, reset off the caller's
    /// path with `COM_RESET_CONNECTION` (or `COM_CHANGE_USER` where that is
    /// missing or no database is configured), then the manager's init SQL and
    /// `USE <database>` run again.
    #[default]
    Full,
}
