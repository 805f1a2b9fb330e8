//! Lost races retried on the server, proven with real deadlocks, and the
//! bounded expiry of idempotency keys.
//!
//! The deadlock: the test's own transaction T holds the account row and
//! is heavier (more rows written); the request R claims its
//! `Idempotency-Key`, then waits for the account row (its order's foreign
//! key check); T then inserts R's key, which closes the cycle. The server
//! rolls back R (the lighter on MariaDB; on PostgreSQL the waiter whose
//! `deadlock_timeout` ends first, R, since T's is raised). T's insert
//! returning at all proves R's first attempt was rolled back. Each step
//! waits for a signal, R's lock wait on T as the server shows it
//! (MariaDB: `Innodb_row_lock_current_waits`; PostgreSQL:
//! `pg_blocking_pids`),
//! bounded, never for a sleep. R runs again
//! (`api/retry.rs`), now waits for T's key; T rolls back; R commits: one
//! 201, one order, nothing written twice.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use axum::Router;
use mysql_async::prelude::Queryable;
use poolwarden::{Pool, PoolConfig};
use poolwarden_mysql::MySqlManager;
use poolwarden_postgres::PgManager;
use poolwarden_testkit::MariaDb;
use serde_json::json;

use super::common::{app_on, call, pg_app_and_pool, unique};
use super::lost::row_lock_waits;
use super::writes::post_with_key;
use crate::settings::{IdempotencySettings, ReportSettings};
use crate::store::Store;

/// Polls (bounded) until `check` holds.
pub(super) async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..6000 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("never: {what}");
}

pub(super) async fn new_account(app: &Router) -> u64 {
    let body = json!({"name": "Race", "email": unique("race")}).to_string();
    let (s, a) = call(app, Method::POST, "/accounts", Some(&body)).await;
    assert_eq!(s, StatusCode::CREATED, "{a}");
    a["id"].as_u64().unwrap()
}

/// The request R, in the background: an order with an idempotency key.
fn start_request(
    app: &Router,
    account: u64,
    key: &str,
) -> tokio::task::JoinHandle<(StatusCode, serde_json::Value, bool)> {
    let (app, key) = (app.clone(), key.to_owned());
    tokio::spawn(async move {
        let uri = format!("/accounts/{account}/orders");
        post_with_key(&app, &uri, &key, &json!({"amount_cents": 777})).await
    })
}

