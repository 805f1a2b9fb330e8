//! Checkout+return micro-benchmark: poolwarden against deadpool, bb8, mobc,
//! r2d2 and a semaphore+mutex baseline, plus fairness and allocation figures.
//!
//! `cargo run -p poolwarden-bench --release --bin micro -- [--quick] [--runs N] [--markdown]`
//!
//! Other options: `--only a,b` (contenders), `--tasks 1,10` (task counts),
//! `--modes get-drop,hold-yield`, `--target-ms N` (length of one timed run),
//! `--fair-ms N`, `--no-fairness`, `--no-allocs`, `--quiet-wait SECS` (before
//! each group of cells, wait up to SECS for other processes to go quiet, and
//! measure a group again, once, if they took CPU during it).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use poolwarden_bench::kinds::Kind;
use poolwarden_bench::report::{self, heading, rate, ratio, CpuSample, Table};
use poolwarden_bench::runner::{
    self, CellResult, CellSpec, FairnessResult, LiveCell, POOL_SIZE, WORKERS,
};
use poolwarden_bench::with_contender;

/// Mode (a) and (b) of the issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Mode {
    GetDrop,
    HoldYield,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::GetDrop => "get-drop",
            Mode::HoldYield => "hold-yield",
        }
    }
    fn hold(self) -> bool {
        self == Mode::HoldYield
    }
}

#[derive(Debug)]
struct Options {
    quick: bool,
    runs: usize,
    markdown: bool,
    kinds: Vec<Kind>,
    tasks: Vec<usize>,
    modes: Vec<Mode>,
    target: Duration,
    fair: Duration,
    fairness: bool,
    fair_runs: usize,
    allocs: bool,
    quiet_wait: Duration,
}

fn usage() -> ! {
    eprintln!(
        "usage: micro [--quick] [--runs N] [--markdown] [--only pool,..] [--tasks n,..] \
         [--modes get-drop,hold-yield] [--target-ms N] [--fair-ms N] [--no-fairness] [--no-allocs] [--quiet-wait SECS]"
    );
    std::process::exit(2);
}

fn parse_args() -> Options {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let mut o = Options {
        quick,
        runs: if quick { 3 } else { 5 },
        markdown: false,
        kinds: Kind::ALL.to_vec(),
        tasks: vec![1, 10, 100, 1000],
        modes: vec![Mode::GetDrop, Mode::HoldYield],
        target: Duration::from_millis(if quick { 100 } else { 500 }),
        fair: Duration::from_millis(if quick { 300 } else { 1000 }),
        fairness: true,
        fair_runs: if quick { 2 } else { 3 },
        allocs: true,
        quiet_wait: Duration::ZERO,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().unwrap_or_else(|| usage());
        match a.as_str() {
            "--quick" => {}
            "--markdown" => o.markdown = true,
            "--no-fairness" => o.fairness = false,
            "--no-allocs" => o.allocs = false,
            "--quiet-wait" => {
                o.quiet_wait = Duration::from_secs(value().parse().unwrap_or_else(|_| usage()))
            }
            "--runs" => o.runs = value().parse().unwrap_or_else(|_| usage()),
            "--target-ms" => {
                o.target = Duration::from_millis(value().parse().unwrap_or_else(|_| usage()))
            }
            "--fair-ms" => {
                o.fair = Duration::from_millis(value().parse().unwrap_or_else(|_| usage()))
            }
            "--only" => {
                o.kinds = value()
                    .split(',')
                    .map(|s| Kind::parse(s).unwrap_or_else(|| usage()))
                    .collect()
            }
            "--tasks" => {
                o.tasks = value()
                    .split(',')
                    .map(|s| s.parse().unwrap_or_else(|_| usage()))
                    .collect()
            }
            "--modes" => {
                o.modes = value()
                    .split(',')
                    .map(|s| match s {
                        "get-drop" | "a" => Mode::GetDrop,
                        "hold-yield" | "b" => Mode::HoldYield,
                        _ => usage(),
                    })
                    .collect()
            }
            "-h" | "--help" => usage(),
            _ => usage(),
        }
    }
    if o.runs == 0 || o.tasks.contains(&0) {
        usage();
    }
    o
}

