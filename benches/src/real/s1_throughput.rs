//! Scenario 1: 64 tasks running `SELECT 1` for a fixed time.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};

use crate::real::contenders::{build, warm, Kind, Query};
use crate::real::load::{self, Spec};
use crate::real::machine::process_cpu;
use crate::real::markdown::Table;
use crate::real::run::Ctx;
use crate::real::server::{Counters, PerQuery};
use crate::real::stats::{median, ms, Samples};
use poolwarden_bench_plots::{self as charts, Bar};

const ROWS: [(Kind, usize); 13] = [
    (Kind::Poolwarden, 64),
    (Kind::PoolwardenNoDeadline, 64),
    (Kind::PoolwardenValidateAlways, 64),
    (Kind::Sqlx, 64),
    (Kind::SqlxNoTest, 64),
    (Kind::MysqlAsync, 64),
    (Kind::MysqlAsyncSocket, 64),
    (Kind::Deadpool, 64),
    (Kind::Bb8, 64),
    (Kind::Minimal, 64),
    (Kind::MinimalWrapped, 64),
    (Kind::Dedicated, 64),
    (Kind::Dedicated, 10),
];

/// Index of the limit row in [`ROWS`]: 10 tasks, each alone on its own
/// dedicated connection (the raw capacity of 10 connections).
const LIMIT_ROW: usize = 12;

#[derive(Default)]
struct Acc {
    qps: Vec<f64>,
    lat: Vec<u64>,
    ok: u64,
    errors: u64,
    spread: (f64, f64),
    delta: Counters,
    resets: u64,
    /// CPU time of this process (the clients and pools) and of the server
    /// over the measured windows.
    client_cpu: Duration,
    server_cpu: Duration,
    notes: String,
    top_error: String,
}

/// Per-command counter moves, measured on a raw connection.
async fn calibrate(ctx: &Ctx) -> Result<Table, String> {
    const N: u64 = 200;
    let opts = Opts::from_url(&ctx.server.tcp_url()).map_err(|e| e.to_string())?;
    let mut conn = Conn::new(opts).await.map_err(|e| e.to_string())?;
    let mut t = Table::new(&[
        "command (×200)",
        "Questions",
        "Com_admin_commands",
        "Com_select",
        "Com_rollback",
        "commands by the formula",
    ]);
    for what in [
        "COM_QUERY SELECT 1",
        "COM_PING",
        "COM_RESET_CONNECTION",
        "COM_QUERY ROLLBACK",
    ] {
        let before = ctx.server.read_counters().await?;
        for _ in 0..N {
            let r = match what {
                "COM_PING" => conn.ping().await,
                "COM_RESET_CONNECTION" => conn.reset().await.map(|_| ()),
                "COM_QUERY ROLLBACK" => conn.query_drop("ROLLBACK").await,
                _ => conn.query_drop("SELECT 1").await,
            };
            r.map_err(|e| format!("calibration {what}: {e}"))?;
        }
        let d = ctx.server.counters_since(&before).await?;
        let resets = if what == "COM_RESET_CONNECTION" { N } else { 0 };
        let per = |name: &str| format!("{:.2}", d.get(name) as f64 / N as f64);
        t.row(vec![
            what.to_owned(),
            per("Questions"),
            per("Com_admin_commands"),
            per("Com_select"),
            per("Com_rollback"),
            format!("{:.2}", PerQuery::new(&d, resets, N).round_trips),
        ]);
    }
    let _ = conn.disconnect().await;
    Ok(t)
}

