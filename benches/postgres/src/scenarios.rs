//! The scenarios; each prints a Markdown table.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use poolwarden_testkit::Postgres;

use crate::contenders::{build, Contender, Kind};
use crate::proxy::{self, Counts};
use poolwarden_bench_plots::Bar;

const POOL: u32 = 10;
/// The throughput chart, relative to this package (written by full runs
/// only, not `--quick`).
const CHART: &str = "../charts/pg_throughput.svg";
const TASKS: usize = 64;

/// Whether scenario `name` was asked for (`--scenario NAME`, repeatable;
/// all by default).
fn wanted(name: &str) -> bool {
    let args: Vec<String> = std::env::args().collect();
    let asked: Vec<&str> = args
        .windows(2)
        .filter(|w| w[0] == "--scenario")
        .map(|w| w[1].as_str())
        .collect();
    asked.is_empty() || asked.contains(&name)
}

pub(crate) async fn run(quick: bool) {
    let mut db = tokio::task::spawn_blocking(|| {
        Postgres::builder()
            .setting("max_connections", "300")
            .start()
            .expect("a private PostgreSQL")
    })
    .await
    .unwrap();
    let url = format!("{}?application_name=bench", db.url());
    let version = admin(&db, "SHOW server_version");
    println!("# PostgreSQL benchmarks\n");
    println!(
        "Private PostgreSQL {version} from `poolwarden-testkit` on this machine (TCP over \
         loopback); `nproc` {}; command `cargo run -p poolwarden-bench-pg --release{}`.\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if quick { " -- --quick" } else { "" }
    );
    println!("Load average at start: {}\n", loadavg());
    if wanted("throughput") {
        throughput(&db, &url, quick).await;
    }
    if wanted("cancel") {
        cancel(&db, &url).await;
    }
    if wanted("leaks") {
        leaks(&db, &url).await;
    }
    if wanted("slot") {
        let _ = db.admin("CREATE ROLE slot LOGIN PASSWORD 'slot'");
        let slot_url = format!(
            "{}?application_name=bench",
            db.url_for("slot", "slot", Postgres::DATABASE)
        );
        crate::faults::one_slot(&db, &slot_url).await;
    }
    if wanted("sigstop") {
        crate::freeze::sigstop(&db, &url).await;
    }
    if wanted("idle") {
        crate::freeze::idle_session_timeout().await;
    }
    if wanted("restart") {
        crate::faults::restart(&mut db, &url).await;
    }
    println!("Load average at the end: {}", loadavg());
}

/// `/proc/loadavg`'s first three fields: the machine is shared.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn admin(db: &Postgres, sql: &str) -> String {
    db.admin(sql)
        .ok()
        .and_then(|rows| rows.first()?.first().cloned())
        .unwrap_or_default()
}

/// Open every connection: `POOL` concurrent short sleeps.
pub(crate) async fn warm(c: &Arc<Contender>) {
    let handles: Vec<_> = (0..POOL as usize)
        .map(|i| {
            let c = Arc::clone(c);
            tokio::spawn(async move { c.session(i, &["SELECT pg_sleep(0.05)"]).await })
        })
        .collect();
    for h in handles {
        h.await.unwrap().expect("warm-up");
    }
}

