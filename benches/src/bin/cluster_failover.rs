//! Killing the writer of a 3-node Galera cluster under a 32-task write load:
//! poolwarden's `ClusterManager` against the standard deployment, HAProxy
//! (`option mysql-check`, one writer and two backups) with mysql_async's
//! and sqlx's pools behind it. Same cluster (testkit, short EVS timeouts),
//! same load, one run per contender; the killed node is restarted between
//! runs.
//!
//! `cargo run -p poolwarden-bench --bin cluster_failover [kill|freeze]`
//! (needs `apt-get install haproxy galera-4 rsync`). `kill` (default):
//! SIGKILL the writer, restart it later; `freeze`: SIGSTOP the writer,
//! SIGCONT it later. Prints a Markdown table.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use parking_lot::Mutex;
use poolwarden_mysql::{ClusterManager, Routing};
use poolwarden_testkit::{Galera, MariaDb};

const TASKS: u64 = 32;
const POOL: u32 = 10;
/// Bound on one write (checkout included).
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Load before the kill, and after the survivors accept writes.
const BEFORE: Duration = Duration::from_secs(4);
const AFTER: Duration = Duration::from_secs(8);
/// After the killed node is back: how long to wait, then how long to watch
/// where the writes go.
const RETURN_SETTLE: Duration = Duration::from_secs(6);
const RETURN_WATCH: Duration = Duration::from_secs(4);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Contender {
    /// `rollback_only`: `ResetPolicy::Rollback` instead of the default
    /// `Auto` (which resets the session after every INSERT: it may have
    /// set `LAST_INSERT_ID()`).
    Poolwarden {
        rollback_only: bool,
        /// `MySqlManager::command_timeout` instead of the default 30 s.
        command_timeout: Option<Duration>,
    },
    HaproxyMysqlAsync {
        tuned: bool,
    },
    HaproxySqlx {
        tuned: bool,
    },
}

impl Contender {
    fn name(self) -> String {
        match self {
            Contender::Poolwarden {
                rollback_only,
                command_timeout,
            } => {
                let mut name =
                    String::from("poolwarden ClusterManager (single writer, failback 5 s");
                if rollback_only {
                    name.push_str(", ResetPolicy::Rollback");
                }
                if let Some(t) = command_timeout {
                    name.push_str(&format!(", command_timeout {t:?}"));
                }
                name.push(')');
                name
            }
            Contender::HaproxyMysqlAsync { tuned } => {
                format!("HAProxy ({}) + mysql_async Pool", checks(tuned))
            }
            Contender::HaproxySqlx { tuned } => {
                format!("HAProxy ({}) + sqlx MySqlPool", checks(tuned))
            }
        }
    }
}

fn checks(tuned: bool) -> &'static str {
    if tuned {
        "inter 500 fall 2, shutdown-sessions"
    } else {
        "default checks: inter 2s fall 3"
    }
}

/// One write's record.
#[derive(Clone, Copy)]
struct Rec {
    started: Instant,
    finished: Instant,
    ok: bool,
}

/// The first few distinct error messages of a run, shortened.
static ERRORS: Mutex<Vec<String>> = parking_lot::const_mutex(Vec::new());

fn note_error(e: &str) {
    let short: String = e.chars().take(90).collect();
    let mut seen = ERRORS.lock();
    if seen.len() < 4
        && !seen
            .iter()
            .any(|s| s[..s.len().min(40)] == short[..short.len().min(40)])
    {
        seen.push(short);
    }
}

/// The pool under test, behind one `write` call.
enum Writer {
    Pw(poolwarden::Pool<ClusterManager>),
    MyAsync(mysql_async::Pool),
    Sqlx(sqlx::MySqlPool),
}

