//! Fault suite, the return path: F4 (the reset on return fails because the
//! server killed the connection or went away: the origin incident's
//! traceback), F5 (a connection comes back mid-protocol) and F13 (session
//! state must not leak to the next borrower), against private MariaDB
//! servers. See `docs/failure-modes.md`.

mod common;

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use common::{Events, Kind, MyPool};
use poolwarden::CloseReason;
use poolwarden_mysql::mysql_async::prelude::Queryable;
use poolwarden_mysql::mysql_async::Row;

/// A row-producing query with many more rows than anyone reads.
const MANY_ROWS: &str = "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 10000) SELECT n FROM s";

fn pool_of_one(url: &str, events: &std::sync::Arc<Events>) -> MyPool {
    common::builder(url, events)
        .max_size(1)
        .checkout_timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Drop a guard, proving the drop does not panic.
fn drop_silently(c: common::Guard) {
    let dropped = std::panic::catch_unwind(AssertUnwindSafe(move || drop(c)));
    assert!(dropped.is_ok(), "dropping the guard panicked");
}

/// Wait for the pool to close connection `id`; returns why.
async fn discarded(events: &Events, id: u64) -> CloseReason {
    let rec = events
        .wait_for(
            Duration::from_secs(10),
            |r| matches!(r.kind, Kind::Discarded { id: d, .. } if d == id),
        )
        .await
        .unwrap_or_else(|| panic!("connection {id} was never discarded"));
    match rec.kind {
        Kind::Discarded { reason, .. } => reason,
        _ => unreachable!(),
    }
}

/// Twenty checkouts of `SELECT 42` on a pool of one: every one returns 42.
async fn twenty_clean_checkouts(pool: &MyPool, what: &str) {
    for i in 0..20 {
        let mut c = pool
            .get()
            .await
            .unwrap_or_else(|e| panic!("{what}: checkout {i}: {}", common::error_chain(&e)));
        let v = common::select_42(&mut c).await;
        match v {
            Ok(Some(42)) => {}
            other => panic!("{what}: checkout {i}: SELECT 42 gave {other:?}"),
        }
    }
}

/// F4, the borrower never noticed: a connection held inside a transaction is
/// `KILL`ed by the server, then dropped. The drop is silent, the failed
/// reset is counted, nothing goes back idle, and the next checkout works
/// (on a new session, with the killed transaction rolled back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f4_killed_in_transaction_then_dropped_is_discarded_quietly() {
    let db = common::shared_mariadb();
    common::admin(
        &db,
        "CREATE TABLE test.f4_unaware (id INT PRIMARY KEY) ENGINE=InnoDB",
    );
    let events = Events::new();
    let pool = pool_of_one(&db.url(), &events);

    let mut c = pool.get().await.unwrap();
    let id = c.connection_id();
    let session = common::session_id(&mut c).await;
    c.query_drop("BEGIN").await.unwrap();
    c.query_drop("INSERT INTO test.f4_unaware VALUES (1)")
        .await
        .unwrap();
    common::admin(&db, &format!("KILL {session}"));
    let before = pool.status();
    assert_eq!(before.idle, 0);

    drop_silently(c);
    let reason = discarded(&events, id).await;

    let status = pool.status();
    assert!(
        matches!(reason, CloseReason::ResetFailed | CloseReason::Closed),
        "discarded as {reason:?}: {status:?}"
    );
    assert_eq!(status.closed.total(), 1, "{status:?}");
    assert_eq!(
        status.idle, 0,
        "a killed connection went back idle: {status:?}"
    );
    assert_eq!(status.open, 0, "{status:?}");

    let mut next = pool.get().await.expect("the next checkout works");
    assert_eq!(common::select_42(&mut next).await.unwrap(), Some(42));
    assert_ne!(common::session_id(&mut next).await, session);
    let in_trans: Option<i64> = next.query_first("SELECT @@in_transaction").await.unwrap();
    assert_eq!(in_trans, Some(0));
    let rows: Option<i64> = next
        .query_first("SELECT COUNT(*) FROM test.f4_unaware")
        .await
        .unwrap();
    assert_eq!(rows, Some(0), "the killed transaction was not rolled back");
    eprintln!(
        "F4 (unaware): discarded as {reason:?}; resets={} invalidations={}",
        status.resets, status.invalidations
    );
}

