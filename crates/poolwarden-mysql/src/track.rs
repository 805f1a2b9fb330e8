//! What [`MySqlConn`](crate::MySqlConn) watches: the [`Tracker`] of what
//! the borrowers ran, where the server's last status can be read from, and
//! the statement types whose text the tracked `exec*` methods can see.

use std::collections::HashSet;

use mysql_async::consts::StatusFlags;
use mysql_async::prelude::{AsQuery, StatementLike};
use mysql_async::Statement;

use crate::ambiguous::{tokens_commit, Commit};
use crate::sql::{lex, tokens_may_change};

/// What [`MySqlConn`](crate::MySqlConn) saw the borrowers do since it was last made clean.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    /// Something ran that may have changed session state.
    dirty: bool,
    /// Ids of statements prepared through [`Queryable::prep`] whose text is
    /// harmless. Bounded: when full it starts over, and the forgotten
    /// statements simply count as changing when executed.
    harmless: HashSet<u32>,
    /// Whether `Conn::last_ok_packet()` can be believed.
    status: StatusSource,
    /// Ids of prepared statements whose text never commits (reads), for
    /// `ambiguous.rs`. Bounded like `harmless`.
    reads: HashSet<u32>,
    /// Whether the command about to run commits (`ambiguous.rs`).
    commit: Commit,
    /// What the connection's last few texts do.
    memo: Memo,
}

/// What a text does (may it change the session, does it commit),
/// remembered for the last [`MEMO_ENTRIES`] texts up to [`MEMO_MAX_TEXT`]
/// bytes: applications run the same few statement texts over and over,
/// and comparing a text with a remembered one costs a small fraction of
/// lexing it again (measured with callgrind on `SELECT 1`: about 1,200
/// instructions per command to lex and judge it). Both answers depend on
/// the text alone, so a remembered answer is never stale.
#[derive(Default)]
struct Memo {
    entries: Vec<(Box<[u8]>, bool, Commit)>,
    /// The entry replaced next once full (round robin).
    next: usize,
}

impl std::fmt::Debug for Memo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the texts: a statement's literals can be secrets
        // (`CREATE USER ... IDENTIFIED BY '...'`).
        f.debug_struct("Memo")
            .field("texts", &self.entries.len())
            .finish_non_exhaustive()
    }
}

/// How many texts a connection remembers the effect of.
const MEMO_ENTRIES: usize = 8;
/// Longer texts are judged every time (not kept in memory).
const MEMO_MAX_TEXT: usize = 4096;

impl Memo {
    /// Whether `sql` may change the session, and whether it commits.
    fn effect(&mut self, sql: &[u8]) -> (bool, Commit) {
        if let Some((_, changes, commit)) = self.entries.iter().find(|(text, ..)| **text == *sql) {
            return (*changes, *commit);
        }
        // Lexed once for both rules.
        let tokens = lex(sql);
        let changes = tokens_may_change(tokens.as_deref());
        let commit = tokens_commit(tokens.as_deref());
        if sql.len() <= MEMO_MAX_TEXT {
            let entry = (Box::from(sql), changes, commit);
            if self.entries.len() < MEMO_ENTRIES {
                self.entries.push(entry);
            } else {
                self.entries[self.next] = entry;
                self.next = (self.next + 1) % MEMO_ENTRIES;
            }
        }
        (changes, commit)
    }
}

/// Where the probe reads the server's last status (open transaction,
/// `autocommit`) from.
///
/// mysql_async parses **every** packet it reads as an OK packet if it can,
/// including the `COM_STMT_PREPARE` response, whose bytes then pass for
/// status flags: after a prepare, `last_ok_packet()` shows garbage (usually
/// "no autocommit", but for some statement ids and column counts exactly
/// "autocommit, no transaction", which could hide an open transaction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum StatusSource {
    /// The last command ended with a real OK/EOF packet (or an error):
    /// `last_ok_packet()` holds.
    #[default]
    Live,
    /// The last command was a prepare; the status before it still holds (a
    /// prepare changes no transaction state).
    Saved(Option<StatusFlags>),
    /// Unknown: raw use of the `Conn`, or a batch that may have run no
    /// statement after its prepare. Counts as "a transaction may be open".
    Unknown,
}