pub(crate) async fn run(ctx: &Ctx) -> Result<String, String> {
    let rounds = ctx.pick(6, 2);
    let measure = ctx.pick(Duration::from_millis(2500), Duration::from_secs(1));
    let warmup = ctx.pick(Duration::from_millis(500), Duration::from_millis(300));
    let calibration = calibrate(ctx).await?;
    let mut acc: Vec<Acc> = ROWS.iter().map(|_| Acc::default()).collect();
    for round in 0..rounds {
        // Rotate the order so no contender always runs first or last.
        for k in 0..ROWS.len() {
            let i = (k + round * 3) % ROWS.len();
            let (kind, tasks) = ROWS[i];
            if ctx.ours_only
                && !matches!(
                    kind,
                    Kind::Poolwarden
                        | Kind::PoolwardenNoDeadline
                        | Kind::Minimal
                        | Kind::MinimalWrapped
                        | Kind::Dedicated
                )
            {
                continue;
            }
            eprintln!(
                "s1 round {}/{rounds}: {} × {tasks} tasks",
                round + 1,
                kind.name()
            );
            let c = build(kind, &ctx.server, 10).await?;
            warm(&c, 10).await;
            let _ = load::run(&c, &Spec::new(tasks, warmup, Query::Select1)).await;
            let before = ctx.server.read_counters().await?;
            let resets0 = c.resets();
            let (client0, server0) = (process_cpu("self"), ctx.server.cpu());
            let out = load::run(&c, &Spec::new(tasks, measure, Query::Select1)).await;
            let (client1, server1) = (process_cpu("self"), ctx.server.cpu());
            let delta = ctx.server.counters_since(&before).await?;
            let a = &mut acc[i];
            a.resets += c.resets() - resets0;
            if let (Some(c0), Some(c1), Some(s0), Some(s1)) = (client0, client1, server0, server1) {
                a.client_cpu += c1.saturating_sub(c0);
                a.server_cpu += s1.saturating_sub(s0);
            }
            a.notes = c.notes();
            c.close().await;
            drop(c);
            ctx.server.settle(0, Duration::from_secs(5)).await;

            a.qps.push(out.qps());
            a.ok += out.ok;
            a.errors += out.errors;
            let (lo, hi) = out.task_spread();
            a.spread = if a.qps.len() == 1 {
                (lo, hi)
            } else {
                (a.spread.0.min(lo), a.spread.1.max(hi))
            };
            a.lat.extend_from_slice(out.latency.raw());
            a.delta = a.delta.plus(&delta);
            if a.top_error.is_empty() {
                a.top_error = out.top_error();
            }
        }
    }

    let limit_by_round = acc[LIMIT_ROW].qps.clone();
    let mut t = Table::new(&[
        "contender",
        "tasks",
        "QPS (median)",
        "QPS range",
        "× limit",
        "× limit range",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "ops/task min–max ÷ mean",
        "errors",
        "Questions/q",
        "admin cmds/q",
        "round trips/q",
        "client CPU µs/q",
        "server CPU µs/q",
        "pool's own counters (last round)",
    ]);
    let mut bars = Vec::new();
    let mut verdicts = Vec::new();
    for (i, (kind, tasks)) in ROWS.iter().enumerate() {
        let a = &acc[i];
        if a.qps.is_empty() {
            continue; // not run (`--ours-only`)
        }
        let lat = Samples::new(a.lat.clone());
        let q = median(&a.qps);
        let (lo, hi) = a
            .qps
            .iter()
            .fold((f64::MAX, 0.0f64), |(l, h), v| (l.min(*v), h.max(*v)));
        // Each round's QPS over the limit's QPS in the same round (they ran
        // within a minute of each other), so slow drifts of the machine
        // cancel out; the median over rounds.
        let ratios: Vec<f64> = a
            .qps
            .iter()
            .zip(&limit_by_round)
            .map(|(q, l)| q / l.max(1e-9))
            .collect();
        let ratio = median(&ratios);
        let (rlo, rhi) = ratios
            .iter()
            .fold((f64::MAX, 0.0f64), |(l, h), v| (l.min(*v), h.max(*v)));
        let pq = PerQuery::new(&a.delta, a.resets, a.ok + a.errors);
        let mut errors = a.errors.to_string();
        if !a.top_error.is_empty() {
            errors = format!("{errors} ({})", a.top_error);
        }
        t.row(vec![
            kind.name().to_owned(),
            tasks.to_string(),
            format!("{q:.0}"),
            format!("{lo:.0}–{hi:.0}"),
            format!("{ratio:.2}"),
            format!("{rlo:.2}–{rhi:.2}"),
            ms(lat.pct(50.0)),
            ms(lat.pct(99.0)),
            ms(lat.pct(99.9)),
            format!("{:.2}–{:.2}", a.spread.0, a.spread.1),
            errors,
            format!("{:.3}", pq.questions),
            format!("{:.3}", pq.admin),
            format!("{:.3}", pq.round_trips),
            format!(
                "{:.1}",
                a.client_cpu.as_secs_f64() * 1e6 / a.ok.max(1) as f64
            ),
            format!(
                "{:.1}",
                a.server_cpu.as_secs_f64() * 1e6 / a.ok.max(1) as f64
            ),
            a.notes.clone(),
        ]);
        bars.push(Bar {
            label: format!("{} ({tasks} tasks)", kind.name()),
            value: q,
            ours: matches!(
                kind,
                Kind::Poolwarden | Kind::PoolwardenValidateAlways | Kind::PoolwardenNoDeadline
            ),
            limit: *kind == Kind::Dedicated,
        });
        if *kind == Kind::Poolwarden {
            verdicts.push(format!(
                "- poolwarden (defaults) at ≥ 0.9× the limit: **{}** ({ratio:.2}×)",
                met(ratio >= 0.9)
            ));
            verdicts.push(format!(
                "- exactly one round trip per query: **{}** ({:.3} by the server's counters)",
                met((pq.round_trips - 1.0).abs() < 0.005),
                pq.round_trips
            ));
            verdicts.push(format!(
                "- every task within 10 % of the mean ops: **{}** (min {:.2}, max {:.2} of the mean, worst round)",
                met(a.spread.0 >= 0.9 && a.spread.1 <= 1.1),
                a.spread.0,
                a.spread.1
            ));
        }
    }
    let mut body = String::new();
    body.push_str(&format!(
        "{rounds} round(s) of {:.1} s per contender after a {:.1} s warm-up, contenders in rotated order each round; \
         QPS is the median over rounds; \"× limit\" is the median over rounds of the contender's QPS divided by the \
         limit's QPS in the same round (the limit is the last row: 10 tasks, each alone on its own dedicated connection); \
         latency percentiles are over all operations of all rounds; ops per task is the worst round. \
         CPU per query: user + system time of the benchmark process (tasks and pool) and of `mariadbd` \
         over the measured windows (/proc, 10 ms ticks), divided by the queries: on 2 shared cores the \
         two together bound the throughput.\n\n",
        measure.as_secs_f64(),
        warmup.as_secs_f64()
    ));
    body.push_str(&t.render());
    body.push_str("\nTargets:\n\n");
    body.push_str(&verdicts.join("\n"));
    body.push_str("\n\nCalibration of the round-trip count (200 commands of each kind on one raw connection):\n\n");
    body.push_str(&calibration.render());
    if ctx.write {
        let file = "s1_throughput.svg";
        charts::bars(
            &ctx.charts.join(file),
            "Scenario 1: SELECT 1, 64 tasks, 10 connections (median QPS)",
            "queries per second",
            &bars,
        )?;
        body.push_str(&format!(
            "\n![scenario 1 throughput]({})\n",
            ctx.chart_link(file)
        ));
    }
    Ok(body)
}

pub(crate) fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "missed"
    }
}