/// F4, the borrower's own query failed on the killed connection (the
/// server's doing, so that error is the borrower's to see); dropping the
/// guard afterwards is silent, the connection is discarded, the next
/// checkout works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f4_killed_in_transaction_query_failed_then_dropped_is_discarded_quietly() {
    let db = common::shared_mariadb();
    common::admin(
        &db,
        "CREATE TABLE test.f4_noticed (id INT PRIMARY KEY) ENGINE=InnoDB",
    );
    let events = Events::new();
    let pool = pool_of_one(&db.url(), &events);

    let mut c = pool.get().await.unwrap();
    let id = c.connection_id();
    let session = common::session_id(&mut c).await;
    c.query_drop("BEGIN").await.unwrap();
    c.query_drop("INSERT INTO test.f4_noticed VALUES (1)")
        .await
        .unwrap();
    common::admin(&db, &format!("KILL {session}"));
    let failed = c.query_drop("INSERT INTO test.f4_noticed VALUES (2)").await;
    assert!(failed.is_err(), "a query on a killed session succeeded");

    drop_silently(c);
    let reason = discarded(&events, id).await;
    let status = pool.status();
    assert_eq!(status.closed.total(), 1, "{status:?}");
    assert_eq!(status.idle, 0, "{status:?}");
    assert_eq!(status.open, 0, "{status:?}");

    let mut next = pool.get().await.expect("the next checkout works");
    assert_eq!(common::select_42(&mut next).await.unwrap(), Some(42));
    let rows: Option<i64> = next
        .query_first("SELECT COUNT(*) FROM test.f4_noticed")
        .await
        .unwrap();
    assert_eq!(rows, Some(0));
    eprintln!(
        "F4 (noticed): discarded as {reason:?} after {:?}; resets={} invalidations={}",
        failed.err().map(|e| e.to_string()),
        status.resets,
        status.invalidations
    );
}

/// F4, the origin incident itself: the server goes away (graceful stop)
/// while a connection is held inside a transaction; the guard is dropped.
/// The drop is silent, the reset's failure is counted, nothing goes back
/// idle; once the server is back the next checkout works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f4_server_gone_while_held_in_transaction_reset_fails_quietly() {
    let mut db = common::start_mariadb(&[]);
    common::admin(
        &db,
        "CREATE TABLE test.f4_gone (id INT PRIMARY KEY) ENGINE=InnoDB",
    );
    let events = Events::new();
    let pool = pool_of_one(&db.url(), &events);

    let mut c = pool.get().await.unwrap();
    let id = c.connection_id();
    c.query_drop("BEGIN").await.unwrap();
    c.query_drop("INSERT INTO test.f4_gone VALUES (1)")
        .await
        .unwrap();
    common::blocking(|| db.stop()).expect("stopping the server");

    drop_silently(c);
    let reason = discarded(&events, id).await;
    let status = pool.status();
    assert!(
        matches!(reason, CloseReason::ResetFailed | CloseReason::Closed),
        "discarded as {reason:?}: {status:?}"
    );
    assert_eq!(status.closed.total(), 1, "{status:?}");
    assert_eq!(status.idle, 0, "{status:?}");
    assert_eq!(status.open, 0, "{status:?}");

    common::blocking(|| db.start_again()).expect("restarting the server");
    let mut next = pool
        .get_timeout(Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("after the restart: {}", common::error_chain(&e)));
    assert_eq!(common::select_42(&mut next).await.unwrap(), Some(42));
    let rows: Option<i64> = next
        .query_first("SELECT COUNT(*) FROM test.f4_gone")
        .await
        .unwrap();
    assert_eq!(rows, Some(0));
    eprintln!(
        "F4 (server gone): discarded as {reason:?}; resets={} invalidations={}",
        status.resets, status.invalidations
    );
}

