//! The defects found by running bb8's, deadpool's and SQLAlchemy's pool
//! test behaviours against poolwarden (issue 9), one test each, plus the
//! failed-ping claim. Each of these failed on the code before the redesign.

use std::time::Duration;

use super::script::{Scripted, Step};
use super::{check, observed, pool_with, settle};
use crate::{ErrorClass, Pool, PoolError};

/// Defect 1: failed checkout pings made the pool reconnect with no backoff.
#[tokio::test(start_paused = true)]
async fn failing_pings_do_not_cause_a_connect_storm() {
    let m = Scripted::default();
    m.connects((0..100_000).map(|_| Step::Slow(Duration::from_millis(1))));
    m.validates((0..100_000).map(|_| Step::Err(ErrorClass::Keep)));
    let pool = pool_with(&m, |b| {
        b.validation_bypass(Duration::ZERO)
            .checkout_timeout(Duration::from_secs(1))
    });
    let err = pool.get().await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    // The backoff (10 ms doubling to 50 ms, halved at worst by jitter)
    // allows about 45 attempts a second; without it, about 500.
    let connects = m.count_connects();
    assert!(connects <= 60, "{connects} connects in one 1 s checkout");
    check(&pool);
}

/// Defect 2: `Duration::MAX` ("no limit") overflowed `Instant + Duration`.
#[tokio::test(start_paused = true)]
async fn duration_max_means_no_limit() {
    let m = Scripted::default();
    let pool = pool_with(&m, |b| {
        b.checkout_timeout(Duration::MAX)
            .validation_timeout(Duration::MAX)
            .close_timeout(Duration::MAX)
            .connect_timeout(Duration::MAX)
            .reset_timeout(Duration::MAX)
            .max_lifetime(None)
            .keepalive_interval(None)
    });
    drop(pool.get().await.unwrap());
    tokio::time::advance(Duration::from_secs(5)).await;
    // Past the bypass window: validated under an unbounded timeout.
    let mut conn = pool.get_timeout(Duration::MAX).await.unwrap();
    conn.probe = crate::Probe::NeedsReset;
    drop(conn);
    settle().await;
    assert_eq!(m.count_validates(), 1);
    assert_eq!(m.count_resets(), 1);
    pool.close().await;
    assert_eq!(pool.status().open, 0);
    // The limits measured from a connection's life, and the background's.
    let pool = pool_with(&m, |b| {
        b.max_lifetime(Some(Duration::MAX))
            .idle_timeout(Some(Duration::MAX))
            .keepalive_interval(Some(Duration::MAX))
            .leak_threshold(Some(Duration::MAX))
            .fatal_retry_interval(Duration::MAX)
            .connect_backoff_max(Duration::MAX)
            .maintenance_interval(Duration::MAX)
    });
    let held = pool.get().await.unwrap();
    tokio::time::sleep(Duration::from_secs(3600)).await;
    drop(held);
    assert_eq!(
        pool.get().await.unwrap().id,
        2,
        "the first is still idle, reused"
    );
}

/// Defect 3a: a panicking `connect()` caused a retry storm, recorded no
/// failure, and the checkout waited its full timeout.
#[tokio::test(start_paused = true)]
async fn a_panicking_connect_is_a_failure_with_backoff() {
    let m = Scripted::default();
    m.connects((0..100_000).map(|_| Step::Panic));
    let (pool, rec) = observed(&m, |b| b.checkout_timeout(Duration::from_secs(1)));
    let start = tokio::time::Instant::now();
    let err = pool.get().await.unwrap_err();
    assert!(matches!(err, PoolError::Unavailable { .. }), "{err}");
    assert!(start.elapsed() < Duration::from_secs(1), "failed fast");
    let source = std::error::Error::source(&err).expect("the panic as source");
    assert!(source.to_string().contains("panicked"), "{source}");
    let s = pool.status();
    assert_eq!(s.connect_failures, 1);
    assert_eq!(s.manager_panics, 1);
    assert_eq!(rec.count("connect_failed"), 1);
    // Further attempts obey the backoff.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for _ in 0..20 {
        let _ = pool.get().await;
    }
    assert!(m.count_connects() <= 30, "{} connects", m.count_connects());
    check(&pool);
}

