//! `Tx` + `TxLayer`: commit on success, roll back otherwise, never commit
//! after a panic or off the request path.

mod common;

use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use axum::routing::post;
use axum::Router;
use common::{body_json, eventually, pool, request, Fake, Logs};
use http::StatusCode;
use poolwarden::Pool;
use poolwarden_axum::{Tx, TxLayer};
use tower::ServiceExt;

fn app(pool: &Pool<Fake>, status: StatusCode) -> Router {
    Router::new()
        .route(
            "/orders",
            post(move |tx: Tx<Fake>| async move {
                assert!(tx.in_tx, "begun before the handler runs");
                status
            }),
        )
        .layer(TxLayer::new())
        .with_state(pool.clone())
}

#[tokio::test]
async fn commits_on_success() {
    let fake = Fake::default();
    let pool = pool(&fake, 1);
    for status in [StatusCode::OK, StatusCode::CREATED, StatusCode::SEE_OTHER] {
        let response = app(&pool, status)
            .oneshot(request("POST", "/orders", None))
            .await
            .unwrap();
        assert_eq!(response.status(), status);
    }
    assert_eq!(fake.log(), ["BEGIN #1", "COMMIT #1"].repeat(3));
    let status = pool.status();
    assert_eq!((status.in_use, status.idle, status.resets), (0, 1, 0));
}

#[tokio::test]
async fn rolls_back_on_error_responses() {
    let fake = Fake::default();
    let pool = pool(&fake, 1);
    for status in [StatusCode::INTERNAL_SERVER_ERROR, StatusCode::BAD_REQUEST] {
        let response = app(&pool, status)
            .oneshot(request("POST", "/orders", None))
            .await
            .unwrap();
        assert_eq!(response.status(), status);
    }
    assert_eq!(fake.log(), ["BEGIN #1", "ROLLBACK #1"].repeat(2));
    assert_eq!(pool.status().idle, 1);
}

