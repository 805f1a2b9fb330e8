//! Scenario 2: the server is stopped and started again under load.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::real::contenders::{build, warm, Kind, Query};
use crate::real::load::{self, OpRecord, Spec};
use crate::real::markdown::Table;
use crate::real::run::Ctx;
use crate::real::s1_throughput::met;
use crate::real::stats::{ms, signed_ms};

const KINDS: [Kind; 7] = [
    Kind::Poolwarden,
    Kind::PoolwardenWait,
    Kind::Sqlx,
    Kind::SqlxNoTest,
    Kind::MysqlAsync,
    Kind::Deadpool,
    Kind::Bb8,
];

/// When things happened, as offsets from the load's start.
struct Marks {
    stop_begin: Duration,
    /// When the port first accepted a TCP connection again.
    port_open: Option<Duration>,
    stop_end: Duration,
    start_begin: Duration,
    ready: Duration,
}

struct Analysis {
    errors_before_stop: usize,
    errors_down: usize,
    errors_after_ready: usize,
    errors_after_ready_started_after: usize,
    first_ok: Option<Duration>,
    last_error_after_ready: Option<Duration>,
    longest_op: Duration,
}

fn analyse(timeline: &[OpRecord], m: &Marks) -> Analysis {
    let errs = || timeline.iter().filter(|r| !r.ok);
    Analysis {
        errors_before_stop: errs().filter(|r| r.end < m.stop_begin).count(),
        errors_down: errs()
            .filter(|r| r.end >= m.stop_begin && r.end < m.ready)
            .count(),
        errors_after_ready: errs().filter(|r| r.end >= m.ready).count(),
        errors_after_ready_started_after: errs().filter(|r| r.start >= m.ready).count(),
        // The server is fully down once stop() returned; a success ending
        // after start_again() began used a new connection.
        first_ok: timeline
            .iter()
            .filter(|r| r.ok && r.end >= m.start_begin)
            .map(|r| r.end)
            .min(),
        last_error_after_ready: errs().filter(|r| r.end >= m.ready).map(|r| r.end).max(),
        longest_op: timeline
            .iter()
            .map(|r| r.end.saturating_sub(r.start))
            .max()
            .unwrap_or_default(),
    }
}

