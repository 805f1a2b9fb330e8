//! `DeadlineLayer`: per-request deadlines, passed to the checkouts; past
//! them a 504 JSON answer and the request's connection closed.

mod common;

use std::time::Duration;

use axum::routing::get;
use axum::Router;
use common::{body_json, body_text, eventually, request, Fake};
use http::StatusCode;
use poolwarden::Pool;
use poolwarden_axum::{Db, DeadlineLayer, RequestContext, Tx, TxLayer, DEADLINE_EXCEEDED};
use tower::ServiceExt;

const SHORT: Duration = Duration::from_millis(50);
const LONG: Duration = Duration::from_secs(3600);

/// A pool whose own checkout timeout is far longer than the requests'
/// deadlines: only the deadline can end a wait in time.
fn slow_pool(fake: &Fake, max_size: u32) -> Pool<Fake> {
    Pool::builder(fake.clone())
        .name("test")
        .max_size(max_size)
        .checkout_timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// Answer within `bound` or fail the test (instead of hanging it).
async fn call(app: Router, req: http::Request<axum::body::Body>) -> axum::response::Response {
    tokio::time::timeout(Duration::from_secs(20), app.oneshot(req))
        .await
        .expect("the request was not answered")
        .unwrap()
}

#[tokio::test]
async fn a_request_past_its_deadline_gets_a_504_json_and_its_connection_is_closed() {
    let fake = Fake::default();
    let pool = slow_pool(&fake, 1);
    let app = Router::new()
        .route(
            "/hang",
            // A command that never finishes.
            get(|db: Db<Fake>| async move {
                let _held = db;
                std::future::pending::<&'static str>().await
            }),
        )
        .route("/id", get(|db: Db<Fake>| async move { db.id.to_string() }))
        .layer(DeadlineLayer::new(SHORT))
        .with_state(pool.clone());

    let response = call(app.clone(), request("GET", "/hang", Some("late-1"))).await;
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    let body = body_json(response).await;
    assert_eq!(body["error"], DEADLINE_EXCEEDED);
    assert_eq!(body["request_id"], "late-1");
    assert!(
        !body.to_string().contains("fake"),
        "no internals in the body: {body}"
    );

    // Connection #1 was held past the deadline: closed, not reused.
    eventually(|| pool.status().open == 0).await;
    let response = call(app, request("GET", "/id", None)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body_text(response).await, "2");
}

#[tokio::test]
async fn a_request_in_time_keeps_its_connection() {
    let fake = Fake::default();
    let pool = slow_pool(&fake, 1);
    let app = Router::new()
        .route("/id", get(|db: Db<Fake>| async move { db.id.to_string() }))
        .layer(DeadlineLayer::new(LONG))
        .with_state(pool.clone());
    for _ in 0..2 {
        let response = call(app.clone(), request("GET", "/id", None)).await;
        assert_eq!(body_text(response).await, "1");
    }
}

#[tokio::test]
async fn the_checkout_waits_no_longer_than_the_request() {
    let fake = Fake::default();
    let pool = slow_pool(&fake, 1);
    let held = pool.get().await.unwrap();
    let app = Router::new()
        .route("/id", get(|db: Db<Fake>| async move { db.id.to_string() }))
        .layer(DeadlineLayer::new(SHORT))
        .with_state(pool.clone());
    // The pool's checkout timeout is 60 s; `call` gives up after 20 s.
    let response = call(app, request("GET", "/id", Some("waiting-1"))).await;
    assert!(
        matches!(
            response.status(),
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
        ),
        "{}",
        response.status()
    );
    let body = body_json(response).await;
    assert_eq!(body["request_id"], "waiting-1");
    drop(held);
}

#[tokio::test]
async fn a_per_route_default_replaces_the_layer_setting() {
    let fake = Fake::default();
    let pool = slow_pool(&fake, 1);
    let remaining = |ctx: RequestContext| async move {
        let left = ctx
            .deadline()
            .expect("a deadline")
            .saturating_duration_since(tokio::time::Instant::now());
        // Spawned work outlives the request: no deadline.
        assert!(ctx.task("export").deadline().is_none());
        format!("{}", left > Duration::from_secs(60))
    };
    let app = Router::new()
        .route("/short", get(remaining))
        .route("/reports/{id}", get(remaining))
        .layer(DeadlineLayer::new(Duration::from_secs(30)).route("/reports/{id}", LONG))
        .with_state(pool);
    let short = call(app.clone(), request("GET", "/short", None)).await;
    assert_eq!(body_text(short).await, "false");
    let long = call(app, request("GET", "/reports/7", None)).await;
    assert_eq!(body_text(long).await, "true");
}

#[tokio::test]
async fn a_transaction_cut_at_the_deadline_is_never_committed_and_its_connection_closed() {
    let fake = Fake::default();
    let pool = slow_pool(&fake, 1);
    let app = Router::new()
        .route(
            "/hang",
            get(|tx: Tx<Fake>| async move {
                let _held = tx;
                std::future::pending::<StatusCode>().await
            }),
        )
        .route("/ok", get(|tx: Tx<Fake>| async move { tx.id.to_string() }))
        .layer(TxLayer::new())
        .layer(DeadlineLayer::new(SHORT))
        .with_state(pool.clone());

    let response = call(app.clone(), request("GET", "/hang", None)).await;
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    eventually(|| pool.status().open == 0).await;
    assert_eq!(
        fake.log(),
        ["BEGIN #1"],
        "never committed, never reset for reuse"
    );

    let response = call(app, request("GET", "/ok", None)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body_text(response).await, "2");
    assert_eq!(fake.log(), ["BEGIN #1", "BEGIN #2", "COMMIT #2"]);
}

#[tokio::test]
async fn db_and_tx_carry_the_request_deadline_to_the_manager() {
    let fake = Fake::default();
    let pool = slow_pool(&fake, 2);
    let app = Router::new()
        .route(
            "/db",
            get(|db: Db<Fake>| async move {
                let carried = poolwarden::PooledConnection::deadline(&db);
                format!(
                    "{}",
                    carried.is_some() && carried == db.context().deadline()
                )
            }),
        )
        .route(
            "/tx",
            get(|tx: Tx<Fake>| async move {
                let carried = poolwarden::PooledConnection::deadline(&tx);
                format!(
                    "{}",
                    carried.is_some() && carried == tx.context().deadline()
                )
            }),
        )
        .route(
            "/none",
            get(|db: Db<Fake>| async move {
                format!("{:?}", poolwarden::PooledConnection::deadline(&db))
            }),
        );
    let with_layer = app
        .clone()
        .layer(TxLayer::new())
        .layer(DeadlineLayer::new(LONG))
        .with_state(pool.clone());
    for path in ["/db", "/tx"] {
        let response = call(with_layer.clone(), request("GET", path, None)).await;
        assert_eq!(body_text(response).await, "true", "{path}");
    }
    let without = app.with_state(pool);
    let response = call(without, request("GET", "/none", None)).await;
    assert_eq!(body_text(response).await, "None");
}
