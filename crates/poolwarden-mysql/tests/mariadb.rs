//! Non-destructive checks against a running MariaDB/MySQL server.
//!
//! The server comes from `POOLWARDEN_MYSQL_URL` (default
//! `mysql://root@127.0.0.1:3306/test`). When it cannot be reached the tests
//! print why and pass, unless `POOLWARDEN_MYSQL_REQUIRED` is set (CI sets it
//! where a server runs). Everything here touches only the test's own
//! sessions: user variables, temporary tables, uniquely named user locks,
//! and `KILL` of a connection the test itself opened.
//!
//! The probe sequences mirror what the pool does: a probe when an idle
//! connection is checked out, one when it is returned, and one right after a
//! successful reset.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};
use poolwarden::{ErrorClass, Manager, Probe};
use poolwarden_mysql::{MySqlManager, ResetPolicy};

fn url() -> String {
    std::env::var("POOLWARDEN_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_owned())
}

/// A manager for the test server, or `None` (test skipped) if there is none.
async fn server(policy: ResetPolicy) -> Option<MySqlManager> {
    let manager = MySqlManager::from_url(&url())
        .expect("valid POOLWARDEN_MYSQL_URL")
        .init_sql(["SET time_zone = '+00:00'"])
        .reset_policy(policy);
    match manager.connect().await {
        Ok(conn) => {
            drop(conn);
            Some(manager)
        }
        Err(e) if std::env::var_os("POOLWARDEN_MYSQL_REQUIRED").is_none() => {
            eprintln!("skipped: no MySQL/MariaDB server at {}: {e}", url());
            None
        }
        Err(e) => panic!(
            "POOLWARDEN_MYSQL_REQUIRED is set but {} is unreachable: {e}",
            url()
        ),
    }
}

async fn scalar<T: mysql_async::prelude::FromValue>(conn: &mut Conn, sql: &str) -> Option<T> {
    let row: Option<Row> = conn.query_first(sql).await.expect(sql);
    row.and_then(|r| r.get::<Option<T>, _>(0).flatten())
}

/// A lock name no other test run uses.
fn lock_name(conn: &Conn) -> String {
    format!("poolwarden_mysql_test_{}_{}", std::process::id(), conn.id())
}

#[tokio::test]
async fn connect_learns_the_servers_idle_timeout() {
    let Some(m) = server(ResetPolicy::Full).await else {
        return;
    };
    let mut conn = m.connect().await.unwrap();
    let facts = m.facts(&conn);
    let wait: u64 = scalar(&mut conn, "SELECT @@wait_timeout").await.unwrap();
    let max: u64 = scalar(&mut conn, "SELECT @@max_connections").await.unwrap();
    let version: String = scalar(&mut conn, "SELECT VERSION()").await.unwrap();
    assert_eq!(facts.server_idle_timeout, Some(Duration::from_secs(wait)));
    assert_eq!(facts.max_connections, Some(max as u32));
    assert_eq!(facts.server_version.as_deref(), Some(version.as_str()));
    // Init SQL ran, in order, before the facts were read.
    let m = MySqlManager::from_url(&url()).unwrap().init_sql([
        "SET SESSION wait_timeout = 1234",
        "SET SESSION wait_timeout = 1235",
    ]);
    let conn = m.connect().await.unwrap();
    assert_eq!(
        m.facts(&conn).server_idle_timeout,
        Some(Duration::from_secs(1235))
    );
}

#[tokio::test]
async fn connections_are_plain_tcp_with_keepalive() {
    let Some(m) = server(ResetPolicy::Full).await else {
        return;
    };
    assert!(!m.opts().prefer_socket());
    assert!(m.opts().tcp_keepalive().is_some());
    let mut conn = m.connect().await.unwrap();
    assert!(!conn.is_disconnected());
    m.validate(&mut conn).await.unwrap();
}

#[tokio::test]
async fn full_policy_cycle_matches_the_pool() {
    let Some(m) = server(ResetPolicy::Full).await else {
        return;
    };
    let mut conn = m.connect().await.unwrap();
    assert_eq!(
        m.probe(&mut conn),
        Probe::Clean,
        "checkout of a new connection"
    );
    conn.query_drop("SELECT 1").await.unwrap();
    assert_eq!(
        m.probe(&mut conn),
        Probe::NeedsReset,
        "return after a borrow"
    );
    m.reset(&mut conn).await.unwrap();
    assert_eq!(
        m.probe(&mut conn),
        Probe::Clean,
        "the pool's post-reset check"
    );
    assert_eq!(m.probe(&mut conn), Probe::Clean, "next checkout");
    assert_eq!(m.probe(&mut conn), Probe::NeedsReset, "next return");
    // A validation right before a hand-out: the return probe still resets.
    m.reset(&mut conn).await.unwrap();
    assert_eq!(m.probe(&mut conn), Probe::Clean, "post-reset check");
    m.validate(&mut conn).await.unwrap();
    conn.query_drop("SET @leak = 1").await.unwrap();
    assert_eq!(
        m.probe(&mut conn),
        Probe::NeedsReset,
        "return after a validated checkout"
    );
}

/// The F13 list: each kind of leftover is flagged at return and gone after
/// the reset, and the connection is clean for the next borrower.
#[tokio::test]
async fn full_reset_clears_every_kind_of_session_state() {
    let Some(m) = server(ResetPolicy::Full).await else {
        return;
    };
    let mut conn = m.connect().await.unwrap();
    let lock = lock_name(&conn);
    let leftovers: Vec<(String, String, Option<String>)> = vec![
        ("SET @x = 1".into(), "SELECT @x".into(), None),
        (
            "BEGIN".into(),
            "SELECT @@in_transaction".into(),
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
            "SELECT LAST_INSERT_ID(42)".into(),
            "SELECT LAST_INSERT_ID()".into(),
            Some("0".into()),
        ),
        (
            "PREPARE pw_stmt FROM 'SELECT 1'".into(),
            "SELECT 1".into(),
            Some("1".into()),
        ),
    ];
    let db: Option<String> = scalar(&mut conn, "SELECT DATABASE()").await;
    assert_eq!(m.probe(&mut conn), Probe::Clean, "checkout");
    for (dirty, check, clean) in leftovers {
        if dirty == "USE mysql" && db.as_deref() != Some("test") {
            continue; // the URL names another database
        }
        conn.query_drop(dirty.as_str()).await.expect(&dirty);
        assert_eq!(m.probe(&mut conn), Probe::NeedsReset, "after {dirty}");
        m.reset(&mut conn).await.unwrap();
        assert_eq!(
            m.probe(&mut conn),
            Probe::Clean,
            "post-reset check after {dirty}"
        );
        assert_eq!(m.probe(&mut conn), Probe::Clean, "checkout after {dirty}");
        if check.starts_with("CREATE") {
            conn.query_drop(check.as_str()).await.expect(&check);
            m.reset(&mut conn).await.unwrap();
            assert_eq!(m.probe(&mut conn), Probe::Clean);
            assert_eq!(m.probe(&mut conn), Probe::Clean);
        } else {
            let seen: Option<String> = scalar(&mut conn, &check).await;
            assert_eq!(seen, clean, "{check} after resetting {dirty}");
        }
    }
    // The prepared statement is gone too.
    let err = conn.query_drop("EXECUTE pw_stmt").await.unwrap_err();
    assert!(
        matches!(err, mysql_async::Error::Server(ref e) if e.code == 1243),
        "{err}"
    );
}

#[tokio::test]
async fn rollback_policy_is_free_unless_a_transaction_is_open() {
    let Some(m) = server(ResetPolicy::Rollback).await else {
        return;
    };
    let mut conn = m.connect().await.unwrap();
    assert_eq!(m.probe(&mut conn), Probe::Clean);
    conn.query_drop("SELECT 1").await.unwrap();
    assert_eq!(m.probe(&mut conn), Probe::Clean, "plain SELECT");
    // The documented limit of this policy: session state is not seen.
    conn.query_drop("SET @rollback_policy_leak = 1")
        .await
        .unwrap();
    assert_eq!(m.probe(&mut conn), Probe::Clean);
    conn.query_drop("SET @rollback_policy_leak = NULL")
        .await
        .unwrap();

    conn.query_drop("BEGIN").await.unwrap();
    conn.query_drop("SELECT 1").await.unwrap();
    assert_eq!(m.probe(&mut conn), Probe::NeedsReset, "open transaction");
    m.reset(&mut conn).await.unwrap();
    assert_eq!(m.probe(&mut conn), Probe::Clean);
    assert_eq!(
        scalar::<String>(&mut conn, "SELECT @@in_transaction")
            .await
            .as_deref(),
        Some("0")
    );

    conn.query_drop("SET autocommit = 0").await.unwrap();
    assert_eq!(m.probe(&mut conn), Probe::NeedsReset, "autocommit off");
    m.reset(&mut conn).await.unwrap();
    assert_eq!(m.probe(&mut conn), Probe::Clean);
    assert_eq!(
        scalar::<String>(&mut conn, "SELECT @@autocommit")
            .await
            .as_deref(),
        Some("1")
    );

    let err = conn.query_drop("SELECT no_such_column").await.unwrap_err();
    assert_eq!(m.classify(&err), ErrorClass::Keep);
    assert_eq!(
        m.probe(&mut conn),
        Probe::NeedsReset,
        "status unknown after an error"
    );
    m.reset(&mut conn).await.unwrap();
    assert_eq!(m.probe(&mut conn), Probe::Clean);
}

#[tokio::test]
async fn a_cancelled_query_is_corrupt() {
    let Some(m) = server(ResetPolicy::None).await else {
        return;
    };
    let mut conn = m.connect().await.unwrap();
    let cancelled = tokio::time::timeout(
        Duration::from_millis(100),
        conn.query_drop("SELECT SLEEP(1)"),
    )
    .await;
    assert!(
        cancelled.is_err(),
        "the query should still have been running"
    );
    assert!(conn.is_disconnected());
    assert_eq!(m.probe(&mut conn), Probe::Corrupt);
}

#[tokio::test]
async fn unread_results_are_corrupt() {
    let Some(m) = server(ResetPolicy::None).await else {
        return;
    };
    let rows = "SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3";

    // Not read at all.
    let mut conn = m.connect().await.unwrap();
    drop(conn.query_iter(rows).await.unwrap());
    assert_eq!(m.probe(&mut conn), Probe::Corrupt, "unread rows");

    // Read halfway.
    let mut conn = m.connect().await.unwrap();
    let mut result = conn.query_iter(rows).await.unwrap();
    let first = result.next().await.unwrap();
    assert!(first.is_some());
    drop(result);
    assert_eq!(m.probe(&mut conn), Probe::Corrupt, "half-read rows");

    // First result set read, the second (an error) never collected: the next
    // borrower's first command would have returned that error.
    let mut conn = m.connect().await.unwrap();
    let mut result = conn
        .query_iter("SELECT 1; SELECT no_such_column")
        .await
        .unwrap();
    let _: Vec<Row> = result.collect().await.unwrap();
    drop(result);
    assert_eq!(
        m.probe(&mut conn),
        Probe::Corrupt,
        "pending error of a later statement"
    );

    // Read to the end: fine.
    let mut conn = m.connect().await.unwrap();
    let all: Vec<Row> = conn.query(rows).await.unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(m.probe(&mut conn), Probe::Clean);

    // A statement without rows, result not consumed: nothing waits on the
    // wire and mysql_async tidies it up locally, so it is not corrupt.
    drop(conn.query_iter("DO 1").await.unwrap());
    assert_eq!(m.probe(&mut conn), Probe::Clean);
    conn.query_drop("SELECT 1").await.unwrap();
}

#[tokio::test]
async fn a_killed_connection_is_closed_and_a_disconnect() {
    let Some(m) = server(ResetPolicy::Full).await else {
        return;
    };
    let mut victim = m.connect().await.unwrap();
    let mut killer = m.connect().await.unwrap();
    killer
        .query_drop(format!("KILL CONNECTION {}", victim.id()))
        .await
        .unwrap();
    // Not visible without I/O: the socket is only found closed by a read.
    let err = victim.query_drop("SELECT 1").await.unwrap_err();
    assert_eq!(m.classify(&err), ErrorClass::Disconnect, "{err:?}");
    let probe = m.probe(&mut victim);
    assert!(
        matches!(probe, Probe::Closed),
        "after {err:?} the probe said {probe:?}"
    );
    let err = victim.query_drop("SELECT 1").await.unwrap_err();
    assert_eq!(m.classify(&err), ErrorClass::Disconnect, "{err:?}");
}

#[tokio::test]
async fn connections_from_elsewhere_are_never_trusted() {
    let Some(m) = server(ResetPolicy::Full).await else {
        return;
    };
    let mut foreign = Conn::from_url(url()).await.unwrap();
    assert_eq!(m.probe(&mut foreign), Probe::NeedsReset);
    assert_eq!(m.facts(&foreign), poolwarden::ConnectionFacts::default());
}

#[tokio::test]
async fn bad_credentials_and_databases_are_fatal() {
    let Some(_) = server(ResetPolicy::Full).await else {
        return;
    };
    let base = mysql_async::Opts::from_url(&url()).unwrap();
    let bad_db = mysql_async::OptsBuilder::from_opts(base.clone())
        .db_name(Some("poolwarden_no_such_database"));
    let m = MySqlManager::new(bad_db);
    let err = m.connect().await.unwrap_err();
    assert_eq!(m.classify(&err), ErrorClass::Fatal, "{err}");
    let bad_user = mysql_async::OptsBuilder::from_opts(base)
        .user(Some("poolwarden_no_such_user"))
        .pass(Some("wrong"));
    let m = MySqlManager::new(bad_user);
    let err = m.connect().await.unwrap_err();
    assert_eq!(m.classify(&err), ErrorClass::Fatal, "{err}");
}

/// Options without a database: `COM_RESET_CONNECTION` would keep a
/// borrower's `USE`, so the reset goes through `COM_CHANGE_USER`.
#[tokio::test]
async fn full_reset_without_a_configured_database_forgets_use() {
    let Some(_) = server(ResetPolicy::Full).await else {
        return;
    };
    let no_db = mysql_async::OptsBuilder::from_opts(mysql_async::Opts::from_url(&url()).unwrap())
        .db_name(None::<String>);
    let m = MySqlManager::new(no_db).init_sql(["SET time_zone = '+00:00'"]);
    let mut conn = m.connect().await.unwrap();
    assert_eq!(scalar::<String>(&mut conn, "SELECT DATABASE()").await, None);
    assert_eq!(m.probe(&mut conn), Probe::Clean);
    conn.query_drop("USE mysql; SET @y = 2; SET time_zone = '+03:00'")
        .await
        .unwrap();
    assert_eq!(m.probe(&mut conn), Probe::NeedsReset);
    m.reset(&mut conn).await.unwrap();
    assert_eq!(m.probe(&mut conn), Probe::Clean);
    assert_eq!(scalar::<String>(&mut conn, "SELECT DATABASE()").await, None);
    assert_eq!(scalar::<i64>(&mut conn, "SELECT @y").await, None);
    assert_eq!(
        scalar::<String>(&mut conn, "SELECT @@time_zone")
            .await
            .as_deref(),
        Some("+00:00")
    );
}
