//! A small, conservative look at SQL text: may running it leave session
//! state behind for the next borrower (F13)?
//!
//! It answers "no" only for text it fully understands and knows to be
//! harmless; everything else (unknown statements, odd lexing, executable
//! comments) counts as changing. A wrong "yes" costs one background reset; a
//! wrong "no" would leak, so every doubt resolves to "yes".

/// Whether running `sql` may change session state that would outlive the
/// borrow: user or session variables, temporary tables, `GET_LOCK` locks,
/// `LAST_INSERT_ID()`, sequences' last values, named prepared statements,
/// the current database, and so on.
///
/// `false` ("harmless") only when **every** statement of the text (split on
/// `;` outside quotes and comments):
///
/// * starts (after whitespace, comments and opening parentheses) with
///   `SELECT`, `WITH`, `VALUES`, `TABLE`, `DO`, `SHOW`, `DESCRIBE`, `DESC`,
///   `EXPLAIN`, `UPDATE`, `DELETE`, or is a transaction statement (`BEGIN`,
///   `START TRANSACTION`, `COMMIT`, `ROLLBACK`, `SAVEPOINT`,
///   `RELEASE SAVEPOINT`; an open transaction is seen in the server's status
///   flags, so these need no tracking, but `COMMIT RELEASE`/`ROLLBACK
///   RELEASE`, which end the session, count as changing), and
/// * contains, outside string literals, none of: a user variable `@x`, an
///   assignment `:=`, a system variable `@@x` (allowed only in the read-only
///   statements above, not in `UPDATE`, `DELETE` or transaction statements),
///   `SET` (except as `UPDATE ... SET`), `INTO`, `GET_LOCK`, `RELEASE_LOCK`,
///   `RELEASE_ALL_LOCKS`, MySQL's `SERVICE_*_LOCKS` functions,
///   `LAST_INSERT_ID(expr)` with an argument, `NEXTVAL`, `SETVAL`, `LASTVAL`,
///   `NEXT VALUE`, `TEMPORARY`, `SQL_CALC_FOUND_ROWS`, `CALL`, `ANALYZE`
///   (`EXPLAIN ANALYZE` runs the statement), `INSERT` other than the
///   `INSERT(str, ...)` function. Names in backquotes or double quotes are
///   checked too (`` `GET_LOCK`(...) ``).
///
/// Everything else counts as changing: `INSERT`, `REPLACE`, `LOAD` (they
/// set `LAST_INSERT_ID()`), `SET`, `USE`, DDL, `PREPARE`, `LOCK TABLES`,
/// `HANDLER`, `XA`, `CALL`, empty text, unterminated quotes or comments,
/// MySQL/MariaDB executable comments (`/*! ... */`, `/*M! ... */`), and any
/// string literal containing a backslash (whether it escapes the quote
/// depends on the session's `sql_mode`, so the text cannot be split
/// reliably).
///
/// A call of a function that is not a known built-in counts as changing (a
/// stored function can do anything). What text cannot show: a trigger fired
/// by an `UPDATE`/`DELETE` that itself sets user variables, takes
/// `GET_LOCK` locks or creates temporary tables. Use
/// [`ResetPolicy::Full`](crate::ResetPolicy::Full) if your schema does that.
///
/// ```
/// use poolwarden_mysql::may_change_session;
///
/// assert!(!may_change_session("SELECT * FROM t WHERE id = ?"));
/// assert!(!may_change_session("UPDATE t SET n = n + 1 WHERE id = ?"));
/// assert!(may_change_session("SET @x = 1"));
/// assert!(may_change_session("SELECT GET_LOCK('job', 0)"));
/// assert!(may_change_session("SELECT 1; SET @x = 1"));
/// assert!(may_change_session("INSERT INTO t (a) VALUES (1)"));
/// ```
pub fn may_change_session(sql: impl AsRef<[u8]>) -> bool {
    let Some(tokens) = lex(sql.as_ref()) else {
        return true;
    };
    let mut statements = 0;
    for statement in tokens.split(|t| *t == Tok::Semicolon) {
        if statement.is_empty() {
            continue;
        }
        statements += 1;
        if statement_may_change(statement) {
            return true;
        }
    }
    // No statement at all: nothing to understand, so no promise either.
    statements == 0
}

