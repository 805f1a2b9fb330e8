//! Lost connections and ambiguous writes, made with real servers (the
//! errors `poolwarden-mysql` gives for them have no public constructor):
//! a session killed while it waits for a row lock the test holds, a pool
//! closed with a command running, a write past its deadline. Each waits
//! on a signal (the session shows in the processlist, the lock wait in
//! `pg_stat_activity`), never on a sleep.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use mysql_async::prelude::Queryable;
use poolwarden::{Pool, PoolConfig};
use poolwarden_mysql::{CommandCut, CommandTimeout, MySqlManager, OutcomeUnknown};
use poolwarden_postgres::PgManager;
use serde_json::{json, Value};
use tower::ServiceExt;

use poolwarden_testkit::MariaDb;

use super::common::{app_on, pg_app_and_pool};
use super::races::{new_account, until};
use crate::api::error::OUTCOME_UNKNOWN;
use crate::settings::ReportSettings;
use crate::store::{mysql, Kind, Store};

/// A request's status, `Retry-After` and JSON body.
async fn send(
    app: &Router,
    method: Method,
    uri: &str,
    key: Option<&str>,
    body: &Value,
) -> (StatusCode, Option<String>, Value) {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(k) = key {
        req = req.header("idempotency-key", k);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let retry = resp
        .headers()
        .get(header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        retry,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// How many row lock waits MariaDB has right now
/// (`Innodb_row_lock_current_waits`, a live counter). Not
/// `information_schema.INNODB_LOCK_WAITS`: InnoDB fills those tables from a
/// cache that it refreshes only when it was last read more than 100 ms ago,
/// so a poller faster than that (or two slower ones taking turns) sees the
/// same stale rows for ever; that is why this test's deadlock twin once
/// "never reached its deadlock". Server-wide: the tests using it run on a
/// server of their own.
pub(super) async fn row_lock_waits(pool: &Pool<MySqlManager>) -> u64 {
    let mut c = pool.get().await.unwrap();
    let row: Option<(String, u64)> = c
        .query_first("SHOW GLOBAL STATUS LIKE 'Innodb_row_lock_current_waits'")
        .await
        .unwrap();
    row.unwrap().1
}

/// Waits (bounded) until `n` row lock waits show.
pub(super) async fn until_lock_waits(pool: &Pool<MySqlManager>, n: u64, what: &str) {
    until(what, || async { row_lock_waits(pool).await == n }).await;
}

/// The id of the one session (on a server of the test's own) running a
/// statement that starts with `prefix`.
async fn session_running(pool: &Pool<MySqlManager>, prefix: &str) -> u64 {
    let mut c = pool.get().await.unwrap();
    let ids: Vec<u64> = c
        .exec(
            "SELECT id FROM information_schema.PROCESSLIST \
             WHERE info LIKE ? AND id <> CONNECTION_ID()",
            (format!("{prefix}%"),),
        )
        .await
        .unwrap();
    assert_eq!(ids.len(), 1, "one session runs `{prefix}`: {ids:?}");
    ids[0]
}

/// The router and pool on a MariaDB of the test's own (kept alive by the
/// returned handle).
async fn own_server(config: PoolConfig) -> (MariaDb, Router, Pool<MySqlManager>) {
    let server = MariaDb::start().expect("a private MariaDB");
    let (app, pool) =
        app_on::<MySqlManager>(&server.url(), config, ReportSettings::default()).await;
    (server, app, pool)
}

async fn kill(pool: &Pool<MySqlManager>, id: u64) {
    let mut c = pool.get().await.unwrap();
    c.query_drop(format!("KILL CONNECTION {id}")).await.unwrap();
}

/// An order inserted in a transaction whose session is killed while it
/// waits for the account row: 503 `database_unavailable`, nothing saved,
/// and the retry with the same key writes it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_session_mid_transaction_is_503_database_unavailable() {
    let (_server, app, pool) = own_server(PoolConfig::default()).await;
    let account = new_account(&app).await;
    let key = super::common::unique("killed-tx");
    let mut t = pool.get().await.unwrap();
    t.query_drop("BEGIN").await.unwrap();
    t.exec_drop(
        "SELECT id FROM demo_accounts WHERE id = ? FOR UPDATE",
        (account,),
    )
    .await
    .unwrap();
    let uri = format!("/accounts/{account}/orders");
    let request = {
        let (app, uri, key) = (app.clone(), uri.clone(), key.clone());
        tokio::spawn(async move {
            send(
                &app,
                Method::POST,
                &uri,
                Some(&key),
                &json!({"amount_cents": 5}),
            )
            .await
        })
    };
    until_lock_waits(&pool, 1, "the order's insert waits for the account row").await;
    kill(
        &pool,
        session_running(&pool, "INSERT INTO demo_orders").await,
    )
    .await;
    let (status, retry, body) = request.await.unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(retry.as_deref(), Some("1"));
    assert_eq!(body["error"], "database_unavailable", "{body}");
    t.query_drop("ROLLBACK").await.unwrap();
    drop(t);
    let mut c = pool.get().await.unwrap();
    assert!(MySqlManager::orders(&mut c, account, 0, 10)
        .await
        .unwrap()
        .is_empty());
    let (status, _, body) = send(
        &app,
        Method::POST,
        &uri,
        Some(&key),
        &json!({"amount_cents": 5}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        MySqlManager::orders(&mut c, account, 0, 10)
            .await
            .unwrap()
            .len(),
        1
    );
}

/// An order (row) the test holds, so a write to it waits.
async fn held_order<B: Store>(app: &Router) -> u64 {
    let account = new_account(app).await;
    let (status, _, order) = send(
        app,
        Method::POST,
        &format!("/accounts/{account}/orders"),
        None,
        &json!({"amount_cents": 5}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    order["id"].as_u64().unwrap()
}

/// A `PATCH` (an autocommit `UPDATE`) whose session is killed after it was
/// sent: its answer is lost, so it may have been applied: 503
/// `outcome_unknown`, saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_autocommit_write_is_503_outcome_unknown() {
    let (_server, app, pool) = own_server(PoolConfig::default()).await;
    let order = held_order::<MySqlManager>(&app).await;
    let mut t = pool.get().await.unwrap();
    t.query_drop("BEGIN").await.unwrap();
    t.exec_drop(
        "SELECT id FROM demo_orders WHERE id = ? FOR UPDATE",
        (order,),
    )
    .await
    .unwrap();
    let request = {
        let app = app.clone();
        tokio::spawn(async move {
            let uri = format!("/orders/{order}");
            send(&app, Method::PATCH, &uri, None, &json!({"status": "paid"})).await
        })
    };
    until_lock_waits(&pool, 1, "the PATCH waits for the order row").await;
    kill(&pool, session_running(&pool, "UPDATE demo_orders").await).await;
    let (status, retry, body) = request.await.unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(retry.as_deref(), Some("1"));
    assert_eq!(body["error"], OUTCOME_UNKNOWN, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("may or may not have been applied"),
        "{body}"
    );
    t.query_drop("ROLLBACK").await.unwrap();
}

/// An `OutcomeUnknown` wraps the `CommandTimeout` that came instead of the
/// answer, and `CommandTimeout::find` sees through it: the mapping asks
/// for the ambiguity first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_autocommit_write_past_its_deadline_is_outcome_unknown() {
    let (_server, app, pool) = own_server(PoolConfig::default()).await;
    let order = held_order::<MySqlManager>(&app).await;
    let mut t = pool.get().await.unwrap();
    t.query_drop("BEGIN").await.unwrap();
    t.exec_drop(
        "SELECT id FROM demo_orders WHERE id = ? FOR UPDATE",
        (order,),
    )
    .await
    .unwrap();
    let mut c = pool.get().await.unwrap();
    // The lock is held until after the deadline has passed, whatever the
    // machine's speed: the command cannot finish first.
    let e = c
        .with_timeout(Duration::from_millis(200))
        .exec_drop(
            "UPDATE demo_orders SET status = 'paid' WHERE id = ?",
            (order,),
        )
        .await
        .unwrap_err();
    assert!(OutcomeUnknown::find(&e).is_some(), "{e}");
    assert!(CommandTimeout::find(&e).is_some(), "{e}");
    assert_eq!(mysql::kind(&e), Kind::OutcomeUnknown);
    t.query_drop("ROLLBACK").await.unwrap();
}

/// `Pool::close` reaching its `close_timeout` cuts the commands still
/// running: a read is `Unavailable` (a plain `CommandCut`), an autocommit
/// write `OutcomeUnknown` (wrapping the `CommandCut`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_cut_by_a_closing_pool_are_unavailable_or_unknown() {
    let mut config = PoolConfig::default();
    config.close_timeout = Duration::from_millis(300);
    let (server, app, pool) = own_server(config).await;
    let order = held_order::<MySqlManager>(&app).await;
    // The lock is held on a connection of another pool, which stays open.
    let (_, other) = app_on::<MySqlManager>(
        &server.url(),
        PoolConfig::default(),
        ReportSettings::default(),
    )
    .await;
    let mut t = other.get().await.unwrap();
    t.query_drop("BEGIN").await.unwrap();
    t.exec_drop(
        "SELECT id FROM demo_orders WHERE id = ? FOR UPDATE",
        (order,),
    )
    .await
    .unwrap();
    let mut reader = pool.get().await.unwrap();
    let mut writer = pool.get().await.unwrap();
    let read = tokio::spawn(async move {
        reader
            .exec_drop(
                "SELECT id FROM demo_orders WHERE id = ? FOR UPDATE",
                (order,),
            )
            .await
            .unwrap_err()
    });
    let write = tokio::spawn(async move {
        writer
            .exec_drop(
                "UPDATE demo_orders SET status = 'paid' WHERE id = ?",
                (order,),
            )
            .await
            .unwrap_err()
    });
    // Both wait for the lock: the pool's close cannot end before them.
    until_lock_waits(&other, 2, "both wait for the row").await;
    pool.close().await;
    let read = read.await.unwrap();
    let write = write.await.unwrap();
    assert!(CommandCut::find(&read).is_some(), "{read}");
    assert!(OutcomeUnknown::find(&read).is_none(), "{read}");
    assert_eq!(mysql::kind(&read), Kind::Unavailable, "{read}");
    assert!(OutcomeUnknown::find(&write).is_some(), "{write}");
    assert!(CommandCut::find(&write).is_some(), "{write}");
    assert_eq!(mysql::kind(&write), Kind::OutcomeUnknown, "{write}");
    t.query_drop("ROLLBACK").await.unwrap();
}

/// PostgreSQL: a `PATCH` whose session is terminated (57P01) while it waits
/// for the row is 503 `database_unavailable` (the server answered with an
/// error: the write failed); one past its deadline is `OutcomeUnknown`
/// (the server may have committed it before the cancel arrived).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_terminated_and_cut_writes() {
    let (app, pool) = pg_app_and_pool().await;
    let order = held_order::<PgManager>(&app).await;
    let id = i64::try_from(order).unwrap();
    let t = pool.get().await.unwrap();
    t.batch_execute("BEGIN").await.unwrap();
    t.query(
        "SELECT id FROM demo_orders WHERE id = $1 FOR UPDATE",
        &[&id],
    )
    .await
    .unwrap();
    let t_pid: i32 = t
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let blocked = || {
        let pool = pool.clone();
        async move {
            let c = pool.get().await.unwrap();
            let row = c
                .query_opt(
                    "SELECT pid FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
                    &[&t_pid],
                )
                .await
                .unwrap();
            row.map(|r| r.get::<_, i32>(0))
        }
    };
    let request = {
        let app = app.clone();
        tokio::spawn(async move {
            let uri = format!("/orders/{order}");
            send(&app, Method::PATCH, &uri, None, &json!({"status": "paid"})).await
        })
    };
    until("the PATCH waits for the row", || async {
        blocked().await.is_some()
    })
    .await;
    // Only the session the test's own transaction blocks.
    let r = blocked().await.unwrap();
    t.query("SELECT pg_terminate_backend($1)", &[&r])
        .await
        .unwrap();
    let (status, retry, body) = request.await.unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(retry.as_deref(), Some("1"));
    assert_eq!(body["error"], "database_unavailable", "{body}");

    let mut c = pool.get().await.unwrap();
    c.set_deadline(Some(
        tokio::time::Instant::now() + Duration::from_millis(200),
    ));
    let e = PgManager::update_order(&mut c, order, "paid")
        .await
        .unwrap_err();
    assert_eq!(e.kind, Kind::OutcomeUnknown, "{e}");
    t.batch_execute("ROLLBACK").await.unwrap();
}