/// Defect 3b: a panic in `facts()` left `connecting` stuck, so a pool of one
/// was dead forever.
#[tokio::test(start_paused = true)]
async fn a_panicking_facts_costs_only_that_connection() {
    let m = Scripted::default();
    m.panic_facts(1);
    let pool = pool_with(&m, |b| b.max_size(1));
    let first = pool.get().await;
    assert!(first.is_err(), "the one connect failed");
    settle().await;
    assert_eq!(m.live(), 0, "the connection was closed");
    let s = pool.status();
    assert_eq!((s.connecting, s.open, s.manager_panics), (0, 0, 1), "{s:?}");
    let conn = pool.get().await.expect("the pool works again");
    assert_eq!(conn.id, 2);
    drop(conn);
    check(&pool);
}

/// Defect 3c: a panic in the checkout `probe()` left a phantom checkout.
#[tokio::test(start_paused = true)]
async fn a_panicking_probe_costs_only_that_connection() {
    let m = Scripted::default();
    let (pool, rec) = observed(&m, |b| b.max_size(2));
    drop(pool.get().await.unwrap());
    m.panic_probes(1);
    let conn = pool.get().await.expect("replaced within the checkout");
    assert_eq!(conn.id, 2);
    let s = pool.status();
    assert_eq!((s.open, s.in_use, s.manager_panics), (1, 1, 1), "{s:?}");
    assert_eq!(m.live(), 1);
    assert_eq!(rec.count("call_failed probe"), 1);
    // A panic on the return path (the probe of a returned connection) is
    // caught too: the connection is closed, the caller never sees it.
    m.panic_probes(1);
    drop(conn);
    let s = pool.status();
    assert_eq!((s.open, s.in_use, s.manager_panics), (0, 0, 2), "{s:?}");
    assert_eq!(m.live(), 0);
    check(&pool);
}

/// Defect 3d: a panicking ping or reset costs that connection, no more.
#[tokio::test(start_paused = true)]
async fn panicking_validate_and_reset_cost_one_connection() {
    let m = Scripted::default();
    let pool = pool_with(&m, |b| b.max_size(1));
    drop(pool.get().await.unwrap());
    tokio::time::advance(Duration::from_secs(5)).await;
    m.validates([Step::Panic]);
    let mut conn = pool.get().await.expect("replaced");
    assert_eq!(conn.id, 2);
    m.resets([Step::Panic]);
    conn.probe = crate::Probe::NeedsReset;
    drop(conn);
    settle().await;
    let s = pool.status();
    assert_eq!((s.open, s.manager_panics), (0, 2), "{s:?}");
    assert_eq!(s.closed.validation_failed + s.closed.reset_failed, 2);
    assert_eq!(pool.get().await.unwrap().id, 3);
    check(&pool);
}

/// Defect 4: maintenance died with the runtime it first started on and never
/// restarted (a pool built in a setup runtime, or shared across tests).
#[test]
fn maintenance_survives_the_runtime_it_started_on() {
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap()
    };
    let m = Scripted::default();
    let rec = std::sync::Arc::new(super::script::Recorder::default());
    let setup = runtime();
    let pool: Pool<Scripted> = setup.block_on(async {
        let pool = Pool::builder(m.clone())
            .max_size(2)
            .leak_threshold(Some(Duration::from_secs(1)))
            .observer(rec.clone())
            .build()
            .unwrap();
        pool.warm_up().await.unwrap();
        pool
    });
    drop(setup);
    runtime().block_on(async {
        // An idle connection is there: the fast path serves this checkout.
        let held = pool.get().await.unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(rec.count("leak"), 1, "maintenance runs on this runtime");
        drop(held);
    });
}

/// Defect 5: `close()` during a checkout's validation ping still handed the
/// connection out.
#[tokio::test(start_paused = true)]
async fn close_during_validation_fails_the_checkout() {
    let m = Scripted::default();
    let pool = pool_with(&m, |b| b.max_size(1));
    drop(pool.get().await.unwrap());
    tokio::time::advance(Duration::from_secs(5)).await;
    m.validates([Step::Slow(Duration::from_secs(1))]);
    let p = pool.clone();
    let getter = tokio::spawn(async move { p.get().await.map(|c| c.id) });
    settle().await; // the checkout is in its ping
    assert_eq!(m.count_validates(), 1);
    pool.close().await;
    assert!(matches!(getter.await.unwrap(), Err(PoolError::Closed)));
    settle().await;
    assert_eq!((pool.status().open, m.live()), (0, 0));
}

