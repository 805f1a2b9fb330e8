//! Report work against account reads: reports sit behind their bulkhead
//! and a bounded queue, so a flood of them never makes a read's checkout
//! wait.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use poolwarden::PoolConfig;

use super::common::{app_with, call};
use crate::settings::ReportSettings;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_flood_never_makes_reads_wait() {
    let mut config = PoolConfig::default();
    config.max_size = 4;
    config.min_idle = 4;
    config.checkout_timeout = Duration::from_secs(5);
    let reports = ReportSettings {
        max_connections: 1,
        queue: 32,
        ..ReportSettings::default()
    };
    let (app, pool) = app_with(config, reports).await;
    // Every connection open first, so a wait could only be for report work.
    for _ in 0..10_000 {
        if pool.status().open == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(pool.status().open, 4);
    // Watch the pool for the whole flood: a checkout waiting in the pool's
    // queue, and report connections beyond the bulkhead's limit.
    let stop = Arc::new(AtomicBool::new(false));
    let (max_waiting, max_reports) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let watcher = tokio::spawn({
        let (pool, stop) = (pool.clone(), stop.clone());
        let (max_waiting, max_reports) = (max_waiting.clone(), max_reports.clone());
        async move {
            while !stop.load(Ordering::Relaxed) {
                max_waiting.fetch_max(pool.status().waiting, Ordering::Relaxed);
                let held = pool
                    .checkouts()
                    .iter()
                    .filter(|c| {
                        c.label
                            .as_deref()
                            .is_some_and(|l| l.contains("totals report"))
                    })
                    .count();
                max_reports.fetch_max(held as u32, Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
        }
    });
    let flood: Vec<_> = (0..2000)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { call(&app, Method::POST, "/reports", None).await })
        })
        .collect();
    let mut reads = Vec::new();
    for _ in 0..20 {
        reads.push(call(&app, Method::GET, "/accounts", None).await.0);
    }
    let (mut accepted, mut refused) = (0, 0);
    for f in flood {
        let (status, body) = f.await.unwrap();
        match status {
            StatusCode::ACCEPTED => accepted += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(body["error"], "too_many_requests", "{body}");
                refused += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    stop.store(true, Ordering::Relaxed);
    watcher.await.unwrap();
    assert!(reads.iter().all(|s| *s == StatusCode::OK), "{reads:?}");
    assert_eq!(accepted + refused, 2000);
    assert!(
        accepted >= 32 && refused > 0,
        "{accepted} accepted, {refused} refused"
    );
    assert_eq!(
        max_waiting.load(Ordering::Relaxed),
        0,
        "no checkout ever waited in the pool"
    );
    assert!(
        max_reports.load(Ordering::Relaxed) <= 1,
        "reports held more than their bulkhead"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_429_with_retry_after() {
    let (app, _pool) = app_with(
        PoolConfig::default(),
        ReportSettings {
            queue: 1,
            ..ReportSettings::default()
        },
    )
    .await;
    let req = || {
        axum::http::Request::post("/reports")
            .body(axum::body::Body::empty())
            .unwrap()
    };
    use tower::ServiceExt;
    let first = app.clone().oneshot(req()).await.unwrap();
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let second = app.clone().oneshot(req()).await.unwrap();
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(second.headers()["retry-after"], "1");
}
