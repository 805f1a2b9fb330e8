//! The manager's own hooks: [`ServerSignal`](crate::ServerSignal) (a black
//! hole the manager found off the pool's calls) and `cut_in_flight` (at
//! `close_timeout`).

use std::time::Duration;

use super::script::Scripted;
use super::{check, observed, pool_with, settle};
use crate::PoolError;

/// A manager that finds the server silent (no `report_error` from the
/// borrower) black-holes the pool: a waiting checkout fails fast, the
/// connection handed out before is retired at return, and one round trip
/// of a later checkout clears it.
#[tokio::test(start_paused = true)]
async fn a_manager_signal_black_holes_the_pool_without_report_error() {
    let m = Scripted::default();
    let (pool, rec) = observed(&m, |b| {
        b.max_size(1).checkout_timeout(Duration::from_secs(30))
    });
    let held = pool.get().await.unwrap();
    let p = pool.clone();
    let waiter = tokio::spawn(async move { p.get().await.map(|c| c.id) });
    settle().await;
    let start = tokio::time::Instant::now();
    assert!(m.signal_unresponsive(), "the pool got it");
    let res = waiter.await.unwrap();
    assert!(
        matches!(res, Err(PoolError::Unresponsive { .. })),
        "{res:?}"
    );
    assert_eq!(start.elapsed(), Duration::ZERO, "failed fast");
    assert_eq!(rec.count("invalidated Unresponsive"), 1);
    drop(held);
    assert_eq!(pool.status().closed.stale, 1, "retired at return");
    let conn = pool.get().await.expect("a round trip of its own clears it");
    assert_eq!(conn.id, 2);
    drop(conn);
    check(&pool);
    // A closed pool, then a dropped one, takes no signal.
    pool.close().await;
    assert!(!m.signal_unresponsive());
    drop(pool);
    assert!(!m.signal_unresponsive());
}

/// `close()` asks the manager to cut the commands in flight once
/// `close_timeout` passes with a connection still checked out, and not when
/// everything came back in time.
#[tokio::test(start_paused = true)]
async fn close_cuts_in_flight_commands_at_close_timeout() {
    let m = Scripted::default();
    let pool = pool_with(&m, |b| b.close_timeout(Duration::from_secs(3)));
    let held = pool.get().await.unwrap();
    let start = tokio::time::Instant::now();
    pool.close().await;
    assert_eq!(start.elapsed(), Duration::from_secs(3));
    assert_eq!(m.count_cuts(), 1);
    drop(held);
    settle().await;
    assert_eq!(pool.status().open, 0);

    let m = Scripted::default();
    let pool = pool_with(&m, |b| b.close_timeout(Duration::from_secs(3)));
    let held = pool.get().await.unwrap();
    let p = pool.clone();
    let closing = tokio::spawn(async move { p.close().await });
    settle().await;
    drop(held);
    closing.await.unwrap();
    assert_eq!(m.count_cuts(), 0, "everything came back before the timeout");
}
