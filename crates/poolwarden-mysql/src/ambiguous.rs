//! Commits whose outcome is unknown: a `COMMIT` (or a write that commits on
//! its own, under `autocommit` outside a transaction) whose answer was lost
//! may or may not have been applied, whatever error came instead. The
//! borrower gets an [`OutcomeUnknown`] that says so, with the error that
//! came as its source.
//!
//! # Implementation Details
//!
//! Before a command is sent, its text says whether it commits
//! ([`commit_kind`]: `COMMIT` and DDL always, other writes and unknown
//! text only under `autocommit` outside a transaction, as the server's
//! last status shows), and after it fails, the error says whether its
//! answer was lost ([`answer_lost`]): the connection dropped, the command
//! passed its deadline or was cut after it was sent, or the server answered
//! 1180 (`ER_ERROR_DURING_COMMIT`) or a Galera node's 1047 ("WSREP has not
//! yet prepared node"), which a node that dropped out of the primary
//! component sends although the transaction may have been replicated and
//! committed by the others.

use std::fmt;

use mysql_async::consts::StatusFlags;
use poolwarden::ErrorClass;

use crate::abort::CommandCut;
use crate::classify::classify_error;
use crate::deadline::CommandTimeout;
use crate::sql::{is, is_any, Tok};

/// `ER_ERROR_DURING_COMMIT`.
pub(crate) const ERROR_DURING_COMMIT: u16 = 1180;
/// `ER_UNKNOWN_COM_ERROR`: what a Galera node that is not ready answers.
pub(crate) const WSREP_NOT_READY: u16 = 1047;

/// Whether running a text commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(crate) enum Commit {
    /// A read, a transaction start, a rollback, a `SET`.
    #[default]
    Never,
    /// A write (or text not understood): commits under `autocommit`
    /// outside a transaction.
    IfAutocommit,
    /// `COMMIT`, or DDL (an implicit commit).
    Always,
}

/// Statements that never commit.
const NON_COMMITTING: &[&str] = &[
    "SELECT",
    "WITH",
    "VALUES",
    "TABLE",
    "SHOW",
    "DESCRIBE",
    "DESC",
    "EXPLAIN",
    "BEGIN",
    "START",
    "ROLLBACK",
    "SAVEPOINT",
    "RELEASE",
    "SET",
    "USE",
    "DO",
    "PREPARE",
    "DEALLOCATE",
    "HELP",
];

/// Statements that commit whatever the session's mode (DDL commits the
/// open transaction implicitly).
const ALWAYS_COMMITTING: &[&str] = &["COMMIT", "CREATE", "ALTER", "DROP", "TRUNCATE", "RENAME"];

/// Whether running `sql` commits (the most of its statements). The
/// connection lexes each text once and calls [`tokens_commit`].
#[cfg(test)]
pub(crate) fn commit_kind(sql: &[u8]) -> Commit {
    tokens_commit(crate::sql::lex(sql).as_deref())
}

/// [`commit_kind`] of text already lexed (`None`: it could not be).
pub(crate) fn tokens_commit(tokens: Option<&[Tok<'_>]>) -> Commit {
    let Some(tokens) = tokens else {
        return Commit::IfAutocommit;
    };
    tokens
        .split(|t| *t == Tok::Semicolon)
        .filter(|s| !s.is_empty())
        .map(
            |statement| match statement.iter().find(|t| **t != Tok::Open) {
                Some(Tok::Word(w)) if is_any(w, ALWAYS_COMMITTING) => Commit::Always,
                Some(Tok::Word(w)) if is(w, "XA") => Commit::Always,
                Some(Tok::Word(w)) if is_any(w, NON_COMMITTING) => Commit::Never,
                _ => Commit::IfAutocommit,
            },
        )
        .max()
        .unwrap_or(Commit::Never)
}

/// Whether a command of `kind`, sent while the session's last status was
/// `status`, commits. An unknown status counts as `autocommit` outside a
/// transaction: the safe answer is "it may have been applied".
pub(crate) fn commits(kind: Commit, status: Option<StatusFlags>) -> bool {
    match kind {
        Commit::Never => false,
        Commit::Always => true,
        Commit::IfAutocommit => status.is_none_or(|s| {
            s.contains(StatusFlags::SERVER_STATUS_AUTOCOMMIT)
                && !s.contains(StatusFlags::SERVER_STATUS_IN_TRANS)
        }),
    }
}

/// Whether `error`, the end of a command that was sent, leaves its outcome
/// unknown.
pub(crate) fn answer_lost(error: &mysql_async::Error) -> bool {
    if let Some(t) = CommandTimeout::find(error) {
        return t.sent;
    }
    if let Some(c) = CommandCut::find(error) {
        return c.sent;
    }
    match error {
        mysql_async::Error::Server(e) => {
            e.code == ERROR_DURING_COMMIT
                || e.code == WSREP_NOT_READY
                || classify_error(error) == ErrorClass::Disconnect
        }
        _ => classify_error(error) == ErrorClass::Disconnect,
    }
}

/// A commit whose outcome is unknown: the error a borrower gets, inside
/// [`mysql_async::Error::Other`], when a `COMMIT` (or a write that commits
/// on its own: `autocommit` on, no transaction open, or DDL) was sent and
/// its answer was lost: the connection dropped, the command passed its
/// deadline or was cut ([`CommandCut`]), or the server answered 1180 or
/// Galera's 1047. The write may or may not have been applied (on a Galera
/// cluster it may be committed on every node). Find it with
/// [`OutcomeUnknown::find`]; its [`source`](std::error::Error::source) (and
/// [`cause`](Self::cause)) is the error that came, and the classification
/// is that error's.
///
/// Retry only what is safe to apply twice, or check first (by the write's
/// unique key) whether it was applied.
#[derive(Debug)]
#[non_exhaustive]
pub struct OutcomeUnknown {
    /// The method that ran the command (`"query_drop"`, `"exec_drop"`, ...).
    pub command: &'static str,
    /// The server's id of the connection (`CONNECTION_ID()`).
    pub connection_id: u32,
    cause: mysql_async::Error,
}

impl OutcomeUnknown {
    pub(crate) fn wrap(
        command: &'static str,
        connection_id: u32,
        cause: mysql_async::Error,
    ) -> mysql_async::Error {
        tracing::warn!(command, connection_id, error = %cause, "a commit's answer was lost: its outcome is unknown");
        mysql_async::Error::Other(Box::new(OutcomeUnknown {
            command,
            connection_id,
            cause,
        }))
    }

    /// The error that came instead of the commit's answer.
    pub fn cause(&self) -> &mysql_async::Error {
        &self.cause
    }

    /// The [`OutcomeUnknown`] inside `error`, if that is what it is.
    pub fn find(error: &mysql_async::Error) -> Option<&OutcomeUnknown> {
        match error {
            mysql_async::Error::Other(e) => e.downcast_ref::<OutcomeUnknown>(),
            _ => None,
        }
    }
}

impl fmt::Display for OutcomeUnknown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ambiguous commit: MySQL command `{}` on connection {} committed, or not; its \
             answer was lost, so the write may or may not have been applied. Check (by its \
             unique key) before retrying it",
            self.command, self.connection_id
        )
    }
}

