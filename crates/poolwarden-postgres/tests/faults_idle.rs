//! Fault suite, idle connections that die: F1 (the server's
//! `idle_session_timeout` closes idle sessions) and F3 (every pooled
//! session terminated while idle), against private PostgreSQL servers.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{Events, PgPool};

/// Check out `n` connections at once (so the pool opens `n`), learn each
/// one's backend pid, and give them all back.
async fn fill(pool: &PgPool, n: usize, idle_timeout: Option<Duration>) -> Vec<u32> {
    let mut guards = Vec::new();
    let mut pids = Vec::new();
    for _ in 0..n {
        let mut c = pool.get().await.expect("filling the pool");
        if let Some(t) = idle_timeout {
            assert_eq!(
                c.server_idle_timeout(),
                Some(t),
                "the pool did not learn the server's idle_session_timeout"
            );
        }
        pids.push(common::backend_pid(&mut c).await);
        guards.push(c);
    }
    drop(guards);
    assert_eq!(pool.status().open, n as u32, "{:?}", pool.status());
    pids
}

/// `tasks` tasks each checking out `per_task` times and asking for the
/// backend pid. Returns the pids seen, and every error.
async fn checkouts(pool: &PgPool, tasks: usize, per_task: usize) -> (Vec<u32>, Vec<String>) {
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut errors = Vec::new();
                for _ in 0..per_task {
                    match pool.get().await {
                        Ok(c) => match c.query_one("SELECT pg_backend_pid()", &[]).await {
                            Ok(row) => seen.push(row.get::<_, i32>(0) as u32),
                            Err(e) => errors.push(format!("query: {e}")),
                        },
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

/// Wait until the server lists none of `pids`.
async fn wait_backends_gone(db: &poolwarden_testkit::Postgres, pids: &[u32]) {
    let gone = common::poll_until(Duration::from_secs(15), || {
        let alive = common::pool_backends(db);
        pids.iter().all(|p| !alive.contains(p))
    })
    .await;
    assert!(gone, "the server still lists some of {pids:?}");
}

/// F1 with `idle_session_timeout = 2s` and the default settings: fill the
/// pool, idle past the timeout, then 200 checkouts with queries see zero
/// errors, and none runs on a session the server has closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f1_idle_session_timeout_idle_connections_are_never_handed_out() {
    let _serial = common::serial().await;
    let db = common::start_postgres(&[("idle_session_timeout", "2s")]);
    let events = Events::new();
    let pool = common::builder(&db.url(), &events)
        .max_size(10)
        .build()
        .unwrap();

    let pids = fill(&pool, 10, Some(Duration::from_secs(2))).await;
    // Idle past the server's timeout (real time: the server's clock).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let alive = common::pool_backends(&db);
    let dead: HashSet<u32> = pids
        .iter()
        .copied()
        .filter(|p| !alive.contains(p))
        .collect();

    let (seen, errors) = checkouts(&pool, 10, 20).await;
    assert!(errors.is_empty(), "{} errors: {errors:#?}", errors.len());
    assert_eq!(seen.len(), 200);
    let used_dead: Vec<_> = seen.iter().filter(|p| dead.contains(p)).collect();
    assert!(
        used_dead.is_empty(),
        "closed sessions were used: {used_dead:?}"
    );
}

/// F1 with nothing but the probe: the pool is not told the server's
/// timeout and never pings, yet a session the server closed is never handed
/// out, because tokio-postgres's connection task reads the socket all the
/// time and the manager's probe sees the client closed (no round trip).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f1_sessions_closed_by_the_server_are_seen_without_a_round_trip() {
    let _serial = common::serial().await;
    let db = common::start_postgres(&[("idle_session_timeout", "1s")]);
    let events = Events::new();
    let manager = poolwarden_postgres::PgManager::from_url(&db.url())
        .unwrap()
        .discover_server_timeout(false);
    let pool = common::builder_for(manager, &events)
        .max_size(10)
        .skip_validation(true)
        .keepalive_interval(None)
        .build()
        .unwrap();

    let pids = fill(&pool, 10, None).await;
    wait_backends_gone(&db, &pids).await;
    let validations = pool.status().validations;

    let (seen, errors) = checkouts(&pool, 10, 20).await;
    assert!(errors.is_empty(), "{} errors: {errors:#?}", errors.len());
    assert_eq!(seen.len(), 200);
    assert!(seen.iter().all(|p| !pids.contains(p)));
    assert_eq!(pool.status().validations, validations, "no ping was needed");
    assert!(
        pool.status().closed.closed >= 10,
        "the closed sessions were discarded as closed: {:?}",
        pool.status().closed
    );
}

/// F3: `pg_terminate_backend` of every pooled session while idle; the next
/// 200 checkouts see zero errors and never a terminated session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f3_terminate_every_idle_session() {
    let _serial = common::serial().await;
    let db = common::start_postgres(&[]);
    let events = Events::new();
    let pool = common::builder(&db.url(), &events)
        .max_size(10)
        .build()
        .unwrap();

    let pids = fill(&pool, 10, None).await;
    let terminated = common::admin(
        &db,
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = 'poolwarden') t",
    );
    assert_eq!(terminated, vec![vec!["10".to_owned()]]);
    wait_backends_gone(&db, &pids).await;

    let (seen, errors) = checkouts(&pool, 10, 20).await;
    assert!(errors.is_empty(), "{} errors: {errors:#?}", errors.len());
    assert_eq!(seen.len(), 200);
    let reused: Vec<_> = seen.iter().filter(|p| pids.contains(p)).collect();
    assert!(
        reused.is_empty(),
        "terminated sessions were used: {reused:?}"
    );
}