/// Builds the `allocs` binary next to this one (it must run under its own
/// counting global allocator, so it cannot live in this process).
fn allocs_binary() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = exe.parent().ok_or("no exe dir")?.to_path_buf();
    let path = dir.join(format!("allocs{}", std::env::consts::EXE_SUFFIX));
    if let Ok(cargo) = std::env::var("CARGO") {
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-q", "-p", "poolwarden-bench", "--bin", "allocs"]);
        if dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().map_err(|e| format!("cargo build: {e}"))?;
        if !status.success() {
            return Err(format!("cargo build of `allocs` failed: {status}"));
        }
    }
    if path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "{} not found: build it with `cargo build --release -p poolwarden-bench --bin allocs`",
            path.display()
        ))
    }
}

/// Other processes may take at most this many cores for the machine to
/// count as quiet (`--quiet-wait`).
const QUIET_CORES: f64 = 0.1;
/// Re-measurements of a group disturbed by other processes (`--quiet-wait`).
const QUIET_RETRIES: usize = 1;

/// Waits, up to `max`, for a 2 s window in which other processes take less
/// than [`QUIET_CORES`]. Returns whether it found one.
fn wait_quiet(max: Duration) -> bool {
    if max.is_zero() {
        return true;
    }
    let deadline = Instant::now() + max;
    loop {
        let a = CpuSample::now();
        std::thread::sleep(Duration::from_secs(2));
        let busy = a.zip(CpuSample::now()).map(|(a, b)| b.others_since(&a));
        match busy {
            None => return true,
            Some(b) if b < QUIET_CORES => return true,
            Some(b) if Instant::now() >= deadline => {
                eprintln!(
                    "           machine still busy ({b:.2} cores) after {max:?}; measuring anyway"
                );
                return false;
            }
            Some(_) => {}
        }
    }
}

/// One (mode, task count) group: every pool's cell started side by side,
/// their runs interleaved (rotating the order each round). Returns each
/// pool's result and the cores other processes took during each of its runs.
fn run_group(o: &Options, mode: Mode, tasks: usize) -> Vec<(Kind, CellResult, Vec<f64>)> {
    let spec = CellSpec {
        tasks,
        hold: mode.hold(),
        runs: o.runs,
        target: o.target,
        limit: Duration::from_secs(20).max(o.target * 20),
    };
    let mut out: Vec<(Kind, CellResult, Vec<f64>)> = Vec::new();
    let mut live: Vec<Option<Box<dyn LiveCell>>> = Vec::new();
    for &kind in &o.kinds {
        let mut r = CellResult::default();
        let started_cell = with_contender!(kind, C => runner::start_cell::<C>(spec));
        let cell = match started_cell {
            Ok((cell, warning)) => {
                r.warning = warning;
                r.ops_per_task = cell.ops_per_task();
                Some(cell)
            }
            Err(e) => {
                r.error = Some(e);
                None
            }
        };
        out.push((kind, r, Vec::new()));
        live.push(cell);
    }
    let n = live.len();
    for round in 0..o.runs {
        for i in 0..n {
            let k = (i + round) % n;
            let Some(cell) = &mut live[k] else { continue };
            let cpu = CpuSample::now();
            let outcome = cell.run_once();
            if let Some(b) = cpu.zip(CpuSample::now()).map(|(a, b)| b.others_since(&a)) {
                out[k].2.push(b);
            }
            match outcome {
                Ok(rate) => out[k].1.rates.push(rate),
                Err(e) => {
                    out[k].1.error = Some(e);
                    live[k] = None;
                }
            }
        }
    }
    drop(live);
    out
}

/// Each fairness run of one pool, with the cores other processes took.
type FairnessRuns = Vec<(FairnessResult, Option<f64>)>;

/// The median over rounds of `a[i] / b[i]`: runs of the same round ran
/// back to back, so the paired ratio cancels drift in machine speed that a
/// ratio of medians would not.
fn paired_ratio(a: &[f64], b: &[f64]) -> Option<f64> {
    let r: Vec<f64> = a.iter().zip(b).map(|(x, y)| x / y).collect();
    runner::median(&r)
}

/// Mean of the samples (0 when there are none).
fn mean(xs: Option<&Vec<f64>>) -> f64 {
    match xs {
        Some(v) if !v.is_empty() => v.iter().sum::<f64>() / v.len() as f64,
        _ => 0.0,
    }
}

