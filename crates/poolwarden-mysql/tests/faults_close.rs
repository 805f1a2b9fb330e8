//! `Pool::close` is bounded by `close_timeout` even with a borrower's
//! command stuck on a frozen server: at `close_timeout` the command is cut
//! with a clear error (issue 10, "Bounded shutdown"), long before its own
//! command timeout.

mod common;

use std::time::Duration;

use common::Paused;
use poolwarden::Pool;
use poolwarden_mysql::mysql_async::prelude::Queryable;
use poolwarden_mysql::{CommandCut, CutReason, MySqlManager};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_cuts_a_command_stuck_on_a_frozen_server_at_close_timeout() {
    let db = common::start_mariadb(&[]);
    let manager = MySqlManager::from_url(&db.url())
        .unwrap()
        .command_timeout(Some(Duration::from_secs(60)));
    let pool = Pool::builder(manager)
        .max_size(2)
        .close_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let mut c = pool.get().await.unwrap();
    c.query_drop("DO 1").await.unwrap();
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let paused = Paused::new(&db);
    let borrower = tokio::spawn(async move {
        let run = c.query_drop("SELECT 1 /* stuck */");
        let _ = started_tx.send(());
        let err = run.await.expect_err("answered while frozen");
        let cut = CommandCut::find(&err)
            .unwrap_or_else(|| panic!("not a CommandCut: {err}"))
            .clone();
        (cut, err.to_string(), c)
    });
    started_rx.await.unwrap();
    pool.close().await;
    // Far below the command's own 60 s: only the cut can end it.
    let (cut, text, c) = tokio::time::timeout(Duration::from_secs(20), borrower)
        .await
        .expect("the borrower still waits after close()")
        .unwrap();
    assert_eq!(cut.reason, CutReason::PoolClosed);
    assert!(cut.sent);
    assert!(text.contains("close_timeout"), "{text}");
    drop(c);
    drop(paused);
    assert!(
        common::poll_until(Duration::from_secs(5), || pool.status().open == 0).await,
        "{:?}",
        pool.status()
    );
    assert_eq!(pool.manager().deadline_stats().commands_cut, 1);
}
