//! The cluster suite's write load: 32 (or fewer) tasks writing rows with
//! client-made unique keys, each write recorded (when, where, which error).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use poolwarden::{ErrorClass, Pool};
use poolwarden_mysql::{classify_error, mysql_async, ClusterManager, CommandCut, OutcomeUnknown};

pub(crate) type ClusterPool = Pool<ClusterManager>;

/// Bound on any wait for the cluster or the pool to reach a state.
pub(crate) const WAIT: Duration = Duration::from_secs(60);

/// Polls `cond` every 10 ms until it holds, at most `timeout`.
pub(crate) async fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let started = Instant::now();
    while !cond() {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// What one write of the load did.
#[derive(Debug, Clone)]
pub(crate) struct Write {
    pub(crate) key: u64,
    pub(crate) started: Instant,
    /// When the checkout handed the connection out.
    pub(crate) got: Option<Instant>,
    pub(crate) finished: Instant,
    pub(crate) node: Option<usize>,
    /// The error's whole chain and class.
    pub(crate) error: Option<(String, ErrorClass)>,
    /// The error was a [`CommandCut`] (its node was marked down).
    pub(crate) cut: bool,
    /// The error was an [`OutcomeUnknown`] (an ambiguous commit).
    pub(crate) ambiguous: bool,
}

/// An error and its sources, as one line.
fn chain(e: &mysql_async::Error) -> String {
    std::iter::successors(Some(e as &dyn std::error::Error), |e| e.source())
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}

/// 32 tasks writing rows with client-made unique keys, until stopped.
pub(crate) struct Load {
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) acked: Arc<AtomicU64>,
    pub(crate) log: Arc<Mutex<Vec<Write>>>,
    pub(crate) tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// `tasks` writers; each write bounded by `deadline` (a frozen node
    /// answers nothing).
    pub(crate) fn start(pool: &ClusterPool, tasks: u64, deadline: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicU64::new(0));
        let log = Arc::new(Mutex::new(Vec::new()));
        let tasks = (0..tasks)
            .map(|task| {
                let (pool, stop, acked, log) =
                    (pool.clone(), stop.clone(), acked.clone(), log.clone());
                tokio::spawn(async move {
                    // Bounded: at most 100k writes per task.
                    for seq in 0..100_000u64 {
                        if stop.load(SeqCst) {
                            return;
                        }
                        let key = (task << 32) | seq;
                        let started = Instant::now();
                        let mut w = Write {
                            key,
                            started,
                            got: None,
                            finished: started,
                            node: None,
                            error: None,
                            cut: false,
                            ambiguous: false,
                        };
                        match pool.get().await {
                            Err(e) => w.error = Some((format!("checkout: {e}"), ErrorClass::Keep)),
                            Ok(mut conn) => {
                                w.got = Some(Instant::now());
                                w.node = Some(conn.node());
                                let r = tokio::time::timeout(
                                    deadline,
                                    conn.exec_drop(
                                        "INSERT INTO w (k, task) VALUES (?, ?)",
                                        (key, task),
                                    ),
                                )
                                .await;
                                match r {
                                    Ok(Ok(())) => {
                                        acked.fetch_add(1, SeqCst);
                                    }
                                    Ok(Err(e)) => {
                                        conn.report_error(&e);
                                        w.cut = CommandCut::find(&e).is_some();
                                        w.ambiguous = OutcomeUnknown::find(&e).is_some();
                                        w.error = Some((chain(&e), classify_error(&e)));
                                    }
                                    Err(_) => {
                                        w.error = Some((
                                            format!("no answer in {deadline:?}"),
                                            ErrorClass::Keep,
                                        ))
                                    }
                                }
                            }
                        }
                        w.finished = Instant::now();
                        log.lock().push(w);
                    }
                })
            })
            .collect();
        Load {
            stop,
            acked,
            log,
            tasks,
        }
    }

    pub(crate) async fn wait_acked(&self, n: u64) {
        let acked = self.acked.clone();
        wait_until(&format!("{n} acknowledged writes"), WAIT, || {
            acked.load(SeqCst) >= n
        })
        .await;
    }

    pub(crate) async fn finish(self) -> Vec<Write> {
        self.stop.store(true, SeqCst);
        for t in self.tasks {
            t.await.unwrap();
        }
        let log = self.log.lock().clone();
        log
    }
}
