//! Checkout: reuse, bypass window, validation, retirement, timeouts.

use std::time::Duration;

use super::script::{Scripted, Step};
use super::{check, observed, pool_with, settle};
use crate::{CloseReason, ErrorClass, PoolError, Probe};

#[tokio::test(start_paused = true)]
async fn reuses_a_returned_connection_without_a_round_trip() {
    let m = Scripted::default();
    let pool = pool_with(&m, |b| b);
    for _ in 0..5 {
        let conn = pool.get().await.unwrap();
        assert_eq!(conn.id, 1);
    }
    assert_eq!(m.count_connects(), 1);
    assert_eq!(m.count_validates(), 0, "used within the bypass window");
    let s = pool.status();
    assert_eq!((s.open, s.idle, s.in_use, s.checkouts), (1, 1, 0, 5));
    check(&pool);
}

#[tokio::test(start_paused = true)]
async fn pings_only_after_the_bypass_window() {
    let m = Scripted::default();
    let pool = pool_with(&m, |b| b.validation_bypass(Duration::from_millis(500)));
    drop(pool.get().await.unwrap());
    tokio::time::advance(Duration::from_millis(400)).await;
    drop(pool.get().await.unwrap());
    assert_eq!(m.count_validates(), 0);
    // Measured from the last hand-out, not from the return: a checkout held
    // for a second leaves a connection that needs a ping.
    let held = pool.get().await.unwrap();
    tokio::time::advance(Duration::from_secs(1)).await;
    drop(held);
    drop(pool.get().await.unwrap());
    assert_eq!(m.count_validates(), 1);
}

#[tokio::test(start_paused = true)]
async fn failed_validation_is_replaced_within_the_same_checkout() {
    let m = Scripted::default();
    let (pool, rec) = observed(&m, |b| b);
    drop(pool.get().await.unwrap());
    tokio::time::advance(Duration::from_secs(5)).await;
    m.validates([Step::Err(ErrorClass::Broken)]);
    let conn = pool
        .get()
        .await
        .expect("a fresh connection replaces the dead one");
    assert_eq!(conn.id, 2);
    assert_eq!(pool.status().closed.validation_failed, 1);
    assert_eq!(
        rec.count("invalidated"),
        0,
        "a broken connection does not invalidate the pool"
    );
    drop(conn);
    check(&pool);
}

#[tokio::test(start_paused = true)]
async fn hung_validation_is_bounded_and_fails_fast_as_unresponsive() {
    let m = Scripted::default();
    let pool = pool_with(&m, |b| {
        b.validation_timeout(Duration::from_secs(1))
            .checkout_timeout(Duration::from_secs(5))
    });
    drop(pool.get().await.unwrap());
    tokio::time::advance(Duration::from_secs(5)).await;
    m.validates([Step::Never]);
    let start = tokio::time::Instant::now();
    let err = pool.get().await.unwrap_err();
    assert!(matches!(err, PoolError::Unresponsive { .. }), "{err}");
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(1),
        "validation_timeout"
    );
    assert_eq!(pool.status().closed.validation_failed, 1);
}

#[tokio::test(start_paused = true)]
async fn hung_connect_gives_a_timeout_error_on_time() {
    let m = Scripted::default();
    m.connects([Step::Never]);
    let pool = pool_with(&m, |b| {
        b.checkout_timeout(Duration::from_secs(3))
            .connect_timeout(Duration::from_secs(60))
            .max_lifetime(None)
    });
    let start = tokio::time::Instant::now();
    let err = pool.get().await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(start.elapsed(), Duration::from_secs(3));
    assert_eq!(pool.status().timeouts, 1);
}

#[tokio::test(start_paused = true)]
async fn timeout_error_names_the_longest_holders() {
    let m = Scripted::default();
    let pool = pool_with(&m, |b| {
        b.max_size(1).checkout_timeout(Duration::from_secs(2))
    });
    let mut held = pool.get().await.unwrap();
    let line = line!() - 1;
    held.label("GET /report 7f3a");
    tokio::time::advance(Duration::from_secs(300)).await;
    let err = pool.get().await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("1/1 connections in use"), "{text}");
    assert!(text.contains(&format!("checkout.rs:{line}")), "{text}");
    assert!(text.contains("GET /report 7f3a"), "{text}");
    assert!(text.contains("longest held: 302.0s"), "{text}");
    let t = err.as_timeout().unwrap();
    assert_eq!(t.holders.len(), 1);
    assert_eq!(t.status.waiting, 1);
}