#[tokio::test]
async fn rolls_back_when_the_handler_returns_err() {
    let fake = Fake::default();
    let pool = pool(&fake, 1);
    let app = Router::new()
        .route(
            "/orders",
            post(|_tx: Tx<Fake>| async move { Err::<&str, _>(StatusCode::CONFLICT) }),
        )
        .layer(TxLayer::new())
        .with_state(pool);
    let response = app.oneshot(request("POST", "/orders", None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert_eq!(fake.log(), ["BEGIN #1", "ROLLBACK #1"]);
}

#[tokio::test]
async fn a_failed_commit_turns_success_into_503() {
    let (logs, _guard) = Logs::capture();
    let fake = Fake::default();
    fake.0.fail_commit.store(true, SeqCst);
    let pool = pool(&fake, 1);
    let response = app(&pool, StatusCode::OK)
        .oneshot(request("POST", "/orders", Some("c-1")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = body_json(response).await;
    assert_eq!(body["error"], "transaction_failed");
    assert_eq!(body["request_id"], "c-1");
    assert!(!body.to_string().contains("deadlock"), "{body}");
    assert!(logs.text().contains("deadlock"), "{}", logs.text());
    assert_eq!(fake.log(), ["BEGIN #1", "COMMIT failed #1"]);
    // The connection is closed, not reused with an unknown state.
    eventually(|| pool.status().closed.invalidated == 1).await;
}

#[tokio::test]
async fn a_commit_whose_answer_was_lost_does_not_say_nothing_was_saved() {
    let (logs, _guard) = Logs::capture();
    let fake = Fake::default();
    fake.0.lose_commit.store(true, SeqCst);
    let pool = pool(&fake, 1);
    let response = app(&pool, StatusCode::OK)
        .oneshot(request("POST", "/orders", Some("c-2")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = body_json(response).await;
    assert_eq!(body["error"], poolwarden_axum::COMMIT_OUTCOME_UNKNOWN);
    assert_eq!(body["request_id"], "c-2");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains("may or may not"), "{body}");
    assert!(!message.contains("nothing was saved"), "{body}");
    assert!(logs.text().contains("may or may not"), "{}", logs.text());
    assert_eq!(fake.log(), ["BEGIN #1", "COMMIT lost #1"]);
}

#[tokio::test]
async fn a_panicking_handler_never_commits() {
    let fake = Fake::default();
    let pool = pool(&fake, 1);
    let app = Router::new()
        .route(
            "/orders",
            post(|_tx: Tx<Fake>| async move {
                if true {
                    panic!("handler bug");
                }
                StatusCode::OK
            }),
        )
        .layer(TxLayer::new())
        .with_state(pool.clone());
    let joined = tokio::spawn(app.oneshot(request("POST", "/orders", None))).await;
    assert!(joined.unwrap_err().is_panic());
    assert_eq!(fake.log(), ["BEGIN #1"]);
    // The pool closed the connection the panicking thread returned.
    eventually(|| pool.status().closed.corrupt == 1).await;
    assert_eq!(pool.status().in_use, 0);
}

#[tokio::test]
async fn a_tx_that_outlives_its_request_is_rolled_back_by_the_pool() {
    let (logs, _guard) = Logs::capture();
    let fake = Fake::default();
    let pool = pool(&fake, 1);
    let app = Router::new()
        .route(
            "/orders",
            post(|tx: Tx<Fake>| async move {
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(30)).await;
                    drop(tx);
                });
                StatusCode::OK
            }),
        )
        .layer(TxLayer::new())
        .with_state(pool.clone());
    let response = app.oneshot(request("POST", "/orders", None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    eventually(|| fake.log().len() == 2).await;
    // Never committed: the pool's reset on return rolled it back.
    assert_eq!(fake.log(), ["BEGIN #1", "RESET #1"]);
    assert!(
        logs.text().contains("outlived its request"),
        "{}",
        logs.text()
    );
}

#[tokio::test]
async fn explicit_commit_is_kept_whatever_the_response() {
    let fake = Fake::default();
    let pool = pool(&fake, 1);
    let app = Router::new()
        .route(
            "/orders",
            post(|tx: Tx<Fake>| async move {
                tx.commit().await.unwrap();
                StatusCode::INTERNAL_SERVER_ERROR
            }),
        )
        .layer(TxLayer::new())
        .with_state(pool.clone());
    let response = app.oneshot(request("POST", "/orders", None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(fake.log(), ["BEGIN #1", "COMMIT #1"]);
}

#[tokio::test]
async fn explicit_rollback() {
    let fake = Fake::default();
    let pool = pool(&fake, 1);
    let app = Router::new()
        .route(
            "/orders",
            post(|tx: Tx<Fake>| async move {
                tx.rollback().await;
                StatusCode::OK
            }),
        )
        .layer(TxLayer::new())
        .with_state(pool.clone());
    let response = app.oneshot(request("POST", "/orders", None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(fake.log(), ["BEGIN #1", "ROLLBACK #1"]);
}

#[tokio::test]
async fn a_route_without_the_layer_answers_500_and_begins_nothing() {
    let (logs, _guard) = Logs::capture();
    let fake = Fake::default();
    let pool = pool(&fake, 1);
    let app = Router::new()
        .route("/orders", post(|_tx: Tx<Fake>| async { StatusCode::OK }))
        .with_state(pool.clone());
    let response = app.oneshot(request("POST", "/orders", None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body_json(response).await["error"], "internal_error");
    assert!(fake.log().is_empty());
    assert_eq!(pool.status().checkouts, 0);
    assert!(logs.text().contains("TxLayer"), "{}", logs.text());
}

#[tokio::test]
async fn exhausted_pool_answers_503() {
    let fake = Fake::default();
    let pool = pool(&fake, 1);
    let held = pool.get().await.unwrap();
    let response = app(&pool, StatusCode::OK)
        .oneshot(request("POST", "/orders", None))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body_json(response).await["error"], "database_unavailable");
    drop(held);
    assert!(fake.log().is_empty());
}
