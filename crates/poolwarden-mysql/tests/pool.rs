//! End to end through a poolwarden `Pool<MySqlManager>` against private
//! MariaDB servers (poolwarden-testkit). The tests fail if a server cannot be
//! started: there is no skip.
//!
//! Most tests share one server (see `shared_server`) and touch only their
//! own sessions, tables and lock names. The tests that read the server's
//! global counters start a server of their own, so that no other test's
//! traffic is counted.
//!
//! MariaDB (10.11 here) has no `Com_reset_connection` counter (MySQL has),
//! and its general log does not record `COM_RESET_CONNECTION` either. What
//! the server does count: `Questions` (every statement a client sends),
//! `Com_change_db` (the `USE <db>` the manager sends right after every
//! `COM_RESET_CONNECTION`, batched with the init SQL), `Com_set_option` (the
//! init SQL) and `Com_rollback` (the `ROLLBACK`-only reset).

use std::future::Future;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use mysql_async::prelude::{Query, Queryable};
use mysql_async::Row;
use poolwarden::{ErrorClass, Manager, Pool, PoolStatus};
use poolwarden_mysql::{MySqlManager, ResetPolicy};
use poolwarden_testkit::MariaDb;

/// The private server shared by the tests of this binary that run at the
/// same time. Dropped (killed) when the last of them lets go of it; a later
/// test starts a new one.
fn shared_server() -> Arc<MariaDb> {
    static SHARED: Mutex<Weak<MariaDb>> = Mutex::new(Weak::new());
    let mut slot = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(db) = slot.upgrade() {
        return db;
    }
    let db = Arc::new(private_server());
    *slot = Arc::downgrade(&db);
    db
}

/// A server for this test alone.
fn private_server() -> MariaDb {
    MariaDb::start().expect("a private MariaDB must start (is mariadb-server installed?)")
}

/// Runs an async test body on a runtime of its own (servers are started and
/// killed outside it: both block).
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