/// How many harmless prepared statements are remembered.
const MAX_HARMLESS_STATEMENTS: usize = 1024;

impl Tracker {
    /// A statement's text is about to run (and its result to be read).
    pub(crate) fn sql(&mut self, sql: &[u8]) {
        let (changes, commit) = self.memo.effect(sql);
        if changes {
            self.dirty = true;
        }
        self.status = StatusSource::Live;
        self.commit = commit;
    }

    /// What `sql` would do (may it change the session, does it commit),
    /// without recording that it runs: for a statement being prepared.
    pub(crate) fn effect(&mut self, sql: &[u8]) -> (bool, Commit) {
        self.memo.effect(sql)
    }

    /// A statement whose text is unknown is about to run.
    pub(crate) fn unknown_statement(&mut self) {
        self.dirty = true;
        self.status = StatusSource::Live;
        self.commit = Commit::IfAutocommit;
    }

    /// A command that ends with a real status and changes nothing (a ping,
    /// a harmless prepared statement, the manager's own commands) is about
    /// to run.
    pub(crate) fn live(&mut self) {
        self.status = StatusSource::Live;
        self.commit = Commit::Never;
    }

    /// Prepared statement `id` is about to be executed: it commits unless
    /// its text was seen to be a read.
    pub(crate) fn executing(&mut self, id: u32) {
        self.commit = if self.reads.contains(&id) {
            Commit::Never
        } else {
            Commit::IfAutocommit
        };
    }

    /// Whether the command about to run commits.
    pub(crate) fn commit(&self) -> Commit {
        self.commit
    }

    /// A batch is about to run: with no parameter sets it executes nothing
    /// after its prepare, and the iterator cannot be looked at here.
    pub(crate) fn batch(&mut self) {
        self.status = StatusSource::Unknown;
    }

    /// Something the tracker cannot see is about to happen.
    pub(crate) fn raw(&mut self) {
        self.dirty = true;
        self.status = StatusSource::Unknown;
    }

    /// A statement is about to be prepared; `before` is the status until
    /// now.
    pub(crate) fn preparing(&mut self, before: Option<StatusFlags>) {
        if self.status == StatusSource::Live {
            self.status = StatusSource::Saved(before);
        }
        // Preparing commits nothing.
        self.commit = Commit::Never;
    }

    /// A statement was prepared (executing it comes later).
    pub(crate) fn prepared(&mut self, id: u32, harmless: bool, commit: Commit) {
        if commit == Commit::Never {
            if self.reads.len() >= MAX_HARMLESS_STATEMENTS && !self.reads.contains(&id) {
                self.reads.clear();
            }
            self.reads.insert(id);
        } else {
            self.reads.remove(&id);
        }
        if harmless {
            if self.harmless.len() >= MAX_HARMLESS_STATEMENTS && !self.harmless.contains(&id) {
                self.harmless.clear();
            }
            self.harmless.insert(id);
        } else {
            self.harmless.remove(&id);
        }
    }

    /// A prepared statement was closed.
    pub(crate) fn closed(&mut self, id: u32) {
        self.harmless.remove(&id);
        self.reads.remove(&id);
        // Closing a statement commits nothing.
        self.commit = Commit::Never;
    }

    /// Whether executing prepared statement `id` is known to be harmless.
    pub(crate) fn is_harmless(&self, id: u32) -> bool {
        self.harmless.contains(&id)
    }

    pub(crate) fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// The session was fully reset: nothing left behind, and every prepared
    /// statement is gone on the server.
    pub(crate) fn reset(&mut self) {
        self.dirty = false;
        self.harmless.clear();
        self.reads.clear();
        self.status = StatusSource::Live;
    }

    /// Where the last status can be read from.
    pub(crate) fn status(&self) -> StatusSource {
        self.status
    }
}