impl std::error::Error for OutcomeUnknown {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.cause)
    }
}

/// `error` itself, or the cause inside an [`OutcomeUnknown`]: what to
/// classify.
pub(crate) fn cause(error: &mysql_async::Error) -> &mysql_async::Error {
    OutcomeUnknown::find(error).map_or(error, |o| &o.cause)
}

/// The error of type `T` inside `error` (as `Error::Other`), also through an
/// [`OutcomeUnknown`].
pub(crate) fn find<T: std::error::Error + 'static>(error: &mysql_async::Error) -> Option<&T> {
    match cause(error) {
        mysql_async::Error::Other(e) => e.downcast_ref::<T>(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_texts_commit() {
        assert_eq!(commit_kind(b"COMMIT"), Commit::Always);
        assert_eq!(commit_kind(b"  commit work"), Commit::Always);
        assert_eq!(
            commit_kind(b"BEGIN; INSERT INTO t VALUES (1); COMMIT"),
            Commit::Always
        );
        assert_eq!(commit_kind(b"CREATE TABLE t (a INT)"), Commit::Always);
        assert_eq!(
            commit_kind(b"INSERT INTO t VALUES (1)"),
            Commit::IfAutocommit
        );
        assert_eq!(commit_kind(b"UPDATE t SET a = 1"), Commit::IfAutocommit);
        assert_eq!(commit_kind(b"/* x */ DELETE FROM t"), Commit::IfAutocommit);
        assert_eq!(
            commit_kind(b"SELECT 'a\\b'"),
            Commit::IfAutocommit,
            "not lexed"
        );
        assert_eq!(commit_kind(b"SELECT 1"), Commit::Never);
        assert_eq!(commit_kind(b"(SELECT 1) UNION (SELECT 2)"), Commit::Never);
        assert_eq!(commit_kind(b"ROLLBACK"), Commit::Never);
        assert_eq!(commit_kind(b"BEGIN"), Commit::Never);
        assert_eq!(commit_kind(b""), Commit::Never);
    }

    #[test]
    fn a_write_commits_only_under_autocommit_outside_a_transaction() {
        let auto = StatusFlags::SERVER_STATUS_AUTOCOMMIT;
        let in_tx = auto | StatusFlags::SERVER_STATUS_IN_TRANS;
        assert!(commits(Commit::IfAutocommit, Some(auto)));
        assert!(!commits(Commit::IfAutocommit, Some(in_tx)));
        assert!(!commits(Commit::IfAutocommit, Some(StatusFlags::empty())));
        assert!(commits(Commit::IfAutocommit, None), "unknown: may have");
        assert!(commits(Commit::Always, Some(in_tx)));
        assert!(!commits(Commit::Never, None));
    }

    #[test]
    fn lost_answers_and_the_wrapper() {
        let server = |code| {
            mysql_async::Error::Server(mysql_async::ServerError {
                code,
                message: "x".into(),
                state: "HY000".into(),
            })
        };
        assert!(answer_lost(&server(ERROR_DURING_COMMIT)));
        assert!(answer_lost(&server(WSREP_NOT_READY)));
        assert!(!answer_lost(&server(crate::codes::DUP_ENTRY)));
        assert!(!answer_lost(&server(crate::codes::DEADLOCK)), "rolled back");
        let eof = mysql_async::Error::Io(mysql_async::IoError::Io(std::io::Error::from(
            std::io::ErrorKind::UnexpectedEof,
        )));
        assert!(answer_lost(&eof));
        let wrapped = OutcomeUnknown::wrap("query_drop", 7, server(ERROR_DURING_COMMIT));
        let text = wrapped.to_string();
        assert!(
            text.contains("ambiguous") && text.contains("connection 7"),
            "{text}"
        );
        assert!(matches!(cause(&wrapped), mysql_async::Error::Server(e) if e.code == 1180));
        assert_eq!(classify_error(&wrapped), ErrorClass::Keep);
    }
}