/// Defect 6: expiry at return depended on the maintenance tick.
#[tokio::test(start_paused = true)]
async fn lifetime_is_enforced_at_return_whatever_the_maintenance_interval() {
    let m = Scripted::default();
    let pool = pool_with(&m, |b| {
        b.max_lifetime(Some(Duration::from_secs(60)))
            .lifetime_jitter(0.0)
            .maintenance_interval(Duration::from_secs(3600))
    });
    let conn = pool.get().await.unwrap();
    tokio::time::advance(Duration::from_secs(120)).await;
    drop(conn);
    assert_eq!(pool.status().closed.lifetime, 1);
    assert_eq!(pool.status().open, 0);
}

/// Defect 7: `min_idle` refill after checkouts lagged by up to one
/// maintenance interval.
#[tokio::test(start_paused = true)]
async fn min_idle_is_refilled_right_after_checkouts() {
    let m = Scripted::default();
    let pool = pool_with(&m, |b| {
        b.max_size(4)
            .min_idle(2)
            .maintenance_interval(Duration::from_secs(3600))
    });
    pool.warm_up().await.unwrap();
    assert_eq!(pool.status().idle, 2);
    let a = pool.get().await.unwrap();
    let b = pool.get().await.unwrap();
    settle().await; // no time passes
    let s = pool.status();
    assert_eq!((s.idle, s.in_use), (2, 2), "{s:?}");
    drop((a, b));
}

/// Defect 8: slots were allocated up front, so `max_size = u32::MAX`
/// aborted the process; SQLAlchemy-style unlimited overflow could not be
/// expressed. Slots are now allocated as connections open.
#[tokio::test(start_paused = true)]
async fn huge_sizes_allocate_only_what_is_open() {
    let m = Scripted::default();
    let pool = Pool::builder(m.clone())
        .max_size(u32::MAX)
        .build()
        .expect("accepted");
    let conns: Vec<_> = futures_n(&pool, 3).await;
    assert_eq!(pool.status().open, 3);
    drop(conns);
    let unlimited = Pool::builder(m)
        .max_size(2)
        .max_overflow(u32::MAX)
        .build()
        .expect("unlimited overflow");
    let conns: Vec<_> = futures_n(&unlimited, 5).await;
    assert_eq!(unlimited.status().overflow, 3);
    drop(conns);
    assert_eq!(unlimited.status().open, 2, "overflow closed at return");
}

async fn futures_n(pool: &Pool<Scripted>, n: usize) -> Vec<crate::PooledConnection<Scripted>> {
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(pool.get().await.unwrap());
    }
    v
}

/// A claim that fails its validation ping is not a checkout: no
/// `CheckedIn` without `CheckedOut`, no hold time, not counted.
#[tokio::test(start_paused = true)]
async fn a_claim_that_fails_its_ping_is_not_a_checkout() {
    let m = Scripted::default();
    let (pool, rec) = observed(&m, |b| b);
    drop(pool.get().await.unwrap());
    tokio::time::advance(Duration::from_secs(5)).await;
    m.validates([Step::Err(ErrorClass::Broken)]);
    let conn = pool.get().await.unwrap();
    assert_eq!(conn.id, 2);
    drop(conn);
    assert_eq!(pool.status().checkouts, 2);
    assert_eq!(rec.count("checked_out"), 2);
    assert_eq!(rec.count("checked_in"), 2);
    assert_eq!(rec.count("call_failed validate Broken"), 1);
}

/// A keepalive ping is not a checkout: `in_use` counts only borrowers.
#[tokio::test(start_paused = true)]
async fn in_use_counts_only_checked_out_connections() {
    let m = Scripted::default();
    let pool = pool_with(&m, |b| {
        b.keepalive_interval(Some(Duration::from_secs(30)))
            .validation_timeout(Duration::from_secs(10))
    });
    drop(pool.get().await.unwrap());
    m.validates([Step::Never]);
    tokio::time::sleep(Duration::from_secs(31)).await; // keepalive in its ping
    assert_eq!(m.count_validates(), 1);
    let s = pool.status();
    assert_eq!(
        (s.open, s.idle, s.in_use, s.background),
        (1, 0, 0, 1),
        "{s:?}"
    );
}