/// `tasks` tasks doing `SELECT 1` sessions until `for_` elapses or each has
/// done `max_ops`; ops per task and errors.
pub(crate) async fn load(
    c: &Arc<Contender>,
    tasks: usize,
    for_: Duration,
    max_ops: usize,
) -> (Vec<u64>, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..tasks)
        .map(|task| {
            let (c, stop) = (Arc::clone(c), Arc::clone(&stop));
            tokio::spawn(async move {
                let (mut ok, mut err) = (0_u64, 0_u64);
                for _ in 0..max_ops {
                    if stop.load(Relaxed) {
                        break;
                    }
                    match tokio::time::timeout(
                        Duration::from_secs(10),
                        c.session(task, &["SELECT 1"]),
                    )
                    .await
                    {
                        Ok(Ok(_)) => ok += 1,
                        _ => err += 1,
                    }
                }
                (ok, err)
            })
        })
        .collect();
    // Until the time is up or every task has done its operations.
    let started = Instant::now();
    while started.elapsed() < for_ && !handles.iter().all(|h| h.is_finished()) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, Relaxed);
    let mut per_task = Vec::new();
    let mut errors = 0;
    for h in handles {
        let (ok, err) = h.await.unwrap();
        per_task.push(ok);
        errors += err;
    }
    (per_task, errors)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn throughput(db: &Postgres, url: &str, quick: bool) {
    let (rounds, window) = if quick {
        (2, Duration::from_secs(1))
    } else {
        (4, Duration::from_secs(3))
    };
    let started = Instant::now();
    // Rows: every contender with 64 tasks, and the limit: 10 tasks, each
    // alone on its own dedicated connection.
    let mut rows: Vec<(Kind, usize)> = Kind::ALL.iter().map(|k| (*k, TASKS)).collect();
    rows.push((Kind::Dedicated, POOL as usize));
    let mut qps: Vec<Vec<f64>> = vec![Vec::new(); rows.len()];
    let mut ratio: Vec<Vec<f64>> = vec![Vec::new(); rows.len()];
    let mut fairness: Vec<(f64, f64)> = vec![(f64::MAX, 0.0); rows.len()];
    let mut errors = vec![0_u64; rows.len()];
    for round in 0..rounds {
        let mut this_round = vec![0.0; rows.len()];
        for step in 0..rows.len() {
            let i = (step + round) % rows.len();
            let (kind, tasks) = rows[i];
            let c = Arc::new(build(kind, url, POOL).await);
            warm(&c).await;
            let _ = load(&c, tasks, Duration::from_millis(300), usize::MAX).await;
            let t = Instant::now();
            let (per_task, errs) = load(&c, tasks, window, usize::MAX).await;
            let secs = t.elapsed().as_secs_f64();
            let total: u64 = per_task.iter().sum();
            this_round[i] = total as f64 / secs;
            errors[i] += errs;
            let mean = total as f64 / per_task.len() as f64;
            let (lo, hi) = per_task.iter().fold((f64::MAX, 0.0_f64), |(lo, hi), &n| {
                (lo.min(n as f64 / mean), hi.max(n as f64 / mean))
            });
            fairness[i] = (fairness[i].0.min(lo), fairness[i].1.max(hi));
            if let Ok(c) = Arc::try_unwrap(c) {
                c.close().await;
            }
        }
        let limit = this_round[rows.len() - 1];
        for i in 0..rows.len() {
            qps[i].push(this_round[i]);
            ratio[i].push(this_round[i] / limit);
        }
    }

    // Round trips per query, through the counting proxy.
    let counts = Arc::new(Counts::default());
    let port = proxy::start(db.port(), Arc::clone(&counts)).await;
    let proxied = url.replace(&format!(":{}/", db.port()), &format!(":{port}/"));
    let mut round_trips = Vec::new();
    for (kind, tasks) in &rows {
        let c = Arc::new(build(*kind, &proxied, POOL).await);
        warm(&c).await;
        let before = counts.total();
        let (per_task, _) = load(&c, *tasks, Duration::from_secs(60), 50).await;
        let total: u64 = per_task.iter().sum();
        round_trips.push((counts.total() - before) as f64 / total as f64);
        if let Ok(c) = Arc::try_unwrap(c) {
            c.close().await;
        }
    }

    println!("## Throughput: `SELECT 1`, pool of {POOL}\n");
    println!(
        "{rounds} rounds of {window:?} per contender after a 0.3 s warm-up, contenders in rotated \
         order; QPS and \"× limit\" are medians over rounds (the limit is the last row: {POOL} tasks, \
         each alone on its own connection); ops per task is the worst round's min and max over the \
         mean. Every contender runs `SELECT 1` as a simple query (one `Query` message). Round trips \
         per query are counted by a proxy that counts the clients' `Query` and `Sync` messages \
         (64 tasks × 50 operations per contender, after warm-up). Took {:.0} s.\n",
        started.elapsed().as_secs_f64()
    );
    let chart = (!quick).then(|| {
        let bars: Vec<Bar> = rows
            .iter()
            .enumerate()
            .map(|(i, (kind, tasks))| Bar {
                label: format!("{} ({tasks} tasks)", kind.short()),
                value: median(qps[i].clone()),
                ours: *kind == Kind::Poolwarden,
                limit: i == rows.len() - 1,
            })
            .collect();
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(CHART);
        poolwarden_bench_plots::bars(
            &path,
            &format!("PostgreSQL: SELECT 1, {TASKS} tasks, pool of {POOL} (median QPS)"),
            "queries per second",
            &bars,
        )
    });
    println!("| contender | tasks | QPS | × limit | × limit range | ops/task ÷ mean | errors | round trips/q |");
    println!("|---|---|---|---|---|---|---|---|");
    for (i, (kind, tasks)) in rows.iter().enumerate() {
        let r = &ratio[i];
        let (lo, hi) = r
            .iter()
            .fold((f64::MAX, 0.0_f64), |(lo, hi), &x| (lo.min(x), hi.max(x)));
        println!(
            "| {} | {tasks} | {:.0} | {:.2} | {lo:.2}–{hi:.2} | {:.2}–{:.2} | {} | {:.3} |",
            kind.name(),
            median(qps[i].clone()),
            median(r.clone()),
            fairness[i].0,
            fairness[i].1,
            errors[i],
            round_trips[i]
        );
    }
    match chart {
        Some(Ok(())) => println!("\n![PostgreSQL throughput](benches/charts/pg_throughput.svg)"),
        Some(Err(e)) => println!("\n(no chart: {e})"),
        None => {}
    }
    println!();
}

