//! Fault suite, idle connections that die: F1 (the server's `wait_timeout`
//! closes idle connections) and F3 (one connection killed while idle),
//! against private MariaDB servers. See `docs/failure-modes.md`.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{Events, MyPool};
use poolwarden::CloseReason;
use poolwarden_mysql::mysql_async::prelude::Queryable;

/// Check out `n` connections at once (so the pool opens `n`), learn each
/// one's pool id and server session id, and give them all back.
async fn fill(pool: &MyPool, n: usize, wait_timeout: Option<Duration>) -> Vec<(u64, u64)> {
    let mut guards = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..n {
        let mut c = pool.get().await.expect("filling the pool");
        if let Some(t) = wait_timeout {
            assert_eq!(
                c.server_idle_timeout(),
                Some(t),
                "the pool did not learn the server's wait_timeout"
            );
        }
        ids.push((c.connection_id(), common::session_id(&mut c).await));
        guards.push(c);
    }
    drop(guards);
    assert_eq!(pool.status().open, n as u32, "{:?}", pool.status());
    ids
}

/// `tasks` tasks each checking out `per_task` times and asking the server for
/// its session id. Returns the session ids seen, and every error.
async fn checkouts(pool: &MyPool, tasks: usize, per_task: usize) -> (Vec<u64>, Vec<String>) {
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut errors = Vec::new();
                for _ in 0..per_task {
                    match pool.get().await {
                        Ok(mut c) => {
                            match c.query_first::<u64, _>("SELECT CONNECTION_ID()").await {
                                Ok(Some(id)) => seen.push(id),
                                Ok(None) => errors.push("no row".to_owned()),
                                Err(e) => errors.push(format!("query: {e}")),
                            }
                        }
                        Err(e) => errors.push(format!("get: {}", common::error_chain(&e))),
                    }
                }
                (seen, errors)
            })
        })
        .collect();
    let mut seen = Vec::new();
    let mut errors = Vec::new();
    for h in handles {
        let (s, e) = h.await.expect("checkout task panicked");
        seen.extend(s);
        errors.extend(e);
    }
    (seen, errors)
}

/// Wait until the server no longer lists any of `sessions`.
async fn wait_sessions_gone(db: &poolwarden_testkit::MariaDb, sessions: &[u64]) {
    let gone = common::poll_until(Duration::from_secs(15), || {
        let alive = common::server_threads(db);
        sessions.iter().all(|s| !alive.contains(s))
    })
    .await;
    assert!(
        gone,
        "the server still lists some of {sessions:?}: {:?}",
        common::server_threads(db)
    );
}

/// F1 with `SET GLOBAL wait_timeout = 2` and the default settings: fill
/// the pool, idle past the timeout, then 200 checkouts with queries see zero
/// errors, and none of them runs on a session the server has closed. (With
/// the defaults the pool pings idle connections below half the server's
/// timeout, so they may well survive: either way, nothing dead is used.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f1_set_global_wait_timeout_idle_connections_are_never_handed_out() {
    let _serial = common::serial().await;
    let db = common::start_mariadb(&[]);
    common::admin(&db, "SET GLOBAL wait_timeout = 2");
    let events = Events::new();
    let pool = common::builder(&db.url(), &events)
        .max_size(10)
        .build()
        .unwrap();

    let ids = fill(&pool, 10, Some(Duration::from_secs(2))).await;
    let sessions: Vec<u64> = ids.iter().map(|(_, s)| *s).collect();

    // Idle past the server's timeout (real time: the server's clock).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let alive = common::server_threads(&db);
    let dead: HashSet<u64> = sessions
        .iter()
        .copied()
        .filter(|s| !alive.contains(s))
        .collect();

    let (seen, errors) = checkouts(&pool, 10, 20).await;
    assert!(errors.is_empty(), "{} errors: {errors:#?}", errors.len());
    assert_eq!(seen.len(), 200);
    let used_dead: Vec<_> = seen.iter().filter(|s| dead.contains(s)).collect();
    assert!(
        used_dead.is_empty(),
        "sessions the server had closed were used: {used_dead:?}"
    );

    let status = pool.status();
    assert_eq!(
        status.invalidations, 0,
        "an idle timeout is not a server restart: {status:?}"
    );
    eprintln!(
        "F1 (defaults): after 3 s idle {} of 10 sessions were closed, {} kept alive; \
         closed by the pool: server_idle_timeout={} validation_failed={}; validations={}",
        dead.len(),
        10 - dead.len(),
        status.closed.server_idle_timeout,
        status.closed.validation_failed,
        status.validations
    );
}

