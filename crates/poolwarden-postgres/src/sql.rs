//! What a statement's text says it may do to the session: the rules behind
//! [`ResetPolicy::Auto`](crate::ResetPolicy::Auto).
//!
//! tokio-postgres does not expose the transaction status of the server's
//! `ReadyForQuery` message, nor anything about session state, so the
//! [`PgConn`](crate::PgConn) wrapper reads the SQL text of every statement
//! it runs. The rules err on the side of a reset: a statement they do not
//! know counts as changing the session.

/// How deep a statement may change the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum SessionEffect {
    /// Nothing that outlives the statement or its transaction.
    #[default]
    None,
    /// Session state the "Clean" sequence undoes (`SET`, temporary tables,
    /// advisory locks, `LISTEN`, cursors `WITH HOLD`, role changes).
    State,
    /// SQL-level prepared statements (`PREPARE`, `DEALLOCATE`), `DISCARD`,
    /// code the text does not show (`DO`, `CALL`, unknown statements):
    /// only `DISCARD ALL` undoes everything.
    Deep,
}

/// What a statement does to the transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TxEffect {
    /// Neither opens nor ends one.
    #[default]
    None,
    /// `BEGIN`, `START TRANSACTION`, `COMMIT AND CHAIN`.
    Begin,
    /// `COMMIT`, `END`, `ROLLBACK`, `ABORT` (not `ROLLBACK TO`).
    End,
    /// Several statements (a simple-query batch) of which some open or end
    /// transactions. If the batch succeeds, a transaction is open afterwards
    /// when `ends_open`; if it fails, one may be open.
    Batch {
        /// The last statement that opens or ends a transaction opens one.
        ends_open: bool,
    },
}

/// A statement's effects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Effect {
    /// On the session.
    pub session: SessionEffect,
    /// On the transaction.
    pub tx: TxEffect,
}

impl Effect {
    /// Something that changes session state in ways no text shows (raw use
    /// of the client, an unknown prepared statement).
    pub const UNKNOWN: Effect = Effect {
        session: SessionEffect::Deep,
        tx: TxEffect::Batch { ends_open: true },
    };
}

/// The effects of `sql`, which may hold several `;`-separated statements.
///
/// Runs on every command: one pass over the text, no allocation; a single
/// statement without quotes or comments (the usual case) skips the split.
pub fn effect(sql: &str) -> Effect {
    if !sql
        .bytes()
        .any(|b| matches!(b, b';' | b'\'' | b'"' | b'-' | b'/' | b'$'))
    {
        return one(sql);
    }
    let mut pieces = Split { sql, at: 0 }.filter(|s| !s.trim().is_empty());
    let Some(first) = pieces.next() else {
        return Effect::default();
    };
    let mut total = one(first);
    let mut last_tx = total.tx;
    let mut several = false;
    for piece in pieces {
        several = true;
        let e = one(piece);
        total.session = total.session.max(e.session);
        if e.tx != TxEffect::None {
            last_tx = e.tx;
        }
    }
    if several && last_tx != TxEffect::None {
        total.tx = TxEffect::Batch {
            ends_open: last_tx == TxEffect::Begin,
        };
    }
    total
}

/// Whether `sql` may change session state (any [`SessionEffect`] above
/// `None`).
pub fn may_change_session(sql: &str) -> bool {
    effect(sql).session != SessionEffect::None
}

/// The statements of a batch: splits at `;` outside quotes and comments.
struct Split<'a> {
    sql: &'a str,
    /// Where the next statement starts; past the end when done.
    at: usize,
}

impl<'a> Iterator for Split<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let (sql, bytes) = (self.sql, self.sql.as_bytes());
        if self.at > bytes.len() {
            return None;
        }
        let start = self.at;
        let mut i = start;
        while i < bytes.len() {
            match bytes[i] {
                b'\'' | b'"' => i = skip_quoted(bytes, i),
                b'-' if bytes.get(i + 1) == Some(&b'-') => {
                    while i < bytes.len() && bytes[i] != b'\n' {
                        i += 1;
                    }
                }
                b'/' if bytes.get(i + 1) == Some(&b'*') => i = skip_block_comment(bytes, i),
                b'$' => i = skip_dollar_quoted(sql, i),
                b';' => {
                    self.at = i + 1;
                    return Some(&sql[start..i]);
                }
                _ => i += 1,
            }
        }
        self.at = bytes.len() + 1;
        Some(&sql[start..])
    }
}