/// A query dropped by its caller after 100 ms (`SELECT pg_sleep(1)`) on a
/// pool of one; how long the next borrower waits for `SELECT 1`.
async fn cancel(db: &Postgres, url: &str) {
    println!("## A dropped `SELECT pg_sleep(1)` on a pool of one\n");
    println!(
        "The caller drops the query after 100 ms (`tokio::time::timeout`); then the next borrower \
         checks out and runs `SELECT 1`. \"Still running\" is whether the server still ran the \
         `pg_sleep` right after the next borrower was served. 3 runs each.\n"
    );
    println!(
        "| contender | next borrower served after (ms) | still running on the server | errors |"
    );
    println!("|---|---|---|---|");
    for kind in Kind::ALL {
        let c = Arc::new(build(kind, url, 1).await);
        warm(&c).await;
        let mut waits = Vec::new();
        let mut running = 0;
        let mut errors = 0;
        for _ in 0..3 {
            let _ = tokio::time::timeout(
                Duration::from_millis(100),
                c.session(0, &["SELECT pg_sleep(1)"]),
            )
            .await;
            let t = Instant::now();
            match c.session(0, &["SELECT 1::text"]).await {
                Ok(v) if v == [Some("1".to_owned())] => {}
                _ => errors += 1,
            }
            waits.push(t.elapsed().as_secs_f64() * 1000.0);
            let active = admin(
                db,
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE 'SELECT pg_sleep%'",
            );
            if active != "0" {
                running += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        let shown: Vec<String> = waits.iter().map(|w| format!("{w:.1}")).collect();
        println!(
            "| {} | {} | {running} of 3 | {errors} |",
            kind.name(),
            shown.join(", ")
        );
        if let Ok(c) = Arc::try_unwrap(c) {
            c.close().await;
        }
    }
    println!();
}

/// What one borrower leaves, and the next borrower's check (text: "t" or
/// a value means leaked).
const LEAKS: &[(&str, &str, &str)] = &[
    ("`SET search_path`", "SET search_path = leaked", "SELECT (current_setting('search_path') = 'leaked')::text"),
    ("custom GUC", "SET my.custom = 'leaked'", "SELECT (current_setting('my.custom', true) = 'leaked')::text"),
    ("temp table", "CREATE TEMP TABLE leaked_tmp (a INT)", "SELECT (to_regclass('pg_temp.leaked_tmp') IS NOT NULL)::text"),
    ("advisory lock", "SELECT pg_advisory_lock(4242)", "SELECT (count(*) > 0)::text FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"),
    ("`LISTEN`", "LISTEN leaked", "SELECT (count(*) > 0)::text FROM pg_listening_channels()"),
    ("`PREPARE`", "PREPARE leaked_stmt AS SELECT 1", "SELECT (count(*) > 0)::text FROM pg_prepared_statements WHERE name = 'leaked_stmt'"),
    ("open transaction", "BEGIN", "SELECT (xact_start <> query_start)::text FROM pg_stat_activity WHERE pid = pg_backend_pid()"),
];

async fn leaks(_db: &Postgres, url: &str) {
    println!("## Session state left to the next borrower (pool of one)\n");
    println!("\"leaks\" means the next borrower of the same connection saw it.\n");
    let header: Vec<&str> = LEAKS.iter().map(|(what, _, _)| *what).collect();
    println!("| contender | {} |", header.join(" | "));
    println!("|---|{}", "---|".repeat(LEAKS.len()));
    for kind in Kind::ALL {
        if kind == Kind::Dedicated {
            continue;
        }
        let mut cells = Vec::new();
        for (_, setup, check) in LEAKS {
            let c = build(kind, url, 1).await;
            let cell = match c.session(0, &[setup]).await {
                Err(e) => format!("setup failed: {e}"),
                Ok(_) => match c.session(0, &[check]).await {
                    Ok(v) if v == [Some("true".to_owned())] => "**leaks**".to_owned(),
                    Ok(_) => "clean".to_owned(),
                    Err(e) => format!("error: {}", e.lines().next().unwrap_or("")),
                },
            };
            cells.push(cell);
            c.close().await;
        }
        println!("| {} | {} |", kind.name(), cells.join(" | "));
    }
    println!();
}