/// A statement whose text [`MySqlConn`](crate::MySqlConn)'s `exec*` methods can see: every
/// kind of statement mysql_async accepts (`&str`, `String`, `Cow<str>`,
/// `Box<str>`, `Arc<str>`, their byte-slice counterparts, a prepared
/// [`Statement`], and a reference to any of these). Sealed.
///
/// Generic code over mysql_async's `StatementLike` can call the trait
/// method instead (`Queryable::exec_drop(&mut *conn, stmt, params)`), which
/// counts as raw use.
pub trait TrackedStatement: StatementLike + sealed::Sealed {}

#[allow(unreachable_pub)] // the sealed-trait pattern: public, unnameable
pub(crate) mod sealed {
    use std::borrow::Cow;

    use mysql_async::Statement;

    /// What the statement shows the tracker.
    pub enum Seen<'a> {
        /// SQL text.
        Text(Cow<'a, [u8]>),
        /// A statement prepared earlier.
        Prepared(&'a Statement),
    }

    /// Implemented by the statement types the tracker understands.
    pub trait Sealed {
        /// The text or the prepared statement.
        fn seen(&self) -> Seen<'_>;
    }
}

macro_rules! tracked_text {
    ($($ty:ty),* $(,)?) => {$(
        impl sealed::Sealed for $ty {
            fn seen(&self) -> sealed::Seen<'_> {
                sealed::Seen::Text(AsQuery::as_query(self))
            }
        }
        impl TrackedStatement for $ty {}
    )*};
}

tracked_text!(
    &str,
    String,
    std::borrow::Cow<'_, str>,
    Box<str>,
    std::sync::Arc<str>,
    &[u8],
    Vec<u8>,
    std::borrow::Cow<'_, [u8]>,
    Box<[u8]>,
    std::sync::Arc<[u8]>,
);

impl sealed::Sealed for Statement {
    fn seen(&self) -> sealed::Seen<'_> {
        sealed::Seen::Prepared(self)
    }
}
impl TrackedStatement for Statement {}

impl<T: TrackedStatement + Clone> sealed::Sealed for &T {
    fn seen(&self) -> sealed::Seen<'_> {
        (**self).seen()
    }
}
impl<T: TrackedStatement + Clone> TrackedStatement for &T {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memo_answers_as_the_rules_do_and_forgets_the_oldest() {
        let fresh = |sql: &[u8]| {
            let tokens = lex(sql);
            (
                tokens_may_change(tokens.as_deref()),
                tokens_commit(tokens.as_deref()),
            )
        };
        // Texts of one length that the rules judge differently: the memo
        // must compare the bytes, not only the length.
        let texts: [&[u8]; 10] = [
            b"SELECT 1",
            b"SET @x=1",
            b"COMMIT;1",
            b"DELETE 1",
            b"SELECT 2",
            b"SET @y=2",
            b"BEGIN; 1",
            b"SELECT 3",
            b"CALL p()",
            b"DO 1+1;1",
        ];
        let mut memo = Memo::default();
        for round in 0..3 {
            for text in texts {
                assert_eq!(memo.effect(text), fresh(text), "round {round}: {text:?}");
            }
        }
        assert_eq!(memo.entries.len(), MEMO_ENTRIES, "bounded");
        let long = format!("SELECT {}", "1 + ".repeat(MEMO_MAX_TEXT)) + "1";
        assert_eq!(memo.effect(long.as_bytes()), fresh(long.as_bytes()));
        assert!(
            memo.entries.iter().all(|(t, ..)| t.len() <= MEMO_MAX_TEXT),
            "a long text is judged, not kept"
        );
        let mut secret = Memo::default();
        secret.effect(b"CREATE USER u IDENTIFIED BY 'S3cretPass!'");
        assert_eq!(
            format!("{secret:?}"),
            "Memo { texts: 1, .. }",
            "Debug never shows a remembered text, as text or as bytes"
        );
    }

    #[test]
    fn tracker_marks_what_may_change() {
        let mut t = Tracker::default();
        t.sql(b"SELECT 1");
        t.sql(b"UPDATE t SET a = 1");
        assert!(!t.is_dirty());
        t.sql(b"SET @x = 1");
        assert!(t.is_dirty());
        t.reset();
        assert!(!t.is_dirty());
        t.raw();
        assert!(t.is_dirty());
    }

