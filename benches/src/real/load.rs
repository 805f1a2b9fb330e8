//! The load loop: `tasks` tasks each running operations back to back (or
//! with a think time) until a deadline or an operation count, whichever
//! comes first. Every operation is also bounded by its own timeout.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::real::contenders::{Contender, OpError, Query};
use crate::real::stats::Samples;

#[derive(Clone)]
pub(crate) struct Spec {
    pub(crate) tasks: usize,
    /// No operation starts after this long.
    pub(crate) duration: Duration,
    /// No task runs more operations than this.
    pub(crate) max_ops_per_task: u64,
    pub(crate) think: Option<Duration>,
    pub(crate) query: Query,
    /// Bound on one operation; past it the operation counts as an error.
    pub(crate) op_timeout: Duration,
    /// Keep every operation's start, end and outcome.
    pub(crate) timeline: bool,
    /// An earlier end set while running (nanoseconds after the start).
    pub(crate) stop_at: Option<Arc<AtomicU64>>,
    /// When the tasks start (default: right after they are all spawned).
    pub(crate) start_at: Option<Instant>,
}

impl Spec {
    pub(crate) fn new(tasks: usize, duration: Duration, query: Query) -> Spec {
        Spec {
            tasks,
            duration,
            max_ops_per_task: 10_000_000,
            think: None,
            query,
            op_timeout: Duration::from_secs(30),
            timeline: false,
            stop_at: None,
            start_at: None,
        }
    }
}

/// One operation in the timeline (offsets from the run's start).
#[derive(Debug, Clone, Copy)]
pub(crate) struct OpRecord {
    pub(crate) start: Duration,
    pub(crate) end: Duration,
    pub(crate) ok: bool,
}

pub(crate) struct Outcome {
    /// From the start to the end of the last task.
    pub(crate) elapsed: Duration,
    pub(crate) ok: u64,
    pub(crate) errors: u64,
    /// Successful operations per task.
    pub(crate) per_task: Vec<u64>,
    /// Checkout + query + return, successful operations.
    pub(crate) latency: Samples,
    /// Checkout alone, successful operations.
    pub(crate) wait: Samples,
    /// Error messages (shortened) and how often each occurred.
    pub(crate) error_kinds: BTreeMap<String, u64>,
    pub(crate) timeline: Vec<OpRecord>,
}

impl Outcome {
    pub(crate) fn qps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// (min, max) of successful operations per task, relative to the mean.
    pub(crate) fn task_spread(&self) -> (f64, f64) {
        let n = self.per_task.len().max(1) as f64;
        let mean = self.per_task.iter().sum::<u64>() as f64 / n;
        if mean == 0.0 {
            return (0.0, 0.0);
        }
        let min = self.per_task.iter().copied().min().unwrap_or(0) as f64;
        let max = self.per_task.iter().copied().max().unwrap_or(0) as f64;
        (min / mean, max / mean)
    }

    /// The most frequent error, with its count, for tables.
    pub(crate) fn top_error(&self) -> String {
        self.error_kinds
            .iter()
            .max_by_key(|(_, n)| **n)
            .map(|(m, n)| format!("{n}× {m}"))
            .unwrap_or_default()
    }
}

struct TaskOut {
    ok: u64,
    errors: u64,
    lat: Vec<u64>,
    wait: Vec<u64>,
    kinds: BTreeMap<String, u64>,
    timeline: Vec<OpRecord>,
    end: Instant,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Runs the load and waits for every task.
pub(crate) async fn run(contender: &Arc<dyn Contender>, spec: &Spec) -> Outcome {
    // All tasks start at the same instant, after they have all been spawned.
    let lead = Duration::from_millis(20) + Duration::from_micros(20) * spec.tasks as u32;
    let start = spec.start_at.unwrap_or_else(|| Instant::now() + lead);
    let deadline = start + spec.duration;
    let mut handles = Vec::with_capacity(spec.tasks);
    for task in 0..spec.tasks {
        let c = Arc::clone(contender);
        let spec = spec.clone();
        handles.push(tokio::spawn(async move {
            tokio::time::sleep_until(start.into()).await;
            let mut out = TaskOut {
                ok: 0,
                errors: 0,
                lat: Vec::new(),
                wait: Vec::new(),
                kinds: BTreeMap::new(),
                timeline: Vec::new(),
                end: start,
            };
            let mut n = 0;
            loop {
                let t0 = Instant::now();
                let stopped = spec
                    .stop_at
                    .as_ref()
                    .is_some_and(|s| nanos(t0.saturating_duration_since(start)) >= s.load(Relaxed));
                if t0 >= deadline || n >= spec.max_ops_per_task || stopped {
                    break;
                }
                n += 1;
                let r = tokio::time::timeout(spec.op_timeout, c.op(task, spec.query)).await;
                let t1 = Instant::now();
                let r = r.unwrap_or_else(|_| Err(OpError::timeout(spec.op_timeout)));
                let ok = r.is_ok();
                match r {
                    Ok(wait) => {
                        out.ok += 1;
                        out.lat.push(nanos(t1 - t0));
                        out.wait.push(nanos(wait));
                    }
                    Err(e) => {
                        out.errors += 1;
                        *out.kinds.entry(e.short()).or_default() += 1;
                    }
                }
                if spec.timeline {
                    out.timeline.push(OpRecord {
                        start: t0.saturating_duration_since(start),
                        end: t1.saturating_duration_since(start),
                        ok,
                    });
                }
                if let Some(think) = spec.think {
                    tokio::time::sleep(think).await;
                }
            }
            out.end = Instant::now();
            out
        }));
    }
    let mut per_task = Vec::with_capacity(spec.tasks);
    let (mut ok, mut errors) = (0, 0);
    let (mut lat, mut wait, mut timeline) = (Vec::new(), Vec::new(), Vec::new());
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    let mut last_end = start;
    for h in handles {
        match h.await {
            Ok(t) => {
                per_task.push(t.ok);
                ok += t.ok;
                errors += t.errors;
                lat.extend(t.lat);
                wait.extend(t.wait);
                timeline.extend(t.timeline);
                for (k, v) in t.kinds {
                    *kinds.entry(k).or_default() += v;
                }
                last_end = last_end.max(t.end);
            }
            Err(e) => {
                per_task.push(0);
                errors += 1;
                *kinds.entry(format!("task panicked: {e}")).or_default() += 1;
            }
        }
    }
    timeline.sort_by_key(|r| r.end);
    Outcome {
        elapsed: last_end.saturating_duration_since(start),
        ok,
        errors,
        per_task,
        latency: Samples::new(lat),
        wait: Samples::new(wait),
        error_kinds: kinds,
        timeline,
    }
}
