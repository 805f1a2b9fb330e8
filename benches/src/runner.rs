//! Runs cells: one runtime, one warm pool, fixed op counts or a fixed time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;
use tokio::sync::Barrier;
use tokio::task::JoinHandle;

use crate::contender::{BenchError, Contender};

/// The pool size of every benchmark.
pub const POOL_SIZE: u32 = 10;

/// Worker threads of every benchmark runtime.
pub const WORKERS: usize = 2;

/// The benchmark runtime: tokio multi-thread, 2 workers, timers on.
pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Builds the pool and warms it: `max_size` connections opened, checked out
/// together and returned. Returns the pool and, if the pool does not report
/// `max_size` idle connections afterwards, a warning.
pub async fn prepare<C: Contender>(max_size: u32) -> Result<(Arc<C>, Option<String>), BenchError> {
    let pool = C::build(max_size).await?;
    pool.hold_all(max_size as usize).await?;
    // Let pools that return connections asynchronously (mobc) settle.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let warning = match pool.idle().await {
        Some(idle) if idle == u64::from(max_size) => None,
        Some(idle) => Some(format!(
            "{}: {idle} idle after warm-up, expected {max_size}",
            C::NAME
        )),
        None => None,
    };
    Ok((Arc::new(pool), warning))
}

/// Collects the tasks' results, bounded by `deadline`; aborts all on timeout.
async fn join_all<T>(
    handles: &mut [JoinHandle<Result<T, BenchError>>],
    deadline: Instant,
    limit: Duration,
) -> Result<Vec<T>, BenchError> {
    let mut out = Vec::with_capacity(handles.len());
    let mut first_err = None;
    for i in 0..handles.len() {
        match tokio::time::timeout_at(deadline.into(), &mut handles[i]).await {
            Ok(Ok(Ok(v))) => out.push(v),
            Ok(Ok(Err(e))) => {
                first_err.get_or_insert(e);
            }
            Ok(Err(e)) => {
                first_err.get_or_insert(format!("task failed: {e}"));
            }
            Err(_) => {
                for h in handles.iter() {
                    h.abort();
                }
                let done = handles.iter().filter(|h| h.is_finished()).count();
                return Err(format!(
                    "timed out after {limit:?} ({done}/{} tasks finished)",
                    handles.len()
                ));
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// `tasks` tasks each do `ops_per_task` checkouts; returns the wall time from
/// the common start (a barrier) until the last task finished.
pub async fn run_fixed<C: Contender>(
    pool: &Arc<C>,
    tasks: usize,
    ops_per_task: u64,
    hold: bool,
    limit: Duration,
) -> Result<Duration, BenchError> {
    let barrier = Arc::new(Barrier::new(tasks + 1));
    let mut handles: Vec<JoinHandle<Result<(), BenchError>>> = (0..tasks)
        .map(|_| {
            let pool = Arc::clone(pool);
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                barrier.wait().await;
                for _ in 0..ops_per_task {
                    pool.checkout(hold).await?;
                }
                Ok(())
            })
        })
        .collect();
    barrier.wait().await;
    let start = Instant::now();
    join_all(&mut handles, start + limit, limit).await?;
    Ok(start.elapsed())
}

/// Finds the per-task op count that makes one run last about `target`
/// (the pilot runs double as the warm-up).
pub async fn calibrate<C: Contender>(
    pool: &Arc<C>,
    tasks: usize,
    hold: bool,
    target: Duration,
    limit: Duration,
) -> Result<u64, BenchError> {
    let pilot = Duration::from_millis(40).min(target / 2);
    let mut per_task = (2_000 / tasks as u64).max(1);
    loop {
        let took = run_fixed(pool, tasks, per_task, hold, limit).await?;
        if took >= pilot || per_task >= 1 << 28 {
            let rate = (tasks as u64 * per_task) as f64 / took.as_secs_f64();
            let want = rate * target.as_secs_f64() / tasks as f64;
            return Ok(want.ceil().max(1.0) as u64);
        }
        let factor = (pilot.as_secs_f64() / took.as_secs_f64().max(1e-6)).clamp(2.0, 16.0);
        per_task = ((per_task as f64) * factor).ceil() as u64;
    }
}

/// One throughput cell: `runs` timed runs of a fixed op count.
#[derive(Debug, Clone, Default)]
pub struct CellResult {
    /// Total ops/s of each run.
    pub rates: Vec<f64>,
    /// Ops each task did in each timed run.
    pub ops_per_task: u64,
    /// Why the cell has no (or not all) numbers.
    pub error: Option<String>,
    /// Something odd that did not stop the cell.
    pub warning: Option<String>,
}

impl CellResult {
    /// The median of the runs' rates.
    pub fn median(&self) -> Option<f64> {
        median(&self.rates)
    }

    /// (max - min) / median of the runs, in percent.
    pub fn spread_pct(&self) -> Option<f64> {
        let m = self.median()?;
        let lo = self.rates.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = self.rates.iter().copied().fold(0.0, f64::max);
        Some((hi - lo) / m * 100.0)
    }
}

/// The median of `xs` (mean of the middle two for an even count).
pub fn median(xs: &[f64]) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// Settings of a throughput cell.
#[derive(Debug, Clone, Copy)]
pub struct CellSpec {
    /// Concurrent tasks.
    pub tasks: usize,
    /// Hold the connection across a `yield_now().await`.
    pub hold: bool,
    /// Timed runs.
    pub runs: usize,
    /// Target duration of one run.
    pub target: Duration,
    /// Bound on any one run (a stuck pool ends the cell with an error).
    pub limit: Duration,
}

/// A cell ready to run: its own runtime, a warm pool and a calibrated op
/// count. Cells of one (mode, task count) are kept side by side and their
/// runs interleaved, so that drift in machine load hits every pool alike.
pub trait LiveCell {
    /// Ops each task does in one run.
    fn ops_per_task(&self) -> u64;
    /// One timed run; total ops/s.
    fn run_once(&mut self) -> Result<f64, BenchError>;
}

struct Live<C: Contender> {
    rt: Option<Runtime>,
    pool: Option<Arc<C>>,
    spec: CellSpec,
    per_task: u64,
}

impl<C: Contender> LiveCell for Live<C> {
    fn ops_per_task(&self) -> u64 {
        self.per_task
    }

    fn run_once(&mut self) -> Result<f64, BenchError> {
        let (Some(rt), Some(pool)) = (&self.rt, &self.pool) else {
            return Err("cell already shut down".to_owned());
        };
        let spec = self.spec;
        let took = rt.block_on(run_fixed(
            pool,
            spec.tasks,
            self.per_task,
            spec.hold,
            spec.limit,
        ))?;
        Ok((spec.tasks as u64 * self.per_task) as f64 / took.as_secs_f64())
    }
}

impl<C: Contender> Drop for Live<C> {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            // Drop the pool inside its runtime (some pools spawn on drop).
            let pool = self.pool.take();
            rt.block_on(async move { drop(pool) });
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

/// Builds, warms and calibrates a cell in a fresh runtime. Returns the cell
/// and a warning if the warm-up looked odd.
pub fn start_cell<C: Contender>(
    spec: CellSpec,
) -> Result<(Box<dyn LiveCell>, Option<String>), BenchError> {
    let rt = runtime();
    let prepared = rt.block_on(async {
        let (pool, warning) = prepare::<C>(POOL_SIZE).await?;
        let per_task = calibrate(&pool, spec.tasks, spec.hold, spec.target, spec.limit)
            .await
            .map_err(|e| format!("calibration: {e}"))?;
        Ok::<_, BenchError>((pool, warning, per_task))
    });
    match prepared {
        Ok((pool, warning, per_task)) => Ok((
            Box::new(Live {
                rt: Some(rt),
                pool: Some(pool),
                spec,
                per_task,
            }),
            warning,
        )),
        Err(e) => {
            rt.shutdown_timeout(Duration::from_secs(5));
            Err(e)
        }
    }
}

/// Ops completed per task in a fixed-duration run.
#[derive(Debug, Clone, Default)]
pub struct FairnessResult {
    /// Ops per task, sorted ascending.
    pub counts: Vec<u64>,
    /// Wall time from start to the last task's exit.
    pub elapsed: Duration,
    /// Why there are no numbers.
    pub error: Option<String>,
    /// Something odd that did not stop the run.
    pub warning: Option<String>,
}

impl FairnessResult {
    /// Total ops/s over the run.
    pub fn rate(&self) -> f64 {
        self.counts.iter().sum::<u64>() as f64 / self.elapsed.as_secs_f64()
    }

    /// Coefficient of variation of the per-task counts, in percent.
    pub fn cv_pct(&self) -> f64 {
        let n = self.counts.len() as f64;
        let mean = self.counts.iter().sum::<u64>() as f64 / n;
        let var = self
            .counts
            .iter()
            .map(|&c| (c as f64 - mean).powi(2))
            .sum::<f64>()
            / n;
        var.sqrt() / mean * 100.0
    }
}

/// `tasks` tasks check out in a loop until a stop flag is raised after
/// `duration`; returns how many ops each completed.
///
/// The flag is raised by the `block_on` thread with a plain thread sleep, so
/// it fires even if tasks never yield to the runtime.
pub fn measure_fairness<C: Contender>(
    tasks: usize,
    hold: bool,
    duration: Duration,
) -> FairnessResult {
    let rt = runtime();
    let mut result = FairnessResult::default();
    rt.block_on(async {
        let (pool, warning) = match prepare::<C>(POOL_SIZE).await {
            Ok(p) => p,
            Err(e) => {
                result.error = Some(e);
                return;
            }
        };
        result.warning = warning;
        // Warm-up, as for throughput cells.
        if let Err(e) = run_fixed(&pool, tasks, 100, hold, Duration::from_secs(30)).await {
            result.error = Some(format!("warm-up: {e}"));
            return;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let barrier = Arc::new(Barrier::new(tasks + 1));
        let mut handles: Vec<JoinHandle<Result<u64, BenchError>>> = (0..tasks)
            .map(|_| {
                let pool = Arc::clone(&pool);
                let barrier = Arc::clone(&barrier);
                let stop = Arc::clone(&stop);
                tokio::spawn(async move {
                    barrier.wait().await;
                    let mut done = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        pool.checkout(hold).await?;
                        done += 1;
                    }
                    Ok(done)
                })
            })
            .collect();
        barrier.wait().await;
        let start = Instant::now();
        std::thread::sleep(duration);
        stop.store(true, Ordering::Relaxed);
        let limit = Duration::from_secs(30);
        match join_all(&mut handles, Instant::now() + limit, limit).await {
            Ok(mut counts) => {
                result.elapsed = start.elapsed();
                counts.sort_unstable();
                result.counts = counts;
            }
            Err(e) => result.error = Some(e),
        }
    });
    rt.shutdown_timeout(Duration::from_secs(5));
    result
}
