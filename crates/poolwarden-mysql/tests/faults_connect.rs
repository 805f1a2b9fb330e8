//! Fault suite, connecting: F9 (the server refuses connections: 1040 Too
//! many connections), F10 (a black-holed server: SIGSTOP) and F11 (bad
//! credentials, unknown database), against private MariaDB servers. See
//! `docs/failure-modes.md`.

mod common;

use std::error::Error as _;
use std::time::{Duration, Instant};

use common::{describe_failures, error_chain, Events, Kind, Load, Paused, Select42};
use poolwarden::{CloseReason, ErrorClass, PoolError, StartError};
use poolwarden_mysql::mysql_async::prelude::Queryable;
use poolwarden_mysql::mysql_async::{self, Conn, Opts};

/// The server error code behind a pool error: anywhere in its source chain
/// (a timeout's last connect error included). `PoolError::Fatal`'s source is
/// the shared `Arc` around the driver's error, a timeout's source the
/// driver's error itself: both are looked through.
fn server_code(e: &PoolError) -> Option<u16> {
    fn code_of(err: &(dyn std::error::Error + 'static)) -> Option<u16> {
        if let Some(mysql_async::Error::Server(s)) = err.downcast_ref::<mysql_async::Error>() {
            return Some(s.code);
        }
        if let Some(s) = err.downcast_ref::<mysql_async::ServerError>() {
            return Some(s.code);
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

// ---------------------------------------------------------------------------
// F9

/// A raw client connection outside the pool (TCP only).
async fn raw_connect(url: &str) -> Result<Conn, mysql_async::Error> {
    Conn::new(Opts::from_url(&format!("{url}?prefer_socket=false")).unwrap()).await
}

/// F9: the server's `max_connections` nearly exhausted by other clients, so
/// the pool (max_size 5) gets one connection and every further connect is
/// refused with 1040.
///
/// 1. 16 tasks x 25 queries: checkouts wait their turn for the one
///    connection; zero errors; the refused connects are counted.
/// 2. With that connection held, a checkout fails only when its timeout
///    expires, and its source is the refusal (1040 Too many connections).
/// 3. When the other clients go away, the pool grows back under load, with
///    zero errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f9_refused_connections_make_checkouts_wait_then_the_pool_grows_back() {
    let _serial = common::serial().await;
    let db = common::start_mariadb(&["--max-connections=10"]);
    // A user without SUPER / CONNECTION ADMIN: no extra connection slot.
    common::admin(
        &db,
        "CREATE USER 'f9'@'%' IDENTIFIED BY 'f9pass'; GRANT SELECT ON test.* TO 'f9'@'%';",
    );
    let url = db.url_for("f9", "f9pass", "test");

    // Fill the server until it refuses, then free exactly one slot.
    let mut fillers = Vec::new();
    loop {
        match raw_connect(&url).await {
            Ok(c) => fillers.push(c),
            Err(mysql_async::Error::Server(e)) if e.code == 1040 => break,
            Err(e) => panic!("filling the server: {e}"),
        }
        assert!(fillers.len() <= 20, "max_connections=10 is not enforced");
    }
    let total_slots = fillers.len();
    fillers
        .pop()
        .unwrap()
        .disconnect()
        .await
        .expect("freeing one slot");

    let events = Events::new();
    let pool = common::builder(&url, &events).max_size(5).build().unwrap();
    // The freed slot goes to the pool (the server may take a moment to
    // notice the departed client). Not `warm_up()`: after one failed
    // connect it never tries again (see f2_warm_up_retries_once_the_server_is_back).
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
    match raw_connect(&url).await {
        Err(mysql_async::Error::Server(e)) if e.code == 1040 => {}
        other => panic!("the server should be full now, got {:?}", other.map(|_| ())),
    }
    let baseline = pool.status();
    assert_eq!(baseline.open, 1);

    // 1. Load through one connection.
    let ops = Load::start(&pool, Select42, 16, 25, Duration::from_secs(60))
        .join()
        .await;
    let origin = ops.first().map(|op| op.start).unwrap_or_else(Instant::now);
    assert_eq!(ops.len(), 400, "{}", describe_failures(&ops, origin, 10));
    assert!(
        ops.iter().all(|op| op.is_ok()),
        "refused connects must make checkouts wait, not fail: {}",
        describe_failures(&ops, origin, 10)
    );
    let after_load = pool.status();
    assert!(
        after_load.connect_failures > baseline.connect_failures,
        "no refused connect was counted: {after_load:?}"
    );
    assert_eq!(after_load.created, baseline.created, "{after_load:?}");
    let refusals = events
        .connect_failures()
        .into_iter()
        .filter(|(_, e, class)| e.contains("Too many connections") && *class == ErrorClass::Keep)
        .count();
    assert!(
        refusals > 0,
        "no 1040 seen: {:?}",
        events.connect_failures()
    );

    // 2. Blocked long enough, a checkout times out, naming the refusal.
    let hold = pool.get().await.unwrap();
    let started = Instant::now();
    let err = pool
        .get_timeout(Duration::from_secs(1))
        .await
        .expect_err("a checkout succeeded with the only connection held");
    let waited = started.elapsed();
    assert!(
        err.is_timeout(),
        "expected a timeout: {}",
        error_chain(&err)
    );
    assert!(waited < Duration::from_secs(6), "{waited:?}");
    assert_eq!(server_code(&err), Some(1040), "{}", error_chain(&err));
    assert!(
        error_chain(&err).contains("Too many connections"),
        "{}",
        error_chain(&err)
    );
    drop(hold);

    // 3. The other clients leave; the pool grows back under load.
    let load = Load::start(&pool, Select42, 16, 1_000_000, Duration::from_secs(60));
    assert!(load.progress.wait_ok(200, Duration::from_secs(30)).await);
    let open_before = pool.status().open;
    for c in fillers.drain(..) {
        c.disconnect().await.expect("disconnecting a filler");
    }
    let freed_at = Instant::now();
    let grew = common::poll_until(Duration::from_secs(10), || pool.status().open > 1).await;
    let grew_at = Instant::now();
    let full = common::poll_until(Duration::from_secs(10), || pool.status().open == 5).await;
    let full_at = Instant::now();
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
    assert_eq!(open_before, 1);
    assert!(grew, "the pool did not grow back: {:?}", pool.status());
    let status = pool.status();
    eprintln!(
        "F9: server slots for the user: {total_slots}; phase 1: 400 queries through one \
         connection, {} refused connects ({refusals} seen as 1040 events); phase 2: timeout \
         after {waited:?} with source 1040; phase 3: open > 1 {} ms after the fillers left, \
         open == 5 {} (after {} ms). Final status: {status:?}",
        after_load.connect_failures - baseline.connect_failures,
        grew_at.duration_since(freed_at).as_millis(),
        if full { "reached" } else { "NOT reached" },
        full_at.duration_since(freed_at).as_millis(),
    );
}

// ---------------------------------------------------------------------------
// F10

/// F10: a black-holed server (SIGSTOP: the kernel accepts TCP connections,
/// nothing answers). A checkout that needs a ping, and one that needs a new
/// connection, each return their timeout error on time (checkout timeout
/// 1 s) instead of hanging; a reset on return is bounded by `reset_timeout`
/// and discards the connection; after `resume()` both pools serve again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f10_black_holed_server_checkouts_time_out_on_time_and_the_pool_recovers() {
    let _serial = common::serial().await;
    let db = common::start_mariadb(&[]);
    let checkout_timeout = Duration::from_secs(1);
    let bypass = Duration::from_millis(10);
    let events = Events::new();
    let pool = common::builder(&db.url(), &events)
        .max_size(2)
        .checkout_timeout(checkout_timeout)
        .validation_bypass(bypass)
        .reset_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let fresh_events = Events::new();
    let fresh = common::builder(&db.url(), &fresh_events)
        .checkout_timeout(checkout_timeout)
        .build()
        .unwrap();

    // One connection held (it will need a reset), one idle.
    let mut held = pool.get().await.unwrap();
    let mut idle = pool.get().await.unwrap();
    assert_eq!(common::select_42(&mut idle).await.unwrap(), Some(42));
    held.query_drop("SET @f10 = 1").await.unwrap();
    let held_id = held.connection_id();
    drop(idle);
    assert!(common::poll_until(Duration::from_secs(5), || pool.status().idle == 1).await);
    // Past the window in which it would be handed out without a ping.
    tokio::time::sleep(bypass * 5).await;

    let paused = Paused::new(&db);

    // A checkout that needs a ping.
    let started = Instant::now();
    let ping_path = tokio::time::timeout(Duration::from_secs(10), pool.get())
        .await
        .expect("get() hung on a black-holed server (ping path)");
    let ping_waited = started.elapsed();
    let err = ping_path.expect_err("a checkout succeeded against a paused server");
    assert!(
        err.is_timeout(),
        "ping path: expected a timeout, got {}",
        error_chain(&err)
    );
    assert!(
        ping_waited < checkout_timeout + Duration::from_secs(5),
        "{ping_waited:?}"
    );

    // A checkout that needs a new connection.
    let started = Instant::now();
    let connect_path = tokio::time::timeout(Duration::from_secs(10), fresh.get())
        .await
        .expect("get() hung on a black-holed server (connect path)");
    let connect_waited = started.elapsed();
    let err = connect_path.expect_err("a connect succeeded against a paused server");
    assert!(
        err.is_timeout(),
        "connect path: expected a timeout, got {}",
        error_chain(&err)
    );
    assert!(
        connect_waited < checkout_timeout + Duration::from_secs(5),
        "{connect_waited:?}"
    );

    // The return path: the reset hangs, is cut by reset_timeout, and the
    // connection is discarded; the drop itself returns at once.
    let dropped_at = Instant::now();
    drop(held);
    let returned_in = dropped_at.elapsed();
    let reset = events
        .wait_for(
            Duration::from_secs(10),
            |r| matches!(r.kind, Kind::Discarded { id, .. } if id == held_id),
        )
        .await
        .expect("the hung reset was never cut short");
    assert!(
        matches!(
            reset.kind,
            Kind::Discarded {
                reason: CloseReason::ResetFailed,
                ..
            }
        ),
        "{reset:?}"
    );
    let reset_cut_after = reset.at.duration_since(dropped_at);

    drop(paused); // resume
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
    let recovered_in = resumed_at.elapsed();
    let status = pool.status();
    assert!(status.timeouts >= 1 && fresh.status().timeouts >= 1);
    assert!(status.closed.validation_failed >= 1, "{status:?}");
    eprintln!(
        "F10: checkout timeout 1 s; ping path failed after {ping_waited:?}, connect path after \
         {connect_waited:?}; drop of a guard needing a reset returned in {returned_in:?}, the \
         reset was cut after {reset_cut_after:?}; both pools served {recovered_in:?} after \
         resume. Pool: {status:?}"
    );
}

// ---------------------------------------------------------------------------
// F11

/// 50 checkouts against settings the server rejects: each fails with
/// `Fatal` naming `code`, and the pool does not retry more than twice.
async fn fatal_without_retry_storm(url: &str, code: u16, needle: &str) {
    let events = Events::new();
    let pool = common::builder(url, &events).build().unwrap();
    let started = Instant::now();
    let err = pool
        .get()
        .await
        .expect_err("the server accepted bad settings");
    let first_in = started.elapsed();
    assert!(
        matches!(err, PoolError::Fatal { .. }),
        "expected Fatal, got {}",
        error_chain(&err)
    );
    assert_eq!(server_code(&err), Some(code), "{}", error_chain(&err));
    assert!(error_chain(&err).contains(needle), "{}", error_chain(&err));
    // Immediate: far from the 10 s checkout timeout.
    assert!(first_in < Duration::from_secs(5), "{first_in:?}");

    for i in 0..50 {
        let err = pool
            .get()
            .await
            .expect_err("the server accepted bad settings");
        assert!(
            matches!(err, PoolError::Fatal { .. }),
            "checkout {i}: expected Fatal, got {}",
            error_chain(&err)
        );
    }
    let status = pool.status();
    assert!(
        status.connect_failures <= 2,
        "a retry storm against a server that rejects the settings: {status:?}"
    );
    let fatal_events = events
        .connect_failures()
        .iter()
        .filter(|(_, _, class)| *class == ErrorClass::Fatal)
        .count();
    assert!((1..=2).contains(&fatal_events), "{fatal_events}");
    eprintln!(
        "F11 ({needle}): first Fatal after {first_in:?}; 51 checkouts in {:?} made {} connect \
         attempts; message: {}",
        started.elapsed(),
        status.connect_failures,
        error_chain(&err)
    );
}

/// F11: a wrong password: an immediate `Fatal` error whose source is the
/// server's 1045 Access denied, and no retry storm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f11_wrong_password_fails_fast_without_retry_storm() {
    let db = common::shared_mariadb();
    let url = db.url_for(
        poolwarden_testkit::MariaDb::PW_USER,
        "wrong-password",
        "test",
    );
    fatal_without_retry_storm(&url, 1045, "Access denied").await;
}

/// F11: an unknown database: an immediate `Fatal` error whose source is the
/// server's 1049 Unknown database, and no retry storm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f11_unknown_database_fails_fast_without_retry_storm() {
    let db = common::shared_mariadb();
    let url = db.url_for(
        poolwarden_testkit::MariaDb::PW_USER,
        poolwarden_testkit::MariaDb::PW_PASSWORD,
        "f11_no_such_db",
    );
    fatal_without_retry_storm(&url, 1049, "Unknown database").await;
}

