//! Heap allocations of each pool, counted by `stats_alloc` as the global
//! allocator (all threads, atomic counters; that is why this is a separate
//! binary: the throughput runs of `micro` use the plain system allocator).
//!
//! `cargo run -p poolwarden-bench --release --bin allocs -- [--quick] [--markdown] [--only a,b]`
//!
//! * Steady-state allocations per checkout: a warm pool of 10, then runs of K
//!   and 2K ops; (count(2K) - count(K)) / K ops, so spawn and setup costs
//!   cancel. Uncontended (1 task, get-drop) and contended (100 tasks,
//!   hold-yield, so 90 wait at any time).
//! * Bookkeeping per connection: live heap bytes after building and filling
//!   a pool of N = 128 and of 2N = 256 connections (`max_size` = N, 2N);
//!   (live(2N) - live(N)) / N. Includes the 16-byte connection itself where
//!   the pool keeps it on the heap (they all do), and any per-slot storage.

use std::alloc::System;
use std::time::Duration;

use poolwarden_bench::contender::Contender;
use poolwarden_bench::kinds::Kind;
use poolwarden_bench::report::{heading, Table};
use poolwarden_bench::runner::{self, POOL_SIZE};
use poolwarden_bench::with_contender;
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const LIMIT: Duration = Duration::from_secs(30);

/// Allocations and bytes per op.
#[derive(Debug, Clone, Copy)]
struct PerOp {
    allocs: f64,
    bytes: f64,
}

fn per_op<C: Contender>(tasks: usize, hold: bool, total_ops: u64) -> Result<PerOp, String> {
    let rt = runner::runtime();
    let r = rt.block_on(async {
        let (pool, _) = runner::prepare::<C>(POOL_SIZE).await?;
        let k = (total_ops / tasks as u64).max(1);
        runner::run_fixed(&pool, tasks, k, hold, LIMIT).await?;
        let region = Region::new(GLOBAL);
        runner::run_fixed(&pool, tasks, k, hold, LIMIT).await?;
        let one = region.change();
        let region = Region::new(GLOBAL);
        runner::run_fixed(&pool, tasks, 2 * k, hold, LIMIT).await?;
        let two = region.change();
        let ops = (tasks as u64 * k) as f64;
        let count = |s: stats_alloc::Stats| (s.allocations + s.reallocations) as f64;
        Ok(PerOp {
            allocs: (count(two) - count(one)) / ops,
            bytes: (two.bytes_allocated as f64 - one.bytes_allocated as f64) / ops,
        })
    });
    rt.shutdown_timeout(Duration::from_secs(5));
    r
}

/// Live heap (bytes, blocks) held after building and filling a pool of `n`.
fn live_after_fill<C: Contender>(n: u32) -> Result<(i64, i64), String> {
    let rt = runner::runtime();
    let r = rt.block_on(async {
        // Touch the runtime's lazily built parts (timer, spawner) first.
        tokio::spawn(async {}).await.map_err(|e| e.to_string())?;
        tokio::time::sleep(Duration::from_millis(1)).await;
        let region = Region::new(GLOBAL);
        let (pool, _) = runner::prepare::<C>(n).await?;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let s = region.change();
        drop(pool);
        Ok((
            s.bytes_allocated as i64 - s.bytes_deallocated as i64,
            s.allocations as i64 - s.deallocations as i64,
        ))
    });
    rt.shutdown_timeout(Duration::from_secs(5));
    r
}

fn sizes<C: Contender>() -> Result<poolwarden_bench::contender::Sizes, String> {
    let rt = runner::runtime();
    let r = rt.block_on(async {
        let pool = C::build(POOL_SIZE).await?;
        Ok(pool.sizes())
    });
    rt.shutdown_timeout(Duration::from_secs(5));
    r
}