fn skip_quoted(bytes: &[u8], at: usize) -> usize {
    let q = bytes[at];
    let mut i = at + 1;
    while i < bytes.len() {
        if bytes[i] == q {
            if bytes.get(i + 1) == Some(&q) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    i
}

fn skip_block_comment(bytes: &[u8], at: usize) -> usize {
    let mut i = at + 2;
    while i + 1 < bytes.len() {
        if bytes[i] == b'*' && bytes[i + 1] == b'/' {
            return i + 2;
        }
        i += 1;
    }
    bytes.len()
}

/// `$tag$ ... $tag$` (function bodies); a `$1` parameter is not a quote.
fn skip_dollar_quoted(sql: &str, at: usize) -> usize {
    let rest = &sql[at + 1..];
    let tag_len = rest
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
        .count();
    if rest.as_bytes().get(tag_len) != Some(&b'$') || rest.starts_with(|c: char| c.is_ascii_digit())
    {
        return at + 1;
    }
    let tag = &sql[at..at + tag_len + 2];
    let body = at + tag.len();
    match sql[body..].find(tag) {
        Some(end) => body + end + tag.len(),
        None => sql.len(),
    }
}

/// The words of one statement (as written), comments and quoted text left
/// out.
struct Words<'a> {
    sql: &'a str,
    at: usize,
}

impl<'a> Iterator for Words<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let bytes = self.sql.as_bytes();
        let mut i = self.at;
        while let Some(&b) = bytes.get(i) {
            if b.is_ascii_alphabetic() || b == b'_' {
                let start = i;
                i += 1;
                while bytes
                    .get(i)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
                {
                    i += 1;
                }
                self.at = i;
                return bytes.get(start..i);
            }
            i = match b {
                b'\'' | b'"' => skip_quoted(bytes, i),
                b'-' if bytes.get(i + 1) == Some(&b'-') => bytes[i..]
                    .iter()
                    .position(|c| *c == b'\n')
                    .map_or(bytes.len(), |n| i + n),
                b'/' if bytes.get(i + 1) == Some(&b'*') => skip_block_comment(bytes, i),
                b'$' => skip_dollar_quoted(self.sql, i).max(i + 1),
                _ => i + 1,
            };
        }
        self.at = bytes.len();
        None
    }
}

/// What a word is to the rules below. Each word of a statement is looked
/// up once (lower-cased on the stack, then one `match`): this runs on every
/// command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kw {
    Begin,
    Start,
    Commit,
    End,
    Rollback,
    Abort,
    Set,
    Reset,
    Listen,
    Unlisten,
    Declare,
    Create,
    Select,
    With,
    /// A statement that changes no session state by itself (the functions
    /// it calls are looked at separately): `INSERT`, `UPDATE`, `ALTER`, ...
    Harmless,
    To,
    Prepared,
    Local,
    Transaction,
    Constraints,
    Temp,
    Into,
    Hold,
    Chain,
    No,
    /// A function whose effect outlives the transaction
    /// (`pg_advisory_lock`, `set_config`, `dblink_connect`, ...).
    SessionFunction,
    Other,
}

/// The longest word [`kw`] knows (`pg_try_advisory_lock_shared`).
const LONGEST_KEYWORD: usize = 27;

