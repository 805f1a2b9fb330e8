//! Fault suite, the return path: F4 (the reset on return fails because the
//! server is gone), F12 (connections retire over time, never under a
//! borrower), and transactions left open through `Transactional`, against
//! private PostgreSQL servers.

mod common;

use std::time::Duration;

use common::{describe_failures, error_chain, Events, Load, Select42};
use poolwarden::Transactional;
use poolwarden_postgres::PgManager;

/// F4: a connection that needs a reset is returned while the server is
/// down: the drop returns at once, the connection is closed quietly, and
/// once the server is back the pool serves with zero errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f4_reset_after_the_server_went_away_is_quiet() {
    let _serial = common::serial().await;
    let mut db = common::start_postgres(&[]);
    let events = Events::new();
    let pool = common::builder(&db.url(), &events)
        .max_size(2)
        .build()
        .unwrap();
    let c = pool.get().await.unwrap();
    c.batch_execute("SET search_path = f4").await.unwrap();
    assert!(c.is_dirty());
    common::blocking(|| db.kill()).expect("killing the server");
    drop(c);
    let closed = common::poll_until(Duration::from_secs(10), || pool.status().open == 0).await;
    assert!(closed, "the dirty connection was kept: {:?}", pool.status());
    let status = pool.status();
    assert_eq!(
        status.closed.closed + status.closed.reset_failed,
        1,
        "{status:?}"
    );

    common::blocking(|| db.start_again()).expect("restarting the server");
    for _ in 0..20 {
        let mut c = pool
            .get_timeout(Duration::from_secs(10))
            .await
            .unwrap_or_else(|e| panic!("after restart: {}", error_chain(&e)));
        assert_eq!(common::select_42(&mut c).await.unwrap(), Some(42));
    }
}

/// F12: with a short `max_lifetime` and jitter, connections retire at
/// return or while idle, never under a borrower: a steady load sees zero
/// errors while they turn over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f12_lifetime_retires_without_errors() {
    let _serial = common::serial().await;
    let db = common::shared_postgres();
    let pool = common::builder(&db.url(), &Events::new())
        .max_size(4)
        .max_lifetime(Some(Duration::from_secs(2)))
        .connect_timeout(Duration::from_secs(1))
        .validation_timeout(Duration::from_millis(500))
        .lifetime_jitter(0.5)
        .maintenance_interval(Duration::from_millis(50))
        .build()
        .unwrap();
    let load = Load::start(&pool, Select42, 8, 1_000_000, Duration::from_secs(60));
    let retired = common::poll_until(Duration::from_secs(30), || {
        pool.status().closed.lifetime >= 4
    })
    .await;
    let ops = load.finish().await;
    let origin = ops.first().map(|op| op.start).unwrap();
    assert!(retired, "{:?}", pool.status());
    assert!(
        ops.iter().all(|op| op.is_ok()),
        "{}",
        describe_failures(&ops, origin, 10)
    );
}

/// A transaction begun through `Transactional` and dropped unfinished (a
/// handler that panicked) is rolled back by the pool's reset: the next
/// borrower's autocommit INSERT is not swallowed by it, and the abandoned
/// INSERT is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unfinished_transaction_is_rolled_back_not_inherited() {
    let db = common::shared_postgres();
    let pool = common::builder(&db.url(), &Events::new())
        .max_size(1)
        .build()
        .unwrap();
    {
        let c = pool.get().await.unwrap();
        c.batch_execute("CREATE TABLE tx_left (v INT)")
            .await
            .unwrap();
    }
    {
        let mut c = pool.get().await.unwrap();
        let m: &PgManager = pool.manager();
        m.begin(&mut c).await.unwrap();
        c.execute("INSERT INTO tx_left VALUES (1)", &[])
            .await
            .unwrap();
        // Dropped without commit or rollback.
    }
    {
        let c = pool.get().await.unwrap();
        c.execute("INSERT INTO tx_left VALUES (2)", &[])
            .await
            .unwrap();
    }
    assert_eq!(
        common::admin(&db, "SELECT string_agg(v::text, ',') FROM tx_left"),
        vec![vec!["2".to_owned()]]
    );
    // And a committed one stays.
    {
        let mut c = pool.get().await.unwrap();
        let m: &PgManager = pool.manager();
        m.begin(&mut c).await.unwrap();
        c.execute("INSERT INTO tx_left VALUES (3)", &[])
            .await
            .unwrap();
        m.commit(&mut c).await.unwrap();
        assert!(!c.is_dirty());
    }
    assert_eq!(pool.status().resets, 1, "{:?}", pool.status());
}