/// F11: `build_and_connect` reports bad settings at start-up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f11_build_and_connect_reports_bad_credentials_at_start_up() {
    let db = common::shared_mariadb();
    let url = db.url_for(
        poolwarden_testkit::MariaDb::PW_USER,
        "wrong-password",
        "test",
    );
    let events = Events::new();
    match common::builder(&url, &events).build_and_connect().await {
        Err(StartError::Connect(e @ PoolError::Fatal { .. })) => {
            assert_eq!(server_code(&e), Some(1045), "{}", error_chain(&e));
        }
        Err(e) => panic!("expected a Fatal connect error, got {e}"),
        Ok(_) => panic!("the server accepted a wrong password"),
    }
}

/// F11: once the configuration problem is fixed (the database created), the
/// pool connects again after `fatal_retry_interval`, without help.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f11_pool_recovers_once_the_database_exists() {
    let db = common::shared_mariadb();
    let url = db.url_for(
        poolwarden_testkit::MariaDb::PW_USER,
        poolwarden_testkit::MariaDb::PW_PASSWORD,
        "f11_created_later",
    );
    let events = Events::new();
    let pool = common::builder(&url, &events)
        .fatal_retry_interval(Duration::from_millis(500))
        .build()
        .unwrap();
    let err = pool
        .get()
        .await
        .expect_err("the database does not exist yet");
    assert!(
        matches!(err, PoolError::Fatal { .. }),
        "{}",
        error_chain(&err)
    );
    common::admin(&db, "CREATE DATABASE f11_created_later");
    let fixed_at = Instant::now();
    let mut attempts = 0;
    let mut c = loop {
        attempts += 1;
        match pool.get().await {
            Ok(c) => break c,
            Err(e @ PoolError::Fatal { .. }) => {
                assert!(
                    fixed_at.elapsed() < Duration::from_secs(10),
                    "{}",
                    error_chain(&e)
                );
                // A caller retrying now and then (not synchronisation).
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("unexpected {}", error_chain(&e)),
        }
    };
    assert_eq!(common::select_42(&mut c).await.unwrap(), Some(42));
    let status = pool.status();
    assert!(status.connect_failures <= 3, "{status:?}");
    eprintln!(
        "F11 recovery: served {:?} after the database was created ({attempts} checkouts, \
         {} failed connects in all)",
        fixed_at.elapsed(),
        status.connect_failures
    );
}
