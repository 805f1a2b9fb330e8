//! No acknowledged write lost or applied twice across a database crash and
//! restart, with clients that retry with the same `Idempotency-Key`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use poolwarden::PoolConfig;
use poolwarden_mysql::MySqlManager;
use poolwarden_testkit::MariaDb;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::app::{self, AppState};
use crate::database;
use crate::settings::{HttpSettings, ReportSettings};

const CLIENTS: u64 = 6;
const ORDERS: u64 = 8;
/// Attempts per order; each retry waits 100 ms, so a client gives up after
/// about 30 s.
const ATTEMPTS: u32 = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_with_the_same_key_neither_lose_nor_duplicate_across_a_restart() {
    // A server of its own: it is killed mid-test.
    let mut server = MariaDb::start().expect("a private MariaDB");
    let db = database::open::<MySqlManager>(&server.url(), true, PoolConfig::default())
        .await
        .expect("database");
    let pool = db.pool.clone();
    let app = app::router(
        AppState::new(pool.clone(), ReportSettings::default()),
        &HttpSettings::default(),
    );
    let (s, account) = super::common::call(
        &app,
        axum::http::Method::POST,
        "/accounts",
        Some(&json!({"name": "R", "email": "restart@example.com"}).to_string()),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{account}");
    let account = account["id"].as_u64().unwrap();
    let acked = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (app, acked) = (app.clone(), acked.clone());
            tokio::spawn(async move {
                let mut answers = Vec::new();
                for n in 0..ORDERS {
                    let amount = 1_000_000 + c * 1000 + n;
                    let key = format!("restart-{c}-{n}");
                    let mut attempt = 0;
                    let answer = loop {
                        attempt += 1;
                        assert!(attempt <= ATTEMPTS, "order {key} never acknowledged");
                        let req = Request::post(format!("/accounts/{account}/orders"))
                            .header("content-type", "application/json")
                            .header("idempotency-key", &key)
                            .body(Body::from(json!({"amount_cents": amount}).to_string()))
                            .unwrap();
                        let resp = app.clone().oneshot(req).await.unwrap();
                        let status = resp.status();
                        let bytes = http_body_util::BodyExt::collect(resp.into_body())
                            .await
                            .unwrap()
                            .to_bytes();
                        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                        match status {
                            StatusCode::CREATED => break body,
                            s if s.is_server_error() => {
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                            other => panic!("{key}: {other} {body}"),
                        }
                    };
                    acked.fetch_add(1, Ordering::Relaxed);
                    answers.push((amount, answer));
                }
                answers
            })
        })
        .collect();
    // Kill the server once some writes are acknowledged, then restart it.
    while acked.load(Ordering::Relaxed) < (CLIENTS * ORDERS / 4) as usize {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server = tokio::task::spawn_blocking(move || {
        server.kill().expect("kill");
        server.start_again().expect("restart");
        server
    })
    .await
    .unwrap();
    let mut answers = Vec::new();
    for c in clients {
        answers.extend(c.await.unwrap());
    }
    assert_eq!(answers.len() as u64, CLIENTS * ORDERS);
    let mut conn = pool.get().await.unwrap();
    for (amount, answer) in &answers {
        let rows: Vec<u64> = conn
            .exec(
                "SELECT id FROM demo_orders WHERE account_id = ? AND amount_cents = ?",
                (account, amount),
            )
            .await
            .unwrap();
        assert_eq!(
            rows.len(),
            1,
            "order of {amount}: written exactly once, got {rows:?}"
        );
        assert_eq!(
            Some(rows[0]),
            answer["id"].as_u64(),
            "the acknowledged id is the stored one"
        );
    }
    drop(conn);
    drop(db);
    drop(server);
}