fn main() {
    let o = parse_args();
    let started = Instant::now();
    let load_start = report::loadavg();
    let allocs = if o.allocs {
        Some(allocs_binary())
    } else {
        None
    };

    // Throughput: contenders interleaved within each (mode, tasks) so that
    // drift in machine load hits them alike.
    let mut cells: HashMap<(Mode, usize, Kind), CellResult> = HashMap::new();
    let mut others: HashMap<(Mode, usize, Kind), Vec<f64>> = HashMap::new();
    let bench_cpu_start = CpuSample::now();
    for &mode in &o.modes {
        for &tasks in &o.tasks {
            let mut attempt = 1;
            let group = loop {
                wait_quiet(o.quiet_wait);
                let group = run_group(&o, mode, tasks);
                let all: Vec<f64> = group.iter().flat_map(|g| g.2.iter().copied()).collect();
                let busy = mean(Some(&all));
                if o.quiet_wait.is_zero() || busy <= QUIET_CORES * 1.5 || attempt > QUIET_RETRIES {
                    break group;
                }
                eprintln!(
                    "           other processes took {busy:.2} cores during {} tasks={tasks}; measuring it again",
                    mode.name()
                );
                attempt += 1;
            };
            for (kind, r, other) in group {
                eprintln!(
                    "[{:6.1}s] {:10} {:10} tasks={:<5} {:>10} (others {:.2} cores) runs: {}{}",
                    started.elapsed().as_secs_f64(),
                    mode.name(),
                    kind.name(),
                    tasks,
                    r.median().map(rate).unwrap_or_else(|| "-".into()),
                    mean(Some(&other)),
                    r.rates
                        .iter()
                        .map(|&x| rate(x))
                        .collect::<Vec<_>>()
                        .join(", "),
                    r.error
                        .as_deref()
                        .map(|e| format!(" ERROR {e}"))
                        .unwrap_or_default()
                );
                cells.insert((mode, tasks, kind), r);
                others.insert((mode, tasks, kind), other);
            }
        }
    }

    // Fairness: several runs per pool, pools interleaved run by run.
    let mut fairness: HashMap<(Mode, Kind), FairnessRuns> = HashMap::new();
    if o.fairness {
        for &mode in &o.modes {
            for round in 0..o.fair_runs {
                // One wait per round (not per pool), and no re-runs: the
                // `others` column tells which runs were disturbed.
                wait_quiet(o.quiet_wait);
                for &kind in &o.kinds {
                    let cpu = CpuSample::now();
                    let r = with_contender!(kind, C => runner::measure_fairness::<C>(100, mode.hold(), o.fair));
                    let other = cpu.zip(CpuSample::now()).map(|(a, b)| b.others_since(&a));
                    eprintln!(
                        "[{:6.1}s] fairness {:10} {:10} run {} {} (others {:.2} cores)",
                        started.elapsed().as_secs_f64(),
                        mode.name(),
                        kind.name(),
                        round + 1,
                        r.error.clone().unwrap_or_else(|| format!(
                            "{} ops/s, per task min {} max {}",
                            rate(r.rate()),
                            r.counts.first().unwrap_or(&0),
                            r.counts.last().unwrap_or(&0)
                        )),
                        other.unwrap_or(f64::NAN)
                    );
                    fairness.entry((mode, kind)).or_default().push((r, other));
                }
            }
        }
    }
    let load_bench_end = report::loadavg();
    let others_total = bench_cpu_start
        .zip(CpuSample::now())
        .map(|(a, b)| b.others_since(&a));

    let allocs_out = allocs.map(|bin| {
        bin.and_then(|path| {
            let mut cmd = Command::new(path);
            if o.markdown {
                cmd.arg("--markdown");
            }
            if o.quick {
                cmd.arg("--quick");
            }
            cmd.arg("--only").arg(
                o.kinds
                    .iter()
                    .map(|k| k.name())
                    .collect::<Vec<_>>()
                    .join(","),
            );
            let out = cmd.output().map_err(|e| e.to_string())?;
            if !out.status.success() {
                return Err(format!(
                    "allocs failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        })
    });

    // ---- Output ----
    let md = o.markdown;
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    print!("{}", heading("Setup", md));
    let setup = [
        format!(
            "machine: {cpus} CPUs; load average (1/5/15 min) at start {load_start}, after the timed runs {load_bench_end} (includes this benchmark)"
        ),
        format!(
            "CPU taken by other processes during the timed runs: {} cores on average (column `others`: per cell){}",
            others_total.map_or("unknown".to_owned(), |o| format!("{o:.2}")),
            if o.quiet_wait.is_zero() {
                String::new()
            } else {
                format!("; --quiet-wait {} s", o.quiet_wait.as_secs())
            }
        ),
        format!(
            "tokio multi-thread runtime, {WORKERS} workers; pool size {POOL_SIZE}, pre-filled to {POOL_SIZE} before measuring"
        ),
        format!(
            "each cell: own runtime and pool, calibrated op count per task (~{} ms per run), median of {} runs, \
             the runs of all pools interleaved round by round{}",
            o.target.as_millis(),
            o.runs,
            if o.quick { " (--quick)" } else { "" }
        ),
        "get-drop = get, touch, drop; hold-yield = get, touch, tokio::task::yield_now().await, drop".to_owned(),
    ];
    for s in setup {
        println!("{}{s}", if md { "- " } else { "" });
    }

    // Full table.
    print!(
        "{}",
        heading("Checkout + return throughput (total ops/s)", md)
    );
    let mut t = Table::new(&[
        "mode",
        ">tasks",
        "pool",
        ">ops/s",
        ">spread",
        ">vs baseline",
        ">vs poolwarden",
        ">ops/task/run",
        ">others",
    ]);
    let mut notes: Vec<String> = Vec::new();
    for &mode in &o.modes {
        for &tasks in &o.tasks {
            let no_rates = Vec::new();
            let base = cells
                .get(&(mode, tasks, Kind::Baseline))
                .map_or(&no_rates, |c| &c.rates);
            let pw = cells
                .get(&(mode, tasks, Kind::Poolwarden))
                .map_or(&no_rates, |c| &c.rates);
            for &kind in &o.kinds {
                let r = &cells[&(mode, tasks, kind)];
                let m = r.median();
                if let Some(e) = &r.error {
                    notes.push(format!(
                        "{} {} tasks={tasks}: ERROR {e}",
                        kind.name(),
                        mode.name()
                    ));
                }
                if let Some(w) = &r.warning {
                    notes.push(format!(
                        "{} {} tasks={tasks}: {w}",
                        kind.name(),
                        mode.name()
                    ));
                }
                t.row(vec![
                    mode.name().to_owned(),
                    tasks.to_string(),
                    kind.name().to_owned(),
                    m.map(rate).unwrap_or_else(|| "FAILED".into()),
                    r.spread_pct()
                        .map(|s| format!("±{:.0}%", s / 2.0))
                        .unwrap_or_default(),
                    ratio(paired_ratio(&r.rates, base)),
                    ratio(paired_ratio(&r.rates, pw)),
                    r.ops_per_task.to_string(),
                    others
                        .get(&(mode, tasks, kind))
                        .map_or(String::new(), |o| format!("{:.2}", mean(Some(o)))),
                ]);
            }
        }
    }
    print!("{}", t.render(md));
    if md {
        println!();
    }
    println!(
        "ops/s = median over the runs; spread = half of (max - min) / median over the runs; \
         vs X = median over the rounds of (this pool's run / X's run in the same round); \
         others = cores kept busy by other processes while the cell ran (from /proc/stat less \
         this process)."
    );

    // Compact matrices.
    for &mode in &o.modes {
        print!(
            "{}",
            heading(
                &format!("Summary, {} (ops/s; ratio vs baseline)", mode.name()),
                md
            )
        );
        let mut headers = vec!["pool".to_owned()];
        headers.extend(
            o.tasks
                .iter()
                .map(|t| format!(">{t} task{}", if *t == 1 { "" } else { "s" })),
        );
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        let mut t = Table::new(&headers);
        for &kind in &o.kinds {
            let mut row = vec![kind.name().to_owned()];
            for &tasks in &o.tasks {
                let c = &cells[&(mode, tasks, kind)];
                let m = c.median();
                let b = cells
                    .get(&(mode, tasks, Kind::Baseline))
                    .and_then(|b| paired_ratio(&c.rates, &b.rates));
                row.push(match (m, b) {
                    (Some(m), Some(b)) if kind != Kind::Baseline => {
                        format!("{} ({b:.2}x)", rate(m))
                    }
                    (Some(m), _) => rate(m),
                    (None, _) => "FAILED".into(),
                });
            }
            t.row(row);
        }
        print!("{}", t.render(md));
    }

    if o.fairness {
        print!(
            "{}",
            heading(
                &format!(
                    "Fairness: 100 tasks, pool {POOL_SIZE}, {} ms with a stop flag, {} runs (ops completed per task)",
                    o.fair.as_millis(),
                    o.fair_runs
                ),
                md
            )
        );
        let mut t = Table::new(&[
            "mode",
            "pool",
            ">ops/s",
            ">max/min, each run",
            ">CV, each run",
            ">min / median / max, most unequal run",
            ">others",
        ]);
        for &mode in &o.modes {
            for &kind in &o.kinds {
                let runs = fairness
                    .get(&(mode, kind))
                    .map(Vec::as_slice)
                    .unwrap_or(&[]);
                let ok: Vec<&FairnessResult> = runs
                    .iter()
                    .map(|(r, _)| r)
                    .filter(|r| r.error.is_none() && !r.counts.is_empty())
                    .collect();
                for (r, _) in runs {
                    if let Some(e) = &r.error {
                        notes.push(format!(
                            "fairness {} {}: ERROR {e}",
                            kind.name(),
                            mode.name()
                        ));
                    }
                    if let Some(w) = &r.warning {
                        notes.push(format!("fairness {} {}: {w}", kind.name(), mode.name()));
                    }
                }
                if ok.is_empty() {
                    t.row(vec![
                        mode.name().into(),
                        kind.name().into(),
                        "FAILED".into(),
                    ]);
                    continue;
                }
                let rates: Vec<f64> = ok.iter().map(|r| r.rate()).collect();
                let ratio_of = |r: &FairnessResult| {
                    let min = *r.counts.first().unwrap_or(&0);
                    let max = *r.counts.last().unwrap_or(&0);
                    if min == 0 {
                        f64::INFINITY
                    } else {
                        max as f64 / min as f64
                    }
                };
                let worst = ok
                    .iter()
                    .copied()
                    .max_by(|a, b| a.cv_pct().total_cmp(&b.cv_pct()))
                    .expect("not empty");
                let others_mean = mean(Some(&runs.iter().filter_map(|(_, o)| *o).collect()));
                t.row(vec![
                    mode.name().into(),
                    kind.name().into(),
                    runner::median(&rates).map(rate).unwrap_or_default(),
                    ok.iter()
                        .map(|r| {
                            let x = ratio_of(r);
                            if x.is_finite() {
                                format!("{x:.2}")
                            } else {
                                "inf".to_owned()
                            }
                        })
                        .collect::<Vec<_>>()
                        .join(", "),
                    ok.iter()
                        .map(|r| format!("{:.0}%", r.cv_pct()))
                        .collect::<Vec<_>>()
                        .join(", "),
                    format!(
                        "{} / {} / {}",
                        worst.counts.first().unwrap_or(&0),
                        worst.counts[worst.counts.len() / 2],
                        worst.counts.last().unwrap_or(&0)
                    ),
                    format!("{others_mean:.2}"),
                ]);
            }
        }
        print!("{}", t.render(md));
        if md {
            println!();
        }
        println!(
            "ops/s = median over the runs; CV = standard deviation / mean of the per-task counts; \
             inf = some task completed no op."
        );
    }

    if let Some(out) = allocs_out {
        match out {
            Ok(s) => print!("{s}"),
            Err(e) => notes.push(format!("allocation figures: {e}")),
        }
    }

    if !notes.is_empty() {
        print!("{}", heading("Notes", md));
        for n in &notes {
            println!("{}{n}", if md { "- " } else { "" });
        }
    }
    println!(
        "\nload average at the end {}; total time {:.0} s",
        report::loadavg(),
        started.elapsed().as_secs_f64()
    );
}
