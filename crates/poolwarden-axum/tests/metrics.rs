//! `/metrics` (feature `metrics`): the pool's metrics in the Prometheus text
//! format.
#![cfg(feature = "metrics")]

mod common;

use axum::Router;
use common::{body_text, request, Fake};
use http::StatusCode;
use poolwarden::Pool;
use tower::ServiceExt;

#[tokio::test]
async fn metrics_endpoint_renders_the_pool_metrics() {
    // Before building the pool: it registers its metrics when built.
    let handle = poolwarden_axum::install_prometheus().unwrap();
    let pool = Pool::builder(Fake::default())
        .name("metered")
        .build()
        .unwrap();
    drop(pool.get().await.unwrap());
    let app: Router = Router::new().merge(poolwarden_axum::metrics_router(handle));

    let response = app.oneshot(request("GET", "/metrics", None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = body_text(response).await;
    assert!(
        text.contains("poolwarden_connections_created_total{pool=\"metered\"} 1"),
        "{text}"
    );
    assert!(text.contains("poolwarden_checkout_hold_seconds"), "{text}");
}
