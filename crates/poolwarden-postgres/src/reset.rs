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

    /// A dropped command's reset goes out with its cancel request, not
    /// after the cancel request's answer; the connection is given back only
    /// when both are done. The cancel request passes through a relay that
    /// forwards it to the server and then holds the caller's socket open
    /// until the test lets go: the reset must reach the server meanwhile,
    /// and must not return before. (Before the fix the reset waited for the
    /// relay: the poll for its `ROLLBACK` below ran into its bound.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_reset_goes_out_with_the_cancel_and_waits_for_both() {
        use std::time::Duration;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let db = tokio::task::block_in_place(poolwarden_testkit::Postgres::start)
            .expect("a private PostgreSQL");
        let config: tokio_postgres::Config = db.url().parse().unwrap();
        let open = crate::connect::Open {
            init: InitSql::default(),
            cancel_timeout: Duration::from_secs(30),
            command_timeout: None,
            tls: crate::tls::Tls::None,
            verdict: crate::verdict::Verdict::new(Duration::from_secs(30)),
            watchdog: crate::watchdog::Watchdog::new(),
        };
        let mut conn = crate::connect::open(&config, &open).await.unwrap();
        let relay = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        conn.c.target = crate::cancel::CancelTarget::Tcp(
            "127.0.0.1".into(),
            relay.local_addr().unwrap().port(),
        );
        let (admin, admin_io) = tokio_postgres::connect(&db.url(), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(admin_io);
        let pid: i32 = conn
            .inner()
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .unwrap()
            .get(0);
        // Until the backend's current or last statement is `sql`, in `state`.
        let backend_at = |sql: &'static str, state: &'static str| {
            let admin = &admin;
            async move {
                for _ in 0..3000 {
                    let row = admin
                        .query_one(
                            "SELECT query, state FROM pg_stat_activity WHERE pid = $1",
                            &[&pid],
                        )
                        .await
                        .unwrap();
                    if row.get::<_, &str>(0) == sql && row.get::<_, &str>(1) == state {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                panic!("the backend never showed {sql:?} {state}");
            }
        };

        // A command dropped while the server runs it.
        tokio::select! {
            r = conn.simple_query("SELECT pg_sleep(60)") => panic!("it ended: {r:?}"),
            () = backend_at("SELECT pg_sleep(60)", "active") => {}
        }
        assert!(conn.seen().interrupted);

        let port = db.port();
        let (forwarded_tx, forwarded) = tokio::sync::oneshot::channel();
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let relay_task = tokio::spawn(async move {
            let (mut caller, _) = relay.accept().await.unwrap();
            let mut request = [0u8; 16];
            caller.read_exact(&mut request).await.unwrap();
            let mut server = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            server.write_all(&request).await.unwrap();
            let mut rest = Vec::new();
            server.read_to_end(&mut rest).await.unwrap();
            forwarded_tx.send(()).unwrap();
            let _ = released.await;
            drop(caller);
        });
        let reset = tokio::spawn(async move {
            run(&conn, Plan::Rollback, &InitSql::default())
                .await
                .unwrap();
            conn
        });
        forwarded.await.unwrap();
        // The cancel stopped the sleep, and the ROLLBACK that waited behind
        // it ran, while the cancel request's socket is still open.
        backend_at("ROLLBACK", "idle").await;
        assert!(
            !reset.is_finished(),
            "the connection was given back before the cancel request was done"
        );
        release.send(()).unwrap();
        let conn = reset.await.unwrap();
        relay_task.await.unwrap();
        let seen = conn.seen();
        assert!(!seen.interrupted && !seen.tx_open, "{seen:?}");
        let one = conn.simple_query("SELECT 1").await.unwrap();
        let one = one.iter().find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        });
        assert_eq!(one.as_deref(), Some("1"));
    }
}
