//! What a returned connection must go through before the next borrower
//! gets it (F13).

/// How much of the borrower's session state is undone when a connection
/// comes back to the pool, and when.
///
/// | policy | reset when | undoes | cost of a borrow that ran only `SELECT`s |
/// |---|---|---|---|
/// | [`Auto`](ResetPolicy::Auto) (default) | the connection is [dirty](crate::MySqlConn::is_dirty), a transaction may be open, or `autocommit` changed | everything (a transaction alone: `ROLLBACK`) | nothing |
/// | [`Full`](ResetPolicy::Full) | every return | everything | `COM_RESET_CONNECTION` + one query, off the caller's path |
/// | [`Rollback`](ResetPolicy::Rollback) | a transaction may be open, or `autocommit` changed | the transaction, `autocommit` | nothing |
/// | [`None`](ResetPolicy::None) | never | nothing | nothing |
///
/// "Everything" is what `COM_RESET_CONNECTION` undoes: the transaction, user
/// variables, session variables, temporary tables, `GET_LOCK` locks, SQL
/// prepared statements, `LAST_INSERT_ID()`, plus the current database (the
/// manager runs `USE` and its init SQL again). Where the server lacks
/// `COM_RESET_CONNECTION`, or the options name no database,
/// `COM_CHANGE_USER` does the same with a re-authentication.
///
/// Why tracking at all: mysql_async 0.37 never asks the server for
/// session-state tracking (`CLIENT_SESSION_TRACK`), so nothing the server
/// sends says "session state changed" (see `RESEARCH.md`). The
/// [`MySqlConn`](crate::MySqlConn) wrapper looks at the SQL text instead;
/// [`may_change_session`](crate::may_change_session) lists its rules.
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
    /// packet carries no status, so a transaction may be open). Does **not**
    /// undo user variables, session variables, temporary tables or
    /// `GET_LOCK` locks.
    Rollback,
    /// A full session reset after every borrow, whatever the borrower did,
    /// off the caller's path. For code that uses raw `Conn` APIs most of the
    /// time (each of those marks the connection dirty anyway), or whose
    /// stored functions or triggers change session state, which no SQL text
    /// shows. It does not rely on the SQL tracking at all.
    Full,
    /// The default: safe and free in the common case.
    ///
    /// On return the connection is reset if the borrower ran anything that
    /// may have changed session state (see
    /// [`may_change_session`](crate::may_change_session)), used the raw
    /// `Conn`, left a transaction open (or may have: the last command
    /// failed), or changed `autocommit`; otherwise it goes straight back to
    /// the pool with no round trip. When an open transaction is the only
    /// thing to undo, the reset is a `ROLLBACK` (which keeps the statement
    /// cache); otherwise it is the full reset of [`Full`](ResetPolicy::Full).
    #[default]
    Auto,
}
