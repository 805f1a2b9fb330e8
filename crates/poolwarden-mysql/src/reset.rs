//! Undoing a borrower's session state (F13), and the init SQL that has to
//! run again afterwards.

use mysql_async::prelude::Queryable;
use mysql_async::{ChangeUserOpts, Conn};

use crate::probe::Session;

/// The manager's init SQL, kept ready to send as one multi-statement query.
#[derive(Debug, Clone, Default)]
pub(crate) struct InitSql {
    statements: Vec<String>,
    /// `statements` joined: what runs after connect.
    batch: Option<String>,
}

impl InitSql {
    /// Keep the non-empty statements, each without trailing `;`.
    pub(crate) fn new<I, S>(statements: I) -> InitSql
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let statements: Vec<String> = statements
            .into_iter()
            .map(|s| {
                let s: String = s.into();
                s.trim().trim_end_matches(';').trim_end().to_owned()
            })
            .filter(|s| !s.is_empty())
            .collect();
        let batch = join(statements.iter().map(String::as_str));
        InitSql { statements, batch }
    }

    /// The statements, in order.
    pub(crate) fn statements(&self) -> &[String] {
        &self.statements
    }

    /// Run after connect (and after `COM_CHANGE_USER`): one round trip, none
    /// when there is no init SQL.
    pub(crate) async fn run(&self, conn: &mut Conn) -> mysql_async::Result<()> {
        if let Some(batch) = &self.batch {
            conn.query_drop(batch.as_str()).await?;
        }
        Ok(())
    }

    /// Run after `COM_RESET_CONNECTION`, which keeps the current database:
    /// `USE <database>` first, in the same round trip.
    async fn run_after_reset(&self, conn: &mut Conn, db: Option<&str>) -> mysql_async::Result<()> {
        let use_db = db.map(|db| format!("USE {}", quote_ident(db)));
        let batch = join(
            use_db
                .as_deref()
                .into_iter()
                .chain(self.statements.iter().map(String::as_str)),
        );
        if let Some(batch) = batch {
            conn.query_drop(batch).await?;
        }
        Ok(())
    }
}

fn join<'a>(statements: impl Iterator<Item = &'a str>) -> Option<String> {
    let mut out = String::new();
    for s in statements {
        if !out.is_empty() {
            // A newline too, so a trailing `-- comment` cannot swallow the
            // next statement.
            out.push_str(";\n");
        }
        out.push_str(s);
    }
    (!out.is_empty()).then_some(out)
}

/// A backquoted identifier.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// [`ResetPolicy::Rollback`](crate::ResetPolicy::Rollback), and
/// [`ResetPolicy::Auto`](crate::ResetPolicy::Auto) when only a transaction is
/// left to undo: `ROLLBACK`, then put `autocommit` back if the borrower
/// changed it.
pub(crate) async fn rollback(
    conn: &mut Conn,
    baseline_autocommit: bool,
) -> mysql_async::Result<()> {
    conn.query_drop("ROLLBACK").await?;
    if Session::of(conn).autocommit() != Some(baseline_autocommit) {
        let sql = if baseline_autocommit {
            "SET autocommit = 1"
        } else {
            "SET autocommit = 0"
        };
        conn.query_drop(sql).await?;
    }
    Ok(())
}

/// [`ResetPolicy::Full`](crate::ResetPolicy::Full), and
/// [`ResetPolicy::Auto`](crate::ResetPolicy::Auto) for a dirty connection.
///
/// `COM_RESET_CONNECTION` (`Conn::reset`) rolls back, drops temporary
/// tables, releases `GET_LOCK` locks and prepared statements, forgets user
/// variables, sets session variables back to their global values (charset
/// back to the handshake's) and `LAST_INSERT_ID()` to 0; mysql_async also
/// clears its statement cache and re-runs the `Opts` "setup" statements. It
/// does **not** change the current database, so `USE <database>` follows,
/// batched with the init SQL: two round trips in all.
///
/// Where `COM_RESET_CONNECTION` is missing (MySQL < 5.7.3, MariaDB < 10.2.4)
/// or the options name no database (a borrower's `USE` could not be undone
/// otherwise), `COM_CHANGE_USER` with the connection's own credentials does
/// the same and restores the database, at the cost of a re-authentication.
pub(crate) async fn full(conn: &mut Conn, init: &InitSql) -> mysql_async::Result<()> {
    let db = conn.opts().db_name().map(str::to_owned);
    let reset_done = match db.as_deref() {
        Some(_) => conn.reset().await?,
        None => false,
    };
    if reset_done {
        init.run_after_reset(conn, db.as_deref()).await
    } else {
        conn.change_user(ChangeUserOpts::default()).await?;
        init.run(conn).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_sql_is_trimmed_and_batched() {
        let init = InitSql::new(["SET time_zone = '+00:00';", "  ", "SET @a = 1 -- note", ""]);
        assert_eq!(
            init.statements(),
            ["SET time_zone = '+00:00'", "SET @a = 1 -- note"]
        );
        assert_eq!(
            init.batch.as_deref(),
            Some("SET time_zone = '+00:00';\nSET @a = 1 -- note")
        );
        assert!(InitSql::new(Vec::<String>::new()).batch.is_none());
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("test"), "`test`");
        assert_eq!(quote_ident("we`ird"), "`we``ird`");
    }
}