/// Global status counters of the server, in the order asked.
fn global_status<const N: usize>(db: &MariaDb, names: [&str; N]) -> [u64; N] {
    let list = names.map(|n| format!("'{n}'")).join(", ");
    let rows = admin(
        db,
        &format!("SHOW GLOBAL STATUS WHERE Variable_name IN ({list})"),
    );
    names.map(|name| {
        rows.iter()
            .find(|row| row.first().is_some_and(|n| n.eq_ignore_ascii_case(name)))
            .and_then(|row| row.get(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no counter {name}: {rows:?}"))
    })
}

/// The counters a reset would move.
const RESET_COUNTERS: [&str; 4] = [
    "Questions",
    "Com_change_db",
    "Com_set_option",
    "Com_rollback",
];

/// A pool of one connection (so every borrower gets the previous one's
/// connection), as the password user on database `test`.
fn pool(db: &MariaDb, policy: ResetPolicy) -> Pool<MySqlManager> {
    pool_with(db, policy, Duration::from_secs(60))
}

fn pool_with(db: &MariaDb, policy: ResetPolicy, validation_bypass: Duration) -> Pool<MySqlManager> {
    let url = db.url_for(MariaDb::PW_USER, MariaDb::PW_PASSWORD, MariaDb::DATABASE);
    let manager = MySqlManager::from_url(&url)
        .expect("the testkit's URL is valid")
        .init_sql(["SET time_zone = '+00:00'"])
        .reset_policy(policy);
    Pool::builder(manager)
        .name("poolwarden-mysql-test")
        .max_size(1)
        .max_overflow(0)
        .min_idle(0)
        .checkout_timeout(Duration::from_secs(10))
        .validation_bypass(validation_bypass)
        .build()
        .expect("valid pool configuration")
}

/// Waits until no connection is checked out or being reset.
async fn settle(pool: &Pool<MySqlManager>) -> PoolStatus {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = pool.status();
        if s.in_use == 0 && s.idle == s.open {
            return s;
        }
        assert!(Instant::now() < deadline, "the pool did not settle: {s:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
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

/// The F13 promise of the default policy, and its price: nothing.
#[test]
fn auto_hundred_selects_cost_no_reset() {
    let db = private_server();
    run(async {
        let pool = pool(&db, ResetPolicy::default());
        // Open the connection first: connect itself sends no reset either,
        // but the counter is read around the checkouts only.
        drop(pool.get().await.unwrap());
        // Reading the counters is a statement too: measure what a reading
        // adds, to subtract it.
        let first = global_status(&db, RESET_COUNTERS);
        let before = global_status(&db, RESET_COUNTERS);
        let reading = before[0] - first[0];
        let mut ids = Vec::new();
        for _ in 0..100 {
            let mut conn = pool.get().await.unwrap();
            let one: Option<i64> = conn.query_first("SELECT 1").await.unwrap();
            assert_eq!(one, Some(1));
            ids.push(conn.id());
        }
        let status = settle(&pool).await;
        let after = global_status(&db, RESET_COUNTERS);
        assert_eq!(status.resets, 0, "{status:?}");
        assert_eq!(status.created, 1, "{status:?}");
        assert_eq!(status.checkouts, 101, "{status:?}");
        assert_eq!(
            after[0] - before[0] - reading,
            100,
            "the server got exactly the 100 SELECTs, nothing else"
        );
        assert_eq!(
            after[1..],
            before[1..],
            "no USE, SET or ROLLBACK of a reset"
        );
        ids.dedup();
        assert_eq!(ids.len(), 1, "one server session throughout: {ids:?}");
    });
}

/// `Full` resets after every borrow, whatever the borrower did.
#[test]
fn full_policy_resets_every_time() {
    let db = private_server();
    run(async {
        let pool = pool(&db, ResetPolicy::Full);
        drop(pool.get().await.unwrap());
        settle(&pool).await;
        let resets_before = pool.status().resets;
        let before = global_status(&db, ["Com_change_db", "Com_rollback"]);
        for _ in 0..20 {
            let mut conn = pool.get().await.unwrap();
            let one: Option<i64> = conn.query_first("SELECT 1").await.unwrap();
            assert_eq!(one, Some(1));
        }
        let status = settle(&pool).await;
        let after = global_status(&db, ["Com_change_db", "Com_rollback"]);
        assert_eq!(status.resets - resets_before, 20, "{status:?}");
        assert_eq!(
            after[0] - before[0],
            20,
            "one COM_RESET_CONNECTION + USE per borrow"
        );
        assert_eq!(after[1], before[1], "never the ROLLBACK shortcut");
        assert_eq!(status.created, 1, "reset, not replaced: {status:?}");
    });
}

/// Every kind of leftover from the F13 list, on a pool of one connection:
/// the next borrower never sees it, and the connection is reset (same
/// server session), not replaced.
#[test]
fn f13_leftovers_never_reach_the_next_borrower() {
    let db = shared_server();
    let t = table(&db, "pw_pool_f13");
    run(async {
        let pool = pool(&db, ResetPolicy::Auto);
        let session = {
            let conn = pool.get().await.unwrap();
            conn.id()
        };
        let global_sql_mode: Option<String> = {
            let mut conn = pool.get().await.unwrap();
            conn.query_first("SELECT @@GLOBAL.sql_mode").await.unwrap()
        };
        let lock = format!("pw_pool_f13_lock_{session}");

        // `SET @x = 1`
        {
            let mut conn = pool.get().await.unwrap();
            conn.query_drop("SET @x = 1").await.unwrap();
        }
        {
            let mut conn = pool.get().await.unwrap();
            assert_eq!(conn.id(), session);
            let x: Option<Option<i64>> = conn.query_first("SELECT @x").await.unwrap();
            assert_eq!(x, Some(None), "@x leaked");
        }

        // BEGIN without COMMIT.
        {
            let mut conn = pool.get().await.unwrap();
            conn.query_drop("BEGIN").await.unwrap();
            conn.exec_drop(format!("UPDATE {t} SET n = ?"), (5,))
                .await
                .unwrap();
        }
        {
            let mut conn = pool.get().await.unwrap();
            assert_eq!(conn.id(), session);
            let in_tx: Option<i64> = conn.query_first("SELECT @@in_transaction").await.unwrap();
            assert_eq!(in_tx, Some(0), "transaction leaked");
        }

        // A temporary table.
        {
            let mut conn = pool.get().await.unwrap();
            conn.query_drop("CREATE TEMPORARY TABLE pw_pool_tmp (a INT)")
                .await
                .unwrap();
        }
        {
            let mut conn = pool.get().await.unwrap();
            assert_eq!(conn.id(), session);
            let err = conn
                .query_drop("SELECT * FROM pw_pool_tmp")
                .await
                .unwrap_err();
            assert!(
                matches!(err, mysql_async::Error::Server(ref e) if e.code == 1146),
                "temporary table leaked: {err}"
            );
        }

        // A GET_LOCK lock.
        {
            let mut conn = pool.get().await.unwrap();
            let got: Option<i64> = conn
                .query_first(format!("SELECT GET_LOCK('{lock}', 0)"))
                .await
                .unwrap();
            assert_eq!(got, Some(1));
        }
        {
            let mut conn = pool.get().await.unwrap();
            assert_eq!(conn.id(), session);
            let holder: Option<Option<u64>> = conn
                .query_first(format!("SELECT IS_USED_LOCK('{lock}')"))
                .await
                .unwrap();
            assert_eq!(holder, Some(None), "lock leaked");
        }

        // INSERT, then the next borrower's LAST_INSERT_ID().
        {
            let mut conn = pool.get().await.unwrap();
            conn.exec_drop(format!("INSERT INTO {t} (n) VALUES (?)"), (1,))
                .await
                .unwrap();
            assert!(conn.last_insert_id().unwrap_or(0) > 0);
        }
        {
            let mut conn = pool.get().await.unwrap();
            assert_eq!(conn.id(), session);
            let id: Option<u64> = conn.query_first("SELECT LAST_INSERT_ID()").await.unwrap();
            assert_eq!(id, Some(0), "LAST_INSERT_ID() leaked");
        }

        // A session variable.
        {
            let mut conn = pool.get().await.unwrap();
            conn.query_drop("SET SESSION sql_mode = ''").await.unwrap();
        }
        {
            let mut conn = pool.get().await.unwrap();
            assert_eq!(conn.id(), session);
            let mode: Option<String> = conn.query_first("SELECT @@SESSION.sql_mode").await.unwrap();
            assert_eq!(mode, global_sql_mode, "sql_mode leaked");
        }

        // Raw use of the `Conn` through DerefMut: nothing is seen, so
        // everything is reset.
        {
            let mut conn = pool.get().await.unwrap();
            let raw: &mut mysql_async::Conn = &mut conn;
            raw.query_drop("SET @raw = 1").await.unwrap();
            "SET @raw_run = 1".ignore(&mut **conn).await.unwrap();
        }
        {
            let mut conn = pool.get().await.unwrap();
            assert_eq!(conn.id(), session);
            let raw: Option<(Option<i64>, Option<i64>)> =
                conn.query_first("SELECT @raw, @raw_run").await.unwrap();
            assert_eq!(raw, Some((None, None)), "raw use leaked");
        }

        let status = settle(&pool).await;
        assert_eq!(status.created, 1, "reset, never replaced: {status:?}");
        assert!(status.resets >= 7, "{status:?}");
    });
}

/// Borrows that change no session state go straight back: no reset, and
/// the driver's whole query API works through the guard.
#[test]
fn harmless_borrows_are_free() {
    let db = shared_server();
    let t = table(&db, "pw_pool_free");
    admin(
        &db,
        &format!("INSERT INTO test.{t} (n) VALUES (1), (2), (3)"),
    );
    run(async {
        let pool = pool(&db, ResetPolicy::Auto);
        let session = pool.get().await.unwrap().id();
        for round in 0..3 {
            let mut conn = pool.get().await.unwrap();
            assert_eq!(conn.id(), session, "round {round}");
            conn.query_drop("SELECT 1").await.unwrap();
            let rows: Vec<Row> = conn.query(format!("SELECT * FROM {t}")).await.unwrap();
            assert_eq!(rows.len(), 3);
            let ns: Vec<i64> = conn
                .query_map(format!("SELECT n FROM {t} ORDER BY id"), |n: i64| n)
                .await
                .unwrap();
            assert_eq!(ns, [1, 2, 3]);
            let sum = conn
                .query_fold(format!("SELECT n FROM {t}"), 0, |acc, n: i64| acc + n)
                .await
                .unwrap();
            assert_eq!(sum, 6);
            let streamed: Vec<i64> = conn
                .query_stream::<i64, _>(format!("SELECT n FROM {t}"))
                .await
                .unwrap()
                .map(|r| r.unwrap())
                .collect()
                .await;
            assert_eq!(streamed.len(), 3);
            let mut result = conn
                .query_iter("SELECT 1 UNION ALL SELECT 2")
                .await
                .unwrap();
            let all: Vec<Row> = result.collect().await.unwrap();
            drop(result);
            assert_eq!(all.len(), 2);
            let n: Option<i64> = conn
                .exec_first(format!("SELECT n FROM {t} WHERE id = ?"), (1,))
                .await
                .unwrap();
            assert_eq!(n, Some(1));
            let stmt = conn
                .prep(format!("SELECT n FROM {t} WHERE n >= ?"))
                .await
                .unwrap();
            let v: Vec<i64> = conn.exec(&stmt, (2,)).await.unwrap();
            assert_eq!(v.len(), 2);
            let v = conn.exec_map(&stmt, (1,), |n: i64| n * 10).await.unwrap();
            assert_eq!(v.len(), 3);
            let s = conn
                .exec_fold(&stmt, (3,), 0, |acc, n: i64| acc + n)
                .await
                .unwrap();
            assert_eq!(s, 3);
            let streamed: Vec<i64> = conn
                .exec_stream::<i64, _, _>(&stmt, (1,))
                .await
                .unwrap()
                .map(|r| r.unwrap())
                .collect()
                .await;
            assert_eq!(streamed.len(), 3);
            let mut result = conn.exec_iter(&stmt, (1,)).await.unwrap();
            let all: Vec<Row> = result.collect().await.unwrap();
            drop(result);
            assert_eq!(all.len(), 3);
            conn.exec_drop(format!("UPDATE {t} SET n = n WHERE id = ?"), (1,))
                .await
                .unwrap();
            conn.exec_drop(format!("DELETE FROM {t} WHERE id = ?"), (999,))
                .await
                .unwrap();
            conn.query_drop("BEGIN").await.unwrap();
            conn.query_drop(format!("UPDATE {t} SET n = n + 0"))
                .await
                .unwrap();
            conn.query_drop("COMMIT").await.unwrap();
            let wait: Option<u64> = conn.query_first("SELECT @@wait_timeout").await.unwrap();
            assert!(wait.is_some());
            conn.ping().await.unwrap();
            conn.close(stmt).await.unwrap();
            assert!(!conn.is_dirty(), "round {round}");
        }
        let status = settle(&pool).await;
        assert_eq!(status.resets, 0, "{status:?}");
        assert_eq!(status.created, 1, "{status:?}");
    });
}

/// `Rollback`: free unless a transaction is open; user variables are its
/// documented blind spot.
#[test]
fn rollback_policy_undoes_transactions_only() {
    let db = shared_server();
    let t = table(&db, "pw_pool_rollback");
    run(async {
        let pool = pool(&db, ResetPolicy::Rollback);
        {
            let mut conn = pool.get().await.unwrap();
            conn.query_drop("SET @kept = 1").await.unwrap();
        }
        {
            let mut conn = pool.get().await.unwrap();
            let kept: Option<Option<i64>> = conn.query_first("SELECT @kept").await.unwrap();
            assert_eq!(kept, Some(Some(1)), "Rollback does not undo variables");
            conn.query_drop("SET @kept = NULL").await.unwrap();
        }
        assert_eq!(settle(&pool).await.resets, 0);
        {
            let mut conn = pool.get().await.unwrap();
            conn.query_drop("BEGIN").await.unwrap();
            conn.exec_drop(format!("INSERT INTO {t} (n) VALUES (?)"), (9,))
                .await
                .unwrap();
        }
        {
            let mut conn = pool.get().await.unwrap();
            let in_tx: Option<i64> = conn.query_first("SELECT @@in_transaction").await.unwrap();
            assert_eq!(in_tx, Some(0));
            let rows: Option<i64> = conn
                .query_first(format!("SELECT COUNT(*) FROM {t} WHERE n = 9"))
                .await
                .unwrap();
            assert_eq!(rows, Some(0), "the insert was rolled back");
        }
        let status = settle(&pool).await;
        assert_eq!(status.resets, 1, "{status:?}");
        assert_eq!(status.created, 1, "{status:?}");
    });
}

/// A query cancelled by a timeout: the connection is discarded at return and
/// the next borrower gets a working one.
#[test]
fn a_cancelled_query_never_reaches_the_next_borrower() {
    let db = shared_server();
    run(async {
        let pool = pool(&db, ResetPolicy::Auto);
        let first = {
            let mut conn = pool.get().await.unwrap();
            let r = tokio::time::timeout(
                Duration::from_millis(50),
                conn.query_drop("SELECT SLEEP(1)"),
            )
            .await;
            assert!(r.is_err(), "the query should still have been running");
            conn.id()
        };
        let mut conn = pool.get().await.unwrap();
        assert_ne!(conn.id(), first, "the cancelled connection was handed out");
        let one: Option<i64> = conn.query_first("SELECT 1").await.unwrap();
        assert_eq!(one, Some(1));
        drop(conn);
        let status = settle(&pool).await;
        assert_eq!(status.created, 2, "{status:?}");
        assert_eq!(status.closed.corrupt, 1, "{status:?}");
        assert_eq!(
            status.resets, 0,
            "a corrupt connection is never reset: {status:?}"
        );
    });
}

/// `KILL` from the admin connection while checked out: the borrower's next
/// command fails, the return probe says Closed, and the next borrower gets
/// a new connection. Killed while idle: the validation at checkout catches
/// it.
#[test]
fn killed_connections_are_replaced() {
    let db = shared_server();
    run(async {
        let pool = pool(&db, ResetPolicy::Auto);
        let victim = {
            let mut conn = pool.get().await.unwrap();
            admin(&db, &format!("KILL CONNECTION {}", conn.id()));
            let err = conn.query_drop("SELECT 1").await.unwrap_err();
            assert_eq!(
                pool.manager().classify(&err),
                ErrorClass::Disconnect,
                "{err:?}"
            );
            conn.id()
        };
        {
            let mut conn = pool.get().await.unwrap();
            assert_ne!(conn.id(), victim);
            let one: Option<i64> = conn.query_first("SELECT 1").await.unwrap();
            assert_eq!(one, Some(1));
        }
        let status = settle(&pool).await;
        assert_eq!(status.closed.closed, 1, "{status:?}");
        assert_eq!(status.created, 2, "{status:?}");

        // Idle: every checkout validates (zero bypass window).
        let pool = pool_with(&db, ResetPolicy::Auto, Duration::ZERO);
        let idle_victim = pool.get().await.unwrap().id();
        admin(&db, &format!("KILL CONNECTION {idle_victim}"));
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut conn = pool.get().await.unwrap();
        assert_ne!(conn.id(), idle_victim);
        let one: Option<i64> = conn.query_first("SELECT 1").await.unwrap();
        assert_eq!(one, Some(1));
    });
}

/// Every checkout pinged first (zero bypass window): validation does not
/// make a harmless borrow cost a reset, and does not let a dirty one leak.
#[test]
fn validated_checkouts_reset_only_dirty_borrows() {
    let db = shared_server();
    run(async {
        let pool = pool_with(&db, ResetPolicy::Auto, Duration::ZERO);
        for round in 0..4 {
            let mut conn = pool.get().await.unwrap();
            if round % 2 == 0 {
                conn.query_drop("SET @v = 1").await.unwrap();
            } else {
                let one: Option<i64> = conn.query_first("SELECT 1").await.unwrap();
                assert_eq!(one, Some(1));
            }
            drop(conn);
            settle(&pool).await;
            // Idle past the (zero) bypass window: the next checkout pings.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let status = pool.status();
        assert_eq!(status.resets, 2, "only the two SET borrows: {status:?}");
        let mut conn = pool.get().await.unwrap();
        let v: Option<Option<i64>> = conn.query_first("SELECT @v").await.unwrap();
        assert_eq!(v, Some(None), "@v leaked");
        drop(conn);
        let status = settle(&pool).await;
        assert_eq!(status.created, 1, "{status:?}");
        assert!(
            status.validations >= 4,
            "checkouts were not validated: {status:?}"
        );
    });
}
