//! Scenario 5: a query cancelled mid-flight on a pool of one connection,
//! then the connection reused.

use std::time::{Duration, Instant};

use crate::real::contenders::{build, warm, Kind, OpError, Query, Stage};
use crate::real::markdown::Table;
use crate::real::run::Ctx;
use crate::real::s1_throughput::met;
use crate::real::stats::ms;

const KINDS: [Kind; 7] = [
    Kind::Poolwarden,
    Kind::Sqlx,
    Kind::SqlxNoTest,
    Kind::MysqlAsync,
    Kind::Deadpool,
    Kind::Bb8,
    Kind::Dedicated,
];

const REUSES: i64 = 20;

pub(crate) async fn run(ctx: &Ctx) -> Result<String, String> {
    let mut t = Table::new(&[
        "contender",
        "cancelled after 50 ms",
        "wrong results / 20",
        "errors / 20",
        "first reuse, ms",
        "20 reuses, ms",
        "first problem",
        "pool's own counters",
    ]);
    let mut verdicts = Vec::new();
    for kind in KINDS {
        eprintln!("s5: {}", kind.name());
        let c = build(kind, &ctx.server, 1).await?;
        warm(&c, 1).await;
        let cancelled =
            tokio::time::timeout(Duration::from_millis(50), c.op(0, Query::SleepMs(1000)))
                .await
                .is_err();
        let (mut wrong, mut errors) = (0, 0);
        let mut first_problem = String::new();
        let mut first_reuse = Duration::ZERO;
        let all = Instant::now();
        for k in 1..=REUSES {
            let t0 = Instant::now();
            let r = tokio::time::timeout(Duration::from_secs(5), c.op(0, Query::Value(k)))
                .await
                .unwrap_or_else(|_| Err(OpError::timeout(Duration::from_secs(5))));
            if k == 1 {
                first_reuse = t0.elapsed();
            }
            if let Err(e) = r {
                if e.stage == Stage::WrongResult {
                    wrong += 1;
                } else {
                    errors += 1;
                }
                if first_problem.is_empty() {
                    first_problem = format!("#{k}: {}", e.short());
                }
            }
        }
        let total = all.elapsed();
        let notes = c.notes();
        c.close().await;
        drop(c);
        ctx.server.settle(0, Duration::from_secs(5)).await;
        t.row(vec![
            kind.name().to_owned(),
            if cancelled { "yes" } else { "no (finished)" }.to_owned(),
            wrong.to_string(),
            errors.to_string(),
            ms(first_reuse),
            ms(total),
            first_problem,
            notes,
        ]);
        if kind == Kind::Poolwarden {
            verdicts.push(format!(
                "- poolwarden: no wrong result and no error **{}** ({wrong} wrong, {errors} errors); \
                 first reuse under 10 ms **{}** ({} ms)",
                met(wrong == 0 && errors == 0),
                met(first_reuse < Duration::from_millis(10)),
                ms(first_reuse)
            ));
        }
    }
    Ok(format!(
        "Pool of ONE connection. `SELECT SLEEP(1)` is cancelled by `tokio::time::timeout` after \
         50 ms (the future, with its checkout, is dropped mid-query); then 20 checkouts each run \
         `SELECT CAST(k AS SIGNED)` and check they get k back (bounded by 5 s each). \"first reuse\" \
         is the first of them, checkout included. The no-pool row is one `mysql_async::Conn` \
         behind a mutex: what the driver alone does.\n\n{}\nTargets:\n\n{}\n",
        t.render(),
        verdicts.join("\n")
    ))
}
