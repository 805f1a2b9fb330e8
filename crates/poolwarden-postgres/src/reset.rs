//! Undoing a borrower's session state (F13), and the init SQL that runs
//! after connect and after every reset that resets settings.

use tokio_postgres::error::SqlState;
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

/// Carry out `plan` on `conn`: the cheapest statement(s) that do the job,
/// with the cancel request of an interrupted command. Every statement
/// queues behind whatever the server is still running for this connection,
/// so when this returns the server has finished with it.
///
/// An interrupted command's cancel request and the reset go out together:
/// the reset waits in the server's socket behind the interrupted command
/// and runs as soon as the cancel stopped it, instead of one more round
/// trip after the cancel request's answer (the next borrower of a dropped
/// `pg_sleep(1)` waits that much less). This returns only when both are
/// done (the cancel request's socket closed: the server has signalled the
/// backend), so a cancel that comes late cannot hit the next borrower's
/// command: a backend idle between commands drops a cancel. It can hit the
/// reset itself (the interrupted command had just finished on its own):
/// then the reset, which is idempotent, runs once more.
pub(crate) async fn run(
    conn: &PgConn,
    plan: Plan,
    init: &InitSql,
) -> Result<(), tokio_postgres::Error> {
    if !conn.c.tracker.seen_interrupted() {
        return carry_out(conn, plan, init).await;
    }
    let (cancel_sent, done) = tokio::join!(conn.cancel_interrupted(), carry_out(conn, plan, init));
    match done {
        Err(e) if cancel_sent && e.code() == Some(&SqlState::QUERY_CANCELED) => {
            tracing::debug!("a late cancel request hit the reset; running it again");
            carry_out(conn, plan, init).await
        }
        done => done,
    }
}

/// The statement(s) of `plan`.
async fn carry_out(conn: &PgConn, plan: Plan, init: &InitSql) -> Result<(), tokio_postgres::Error> {
    let client = conn.inner();
    match plan {
        // `Sync`: no statement, just "tell me when you are done".
        Plan::Nothing | Plan::Settle => client.check_connection().await?,
        Plan::Rollback => {
            client.batch_execute("ROLLBACK").await?;
            conn.c.tracker.rolled_back();
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
    conn.c.tracker.cleaned();
    Ok(())
}

#[cfg(test)]
mod tests;
