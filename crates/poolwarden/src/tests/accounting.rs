//! Slot accounting under cancellation, aborts and contention: never more
//! than `max_open` connections, never a lost slot, strict FIFO.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::script::{Scripted, Step};
use super::{check, pool_with, settle};
use crate::{BuildError, Pool, PoolConfig, Probe};

#[tokio::test(start_paused = true)]
async fn waiters_are_served_first_come_first_served() {
    let m = Scripted::default();
    let pool = pool_with(&m, |b| b.max_size(1));
    let held = pool.get().await.unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..5 {
        let p = pool.clone();
        let order = order.clone();
        tasks.push(tokio::spawn(async move {
            let c = p.get().await.unwrap();
            order.lock().push(i);
            tokio::task::yield_now().await;
            drop(c);
        }));
        settle().await; // task i is queued before task i+1
    }
    drop(held);
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(*order.lock(), vec![0, 1, 2, 3, 4]);
}

#[tokio::test(start_paused = true)]
async fn a_returning_task_cannot_barge_ahead_of_a_waiter() {
    let m = Scripted::default();
    let pool = pool_with(&m, |b| b.max_size(1));
    let conn = pool.get().await.unwrap();
    let p = pool.clone();
    let waiter = tokio::spawn(async move { p.get().await.map(|c| c.id) });
    settle().await;
    drop(conn);
    // The returned connection is already promised to the waiter.
    assert!(pool.try_get().is_err());
    assert_eq!(waiter.await.unwrap().unwrap(), 1);
}

#[tokio::test(start_paused = true)]
async fn cancelled_checkouts_lose_nothing() {
    let m = Scripted::default();
    m.connects((0..20).map(|_| Step::Slow(Duration::from_millis(30))));
    let pool = pool_with(&m, |b| b.max_size(3));
    let mut tasks = Vec::new();
    for i in 0..30u64 {
        let p = pool.clone();
        tasks.push(tokio::spawn(async move {
            let c = p.get().await.unwrap();
            tokio::time::sleep(Duration::from_millis(i % 7)).await;
            drop(c);
        }));
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    for (i, t) in tasks.iter().enumerate() {
        if i % 3 == 0 {
            t.abort();
        }
    }
    for t in tasks {
        let _ = t.await;
    }
    settle().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let s = pool.status();
    assert_eq!((s.waiting, s.in_use, s.connecting), (0, 0, 0), "{s:?}");
    assert_eq!(
        s.open as usize,
        m.live(),
        "every open connection is accounted for"
    );
    assert!(m.max_live() <= 3);
    check(&pool);
    // Every slot is usable again.
    let all: Vec<_> = futures_all(&pool, 3).await;
    assert_eq!(all.len(), 3);
}

async fn futures_all(pool: &Pool<Scripted>, n: usize) -> Vec<crate::PooledConnection<Scripted>> {
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(pool.get().await.unwrap());
    }
    v
}

