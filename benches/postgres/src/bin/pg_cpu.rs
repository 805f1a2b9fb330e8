//! Client CPU per query, for instruction counts: a fixed number of
//! `SELECT 1` sessions (check out, one simple query, give back) through one
//! contender, on a single-threaded runtime so that `valgrind
//! --tool=callgrind` counts are repeatable on a shared machine. Run it
//! twice with different `--queries` and divide the difference in
//! instructions by the difference in queries (the setup cancels out).
//!
//! `--effect N` instead runs only the manager's reading of the SQL text
//! (`poolwarden_postgres::effect`, of `SELECT 1` or of `--sql TEXT`) N
//! times, without a server.
//!
//! ```text
//! cargo build -p poolwarden-bench-pg --release --bin pg_cpu
//! valgrind --tool=callgrind target/release/pg_cpu --contender poolwarden --queries 4000 \
//!     --url postgres://postgres@127.0.0.1:5432/postgres
//! ```

#[allow(dead_code)] // only `build` and `session` are used here
#[path = "../contenders.rs"]
mod contenders;

use std::sync::Arc;

use contenders::{build, Kind};

const POOL: u32 = 10;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.windows(2).find(|w| w[0] == name).map(|w| w[1].clone())
}

fn main() {
    // `--effect N [--sql TEXT]`: only the manager's reading of the text
    // (`poolwarden_postgres::effect`, of `SELECT 1` unless `--sql`), N
    // times, no server.
    if let Some(n) = arg("--effect") {
        let n: usize = n.parse().expect("--effect N");
        let sql = arg("--sql").unwrap_or_else(|| "SELECT 1".to_owned());
        let mut deep = 0;
        for _ in 0..n {
            let e = poolwarden_postgres::effect(std::hint::black_box(sql.as_str()));
            deep += usize::from(e.session != poolwarden_postgres::SessionEffect::None);
        }
        println!("{n} effects, {deep} changing the session");
        return;
    }
    let kind = match arg("--contender").as_deref().unwrap_or("poolwarden") {
        "poolwarden" => Kind::Poolwarden,
        "deadpool-fast" => Kind::DeadpoolFast,
        "dedicated" => Kind::Dedicated,
        other => panic!("--contender poolwarden|deadpool-fast|dedicated, not {other}"),
    };
    let queries: usize = arg("--queries").map_or(2000, |q| q.parse().expect("--queries N"));
    let tasks: usize = arg("--tasks").map_or(64, |t| t.parse().expect("--tasks N"));
    let url = arg("--url").unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into());
    // `--threads N`: a multi-threaded runtime with N workers instead (the
    // cross-thread wake-ups counted too; less repeatable).
    let rt = match arg("--threads") {
        Some(n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n.parse().expect("--threads N"))
            .enable_all()
            .build(),
        None => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
    }
    .expect("a tokio runtime");
    rt.block_on(async move {
        let c = Arc::new(build(kind, &url, POOL).await);
        // Open every connection.
        let warm: Vec<_> = (0..POOL as usize)
            .map(|i| {
                let c = Arc::clone(&c);
                tokio::spawn(async move { c.session(i, &["SELECT pg_sleep(0.05)"]).await })
            })
            .collect();
        for h in warm {
            h.await.unwrap().expect("warm-up");
        }
        let started = std::time::Instant::now();
        let handles: Vec<_> = (0..tasks)
            .map(|task| {
                let c = Arc::clone(&c);
                let n = queries / tasks + usize::from(task < queries % tasks);
                tokio::spawn(async move {
                    for _ in 0..n {
                        c.session(task, &["SELECT 1"]).await.expect("SELECT 1");
                    }
                })
            })
            .collect();
        for h in handles {
            h.await.unwrap();
        }
        println!(
            "{} queries through {:?} from {tasks} tasks in {:.3} s",
            queries,
            kind,
            started.elapsed().as_secs_f64()
        );
        if let Ok(c) = Arc::try_unwrap(c) {
            c.close().await;
        }
    });
}