fn kw(word: &[u8]) -> Kw {
    if word.len() > LONGEST_KEYWORD {
        return Kw::Other;
    }
    let mut buf = [0u8; LONGEST_KEYWORD];
    for (d, s) in buf.iter_mut().zip(word) {
        *d = s.to_ascii_lowercase();
    }
    match &buf[..word.len()] {
        b"begin" => Kw::Begin,
        b"start" => Kw::Start,
        b"commit" => Kw::Commit,
        b"end" => Kw::End,
        b"rollback" => Kw::Rollback,
        b"abort" => Kw::Abort,
        b"set" => Kw::Set,
        b"reset" => Kw::Reset,
        b"listen" => Kw::Listen,
        b"unlisten" => Kw::Unlisten,
        b"declare" => Kw::Declare,
        b"create" => Kw::Create,
        b"select" => Kw::Select,
        b"with" => Kw::With,
        b"values" | b"table" | b"show" | b"explain" | b"insert" | b"update" | b"delete"
        | b"merge" | b"copy" | b"savepoint" | b"release" | b"alter" | b"drop" | b"grant"
        | b"revoke" | b"truncate" | b"vacuum" | b"analyze" | b"analyse" | b"comment" | b"lock"
        | b"notify" | b"fetch" | b"move" | b"close" | b"refresh" | b"cluster" | b"reindex"
        | b"checkpoint" | b"security" | b"import" => Kw::Harmless,
        b"to" => Kw::To,
        b"prepared" => Kw::Prepared,
        b"local" => Kw::Local,
        b"transaction" => Kw::Transaction,
        b"constraints" => Kw::Constraints,
        b"temp" | b"temporary" | b"pg_temp" => Kw::Temp,
        b"into" => Kw::Into,
        b"hold" => Kw::Hold,
        b"chain" => Kw::Chain,
        b"no" => Kw::No,
        b"pg_advisory_lock"
        | b"pg_advisory_lock_shared"
        | b"pg_try_advisory_lock"
        | b"pg_try_advisory_lock_shared"
        | b"set_config"
        | b"dblink_connect"
        | b"dblink_connect_u" => Kw::SessionFunction,
        _ => Kw::Other,
    }
}

/// Which words occur anywhere in a statement.
#[derive(Default)]
struct Mentions {
    temp: bool,
    into: bool,
    hold: bool,
    chain: bool,
    no: bool,
    session_function: bool,
}

impl Mentions {
    fn note(&mut self, k: Kw) {
        match k {
            Kw::Temp => self.temp = true,
            Kw::Into => self.into = true,
            Kw::Hold => self.hold = true,
            Kw::Chain => self.chain = true,
            Kw::No => self.no = true,
            Kw::SessionFunction => self.session_function = true,
            _ => {}
        }
    }
}