/// F5: `SELECT SLEEP(1)` cancelled after 50 ms by a timeout, the guard
/// dropped; on a pool of one, 20 checkouts of `SELECT 42` all return 42.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f5_cancelled_query_never_reaches_the_next_borrower() {
    let db = common::shared_mariadb();
    let events = Events::new();
    let pool = pool_of_one(&db.url(), &events);

    let mut c = pool.get().await.unwrap();
    let id = c.connection_id();
    let cancelled =
        tokio::time::timeout(Duration::from_millis(50), c.query_drop("SELECT SLEEP(1)")).await;
    assert!(cancelled.is_err(), "SELECT SLEEP(1) finished within 50 ms?");
    drop(c);

    twenty_clean_checkouts(&pool, "after a cancelled query").await;
    assert_eq!(discarded(&events, id).await, CloseReason::Corrupt);
    let status = pool.status();
    assert_eq!(status.closed.corrupt, 1, "{status:?}");
    assert_eq!(status.closed.total(), 1, "{status:?}");
}

/// F5: a result set left half-read (one row of 10 000 read, then dropped);
/// 20 checkouts of `SELECT 42` all return 42, never a stale row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f5_half_read_result_never_reaches_the_next_borrower() {
    let db = common::shared_mariadb();
    let events = Events::new();
    let pool = pool_of_one(&db.url(), &events);

    let mut c = pool.get().await.unwrap();
    let id = c.connection_id();
    {
        let mut result = c.query_iter(MANY_ROWS).await.unwrap();
        let first: Option<Row> = result.next().await.unwrap();
        assert!(first.is_some());
    }
    drop(c);

    twenty_clean_checkouts(&pool, "after a half-read result").await;
    assert_eq!(discarded(&events, id).await, CloseReason::Corrupt);
    let status = pool.status();
    assert_eq!(status.closed.total(), 1, "{status:?}");
}

/// F5: a multi-statement query whose second statement fails, with only the
/// first result read: the pending error must not surprise the next borrower.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f5_pending_error_of_an_unread_result_never_reaches_the_next_borrower() {
    let db = common::shared_mariadb();
    let events = Events::new();
    let pool = pool_of_one(&db.url(), &events);

    let mut c = pool.get().await.unwrap();
    {
        let mut result = c
            .query_iter("SELECT 1; SELECT * FROM test.f5_no_such_table")
            .await
            .unwrap();
        let first: Vec<i64> = result.collect().await.unwrap();
        assert_eq!(first, [1]);
    }
    drop(c);

    twenty_clean_checkouts(&pool, "after an unread failing result set").await;
    let status = pool.status();
    assert_eq!(status.closed.corrupt, 1, "{status:?}");
    assert_eq!(status.closed.total(), 1, "{status:?}");
}

/// F5: a task panics while holding a connection (mid-result, with a
/// transaction and a user variable open); 20 checkouts of `SELECT 42` on a
/// pool of one all return 42 and see none of its state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f5_panic_while_holding_never_reaches_the_next_borrower() {
    let db = common::shared_mariadb();
    let events = Events::new();
    let pool = pool_of_one(&db.url(), &events);

    let p = pool.clone();
    let task = tokio::spawn(async move {
        let mut c = p.get().await.unwrap();
        c.query_drop("SET @from_panicking_task = 1; BEGIN")
            .await
            .unwrap();
        let mut result = c.query_iter(MANY_ROWS).await.unwrap();
        let _first: Option<Row> = result.next().await.unwrap();
        panic!("deliberate panic while holding a pooled connection (F5 test)");
    });
    let joined = task.await;
    assert!(
        joined.is_err_and(|e| e.is_panic()),
        "the task was meant to panic"
    );

    twenty_clean_checkouts(&pool, "after a panic while holding").await;
    let mut c = pool.get().await.unwrap();
    let leaked: Option<Option<i64>> = c.query_first("SELECT @from_panicking_task").await.unwrap();
    assert_eq!(leaked, Some(None));
    let in_trans: Option<i64> = c.query_first("SELECT @@in_transaction").await.unwrap();
    assert_eq!(in_trans, Some(0));
    drop(c);
    let status = pool.status();
    assert_eq!(status.closed.corrupt, 1, "{status:?}");
    assert_eq!(status.closed.total(), 1, "{status:?}");
}

