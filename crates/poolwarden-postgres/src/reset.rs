//! Undoing a borrower's session state (F13), and the init SQL that runs
//! after connect and after every reset that resets settings.

use tokio_postgres::Client;

use crate::conn::PgConn;
use crate::policy::Plan;

/// The "Clean" sequence (as deadpool-postgres calls it), preceded by a
/// `ROLLBACK`: ends an open or failed transaction, closes cursors, restores
/// the session's role and every setting, stops listening, releases
/// session advisory locks, drops temporary tables, forgets sequence state.
/// Prepared statements are kept. One round trip.
pub const CLEAN_SQL: &str = "ROLLBACK; CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; \
    UNLISTEN *; SELECT pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES";

/// The manager's init SQL, joined into one simple query.
#[derive(Debug, Clone, Default)]
pub(crate) struct InitSql {
    statements: Vec<String>,
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
        let batch = (!statements.is_empty()).then(|| statements.join(";\n"));
        InitSql { statements, batch }
    }

    pub(crate) fn statements(&self) -> &[String] {
        &self.statements
    }

    /// Run after connect: one round trip, none without init SQL.
    pub(crate) async fn run(&self, client: &Client) -> Result<(), tokio_postgres::Error> {
        match &self.batch {
            Some(batch) => client.batch_execute(batch).await,
            None => Ok(()),
        }
    }

    /// `sql` followed by the init SQL, as one simple query.
    fn after(&self, sql: &str) -> String {
        match &self.batch {
            Some(batch) => format!("{sql};\n{batch}"),
            None => sql.to_owned(),
        }
    }
}

/// Carry out `plan` on `conn`: cancel an interrupted command first, then
/// the cheapest statement(s) that do the job. Every one of them queues
/// behind whatever the server is still running for this connection, so
/// when this returns the server has finished with it.
pub(crate) async fn run(
    conn: &PgConn,
    plan: Plan,
    init: &InitSql,
) -> Result<(), tokio_postgres::Error> {
    conn.cancel_interrupted().await;
    let client = conn.inner();
    match plan {
        // `Sync`: no statement, just "tell me when you are done".
        Plan::Nothing | Plan::Settle => client.check_connection().await?,
        Plan::Rollback => {
            client.batch_execute("ROLLBACK").await?;
            conn.tracker.rolled_back();
            return Ok(());
        }
        Plan::Clean => client.batch_execute(&init.after(CLEAN_SQL)).await?,
        Plan::Full => {
            // DISCARD ALL refuses to run inside a (multi-statement)
            // transaction block: separate queries, sent together.
            let init_sql = init.batch.as_deref().unwrap_or("");
            tokio::try_join!(
                client.batch_execute("ROLLBACK"),
                client.batch_execute("DISCARD ALL"),
                client.batch_execute(init_sql),
            )?;
            conn.forget_statements();
        }
    }
    conn.tracker.cleaned();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_sql_is_trimmed_and_batched() {
        let init = InitSql::new([
            "SET TIME ZONE 'UTC';",
            "  ",
            "SET search_path = app -- x",
            "",
        ]);
        assert_eq!(
            init.statements(),
            ["SET TIME ZONE 'UTC'", "SET search_path = app -- x"]
        );
        assert_eq!(
            init.after("RESET ALL"),
            "RESET ALL;\nSET TIME ZONE 'UTC';\nSET search_path = app -- x"
        );
        assert_eq!(InitSql::default().after("RESET ALL"), "RESET ALL");
    }
}