pub(crate) async fn run(ctx: &Ctx) -> Result<String, String> {
    let stop_at = ctx.pick(Duration::from_secs(3), Duration::from_millis(1500));
    let restart_at = ctx.pick(Duration::from_secs(5), Duration::from_millis(2500));
    let tail = ctx.pick(Duration::from_secs(3), Duration::from_millis(1500));
    let mut t = Table::new(&[
        "contender",
        "stop took",
        "down (stop → ready), ms",
        "ok ops",
        "errors before stop",
        "errors while down",
        "errors after ready (of them started after ready)",
        "port open − ready, ms",
        "first success − ready, ms",
        "first success − port open, ms",
        "error-free from ready +, ms",
        "longest op, ms",
        "most frequent error",
        "pool's own counters",
    ]);
    let mut verdicts = Vec::new();
    for kind in KINDS {
        eprintln!("s2: {}", kind.name());
        let c = build(kind, &ctx.server, 10).await?;
        warm(&c, 10).await;
        let stop = Arc::new(AtomicU64::new(u64::MAX));
        let start = Instant::now() + Duration::from_millis(50);
        let spec = Spec {
            think: Some(Duration::from_millis(10)),
            max_ops_per_task: 100_000,
            op_timeout: Duration::from_secs(15),
            timeline: true,
            stop_at: Some(Arc::clone(&stop)),
            start_at: Some(start),
            ..Spec::new(32, Duration::from_secs(40), Query::Select1)
        };
        let c2 = Arc::clone(&c);
        let load = tokio::spawn(async move { load::run(&c2, &spec).await });

        tokio::time::sleep_until((start + stop_at).into()).await;
        let stop_begin = start.elapsed();
        let stopped = ctx.server.stop().await;
        let stop_end = start.elapsed();
        tokio::time::sleep_until((start + restart_at).into()).await;
        let start_begin = start.elapsed();
        let probe_stop = Arc::new(AtomicBool::new(false));
        let probe = {
            let server = ctx.server.clone();
            let stop = Arc::clone(&probe_stop);
            tokio::spawn(async move { server.wait_port_open(Duration::from_secs(60), stop).await })
        };
        let mut restarted = ctx.server.start_again().await;
        if restarted.is_err() {
            // One more try: the scenarios after this one need the server.
            restarted = ctx.server.start_again().await;
        }
        let ready = start.elapsed();
        probe_stop.store(true, Relaxed);
        let port_open = probe
            .await
            .ok()
            .flatten()
            .map(|t| t.saturating_duration_since(start));
        stop.store(
            u64::try_from((ready + tail).as_nanos()).unwrap_or(u64::MAX),
            Relaxed,
        );
        let out = load.await.map_err(|e| format!("load task: {e}"))?;
        let notes = c.notes();
        c.close().await;
        drop(c);
        stopped.map_err(|e| format!("stopping the server: {e}"))?;
        restarted.map_err(|e| format!("restarting the server: {e}"))?;
        ctx.server.settle(0, Duration::from_secs(5)).await;

        let m = Marks {
            stop_begin,
            port_open,
            stop_end,
            start_begin,
            ready,
        };
        let a = analyse(&out.timeline, &m);
        let first = a
            .first_ok
            .map(|f| signed_ms(f, m.ready))
            .unwrap_or_else(|| "never".to_owned());
        let error_free = match a.last_error_after_ready {
            Some(last) => ms(last - m.ready),
            None => "0 (none after ready)".to_owned(),
        };
        t.row(vec![
            kind.name().to_owned(),
            ms(m.stop_end - m.stop_begin),
            ms(m.ready - m.stop_begin),
            out.ok.to_string(),
            a.errors_before_stop.to_string(),
            a.errors_down.to_string(),
            format!(
                "{} ({})",
                a.errors_after_ready, a.errors_after_ready_started_after
            ),
            m.port_open
                .map(|p| signed_ms(p, m.ready))
                .unwrap_or_else(|| "?".to_owned()),
            first,
            match (a.first_ok, m.port_open) {
                (Some(f), Some(p)) => signed_ms(f, p),
                _ => "?".to_owned(),
            },
            error_free,
            ms(a.longest_op),
            out.top_error(),
            notes,
        ]);
        if matches!(kind, Kind::Poolwarden | Kind::PoolwardenWait) {
            let within = a
                .first_ok
                .is_some_and(|f| f <= m.ready + Duration::from_millis(50));
            verdicts.push(format!(
                "- {}: zero errors after ready **{}** ({}); first success within 50 ms of ready **{}** ({} ms)",
                kind.name(),
                met(a.errors_after_ready == 0),
                a.errors_after_ready,
                met(within),
                a.first_ok
                    .map(|f| signed_ms(f, m.ready))
                    .unwrap_or_else(|| "never".to_owned()),
            ));
        }
    }
    Ok(format!(
        "32 tasks, each `SELECT 1` then 10 ms think time, on pools of 10. The server is stopped \
         (SIGTERM, graceful) at {:.1} s and started again at {:.1} s; the load ends {:.1} s after \
         the server is ready again (ready = the testkit's check that the port accepts connections \
         and the admin client gets an answer). An error counts where its operation *ended*. \
         \"first success − ready\" is negative when a contender got through before the testkit \
         noticed the server was back; \"port open\" is when a separate probe (a plain TCP connect \
         every 3 ms from the restart on) first got through, a closer mark of when the server \
         could be reached. Every operation is bounded by 15 s.\n\n{}\nTargets:\n\n{}\n",
        stop_at.as_secs_f64(),
        restart_at.as_secs_f64(),
        tail.as_secs_f64(),
        t.render(),
        verdicts.join("\n")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(start: u64, end: u64, ok: bool) -> OpRecord {
        OpRecord {
            start: Duration::from_millis(start),
            end: Duration::from_millis(end),
            ok,
        }
    }

    #[test]
    fn errors_are_placed_by_when_they_ended() {
        let m = Marks {
            stop_begin: Duration::from_millis(100),
            port_open: None,
            stop_end: Duration::from_millis(150),
            start_begin: Duration::from_millis(200),
            ready: Duration::from_millis(300),
        };
        let tl = [
            op(0, 50, true),
            op(90, 120, false),
            op(250, 310, false),
            op(305, 320, false),
            op(290, 330, true),
        ];
        let a = analyse(&tl, &m);
        assert_eq!(a.errors_before_stop, 0);
        assert_eq!(a.errors_down, 1);
        assert_eq!(a.errors_after_ready, 2);
        assert_eq!(a.errors_after_ready_started_after, 1);
        assert_eq!(a.first_ok, Some(Duration::from_millis(330)));
        assert_eq!(a.last_error_after_ready, Some(Duration::from_millis(320)));
        assert_eq!(a.longest_op, Duration::from_millis(60));
    }
}