/// What a fresh session looks like; `round` and `lock` for messages/names.
async fn assert_clean_session(c: &mut common::Guard, round: usize, lock: &str) {
    let x: Option<Option<i64>> = c.query_first("SELECT @x").await.unwrap();
    assert_eq!(x, Some(None), "round {round}: user variable leaked");
    let in_trans: Option<i64> = c.query_first("SELECT @@in_transaction").await.unwrap();
    assert_eq!(in_trans, Some(0), "round {round}: transaction leaked");
    let autocommit: Option<i64> = c.query_first("SELECT @@autocommit").await.unwrap();
    assert_eq!(autocommit, Some(1), "round {round}: autocommit leaked");
    let tz: Option<(String, String)> = c
        .query_first("SELECT @@session.time_zone, @@global.time_zone")
        .await
        .unwrap();
    let (session_tz, global_tz) = tz.unwrap();
    assert_eq!(
        session_tz, global_tz,
        "round {round}: session variable leaked"
    );
    let db: Option<Option<String>> = c.query_first("SELECT DATABASE()").await.unwrap();
    assert_eq!(
        db,
        Some(Some("test".to_owned())),
        "round {round}: USE leaked"
    );
    let last_id: Option<u64> = c.query_first("SELECT LAST_INSERT_ID()").await.unwrap();
    assert_eq!(last_id, Some(0), "round {round}: LAST_INSERT_ID leaked");
    let holder: Option<Option<u64>> = c
        .query_first(format!("SELECT IS_USED_LOCK('{lock}')"))
        .await
        .unwrap();
    assert_eq!(holder, Some(None), "round {round}: GET_LOCK lock leaked");
    let uncommitted: Option<i64> = c
        .query_first("SELECT COUNT(*) FROM test.f13_t")
        .await
        .unwrap();
    assert_eq!(
        uncommitted,
        Some(0),
        "round {round}: an abandoned transaction was committed"
    );
    // Fails with "table exists" if the temporary table leaked.
    c.query_drop("CREATE TEMPORARY TABLE f13_tmp (a INT)")
        .await
        .unwrap_or_else(|e| panic!("round {round}: temporary table leaked: {e}"));
    c.query_drop("DROP TEMPORARY TABLE f13_tmp").await.unwrap();
}

/// F13: under the default reset policy, with a pool of one connection, each
/// borrower leaves a user variable, a session variable, `autocommit = 0`
/// with an uncommitted insert, a temporary table, a `GET_LOCK` lock,
/// `LAST_INSERT_ID()` and another current database behind; the next borrower
/// sees none of it, on the same (reset, not replaced) connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f13_session_state_never_leaks_to_the_next_borrower() {
    let db = common::shared_mariadb();
    common::admin(
        &db,
        "CREATE TABLE test.f13_t (id INT PRIMARY KEY) ENGINE=InnoDB;
         CREATE TABLE test.f13_ai (id INT AUTO_INCREMENT PRIMARY KEY, v INT) ENGINE=InnoDB;",
    );
    let events = Events::new();
    let pool = pool_of_one(&db.url(), &events);
    let lock = format!("pw_f13_{}", std::process::id());

    let mut sessions = HashSet::new();
    for round in 0..4 {
        let mut c = pool.get().await.unwrap();
        sessions.insert(common::session_id(&mut c).await);
        assert_clean_session(&mut c, round, &lock).await;

        c.query_drop("SET @x = 42").await.unwrap();
        c.query_drop("SET SESSION time_zone = '+05:00'")
            .await
            .unwrap();
        c.query_drop("CREATE TEMPORARY TABLE f13_tmp (a INT)")
            .await
            .unwrap();
        c.query_drop("INSERT INTO test.f13_ai (v) VALUES (1)")
            .await
            .unwrap();
        let last_id: Option<u64> = c.query_first("SELECT LAST_INSERT_ID()").await.unwrap();
        assert_ne!(last_id, Some(0));
        let got: Option<i64> = c
            .query_first(format!("SELECT GET_LOCK('{lock}', 0)"))
            .await
            .unwrap();
        assert_eq!(got, Some(1));
        c.query_drop("SET autocommit = 0").await.unwrap();
        c.query_drop(format!("INSERT INTO test.f13_t VALUES ({round})"))
            .await
            .unwrap();
        c.query_drop("USE mysql").await.unwrap();
        let in_trans: Option<i64> = c.query_first("SELECT @@in_transaction").await.unwrap();
        assert_eq!(in_trans, Some(1), "the borrower's transaction is open");
        drop(c);
    }
    // And an explicit BEGIN left open, for the last check.
    {
        let mut c = pool.get().await.unwrap();
        c.query_drop("BEGIN").await.unwrap();
        c.query_drop("INSERT INTO test.f13_t VALUES (100)")
            .await
            .unwrap();
    }
    let mut c = pool.get().await.unwrap();
    sessions.insert(common::session_id(&mut c).await);
    assert_clean_session(&mut c, 99, &lock).await;
    drop(c);

    let status = pool.status();
    assert_eq!(
        sessions.len(),
        1,
        "the connection should be reset and reused, not replaced: {status:?}"
    );
    assert_eq!(status.created, 1, "{status:?}");
    assert!(status.resets >= 5, "{status:?}");
    assert_eq!(status.closed.total(), 0, "{status:?}");
}