#[tokio::test(start_paused = true)]
async fn connection_past_server_idle_timeout_is_retired_without_a_ping() {
    let m = Scripted::default();
    *m.0.server_idle_timeout.lock() = Some(Duration::from_secs(2));
    let pool = pool_with(&m, |b| b.keepalive_interval(None));
    drop(pool.get().await.unwrap());
    tokio::time::advance(Duration::from_secs(4)).await;
    let conn = pool.get().await.unwrap();
    assert_eq!(conn.id, 2);
    assert_eq!(m.count_validates(), 0, "retired, not pinged");
    assert_eq!(pool.status().closed.server_idle_timeout, 1);
}

#[tokio::test(start_paused = true)]
async fn a_socket_closed_while_idle_is_never_handed_out() {
    let m = Scripted::default();
    let pool = pool_with(&m, |b| b);
    drop(pool.get().await.unwrap());
    // The server closes it while it is idle, within the bypass window (no
    // ping due): the probe at checkout sees it.
    m.close_sockets();
    let conn = pool.get().await.unwrap();
    assert_eq!(conn.id, 2);
    assert_eq!(m.count_validates(), 0, "no ping needed to see it");
    assert_eq!(pool.status().closed.closed, 1);
}

#[tokio::test(start_paused = true)]
async fn a_socket_found_closed_at_return_is_discarded() {
    let m = Scripted::default();
    let pool = pool_with(&m, |b| b);
    let mut conn = pool.get().await.unwrap();
    conn.probe = Probe::Closed;
    drop(conn);
    assert_eq!(pool.status().closed.closed, 1);
    assert_eq!(pool.get().await.unwrap().id, 2);
}

#[tokio::test(start_paused = true)]
async fn try_get_never_waits() {
    let m = Scripted::default();
    let pool = pool_with(&m, |b| b.max_size(1));
    assert!(matches!(pool.try_get(), Err(PoolError::Busy)));
    let conn = pool.get().await.unwrap();
    assert!(matches!(pool.try_get(), Err(PoolError::Busy)));
    drop(conn);
    let again = pool.try_get().expect("an idle, recently used connection");
    assert_eq!(again.id, 1);
}

#[tokio::test(start_paused = true)]
async fn lifetime_retires_at_return_never_under_the_borrower() {
    let m = Scripted::default();
    let pool = pool_with(&m, |b| {
        b.max_lifetime(Some(Duration::from_secs(60)))
            .lifetime_jitter(0.0)
            .keepalive_interval(None)
    });
    let conn = pool.get().await.unwrap();
    // `sleep`, not `advance`: maintenance runs meanwhile, as in real life,
    // and keeps the clock reading that the return path uses.
    tokio::time::sleep(Duration::from_secs(120)).await;
    // Still usable while held.
    assert_eq!(conn.id, 1);
    drop(conn);
    assert_eq!(pool.status().closed.lifetime, 1);
    assert_eq!(pool.status().open, 0);
}

#[tokio::test(start_paused = true)]
async fn lifetime_jitter_spreads_retirement() {
    let m = Scripted::default();
    let pool = pool_with(&m, |b| {
        b.max_size(20)
            .max_lifetime(Some(Duration::from_secs(1000)))
            .lifetime_jitter(0.5)
    });
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(pool.get().await.unwrap());
    }
    let mut deadlines = std::collections::BTreeSet::new();
    for cell in pool.shared.inv.all_slots() {
        deadlines.insert(cell.lock().meta.retire_at);
    }
    assert!(
        deadlines.len() > 10,
        "retirements are spread: {deadlines:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn invalidate_all_retires_older_connections_lazily() {
    let m = Scripted::default();
    let pool = pool_with(&m, |b| b);
    let a = pool.get().await.unwrap();
    let b = pool.get().await.unwrap();
    drop(a);
    pool.invalidate_all();
    drop(b); // returned after the invalidation: closed
    settle().await;
    assert_eq!(pool.status().closed.stale, 1);
    let c = pool.get().await.unwrap(); // the idle one is stale too
    assert_eq!(c.id, 3);
    assert_eq!(pool.status().closed.stale, 2);
    assert_eq!(pool.status().invalidations, 1);
    drop(c);
    check(&pool);
    let _ = CloseReason::Stale;
}

#[tokio::test(start_paused = true)]
async fn a_zero_bypass_window_pings_every_checkout() {
    let m = Scripted::default();
    let pool = pool_with(&m, |b| b.validation_bypass(Duration::ZERO));
    for _ in 0..5 {
        drop(pool.get().await.unwrap());
    }
    assert_eq!(
        m.count_validates(),
        5,
        "every checkout, even of a just-opened connection"
    );
}