/// A token outside comments; string literal contents are dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tok<'a> {
    /// A keyword, an unquoted name or a number; also the content of a name
    /// in backquotes or double quotes (which may call a function).
    Word(&'a [u8]),
    /// A `'string'`.
    Str,
    /// `@`: a user variable.
    At,
    /// `@@`: a system variable.
    AtAt,
    /// `:=`.
    Assign,
    /// `(`.
    Open,
    /// `)`.
    Close,
    /// `;`.
    Semicolon,
    /// Any other symbol.
    Other,
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// The tokens of `sql`, or `None` when it cannot be split reliably.
pub(crate) fn lex(sql: &[u8]) -> Option<Vec<Tok<'_>>> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&b) = sql.get(i) {
        let next = sql.get(i + 1).copied();
        match b {
            // Whitespace and control characters.
            0..=b' ' => i += 1,
            b'#' => i = line_end(sql, i),
            // `--` starts a comment only when followed by whitespace or a
            // control character (or the end); `--1` is two minus signs.
            b'-' if next == Some(b'-') && sql.get(i + 2).is_none_or(|&c| c <= b' ') => {
                i = line_end(sql, i)
            }
            b'/' if next == Some(b'*') => {
                let body = &sql[i + 2..];
                // `/*! ... */` and `/*M! ... */` are executed by the server.
                if body.first() == Some(&b'!')
                    || (body.first().is_some_and(|c| c.eq_ignore_ascii_case(&b'm'))
                        && body.get(1) == Some(&b'!'))
                {
                    return None;
                }
                let end = body.windows(2).position(|w| w == b"*/")?;
                i += 2 + end + 2;
            }
            b'\'' | b'"' | b'`' => {
                let end = quoted_end(sql, i)?;
                out.push(if b == b'\'' {
                    Tok::Str
                } else {
                    Tok::Word(&sql[i + 1..end - 1])
                });
                i = end;
            }
            b'@' if next == Some(b'@') => {
                out.push(Tok::AtAt);
                i += 2;
            }
            b'@' => {
                out.push(Tok::At);
                i += 1;
            }
            b':' if next == Some(b'=') => {
                out.push(Tok::Assign);
                i += 2;
            }
            b'(' => {
                out.push(Tok::Open);
                i += 1;
            }
            b')' => {
                out.push(Tok::Close);
                i += 1;
            }
            b';' => {
                out.push(Tok::Semicolon);
                i += 1;
            }
            b if is_word_byte(b) => {
                let start = i;
                while sql.get(i).is_some_and(|&c| is_word_byte(c)) {
                    i += 1;
                }
                out.push(Tok::Word(&sql[start..i]));
            }
            _ => {
                out.push(Tok::Other);
                i += 1;
            }
        }
    }
    Some(out)
}

/// Index after the end of the line that starts a comment at `i`.
fn line_end(sql: &[u8], i: usize) -> usize {
    sql[i..]
        .iter()
        .position(|&c| c == b'\n')
        .map_or(sql.len(), |n| i + n + 1)
}

/// Index after the closing quote of the quoted token starting at `start`;
/// `None` if it is unterminated, or if a string contains a backslash
/// (an escape or a plain character, depending on `NO_BACKSLASH_ESCAPES`).
fn quoted_end(sql: &[u8], start: usize) -> Option<usize> {
    let quote = sql[start];
    let mut i = start + 1;
    loop {
        let b = *sql.get(i)?;
        if b == b'\\' && quote != b'`' {
            return None;
        }
        if b == quote {
            if sql.get(i + 1) == Some(&quote) {
                i += 2; // a doubled quote stands for itself
                continue;
            }
            return Some(i + 1);
        }
        i += 1;
    }
}

/// What kind of statement its first keyword makes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `SELECT`, `WITH`, `VALUES`, `TABLE`, `DO`, `SHOW`, `DESCRIBE`,
    /// `DESC`, `EXPLAIN`: may read `@@system` variables.
    Read,
    /// `UPDATE`: has a `SET` clause.
    Update,
    /// `DELETE`, and transaction statements.
    Other,
}

