//! The return path: clean connections go straight back; dirty ones are reset
//! off the caller's path; broken ones are closed quietly (F4, F5, F13).

use std::time::Duration;

use super::script::{Scripted, Step};
use super::{check, observed, pool_with, settle};
use crate::{ErrorClass, PooledConnection, Probe};

#[tokio::test(start_paused = true)]
async fn a_connection_returned_mid_protocol_is_closed_not_reused() {
    let m = Scripted::default();
    let pool = pool_with(&m, |b| b.max_size(1));
    let mut conn = pool.get().await.unwrap();
    conn.probe = Probe::Corrupt; // a cancelled query
    drop(conn);
    assert_eq!(pool.status().closed.corrupt, 1);
    let conn = pool.get().await.unwrap();
    assert_eq!(conn.id, 2);
    assert_eq!(m.count_resets(), 0, "never reset, never handed out");
}

#[tokio::test(start_paused = true)]
async fn dirty_connection_is_reset_in_the_background_then_reused() {
    let m = Scripted::default();
    let pool = pool_with(&m, |b| b.max_size(1));
    let mut conn = pool.get().await.unwrap();
    conn.probe = Probe::NeedsReset; // an open transaction
    drop(conn);
    let conn = pool.get().await.unwrap();
    assert_eq!(conn.id, 1, "reset, then handed to the waiting checkout");
    assert_eq!(conn.probe, Probe::Clean);
    assert_eq!(m.count_resets(), 1);
    assert_eq!(pool.status().resets, 1);
}

#[tokio::test(start_paused = true)]
async fn failed_reset_is_quiet_and_counted() {
    let m = Scripted::default();
    m.resets([Step::Err(ErrorClass::Disconnect)]);
    let (pool, rec) = observed(&m, |b| b.max_size(1));
    let mut conn = pool.get().await.unwrap();
    conn.probe = Probe::NeedsReset;
    drop(conn); // must not panic nor block
    settle().await;
    let s = pool.status();
    assert_eq!(s.closed.reset_failed, 1);
    assert_eq!((s.open, s.idle), (0, 0), "nothing returned to idle");
    assert_eq!(
        rec.count("invalidated"),
        1,
        "a disconnect during reset invalidates"
    );
    check(&pool);
}

#[tokio::test(start_paused = true)]
async fn hung_reset_is_bounded() {
    let m = Scripted::default();
    m.resets([Step::Never]);
    let pool = pool_with(&m, |b| b.max_size(1).reset_timeout(Duration::from_secs(1)));
    let mut conn = pool.get().await.unwrap();
    conn.probe = Probe::NeedsReset;
    drop(conn);
    // The next checkout waits for the reset to give up, then gets a new one.
    let conn = pool.get().await.unwrap();
    assert_eq!(conn.id, 2);
    assert_eq!(pool.status().closed.reset_failed, 1);
}

#[tokio::test(start_paused = true)]
async fn dirty_connection_held_past_server_timeout_is_closed_without_reset() {
    let m = Scripted::default();
    *m.0.server_idle_timeout.lock() = Some(Duration::from_secs(5));
    let pool = pool_with(&m, |b| b.max_size(1).leak_threshold(None));
    let mut conn = pool.get().await.unwrap();
    conn.probe = Probe::NeedsReset;
    tokio::time::advance(Duration::from_secs(6)).await;
    drop(conn);
    settle().await;
    assert_eq!(
        m.count_resets(),
        0,
        "no ROLLBACK on a connection the server has likely closed"
    );
    assert_eq!(pool.status().closed.server_idle_timeout, 1);
}

#[tokio::test(start_paused = true)]
async fn panicking_holder_discards_the_connection() {
    let m = Scripted::default();
    let pool = pool_with(&m, |b| b.max_size(1));
    let p = pool.clone();
    let res = tokio::spawn(async move {
        let _conn = p.get().await.unwrap();
        panic!("handler bug");
    })
    .await;
    assert!(res.is_err());
    assert_eq!(pool.status().closed.corrupt, 1);
    assert_eq!(pool.get().await.unwrap().id, 2);
}

#[tokio::test(start_paused = true)]
async fn invalidate_and_detach() {
    let m = Scripted::default();
    let pool = pool_with(&m, |b| b.max_size(1));
    let mut conn = pool.get().await.unwrap();
    conn.invalidate();
    drop(conn);
    assert_eq!(pool.status().closed.invalidated, 1);
    let conn = pool.get().await.unwrap();
    let raw = PooledConnection::detach(conn);
    assert_eq!(raw.id, 2);
    assert_eq!(pool.status().open, 0, "the pool forgot it");
    assert_eq!(pool.get().await.unwrap().id, 3);
    check(&pool);
}

