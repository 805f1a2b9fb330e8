//! Scenario 7: 1 to 1,000 tasks against pools of 5, 10 and 50.

use std::time::Duration;

use crate::real::contenders::{build, warm, Kind, Query};
use crate::real::load::{self, Spec};
use crate::real::markdown::Table;
use crate::real::run::Ctx;
use crate::real::server::PerQuery;
use crate::real::stats::ms;
use poolwarden_bench_plots::{self as charts, Panel, Series};

const KINDS: [Kind; 6] = [
    Kind::Poolwarden,
    Kind::Deadpool,
    Kind::Bb8,
    Kind::MysqlAsync,
    Kind::Sqlx,
    Kind::Dedicated,
];

const SIZES: [u32; 3] = [5, 10, 50];

struct Cell {
    kind: Kind,
    size: u32,
    tasks: usize,
    qps: f64,
    p99_wait: Duration,
}

/// One measured cell (one repetition).
struct Rep {
    qps: f64,
    p50_wait: Duration,
    p99_wait: Duration,
    max_wait: Duration,
    p99_latency: Duration,
    min_ops: u64,
    max_ops: u64,
    errors: String,
    round_trips: f64,
}

pub(crate) async fn run(ctx: &Ctx) -> Result<String, String> {
    let task_counts: Vec<usize> = ctx.pick(vec![1, 10, 100, 1000], vec![1, 100, 1000]);
    let reps = ctx.pick(3, 1);
    let cell = ctx.pick(Duration::from_secs(1), Duration::from_millis(400));
    let warmup = ctx.pick(Duration::from_millis(200), Duration::from_millis(100));
    // measured[size][kind][tasks] = one entry per repetition
    let mut measured: Vec<Vec<Vec<Vec<Rep>>>> = SIZES
        .iter()
        .map(|_| {
            KINDS
                .iter()
                .map(|_| task_counts.iter().map(|_| Vec::new()).collect())
                .collect()
        })
        .collect();
    for rep in 0..reps {
        for (si, &size) in SIZES.iter().enumerate() {
            for k in 0..KINDS.len() {
                // Rotate the order between repetitions.
                let ki = (k + rep * 2) % KINDS.len();
                let kind = KINDS[ki];
                eprintln!("s7 rep {}/{reps}: {} size {size}", rep + 1, kind.name());
                let c = build(kind, &ctx.server, size).await?;
                warm(&c, size as usize).await;
                for (ti, &tasks) in task_counts.iter().enumerate() {
                    let _ = load::run(&c, &Spec::new(tasks, warmup, Query::Select1)).await;
                    let before = ctx.server.read_counters().await?;
                    let resets0 = c.resets();
                    let out = load::run(&c, &Spec::new(tasks, cell, Query::Select1)).await;
                    let delta = ctx.server.counters_since(&before).await?;
                    let pq = PerQuery::new(&delta, c.resets() - resets0, out.ok + out.errors);
                    let mut errors = out.errors.to_string();
                    if out.errors > 0 {
                        errors = format!("{errors} ({})", out.top_error());
                    }
                    measured[si][ki][ti].push(Rep {
                        qps: out.qps(),
                        p50_wait: out.wait.pct(50.0),
                        p99_wait: out.wait.pct(99.0),
                        max_wait: out.wait.max(),
                        p99_latency: out.latency.pct(99.0),
                        min_ops: out.per_task.iter().copied().min().unwrap_or(0),
                        max_ops: out.per_task.iter().copied().max().unwrap_or(0),
                        errors,
                        round_trips: pq.round_trips,
                    });
                }
                c.close().await;
                drop(c);
                ctx.server.settle(0, Duration::from_secs(5)).await;
            }
        }
    }

    let mut cells = Vec::new();
    let mut body = format!(
        "Each cell: {} tasks running checkout + `SELECT 1` + return for {:.1} s after a {:.1} s \
         warm-up; {reps} repetition(s), each on a freshly built and warmed pool, contenders in \
         rotated order. The row shows the repetition with the median QPS (QPS range over all \
         repetitions beside it). *wait* is the checkout alone (sqlx's includes its ping, deadpool's \
         and bb8's too; the no-pool row's is the mutex). Ops/task shows fairness: the fewest and \
         most operations one task completed. A cell ends when the tasks finish their last \
         operation, so the queue drains.\n\n",
        task_counts
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" / "),
        cell.as_secs_f64(),
        warmup.as_secs_f64()
    );
    for (si, &size) in SIZES.iter().enumerate() {
        let mut t = Table::new(&[
            "contender",
            "tasks",
            "QPS",
            "QPS range",
            "p50 wait ms",
            "p99 wait ms",
            "max wait ms",
            "p99 latency ms",
            "ops/task min–max",
            "errors",
            "round trips/q",
        ]);
        for (ki, &kind) in KINDS.iter().enumerate() {
            for (ti, &tasks) in task_counts.iter().enumerate() {
                let reps = &measured[si][ki][ti];
                let mut order: Vec<&Rep> = reps.iter().collect();
                order.sort_by(|a, b| a.qps.total_cmp(&b.qps));
                let Some(r) = order.get((order.len().max(1) - 1) / 2) else {
                    continue;
                };
                let lo = order.first().map(|r| r.qps).unwrap_or(0.0);
                let hi = order.last().map(|r| r.qps).unwrap_or(0.0);
                t.row(vec![
                    kind.name().to_owned(),
                    tasks.to_string(),
                    format!("{:.0}", r.qps),
                    format!("{lo:.0}–{hi:.0}"),
                    ms(r.p50_wait),
                    ms(r.p99_wait),
                    ms(r.max_wait),
                    ms(r.p99_latency),
                    format!("{}–{}", r.min_ops, r.max_ops),
                    r.errors.clone(),
                    format!("{:.2}", r.round_trips),
                ]);
                cells.push(Cell {
                    kind,
                    size,
                    tasks,
                    qps: r.qps,
                    p99_wait: r.p99_wait,
                });
            }
        }
        body.push_str(&format!("Pool size {size}:\n\n{}\n", t.render()));
    }
    if ctx.write {
        let panels = |value: &dyn Fn(&Cell) -> f64| -> Vec<Panel> {
            SIZES
                .iter()
                .map(|&size| Panel {
                    title: format!("pool size {size}"),
                    series: KINDS
                        .iter()
                        .map(|&kind| Series {
                            name: kind.short().to_owned(),
                            points: cells
                                .iter()
                                .filter(|c| c.kind == kind && c.size == size)
                                .map(|c| (c.tasks as f64, value(c)))
                                .collect(),
                        })
                        .collect(),
                })
                .collect()
        };
        let qps_file = "s7_scaling_qps.svg";
        charts::lines(
            &ctx.charts.join(qps_file),
            "queries per second",
            false,
            &panels(&|c| c.qps),
        )?;
        let wait_file = "s7_scaling_p99_wait.svg";
        charts::lines(
            &ctx.charts.join(wait_file),
            "p99 checkout wait, ms (log)",
            true,
            &panels(&|c| c.p99_wait.as_secs_f64() * 1e3),
        )?;
        body.push_str(&format!(
            "![scenario 7 throughput]({})\n\n![scenario 7 p99 wait]({})\n",
            ctx.chart_link(qps_file),
            ctx.chart_link(wait_file)
        ));
    }
    Ok(body)
}