pub(crate) fn is(word: &[u8], keyword: &str) -> bool {
    word.eq_ignore_ascii_case(keyword.as_bytes())
}

pub(crate) fn is_any(word: &[u8], keywords: &[&str]) -> bool {
    keywords.iter().any(|k| is(word, k))
}

/// Words that make any statement count as changing.
const CHANGING_WORDS: &[&str] = &[
    "GET_LOCK",
    "RELEASE_LOCK",
    "RELEASE_ALL_LOCKS",
    "SERVICE_GET_READ_LOCKS",
    "SERVICE_GET_WRITE_LOCKS",
    "SERVICE_RELEASE_LOCKS",
    "NEXTVAL",
    "SETVAL",
    "LASTVAL",
    "TEMPORARY",
    "SQL_CALC_FOUND_ROWS",
    "CALL",
    "INTO",
    "ANALYZE",
];

/// Words that may stand before `(` without being a stored function: SQL
/// keywords, type names (`CAST(x AS DECIMAL(10,2))`) and built-in functions
/// that cannot change the session. Any other `name(` may call a stored
/// function, which can do anything (F13), so it counts as changing.
const SAFE_BEFORE_PAREN: &[&str] = &[
    // keywords
    "IN",
    "EXISTS",
    "VALUES",
    "VALUE",
    "AS",
    "ON",
    "USING",
    "OVER",
    "FROM",
    "JOIN",
    "WHERE",
    "AND",
    "OR",
    "NOT",
    "XOR",
    "SELECT",
    "WITH",
    "HAVING",
    "BY",
    "ALL",
    "ANY",
    "SOME",
    "UNION",
    "EXCEPT",
    "INTERSECT",
    "INTERVAL",
    "AGAINST",
    "MATCH",
    "WHEN",
    "THEN",
    "ELSE",
    "LIKE",
    "BETWEEN",
    "IS",
    "RETURNING",
    "LATERAL",
    "DISTINCT",
    "TABLE",
    "JSON_TABLE",
    "COLUMNS",
    "PARTITION",
    "ROW",
    "CASE",
    "LIMIT",
    "OFFSET",
    "SET",
    "WINDOW",
    "FILTER",
    "WITHIN",
    "GROUP",
    "ORDER",
    "ESCAPE",
    "DIV",
    "MOD",
    "REGEXP",
    "RLIKE",
    "ROWS",
    "RANGE",
    // types
    "DECIMAL",
    "NUMERIC",
    "CHAR",
    "VARCHAR",
    "BINARY",
    "VARBINARY",
    "SIGNED",
    "UNSIGNED",
    "INT",
    "INTEGER",
    "BIGINT",
    "DOUBLE",
    "FLOAT",
    "DATETIME",
    "TIMESTAMP",
    "TIME",
    "DATE",
    // aggregates and window functions
    "COUNT",
    "SUM",
    "MIN",
    "MAX",
    "AVG",
    "GROUP_CONCAT",
    "JSON_ARRAYAGG",
    "JSON_OBJECTAGG",
    "STD",
    "STDDEV",
    "STDDEV_POP",
    "STDDEV_SAMP",
    "VARIANCE",
    "VAR_POP",
    "VAR_SAMP",
    "BIT_AND",
    "BIT_OR",
    "BIT_XOR",
    "ROW_NUMBER",
    "RANK",
    "DENSE_RANK",
    "PERCENT_RANK",
    "CUME_DIST",
    "NTILE",
    "LAG",
    "LEAD",
    "FIRST_VALUE",
    "LAST_VALUE",
    "NTH_VALUE",
    "ANY_VALUE",
    // control flow and conversion
    "COALESCE",
    "IFNULL",
    "NULLIF",
    "IF",
    "ISNULL",
    "CAST",
    "CONVERT",
    "GREATEST",
    "LEAST",
    // strings
    "CONCAT",
    "CONCAT_WS",
    "LOWER",
    "UPPER",
    "LCASE",
    "UCASE",
    "LENGTH",
    "CHAR_LENGTH",
    "CHARACTER_LENGTH",
    "OCTET_LENGTH",
    "BIT_LENGTH",
    "SUBSTRING",
    "SUBSTR",
    "MID",
    "SUBSTRING_INDEX",
    "TRIM",
    "LTRIM",
    "RTRIM",
    "REPLACE",
    "LEFT",
    "RIGHT",
    "LPAD",
    "RPAD",
    "REVERSE",
    "REPEAT",
    "SPACE",
    "LOCATE",
    "INSTR",
    "POSITION",
    "FIELD",
    "FIND_IN_SET",
    "ELT",
    "FORMAT",
    "HEX",
    "UNHEX",
    "ASCII",
    "ORD",
    "QUOTE",
    "SOUNDEX",
    "INSERT",
    "STRCMP",
    "REGEXP_REPLACE",
    "REGEXP_SUBSTR",
    "REGEXP_INSTR",
    "TO_BASE64",
    "FROM_BASE64",
    "MD5",
    "SHA",
    "SHA1",
    "SHA2",
    "CRC32",
    "UUID",
    "UUID_SHORT",
    "INET_ATON",
    "INET_NTOA",
    "INET6_ATON",
    "INET6_NTOA",
    "COLLATE",
    // numbers
    "ABS",
    "CEIL",
    "CEILING",
    "FLOOR",
    "ROUND",
    "TRUNCATE",
    "SIGN",
    "SQRT",
    "POW",
    "POWER",
    "EXP",
    "LN",
    "LOG",
    "LOG2",
    "LOG10",
    "PI",
    "RAND",
    "CONV",
    "BIN",
    "OCT",
    "DEGREES",
    "RADIANS",
    "SIN",
    "COS",
    "TAN",
    "ASIN",
    "ACOS",
    "ATAN",
    "ATAN2",
    "COT",
    "CRC32C",
    // dates and times
    "NOW",
    "CURDATE",
    "CURTIME",
    "CURRENT_DATE",
    "CURRENT_TIME",
    "CURRENT_TIMESTAMP",
    "UTC_DATE",
    "UTC_TIME",
    "UTC_TIMESTAMP",
    "SYSDATE",
    "LOCALTIME",
    "LOCALTIMESTAMP",
    "YEAR",
    "MONTH",
    "DAY",
    "DAYNAME",
    "MONTHNAME",
    "DAYOFWEEK",
    "DAYOFMONTH",
    "DAYOFYEAR",
    "HOUR",
    "MINUTE",
    "SECOND",
    "MICROSECOND",
    "WEEK",
    "WEEKDAY",
    "WEEKOFYEAR",
    "YEARWEEK",
    "QUARTER",
    "DATE_FORMAT",
    "TIME_FORMAT",
    "DATE_ADD",
    "DATE_SUB",
    "ADDDATE",
    "SUBDATE",
    "ADDTIME",
    "SUBTIME",
    "DATEDIFF",
    "TIMEDIFF",
    "TIMESTAMPDIFF",
    "TIMESTAMPADD",
    "STR_TO_DATE",
    "UNIX_TIMESTAMP",
    "FROM_UNIXTIME",
    "EXTRACT",
    "LAST_DAY",
    "MAKEDATE",
    "MAKETIME",
    "SEC_TO_TIME",
    "TIME_TO_SEC",
    "TO_DAYS",
    "FROM_DAYS",
    "CONVERT_TZ",
    "PERIOD_ADD",
    "PERIOD_DIFF",
    // JSON
    "JSON_EXTRACT",
    "JSON_VALUE",
    "JSON_QUERY",
    "JSON_OBJECT",
    "JSON_ARRAY",
    "JSON_CONTAINS",
    "JSON_CONTAINS_PATH",
    "JSON_UNQUOTE",
    "JSON_QUOTE",
    "JSON_LENGTH",
    "JSON_KEYS",
    "JSON_TYPE",
    "JSON_VALID",
    "JSON_SET",
    "JSON_INSERT",
    "JSON_REPLACE",
    "JSON_REMOVE",
    "JSON_MERGE",
    "JSON_MERGE_PATCH",
    "JSON_MERGE_PRESERVE",
    "JSON_SEARCH",
    "JSON_DEPTH",
    "JSON_ARRAY_APPEND",
    "JSON_ARRAY_INSERT",
    "JSON_COMPACT",
    "JSON_DETAILED",
    "JSON_EXISTS",
    // information about the session, read only
    "DATABASE",
    "SCHEMA",
    "USER",
    "CURRENT_USER",
    "SESSION_USER",
    "SYSTEM_USER",
    "VERSION",
    "CONNECTION_ID",
    "FOUND_ROWS",
    "ROW_COUNT",
    "LAST_INSERT_ID",
    "IS_USED_LOCK",
    "IS_FREE_LOCK",
    "SLEEP",
    "BENCHMARK",
    "CHARSET",
    "COLLATION",
    "COERCIBILITY",
];