fn fmt(r: &Result<PerOp, String>, f: impl Fn(&PerOp) -> String) -> String {
    match r {
        // Counting noise can leave a tiny negative difference.
        Ok(p) => f(&PerOp {
            allocs: if p.allocs.abs() < 5e-4 { 0.0 } else { p.allocs },
            bytes: if p.bytes.abs() < 0.05 { 0.0 } else { p.bytes },
        }),
        Err(e) => format!("ERROR {e}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let md = args.iter().any(|a| a == "--markdown");
    let quick = args.iter().any(|a| a == "--quick");
    let kinds: Vec<Kind> = match args.iter().position(|a| a == "--only") {
        Some(i) => args
            .get(i + 1)
            .map(|v| v.split(',').filter_map(Kind::parse).collect())
            .unwrap_or_default(),
        None => Kind::ALL.to_vec(),
    };
    let total_ops = if quick { 20_000 } else { 100_000 };

    print!(
        "{}",
        heading("Heap allocations per checkout + return, steady state", md)
    );
    let mut t = Table::new(&[
        "pool",
        ">allocs/op (1 task, get-drop)",
        ">bytes/op",
        ">allocs/op (100 tasks, hold-yield)",
        ">bytes/op ",
    ]);
    for &kind in &kinds {
        let a = with_contender!(kind, C => per_op::<C>(1, false, total_ops));
        let b = with_contender!(kind, C => per_op::<C>(100, true, total_ops));
        t.row(vec![
            kind.name().into(),
            fmt(&a, |p| format!("{:.3}", p.allocs)),
            fmt(&a, |p| format!("{:.1}", p.bytes)),
            fmt(&b, |p| format!("{:.3}", p.allocs)),
            fmt(&b, |p| format!("{:.1}", p.bytes)),
        ]);
    }
    print!("{}", t.render(md));
    if md {
        println!();
    }
    println!(
        "Counted over all threads (tokio workers and blocking threads included): \
         (count over 2K ops - count over K ops) / K, K = {total_ops} ops in all."
    );

    print!(
        "{}",
        heading(
            "Pool bookkeeping per connection (live heap after filling)",
            md
        )
    );
    let n = 128u32;
    let mut t = Table::new(&[
        "pool",
        ">live bytes, N=128",
        ">live bytes, N=256",
        ">bytes/conn",
        ">bytes/conn beyond the 16-byte Conn",
        ">heap blocks/conn",
    ]);
    for &kind in &kinds {
        let one = with_contender!(kind, C => live_after_fill::<C>(n));
        let two = with_contender!(kind, C => live_after_fill::<C>(2 * n));
        match (one, two) {
            (Ok(a), Ok(b)) => {
                let per = (b.0 - a.0) as f64 / f64::from(n);
                let blocks = (b.1 - a.1) as f64 / f64::from(n);
                t.row(vec![
                    kind.name().into(),
                    a.0.to_string(),
                    b.0.to_string(),
                    format!("{per:.1}"),
                    format!(
                        "{:.1}",
                        per - std::mem::size_of::<poolwarden_bench::conn::Conn>() as f64
                    ),
                    format!("{blocks:.2}"),
                ]);
            }
            (a, b) => t.row(vec![
                kind.name().into(),
                format!("{:?}", a.err()),
                format!("{:?}", b.err()),
            ]),
        }
    }
    print!("{}", t.render(md));
    if md {
        println!();
    }
    println!(
        "live bytes = allocated - freed between just before `build` and 50 ms after the \
         fill (so it also holds the pool's fixed structures and any background task); \
         bytes/conn = (live(256) - live(128)) / 128."
    );

    print!("{}", heading("Stack sizes (std::mem::size_of, bytes)", md));
    let mut t = Table::new(&["pool", ">handle", ">guard", ">get() future"]);
    for &kind in &kinds {
        match with_contender!(kind, C => sizes::<C>()) {
            Ok(s) => t.row(vec![
                kind.name().into(),
                s.handle.to_string(),
                s.guard.to_string(),
                s.get_future.to_string(),
            ]),
            Err(e) => t.row(vec![kind.name().into(), e]),
        }
    }
    print!("{}", t.render(md));
    if md {
        println!();
    }
    println!("handle of the baseline = Arc<Baseline>; r2d2's get() future is this crate's async wrapper (try_get, else spawn_blocking).");
}
