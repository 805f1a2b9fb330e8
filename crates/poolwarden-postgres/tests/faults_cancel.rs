//! Fault suite, F5 on PostgreSQL: a command dropped mid-flight (its caller
//! gave up) or cut by a deadline. tokio-postgres's connection task drains
//! the replies of a dropped query, so the connection stays in protocol
//! sync, but the server keeps running the query and the next command on
//! that connection queues behind it. The manager cancels it on the server
//! (`CancelRequest`) and waits for the server to finish before anyone runs
//! anything else on the connection.

mod common;

use std::time::{Duration, Instant};

use common::{Events, Guard, PgPool};
use poolwarden_postgres::{Error, PgManager};
use poolwarden_testkit::Postgres;

fn pool_of_one(manager: PgManager) -> PgPool {
    common::builder_for(manager, &Events::new())
        .max_size(1)
        .build()
        .unwrap()
}

/// The server runs `pattern` for the pool right now.
fn running(db: &Postgres, pattern: &str) -> bool {
    let rows = common::admin(
        db,
        &format!(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'poolwarden' \
             AND state = 'active' AND query LIKE '{pattern}'"
        ),
    );
    rows != vec![vec!["0".to_owned()]]
}

/// Start `sql` on `c`, wait until the server shows it running, then drop
/// the query future (as a caller's timeout or a client that went away
/// would).
async fn start_and_drop(db: &Postgres, c: &Guard, sql: &str) {
    let query = c.query(sql, &[]);
    tokio::pin!(query);
    let shown = async {
        while !common::blocking(|| running(db, "SELECT pg_sleep%")) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::select! {
        r = &mut query => panic!("{sql} finished: {r:?}"),
        () = shown => {}
    }
}

/// 20 reuses on the one connection, each with its own value.
async fn twenty_reuses(pool: &PgPool) -> Duration {
    let started = Instant::now();
    let mut first = None;
    for i in 0..20_i32 {
        let c = pool
            .get()
            .await
            .expect("checkout after the cancelled query");
        let row = c.query_one("SELECT $1::INT * 2", &[&i]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), i * 2);
        first.get_or_insert_with(|| started.elapsed());
    }
    first.unwrap()
}

/// A dropped `SELECT pg_sleep(3600)` on a pool of one: the next 20
/// checkouts get the right values (within the default 10 s checkout
/// timeout, so without the cancel this fails), and the server no longer
/// runs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f5_a_dropped_query_is_cancelled_on_the_server() {
    let _serial = common::serial().await;
    let db = common::shared_postgres();
    let pool = pool_of_one(PgManager::from_url(&db.url()).unwrap());
    {
        let c = pool.get().await.unwrap();
        start_and_drop(&db, &c, "SELECT pg_sleep(3600)").await;
    }
    let first = twenty_reuses(&pool).await;
    assert!(!common::blocking(|| running(&db, "SELECT pg_sleep%")));
    assert_eq!(pool.status().created, 1, "the connection was kept");
    eprintln!("next borrower served {first:?} after the dropped pg_sleep(3600)");
}

/// The measurement: a dropped `SELECT pg_sleep(1)`, then 20 reuses
/// on a pool of one; with the cancel and without it (a cancel timeout of
/// zero sends none). Both return the right values; the figures are printed
/// (speed is the benchmarks' business, not an assertion).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f5_dropped_pg_sleep_1_then_20_reuses() {
    let _serial = common::serial().await;
    let db = common::shared_postgres();
    for cancel in [true, false] {
        let mut manager = PgManager::from_url(&db.url()).unwrap();
        if !cancel {
            manager = manager.cancel_timeout(Duration::ZERO);
        }
        let pool = pool_of_one(manager);
        {
            let c = pool.get().await.unwrap();
            start_and_drop(&db, &c, "SELECT pg_sleep(1)").await;
        }
        let first = twenty_reuses(&pool).await;
        eprintln!("cancel {cancel}: next borrower served after {first:?}");
    }
}