/// F1 with `--wait-timeout=2` and no keepalive: the pool retires its idle
/// connections itself, before the server's timeout, and the next 200
/// checkouts see zero errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f1_wait_timeout_idle_connections_are_retired_before_the_server_closes_them() {
    let _serial = common::serial().await;
    let db = common::start_mariadb(&["--wait-timeout=2"]);
    let events = Events::new();
    let pool = common::builder(&db.url(), &events)
        .max_size(10)
        .keepalive_interval(None)
        .build()
        .unwrap();

    let ids = fill(&pool, 10, Some(Duration::from_secs(2))).await;
    let sessions: Vec<u64> = ids.iter().map(|(_, s)| *s).collect();
    let pool_ids: HashSet<u64> = ids.iter().map(|(p, _)| *p).collect();

    tokio::time::sleep(Duration::from_secs(3)).await;
    wait_sessions_gone(&db, &sessions).await;
    // Each was retired by the pool for the server's idle timeout.
    let retired: HashSet<u64> = events
        .discarded()
        .into_iter()
        .filter(|(_, _, r)| *r == CloseReason::ServerIdleTimeout)
        .map(|(_, id, _)| id)
        .collect();
    assert_eq!(retired, pool_ids, "{:?}", pool.status());
    assert_eq!(pool.status().open, 0, "{:?}", pool.status());

    let (seen, errors) = checkouts(&pool, 10, 20).await;
    assert!(errors.is_empty(), "{} errors: {errors:#?}", errors.len());
    assert_eq!(seen.len(), 200);
    let old: HashSet<u64> = sessions.iter().copied().collect();
    assert!(
        seen.iter().all(|s| !old.contains(s)),
        "closed sessions were used"
    );

    let status = pool.status();
    assert_eq!(status.closed.server_idle_timeout, 10, "{status:?}");
    assert_eq!(status.closed.validation_failed, 0, "{status:?}");
    assert_eq!(status.invalidations, 0, "{status:?}");
}

/// F1 with `--wait-timeout=2` and the maintenance task effectively off, so
/// only the checkout path stands between a dead connection and the
/// borrower: the server really closes all ten, and the next 200 checkouts
/// still see zero errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f1_wait_timeout_checkout_path_alone_never_hands_out_a_dead_connection() {
    let _serial = common::serial().await;
    let db = common::start_mariadb(&["--wait-timeout=2"]);
    let events = Events::new();
    let pool = common::builder(&db.url(), &events)
        .max_size(10)
        .maintenance_interval(Duration::from_secs(3600))
        .build()
        .unwrap();

    let ids = fill(&pool, 10, Some(Duration::from_secs(2))).await;
    let sessions: Vec<u64> = ids.iter().map(|(_, s)| *s).collect();
    // The resets on return are done: ten idle connections.
    assert!(
        common::poll_until(Duration::from_secs(10), || pool.status().idle == 10).await,
        "{:?}",
        pool.status()
    );

    tokio::time::sleep(Duration::from_secs(3)).await;
    // The server closed them all: the pool now holds ten dead connections.
    wait_sessions_gone(&db, &sessions).await;
    assert_eq!(pool.status().idle, 10, "{:?}", pool.status());
    assert_eq!(pool.status().closed.total(), 0, "{:?}", pool.status());

    let (seen, errors) = checkouts(&pool, 10, 20).await;
    assert!(errors.is_empty(), "{} errors: {errors:#?}", errors.len());
    assert_eq!(seen.len(), 200);
    let old: HashSet<u64> = sessions.iter().copied().collect();
    assert!(
        seen.iter().all(|s| !old.contains(s)),
        "dead sessions were used"
    );

    let status = pool.status();
    assert_eq!(
        status.closed.server_idle_timeout, 10,
        "each dead connection is retired at checkout, never handed out: {status:?}"
    );
    assert_eq!(status.invalidations, 0, "{status:?}");
}

