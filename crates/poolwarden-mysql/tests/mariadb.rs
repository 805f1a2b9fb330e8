//! The manager against a private MariaDB server (poolwarden-testkit), called
//! the way the pool calls it: `probe_returned` when a borrower gives a
//! connection back, `reset` when that says so, `probe` right after a reset
//! and before every hand-out.
//!
//! The tests fail if the server cannot be started: there is no skip. The
//! tests of this binary that run at the same time share one server, killed
//! when the last of them ends (see `shared_server`).

use std::future::Future;
use std::ops::DerefMut;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use mysql_async::prelude::{FromValue, Query, Queryable};
use mysql_async::Row;
use poolwarden::{ErrorClass, Manager, Probe};
use poolwarden_mysql::{MySqlConn, MySqlManager, ResetPolicy};
use poolwarden_testkit::MariaDb;

/// The private server shared by the tests of this binary that run at the
/// same time. Dropped (killed) when the last of them lets go of it; a later
/// test starts a new one. Nothing here changes global server state.
fn shared_server() -> Arc<MariaDb> {
    static SHARED: Mutex<Weak<MariaDb>> = Mutex::new(Weak::new());
    let mut slot = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(db) = slot.upgrade() {
        return db;
    }
    let db = Arc::new(
        MariaDb::start().expect("a private MariaDB must start (is mariadb-server installed?)"),
    );
    *slot = Arc::downgrade(&db);
    db
}

/// Runs an async test body on a runtime of its own (the server is started
/// and killed outside it: both block).
fn run<F: Future>(body: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(body)
}

