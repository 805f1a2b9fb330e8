//! Fault suite, connecting: F9 (the server refuses connections: 53300 too
//! many connections), F10 (a black-holed server: SIGSTOP) and F11 (bad
//! credentials, unknown database), against private PostgreSQL servers.

mod common;

use std::error::Error as _;
use std::time::{Duration, Instant};

use common::{describe_failures, error_chain, Events, Kind, Load, Paused, Select42};
use poolwarden::{CloseReason, ErrorClass, PoolError, StartError};
use poolwarden_postgres::{tokio_postgres, Error, PgManager};
use poolwarden_testkit::Postgres;

/// The SQLSTATE behind a pool error, anywhere in its source chain.
fn sqlstate(e: &PoolError) -> Option<String> {
    fn code_of(err: &(dyn std::error::Error + 'static)) -> Option<String> {
        if let Some(e) = err.downcast_ref::<Error>() {
            return e.code().map(|c| c.code().to_owned());
        }
        if let Some(e) = err.downcast_ref::<tokio_postgres::Error>() {
            return e.code().map(|c| c.code().to_owned());
        }
        if let Some(shared) = err.downcast_ref::<poolwarden::SharedError>() {
            let inner: &(dyn std::error::Error + 'static) = &**shared;
            return code_of(inner);
        }
        None
    }
    let mut source = match e.as_timeout() {
        Some(t) => t.source(),
        None => e.source(),
    };
    while let Some(err) = source {
        if let Some(code) = code_of(err) {
            return Some(code);
        }
        source = err.source();
    }
    None
}

/// A raw client connection outside the pool.
async fn raw_connect(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

// ---------------------------------------------------------------------------
// F9

/// F9: `max_connections` exhausted by other clients but for one slot. The
/// pool (max_size 5) gets one connection and every further connect is
/// refused with 53300.
///
/// 1. 16 tasks x 50 queries (800): all served through the one connection.
/// 2. With it held, a checkout fails only at its timeout, naming 53300.
/// 3. When the other clients leave, the pool grows back under load with
///    zero errors (the time it took is printed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f9_one_slot_left_serves_everything_then_the_pool_grows_back() {
    let _serial = common::serial().await;
    let db = common::start_postgres(&[
        ("max_connections", "8"),
        ("superuser_reserved_connections", "1"),
    ]);
    common::admin(&db, "CREATE ROLE f9 LOGIN PASSWORD 'f9pass'");
    let url = db.url_for("f9", "f9pass", Postgres::TEST_DATABASE);

    let mut fillers = Vec::new();
    loop {
        match raw_connect(&url).await {
            Ok(c) => fillers.push(c),
            Err(e) if e.code().map(|c| c.code()) == Some("53300") => break,
            Err(e) => panic!("filling the server: {e}"),
        }
        assert!(fillers.len() <= 20, "max_connections=8 is not enforced");
    }
    let total_slots = fillers.len();
    drop(fillers.pop());

    let events = Events::new();
    let pool = common::builder(&url, &events).max_size(5).build().unwrap();
    // The freed slot goes to the pool once the server has seen the filler
    // leave.
    let mut first = None;
    for _ in 0..100 {
        if let Ok(c) = pool.get_timeout(Duration::from_secs(1)).await {
            first = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        first.is_some(),
        "the pool never got the free slot: {:?}",
        pool.status()
    );
    drop(first);
    let baseline = pool.status();
    assert_eq!(baseline.open, 1);

    // 1.
    let ops = Load::start(&pool, Select42, 16, 50, Duration::from_secs(60))
        .join()
        .await;
    let origin = ops.first().map(|op| op.start).unwrap_or_else(Instant::now);
    assert_eq!(ops.len(), 800, "{}", describe_failures(&ops, origin, 10));
    assert!(
        ops.iter().all(|op| op.is_ok()),
        "refused connects must make checkouts wait, not fail: {}",
        describe_failures(&ops, origin, 10)
    );
    let after_load = pool.status();
    assert!(
        after_load.connect_failures > baseline.connect_failures,
        "{after_load:?}"
    );
    let refusals = events
        .connect_failures()
        .into_iter()
        .filter(|(_, _, class)| *class == ErrorClass::Keep)
        .count();
    assert!(refusals > 0, "{:?}", events.connect_failures());

    // 2.
    let hold = pool.get().await.unwrap();
    let err = pool
        .get_timeout(Duration::from_secs(1))
        .await
        .expect_err("a checkout succeeded with the only connection held");
    assert!(err.is_timeout(), "{}", error_chain(&err));
    assert_eq!(
        sqlstate(&err).as_deref(),
        Some("53300"),
        "{}",
        error_chain(&err)
    );
    drop(hold);

    // 3.
    let load = Load::start(&pool, Select42, 16, 1_000_000, Duration::from_secs(60));
    assert!(load.progress.wait_ok(200, Duration::from_secs(30)).await);
    drop(fillers);
    let freed_at = Instant::now();
    let grew = common::poll_until(Duration::from_secs(10), || pool.status().open > 1).await;
    let grew_in = freed_at.elapsed();
    let ok_now = load.progress.ok.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        load.progress
            .wait_ok(ok_now + 500, Duration::from_secs(30))
            .await
    );
    let ops = load.finish().await;
    assert!(
        ops.iter().all(|op| op.is_ok()),
        "{}",
        describe_failures(&ops, freed_at, 10)
    );
    assert!(grew, "the pool did not grow back: {:?}", pool.status());
    eprintln!(
        "F9 (PostgreSQL): {total_slots} slots for the role; 800 of 800 through one connection \
         ({} refused connects); the pool grew {grew_in:?} after the fillers were dropped",
        after_load.connect_failures - baseline.connect_failures,
    );
}

// ---------------------------------------------------------------------------
// F10

/// F10: a black-holed server (SIGSTOP). A command on a held connection
/// ends at its deadline; a checkout that needs a ping and one that needs a
/// new connection end at the checkout timeout; a reset on return is cut by
/// `reset_timeout` and the connection discarded. After `resume()` both
/// pools serve again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f10_black_holed_server_every_wait_is_bounded() {
    let _serial = common::serial().await;
    let db = common::start_postgres(&[]);
    let timeout = Duration::from_secs(1);
    let bypass = Duration::from_millis(10);
    let events = Events::new();
    // No black hole from the manager here (`faults_frozen.rs` has that):
    // this test bounds each wait on its own, the reset on return included.
    let manager = PgManager::from_url(&db.url())
        .unwrap()
        .command_timeout(Some(timeout))
        .unresponsive_after(Duration::from_secs(3600));
    let pool = common::builder_for(manager, &events)
        .max_size(2)
        .checkout_timeout(timeout)
        .validation_bypass(bypass)
        .reset_timeout(timeout)
        .build()
        .unwrap();
    let fresh = common::builder(&db.url(), &Events::new())
        .checkout_timeout(timeout)
        .build()
        .unwrap();

    let held = pool.get().await.unwrap();
    let held_id = held.connection_id();
    let mut idle = pool.get().await.unwrap();
    assert_eq!(common::select_42(&mut idle).await.unwrap(), Some(42));
    drop(idle);
    assert!(common::poll_until(Duration::from_secs(5), || pool.status().idle == 1).await);
    tokio::time::sleep(bypass * 5).await;

    let paused = Paused::new(&db);

    // A command on a held connection.
    let started = Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(10), held.query("SELECT 1", &[]))
        .await
        .expect("a command hung on a black-holed server")
        .expect_err("a command succeeded against a paused server");
    let command_waited = started.elapsed();
    assert!(matches!(err, Error::Deadline { .. }), "{err}");

    // A checkout that needs a ping.
    let started = Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(10), pool.get())
        .await
        .expect("get() hung (ping path)")
        .expect_err("a checkout succeeded against a paused server");
    let ping_waited = started.elapsed();
    assert!(err.is_timeout(), "{}", error_chain(&err));

    // A checkout that needs a new connection.
    let started = Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(10), fresh.get())
        .await
        .expect("get() hung (connect path)")
        .expect_err("a connect succeeded against a paused server");
    let connect_waited = started.elapsed();
    assert!(err.is_timeout(), "{}", error_chain(&err));

    // The return path: the interrupted command needs a reset, which hangs
    // and is cut by reset_timeout.
    let dropped_at = Instant::now();
    drop(held);
    let discarded = events
        .wait_for(
            Duration::from_secs(10),
            |r| matches!(r.kind, Kind::Discarded { id, .. } if id == held_id),
        )
        .await
        .expect("the hung reset was never cut short");
    assert!(
        matches!(
            discarded.kind,
            Kind::Discarded {
                reason: CloseReason::ResetFailed,
                ..
            }
        ),
        "{discarded:?}"
    );
    let reset_cut = discarded.at.duration_since(dropped_at);

    drop(paused);
    let resumed_at = Instant::now();
    let mut a = pool
        .get_timeout(Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("after resume: {}", error_chain(&e)));
    assert_eq!(common::select_42(&mut a).await.unwrap(), Some(42));
    let mut b = fresh
        .get_timeout(Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("after resume: {}", error_chain(&e)));
    assert_eq!(common::select_42(&mut b).await.unwrap(), Some(42));
    eprintln!(
        "F10 (PostgreSQL, all bounds 1 s): command cut after {command_waited:?}, ping path \
         {ping_waited:?}, connect path {connect_waited:?}, reset cut {reset_cut:?}; served \
         {:?} after resume",
        resumed_at.elapsed()
    );
}

