//! The interface contract with the deadlines and Postgres branches
//! (`/work/CONTRACT.md`): `on_hand_out`, `get_until`,
//! `PooledConnection::deadline`, `ErrorClass::Unresponsive` ("black hole"),
//! a bounded `close`.

use std::time::Duration;

use super::script::{Scripted, Step};
use super::{check, observed, pool_with, settle};
use crate::{ErrorClass, PoolError, PooledConnection};

#[tokio::test(start_paused = true)]
async fn get_until_passes_its_deadline_to_the_manager_and_the_guard() {
    let m = Scripted::default();
    let pool = pool_with(&m, |b| b);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let conn = pool.get_until(deadline).await.unwrap();
    assert_eq!(conn.deadline, Some(deadline));
    assert_eq!(PooledConnection::deadline(&conn), Some(deadline));
    drop(conn);
    let conn = pool.get().await.unwrap();
    assert_eq!(conn.deadline, None, "get() carries no deadline");
    assert_eq!(conn.handed_out, 2, "on_hand_out before every hand-out");
    assert_eq!(PooledConnection::deadline(&conn), None);
}

#[tokio::test(start_paused = true)]
async fn get_until_waits_no_longer_than_its_deadline() {
    let m = Scripted::default();
    let pool = pool_with(&m, |b| {
        b.max_size(1).checkout_timeout(Duration::from_secs(10))
    });
    let held = pool.get().await.unwrap();
    let start = tokio::time::Instant::now();
    let err = pool
        .get_until(start + Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    // A later deadline than checkout_timeout: the timeout still holds.
    let start = tokio::time::Instant::now();
    let err = pool
        .get_until(start + Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(start.elapsed(), Duration::from_secs(10));
    // A deadline already passed: fails at once.
    drop(held);
    let err = pool
        .get_until(tokio::time::Instant::now())
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
}

#[tokio::test(start_paused = true)]
async fn get_until_bounds_the_validation_ping() {
    let m = Scripted::default();
    let pool = pool_with(&m, |b| b.validation_timeout(Duration::from_secs(5)));
    drop(pool.get().await.unwrap());
    tokio::time::advance(Duration::from_secs(5)).await;
    m.validates([Step::Never]);
    let start = tokio::time::Instant::now();
    let err = pool
        .get_until(start + Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    settle().await;
    assert_eq!(
        pool.status().open,
        0,
        "the half-pinged connection is closed"
    );
}

/// A validation ping that times out is an `Unresponsive` event: the checkout
/// and the checkouts waiting at that moment fail fast with it, connections
/// handed out before are retired at return, and a checkout that begins
/// later waits for a round trip of its own, which clears it.
#[tokio::test(start_paused = true)]
async fn a_validation_timeout_black_holes_the_pool_until_a_round_trip_succeeds() {
    let m = Scripted::default();
    let (pool, rec) = observed(&m, |b| {
        b.max_size(2)
            .validation_timeout(Duration::from_secs(1))
            .checkout_timeout(Duration::from_secs(30))
    });
    let a = pool.get().await.unwrap();
    let b = pool.get().await.unwrap();
    drop(b);
    tokio::time::advance(Duration::from_secs(5)).await;
    m.validates([Step::Never]);
    let start = tokio::time::Instant::now();
    let p = pool.clone();
    let pinging = tokio::spawn(async move { p.get().await.map(|c| c.id) });
    settle().await; // it claimed b and is in its ping
    let p = pool.clone();
    let waiting = tokio::spawn(async move { p.get().await.map(|c| c.id) });
    settle().await; // no connection and no room: it waits
    let err = pinging.await.unwrap().unwrap_err();
    assert!(matches!(err, PoolError::Unresponsive { .. }), "{err}");
    assert_eq!(start.elapsed(), Duration::from_secs(1), "one ping timeout");
    let err = waiting.await.unwrap().unwrap_err();
    assert!(matches!(err, PoolError::Unresponsive { .. }), "{err}");
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(1),
        "failed fast with it"
    );
    assert_eq!(rec.count("call_failed validate Unresponsive"), 1);
    // The connection handed out before is retired at return.
    drop(a);
    assert_eq!(pool.status().open, 0);
    assert_eq!(pool.status().closed.stale, 1);
    // A checkout that begins now does not fail with the stale cause: it
    // connects (the server answers again), which clears the black hole.
    let conn = pool.get().await.expect("a round trip of its own");
    drop(conn);
    check(&pool);
}

/// The coordinator's finding on main: after the server came back, a fresh
/// checkout failed at once with the black-hole error of a borrower's
/// command that had timed out before it began.
#[tokio::test(start_paused = true)]
async fn a_checkout_after_the_server_is_back_does_not_fail_with_a_stale_unresponsive_cause() {
    let m = Scripted::default();
    let pool = pool_with(&m, |b| b.max_size(1));
    let mut held = pool.get().await.unwrap();
    held.report_error(&super::script::ScriptError(ErrorClass::Unresponsive));
    drop(held);
    let conn = pool
        .get_timeout(Duration::from_secs(10))
        .await
        .expect("no stale Unresponsive");
    assert_eq!(conn.id, 2);
}

/// While the server stays frozen, a checkout that begins after the event
/// waits for a round trip of its own for at most `validation_timeout`, then
/// fails with Unresponsive, well before its own timeout.
#[tokio::test(start_paused = true)]
async fn a_later_checkout_on_a_frozen_server_fails_after_validation_timeout() {
    let m = Scripted::default();
    let pool = pool_with(&m, |b| {
        b.max_size(1)
            .validation_timeout(Duration::from_secs(1))
            .connect_timeout(Duration::from_secs(10))
            .checkout_timeout(Duration::from_secs(30))
    });
    let mut held = pool.get().await.unwrap();
    held.report_error(&super::script::ScriptError(ErrorClass::Unresponsive));
    drop(held);
    m.connects([Step::Never]);
    let start = tokio::time::Instant::now();
    let err = pool.get().await.unwrap_err();
    assert!(matches!(err, PoolError::Unresponsive { .. }), "{err}");
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(1),
        "validation_timeout"
    );
}

/// A manager reporting `Unresponsive` (a command deadline) black-holes the
/// pool the same way; waiting checkouts fail fast.
#[tokio::test(start_paused = true)]
async fn a_reported_unresponsive_error_fails_waiting_checkouts_fast() {
    let m = Scripted::default();
    let pool = pool_with(&m, |b| {
        b.max_size(1).checkout_timeout(Duration::from_secs(30))
    });
    let mut held = pool.get().await.unwrap();
    let p = pool.clone();
    let waiter = tokio::spawn(async move { p.get().await.map(|c| c.id) });
    settle().await;
    let class = held.report_error(&super::script::ScriptError(ErrorClass::Unresponsive));
    assert_eq!(class, ErrorClass::Unresponsive);
    settle().await;
    let res = waiter.await.unwrap();
    assert!(
        matches!(res, Err(PoolError::Unresponsive { .. })),
        "{res:?}"
    );
    drop(held);
    assert_eq!(pool.status().open, 0, "the connection is discarded");
    // One successful connect clears it.
    let _ = pool.get().await;
    settle().await;
    assert!(pool.get().await.is_ok());
}

/// `close()` returns within `close_timeout` even when the server is frozen
/// under a reset and a checkout is never returned.
#[tokio::test(start_paused = true)]
async fn close_is_bounded_by_close_timeout() {
    let m = Scripted::default();
    m.resets([Step::Never]);
    let pool = pool_with(&m, |b| {
        b.reset_timeout(Duration::from_secs(3600))
            .close_timeout(Duration::from_secs(2))
    });
    let mut dirty = pool.get().await.unwrap();
    let held = pool.get().await.unwrap();
    dirty.probe = crate::Probe::NeedsReset;
    drop(dirty);
    settle().await;
    let start = tokio::time::Instant::now();
    pool.close().await;
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    drop(held);
    assert_eq!(pool.status().in_use, 0);
}

/// Waiting checkouts have no timer of their own: the pool's sweeper wakes
/// each at its own deadline, including a deadline earlier than those of
/// the waiters before it.
#[tokio::test(start_paused = true)]
async fn every_waiter_times_out_at_its_own_deadline() {
    let m = Scripted::default();
    let pool = pool_with(&m, |b| {
        b.max_size(1).checkout_timeout(Duration::from_secs(5))
    });
    let held = pool.get().await.unwrap();
    let start = tokio::time::Instant::now();
    let mut waiters = Vec::new();
    for i in 0..3u64 {
        let p = pool.clone();
        waiters.push(tokio::spawn(async move {
            let r = p.get().await;
            (r.is_err_and(|e| e.is_timeout()), start.elapsed())
        }));
        tokio::time::sleep(Duration::from_secs(1)).await;
        let _ = i;
    }
    // Queued last, due first.
    let p = pool.clone();
    let early = tokio::spawn(async move {
        let r = p.get_until(start + Duration::from_millis(3500)).await;
        (r.is_err_and(|e| e.is_timeout()), start.elapsed())
    });
    assert_eq!(early.await.unwrap(), (true, Duration::from_millis(3500)));
    for (i, w) in waiters.into_iter().enumerate() {
        let expected = Duration::from_secs(5 + i as u64);
        assert_eq!(w.await.unwrap(), (true, expected));
    }
    drop(held);
    check(&pool);
}

/// The sweeper that enforces waiters' deadlines lives on one runtime; when
/// that runtime shuts down, a waiter on another runtime still times out on
/// time (it starts a sweeper on its own).
#[test]
fn a_waiter_keeps_its_deadline_after_the_sweepers_runtime_shut_down() {
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap()
    };
    let m = Scripted::default();
    let first = runtime();
    let (pool, held) = first.block_on(async {
        let pool = crate::Pool::builder(m.clone())
            .max_size(1)
            .checkout_timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let held = pool.get().await.unwrap();
        // A waiter here starts the sweeper on this runtime.
        assert!(pool.get().await.unwrap_err().is_timeout());
        (pool, held)
    });
    drop(first);
    runtime().block_on(async {
        let start = tokio::time::Instant::now();
        let err = pool.get().await.unwrap_err();
        assert!(err.is_timeout(), "{err}");
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    });
    drop(held);
}
