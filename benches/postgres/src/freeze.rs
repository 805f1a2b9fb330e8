//! Two more fault scenarios of issue 12: a frozen server (SIGSTOP) with
//! callers that have a deadline, and `idle_session_timeout` expiring every
//! pooled session.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use poolwarden_testkit::Postgres;

use crate::contenders::{build, build_bounded, Kind};
use crate::faults::{first_success, Load};
use crate::scenarios::{load, warm};

/// Each caller's deadline, and every pool's timeouts, on SIGSTOP.
const DEADLINE: Duration = Duration::from_secs(2);
/// Scheduling slack granted on top of the deadline before an answer counts
/// as late.
const SLACK: Duration = Duration::from_millis(100);
/// How long the server stays frozen.
const FREEZE: Duration = Duration::from_secs(5);
/// The benchmark's own bound on one call (never reached while the freeze is
/// shorter).
const OUTER: Duration = Duration::from_secs(15);

/// The server frozen for 5 s under load from 16 callers, each with a 2 s
/// deadline.
pub(crate) async fn sigstop(db: &Postgres, url: &str) {
    println!("## The server frozen (SIGSTOP) for 5 s under load (16 tasks, pool of 10)\n");
    println!(
        "Every caller has a {} s deadline: poolwarden gets it per call (`Pool::get_until`, \
         which also bounds the commands); each peer has its own {} s settings (deadpool's wait, \
         create and recycle timeouts, bb8's connection timeout, sqlx's acquire timeout; none \
         bounds the query). The server is paused with SIGSTOP for {} s, then resumed. \
         \"calls\" are those the freeze touched (in flight when it began, or begun while it \
         lasted); \"answered in time\" means an answer (a row or an error) within the \
         caller's deadline + {} ms, from the call's start; the benchmark's own bound on a call \
         is {} s. After the resume: calls begun after it that failed, and the first success.\n",
        DEADLINE.as_secs(),
        DEADLINE.as_secs(),
        FREEZE.as_secs(),
        SLACK.as_millis(),
        OUTER.as_secs()
    );
    println!("| contender | calls the freeze touched | answered in time | slowest answer (s) | errors after resume | first success after resume (ms) |");
    println!("|---|---|---|---|---|---|");
    for kind in Kind::ALL {
        let c = Arc::new(build_bounded(kind, url, 10, DEADLINE).await);
        warm(&c).await;
        let load = Load::start(&c, 16, OUTER, usize::MAX, Some(DEADLINE));
        let warmed = load.wait_ok(200, Duration::from_secs(10)).await;
        tokio::task::block_in_place(|| db.pause()).expect("pausing the server");
        let paused = Instant::now();
        tokio::time::sleep(FREEZE).await;
        let resuming = Instant::now();
        tokio::task::block_in_place(|| db.resume()).expect("resuming the server");
        let resumed = Instant::now();
        let ok_at_resume = load.ok.load(Relaxed);
        let recovered = load
            .wait_ok(ok_at_resume + 500, Duration::from_secs(20))
            .await;
        let ops = load.finish().await;
        // Every call the freeze touched: begun before the resume, not
        // ended before the pause (those in flight when it came included).
        let frozen: Vec<_> = ops
            .iter()
            .filter(|(s, e, _)| *s < resuming && *e > paused)
            .collect();
        let in_time = frozen
            .iter()
            .filter(|(s, e, _)| e.duration_since(*s) <= DEADLINE + SLACK)
            .count();
        let slowest = frozen
            .iter()
            .map(|(s, e, _)| e.duration_since(*s))
            .max()
            .unwrap_or_default();
        let after = ops.iter().filter(|(s, _, ok)| *s >= resumed && !ok).count();
        println!(
            "| {} | {} | {}{in_time} of {}{} | {:.2} | {after} | {}{} |",
            kind.name(),
            frozen.len(),
            if in_time == frozen.len() { "" } else { "**" },
            frozen.len(),
            if in_time == frozen.len() { "" } else { "**" },
            slowest.as_secs_f64(),
            first_success(&ops, resumed),
            if recovered && warmed {
                ""
            } else {
                " (did not recover)"
            }
        );
        if let Ok(c) = Arc::try_unwrap(c) {
            c.close().await;
        }
    }
    println!();
}

/// Rounds of (idle past `idle_session_timeout`, then a burst).
const IDLE_ROUNDS: usize = 3;
/// Tasks × operations of each burst: 200 checkouts.
const BURST: (usize, usize) = (20, 10);

/// A private server with `idle_session_timeout = 2s`: each pool is warmed
/// (10 sessions), left idle 3 s (the server closes every session), then
/// 200 checkouts from 20 tasks; 3 rounds.
pub(crate) async fn idle_session_timeout() {
    let db = tokio::task::spawn_blocking(|| {
        Postgres::builder()
            .setting("idle_session_timeout", "2s")
            .start()
            .expect("a private PostgreSQL")
    })
    .await
    .unwrap();
    let url = format!("{}?application_name=bench", db.url());
    let total = IDLE_ROUNDS * BURST.0 * BURST.1;
    println!("## `idle_session_timeout` (2 s) expires every pooled session (pool of 10)\n");
    println!(
        "A second private server with `idle_session_timeout = 2s`. Each pool is warmed \
         (10 sessions open), then {IDLE_ROUNDS} rounds of: 3 s idle (the server has closed every \
         session), then {} checkouts running `SELECT 1` from {} tasks, each bounded by 10 s. \
         \"errors\" over all {total} checkouts after expiry; \"slowest round\" is the longest \
         burst.\n",
        BURST.0 * BURST.1,
        BURST.0
    );
    println!("| contender | errors after expiry | slowest round (ms) |");
    println!("|---|---|---|");
    for kind in Kind::ALL {
        let c = Arc::new(build(kind, &url, 10).await);
        warm(&c).await;
        let mut errors = 0;
        let mut slowest = Duration::ZERO;
        for _ in 0..IDLE_ROUNDS {
            tokio::time::sleep(Duration::from_secs(3)).await;
            let t = Instant::now();
            let (_, errs) = load(&c, BURST.0, Duration::from_secs(60), BURST.1).await;
            slowest = slowest.max(t.elapsed());
            errors += errs;
        }
        println!(
            "| {} | {}{errors} of {total}{} | {:.1} |",
            kind.name(),
            if errors == 0 { "" } else { "**" },
            if errors == 0 { "" } else { "**" },
            slowest.as_secs_f64() * 1000.0
        );
        if let Ok(c) = Arc::try_unwrap(c) {
            c.close().await;
        }
    }
    println!();
}