/// Whether the parenthesis at `open` lists column names rather than call
/// arguments: it is followed, after its match, by `AS`, as in
/// `WITH r (n) AS (...)`.
fn names_columns(tokens: &[Tok<'_>], open: usize) -> bool {
    let mut depth = 0usize;
    for (i, t) in tokens.iter().enumerate().skip(open) {
        match t {
            Tok::Open => depth += 1,
            Tok::Close => {
                depth -= 1;
                if depth == 0 {
                    return matches!(tokens.get(i + 1), Some(Tok::Word(w)) if is(w, "AS"));
                }
            }
            _ => {}
        }
    }
    false
}

fn statement_may_change(tokens: &[Tok<'_>]) -> bool {
    // A parenthesised query: `(SELECT ...) UNION (SELECT ...)`.
    let start = tokens
        .iter()
        .position(|t| *t != Tok::Open)
        .unwrap_or(tokens.len());
    let Some(Tok::Word(first)) = tokens.get(start) else {
        return true;
    };
    let rest = &tokens[start + 1..];
    let word_at = |i: usize| match rest.get(i) {
        Some(Tok::Word(w)) => Some(*w),
        _ => None,
    };
    let kind = if is_any(
        first,
        &[
            "SELECT", "WITH", "VALUES", "TABLE", "DO", "SHOW", "DESCRIBE", "DESC", "EXPLAIN",
        ],
    ) {
        Kind::Read
    } else if is(first, "UPDATE") {
        Kind::Update
    } else if is(first, "DELETE") || is(first, "SAVEPOINT") {
        Kind::Other
    } else if is(first, "BEGIN") {
        // Not MariaDB's `BEGIN NOT ATOMIC ... END` compound statement.
        if !(rest.is_empty() || (rest.len() == 1 && word_at(0).is_some_and(|w| is(w, "WORK")))) {
            return true;
        }
        Kind::Other
    } else if is(first, "START") {
        if !word_at(0).is_some_and(|w| is(w, "TRANSACTION")) {
            return true;
        }
        Kind::Other
    } else if is(first, "RELEASE") {
        if !word_at(0).is_some_and(|w| is(w, "SAVEPOINT")) {
            return true;
        }
        Kind::Other
    } else if is(first, "COMMIT") || is(first, "ROLLBACK") {
        // `... RELEASE` ends the session: the next borrower would get a
        // closed connection that still looks idle.
        if rest
            .iter()
            .any(|t| matches!(t, Tok::Word(w) if is(w, "RELEASE")))
        {
            return true;
        }
        Kind::Other
    } else {
        return true;
    };

    for (i, token) in rest.iter().enumerate() {
        match *token {
            Tok::At | Tok::Assign => return true,
            Tok::AtAt if kind != Kind::Read => return true,
            Tok::Word(w) => {
                let next = rest.get(i + 1);
                if is_any(w, CHANGING_WORDS)
                    || (next == Some(&Tok::Open)
                        && !is_any(w, SAFE_BEFORE_PAREN)
                        && !names_columns(rest, i + 1))
                    || (is(w, "SET") && kind != Kind::Update)
                    || (is(w, "NEXT") && word_at(i + 1).is_some_and(|n| is(n, "VALUE")))
                    || (is(w, "INSERT") && next != Some(&Tok::Open))
                    || (is(w, "LAST_INSERT_ID")
                        && next == Some(&Tok::Open)
                        && rest.get(i + 2) != Some(&Tok::Close))
                {
                    return true;
                }
            }
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn harmless(sql: &str) {
        assert!(!may_change_session(sql), "should be harmless: {sql:?}");
    }

    #[track_caller]
    fn changing(sql: &str) {
        assert!(may_change_session(sql), "should count as changing: {sql:?}");
    }

    #[test]
    fn calls_of_functions_that_are_not_built_in_count_as_changing() {
        changing("SELECT f13_touch()");
        changing("SELECT test.f13_touch(1)");
        changing("SELECT `my fn`(1)");
        changing("UPDATE t SET a = my_func(a) WHERE id = 1");
        changing("DO my_proc_like(1)");
        harmless("SELECT COUNT(*), SUM(x), COALESCE(a, 0) FROM t GROUP BY y");
        harmless("SELECT CAST(x AS DECIMAL(10,2)), DATE_FORMAT(NOW(), '%Y') FROM t");
        harmless(
            "SELECT * FROM t WHERE a IN (1, 2) AND EXISTS (SELECT 1 FROM u WHERE u.id = t.id)",
        );
        harmless("SELECT JSON_EXTRACT(doc, '$.a'), LOWER(name) FROM t WHERE (a = 1 OR b = 2)");
        harmless("WITH x AS (SELECT 1) SELECT * FROM x");
        harmless("SELECT ROW_NUMBER() OVER (PARTITION BY a ORDER BY b) FROM t");
    }

    #[test]
    fn plain_reads_and_writes_are_harmless() {
        for sql in [
            "SELECT 1",
            "select 1",
            "SeLeCt 1",
            "SELECT * FROM t WHERE a = ? AND b = ?",
            "SELECT a, b FROM t WHERE id = :id",
            "SELECT COUNT(*), NOW(), CONCAT(a, 'x') FROM t GROUP BY a HAVING COUNT(*) > 1",
            "SELECT * FROM t FOR UPDATE",
            "SELECT * FROM t LOCK IN SHARE MODE",
            "SELECT * FROM t FOR UPDATE SKIP LOCKED",
            "UPDATE t SET a = 1 WHERE id = ?",
            "update t set a = a + 1, b = 'x' where id in (1, 2)",
            "DELETE FROM t WHERE id = 1",
            "delete t1 from t1 join t2 on t1.id = t2.id",
            "WITH x AS (SELECT 1 AS a) SELECT * FROM x",
            "WITH RECURSIVE r (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5) SELECT * FROM r",
            "SHOW TABLES",
            "SHOW WARNINGS",
            "DESCRIBE t",
            "DESC t",
            "EXPLAIN SELECT * FROM t",
            "VALUES (1), (2)",
            "VALUES ROW(1)",
            "TABLE t",
            "DO SLEEP(0)",
            "(SELECT 1) UNION (SELECT 2)",
            "((SELECT 1))",
            "SELECT LAST_INSERT_ID()",
            "SELECT LAST_INSERT_ID( )",
            "SELECT FOUND_ROWS(), ROW_COUNT(), CONNECTION_ID()",
            "SELECT IS_USED_LOCK('x'), IS_FREE_LOCK('y')",
            "SELECT INSERT('abc', 1, 1, 'x')",
            "SELECT SLEEP(1)",
            "SELECT * FROM t ORDER BY a DESC LIMIT 10",
        ] {
            harmless(sql);
        }
    }

    #[test]
    fn system_variable_reads_are_harmless() {
        for sql in [
            "SELECT @@wait_timeout",
            "SELECT @@SESSION.sql_mode, @@GLOBAL.max_connections",
            "select @@in_transaction",
            "SELECT @@wait_timeout, @@max_connections, VERSION()",
        ] {
            harmless(sql);
        }
        // But not as assignments, and not outside read-only statements.
        changing("SELECT @@x := 1");
        changing("UPDATE t SET a = @@wait_timeout");
        changing("DELETE FROM t WHERE a = @@wait_timeout");
        changing("SELECT @@wait_timeout INTO @w");
    }

    #[test]
    fn whitespace_and_comments_before_the_first_keyword() {
        for sql in [
            "   SELECT 1",
            "\n\t\r SELECT 1",
            "/* comment */ SELECT 1",
            "/* multi\n line */SELECT 1",
            "/**/SELECT 1",
            "-- comment\nSELECT 1",
            "--\tcomment\nSELECT 1",
            "--\nSELECT 1",
            "# comment\nSELECT 1",
            "#\nSELECT 1",
            "/*+ hint */ SELECT 1",
            "SELECT /*+ MAX_EXECUTION_TIME(1000) */ 1",
            "SELECT 1 -- ; SET @x = 1",
            "SELECT 1 # ; SET @x = 1",
            "SELECT 1 /* ; SET @x = 1 */",
            "SELECT 1 --",
        ] {
            harmless(sql);
        }
        for sql in [
            "/* comment */ SET @x = 1",
            "-- comment\nSET NAMES latin1",
            "# comment\nSET @x = 1",
            "/* a */ /* b */ -- c\n  set @x=1",
            // `--x` is not a comment: two minus signs, then `x`.
            "--x\nSELECT 1",
            "SELECT 1 --\nSET @x = 1",
        ] {
            changing(sql);
        }
    }

    #[test]
    fn user_variables_count_as_changing() {
        for sql in [
            "SET @x = 1",
            "set @x=1",
            "SET @x := 1",
            "select @x:=1",
            "SELECT @x := 1",
            "SELECT 1 INTO @x",
            "SELECT a INTO @a FROM t LIMIT 1",
            "SELECT @x",
            "SELECT * FROM t WHERE a = @x",
            "UPDATE t SET a = @x := a + 1",
            "SELECT @'quoted name' := 1",
            "SELECT @`x`",
        ] {
            changing(sql);
        }
    }

    #[test]
    fn locks_sequences_and_last_insert_id() {
        for sql in [
            "SELECT GET_LOCK('x',1)",
            "SELECT GET_LOCK('x', 1)",
            "select get_lock('x', 1)",
            "SELECT GET_LOCK ('x', 1)",
            "DO GET_LOCK('x', 0)",
            "SELECT RELEASE_LOCK('x')",
            "SELECT RELEASE_ALL_LOCKS()",
            "SELECT `GET_LOCK`('x', 0)",
            "SELECT \"get_lock\"('x', 0)",
            "SELECT a FROM t WHERE GET_LOCK(CONCAT('k', a), 0)",
            "SELECT SERVICE_GET_WRITE_LOCKS('ns', 'x', 0)",
            "SELECT LAST_INSERT_ID(5)",
            "SELECT LAST_INSERT_ID (5)",
            "UPDATE seq SET id = LAST_INSERT_ID(id + 1)",
            "SELECT NEXTVAL(s)",
            "SELECT NEXT VALUE FOR s",
            "select next value for s",
            "SELECT SETVAL(s, 10)",
            "SELECT LASTVAL(s)",
            "SELECT SQL_CALC_FOUND_ROWS * FROM t LIMIT 1",
        ] {
            changing(sql);
        }
    }

    #[test]
    fn statements_that_change_state() {
        for sql in [
            "INSERT INTO t VALUES (1)",
            "insert into t values (1)",
            "REPLACE INTO t VALUES (1)",
            "LOAD DATA INFILE 'x' INTO TABLE t",
            "CREATE TEMPORARY TABLE t (a INT)",
            "create temporary table t (a int)",
            "DROP TEMPORARY TABLE t",
            "CREATE TABLE t (a INT)",
            "SET SESSION sql_mode = ''",
            "SET sql_mode = ''",
            "SET autocommit = 0",
            "SET NAMES latin1",
            "SET time_zone = '+00:00'",
            "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
            "SET STATEMENT max_statement_time = 1 FOR SELECT 1",
            "USE mysql",
            "PREPARE s FROM 'SELECT 1'",
            "EXECUTE s",
            "DEALLOCATE PREPARE s",
            "LOCK TABLES t READ",
            "UNLOCK TABLES",
            "HANDLER t OPEN",
            "XA START 'x'",
            "CALL p()",
            "CALL p",
            "KILL QUERY 1",
            "FLUSH TABLES",
            "ANALYZE TABLE t",
            "EXPLAIN ANALYZE SELECT 1",
            "SELECT * FROM t INTO OUTFILE '/tmp/x'",
            "WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x",
            "SELECT CAST(a AS CHAR CHARACTER SET utf8mb4) FROM t", // a harmless false positive
            "SELECT temporary FROM t",                             // likewise
        ] {
            changing(sql);
        }
    }

    #[test]
    fn transaction_statements_are_left_to_the_status_flags() {
        for sql in [
            "BEGIN",
            "begin work",
            "START TRANSACTION",
            "START TRANSACTION READ ONLY",
            "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ WRITE",
            "COMMIT",
            "COMMIT WORK",
            "COMMIT AND CHAIN",
            "ROLLBACK",
            "ROLLBACK TO SAVEPOINT a",
            "SAVEPOINT a",
            "RELEASE SAVEPOINT a",
            "BEGIN; UPDATE t SET a = 1; COMMIT",
        ] {
            harmless(sql);
        }
        for sql in [
            "COMMIT RELEASE",
            "ROLLBACK AND NO CHAIN RELEASE",
            "BEGIN NOT ATOMIC SELECT 1; END",
            "START SLAVE",
            "RELEASE_LOCK",
            "BEGIN; SET @x = 1; COMMIT",
        ] {
            changing(sql);
        }
    }

    #[test]
    fn multi_statement_text() {
        harmless("SELECT 1; SELECT 2");
        harmless("SELECT 1;");
        harmless("SELECT 1;;  ;");
        harmless("SELECT ';' ; SELECT 2");
        changing("SELECT 1; SET @x=1");
        changing("SELECT 1;SET @x=1");
        changing("SELECT 1;\nset @x = 1;");
        changing("SELECT ';'; SET @x = 1");
        changing("SELECT 1; INSERT INTO t VALUES (1)");
        changing("SELECT 1; USE mysql; SELECT 2");
        changing("UPDATE t SET a = 1; SET @x = 1");
    }

    #[test]
    fn string_literals_and_quoted_names() {
        harmless("SELECT 'a@b', 'x;y', \"plain\" FROM t");
        // Double quotes may be a name (`ANSI_QUOTES`): checked like a word.
        changing("SELECT \"set\" FROM t");
        harmless("SELECT * FROM t WHERE email = 'a@b.c' AND note = 'SET @x = 1; GET_LOCK'");
        harmless("SELECT 'it''s'");
        harmless("SELECT `weird``name` FROM `t`");
        harmless("SELECT _utf8mb4'x', N'y', X'ff'");
        // A backslash in a string: its meaning depends on sql_mode.
        changing("SELECT 'a\\'b'");
        changing("SELECT 'a\\', GET_LOCK('x', 0), '...'");
        changing("SELECT \"a\\\"\"");
    }

    #[test]
    fn unparseable_text_counts_as_changing() {
        for sql in [
            "",
            "   ",
            ";",
            "-- only a comment",
            "/* only a comment */",
            "SELECT 'unterminated",
            "SELECT \"unterminated",
            "SELECT `unterminated",
            "SELECT 1 /* unterminated",
            "/*!40101 SET @x = 1 */",
            "/*!SELECT 1*/",
            "/*M!100101 SELECT 1 */",
            "SELECT 1 /*! , GET_LOCK('x', 0) */",
            "SELECT 1 /*m! , GET_LOCK('x', 0) */",
            "?",
            "1",
            "'SELECT'",
        ] {
            changing(sql);
        }
    }

    #[test]
    fn bytes_that_are_not_utf8() {
        assert!(!may_change_session(b"SELECT '\xff\xfe' FROM t".as_slice()));
        assert!(!may_change_session(
            b"SELECT \xc3\xa9t\xc3\xa9 FROM t".as_slice()
        ));
        assert!(may_change_session(b"SET @\xff = 1".as_slice()));
    }
}
