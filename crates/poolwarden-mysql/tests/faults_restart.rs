//! Fault suite, F2: the server restarts under steady load and every pooled
//! connection dies at once, against a private MariaDB server. Run once with
//! the default `WhenUnavailable::FailFast` and once with `Wait`. See
//! `docs/failure-modes.md`.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use common::{describe_failures, ms, Events, Kind, Load, Op, Outcome, Select42};
use poolwarden::{InvalidationCause, PoolError, WhenUnavailable};

const TASKS: usize = 32;
const MAX_SIZE: u32 = 10;
const MAX_CONNECTING: u32 = 2;
/// Longer than the whole downtime, so that with `Wait` no checkout gives up.
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(20);

/// Steady load from 32 tasks; stop the server gracefully; restart it on the
/// same port 2 s after it is down; load on until 2000 more queries have
/// succeeded. Asserts everything F2 asks that holds for both policies and
/// returns the operations and timestamps for the policy-specific checks.
async fn restart_under_load(policy: WhenUnavailable) -> Restart {
    let _serial = common::serial().await;
    let mut db = common::start_mariadb(&[]);
    let events = Events::new();
    let pool = common::builder(&db.url(), &events)
        .max_size(MAX_SIZE)
        .max_connecting(MAX_CONNECTING)
        .checkout_timeout(CHECKOUT_TIMEOUT)
        .when_unavailable(policy)
        .build()
        .unwrap();

    let load = Load::start(&pool, Select42, TASKS, 1_000_000, Duration::from_secs(90));
    assert!(
        load.progress.wait_ok(1000, Duration::from_secs(30)).await,
        "the load never got going: {:?}",
        pool.status()
    );
    let before = pool.status();
    assert_eq!(
        load.progress.err.load(std::sync::atomic::Ordering::SeqCst),
        0
    );

    let stop_at = Instant::now();
    common::blocking(|| db.stop()).expect("stopping the server");
    let down_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let restart_at = Instant::now();
    common::blocking(|| db.start_again()).expect("restarting the server");
    let ready_at = Instant::now();

    let ok_at_ready = load.progress.ok.load(std::sync::atomic::Ordering::SeqCst);
    let recovered = load
        .progress
        .wait_ok(ok_at_ready + 2000, Duration::from_secs(30))
        .await;
    let ops = load.finish().await;
    assert!(
        recovered,
        "{policy:?}: the pool did not serve 2000 queries within 30 s of the server being ready: {:?}\n{}",
        pool.status(),
        describe_failures(&ops, stop_at, 10)
    );

    // Every connection opened before the server went down is retired.
    let pre: HashSet<u64> = events
        .connected()
        .into_iter()
        .filter(|(at, _)| *at < down_at)
        .map(|(_, id)| id)
        .collect();
    let all_retired = events
        .wait_until(Duration::from_secs(10), |recs| {
            let closed: HashSet<u64> = recs
                .iter()
                .filter_map(|r| match r.kind {
                    Kind::Discarded { id, .. } => Some(id),
                    _ => None,
                })
                .collect();
            pre.is_subset(&closed)
        })
        .await;
    let status = pool.status();
    assert!(
        all_retired,
        "{policy:?}: connections from before the restart are still open: {status:?}"
    );
    let mut reasons: BTreeMap<&'static str, u64> = BTreeMap::new();
    for (_, id, reason) in events.discarded() {
        if pre.contains(&id) {
            *reasons.entry(reason.as_str()).or_default() += 1;
        }
    }

    // From the pool's counters: every one of them was closed for a reason
    // that says "dead or older than the disconnect", never handed out.
    assert!(
        status.closed.total() >= pre.len() as u64,
        "{policy:?}: {status:?}"
    );
    let unexpected: Vec<_> = reasons
        .keys()
        .filter(|r| !["stale", "closed", "reset_failed", "validation_failed"].contains(r))
        .collect();
    assert!(
        unexpected.is_empty(),
        "{policy:?}: pre-restart connections closed as {reasons:?}"
    );

    let first_invalidation = events
        .all()
        .into_iter()
        .find(|r| {
            r.at >= stop_at
                && matches!(
                    r.kind,
                    Kind::Invalidated {
                        cause: InvalidationCause::Disconnect,
                        ..
                    }
                )
        })
        .map(|r| r.at)
        .unwrap_or_else(|| panic!("{policy:?}: no pool-wide invalidation: {status:?}"));
    assert!(status.invalidations >= 1, "{status:?}");
    assert!(
        status.created > before.created,
        "{policy:?}: no new connection after the restart: {status:?}"
    );

    // Errors only while the server was down: none from an operation that
    // started once it answered again, none that ended before it stopped.
    let late: Vec<Op> = ops
        .iter()
        .filter(|op| !op.is_ok() && (op.start >= ready_at || op.end < stop_at))
        .cloned()
        .collect();
    assert!(
        late.is_empty(),
        "{policy:?}: errors outside the downtime (stop began at +0 ms, ready at +{} ms): {}",
        ms(stop_at, ready_at),
        describe_failures(&late, stop_at, 10)
    );

    // Once the pool has seen one disconnect it never hands out an older
    // connection: no query fails on a connection handed out after that.
    let opened_before = |at: Instant| -> HashSet<u64> {
        events
            .connected()
            .into_iter()
            .filter(|(t, _)| *t < at)
            .map(|(_, id)| id)
            .collect()
    };
    let before_invalidation = opened_before(first_invalidation);
    let stale_hand_outs: Vec<Op> = ops
        .iter()
        .filter(|op| {
            op.start > first_invalidation
                && op.conn.is_some_and(|c| before_invalidation.contains(&c))
        })
        .cloned()
        .collect();
    assert!(
        stale_hand_outs.is_empty(),
        "{policy:?}: connections opened before the first disconnect was seen were handed out \
         after it: {stale_hand_outs:#?}"
    );
    let query_errors_after_invalidation: Vec<Op> = ops
        .iter()
        .filter(|op| matches!(op.outcome, Outcome::Query(_)) && op.start > first_invalidation)
        .cloned()
        .collect();
    assert!(
        query_errors_after_invalidation.is_empty(),
        "{policy:?}: {}",
        describe_failures(&query_errors_after_invalidation, stop_at, 10)
    );
    // No connection from before the restart is used after it.
    let used_after_restart: Vec<Op> = ops
        .iter()
        .filter(|op| op.start >= ready_at && op.conn.is_some_and(|c| pre.contains(&c)))
        .cloned()
        .collect();
    assert!(
        used_after_restart.is_empty(),
        "{policy:?}: pre-restart connections used after it: {used_after_restart:#?}"
    );

    // Served again.
    let served_at = ops
        .iter()
        .filter(|op| op.is_ok() && op.handed_out.is_some_and(|h| h > down_at))
        .map(|op| op.end)
        .min()
        .unwrap_or_else(|| panic!("{policy:?}: never served after the restart"));
    let reconnected_at = events
        .connected()
        .into_iter()
        .map(|(at, _)| at)
        .filter(|at| *at > down_at)
        .min()
        .expect("a connection opened after the restart");
    assert!(
        served_at < ready_at + Duration::from_secs(5),
        "{policy:?}: first query served {} ms after the server was ready",
        ms(ready_at, served_at)
    );

    // No thundering herd: failed connects during the downtime stay within
    // `max_connecting` per backoff round (rounds are at least
    // `connect_backoff_max / 2` = 25 ms apart once the backoff has grown),
    // with 2x slack.
    let window_end = ready_at + Duration::from_secs(1);
    let failed_connects = events
        .connect_failures()
        .into_iter()
        .filter(|(at, _, _)| *at >= stop_at && *at <= window_end)
        .count() as u64;
    let window_ms = window_end.duration_since(stop_at).as_millis() as u64;
    let herd_bound = 2 * u64::from(MAX_CONNECTING) * (window_ms / 25 + 4);
    assert!(
        failed_connects <= herd_bound,
        "{policy:?}: {failed_connects} failed connects in {window_ms} ms (bound {herd_bound})"
    );

    let get_errors = ops
        .iter()
        .filter(|op| matches!(op.outcome, Outcome::Get(_)))
        .count();
    let query_errors = ops
        .iter()
        .filter(|op| matches!(op.outcome, Outcome::Query(_)))
        .count();
    let mut get_kinds: BTreeMap<&'static str, usize> = BTreeMap::new();
    for op in &ops {
        if let Outcome::Get(e) = &op.outcome {
            *get_kinds.entry(kind(e)).or_default() += 1;
        }
    }
    eprintln!(
        "F2 {policy:?}: {} ops ({} ok, {get_errors} get errors {get_kinds:?}, {query_errors} \
         query errors). stop() took {} ms, down for {} ms, start_again() took {} ms. First \
         invalidation +{} ms after stop began. First new connection {} ms and first query \
         served {} ms relative to the server being ready (testkit readiness). {failed_connects} \
         failed connects in the {window_ms} ms window (bound {herd_bound}). Pre-restart \
         connections: {} closed as {reasons:?}. Status: created={} invalidations={} \
         connect_failures={} timeouts={}",
        ops.len(),
        ops.iter().filter(|op| op.is_ok()).count(),
        ms(stop_at, down_at),
        ms(down_at, ready_at),
        ms(restart_at, ready_at),
        ms(stop_at, first_invalidation),
        ms(ready_at, reconnected_at),
        ms(ready_at, served_at),
        pre.len(),
        status.created,
        status.invalidations,
        status.connect_failures,
        status.timeouts,
    );
    let query_failures: Vec<Op> = ops
        .iter()
        .filter(|op| matches!(op.outcome, Outcome::Query(_)))
        .cloned()
        .collect();
    if !query_failures.is_empty() {
        eprintln!(
            "F2 {policy:?}: query errors (times relative to the start of stop()): {}",
            describe_failures(&query_failures, stop_at, 10)
        );
    }
    Restart {
        ops,
        stop_at,
        first_invalidation,
    }
}

