//! Scenario 3: the server's `wait_timeout` (2 s) closes idle connections.

use std::sync::Arc;
use std::time::Duration;

use crate::real::contenders::{build, warm, Contender, Kind, Query};
use crate::real::load::{self, Outcome, Spec};
use crate::real::markdown::Table;
use crate::real::run::Ctx;
use crate::real::s1_throughput::met;
use crate::real::server::PerQuery;
use crate::real::stats::ms;

pub(crate) const KINDS: [Kind; 7] = [
    Kind::Poolwarden,
    Kind::PoolwardenValidateAlways,
    Kind::Sqlx,
    Kind::SqlxNoTest,
    Kind::MysqlAsync,
    Kind::Deadpool,
    Kind::Bb8,
];

/// 200 queries after a fault: 10 tasks × 20 `SELECT 1`, so every pooled
/// connection is asked for, with the server's counters around them.
pub(crate) struct Burst {
    pub(crate) out: Outcome,
    pub(crate) per_query: PerQuery,
}

pub(crate) async fn burst(ctx: &Ctx, c: &Arc<dyn Contender>) -> Result<Burst, String> {
    let before = ctx.server.read_counters().await?;
    let resets0 = c.resets();
    let spec = Spec {
        max_ops_per_task: 20,
        op_timeout: Duration::from_secs(10),
        ..Spec::new(10, Duration::from_secs(60), Query::Select1)
    };
    let out = load::run(c, &spec).await;
    let delta = ctx.server.counters_since(&before).await?;
    let per_query = PerQuery::new(&delta, c.resets() - resets0, out.ok + out.errors);
    Ok(Burst { out, per_query })
}

/// The columns both fault scenarios report after the burst.
pub(crate) fn burst_cells(b: &Burst, notes: String) -> Vec<String> {
    vec![
        b.out.errors.to_string(),
        b.out.top_error(),
        b.per_query.connects.to_string(),
        format!("{:.2}", b.per_query.round_trips),
        format!(
            "{} / {}",
            ms(b.out.latency.pct(50.0)),
            ms(b.out.latency.max())
        ),
        notes,
    ]
}

pub(crate) async fn run(ctx: &Ctx) -> Result<String, String> {
    ctx.server.admin("SET GLOBAL wait_timeout = 2").await?;
    let result = measure(ctx).await;
    // Whatever happened, later scenarios get the default back.
    ctx.server.admin("SET GLOBAL wait_timeout = 28800").await?;
    result
}

async fn measure(ctx: &Ctx) -> Result<String, String> {
    let idle = Duration::from_secs(4);
    let mut t = Table::new(&[
        "contender",
        "connections open",
        "still open after 4 s idle",
        "errors / 200",
        "most frequent error",
        "new connections (server)",
        "round trips/q",
        "p50 / max ms",
        "pool's own counters",
    ]);
    let mut verdicts = Vec::new();
    for kind in KINDS {
        eprintln!("s3: {}", kind.name());
        let c = build(kind, &ctx.server, 10).await?;
        warm(&c, 10).await;
        let open = ctx.server.client_threads().await?.len();
        tokio::time::sleep(idle).await;
        let alive = ctx.server.client_threads().await?.len();
        let b = burst(ctx, &c).await?;
        let notes = c.notes();
        c.close().await;
        drop(c);
        ctx.server.settle(0, Duration::from_secs(5)).await;
        let mut row = vec![kind.name().to_owned(), open.to_string(), alive.to_string()];
        row.extend(burst_cells(&b, notes));
        t.row(row);
        if matches!(kind, Kind::Poolwarden) {
            verdicts.push(format!(
                "- {}: zero errors **{}** ({})",
                kind.name(),
                met(b.out.errors == 0),
                b.out.errors
            ));
        }
    }
    Ok(format!(
        "`SET GLOBAL wait_timeout = 2` before each pool connects; the pool opens 10 connections, \
         sits idle {:.0} s, then runs 200 queries (10 tasks × 20 `SELECT 1`, each operation \
         bounded by 10 s). \"still open\" counts the server's client threads after the idle \
         time; \"new connections\" is the server's `Connections` counter over the 200 queries.\n\n{}\n\
         Target:\n\n{}\n",
        idle.as_secs_f64(),
        t.render(),
        verdicts.join("\n")
    ))
}