// ---------------------------------------------------------------------------
// F11

/// 50 checkouts against settings the server rejects: each fails with
/// `Fatal` naming `code`, after one connect attempt.
async fn fatal_after_one_attempt(url: &str, code: &str) {
    let events = Events::new();
    let pool = common::builder(url, &events).build().unwrap();
    let err = pool
        .get()
        .await
        .expect_err("the server accepted bad settings");
    assert!(
        matches!(err, PoolError::Fatal { .. }),
        "{}",
        error_chain(&err)
    );
    assert_eq!(
        sqlstate(&err).as_deref(),
        Some(code),
        "{}",
        error_chain(&err)
    );
    let chain = error_chain(&err);
    assert!(
        chain.contains("could not connect to PostgreSQL at"),
        "{chain}"
    );
    assert!(!chain.contains(Postgres::PW_PASSWORD), "{chain}");
    for i in 0..50 {
        let err = pool
            .get()
            .await
            .expect_err("the server accepted bad settings");
        assert!(
            matches!(err, PoolError::Fatal { .. }),
            "checkout {i}: {}",
            error_chain(&err)
        );
    }
    let status = pool.status();
    assert_eq!(
        status.connect_failures, 1,
        "one connect attempt: {status:?}"
    );
    eprintln!("F11 ({code}): 51 checkouts, 1 connect attempt; message: {chain}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f11_wrong_password_one_clear_error_one_attempt() {
    let db = common::shared_postgres();
    let url = db.url_for(Postgres::PW_USER, "wrong-password", Postgres::TEST_DATABASE);
    fatal_after_one_attempt(&url, "28P01").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f11_unknown_database_one_clear_error_one_attempt() {
    let db = common::shared_postgres();
    let url = db.url_for(Postgres::PW_USER, Postgres::PW_PASSWORD, "f11_no_such_db");
    fatal_after_one_attempt(&url, "3D000").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f11_build_and_connect_reports_bad_credentials_at_start_up() {
    let db = common::shared_postgres();
    let url = db.url_for(Postgres::PW_USER, "wrong-password", Postgres::TEST_DATABASE);
    match common::builder(&url, &Events::new())
        .build_and_connect()
        .await
    {
        Err(StartError::Connect(e @ PoolError::Fatal { .. })) => {
            assert_eq!(
                sqlstate(&e).as_deref(),
                Some("28P01"),
                "{}",
                error_chain(&e)
            );
        }
        Err(e) => panic!("expected a Fatal connect error, got {e}"),
        Ok(_) => panic!("the server accepted a wrong password"),
    }
}

/// F10 with the black-hole mode: a command cut by its deadline on a frozen
/// server (reported: `Broken`, this connection only) makes the manager ask
/// the server for a sign of life; none comes, so the manager black-holes
/// the pool: the waiting checkout fails with `Unresponsive` instead of
/// waiting its timeout, and the pool serves again after `resume()`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f10_a_cut_command_on_a_frozen_server_makes_checkouts_fail_fast() {
    let _serial = common::serial().await;
    let db = common::start_postgres(&[]);
    let pool = common::builder(&db.url(), &Events::new())
        .max_size(2)
        .checkout_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut held = pool.get().await.unwrap();
    let paused = Paused::new(&db);
    let until = tokio::time::Instant::now() + Duration::from_millis(500);
    held.set_deadline(Some(until));
    let err = held.query("SELECT 1", &[]).await.unwrap_err();
    assert!(matches!(err, Error::Deadline { .. }), "{err}");
    assert_eq!(held.report_error(&err), ErrorClass::Broken);
    drop(held);

    let started = Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(10), pool.get())
        .await
        .expect("get() hung on a black-holed server")
        .expect_err("a checkout succeeded against a paused server");
    let failed_in = started.elapsed();
    assert!(
        matches!(err, PoolError::Unresponsive { .. }),
        "{}",
        error_chain(&err)
    );

    drop(paused);
    let mut served = None;
    for _ in 0..500 {
        if let Ok(c) = pool.get().await {
            served = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut c = served.unwrap_or_else(|| panic!("never served after resume: {:?}", pool.status()));
    assert_eq!(common::select_42(&mut c).await.unwrap(), Some(42));
    eprintln!(
        "F10 black hole: a waiting checkout failed after {failed_in:?} (checkout timeout 5 s)"
    );
}