#[tokio::test(start_paused = true)]
async fn a_checkout_cancelled_during_validation_closes_that_connection() {
    let m = Scripted::default();
    let pool = pool_with(&m, |b| b.max_size(1));
    drop(pool.get().await.unwrap());
    tokio::time::advance(Duration::from_secs(5)).await;
    m.validates([Step::Slow(Duration::from_secs(1))]);
    let res = tokio::time::timeout(Duration::from_millis(100), pool.get()).await;
    assert!(res.is_err(), "cancelled mid-ping");
    let s = pool.status();
    assert_eq!((s.open, s.closed.validation_failed), (0, 1));
    assert_eq!(m.live(), 0);
    assert_eq!(pool.get().await.unwrap().id, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contention_with_aborts_keeps_every_invariant() {
    let m = Scripted::default();
    let pool = pool_with(&m, |b| {
        b.max_size(4)
            .max_overflow(2)
            .checkout_timeout(Duration::from_secs(30))
    });
    let mut tasks = Vec::new();
    for i in 0..64u32 {
        let p = pool.clone();
        tasks.push(tokio::spawn(async move {
            for j in 0..200u32 {
                let mut c = p.get().await.unwrap();
                match (i + j) % 17 {
                    0 => c.probe = Probe::NeedsReset,
                    1 => c.probe = Probe::Corrupt,
                    2 => c.invalidate(),
                    _ => {}
                }
                if j % 5 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        }));
    }
    for (i, t) in tasks.iter().enumerate() {
        if i % 9 == 0 {
            t.abort();
        }
    }
    for t in tasks {
        let _ = t.await;
    }
    // Resets finish in the background.
    for _ in 0..100 {
        if pool.status().in_use == 0 && pool.status().background == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let s = pool.status();
    assert_eq!((s.in_use, s.waiting, s.connecting), (0, 0, 0), "{s:?}");
    assert_eq!(s.open as usize, m.live());
    assert!(m.max_live() <= 6, "max live {}", m.max_live());
    check(&pool);
}

#[test]
fn build_rejects_nonsense_with_a_clear_error() {
    let m = Scripted::default();
    let err = Pool::builder(m.clone()).max_size(0).build().unwrap_err();
    assert_eq!(err, BuildError::ZeroSize);
    assert!(err.to_string().contains("set max_size to 1"));
    let err = Pool::builder(m.clone())
        .max_lifetime(Some(Duration::from_secs(1)))
        .validation_timeout(Duration::from_secs(2))
        .build()
        .unwrap_err();
    assert!(
        matches!(
            err,
            BuildError::TooShort {
                field: "max_lifetime",
                ..
            }
        ),
        "{err}"
    );
    let err = Pool::builder(m.clone()).min_idle(20).build().unwrap_err();
    assert!(matches!(err, BuildError::MinIdleAboveMax { .. }));
    let err = Pool::builder(m.clone())
        .lifetime_jitter(2.0)
        .build()
        .unwrap_err();
    assert!(matches!(err, BuildError::BadJitter(_)));
    let err = Pool::builder(m)
        .checkout_timeout(Duration::ZERO)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("checkout_timeout"));
}

#[test]
fn config_round_trips_through_serde_with_human_durations() {
    let json = r#"{"max_size": 15, "max_overflow": 5, "checkout_timeout": "3s", "max_lifetime": "5m", "idle_timeout": null}"#;
    let cfg: PoolConfig = serde_json::from_str(json).unwrap();
    assert_eq!(cfg.max_size, 15);
    assert_eq!(cfg.checkout_timeout, Duration::from_secs(3));
    assert_eq!(cfg.max_lifetime, Some(Duration::from_secs(300)));
    assert_eq!(cfg.idle_timeout, None);
    assert_eq!(
        cfg.validation_bypass,
        Duration::from_millis(500),
        "defaults fill the rest"
    );
    let back: PoolConfig = serde_json::from_str(&serde_json::to_string(&cfg).unwrap()).unwrap();
    assert_eq!(back, cfg);
    let bad = serde_json::from_str::<PoolConfig>(r#"{"max_sise": 3}"#).unwrap_err();
    assert!(bad.to_string().contains("max_sise"), "{bad}");
}

#[tokio::test(start_paused = true)]
async fn close_fails_waiters_and_closes_returns() {
    let m = Scripted::default();
    let pool = pool_with(&m, |b| b.max_size(1));
    let held = pool.get().await.unwrap();
    let p = pool.clone();
    let waiter = tokio::spawn(async move { p.get().await.map(|_| ()) });
    settle().await;
    let p = pool.clone();
    let closing = tokio::spawn(async move { p.close().await });
    settle().await;
    assert!(matches!(
        waiter.await.unwrap(),
        Err(crate::PoolError::Closed)
    ));
    drop(held);
    closing.await.unwrap();
    assert_eq!(pool.status().open, 0);
    assert_eq!(m.live(), 0);
    assert!(matches!(pool.get().await, Err(crate::PoolError::Closed)));
}

#[tokio::test(start_paused = true)]
async fn maintenance_keeps_min_idle_and_pings_idle_connections() {
    let m = Scripted::default();
    let pool = pool_with(&m, |b| {
        b.max_size(4)
            .min_idle(2)
            .keepalive_interval(Some(Duration::from_secs(30)))
    });
    pool.warm_up().await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(pool.status().idle, 2);
    tokio::time::sleep(Duration::from_secs(40)).await;
    assert!(m.count_validates() >= 2, "both idle connections pinged");
    assert_eq!(pool.status().closed.total(), 0);
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_closes_idle_connections_above_min_idle() {
    let m = Scripted::default();
    let pool = pool_with(&m, |b| {
        b.max_size(3)
            .min_idle(1)
            .idle_timeout(Some(Duration::from_secs(60)))
            .keepalive_interval(None)
    });
    let v = futures_all(&pool, 3).await;
    drop(v);
    tokio::time::sleep(Duration::from_secs(61)).await;
    let s = pool.status();
    assert_eq!((s.open, s.closed.idle_timeout), (1, 2), "{s:?}");
}

#[test]
fn bookkeeping_per_connection_stays_under_256_bytes() {
    // One slot (facts + checkout record, behind its lock), one free-list
    // entry, and the idle entry's slot index.
    let per_connection = std::mem::size_of::<crate::slots::SlotCell>()
        + std::mem::size_of::<u32>()
        + 3 * std::mem::size_of::<usize>();
    eprintln!("bookkeeping per connection: {per_connection} bytes");
    assert!(per_connection < 256, "{per_connection} bytes");
}
