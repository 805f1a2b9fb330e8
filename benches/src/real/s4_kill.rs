//! Scenario 4: every pooled connection is killed (`KILL`) while idle.

use std::time::Duration;

use crate::real::contenders::{build, warm, Kind};
use crate::real::markdown::Table;
use crate::real::run::Ctx;
use crate::real::s1_throughput::met;
use crate::real::s3_wait_timeout::{burst, burst_cells, KINDS};

pub(crate) async fn run(ctx: &Ctx) -> Result<String, String> {
    let mut t = Table::new(&[
        "contender",
        "idle before KILL",
        "connections killed",
        "errors / 200",
        "most frequent error",
        "new connections (server)",
        "round trips/q",
        "p50 / max ms",
        "pool's own counters",
    ]);
    let mut verdicts = Vec::new();
    for kind in KINDS {
        for idle in [Duration::ZERO, Duration::from_secs(1)] {
            eprintln!("s4: {} idle {idle:?}", kind.name());
            let c = build(kind, &ctx.server, 10).await?;
            warm(&c, 10).await;
            tokio::time::sleep(idle).await;
            let killed = ctx.server.kill_clients().await?;
            let b = burst(ctx, &c).await?;
            let notes = c.notes();
            c.close().await;
            drop(c);
            ctx.server.settle(0, Duration::from_secs(5)).await;
            let mut row = vec![
                kind.name().to_owned(),
                format!("{} ms", idle.as_millis()),
                killed.to_string(),
            ];
            row.extend(burst_cells(&b, notes));
            t.row(row);
            if kind == Kind::Poolwarden {
                verdicts.push(format!(
                    "- {}, killed after {} ms idle: zero errors **{}** ({})",
                    kind.name(),
                    idle.as_millis(),
                    met(b.out.errors == 0),
                    b.out.errors
                ));
            }
        }
    }
    Ok(format!(
        "The pool opens 10 connections (the last used a few ms before), waits 0 ms or 1 s \
         (poolwarden pings at checkout only connections idle longer than its 500 ms validation bypass), then `KILL` from the admin client for every id in \
         `information_schema.PROCESSLIST` except the admin's own and the server's system threads; \
         then at once 200 queries (10 tasks × 20 `SELECT 1`, each bounded by 10 s). The status \
         read between the kill and the queries takes a few ms.\n\n{}\nTarget:\n\n{}\n",
        t.render(),
        verdicts.join("\n")
    ))
}
