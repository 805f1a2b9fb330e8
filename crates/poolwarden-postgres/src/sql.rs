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
pub fn effect(sql: &str) -> Effect {
    let mut pieces = split(sql).filter(|s| !s.trim().is_empty()).peekable();
    let Some(first) = pieces.next() else {
        return Effect::default();
    };
    let mut total = one(first);
    if pieces.peek().is_none() {
        return total;
    }
    let mut last_tx = total.tx;
    for piece in pieces {
        let e = one(piece);
        total.session = total.session.max(e.session);
        if e.tx != TxEffect::None {
            last_tx = e.tx;
        }
    }
    if last_tx != TxEffect::None {
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

/// Statements of a batch. Splits at `;` outside quotes and comments.
fn split(sql: &str) -> impl Iterator<Item = &str> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let (mut start, mut i) = (0, 0);
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
                out.push(&sql[start..i]);
                start = i + 1;
                i += 1;
            }
            _ => i += 1,
        }
    }
    out.push(&sql[start..]);
    out.into_iter()
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

/// The words of one statement (as written; compare them with
/// [`is`]), comments and quoted text left out. No allocation per word.
fn words(sql: &str) -> Vec<&str> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'\'' || b == b'"' {
            i = skip_quoted(bytes, i);
        } else if b == b'-' && bytes.get(i + 1) == Some(&b'-') {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
        } else if b == b'/' && bytes.get(i + 1) == Some(&b'*') {
            i = skip_block_comment(bytes, i);
        } else if b == b'$' {
            let next = skip_dollar_quoted(sql, i);
            i = if next == i + 1 { i + 1 } else { next };
        } else if b.is_ascii_alphabetic() || b == b'_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            out.push(&sql[start..i]);
        } else {
            i += 1;
        }
    }
    out
}

/// Functions whose effect outlives the transaction.
const SESSION_FUNCTIONS: &[&str] = &[
    "pg_advisory_lock",
    "pg_advisory_lock_shared",
    "pg_try_advisory_lock",
    "pg_try_advisory_lock_shared",
    "set_config",
    "dblink_connect",
    "dblink_connect_u",
];

/// Statements that change no session state by themselves (the functions
/// they call are looked at separately).
const HARMLESS: &[&str] = &[
    "select",
    "with",
    "values",
    "table",
    "show",
    "explain",
    "insert",
    "update",
    "delete",
    "merge",
    "copy",
    "savepoint",
    "release",
    "alter",
    "drop",
    "grant",
    "revoke",
    "truncate",
    "vacuum",
    "analyze",
    "analyse",
    "comment",
    "lock",
    "notify",
    "fetch",
    "move",
    "close",
    "refresh",
    "cluster",
    "reindex",
    "checkpoint",
    "security",
    "import",
];

/// `word` is `lower` (an ASCII lower-case keyword), in any case.
fn is(word: &str, lower: &str) -> bool {
    word.eq_ignore_ascii_case(lower)
}

/// The lower-case keyword of `list` that `word` is, if any.
fn keyword(word: &str, list: &[&'static str]) -> Option<&'static str> {
    list.iter().copied().find(|k| is(word, k))
}

/// The keywords the rules below match the first two words against.
const LEADING: &[&str] = &[
    "begin",
    "start",
    "commit",
    "end",
    "rollback",
    "abort",
    "set",
    "reset",
    "listen",
    "unlisten",
    "declare",
    "create",
    "select",
    "with",
    "to",
    "prepared",
    "local",
    "transaction",
    "constraints",
];

fn one(sql: &str) -> Effect {
    let words = words(sql);
    let Some(&first_word) = words.first() else {
        return Effect::default();
    };
    let has = |w: &str| words.iter().any(|x| is(x, w));
    // An unknown first word stays "", which the last arm below counts as
    // changing anything.
    let first = keyword(first_word, LEADING)
        .or_else(|| keyword(first_word, HARMLESS))
        .unwrap_or("");
    let second = words.get(1).and_then(|w| keyword(w, LEADING));
    let calls_session_function = words
        .iter()
        .any(|w| keyword(w, SESSION_FUNCTIONS).is_some());
    let temp = has("temp") || has("temporary") || has("pg_temp");
    let tx = match first {
        "begin" | "start" => TxEffect::Begin,
        "commit" | "end" | "rollback" | "abort" => match second {
            Some("to") | Some("prepared") => TxEffect::None,
            _ if has("chain") && !has("no") => TxEffect::Begin,
            _ => TxEffect::End,
        },
        _ => TxEffect::None,
    };
    let session = match first {
        "begin" | "start" | "commit" | "end" | "rollback" | "abort" => SessionEffect::None,
        // Transaction-scoped settings end with the transaction.
        "set" => match second {
            Some("local") | Some("transaction") | Some("constraints") => SessionEffect::None,
            _ => SessionEffect::State,
        },
        "reset" | "listen" | "unlisten" => SessionEffect::State,
        "declare" if has("hold") => SessionEffect::State,
        "declare" => SessionEffect::None,
        "create" if temp => SessionEffect::State,
        "create" => SessionEffect::None,
        // `SELECT ... INTO TEMP t`.
        "select" | "with" if temp && has("into") => SessionEffect::State,
        w if HARMLESS.contains(&w) => SessionEffect::None,
        // prepare, deallocate, execute, discard, do, call, load, ...
        _ => SessionEffect::Deep,
    };
    let session = if calls_session_function {
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