/// The same borrower goes on after dropping a query: its next command runs
/// after the dropped one was cancelled, not an hour later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f5_the_same_borrower_can_go_on_after_dropping_a_query() {
    let _serial = common::serial().await;
    let db = common::shared_postgres();
    let pool = pool_of_one(PgManager::from_url(&db.url()).unwrap());
    let c = pool.get().await.unwrap();
    start_and_drop(&db, &c, "SELECT pg_sleep(3600)").await;
    let row = tokio::time::timeout(Duration::from_secs(30), c.query_one("SELECT 7", &[]))
        .await
        .expect("the next command waited for the dropped pg_sleep(3600)")
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 7);
}

/// A command cut by the connection's deadline fails with
/// `Error::Deadline`, is cancelled on the server, and the connection serves
/// the next borrower.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_deadline_cuts_and_cancels() {
    let _serial = common::serial().await;
    let db = common::shared_postgres();
    let pool = pool_of_one(PgManager::from_url(&db.url()).unwrap());
    {
        let mut c = pool.get().await.unwrap();
        c.set_deadline(Some(
            tokio::time::Instant::now() + Duration::from_millis(200),
        ));
        let err = c.query("SELECT pg_sleep(3600)", &[]).await.unwrap_err();
        assert!(matches!(err, Error::Deadline { .. }), "{err}");
        // This connection only: a slow statement says nothing about the
        // server.
        assert_eq!(c.report_error(&err), poolwarden::ErrorClass::Broken);
    }
    // Not a black hole: the next checkout is served at once (a new
    // connection: the cut one was discarded).
    drop(
        pool.get()
            .await
            .expect("served after a slow statement's deadline"),
    );
    twenty_reuses(&pool).await;
    // The cut connection was discarded; its command is cancelled in the
    // background as it is dropped.
    let stopped = common::poll_until(Duration::from_secs(10), || {
        !common::blocking(|| running(&db, "SELECT pg_sleep%"))
    })
    .await;
    assert!(stopped, "the cut pg_sleep(3600) still runs on the server");
    // The server answered the manager's sign-of-life request: no black
    // hole, no invalidation.
    assert_eq!(pool.manager().unresponsive_signals(), 0);
    assert_eq!(pool.status().invalidations, 0);
}

/// `command_timeout` bounds every command, and the pool clears a
/// borrower's deadline when the connection comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_timeout_bounds_every_command() {
    let _serial = common::serial().await;
    let db = common::shared_postgres();
    let manager = PgManager::from_url(&db.url())
        .unwrap()
        .command_timeout(Some(Duration::from_millis(300)));
    let pool = pool_of_one(manager);
    {
        let mut c = pool.get().await.unwrap();
        c.set_deadline(Some(
            tokio::time::Instant::now() + Duration::from_secs(3600),
        ));
        let err = c.query("SELECT pg_sleep(3600)", &[]).await.unwrap_err();
        assert!(matches!(err, Error::Deadline { .. }), "{err}");
    }
    let c = pool.get().await.unwrap();
    assert_eq!(c.deadline(), None);
    assert_eq!(
        c.query_one("SELECT 1", &[]).await.unwrap().get::<_, i32>(0),
        1
    );
}

/// `Pool::get_until`: the checkout's deadline reaches the connection
/// (`on_hand_out`) and bounds the borrower's commands; a plain `get` after
/// it carries none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_until_bounds_the_borrowers_commands() {
    let _serial = common::serial().await;
    let db = common::shared_postgres();
    let pool = pool_of_one(PgManager::from_url(&db.url()).unwrap());
    let until = tokio::time::Instant::now() + Duration::from_millis(300);
    {
        let c = pool.get_until(until).await.unwrap();
        assert_eq!(c.deadline(), Some(until));
        assert_eq!(poolwarden::PooledConnection::deadline(&c), Some(until));
        let err = c.query("SELECT pg_sleep(3600)", &[]).await.unwrap_err();
        assert!(matches!(err, Error::Deadline { .. }), "{err}");
    }
    let c = pool.get().await.unwrap();
    assert_eq!(c.deadline(), None);
    assert_eq!(
        c.query_one("SELECT 3", &[]).await.unwrap().get::<_, i32>(0),
        3
    );
    drop(c);
    let stopped = common::poll_until(Duration::from_secs(10), || {
        !common::blocking(|| running(&db, "SELECT pg_sleep%"))
    })
    .await;
    assert!(stopped, "the cut pg_sleep(3600) still runs on the server");
}
