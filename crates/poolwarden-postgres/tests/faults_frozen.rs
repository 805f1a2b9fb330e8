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