/// What the policy-specific checks need.
struct Restart {
    ops: Vec<Op>,
    stop_at: Instant,
    first_invalidation: Instant,
}

fn kind(e: &PoolError) -> &'static str {
    match e {
        PoolError::Timeout(_) => "timeout",
        PoolError::Unavailable { .. } => "unavailable",
        PoolError::Fatal { .. } => "fatal",
        PoolError::Busy => "busy",
        PoolError::Closed => "closed",
        _ => "other",
    }
}

/// F2 with the default `FailFast`: while the server is down checkouts fail
/// fast with `Unavailable` (never a timeout, never `Fatal`); errors only
/// while it is down; zero once it answers; every older connection retired
/// after the first disconnect; served again soon after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f2_restart_under_load_fail_fast() {
    let r = restart_under_load(WhenUnavailable::FailFast).await;
    let wrong_kind: Vec<Op> = r
        .ops
        .iter()
        .filter(|op| matches!(&op.outcome, Outcome::Get(e) if !matches!(e, PoolError::Unavailable { .. })))
        .cloned()
        .collect();
    assert!(
        wrong_kind.is_empty(),
        "checkout errors other than Unavailable: {}",
        describe_failures(&wrong_kind, r.stop_at, 10)
    );
}

/// F2 with `WhenUnavailable::Wait` and a checkout timeout longer than the
/// downtime: no checkout fails at all; the only errors are queries on
/// connections handed out before the pool could know the server was going
/// away (the shutdown cut them mid-use).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f2_restart_under_load_wait() {
    let r = restart_under_load(WhenUnavailable::Wait).await;
    let get_errors: Vec<Op> = r
        .ops
        .iter()
        .filter(|op| matches!(op.outcome, Outcome::Get(_)))
        .cloned()
        .collect();
    assert!(
        get_errors.is_empty(),
        "with Wait no checkout may fail while the downtime is shorter than the checkout \
         timeout: {}",
        describe_failures(&get_errors, r.stop_at, 10)
    );
    let avoidable: Vec<Op> = r
        .ops
        .iter()
        .filter(|op| !op.is_ok() && op.start > r.first_invalidation)
        .cloned()
        .collect();
    assert!(
        avoidable.is_empty(),
        "{}",
        describe_failures(&avoidable, r.stop_at, 10)
    );
}