/// SQL as root through the `mariadb` client (blocking, off the workers).
fn admin(db: &MariaDb, sql: &str) -> Vec<Vec<String>> {
    tokio::task::block_in_place(|| db.admin(sql)).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The URL of the password user, database `test`.
fn url(db: &MariaDb) -> String {
    db.url_for(MariaDb::PW_USER, MariaDb::PW_PASSWORD, MariaDb::DATABASE)
}

fn manager(db: &MariaDb, policy: ResetPolicy) -> MySqlManager {
    MySqlManager::from_url(&url(db))
        .expect("the testkit's URL is valid")
        .init_sql(["SET time_zone = '+00:00'"])
        .reset_policy(policy)
}

/// The first column of the first row (`None` for no row or SQL NULL).
async fn scalar<T: FromValue>(conn: &mut MySqlConn, sql: &str) -> Option<T> {
    let row: Option<Row> = conn.query_first(sql).await.expect(sql);
    row.and_then(|r| r.get::<Option<T>, _>(0).flatten())
}

/// A table of this test's own in database `test`.
fn table(db: &MariaDb, name: &str) -> String {
    admin(
        db,
        &format!(
            "CREATE OR REPLACE TABLE test.{name} \
             (id INT AUTO_INCREMENT PRIMARY KEY, n INT NOT NULL DEFAULT 0)"
        ),
    );
    name.to_owned()
}

#[test]
fn connect_learns_the_servers_idle_timeout() {
    let db = shared_server();
    run(async {
        let m = manager(&db, ResetPolicy::Auto);
        let mut conn = m.connect().await.unwrap();
        let facts = m.facts(&conn);
        let wait: u64 = conn
            .query_first("SELECT @@wait_timeout")
            .await
            .unwrap()
            .unwrap();
        let max: u64 = conn
            .query_first("SELECT @@max_connections")
            .await
            .unwrap()
            .unwrap();
        let version: String = conn.query_first("SELECT VERSION()").await.unwrap().unwrap();
        assert_eq!(facts.server_idle_timeout, Some(Duration::from_secs(wait)));
        assert_eq!(facts.max_connections, Some(max as u32));
        assert_eq!(facts.server_version.as_deref(), Some(version.as_str()));
        // Init SQL ran, in order, before the facts were read.
        let m = MySqlManager::from_url(&url(&db)).unwrap().init_sql([
            "SET SESSION wait_timeout = 1234",
            "SET SESSION wait_timeout = 1235",
        ]);
        let conn = m.connect().await.unwrap();
        assert_eq!(
            m.facts(&conn).server_idle_timeout,
            Some(Duration::from_secs(1235))
        );
        assert!(!conn.is_dirty(), "init SQL is the baseline, not a borrower");
    });
}

#[test]
fn connections_are_plain_tcp_with_keepalive() {
    let db = shared_server();
    run(async {
        let m = manager(&db, ResetPolicy::Auto);
        assert!(!m.opts().prefer_socket());
        assert!(m.opts().tcp_keepalive().is_some());
        let mut conn = m.connect().await.unwrap();
        assert!(!conn.is_disconnected());
        m.validate(&mut conn).await.unwrap();
        assert!(
            !conn.is_dirty(),
            "validation is the pool's, not a borrower's"
        );
        assert_eq!(m.probe(&mut conn), Probe::Clean);
    });
}

/// The free common case: statements that change no session state leave the
/// connection clean, so the pool puts it straight back.
#[test]
fn auto_policy_costs_nothing_for_harmless_statements() {
    let db = shared_server();
    let t = table(&db, "pw_harmless");
    run(async {
        let m = manager(&db, ResetPolicy::Auto);
        let mut conn = m.connect().await.unwrap();
        assert_eq!(m.probe(&mut conn), Probe::Clean, "checkout");

        conn.query_drop("SELECT 1").await.unwrap();
        let one: Option<i64> = conn.query_first("select 1").await.unwrap();
        assert_eq!(one, Some(1));
        let rows: Vec<Row> = conn.query("SELECT 1 UNION ALL SELECT 2").await.unwrap();
        assert_eq!(rows.len(), 2);
        let wait: Option<u64> = conn.query_first("SELECT @@wait_timeout").await.unwrap();
        assert!(wait.is_some());
        let v: Option<i64> = conn.exec_first("SELECT ? + 1", (1,)).await.unwrap();
        assert_eq!(v, Some(2));
        let sql = String::from("SELECT ?");
        let v: Vec<i64> = conn.exec(&sql, (5,)).await.unwrap();
        assert_eq!(v, [5]);
        let stmt = conn.prep("SELECT ? * 2").await.unwrap();
        let v: Option<i64> = conn.exec_first(&stmt, (21,)).await.unwrap();
        assert_eq!(v, Some(42));
        conn.exec_drop(stmt.clone(), (1,)).await.unwrap();
        conn.exec_drop(format!("UPDATE {t} SET n = n + ? WHERE id = ?"), (1, 1))
            .await
            .unwrap();
        conn.exec_batch(format!("DELETE FROM {t} WHERE id = ?"), vec![(1,), (2,)])
            .await
            .unwrap();
        conn.query_drop("BEGIN").await.unwrap();
        conn.query_drop(format!("UPDATE {t} SET n = 0"))
            .await
            .unwrap();
        conn.query_drop("COMMIT").await.unwrap();
        conn.ping().await.unwrap();
        // Read-only `Conn` methods through Deref.
        let _ = (conn.id(), conn.last_insert_id(), conn.affected_rows());

        assert!(!conn.is_dirty());
        assert_eq!(m.probe_returned(&mut conn), Probe::Clean, "return");
        assert_eq!(m.probe(&mut conn), Probe::Clean, "next checkout");
    });
}

/// Each F13 leftover, under `Auto` and under `Full`: flagged at return,
/// gone after the reset, and the connection is clean for the next borrower.
#[test]
fn every_kind_of_session_state_is_flagged_and_reset() {
    let db = shared_server();
    let t = table(&db, "pw_leftovers");
    run(async {
        for policy in [ResetPolicy::Auto, ResetPolicy::Full] {
            let m = manager(&db, policy);
            let mut conn = m.connect().await.unwrap();
            let lock = format!("pw_leftover_lock_{}", conn.id());
            let global_sql_mode: Option<String> =
                scalar(&mut conn, "SELECT @@GLOBAL.sql_mode").await;
            // (leftover, check, expected value after the reset)
            let leftovers: Vec<(String, String, Option<String>)> = vec![
                ("SET @x = 1".into(), "SELECT @x".into(), None),
                ("select @y := 2".into(), "SELECT @y".into(), None),
                ("SELECT 1; SET @z = 3".into(), "SELECT @z".into(), None),
                ("SELECT 4 INTO @w".into(), "SELECT @w".into(), None),
                (
                    "BEGIN".into(),
                    "SELECT @@in_transaction".into(),
                    Some("0".into()),
                ),
                (
                    format!("START TRANSACTION; INSERT INTO {t} (n) VALUES (7)"),
                    format!("SELECT COUNT(*) FROM {t} WHERE n = 7"),
                    Some("0".into()),
                ),
                // Creating it again fails if the reset did not drop it.
                (
                    "CREATE TEMPORARY TABLE pw_tmp (a INT)".into(),
                    "CREATE TEMPORARY TABLE pw_tmp (a INT)".into(),
                    None,
                ),
                (
                    format!("SELECT GET_LOCK('{lock}', 0)"),
                    format!("SELECT IS_USED_LOCK('{lock}')"),
                    None,
                ),
                (
                    format!("DO GET_LOCK('{lock}', 0)"),
                    format!("SELECT IS_USED_LOCK('{lock}')"),
                    None,
                ),
                (
                    format!("INSERT INTO {t} (n) VALUES (1)"),
                    "SELECT LAST_INSERT_ID()".into(),
                    Some("0".into()),
                ),
                (
                    "SELECT LAST_INSERT_ID(42)".into(),
                    "SELECT LAST_INSERT_ID()".into(),
                    Some("0".into()),
                ),
                (
                    "SET SESSION sql_mode = ''".into(),
                    "SELECT @@SESSION.sql_mode".into(),
                    global_sql_mode.clone(),
                ),
                (
                    "SET time_zone = '+05:00'".into(),
                    "SELECT @@time_zone".into(),
                    Some("+00:00".into()),
                ),
                (
                    "SET autocommit = 0".into(),
                    "SELECT @@autocommit".into(),
                    Some("1".into()),
                ),
                (
                    "SET NAMES latin1".into(),
                    "SELECT @@character_set_client".into(),
                    Some("utf8mb4".into()),
                ),
                (
                    "USE mysql".into(),
                    "SELECT DATABASE()".into(),
                    Some("test".into()),
                ),
                (
                    "PREPARE pw_stmt FROM 'SELECT 1'".into(),
                    "SELECT 1".into(),
                    Some("1".into()),
                ),
            ];
            for (leftover, check, expected) in leftovers {
                let ctx = format!("{policy:?}: {leftover}");
                // The borrow starts clean.
                if m.probe_returned(&mut conn) != Probe::Clean {
                    m.reset(&mut conn).await.unwrap();
                }
                if policy == ResetPolicy::Auto {
                    assert_eq!(m.probe_returned(&mut conn), Probe::Clean, "{ctx}");
                }
                conn.query_drop(leftover.as_str()).await.expect(&ctx);
                assert_eq!(m.probe_returned(&mut conn), Probe::NeedsReset, "{ctx}");
                m.reset(&mut conn).await.expect(&ctx);
                assert!(!conn.is_dirty(), "{ctx}");
                assert_eq!(m.probe(&mut conn), Probe::Clean, "post-reset check: {ctx}");
                assert_eq!(m.probe(&mut conn), Probe::Clean, "checkout: {ctx}");
                if check.starts_with("CREATE") {
                    conn.query_drop(check.as_str()).await.expect(&ctx);
                } else {
                    let seen: Option<String> = scalar(&mut conn, &check).await;
                    assert_eq!(seen, expected, "{check} after {ctx}");
                }
            }
            // The SQL prepared statement is gone too.
            let err = conn.query_drop("EXECUTE pw_stmt").await.unwrap_err();
            assert!(
                matches!(err, mysql_async::Error::Server(ref e) if e.code == 1243),
                "{err}"
            );
        }
    });
}

/// Under `Auto`, an open transaction on an otherwise clean connection is
/// undone with a `ROLLBACK`: the statement cache survives. A dirty one gets
/// the full reset, which drops the server's prepared statements.
#[test]
fn auto_rolls_back_a_transaction_and_fully_resets_the_rest() {
    let db = shared_server();
    let t = table(&db, "pw_auto_rollback");
    run(async {
        let m = manager(&db, ResetPolicy::Auto);
        let mut conn = m.connect().await.unwrap();
        let stmt = conn
            .prep(format!("SELECT COUNT(*) FROM {t}"))
            .await
            .unwrap();

        conn.query_drop("BEGIN").await.unwrap();
        conn.exec_drop(format!("UPDATE {t} SET n = ?"), (1,))
            .await
            .unwrap();
        conn.query_drop(format!("DELETE FROM {t}")).await.unwrap();
        assert!(!conn.is_dirty(), "nothing but the transaction");
        assert_eq!(m.probe_returned(&mut conn), Probe::NeedsReset);
        m.reset(&mut conn).await.unwrap();
        assert_eq!(m.probe(&mut conn), Probe::Clean);
        let in_tx: Option<i64> = conn.query_first("SELECT @@in_transaction").await.unwrap();
        assert_eq!(in_tx, Some(0));
        // Still prepared: no COM_RESET_CONNECTION happened.
        let n: Option<i64> = conn.exec_first(&stmt, ()).await.unwrap();
        assert!(n.is_some());
        assert_eq!(m.probe_returned(&mut conn), Probe::Clean);

        // A failed command: the status is unknown, so roll back, but the
        // connection is not dirty.
        let err = conn.query_drop("SELECT no_such_column").await.unwrap_err();
        assert_eq!(m.classify(&err), ErrorClass::Keep);
        assert!(!conn.is_dirty());
        assert_eq!(m.probe_returned(&mut conn), Probe::NeedsReset);
        m.reset(&mut conn).await.unwrap();
        assert_eq!(m.probe_returned(&mut conn), Probe::Clean);
        let n: Option<i64> = conn.exec_first(&stmt, ()).await.unwrap();
        assert!(n.is_some(), "ROLLBACK kept the statement");

        // Dirty and in a transaction: the full reset.
        conn.query_drop("BEGIN; SET @d = 1").await.unwrap();
        assert!(conn.is_dirty());
        m.reset(&mut conn).await.unwrap();
        assert_eq!(m.probe(&mut conn), Probe::Clean);
        let err = conn.exec_drop(&stmt, ()).await.unwrap_err();
        assert!(
            matches!(err, mysql_async::Error::Server(ref e) if e.code == 1243),
            "the full reset dropped the prepared statement: {err}"
        );
    });
}

/// mysql_async parses the `COM_STMT_PREPARE` response as an OK packet too,
/// so after a prepare `last_ok_packet()` shows garbage status flags. The
/// probe must use the status from before the prepare instead.
#[test]
fn a_prepare_as_the_last_command_does_not_fool_the_probe() {
    let db = shared_server();
    run(async {
        let m = manager(&db, ResetPolicy::Auto);
        let mut conn = m.connect().await.unwrap();
        conn.query_drop("SELECT 1").await.unwrap();
        let _ = conn.prep("SELECT 1 FROM DUAL").await.unwrap();
        let shown = conn.last_ok_packet().map(|ok| ok.status_flags());
        assert_ne!(
            shown,
            Some(mysql_async::consts::StatusFlags::SERVER_STATUS_AUTOCOMMIT),
            "what mysql_async shows after a prepare is not the session's status"
        );
        assert_eq!(m.probe_returned(&mut conn), Probe::Clean);

        conn.query_drop("BEGIN").await.unwrap();
        let _ = conn.prep("SELECT 2 FROM DUAL").await.unwrap();
        assert_eq!(
            m.probe_returned(&mut conn),
            Probe::NeedsReset,
            "the transaction opened before the prepare"
        );
        m.reset(&mut conn).await.unwrap();
        let in_tx: Option<i64> = conn.query_first("SELECT @@in_transaction").await.unwrap();
        assert_eq!(in_tx, Some(0));

        // Raw use: the last status cannot be trusted either, so even the
        // Rollback policy rolls back.
        let m = manager(&db, ResetPolicy::Rollback);
        let mut conn = m.connect().await.unwrap();
        let _ = conn.raw_mut().prep("SELECT 3 FROM DUAL").await.unwrap();
        assert_eq!(m.probe_returned(&mut conn), Probe::NeedsReset);
        m.reset(&mut conn).await.unwrap();
        assert_eq!(m.probe(&mut conn), Probe::Clean);
    });
}

/// Which ways of running SQL are seen, and which count as raw use.
#[test]
fn exec_prepared_and_raw_use_are_tracked() {
    let db = shared_server();
    run(async {
        let m = manager(&db, ResetPolicy::Auto);
        let mut conn = m.connect().await.unwrap();

        async fn check(m: &MySqlManager, conn: &mut MySqlConn, what: &str, dirty: bool) {
            assert_eq!(conn.is_dirty(), dirty, "{what}");
            let expected = if dirty {
                Probe::NeedsReset
            } else {
                Probe::Clean
            };
            assert_eq!(m.probe_returned(conn), expected, "{what}");
            if dirty {
                m.reset(conn).await.unwrap();
                assert!(!conn.is_dirty(), "{what}: cleared by the reset");
            }
        }

        conn.exec_drop("SET @e = ?", (1,)).await.unwrap();
        check(&m, &mut conn, "exec of SET text", true).await;

        let harmless = conn.prep("SELECT ?").await.unwrap();
        let locking = conn.prep("SELECT GET_LOCK(?, 0)").await.unwrap();
        check(&m, &mut conn, "preparing runs nothing", false).await;
        conn.exec_drop(&harmless, (1,)).await.unwrap();
        check(
            &m,
            &mut conn,
            "exec of a harmless prepared statement",
            false,
        )
        .await;
        // The reset above cleared nothing yet (not dirty): `locking` is
        // still prepared.
        conn.exec_drop(&locking, ("pw_exec_lock",)).await.unwrap();
        check(&m, &mut conn, "exec of a GET_LOCK prepared statement", true).await;

        let stmt = conn.prep("SELECT 1").await.unwrap();
        conn.close(stmt.clone()).await.unwrap();
        check(&m, &mut conn, "close", false).await;

        // A statement the tracker does not know (closed, so forgotten).
        let closed = conn.prep("SELECT 2").await.unwrap();
        conn.close(closed.clone()).await.unwrap();
        let _ = conn.exec_drop(&closed, ()).await; // the server says 1243
        check(&m, &mut conn, "an unknown prepared statement", true).await;

        let _: &mut mysql_async::Conn = conn.raw_mut();
        check(&m, &mut conn, "raw_mut", true).await;

        // Generic code over `impl Queryable`: query text is seen, exec text
        // is not.
        async fn generic_query(q: &mut impl Queryable) {
            q.query_drop("SELECT 1").await.unwrap();
        }
        async fn generic_exec(q: &mut impl Queryable) {
            q.exec_drop("SELECT ?", (1,)).await.unwrap();
        }
        generic_query(&mut conn).await;
        check(&m, &mut conn, "query through the trait", false).await;
        generic_exec(&mut conn).await;
        check(&m, &mut conn, "exec through the trait", true).await;
        Queryable::exec_drop(&mut conn, "SELECT ?", (1,))
            .await
            .unwrap();
        check(&m, &mut conn, "Queryable::exec_drop", true).await;

        // mysql_async's `Query` trait wants a connection: raw use.
        "SELECT 1".ignore(&mut conn).await.unwrap();
        check(&m, &mut conn, "TextQuery::ignore(&mut MySqlConn)", true).await;
        "SELECT 1".ignore(&mut *conn).await.unwrap();
        check(&m, &mut conn, "TextQuery::ignore(&mut Conn)", true).await;

        let _: &mut mysql_async::Conn = conn.deref_mut();
        check(&m, &mut conn, "DerefMut", true).await;
        let mut tx = conn.start_transaction(Default::default()).await.unwrap();
        tx.query_drop("SELECT 1").await.unwrap();
        tx.commit().await.unwrap();
        check(&m, &mut conn, "start_transaction through DerefMut", true).await;

        let _ = (conn.id(), conn.opts().db_name());
        check(&m, &mut conn, "Deref", false).await;
    });
}

#[test]
fn full_policy_resets_after_every_borrow() {
    let db = shared_server();
    run(async {
        let m = manager(&db, ResetPolicy::Full);
        let mut conn = m.connect().await.unwrap();
        assert_eq!(
            m.probe(&mut conn),
            Probe::Clean,
            "checkout of a new connection"
        );
        let stmt = conn.prep("SELECT 1").await.unwrap();
        conn.query_drop("SELECT 1").await.unwrap();
        assert!(!conn.is_dirty());
        assert_eq!(m.probe_returned(&mut conn), Probe::NeedsReset, "return");
        m.reset(&mut conn).await.unwrap();
        assert_eq!(m.probe(&mut conn), Probe::Clean, "post-reset check");
        assert_eq!(m.probe(&mut conn), Probe::Clean, "next checkout");
        // Not a ROLLBACK shortcut: the server dropped the statement.
        let err = conn.exec_drop(&stmt, ()).await.unwrap_err();
        assert!(
            matches!(err, mysql_async::Error::Server(ref e) if e.code == 1243),
            "{err}"
        );
        // Even an untouched connection is reset on return.
        m.reset(&mut conn).await.unwrap();
        assert_eq!(m.probe_returned(&mut conn), Probe::NeedsReset);
    });
}

#[test]
fn rollback_policy_is_free_unless_a_transaction_is_open() {
    let db = shared_server();
    run(async {
        let m = manager(&db, ResetPolicy::Rollback);
        let mut conn = m.connect().await.unwrap();
        assert_eq!(m.probe(&mut conn), Probe::Clean);
        conn.query_drop("SELECT 1").await.unwrap();
        assert_eq!(m.probe_returned(&mut conn), Probe::Clean, "plain SELECT");
        // The documented limit of this policy: session state is not undone.
        conn.query_drop("SET @rollback_policy_leak = 1")
            .await
            .unwrap();
        assert!(conn.is_dirty());
        assert_eq!(m.probe_returned(&mut conn), Probe::Clean);
        assert_eq!(m.probe(&mut conn), Probe::Clean, "and handed out as is");

        conn.query_drop("BEGIN").await.unwrap();
        conn.query_drop("SELECT 1").await.unwrap();
        assert_eq!(
            m.probe_returned(&mut conn),
            Probe::NeedsReset,
            "open transaction"
        );
        m.reset(&mut conn).await.unwrap();
        assert_eq!(m.probe(&mut conn), Probe::Clean);
        let in_tx: Option<i64> = conn.query_first("SELECT @@in_transaction").await.unwrap();
        assert_eq!(in_tx, Some(0));
        let leaked: Option<i64> = conn
            .query_first("SELECT @rollback_policy_leak")
            .await
            .unwrap();
        assert_eq!(leaked, Some(1), "a ROLLBACK keeps user variables");

        conn.query_drop("SET autocommit = 0").await.unwrap();
        assert_eq!(
            m.probe_returned(&mut conn),
            Probe::NeedsReset,
            "autocommit off"
        );
        m.reset(&mut conn).await.unwrap();
        assert_eq!(m.probe(&mut conn), Probe::Clean);
        let autocommit: Option<i64> = conn.query_first("SELECT @@autocommit").await.unwrap();
        assert_eq!(autocommit, Some(1));

        let err = conn.query_drop("SELECT no_such_column").await.unwrap_err();
        assert_eq!(m.classify(&err), ErrorClass::Keep);
        assert_eq!(
            m.probe_returned(&mut conn),
            Probe::NeedsReset,
            "status unknown after an error"
        );
        m.reset(&mut conn).await.unwrap();
        assert_eq!(m.probe(&mut conn), Probe::Clean);
    });
}

#[test]
fn a_cancelled_query_is_corrupt() {
    let db = shared_server();
    run(async {
        for policy in [ResetPolicy::None, ResetPolicy::Auto] {
            let m = manager(&db, policy);
            let mut conn = m.connect().await.unwrap();
            let cancelled = tokio::time::timeout(
                Duration::from_millis(50),
                conn.query_drop("SELECT SLEEP(1)"),
            )
            .await;
            assert!(
                cancelled.is_err(),
                "the query should still have been running"
            );
            assert!(conn.is_disconnected());
            assert_eq!(m.probe_returned(&mut conn), Probe::Corrupt, "{policy:?}");
            assert_eq!(m.probe(&mut conn), Probe::Corrupt, "{policy:?}");
        }
    });
}

#[test]
fn unread_results_are_corrupt() {
    let db = shared_server();
    run(async {
        let m = manager(&db, ResetPolicy::None);
        let rows = "SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3";

        // Not read at all.
        let mut conn = m.connect().await.unwrap();
        drop(conn.query_iter(rows).await.unwrap());
        assert_eq!(m.probe_returned(&mut conn), Probe::Corrupt, "unread rows");

        // Read halfway.
        let mut conn = m.connect().await.unwrap();
        let mut result = conn.query_iter(rows).await.unwrap();
        let first = result.next().await.unwrap();
        assert!(first.is_some());
        drop(result);
        assert_eq!(
            m.probe_returned(&mut conn),
            Probe::Corrupt,
            "half-read rows"
        );

        // First result set read, the second (an error) never collected: the
        // next borrower's first command would have returned that error.
        let mut conn = m.connect().await.unwrap();
        let mut result = conn
            .query_iter("SELECT 1; SELECT no_such_column")
            .await
            .unwrap();
        let _: Vec<Row> = result.collect().await.unwrap();
        drop(result);
        assert_eq!(
            m.probe_returned(&mut conn),
            Probe::Corrupt,
            "pending error of a later statement"
        );

        // Read to the end: fine.
        let mut conn = m.connect().await.unwrap();
        let all: Vec<Row> = conn.query(rows).await.unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(m.probe_returned(&mut conn), Probe::Clean);

        // A statement without rows, result not consumed: nothing waits on
        // the wire and mysql_async tidies it up locally, so it is not corrupt.
        drop(conn.query_iter("DO 1").await.unwrap());
        assert_eq!(m.probe_returned(&mut conn), Probe::Clean);
        conn.query_drop("SELECT 1").await.unwrap();
    });
}

/// `KILL` from the admin connection: not visible without I/O; the next
/// command fails, and from then on the probe says Closed.
#[test]
fn a_killed_connection_is_closed_and_a_disconnect() {
    let db = shared_server();
    run(async {
        let m = manager(&db, ResetPolicy::Auto);
        let mut victim = m.connect().await.unwrap();
        admin(&db, &format!("KILL CONNECTION {}", victim.id()));
        let err = victim.query_drop("SELECT 1").await.unwrap_err();
        assert_eq!(m.classify(&err), ErrorClass::Disconnect, "{err:?}");
        assert_eq!(m.probe_returned(&mut victim), Probe::Closed);
        assert_eq!(m.probe(&mut victim), Probe::Closed);
        let err = m.validate(&mut victim).await.unwrap_err();
        assert_eq!(m.classify(&err), ErrorClass::Disconnect, "{err:?}");
    });
}

#[test]
fn bad_credentials_and_databases_are_fatal() {
    let db = shared_server();
    run(async {
        let m = MySqlManager::from_url(&db.url_for(
            MariaDb::PW_USER,
            MariaDb::PW_PASSWORD,
            "poolwarden_no_such_database",
        ))
        .unwrap();
        let err = m.connect().await.unwrap_err();
        assert_eq!(m.classify(&err), ErrorClass::Fatal, "{err}");
        let m = MySqlManager::from_url(&db.url_for(MariaDb::PW_USER, "wrong", "test")).unwrap();
        let err = m.connect().await.unwrap_err();
        assert_eq!(m.classify(&err), ErrorClass::Fatal, "{err}");
        let m =
            MySqlManager::from_url(&db.url_for("poolwarden_no_such_user", "x", "test")).unwrap();
        let err = m.connect().await.unwrap_err();
        assert_eq!(m.classify(&err), ErrorClass::Fatal, "{err}");
    });
}

/// Options without a database: `COM_RESET_CONNECTION` would keep a
/// borrower's `USE`, so the reset goes through `COM_CHANGE_USER`.
#[test]
fn full_reset_without_a_configured_database_forgets_use() {
    let db = shared_server();
    run(async {
        let no_db =
            mysql_async::OptsBuilder::from_opts(mysql_async::Opts::from_url(&url(&db)).unwrap())
                .db_name(None::<String>);
        let m = MySqlManager::new(no_db).init_sql(["SET time_zone = '+00:00'"]);
        let mut conn = m.connect().await.unwrap();
        let current: Option<Option<String>> = conn.query_first("SELECT DATABASE()").await.unwrap();
        assert_eq!(current, Some(None));
        assert_eq!(m.probe_returned(&mut conn), Probe::Clean);
        conn.query_drop("USE mysql; SET @y = 2; SET time_zone = '+03:00'")
            .await
            .unwrap();
        assert_eq!(m.probe_returned(&mut conn), Probe::NeedsReset);
        m.reset(&mut conn).await.unwrap();
        assert_eq!(m.probe(&mut conn), Probe::Clean);
        let current: Option<Option<String>> = conn.query_first("SELECT DATABASE()").await.unwrap();
        assert_eq!(current, Some(None));
        let y: Option<Option<i64>> = conn.query_first("SELECT @y").await.unwrap();
        assert_eq!(y, Some(None));
        let tz: Option<String> = conn.query_first("SELECT @@time_zone").await.unwrap();
        assert_eq!(tz.as_deref(), Some("+00:00"));
    });
}
