//! Fault scenarios: a server restart under load, and a server with one
//! connection slot left for the pool's role.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use poolwarden_testkit::Postgres;

use crate::contenders::{build, Contender, Kind};

/// One operation: when it started, when it ended, whether it worked.
pub(crate) type Op = (Instant, Instant, bool);

/// A background load of `tasks` tasks running `SELECT 1` sessions, each op
/// bounded by `op_timeout`, until stopped.
pub(crate) struct Load {
    stop: Arc<AtomicBool>,
    pub(crate) ok: Arc<AtomicU64>,
    ops: Arc<Mutex<Vec<Op>>>,
    /// The distinct error texts seen (at most [`MAX_ERROR_TEXTS`]) and how
    /// often each came, so a table's error count can be explained.
    errors: Arc<Mutex<BTreeMap<String, u64>>>,
    handles: Vec<tokio::task::JoinHandle<()>>,
}

/// Distinct error texts a [`Load`] keeps.
const MAX_ERROR_TEXTS: usize = 8;

impl Load {
    /// With `deadline`, each caller gives its session that deadline
    /// ([`Contender::session_until`]).
    pub(crate) fn start(
        c: &Arc<Contender>,
        tasks: usize,
        op_timeout: Duration,
        max_ops: usize,
        deadline: Option<Duration>,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let ops = Arc::new(Mutex::new(Vec::new()));
        let errors = Arc::new(Mutex::new(BTreeMap::new()));
        let handles = (0..tasks)
            .map(|task| {
                let (c, stop, ok, ops, errors) = (
                    Arc::clone(c),
                    Arc::clone(&stop),
                    Arc::clone(&ok),
                    Arc::clone(&ops),
                    Arc::clone(&errors),
                );
                tokio::spawn(async move {
                    for _ in 0..max_ops {
                        if stop.load(Relaxed) {
                            break;
                        }
                        let start = Instant::now();
                        let session = async {
                            match deadline {
                                Some(d) => {
                                    let until = tokio::time::Instant::now() + d;
                                    c.session_until(task, &["SELECT 1"], until).await
                                }
                                None => c.session(task, &["SELECT 1"]).await,
                            }
                        };
                        let error = match tokio::time::timeout(op_timeout, session).await {
                            Ok(Ok(_)) => None,
                            Ok(Err(e)) => Some(e),
                            Err(_) => Some(format!("no answer within {op_timeout:?}")),
                        };
                        let good = error.is_none();
                        if let Some(e) = error {
                            let mut errors = errors.lock();
                            if errors.len() < MAX_ERROR_TEXTS || errors.contains_key(&e) {
                                *errors.entry(e).or_insert(0) += 1;
                            }
                        }
                        if good {
                            ok.fetch_add(1, Relaxed);
                        } else {
                            // As a client would: no spinning on errors.
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                        ops.lock().push((start, Instant::now(), good));
                    }
                })
            })
            .collect();
        Load {
            stop,
            ok,
            ops,
            errors,
            handles,
        }
    }

    pub(crate) async fn wait_ok(&self, n: u64, limit: Duration) -> bool {
        let started = Instant::now();
        while self.ok.load(Relaxed) < n {
            if started.elapsed() > limit {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        true
    }

    pub(crate) async fn finish(self) -> Vec<Op> {
        self.finish_with_errors().await.0
    }

    /// [`finish`](Self::finish), with the distinct error texts and their
    /// counts.
    pub(crate) async fn finish_with_errors(self) -> (Vec<Op>, BTreeMap<String, u64>) {
        self.stop.store(true, Relaxed);
        for h in self.handles {
            let _ = h.await;
        }
        let ops = std::mem::take(&mut *self.ops.lock());
        let errors = std::mem::take(&mut *self.errors.lock());
        (ops, errors)
    }
}

/// The first operation that succeeded ending at or after `at`, in ms from
/// `at` ("none" if there was none).
pub(crate) fn first_success(ops: &[Op], at: Instant) -> String {
    ops.iter()
        .filter(|(_, e, ok)| *ok && *e >= at)
        .map(|(_, e, _)| e.duration_since(at))
        .min()
        .map_or("none".to_owned(), |d| {
            format!("{:.1}", d.as_secs_f64() * 1000.0)
        })
}

/// Fast shutdown and restart under load from 32 tasks.
pub(crate) async fn restart(db: &mut Postgres, url: &str) {
    println!("## Server restart under load (32 tasks, pool of 10)\n");
    println!(
        "Fast shutdown (`SIGINT`), 1 s down, restart on the same port; load until 2,000 more \
         queries succeeded (at most 30 s). \"after ready\" counts operations begun after the \
         restarted server answered; \"first success\" is the first operation ending after that \
         moment, measured from it. Each operation is bounded by 5 s.\n"
    );
    println!("| contender | errors before ready | errors after ready | first success after ready (ms) | recovered |");
    println!("|---|---|---|---|---|");
    for kind in Kind::ALL {
        let c = Arc::new(build(kind, url, 10).await);
        let load = Load::start(&c, 32, Duration::from_secs(5), usize::MAX, None);
        let warmed = load.wait_ok(500, Duration::from_secs(30)).await;
        tokio::task::block_in_place(|| db.stop()).expect("stopping the server");
        tokio::time::sleep(Duration::from_secs(1)).await;
        tokio::task::block_in_place(|| db.start_again()).expect("restarting the server");
        let ready = Instant::now();
        let ok_at_ready = load.ok.load(Relaxed);
        let recovered = load
            .wait_ok(ok_at_ready + 2000, Duration::from_secs(30))
            .await;
        let ops = load.finish().await;
        let before = ops.iter().filter(|(s, _, ok)| *s < ready && !ok).count();
        let after = ops.iter().filter(|(s, _, ok)| *s >= ready && !ok).count();
        println!(
            "| {} | {before} | {after} | {} | {} |",
            kind.name(),
            first_success(&ops, ready),
            if recovered && warmed { "yes" } else { "**no**" }
        );
        if let Ok(c) = Arc::try_unwrap(c) {
            c.close().await;
        }
    }
    println!();
}

/// The pool's role may open one connection (`CONNECTION LIMIT 1`: the
/// server answers 53300 to the next); 16 tasks × 50 requests; then the
/// limit is lifted under load and the time until the pool holds a second
/// connection is measured.
pub(crate) async fn one_slot(db: &Postgres, url_for_role: &str) {
    // The limit is changed through an in-process superuser session, so the
    // regrowth clock starts when the server has committed the change.
    let (admin, connection) = tokio_postgres::connect(&db.url(), tokio_postgres::NoTls)
        .await
        .expect("an admin session");
    tokio::spawn(connection);
    println!("## One connection slot left (16 tasks × 50 requests, pool of 10)\n");
    println!(
        "The pool's role has `CONNECTION LIMIT 1`, so every connect beyond the first is refused \
         with 53300; each request is bounded by 10 s, the whole phase by 60 s (requests not \
         served by then count as not served). Then `CONNECTION LIMIT -1` under load: \
         \"regrowth\" is the time until the pool holds more than one connection (polled every \
         1 ms; \"-\" where the pool does not say how many it holds).\n"
    );
    println!("| contender | served | errors | took (s) | regrowth (ms) |");
    println!("|---|---|---|---|---|");
    // The error texts are printed: masked like every other text that may
    // carry the role's URL or password.
    let redactor = poolwarden::redact::Redactor::for_url(url_for_role);
    let mut explained = Vec::new();
    for kind in Kind::ALL {
        if kind == Kind::Dedicated {
            continue;
        }
        admin
            .batch_execute("ALTER ROLE slot CONNECTION LIMIT 1")
            .await
            .expect("limiting the role");
        let c = Arc::new(build(kind, url_for_role, 10).await);
        let t = Instant::now();
        let load = Load::start(&c, 16, Duration::from_secs(10), 50, None);
        // At most 60 s: what is not served by then counts as not served.
        while t.elapsed() < Duration::from_secs(60) && !load.handles.iter().all(|h| h.is_finished())
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let took = t.elapsed();
        let (ops, error_texts) = load.finish_with_errors().await;
        let served = ops.iter().filter(|(_, _, ok)| *ok).count();
        let errors = ops.len() - served;

        let bg = Load::start(&c, 16, Duration::from_secs(10), usize::MAX, None);
        let _ = bg.wait_ok(50, Duration::from_secs(10)).await;
        let open_before = c.open();
        admin
            .batch_execute("ALTER ROLE slot CONNECTION LIMIT -1")
            .await
            .expect("lifting the limit");
        let lifted = Instant::now();
        let mut regrowth = None;
        if open_before == Some(1) {
            while lifted.elapsed() < Duration::from_secs(10) {
                if c.open().unwrap_or(0) > 1 {
                    regrowth = Some(lifted.elapsed());
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        let _ = bg.finish().await;
        println!(
            "| {} | {served} of 800 | {errors} | {:.1} | {} |",
            kind.name(),
            took.as_secs_f64(),
            match (open_before, regrowth) {
                (None, _) => "-".to_owned(),
                (Some(1), Some(d)) => format!("{:.1}", d.as_secs_f64() * 1000.0),
                (Some(1), None) => "none in 10 s".to_owned(),
                (Some(n), _) => format!("n/a (reported {n} open before the limit was lifted)"),
            }
        );
        for (text, n) in &error_texts {
            let text = redactor.text(text).replace('`', "'");
            explained.push(format!("- {}: {n} × `{text}`", kind.name()));
        }
        if let Ok(c) = Arc::try_unwrap(c) {
            c.close().await;
        }
    }
    println!();
    if !explained.is_empty() {
        println!("The errors, by text (at most {MAX_ERROR_TEXTS} distinct texts per contender):\n");
        for line in explained {
            println!("{line}");
        }
        println!();
    }
}