/// F2 at start-up: the server is down when the application starts and
/// retries `warm_up()` until it answers; once the server is back, a
/// `warm_up()` must connect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f2_warm_up_retries_once_the_server_is_back() {
    let _serial = common::serial().await;
    let mut db = common::start_mariadb(&[]);
    common::blocking(|| db.stop()).expect("stopping the server");
    let events = Events::new();
    let pool = common::builder(&db.url(), &events).build().unwrap();
    let err = pool.warm_up().await.expect_err("the server is down");
    assert!(
        matches!(err, PoolError::Unavailable { .. }),
        "{}",
        common::error_chain(&err)
    );
    common::blocking(|| db.start_again()).expect("restarting the server");
    let back_at = Instant::now();
    let mut attempts = 0;
    let warmed = loop {
        attempts += 1;
        match pool.warm_up().await {
            Ok(()) => break true,
            Err(_) if back_at.elapsed() < Duration::from_secs(5) => {
                // An application retrying now and then (not synchronisation).
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(_) => break false,
        }
    };
    assert!(
        warmed,
        "warm_up() still failing 5 s after the server came back ({attempts} calls, {} \
         connect attempts in all): {:?}",
        pool.status().connect_failures + pool.status().created,
        pool.status()
    );
    assert_eq!(pool.status().idle, 1);
}