impl Writer {
    async fn write(&self, key: u64) -> Result<(), String> {
        let sql = "INSERT INTO test.w (k) VALUES (?)";
        match self {
            Writer::Pw(pool) => {
                let mut c = pool.get().await.map_err(|e| e.to_string())?;
                let r = c.exec_drop(sql, (key,)).await;
                if let Err(e) = &r {
                    c.report_error(e);
                }
                // The cause first (an ambiguous commit's own text is the
                // same for every cause).
                r.map_err(|e| match poolwarden_mysql::OutcomeUnknown::find(&e) {
                    Some(o) => format!("{} [ambiguous commit]", o.cause()),
                    None => e.to_string(),
                })
            }
            Writer::MyAsync(pool) => {
                let mut c = pool.get_conn().await.map_err(|e| e.to_string())?;
                c.exec_drop(sql, (key,)).await.map_err(|e| e.to_string())
            }
            Writer::Sqlx(pool) => sqlx::query(sql)
                .bind(key)
                .execute(pool)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
        }
    }
}

struct Haproxy(Child);

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_haproxy(cluster: &Galera, tuned: bool, dir: &std::path::Path) -> (Haproxy, u16) {
    let port = free_port();
    let check = if tuned {
        "check inter 500 fall 2 rise 2 on-marked-down shutdown-sessions"
    } else {
        "check inter 2s fall 3 rise 2"
    };
    let mut cfg = format!(
        "global\n  maxconn 2000\ndefaults\n  mode tcp\n  timeout connect 2s\n  timeout client 60s\n  \
         timeout server 60s\nlisten galera\n  bind 127.0.0.1:{port}\n  option mysql-check user haproxy_check\n"
    );
    for i in 0..cluster.len() {
        let backup = if i == 0 { "" } else { " backup" };
        cfg.push_str(&format!(
            "  server n{i} 127.0.0.1:{} {check}{backup}\n",
            cluster.port(i)
        ));
    }
    let path = dir.join(format!("haproxy-{port}.cfg"));
    std::fs::write(&path, cfg).unwrap();
    let child = Command::new("haproxy")
        .arg("-db")
        .arg("-f")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("haproxy (apt-get install haproxy)");
    // Bounded wait until it listens.
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    (Haproxy(child), port)
}

/// Transactions each node committed for its own clients (not replicated
/// ones): where the writes went.
fn local_commits(cluster: &Galera) -> Vec<u64> {
    (0..cluster.len())
        .map(|i| {
            cluster
                .admin(i, "SHOW GLOBAL STATUS LIKE 'wsrep_local_commits'")
                .ok()
                .and_then(|rows| {
                    rows.first()
                        .and_then(|r| r.get(1))
                        .and_then(|v| v.parse().ok())
                })
                .unwrap_or(0)
        })
        .collect()
}

struct Outcome {
    name: String,
    before_rate: f64,
    after_rate: f64,
    errors: usize,
    errors_after_accept: usize,
    errors_after_return: usize,
    samples: Vec<String>,
    accept_ms: u128,
    first_success_ms: Option<i128>,
    returned_share: Vec<u64>,
}

#[derive(Clone, Copy, PartialEq)]
enum Fault {
    Kill,
    Freeze,
}

