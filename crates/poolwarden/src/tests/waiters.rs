//! The waiter queue (`waiters.rs`): a connection granted to a checkout
//! that is gone is handed on, cancelled waiters leave no trace, and a
//! checkout that loses the connection it was given keeps its turn.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::script::Scripted;
use super::{check, pool_with, settle};

#[tokio::test(start_paused = true)]
async fn a_connection_granted_to_a_cancelled_checkout_goes_to_the_next_waiter() {
    let m = Scripted::default();
    let pool = pool_with(&m, |b| b.max_size(1));
    let held = pool.get().await.unwrap();
    let p = pool.clone();
    let first = tokio::spawn(async move { p.get().await.map(|c| c.id) });
    settle().await;
    let p = pool.clone();
    let second = tokio::spawn(async move { p.get().await.map(|c| c.id) });
    settle().await;
    assert_eq!(pool.status().waiting, 2);
    // The return hands the connection to the first waiter, which is
    // cancelled before it runs: its place and its connection pass on.
    drop(held);
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    assert_eq!(second.await.unwrap().unwrap(), 1);
    settle().await;
    assert_eq!(m.count_connects(), 1, "nothing was lost, nothing reopened");
    let s = pool.status();
    assert_eq!((s.waiting, s.idle, s.in_use), (0, 1, 0));
    check(&pool);
}

#[tokio::test(start_paused = true)]
async fn checkouts_that_time_out_leave_no_trace_in_the_queue() {
    let m = Scripted::default();
    let pool = pool_with(&m, |b| b.max_size(1));
    let held = pool.get().await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let p = pool.clone();
        tasks.push(tokio::spawn(async move {
            p.get_timeout(Duration::from_millis(100)).await.map(drop)
        }));
    }
    settle().await;
    assert_eq!(pool.status().waiting, 200);
    check(&pool);
    for t in tasks {
        assert!(t.await.unwrap().is_err(), "timed out");
    }
    assert_eq!(pool.status().waiting, 0);
    check(&pool); // the abandoned places are counted and compacted
                  // The queue still serves, in order.
    let p = pool.clone();
    let late = tokio::spawn(async move { p.get().await.map(|c| c.id) });
    settle().await;
    drop(held);
    assert_eq!(late.await.unwrap().unwrap(), 1);
    check(&pool);
}

#[tokio::test(start_paused = true)]
async fn a_checkout_whose_connection_must_retire_keeps_its_turn() {
    let m = Scripted::default();
    let pool = pool_with(&m, |b| b.max_size(1));
    let held = pool.get().await.unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for name in ["first", "second"] {
        let p = pool.clone();
        let order = order.clone();
        tasks.push(tokio::spawn(async move {
            let c = p.get().await.unwrap();
            order.lock().push((name, c.id));
            tokio::task::yield_now().await;
            drop(c);
        }));
        settle().await; // "first" is queued before "second"
    }
    // Granted to "first", whose probe then finds the socket closed: it
    // closes that connection and waits again, at the front of the queue.
    drop(held);
    m.close_sockets();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(*order.lock(), vec![("first", 2), ("second", 2)]);
    check(&pool);
}