/// F3, detected by validation: every idle connection is `KILL`ed from an
/// admin session; once the validation bypass window has passed, 200
/// checkouts with queries see zero errors and never a killed session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f3_killed_idle_connections_are_replaced_at_checkout() {
    let _serial = common::serial().await;
    let db = common::start_mariadb(&[]);
    let events = Events::new();
    let bypass = Duration::from_millis(500);
    let pool = common::builder(&db.url(), &events)
        .max_size(10)
        .validation_bypass(bypass)
        // No keepalive: only the checkout's validation may find them.
        .keepalive_interval(None)
        .build()
        .unwrap();

    let ids = fill(&pool, 10, None).await;
    let sessions: Vec<u64> = ids.iter().map(|(_, s)| *s).collect();
    assert!(
        common::poll_until(Duration::from_secs(10), || pool.status().idle == 10).await,
        "{:?}",
        pool.status()
    );
    // Last known good no later than now (the resets on return are done).
    let known_good = Instant::now();

    let kill: String = sessions.iter().map(|s| format!("KILL {s};")).collect();
    common::admin(&db, &kill);
    wait_sessions_gone(&db, &sessions).await;
    // "Idle": longer than the window in which the pool trusts a connection
    // without a ping (the contract's own time).
    tokio::time::sleep_until((known_good + bypass + Duration::from_millis(100)).into()).await;

    let (seen, errors) = checkouts(&pool, 10, 20).await;
    assert!(errors.is_empty(), "{} errors: {errors:#?}", errors.len());
    assert_eq!(seen.len(), 200);
    let old: HashSet<u64> = sessions.iter().copied().collect();
    assert!(
        seen.iter().all(|s| !old.contains(s)),
        "a killed session was used"
    );

    let status = pool.status();
    assert!(status.validations >= 1, "{status:?}");
    assert_eq!(status.closed.total(), 10, "{status:?}");
    assert_eq!(
        status.closed.validation_failed + status.closed.stale,
        10,
        "each killed connection is discarded by its failed ping (or retired \
         with the pool-wide invalidation the first failed ping caused): {status:?}"
    );
    eprintln!(
        "F3 (validation): closed validation_failed={} stale={}, invalidations={}",
        status.closed.validation_failed, status.closed.stale, status.invalidations
    );
}

/// F3, detected by keepalive: the maintenance task's pings find the killed
/// idle connections and discard them before any borrower asks; then 200
/// checkouts see zero errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f3_killed_idle_connections_are_found_by_keepalive() {
    let _serial = common::serial().await;
    let db = common::start_mariadb(&[]);
    let events = Events::new();
    let pool = common::builder(&db.url(), &events)
        .max_size(10)
        .keepalive_interval(Some(Duration::from_secs(1)))
        .validation_timeout(Duration::from_millis(500))
        .build()
        .unwrap();

    let ids = fill(&pool, 10, None).await;
    let sessions: Vec<u64> = ids.iter().map(|(_, s)| *s).collect();
    let pool_ids: HashSet<u64> = ids.iter().map(|(p, _)| *p).collect();
    assert!(
        common::poll_until(Duration::from_secs(10), || pool.status().idle == 10).await,
        "{:?}",
        pool.status()
    );
    let checkouts_before = pool.status().checkouts;

    let kill: String = sessions.iter().map(|s| format!("KILL {s};")).collect();
    common::admin(&db, &kill);

    // No borrower: the pool finds all ten by itself.
    let all_discarded = events
        .wait_until(Duration::from_secs(10), |recs| {
            let gone: HashSet<u64> = recs
                .iter()
                .filter_map(|r| match r.kind {
                    common::Kind::Discarded { id, .. } => Some(id),
                    _ => None,
                })
                .collect();
            pool_ids.is_subset(&gone)
        })
        .await;
    assert!(
        all_discarded,
        "keepalive did not find the killed connections: {:?}",
        pool.status()
    );
    assert_eq!(
        pool.status().checkouts,
        checkouts_before,
        "nobody checked out meanwhile"
    );

    let (seen, errors) = checkouts(&pool, 10, 20).await;
    assert!(errors.is_empty(), "{} errors: {errors:#?}", errors.len());
    assert_eq!(seen.len(), 200);
    let old: HashSet<u64> = sessions.iter().copied().collect();
    assert!(
        seen.iter().all(|s| !old.contains(s)),
        "a killed session was used"
    );

    let status = pool.status();
    assert_eq!(
        status.closed.validation_failed + status.closed.stale,
        10,
        "{status:?}"
    );
    eprintln!(
        "F3 (keepalive): closed validation_failed={} stale={}, invalidations={}, validations={}",
        status.closed.validation_failed,
        status.closed.stale,
        status.invalidations,
        status.validations
    );
}
