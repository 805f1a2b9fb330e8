//! Fault suite, F2: the server restarts under load from 32 tasks and every
//! pooled session dies at once, against a private PostgreSQL server. Run
//! with the default `WhenUnavailable::FailFast` and with `Wait`.

mod common;

use std::time::{Duration, Instant};

use common::{describe_failures, Events, Load, Select42};
use poolwarden::WhenUnavailable;

const TASKS: usize = 32;

async fn restart_under_load(policy: WhenUnavailable) {
    let _serial = common::serial().await;
    let mut db = common::start_postgres(&[]);
    let events = Events::new();
    let pool = common::builder(&db.url(), &events)
        .max_size(10)
        .checkout_timeout(Duration::from_secs(20))
        .when_unavailable(policy)
        .build()
        .unwrap();

    let load = Load::start(&pool, Select42, TASKS, 1_000_000, Duration::from_secs(90));
    assert!(
        load.progress.wait_ok(1000, Duration::from_secs(30)).await,
        "the load never got going: {:?}",
        pool.status()
    );
    let stop_at = Instant::now();
    common::blocking(|| db.stop()).expect("stopping the server");
    tokio::time::sleep(Duration::from_secs(1)).await;
    common::blocking(|| db.start_again()).expect("restarting the server");
    let ready_at = Instant::now();

    let ok_at_ready = load.progress.ok.load(std::sync::atomic::Ordering::SeqCst);
    let recovered = load
        .progress
        .wait_ok(ok_at_ready + 2000, Duration::from_secs(30))
        .await;
    let ops = load.finish().await;
    assert!(
        recovered,
        "{policy:?}: no 2000 queries within 30 s of the server being ready: {:?}\n{}",
        pool.status(),
        describe_failures(&ops, stop_at, 10)
    );
    // Zero errors among the operations begun after the server was ready:
    // no connection from before the restart is handed out.
    let after: Vec<_> = ops
        .iter()
        .filter(|op| op.start >= ready_at)
        .cloned()
        .collect();
    assert!(
        after.iter().all(|op| op.is_ok()),
        "{policy:?}: errors after the server was ready: {}",
        describe_failures(&after, ready_at, 10)
    );
    let first_ok = ops
        .iter()
        .filter(|op| op.is_ok() && op.end >= ready_at)
        .map(|op| op.end)
        .min()
        .expect("no success after ready");
    let failed = ops.iter().filter(|op| !op.is_ok()).count();
    assert!(pool.status().invalidations >= 1, "{:?}", pool.status());
    eprintln!(
        "F2 (PostgreSQL, {policy:?}): {} operations, {failed} failed (all before ready); \
         first success {:?} after ready; {} after ready, all ok; status {:?}",
        ops.len(),
        first_ok.duration_since(ready_at),
        after.len(),
        pool.status()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f2_restart_under_load_fail_fast() {
    restart_under_load(WhenUnavailable::FailFast).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f2_restart_under_load_wait() {
    restart_under_load(WhenUnavailable::Wait).await;
}