async fn run(cluster: &mut Galera, contender: Contender, fault: Fault, key_base: u64) -> Outcome {
    let user = (MariaDb::PW_USER, MariaDb::PW_PASSWORD);
    let dir = tempfile_dir();
    let (_haproxy, writer) = match contender {
        Contender::Poolwarden {
            rollback_only,
            command_timeout,
        } => {
            let policy = if rollback_only {
                poolwarden_mysql::ResetPolicy::Rollback
            } else {
                poolwarden_mysql::ResetPolicy::Auto
            };
            let m =
                ClusterManager::builder_from_url(&cluster.multi_host_url(user.0, user.1, "test"))
                    .unwrap()
                    .map_nodes(|n| {
                        let n = n.reset_policy(policy);
                        match command_timeout {
                            Some(t) => n.command_timeout(Some(t)),
                            None => n,
                        }
                    })
                    .routing(Routing::SingleWriter {
                        failback_after: Duration::from_secs(5),
                    })
                    .check_interval(Duration::from_millis(200))
                    .build();
            let pool = poolwarden::Pool::builder(m)
                .max_size(POOL)
                .checkout_timeout(WRITE_TIMEOUT)
                .build()
                .unwrap();
            (None, Writer::Pw(pool))
        }
        Contender::HaproxyMysqlAsync { tuned } | Contender::HaproxySqlx { tuned } => {
            let (h, port) = start_haproxy(cluster, tuned, &dir);
            let url = format!("mysql://{}:{}@127.0.0.1:{port}/test", user.0, user.1);
            let w = if matches!(contender, Contender::HaproxySqlx { .. }) {
                Writer::Sqlx(
                    sqlx::mysql::MySqlPoolOptions::new()
                        .max_connections(POOL)
                        .acquire_timeout(WRITE_TIMEOUT)
                        .connect_lazy(&url)
                        .unwrap(),
                )
            } else {
                let opts =
                    mysql_async::OptsBuilder::from_opts(mysql_async::Opts::from_url(&url).unwrap())
                        .prefer_socket(false)
                        .pool_opts(
                            mysql_async::PoolOpts::default().with_constraints(
                                mysql_async::PoolConstraints::new(POOL as usize, POOL as usize)
                                    .unwrap(),
                            ),
                        );
                Writer::MyAsync(mysql_async::Pool::new(opts))
            };
            (Some(h), w)
        }
    };
    let writer = Arc::new(writer);
    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(Vec::<Rec>::new()));
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let (writer, stop, log) = (writer.clone(), stop.clone(), log.clone());
            tokio::spawn(async move {
                for seq in 0..1_000_000u64 {
                    if stop.load(SeqCst) {
                        return;
                    }
                    let started = Instant::now();
                    let ok = match tokio::time::timeout(
                        WRITE_TIMEOUT,
                        writer.write(key_base | (t << 32) | seq),
                    )
                    .await
                    {
                        Ok(Ok(())) => true,
                        Ok(Err(e)) => {
                            note_error(&e);
                            false
                        }
                        Err(_) => {
                            note_error("no answer within the write timeout");
                            false
                        }
                    };
                    log.lock().push(Rec {
                        started,
                        finished: Instant::now(),
                        ok,
                    });
                }
            })
        })
        .collect();
    tokio::time::sleep(BEFORE).await;

    let mut probe = mysql_async::Conn::new(
        mysql_async::Opts::from_url(&cluster.url_for(1, user.0, user.1, "test")).unwrap(),
    )
    .await
    .unwrap();
    let killed = Instant::now();
    tokio::task::block_in_place(|| match fault {
        Fault::Kill => cluster.kill(0),
        Fault::Freeze => cluster.pause(0),
    })
    .unwrap();
    probe
        .exec_drop("INSERT INTO test.w (k) VALUES (?)", (key_base | (1 << 62),))
        .await
        .unwrap();
    let accepting = Instant::now();
    drop(probe);
    tokio::time::sleep(AFTER).await;

    // The killed node comes back; where do the writes go?
    let returning = Instant::now();
    tokio::task::block_in_place(|| match fault {
        Fault::Kill => cluster.start_node(0),
        Fault::Freeze => {
            cluster.resume(0)?;
            cluster.wait_settled(Some(3), Duration::from_secs(60))
        }
    })
    .unwrap();
    tokio::time::sleep(RETURN_SETTLE).await;
    let c0 = tokio::task::block_in_place(|| local_commits(cluster));
    tokio::time::sleep(RETURN_WATCH).await;
    let c1 = tokio::task::block_in_place(|| local_commits(cluster));
    stop.store(true, SeqCst);
    for t in tasks {
        let _ = t.await;
    }
    let log = log.lock().clone();
    let rate = |from: Instant, to: Instant| {
        let n = log
            .iter()
            .filter(|r| r.ok && r.finished >= from && r.finished < to)
            .count();
        n as f64 / to.duration_since(from).as_secs_f64()
    };
    let first = log
        .iter()
        .filter(|r| r.ok && r.started >= killed)
        .map(|r| r.finished)
        .min()
        .map(|f| {
            f.duration_since(accepting).as_millis() as i128
                - accepting.duration_since(f).as_millis() as i128
        });
    let out = Outcome {
        name: contender.name(),
        before_rate: rate(killed - BEFORE / 2, killed),
        after_rate: rate(accepting + Duration::from_secs(2), accepting + AFTER),
        errors: log.iter().filter(|r| !r.ok).count(),
        errors_after_accept: log
            .iter()
            .filter(|r| !r.ok && r.started >= accepting && r.started < returning)
            .count(),
        errors_after_return: log
            .iter()
            .filter(|r| !r.ok && r.started >= returning)
            .count(),
        samples: std::mem::take(&mut *ERRORS.lock()),
        accept_ms: accepting.duration_since(killed).as_millis(),
        first_success_ms: first,
        returned_share: c1
            .iter()
            .zip(&c0)
            .map(|(a, b)| a.saturating_sub(*b))
            .collect(),
    };
    if let Writer::MyAsync(p) = Arc::try_unwrap(writer).ok().unwrap() {
        let _ = p.disconnect().await;
    }
    tokio::task::block_in_place(|| cluster.wait_settled(Some(3), Duration::from_secs(60))).unwrap();
    out
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("poolwarden-bench-haproxy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    let mut cluster =
        tokio::task::block_in_place(|| Galera::builder().start()).expect("a Galera cluster");
    cluster
        .admin(
            0,
            "CREATE TABLE test.w (k BIGINT UNSIGNED PRIMARY KEY); \
             CREATE USER IF NOT EXISTS 'haproxy_check'@'127.0.0.1'",
        )
        .unwrap();
    let fault = match std::env::args().nth(1).as_deref() {
        None | Some("kill") => Fault::Kill,
        Some("freeze") => Fault::Freeze,
        Some(other) => panic!("unknown scenario {other:?}: kill or freeze"),
    };
    let contenders = [
        Contender::Poolwarden {
            rollback_only: false,
            command_timeout: None,
        },
        Contender::Poolwarden {
            rollback_only: true,
            command_timeout: None,
        },
        Contender::Poolwarden {
            rollback_only: false,
            command_timeout: Some(Duration::from_secs(3)),
        },
        Contender::HaproxyMysqlAsync { tuned: false },
        Contender::HaproxyMysqlAsync { tuned: true },
        Contender::HaproxySqlx { tuned: false },
        Contender::HaproxySqlx { tuned: true },
    ];
    let mut outcomes = Vec::new();
    for (i, c) in contenders.into_iter().enumerate() {
        eprintln!("running: {}", c.name());
        outcomes.push(run(&mut cluster, c, fault, (i as u64) << 56).await);
    }
    println!(
        "| contender | writes/s before | survivors accept writes after the fault | errors (all) | errors, writes started after survivors accept (until the node returns) | errors, writes started after the node is restarted or resumed | first success, from survivors accepting | writes/s after | local commits per node (n0, n1, n2), {} s window {} s after the node is Synced again |",
        RETURN_WATCH.as_secs(),
        RETURN_SETTLE.as_secs()
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for o in &outcomes {
        println!(
            "| {} | {:.0} | {} ms | {} | {} | {} | {} | {:.0} | {:?} |",
            o.name,
            o.before_rate,
            o.accept_ms,
            o.errors,
            o.errors_after_accept,
            o.errors_after_return,
            o.first_success_ms
                .map_or("none".into(), |m| format!("{m} ms")),
            o.after_rate,
            o.returned_share
        );
    }
    println!();
    for o in &outcomes {
        println!("- {}: {:?}", o.name, o.samples);
    }
}
