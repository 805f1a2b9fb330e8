//! Fault suite, who holds what: F6 (a leaked or long-held checkout, the
//! origin incident's root cause) and F7 (an exhausted pool), against private
//! MariaDB servers. See `docs/failure-modes.md`.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Events, Kind};
use poolwarden::CheckoutInfo;
use poolwarden_mysql::mysql_async::prelude::Queryable;

/// This file's name as it appears in `Location`s.
const THIS_FILE: &str = "faults_leak.rs";

fn is_here(info: &CheckoutInfo, line: u32) -> bool {
    info.location.file().ends_with(THIS_FILE) && info.location.line() == line
}

/// What became of the pool after the leaked connection came back.
struct LeakOutcome {
    status: poolwarden::PoolStatus,
    /// Why the pool closed its healthy idle connection, if it did.
    healthy_fate: Option<poolwarden::CloseReason>,
}

/// F6: a checkout held past `leak_threshold` is reported with this file's
/// name and line and its label; with `wait_timeout = 3` the near-timeout
/// warning arrives while the connection still answers. Then the origin
/// incident: the holder keeps the connection idle until the server closes
/// it, and finally returns it: the return is silent and reported as
/// resolved, and the next borrowers get working connections, never the dead
/// session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f6_leak_is_reported_with_location_and_label_and_warned_before_the_server_timeout() {
    let _serial = common::serial().await;
    leak_past_wait_timeout().await;
}

/// F6 (continued): a connection killed by the server's `wait_timeout` while
/// leaked is not a server restart: once it comes back, the pool must not
/// retire its healthy connections (no pool-wide invalidation).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f6_connection_leaked_past_wait_timeout_does_not_invalidate_the_pool() {
    let _serial = common::serial().await;
    let LeakOutcome {
        status,
        healthy_fate,
    } = leak_past_wait_timeout().await;
    assert_eq!(
        status.invalidations, 0,
        "a leaked connection killed by wait_timeout was taken for a server restart, \
         and the healthy idle connection was retired with it ({healthy_fate:?}): {status:?}"
    );
    assert_eq!(healthy_fate, None, "{status:?}");
    assert_eq!(
        status.closed.validation_failed, 0,
        "the dead connection went back idle and was only found by a ping: {status:?}"
    );
}

