//! Connecting: fail fast while down, fatal errors, backoff, F9 refusals.

use std::time::Duration;

use super::script::{Scripted, Step};
use super::{check, observed, pool_with};
use crate::{ErrorClass, PoolError, WhenUnavailable};

#[tokio::test(start_paused = true)]
async fn server_down_fails_fast_with_the_connect_error() {
    let m = Scripted::default();
    m.connects([Step::Err(ErrorClass::Keep)]);
    let pool = pool_with(&m, |b| b.checkout_timeout(Duration::from_secs(30)));
    let start = tokio::time::Instant::now();
    let err = pool.get().await.unwrap_err();
    assert!(matches!(err, PoolError::Unavailable { .. }), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "did not wait the full timeout"
    );
    assert!(std::error::Error::source(&err).is_some());
    // The server is back: the next checkout succeeds.
    tokio::time::advance(Duration::from_millis(100)).await;
    let conn = pool
        .get()
        .await
        .expect("recovers as soon as the server answers");
    assert_eq!(conn.id, 1);
}

#[tokio::test(start_paused = true)]
async fn wait_policy_waits_for_the_server() {
    let m = Scripted::default();
    m.connects([
        Step::Err(ErrorClass::Keep),
        Step::Err(ErrorClass::Keep),
        Step::Err(ErrorClass::Keep),
    ]);
    let pool = pool_with(&m, |b| {
        b.when_unavailable(WhenUnavailable::Wait).max_connecting(1)
    });
    let conn = pool.get().await.expect("waits through the failures");
    assert_eq!(conn.id, 1);
    assert_eq!(m.count_connects(), 4);
    assert_eq!(pool.status().connect_failures, 3);
}

#[tokio::test(start_paused = true)]
async fn wait_policy_timeout_names_the_connect_error() {
    let m = Scripted::default();
    m.connects((0..1000).map(|_| Step::Err(ErrorClass::Keep)));
    let pool = pool_with(&m, |b| {
        b.when_unavailable(WhenUnavailable::Wait)
            .checkout_timeout(Duration::from_secs(1))
    });
    let err = pool.get().await.unwrap_err();
    let t = err.as_timeout().expect("a timeout");
    assert!(t.last_connect_error.is_some());
    assert!(err.to_string().contains("connecting failed"), "{err}");
    // Backoff bounds the attempts: at most max_connecting per backoff period.
    let attempts = m.count_connects();
    assert!(attempts <= 2 * (1000 / 5) + 2, "attempts: {attempts}");
}

#[tokio::test(start_paused = true)]
async fn bad_credentials_fail_at_once_without_a_retry_storm() {
    let m = Scripted::default();
    m.connects((0..100).map(|_| Step::Err(ErrorClass::Fatal)));
    let pool = pool_with(&m, |b| b.fatal_retry_interval(Duration::from_secs(5)));
    for _ in 0..50 {
        let err = pool.get().await.unwrap_err();
        assert!(matches!(err, PoolError::Fatal { .. }), "{err}");
    }
    assert_eq!(
        m.count_connects(),
        1,
        "one attempt, then the error is reused"
    );
    tokio::time::advance(Duration::from_secs(6)).await;
    let _ = pool.get().await.unwrap_err();
    super::settle().await;
    assert_eq!(m.count_connects(), 2, "retried after fatal_retry_interval");
}

