//! Whether SQL text may leave session state behind (see the module docs
//! of `sql`).

use super::lex::{is, is_any, lex, Tok};

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
    tokens_may_change(lex(sql.as_ref()).as_deref())
}

/// [`may_change_session`] of text already lexed (`None`: it could not be).
pub(crate) fn tokens_may_change(tokens: Option<&[Tok<'_>]>) -> bool {
    let Some(tokens) = tokens else {
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