/// The origin incident, end to end (for the two F6 tests above).
async fn leak_past_wait_timeout() -> LeakOutcome {
    let db = common::start_mariadb(&["--wait-timeout=3"]);
    let events = Events::new();
    let pool = common::builder(&db.url(), &events)
        .max_size(2)
        .leak_threshold(Some(Duration::from_secs(1)))
        .maintenance_interval(Duration::from_millis(50))
        .build()
        .unwrap();

    // A healthy connection that stays idle in the pool throughout (the
    // pool's keepalive keeps it alive below wait_timeout).
    let (mut healthy, other) = (pool.get().await.unwrap(), pool.get().await.unwrap());
    let healthy_session = common::session_id(&mut healthy).await;
    let healthy_id = healthy.connection_id();
    drop(healthy);
    drop(other); // returned last: LIFO hands it out next

    let (get, line) = (pool.get(), line!());
    let mut c = get.await.unwrap();
    c.label("f6-background-job");
    let checkout_id = c.checkout_id();
    let leaked_id = c.connection_id();
    assert_ne!(leaked_id, healthy_id, "LIFO hands out the last returned");
    assert_eq!(c.server_idle_timeout(), Some(Duration::from_secs(3)));
    let session = common::session_id(&mut c).await;

    // The live list names the holder at once.
    let live = pool.checkouts();
    assert_eq!(live.len(), 1, "{live:?}");
    assert!(is_here(&live[0], line), "{live:?}");
    assert_eq!(live[0].label.as_deref(), Some("f6-background-job"));

    // The leak report.
    let leak = events
        .wait_for(
            Duration::from_secs(10),
            |r| matches!(&r.kind, Kind::Leak(i) if i.id == checkout_id),
        )
        .await
        .expect("no leak report");
    let Kind::Leak(info) = &leak.kind else {
        unreachable!()
    };
    assert!(
        is_here(info, line),
        "leak reported at {} instead of {THIS_FILE}:{line}",
        info.location
    );
    assert_eq!(info.label.as_deref(), Some("f6-background-job"));
    assert!(info.held_for >= Duration::from_secs(1), "{info:?}");
    assert_eq!(pool.status().leaks, 1);

    // The warning that the server's idle timeout is near, while the
    // connection still works.
    let near = events
        .wait_for(
            Duration::from_secs(10),
            |r| matches!(&r.kind, Kind::NearServerTimeout(i) if i.id == checkout_id),
        )
        .await
        .expect("no near-server-timeout warning");
    let Kind::NearServerTimeout(near_info) = &near.kind else {
        unreachable!()
    };
    assert!(is_here(near_info, line), "{near_info:?}");
    assert_eq!(near_info.label.as_deref(), Some("f6-background-job"));
    assert_eq!(
        common::select_42(&mut c)
            .await
            .expect("the warned connection still answers"),
        Some(42)
    );

    // The origin incident: the holder keeps it idle until the server
    // closes it.
    let gone = common::poll_until(Duration::from_secs(15), || {
        !common::server_threads(&db).contains(&session)
    })
    .await;
    assert!(gone, "the server never closed the idle session {session}");
    let dead_at = Instant::now();
    assert!(near.at < dead_at);

    let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(c)));
    assert!(dropped.is_ok(), "returning the dead connection panicked");
    let resolved = events
        .wait_for(
            Duration::from_secs(5),
            |r| matches!(&r.kind, Kind::LeakResolved(i) if i.id == checkout_id),
        )
        .await
        .expect("no leak-resolved report");
    let Kind::LeakResolved(resolved_info) = &resolved.kind else {
        unreachable!()
    };
    assert!(is_here(resolved_info, line), "{resolved_info:?}");
    assert!(pool.checkouts().is_empty());
    let after_return = pool.status();

    // The next borrowers get working connections, never the dead session.
    let (mut a, mut b) = (pool.get().await.unwrap(), pool.get().await.unwrap());
    for n in [&mut a, &mut b] {
        assert_eq!(common::select_42(n).await.unwrap(), Some(42));
        assert_ne!(
            common::session_id(n).await,
            session,
            "the dead session was handed out"
        );
    }
    drop((a, b));
    let status = pool.status();
    let leaked_fate = events
        .discarded()
        .into_iter()
        .find(|(_, id, _)| *id == leaked_id)
        .map(|(_, _, reason)| reason);
    let healthy_fate = events
        .discarded()
        .into_iter()
        .find(|(_, id, _)| *id == healthy_id)
        .map(|(_, _, reason)| reason);
    eprintln!(
        "F6: leak reported after {:?} held; near-timeout warning after {:?} held; the server \
         closed the session {:?} after the warning. Right after the return: idle={} closed={:?}. \
         Leaked connection closed as {leaked_fate:?}; healthy idle connection (session \
         {healthy_session}) closed as {healthy_fate:?}; invalidations={}",
        info.held_for,
        near_info.held_for,
        dead_at.duration_since(near.at),
        after_return.idle,
        after_return.closed,
        status.invalidations
    );
    assert!(
        leaked_fate.is_some(),
        "the dead connection is still in the pool: {status:?}"
    );
    LeakOutcome {
        status,
        healthy_fate,
    }
}