#[tokio::test(start_paused = true)]
async fn refused_connects_wait_for_the_working_connection() {
    // F9: the server lets the pool open only one connection.
    let m = Scripted::default();
    let pool = pool_with(&m, |b| {
        b.max_size(5).checkout_timeout(Duration::from_secs(5))
    });
    let held = pool.get().await.unwrap();
    m.connects((0..10_000).map(|_| Step::Err(ErrorClass::Keep)));
    let mut waiters = Vec::new();
    for _ in 0..8 {
        let p = pool.clone();
        waiters.push(tokio::spawn(async move {
            let c = p.get().await?;
            tokio::time::sleep(Duration::from_millis(10)).await;
            drop(c);
            Ok::<_, PoolError>(())
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(held);
    for w in waiters {
        w.await
            .unwrap()
            .expect("served by the one working connection");
    }
    assert!(pool.status().connect_failures > 0);
    check(&pool);
}

#[tokio::test(start_paused = true)]
async fn first_connects_do_not_refuse_each_other_when_one_slot_is_left() {
    // F9 on PostgreSQL: a role with one connection slot left. Two first
    // connects in flight together would both be refused, and a pool with no
    // connection fails its waiters fast: the first connect goes alone.
    let m = Scripted::default();
    m.room_for(1);
    let pool = pool_with(&m, |b| {
        b.max_size(5)
            .max_connecting(2)
            .checkout_timeout(Duration::from_secs(5))
    });
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let p = pool.clone();
        tasks.push(tokio::spawn(async move {
            let c = p.get().await?;
            tokio::time::sleep(Duration::from_millis(10)).await;
            drop(c);
            Ok::<_, PoolError>(())
        }));
    }
    for t in tasks {
        t.await
            .unwrap()
            .expect("served through the one connection the server allows");
    }
    assert_eq!(m.max_live(), 1);
    check(&pool);
}

#[tokio::test(start_paused = true)]
async fn connects_are_bounded_and_never_exceed_max_open() {
    let m = Scripted::default();
    m.connects((0..50).map(|_| Step::Slow(Duration::from_millis(50))));
    let pool = pool_with(&m, |b| b.max_size(10).max_connecting(2));
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let p = pool.clone();
        tasks.push(tokio::spawn(async move {
            let c = p.get().await.unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
            drop(c);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(m.max_live() <= 10);
    assert!(m.count_connects() <= 10);
    check(&pool);
}

#[tokio::test(start_paused = true)]
async fn warm_up_fails_fast_on_bad_settings() {
    let m = Scripted::default();
    m.connects([Step::Err(ErrorClass::Fatal)]);
    let err = crate::Pool::builder(m.clone())
        .build_and_connect()
        .await
        .unwrap_err();
    assert!(
        matches!(err, crate::StartError::Connect(PoolError::Fatal { .. })),
        "{err}"
    );
    let m = Scripted::default();
    let pool = crate::Pool::builder(m.clone())
        .min_idle(3)
        .build_and_connect()
        .await
        .unwrap();
    assert_eq!(pool.status().idle, 3);
}

#[tokio::test(start_paused = true)]
async fn connect_failures_are_observed() {
    let m = Scripted::default();
    m.connects([Step::Err(ErrorClass::Keep)]);
    let (pool, rec) = observed(&m, |b| b);
    let _ = pool.get().await;
    assert_eq!(rec.count("connect_failed Keep"), 1);
}

#[test]
fn backoff_grows_and_is_capped() {
    use crate::connect::backoff;
    let min = Duration::from_millis(10);
    let max = Duration::from_millis(50);
    assert_eq!(backoff(min, max, 1, 1.0), Duration::from_millis(10));
    assert_eq!(backoff(min, max, 1, 0.0), Duration::from_millis(5));
    assert_eq!(backoff(min, max, 3, 1.0), Duration::from_millis(40));
    assert_eq!(backoff(min, max, 30, 1.0), max);
}

#[tokio::test(start_paused = true)]
async fn no_checkout_fails_with_a_stale_error_once_the_server_is_back() {
    let m = Scripted::default();
    m.connects([Step::Err(ErrorClass::Keep)]);
    let pool = pool_with(&m, |b| b);
    assert!(matches!(
        pool.get().await,
        Err(PoolError::Unavailable { .. })
    ));
    // The server is back (the script has no more errors) but the pool has
    // not tried yet: the next checkout waits for a fresh attempt (one
    // backoff period) instead of failing with the old error.
    let conn = pool.get().await.expect("served by the next attempt");
    assert_eq!(conn.id, 1);
    assert_eq!(m.count_connects(), 2);
}

#[tokio::test(start_paused = true)]
async fn warm_up_tries_again_on_each_call() {
    let m = Scripted::default();
    m.connects([Step::Err(ErrorClass::Keep)]);
    let pool = pool_with(&m, |b| b);
    assert!(matches!(
        pool.warm_up().await,
        Err(PoolError::Unavailable { .. })
    ));
    pool.warm_up().await.expect("the server is back");
    assert_eq!(pool.status().idle, 1);
}

#[tokio::test(start_paused = true)]
async fn the_source_is_the_driver_error_itself() {
    let m = Scripted::default();
    m.connects([Step::Err(ErrorClass::Fatal)]);
    let pool = pool_with(&m, |b| b);
    let err = pool.get().await.unwrap_err();
    let source = std::error::Error::source(&err).expect("a source");
    let driver = source.downcast_ref::<super::script::ScriptError>();
    assert_eq!(driver.map(|e| e.0), Some(ErrorClass::Fatal));
}