/// F13, stored code: a stored function called from a plain `SELECT` sets a
/// user variable and takes a `GET_LOCK` lock. The default policy sees a call
/// of a function that is not built in and resets the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f13_state_set_by_a_stored_function_never_leaks_to_the_next_borrower() {
    let db = common::shared_mariadb();
    let lock = format!("pw_f13_fn_{}", std::process::id());
    common::admin(
        &db,
        &format!(
            "CREATE FUNCTION test.f13_touch() RETURNS INT NOT DETERMINISTIC
               RETURN GET_LOCK('{lock}', 0) + LEAST(0, @from_function := 1);"
        ),
    );
    let events = Events::new();
    let pool = pool_of_one(&db.url(), &events);

    let mut c = pool.get().await.unwrap();
    let got: Option<i64> = c.query_first("SELECT f13_touch()").await.unwrap();
    assert_eq!(got, Some(1));
    drop(c);

    let mut next = pool.get().await.unwrap();
    let var: Option<Option<i64>> = next.query_first("SELECT @from_function").await.unwrap();
    let holder: Option<Option<u64>> = next
        .query_first(format!("SELECT IS_USED_LOCK('{lock}')"))
        .await
        .unwrap();
    assert_eq!(
        (var, holder),
        (Some(None), Some(None)),
        "{:?}",
        pool.status()
    );
}

/// F13, what SQL text cannot show: a trigger fired by a plain `UPDATE`
/// sets a user variable. Known limit of `ResetPolicy::Auto` (documented in
/// the crate README): mysql_async never asks the server to report session
/// state changes, so only `ResetPolicy::Full` covers triggers that do this.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "known limit of ResetPolicy::Auto: state set inside a trigger is invisible without             CLIENT_SESSION_TRACK, which mysql_async 0.37 never requests; ResetPolicy::Full covers it"]
async fn f13_state_set_by_a_trigger_never_leaks_to_the_next_borrower() {
    let db = common::shared_mariadb();
    common::admin(
        &db,
        "CREATE TABLE test.f13_trig (id INT PRIMARY KEY, n INT) ENGINE=InnoDB;
         INSERT INTO test.f13_trig VALUES (1, 0);
         CREATE TRIGGER test.f13_on_update BEFORE UPDATE ON test.f13_trig
           FOR EACH ROW SET @from_trigger = 1;",
    );
    let events = Events::new();
    let pool = pool_of_one(&db.url(), &events);
    let mut c = pool.get().await.unwrap();
    c.query_drop("UPDATE f13_trig SET n = n + 1 WHERE id = 1")
        .await
        .unwrap();
    drop(c);
    let mut next = pool.get().await.unwrap();
    let var: Option<Option<i64>> = next.query_first("SELECT @from_trigger").await.unwrap();
    assert_eq!(var, Some(None), "{:?}", pool.status());
}