/// F7: a pool of two held by two labelled checkouts; a third checkout with a
/// 500 ms timeout fails with `Timeout`, and its message names both holders'
/// file:line and labels.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f7_exhausted_pool_timeout_names_the_holders() {
    let db = common::shared_mariadb();
    let events = Events::new();
    let pool = common::builder(&db.url(), &events)
        .max_size(2)
        .build()
        .unwrap();

    let (get_a, line_a) = (pool.get(), line!());
    let mut a = get_a.await.unwrap();
    a.label("nightly-report");
    let (get_b, line_b) = (pool.get(), line!());
    let mut b = get_b.await.unwrap();
    b.label("request-7f3a");

    let started = Instant::now();
    let err = pool
        .get_timeout(Duration::from_millis(500))
        .await
        .expect_err("a third checkout from an exhausted pool of two succeeded");
    let waited = started.elapsed();
    assert!(err.is_timeout(), "expected a timeout, got {err}");
    assert!(
        waited >= Duration::from_millis(500) && waited < Duration::from_millis(5500),
        "timed out after {waited:?}"
    );
    let msg = err.to_string();
    for needle in [
        format!("{THIS_FILE}:{line_a}:"),
        format!("{THIS_FILE}:{line_b}:"),
        "(nightly-report)".to_owned(),
        "(request-7f3a)".to_owned(),
        "2/2 connections in use".to_owned(),
    ] {
        assert!(msg.contains(&needle), "{needle:?} missing from: {msg}");
    }
    let details = err.as_timeout().unwrap();
    assert_eq!(details.holders.len(), 2);
    assert_eq!(details.status.in_use, 2);
    assert_eq!(pool.status().timeouts, 1);
    // The holders are unaffected.
    assert_eq!(common::select_42(&mut a).await.unwrap(), Some(42));
    assert_eq!(common::select_42(&mut b).await.unwrap(), Some(42));
    eprintln!("F7: timed out after {waited:?}: {msg}");
}

/// F7: waiters on an exhausted pool are served first come, first served.
/// (A current-thread runtime, so that "counted as waiting" implies "queued".)
#[tokio::test(flavor = "current_thread")]
async fn f7_waiters_are_served_first_come_first_served() {
    let db = common::shared_mariadb();
    let events = Events::new();
    let pool = common::builder(&db.url(), &events)
        .max_size(1)
        .build()
        .unwrap();
    let holder = pool.get().await.unwrap();

    let order = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..8_u32 {
        let p = pool.clone();
        let order = Arc::clone(&order);
        tasks.push(tokio::spawn(async move {
            let mut c = p.get().await.expect("waiter");
            order.lock().push(i);
            assert_eq!(common::select_42(&mut c).await.unwrap(), Some(42));
        }));
        let queued =
            common::poll_until(Duration::from_secs(5), || pool.status().waiting == i + 1).await;
        assert!(queued, "waiter {i} never queued: {:?}", pool.status());
    }
    drop(holder);
    for t in tasks {
        t.await.expect("waiter task");
    }
    assert_eq!(*order.lock(), (0..8).collect::<Vec<_>>());
}

/// F7: overflow connections (beyond `max_size`, up to `max_overflow`) are
/// closed when returned while the pool already has `max_size` idle.
/// Borrowers that leave the session clean (no reset needed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f7_overflow_connections_are_closed_when_returned() {
    overflow_closed_on_return(None).await;
}

/// F7: the same when each borrower changed session state, so every return
/// goes through a reset first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f7_overflow_connections_needing_a_reset_are_closed_when_returned() {
    overflow_closed_on_return(Some("SET @f7 = 1")).await;
}

async fn overflow_closed_on_return(dirty: Option<&str>) {
    let db = common::shared_mariadb();
    let events = Events::new();
    let pool = common::builder(&db.url(), &events)
        .max_size(2)
        .max_overflow(2)
        .build()
        .unwrap();

    let mut held = Vec::new();
    for _ in 0..4 {
        let mut c = pool.get().await.unwrap();
        assert_eq!(common::select_42(&mut c).await.unwrap(), Some(42));
        if let Some(sql) = dirty {
            c.query_drop(sql).await.unwrap();
        }
        held.push(c);
    }
    assert_eq!(pool.status().open, 4);
    assert_eq!(pool.status().overflow, 2);
    drop(held);

    // The returns settle (resets run in the background).
    let settled = common::poll_until(Duration::from_secs(10), || {
        let s = pool.status();
        s.in_use == 0 && s.open == s.idle
    })
    .await;
    assert!(settled, "{:?}", pool.status());
    let status = pool.status();
    assert_eq!(
        (status.open, status.idle, status.closed.overflow),
        (2, 2, 2),
        "two overflow connections should have been closed on return \
         (borrowers ran {dirty:?}): {status:?}"
    );
}