#[tokio::test(start_paused = true)]
async fn reported_disconnect_invalidates_once_per_generation() {
    let m = Scripted::default();
    let (pool, rec) = observed(&m, |b| b.max_size(3));
    let mut a = pool.get().await.unwrap();
    let mut b = pool.get().await.unwrap();
    let c = pool.get().await.unwrap();
    drop(c);
    let err = super::script::ScriptError(ErrorClass::Disconnect);
    assert_eq!(a.report_error(&err), ErrorClass::Disconnect);
    assert_eq!(b.report_error(&err), ErrorClass::Disconnect);
    drop(a);
    drop(b);
    let s = pool.status();
    assert_eq!(s.invalidations, 1, "one restart, one invalidation");
    assert_eq!(rec.count("invalidated"), 1);
    // The idle one (opened before) is retired at its next checkout.
    let d = pool.get().await.unwrap();
    assert_eq!(d.id, 4);
    assert_eq!(pool.status().closed.stale, 1);
}

#[tokio::test(start_paused = true)]
async fn overflow_connections_close_when_enough_are_idle() {
    let m = Scripted::default();
    let pool = pool_with(&m, |b| b.max_size(2).max_overflow(2));
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(pool.get().await.unwrap());
    }
    assert_eq!(pool.status().overflow, 2);
    held.clear();
    let s = pool.status();
    assert_eq!((s.open, s.idle, s.closed.overflow), (2, 2, 2));
    check(&pool);
}

#[tokio::test(start_paused = true)]
async fn a_clean_connection_held_past_the_server_timeout_is_closed_without_retiring_the_pool() {
    // F6 is not F2: the leaked connection is dropped, the healthy ones stay.
    let m = Scripted::default();
    *m.0.server_idle_timeout.lock() = Some(Duration::from_secs(5));
    // Keepalive (on by default) keeps the idle, healthy connection alive.
    let (pool, rec) = observed(&m, |b| b.max_size(2));
    let leaked = pool.get().await.unwrap();
    let healthy = pool.get().await.unwrap();
    drop(healthy);
    tokio::time::sleep(Duration::from_secs(6)).await;
    drop(leaked); // clean, but idle long enough for the server to close it
    let s = pool.status();
    assert_eq!(s.closed.server_idle_timeout, 1);
    assert_eq!((s.open, s.idle), (1, 1), "the healthy one stays");
    assert_eq!(s.closed.stale, 0);
    assert_eq!(s.invalidations, 0);
    assert_eq!(rec.count("invalidated"), 0);
    assert_eq!(m.count_resets(), 0);
}

#[tokio::test(start_paused = true)]
async fn overflow_connections_needing_a_reset_close_when_enough_are_idle() {
    let m = Scripted::default();
    let pool = pool_with(&m, |b| b.max_size(2).max_overflow(2));
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut c = pool.get().await.unwrap();
        c.probe = Probe::NeedsReset;
        held.push(c);
    }
    held.clear();
    settle().await;
    let s = pool.status();
    assert_eq!((s.open, s.idle, s.closed.overflow), (2, 2, 2), "{s:?}");
    check(&pool);
}

#[tokio::test(start_paused = true)]
async fn after_a_fork_the_child_forgets_inherited_connections_without_closing_them() {
    // A real fork needs `unsafe` (forbidden here); play the child's view by
    // making the pool believe it was created by another process.
    let m = Scripted::default();
    let (pool, rec) = observed(&m, |b| b.max_size(2));
    let a = pool.get().await.unwrap();
    let b = pool.get().await.unwrap();
    drop((a, b));
    assert_eq!(m.live(), 2);
    pool.shared.pid.store(
        std::process::id().wrapping_add(1),
        std::sync::atomic::Ordering::Relaxed,
    );
    let conn = pool.get().await.unwrap();
    assert_eq!(conn.id, 3, "a fresh connection, never a parent's");
    let s = pool.status();
    assert_eq!(s.closed.forked, 2, "{s:?}");
    assert_eq!(rec.count("invalidated Forked"), 1);
    // Forgotten, not dropped: the parent's sockets were never touched.
    assert_eq!(m.live(), 3);
    check(&pool);
}
