//! A frozen server (SIGSTOP) on PostgreSQL: the manager, not the borrower,
//! black-holes the pool. A command cut at its deadline is never reported;
//! a checkout waiting behind it fails fast with `Unresponsive` once the
//! manager's sign-of-life request got no answer either. After SIGCONT one
//! round trip clears it.

mod common;

use std::time::Duration;

use common::{error_chain, Events, Paused};
use poolwarden::PoolError;
use poolwarden_postgres::{Error, PgManager, ServerNotAnswering};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_server_black_holes_the_pool_without_report_error() {
    let _serial = common::serial().await;
    let db = common::start_postgres(&[]);
    let manager = PgManager::from_url(&db.url())
        .unwrap()
        .command_timeout(Some(Duration::from_millis(300)))
        .unresponsive_after(Duration::from_millis(500));
    let pool = common::builder_for(manager, &Events::new())
        .max_size(1)
        .checkout_timeout(Duration::from_secs(30))
        .validation_bypass(Duration::from_secs(60))
        .build()
        .unwrap();
    let mut held = pool.get().await.unwrap();
    assert_eq!(common::select_42(&mut held).await.unwrap(), Some(42));

    let paused = Paused::new(&db);
    let err = held
        .query("SELECT 1", &[])
        .await
        .expect_err("answered while frozen");
    assert!(matches!(err, Error::Deadline { .. }), "{err}");
    // The only connection is still held: this checkout waits.
    let p = pool.clone();
    let waiter = tokio::spawn(async move { p.get().await.map(|_| ()) });
    let res = tokio::time::timeout(Duration::from_secs(20), waiter)
        .await
        .expect("the waiter waited for its whole timeout: no black hole")
        .unwrap();
    let err = res.expect_err("a checkout succeeded on a frozen server");
    let PoolError::Unresponsive { source } = &err else {
        panic!("not Unresponsive: {}", error_chain(&err));
    };
    assert!(
        source.downcast_ref::<ServerNotAnswering>().is_some(),
        "{}",
        error_chain(&err)
    );
    assert_eq!(pool.manager().unresponsive_signals(), 1);
    drop(held);
    drop(paused);
    let mut c = pool
        .get_timeout(Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("after SIGCONT: {}", error_chain(&e)));
    assert_eq!(common::select_42(&mut c).await.unwrap(), Some(42));
}

/// `Pool::close` is bounded by `close_timeout` even with a borrower's
/// command stuck on a frozen server: at `close_timeout` the command is cut
/// with `Error::PoolClosed`, long before its own 60 s command timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_cuts_a_command_stuck_on_a_frozen_server_at_close_timeout() {
    let _serial = common::serial().await;
    let db = common::start_postgres(&[]);
    let manager = PgManager::from_url(&db.url())
        .unwrap()
        .command_timeout(Some(Duration::from_secs(60)))
        .unresponsive_after(Duration::from_secs(3600));
    let pool = common::builder_for(manager, &Events::new())
        .max_size(2)
        .close_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let mut c = pool.get().await.unwrap();
    assert_eq!(common::select_42(&mut c).await.unwrap(), Some(42));
    let paused = Paused::new(&db);
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let borrower = tokio::spawn(async move {
        let run = c.query("SELECT 1", &[]);
        let _ = started_tx.send(());
        let err = run.await.expect_err("answered while frozen");
        (err, c)
    });
    started_rx.await.unwrap();
    pool.close().await;
    let (err, c) = tokio::time::timeout(Duration::from_secs(20), borrower)
        .await
        .expect("the borrower still waits after close()")
        .unwrap();
    assert!(matches!(err, Error::PoolClosed { sent: true }), "{err}");
    assert!(err.to_string().contains("close_timeout"), "{err}");
    // Called after the cut: not sent.
    let err = c.query("SELECT 1", &[]).await.unwrap_err();
    assert!(matches!(err, Error::PoolClosed { sent: false }), "{err}");
    drop(c);
    drop(paused);
}