fn one(sql: &str) -> Effect {
    let mut words = Words { sql, at: 0 }.map(kw);
    let Some(first) = words.next() else {
        return Effect::default();
    };
    let second = words.next();
    let mut m = Mentions::default();
    m.note(first);
    second.inspect(|k| m.note(*k));
    words.for_each(|k| m.note(k));
    let tx = match first {
        Kw::Begin | Kw::Start => TxEffect::Begin,
        Kw::Commit | Kw::End | Kw::Rollback | Kw::Abort => match second {
            Some(Kw::To | Kw::Prepared) => TxEffect::None,
            _ if m.chain && !m.no => TxEffect::Begin,
            _ => TxEffect::End,
        },
        _ => TxEffect::None,
    };
    let session = match first {
        Kw::Begin | Kw::Start | Kw::Commit | Kw::End | Kw::Rollback | Kw::Abort => {
            SessionEffect::None
        }
        // Transaction-scoped settings end with the transaction.
        Kw::Set => match second {
            Some(Kw::Local | Kw::Transaction | Kw::Constraints) => SessionEffect::None,
            _ => SessionEffect::State,
        },
        Kw::Reset | Kw::Listen | Kw::Unlisten => SessionEffect::State,
        Kw::Declare if m.hold => SessionEffect::State,
        Kw::Declare => SessionEffect::None,
        Kw::Create if m.temp => SessionEffect::State,
        Kw::Create => SessionEffect::None,
        // `SELECT ... INTO TEMP t`.
        Kw::Select | Kw::With if m.temp && m.into => SessionEffect::State,
        Kw::Select | Kw::With | Kw::Harmless => SessionEffect::None,
        // prepare, deallocate, execute, discard, do, call, load, unknown
        // statements, ...
        _ => SessionEffect::Deep,
    };
    let session = if m.session_function {
        session.max(SessionEffect::State)
    } else {
        session
    };
    Effect { session, tx }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(sql: &str) -> SessionEffect {
        effect(sql).session
    }

    fn t(sql: &str) -> TxEffect {
        effect(sql).tx
    }

    #[test]
    fn harmless_statements() {
        for sql in [
            "SELECT 1",
            "sElEcT 1",
            "  select * from t where name = 'SET x'",
            "INSERT INTO t VALUES (1)",
            "UPDATE t SET a = 1",
            "WITH x AS (SELECT 1) SELECT * FROM x",
            "SELECT pg_advisory_xact_lock(1)",
            "SET LOCAL statement_timeout = 5",
            "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
            "-- SET x = 1\nSELECT 1",
            "/* DISCARD ALL */ SELECT 1",
            "SELECT $1::int",
            "CREATE TABLE t (temperature int)",
            "SELECT temp FROM t",
            "DECLARE c CURSOR FOR SELECT 1",
            "SELECT a_column_name_longer_than_any_keyword_at_all FROM t",
            "",
        ] {
            assert_eq!(s(sql), SessionEffect::None, "{sql}");
        }
    }

    #[test]
    fn session_state() {
        for sql in [
            "SET search_path = x",
            "Set Search_Path = x",
            "set application_name to 'a'",
            "SELECT PG_ADVISORY_LOCK(1)",
            "SET SESSION AUTHORIZATION pw_user",
            "SET ROLE x",
            "RESET ALL",
            "CREATE TEMP TABLE t (a int)",
            "CREATE TEMPORARY TABLE t (a int)",
            "CREATE TABLE pg_temp.t (a int)",
            "SELECT 1 INTO TEMP t",
            "SELECT pg_advisory_lock(1)",
            "SELECT pg_try_advisory_lock(1, 2)",
            "SELECT PG_TRY_ADVISORY_LOCK_SHARED(1)",
            "SELECT set_config('my.x', '1', false)",
            "LISTEN chan",
            "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
        ] {
            assert_eq!(s(sql), SessionEffect::State, "{sql}");
        }
    }

    #[test]
    fn deep_or_unknown() {
        for sql in [
            "PREPARE p AS SELECT 1",
            "DEALLOCATE ALL",
            "EXECUTE p",
            "DISCARD ALL",
            "DO $$ BEGIN PERFORM set_config('a.b', '1', false); END $$",
            "CALL proc()",
            "LOAD 'x'",
            "FROBNICATE",
        ] {
            assert_eq!(s(sql), SessionEffect::Deep, "{sql}");
        }
    }

    #[test]
    fn transactions() {
        assert_eq!(t("BEGIN"), TxEffect::Begin);
        assert_eq!(t("begin isolation level serializable"), TxEffect::Begin);
        assert_eq!(t("START TRANSACTION"), TxEffect::Begin);
        assert_eq!(t("COMMIT"), TxEffect::End);
        assert_eq!(t("END"), TxEffect::End);
        assert_eq!(t("ROLLBACK"), TxEffect::End);
        assert_eq!(t("ABORT"), TxEffect::End);
        assert_eq!(t("ROLLBACK TO SAVEPOINT a"), TxEffect::None);
        assert_eq!(t("COMMIT PREPARED 'x'"), TxEffect::None);
        assert_eq!(t("COMMIT AND CHAIN"), TxEffect::Begin);
        assert_eq!(t("COMMIT AND NO CHAIN"), TxEffect::End);
        assert_eq!(t("SELECT 1"), TxEffect::None);
        assert_eq!(
            t("BEGIN; INSERT INTO t VALUES (1); COMMIT"),
            TxEffect::Batch { ends_open: false }
        );
        assert_eq!(t("COMMIT; BEGIN"), TxEffect::Batch { ends_open: true });
        assert_eq!(t("SELECT 1; SELECT 2"), TxEffect::None);
    }

    #[test]
    fn batches_take_the_deepest_effect() {
        assert_eq!(s("SELECT 1; SET x = 1"), SessionEffect::State);
        assert_eq!(s("SELECT ';'; SELECT 2"), SessionEffect::None);
        assert_eq!(s("SELECT 'a;SET x=1'"), SessionEffect::None);
        assert_eq!(s("SELECT 1; PREPARE p AS SELECT 1"), SessionEffect::Deep);
        assert_eq!(t("SELECT 1;"), TxEffect::None);
        assert!(may_change_session("LISTEN a"));
        assert!(!may_change_session("SELECT 1"));
    }
}
