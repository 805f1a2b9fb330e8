//! `poolwarden-axum` works with the Postgres manager unchanged: `Tx` +
//! `TxLayer` commit on success and roll back otherwise, on a real server.

mod common;

use axum::routing::post;
use axum::Router;
use common::Events;
use http::{Request, StatusCode};
use poolwarden::Pool;
use poolwarden_axum::{Tx, TxLayer};
use poolwarden_postgres::PgManager;
use tower::ServiceExt;

fn app(pool: &Pool<PgManager>) -> Router {
    Router::new()
        .route(
            "/orders/{id}",
            post(
                |axum::extract::Path(id): axum::extract::Path<i32>, tx: Tx<PgManager>| async move {
                    tx.execute("INSERT INTO axum_orders VALUES ($1)", &[&id])
                        .await
                        .unwrap();
                    if id % 2 == 0 {
                        StatusCode::CREATED
                    } else {
                        StatusCode::CONFLICT
                    }
                },
            ),
        )
        .layer(TxLayer::new())
        .with_state(pool.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tx_commits_on_success_and_rolls_back_otherwise() {
    let db = common::shared_postgres();
    let pool = common::builder(&db.url(), &Events::new())
        .max_size(1)
        .build()
        .unwrap();
    pool.get()
        .await
        .unwrap()
        .batch_execute("CREATE TABLE axum_orders (id INT)")
        .await
        .unwrap();
    for id in 1..=4 {
        let request = Request::post(format!("/orders/{id}"))
            .body(axum::body::Body::empty())
            .unwrap();
        let response = app(&pool).oneshot(request).await.unwrap();
        let expected = if id % 2 == 0 {
            StatusCode::CREATED
        } else {
            StatusCode::CONFLICT
        };
        assert_eq!(response.status(), expected);
    }
    assert_eq!(
        common::admin(
            &db,
            "SELECT string_agg(id::text, ',' ORDER BY id) FROM axum_orders"
        ),
        vec![vec!["2,4".to_owned()]]
    );
    // Committed and rolled-back requests leave nothing to reset.
    assert_eq!(pool.status().resets, 0, "{:?}", pool.status());
}