    #[test]
    fn tracker_remembers_harmless_prepared_statements() {
        let mut t = Tracker::default();
        t.prepared(1, true, Commit::Never);
        t.prepared(2, false, Commit::IfAutocommit);
        assert!(t.is_harmless(1));
        assert!(!t.is_harmless(2));
        assert!(!t.is_harmless(3), "unknown statements are not harmless");
        // What executing each commits (ambiguous.rs).
        t.executing(1);
        assert_eq!(t.commit(), Commit::Never);
        t.executing(2);
        assert_eq!(t.commit(), Commit::IfAutocommit);
        t.executing(3);
        assert_eq!(t.commit(), Commit::IfAutocommit, "unknown: may commit");
        t.sql(b"COMMIT");
        assert_eq!(t.commit(), Commit::Always);
        t.live();
        assert_eq!(t.commit(), Commit::Never);
        t.closed(1);
        assert!(!t.is_harmless(1));
        t.executing(1);
        assert_eq!(t.commit(), Commit::IfAutocommit, "closed: forgotten");
        t.sql(b"COMMIT");
        t.preparing(None);
        assert_eq!(t.commit(), Commit::Never, "a prepare commits nothing");
        t.prepared(4, true, Commit::Never);
        t.reset();
        assert!(!t.is_harmless(4), "a reset drops every prepared statement");
        // Bounded.
        for id in 0..(MAX_HARMLESS_STATEMENTS as u32 + 10) {
            t.prepared(id, true, Commit::Never);
        }
        assert!(t.harmless.len() <= MAX_HARMLESS_STATEMENTS);
        assert!(t.reads.len() <= MAX_HARMLESS_STATEMENTS);
        assert!(t.is_harmless(MAX_HARMLESS_STATEMENTS as u32 + 9));
    }

    #[test]
    fn status_source_follows_the_commands() {
        let mut t = Tracker::default();
        assert_eq!(t.status(), StatusSource::Live);
        let in_trans = Some(StatusFlags::SERVER_STATUS_IN_TRANS);
        t.preparing(in_trans);
        assert_eq!(t.status(), StatusSource::Saved(in_trans));
        t.preparing(None);
        assert_eq!(
            t.status(),
            StatusSource::Saved(in_trans),
            "a second prepare keeps the status from before the first"
        );
        t.sql(b"SELECT 1");
        assert_eq!(t.status(), StatusSource::Live);
        t.raw();
        assert_eq!(t.status(), StatusSource::Unknown);
        t.preparing(None);
        assert_eq!(t.status(), StatusSource::Unknown, "still unknown");
        t.live();
        assert_eq!(t.status(), StatusSource::Live);
        t.batch();
        assert_eq!(t.status(), StatusSource::Unknown);
        t.reset();
        assert_eq!(t.status(), StatusSource::Live);
    }

    #[test]
    fn every_statement_like_type_is_tracked() {
        fn seen_text<S: TrackedStatement>(s: &S) -> Vec<u8> {
            match s.seen() {
                sealed::Seen::Text(t) => t.to_vec(),
                sealed::Seen::Prepared(_) => panic!("not text"),
            }
        }
        let s = String::from("SELECT 1");
        assert_eq!(seen_text(&"SELECT 1"), b"SELECT 1");
        assert_eq!(seen_text(&s), b"SELECT 1");
        assert_eq!(seen_text(&&s), b"SELECT 1");
        assert_eq!(
            seen_text(&std::borrow::Cow::Borrowed("SELECT 1")),
            b"SELECT 1"
        );
        assert_eq!(seen_text(&Box::<str>::from("SELECT 1")), b"SELECT 1");
        assert_eq!(
            seen_text(&std::sync::Arc::<str>::from("SELECT 1")),
            b"SELECT 1"
        );
        assert_eq!(seen_text(&b"SELECT 1".as_slice()), b"SELECT 1");
        assert_eq!(seen_text(&b"SELECT 1".to_vec()), b"SELECT 1");
        assert_eq!(
            seen_text(&std::sync::Arc::<[u8]>::from(b"SELECT 1".as_slice())),
            b"SELECT 1"
        );
    }
}
