//! Client CPU per query on MySQL, for instruction counts: a fixed number of
//! `SELECT 1` operations (check out, one query, give back) from 64 tasks
//! through one contender, on a single-threaded runtime so that `valgrind
//! --tool=callgrind` counts are repeatable on a shared machine. Run it
//! twice with different `--queries` and divide the difference in
//! instructions by the difference in queries (the setup cancels out).
//!
//! Contenders: `raw` (a tokio `Semaphore` + `Mutex<Vec<Conn>>` of raw
//! mysql_async connections: the floor), `wrapped` (the same over
//! poolwarden-mysql's `MySqlConn`s: what the connection wrapper adds) and
//! `poolwarden` (the pool, defaults).
//!
//! ```text
//! cargo build -p poolwarden-bench --release --bin mysql_cpu
//! valgrind --tool=callgrind target/release/mysql_cpu --contender poolwarden --queries 4000 \
//!     --url mysql://root@127.0.0.1:3306/test
//! ```

use std::sync::Arc;

use mysql_async::prelude::Queryable;
use poolwarden::Manager;
use poolwarden_mysql::MySqlManager;

const POOL: usize = 10;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.windows(2).find(|w| w[0] == name).map(|w| w[1].clone())
}

/// A semaphore and a stack of connections: the floor any pool pays.
struct Minimal<C> {
    permits: tokio::sync::Semaphore,
    conns: parking_lot::Mutex<Vec<C>>,
}

impl<C: Queryable + Send> Minimal<C> {
    async fn op(&self) {
        let permit = self.permits.acquire().await.expect("open");
        let mut conn = self.conns.lock().pop().expect("a connection per permit");
        conn.query_drop("SELECT 1").await.expect("SELECT 1");
        self.conns.lock().push(conn);
        drop(permit);
    }
}

enum Contender {
    Raw(Minimal<mysql_async::Conn>),
    Wrapped(Minimal<poolwarden_mysql::MySqlConn>),
    Pool(poolwarden::Pool<MySqlManager>),
}

impl Contender {
    async fn op(&self) {
        match self {
            Contender::Raw(m) => m.op().await,
            Contender::Wrapped(m) => m.op().await,
            Contender::Pool(p) => {
                let mut conn = p.get().await.expect("checkout");
                conn.query_drop("SELECT 1").await.expect("SELECT 1");
            }
        }
    }
}

fn minimal<C>(conns: Vec<C>) -> Minimal<C> {
    Minimal {
        permits: tokio::sync::Semaphore::new(conns.len()),
        conns: parking_lot::Mutex::new(conns),
    }
}

fn main() {
    let which = arg("--contender").unwrap_or_else(|| "poolwarden".into());
    let queries: usize = arg("--queries").map_or(2000, |q| q.parse().expect("--queries N"));
    let tasks: usize = arg("--tasks").map_or(64, |t| t.parse().expect("--tasks N"));
    let url = arg("--url").unwrap_or_else(|| "mysql://root@127.0.0.1:3306/test".into());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(async move {
        let tcp = format!("{url}?prefer_socket=false");
        let contender = match which.as_str() {
            "raw" => {
                let opts = mysql_async::Opts::from_url(&tcp).expect("a MySQL URL");
                let mut conns = Vec::new();
                for _ in 0..POOL {
                    conns.push(mysql_async::Conn::new(opts.clone()).await.expect("connect"));
                }
                Contender::Raw(minimal(conns))
            }
            "wrapped" => {
                let manager = MySqlManager::from_url(&url).expect("a MySQL URL");
                let mut conns = Vec::new();
                for _ in 0..POOL {
                    conns.push(manager.connect().await.expect("connect"));
                }
                Contender::Wrapped(minimal(conns))
            }
            "poolwarden" => {
                let manager = MySqlManager::from_url(&url).expect("a MySQL URL");
                let pool = poolwarden::Pool::builder(manager)
                    .max_size(POOL as u32)
                    .build()
                    .expect("a pool");
                // Open every connection.
                let mut held = Vec::new();
                for _ in 0..POOL {
                    held.push(pool.get().await.expect("checkout"));
                }
                drop(held);
                Contender::Pool(pool)
            }
            other => panic!("--contender raw|wrapped|poolwarden, not {other}"),
        };
        let c = Arc::new(contender);
        let per_task = queries.div_ceil(tasks);
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let c = Arc::clone(&c);
                tokio::spawn(async move {
                    for _ in 0..per_task {
                        c.op().await;
                    }
                })
            })
            .collect();
        for h in handles {
            h.await.expect("a task");
        }
        println!("{which}: {} queries from {tasks} tasks", per_task * tasks);
    });
}