/// R's answer and what was written: one 201, first-hand, one order.
async fn assert_written_once<B: Store>(
    request: tokio::task::JoinHandle<(StatusCode, serde_json::Value, bool)>,
    pool: &Pool<B>,
    account: u64,
) {
    let (status, body, replayed) = request.await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "retried to success: {body}");
    assert!(!replayed, "{body}");
    let mut conn = pool.get().await.unwrap();
    let orders = B::orders(&mut conn, account, 0, 100).await.unwrap();
    assert_eq!(orders.len(), 1, "written once: {orders:?}");
    assert_eq!(Some(orders[0].id), body["id"].as_u64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mariadb_deadlock_is_retried_on_the_server_and_written_once() {
    // A server of its own: its deadlock counter is ours.
    let server = MariaDb::start().expect("a private MariaDB");
    let (app, pool) = app_on::<MySqlManager>(
        &server.url(),
        PoolConfig::default(),
        ReportSettings::default(),
    )
    .await;
    let account = new_account(&app).await;
    let key = unique("deadlock");
    let deadlocks = || {
        let pool = pool.clone();
        async move {
            let mut c = pool.get().await.unwrap();
            let row: Option<(String, u64)> = c
                .query_first("SHOW GLOBAL STATUS LIKE 'Innodb_deadlocks'")
                .await
                .unwrap();
            row.unwrap().1
        }
    };
    let before = deadlocks().await;
    let mut t = pool.get().await.unwrap();
    t.query_drop("BEGIN").await.unwrap();
    // T is heavier (more rows written): InnoDB rolls back the lighter
    // transaction of a deadlock, R.
    for _ in 0..20 {
        t.query_drop("INSERT INTO demo_report_runs (kind) VALUES ('heavier')")
            .await
            .unwrap();
    }
    t.exec_drop(
        "SELECT id FROM demo_accounts WHERE id = ? FOR UPDATE",
        (account,),
    )
    .await
    .unwrap();
    // The signal: R's lock wait (on the server of this test's own, where
    // nothing else waits), from the live counter (`lost::row_lock_waits`
    // says why not INNODB_LOCK_WAITS).
    let r_waits = || {
        let pool = pool.clone();
        async move { row_lock_waits(&pool).await == 1 }
    };
    let request = start_request(&app, account, &key);
    until("R waits for the account row T holds", &r_waits).await;
    t.exec_drop(
        "INSERT INTO demo_idempotency (idem_key, fingerprint) VALUES (?, 'T')",
        (&key,),
    )
    .await
    .expect("T outweighs R: R is the deadlock's victim");
    assert!(deadlocks().await > before, "a real deadlock (1213)");
    until("R, run again, waits for T's key", || {
        // Without the retry R has answered by now: fail at once.
        assert!(
            !request.is_finished(),
            "R answered instead of running again"
        );
        r_waits()
    })
    .await;
    t.query_drop("ROLLBACK").await.unwrap();
    drop(t);
    assert_written_once(request, &pool, account).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_deadlock_is_retried_on_the_server_and_written_once() {
    let (app, pool) = pg_app_and_pool().await;
    let account = new_account(&app).await;
    let key = unique("deadlock");
    let t = pool.get().await.unwrap();
    // T checks for deadlocks late: R, waiting first, finds the cycle.
    t.batch_execute("SET deadlock_timeout = '60s'; BEGIN")
        .await
        .unwrap();
    let id = i64::try_from(account).unwrap();
    t.query(
        "SELECT id FROM demo_accounts WHERE id = $1 FOR UPDATE",
        &[&id],
    )
    .await
    .unwrap();
    let t_pid: i32 = t
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let blocked_by_t = || {
        let pool = pool.clone();
        async move {
            let c = pool.get().await.unwrap();
            let row = c
                .query_one(
                    "SELECT COUNT(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
                    &[&t_pid],
                )
                .await
                .unwrap();
            row.get::<_, i64>(0) > 0
        }
    };
    let request = start_request(&app, account, &key);
    until("R waits for the account row T holds", &blocked_by_t).await;
    t.execute(
        "INSERT INTO demo_idempotency (idem_key, fingerprint) VALUES ($1, 'T')",
        &[&key],
    )
    .await
    .expect("R finds the deadlock first and is rolled back");
    until("R, run again, waits for T's key", || {
        // Without the retry R has answered by now: fail at once.
        assert!(
            !request.is_finished(),
            "R answered instead of running again"
        );
        blocked_by_t()
    })
    .await;
    t.batch_execute("ROLLBACK").await.unwrap();
    drop(t);
    assert_written_once(request, &pool, account).await;
}

/// Keys older than the retention go, at most a batch per pass, the oldest
/// first; younger ones stay.
async fn expired_keys_are_deleted_a_batch_at_a_time<B: Store>(pool: Pool<B>, backdate: &str) {
    let tag = unique("expiry");
    let mut conn = pool.get().await.unwrap();
    for i in 0..5 {
        B::claim_key(&mut conn, &format!("old-{i}-{tag}"), "f")
            .await
            .unwrap();
    }
    B::claim_key(&mut conn, &format!("new-{tag}"), "f")
        .await
        .unwrap();
    B::batch(&mut conn, &backdate.replace("{tag}", &tag))
        .await
        .unwrap();
    let settings = IdempotencySettings {
        retention: Duration::from_secs(24 * 3600),
        cleanup_batch: 2,
        ..IdempotencySettings::default()
    };
    drop(conn);
    // Other tests' keys are younger than a day: only ours can go, and a
    // pass never deletes more than its batch.
    let mut passes = Vec::new();
    loop {
        let n = crate::api::idempotency::expire(&pool, &settings)
            .await
            .unwrap();
        passes.push(n);
        if n == 0 || passes.len() > 10 {
            break;
        }
    }
    assert_eq!(passes, [2, 2, 1, 0], "a batch at a time");
    let mut conn = pool.get().await.unwrap();
    let mut left = Vec::new();
    for k in (0..5)
        .map(|i| format!("old-{i}-{tag}"))
        .chain([format!("new-{tag}")])
    {
        if B::stored_answer(&mut conn, &k).await.unwrap().is_some() {
            left.push(k);
        }
    }
    assert_eq!(left, [format!("new-{tag}")], "the young key stays");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_idempotency_keys_are_deleted_a_batch_at_a_time_on_mariadb() {
    let server = MariaDb::start().expect("a private MariaDB");
    let (_, pool) = app_on::<MySqlManager>(
        &server.url(),
        PoolConfig::default(),
        ReportSettings::default(),
    )
    .await;
    expired_keys_are_deleted_a_batch_at_a_time(
        pool,
        "UPDATE demo_idempotency SET created_at = NOW(3) - INTERVAL 2 DAY WHERE idem_key LIKE 'old-%-{tag}'",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_idempotency_keys_are_deleted_a_batch_at_a_time_on_postgres() {
    let (_, pool): (_, Pool<PgManager>) = pg_app_and_pool().await;
    // The schema is this process's, but other tests of it add keys: they
    // are all younger than a day.
    expired_keys_are_deleted_a_batch_at_a_time(
        pool,
        "UPDATE demo_idempotency SET created_at = now() - interval '2 days' WHERE idem_key LIKE 'old-%-{tag}'",
    )
    .await;
}
