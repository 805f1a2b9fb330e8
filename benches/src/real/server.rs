//! The private MariaDB every contender talks to, and its global counters.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use poolwarden_testkit::MariaDb;

/// Server status counters read around every measured window.
pub(crate) const COUNTERS: [&str; 12] = [
    "Questions",
    "Com_admin_commands",
    "Com_select",
    "Com_change_db",
    "Com_rollback",
    "Com_set_option",
    "Com_stmt_execute",
    "Com_stmt_prepare",
    "Connections",
    "Aborted_clients",
    "Aborted_connects",
    "Bytes_received",
];

/// A snapshot (or a difference) of [`COUNTERS`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Counters(BTreeMap<String, u64>);

impl Counters {
    /// Parses `SHOW GLOBAL STATUS` rows (name, value).
    pub(crate) fn from_rows(rows: &[Vec<String>]) -> Counters {
        let mut map = BTreeMap::new();
        for row in rows {
            if let [name, value] = row.as_slice() {
                if let Ok(v) = value.trim().parse::<u64>() {
                    map.insert(name.clone(), v);
                }
            }
        }
        Counters(map)
    }

    pub(crate) fn get(&self, name: &str) -> u64 {
        self.0.get(name).copied().unwrap_or(0)
    }

    /// The sum of two differences.
    pub(crate) fn plus(&self, other: &Counters) -> Counters {
        let mut map = self.0.clone();
        for (k, v) in &other.0 {
            *map.entry(k.clone()).or_default() += v;
        }
        Counters(map)
    }

    /// `self - before - overhead`, per counter, never below zero.
    pub(crate) fn since(&self, before: &Counters, overhead: &Counters) -> Counters {
        let map = self
            .0
            .iter()
            .map(|(k, v)| {
                let d = v
                    .saturating_sub(before.get(k))
                    .saturating_sub(overhead.get(k));
                (k.clone(), d)
            })
            .collect();
        Counters(map)
    }
}

/// Server-side cost of a measured window: what the status counters say
/// the clients sent, per query the benchmark ran.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PerQuery {
    /// `Questions`: every command but COM_PING (and statement prepare/close).
    pub(crate) questions: f64,
    /// `Com_admin_commands`: COM_PING, COM_RESET_CONNECTION, other
    /// non-SQL commands.
    pub(crate) admin: f64,
    /// Client commands that each waited for a reply: see [`round_trips`].
    pub(crate) round_trips: f64,
    /// New connections (`Connections`).
    pub(crate) connects: u64,
}

/// Client commands (each one round trip) in a window: `Questions` counts
/// every command except COM_PING, and COM_PING is counted only in
/// `Com_admin_commands`, which also counts COM_RESET_CONNECTION (already in
/// `Questions`). So commands = Questions + Com_admin_commands - resets, where
/// `resets` is the number of COM_RESET_CONNECTION sent (known from the
/// client: only mysql_async's pool sends them in these runs, and reports
/// them in its metrics). The calibration in scenario 1 checks these rules
/// against the running server.
pub(crate) fn round_trips(delta: &Counters, resets: u64) -> u64 {
    (delta.get("Questions") + delta.get("Com_admin_commands")).saturating_sub(resets)
}

impl PerQuery {
    pub(crate) fn new(delta: &Counters, resets: u64, queries: u64) -> PerQuery {
        let q = queries.max(1) as f64;
        PerQuery {
            questions: delta.get("Questions") as f64 / q,
            admin: delta.get("Com_admin_commands") as f64 / q,
            round_trips: round_trips(delta, resets) as f64 / q,
            connects: delta.get("Connections"),
        }
    }
}

/// The private server; cheap to clone.
#[derive(Clone)]
pub(crate) struct Server {
    db: Arc<Mutex<MariaDb>>,
    url: String,
    port: u16,
    /// What one status read costs in the counters (the admin client's own
    /// connection and statements), subtracted from every window.
    overhead: Arc<Mutex<Counters>>,
}

impl Server {
    /// Starts a private MariaDB (blocking).
    pub(crate) fn start() -> Result<Server, String> {
        let db = MariaDb::builder()
            .args(["--max-connections=400"])
            .start()
            .map_err(|e| format!("starting MariaDB: {e}"))?;
        let url = db.url();
        let port = db.port();
        Ok(Server {
            db: Arc::new(Mutex::new(db)),
            url,
            port,
            overhead: Arc::new(Mutex::new(Counters::default())),
        })
    }

    /// `mysql://root@127.0.0.1:PORT/test`.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Waits (on a blocking thread, up to `limit`) until the server's port
    /// accepts a TCP connection; returns when it first did. Stops early,
    /// returning `None`, once `stop` is set.
    pub(crate) async fn wait_port_open(
        &self,
        limit: Duration,
        stop: Arc<std::sync::atomic::AtomicBool>,
    ) -> Option<Instant> {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], self.port));
        tokio::task::spawn_blocking(move || {
            let start = Instant::now();
            while start.elapsed() < limit && !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(50)).is_ok() {
                    return Some(Instant::now());
                }
                std::thread::sleep(Duration::from_millis(3));
            }
            None
        })
        .await
        .ok()
        .flatten()
    }

    /// The URL for mysql_async-based contenders: TCP like everyone else
    /// (mysql_async would otherwise reconnect through the Unix socket).
    pub(crate) fn tcp_url(&self) -> String {
        format!("{}?prefer_socket=false", self.url)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut MariaDb) -> Result<T, String> + Send + 'static,
    ) -> Result<T, String> {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || f(&mut db.lock()))
            .await
            .map_err(|e| format!("blocking task failed: {e}"))?
    }

    /// Runs SQL as root through the `mariadb` client.
    pub(crate) async fn admin(&self, sql: &str) -> Result<Vec<Vec<String>>, String> {
        let sql = sql.to_owned();
        self.blocking(move |db| db.admin(&sql).map_err(|e| e.to_string()))
            .await
    }

    /// Graceful shutdown (SIGTERM), waiting for the exit.
    pub(crate) async fn stop(&self) -> Result<(), String> {
        self.blocking(|db| db.stop().map_err(|e| e.to_string()))
            .await
    }

    /// Starts the stopped server again and waits until it answers.
    pub(crate) async fn start_again(&self) -> Result<(), String> {
        self.blocking(|db| db.start_again().map_err(|e| e.to_string()))
            .await
    }

    pub(crate) async fn version(&self) -> String {
        match self.admin("SELECT VERSION()").await {
            Ok(rows) => rows
                .first()
                .and_then(|r| r.first())
                .cloned()
                .unwrap_or_default(),
            Err(e) => format!("unknown ({e})"),
        }
    }

    /// CPU time the server process has used so far.
    pub(crate) fn cpu(&self) -> Option<Duration> {
        let pid = self.db.lock().pid()?;
        crate::real::machine::process_cpu(&pid.to_string())
    }

    /// One raw status read.
    pub(crate) async fn read_counters(&self) -> Result<Counters, String> {
        let list = COUNTERS
            .iter()
            .map(|c| format!("'{c}'"))
            .collect::<Vec<_>>()
            .join(",");
        let rows = self
            .admin(&format!(
                "SHOW GLOBAL STATUS WHERE Variable_name IN ({list})"
            ))
            .await?;
        Ok(Counters::from_rows(&rows))
    }

    /// Measures what a status read itself adds to the counters (the
    /// smallest of three back-to-back differences).
    pub(crate) async fn calibrate_overhead(&self) -> Result<Counters, String> {
        let mut reads = Vec::new();
        for _ in 0..4 {
            reads.push(self.read_counters().await?);
        }
        let mut best: Option<Counters> = None;
        for w in reads.windows(2) {
            let d = w[1].since(&w[0], &Counters::default());
            best = Some(match best {
                None => d,
                Some(b) if d.get("Questions") < b.get("Questions") => d,
                Some(b) => b,
            });
        }
        let overhead = best.unwrap_or_default();
        *self.overhead.lock() = overhead.clone();
        Ok(overhead)
    }

    /// Counters since `before`, without the cost of the status reads.
    pub(crate) async fn counters_since(&self, before: &Counters) -> Result<Counters, String> {
        let now = self.read_counters().await?;
        let overhead = self.overhead.lock().clone();
        Ok(now.since(before, &overhead))
    }

    /// Ids of client connections: every thread but the admin's own and the
    /// server's system threads.
    pub(crate) async fn client_threads(&self) -> Result<Vec<u64>, String> {
        let rows = self
            .admin(
                "SELECT ID FROM information_schema.PROCESSLIST \
                 WHERE ID <> CONNECTION_ID() \
                 AND COMMAND NOT IN ('Daemon', 'Killed') \
                 AND USER NOT IN ('system user', 'event_scheduler')",
            )
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| r.first().and_then(|v| v.parse().ok()))
            .collect())
    }

    /// `KILL` every client connection; returns how many.
    pub(crate) async fn kill_clients(&self) -> Result<usize, String> {
        let ids = self.client_threads().await?;
        if ids.is_empty() {
            return Ok(0);
        }
        let sql = ids
            .iter()
            .map(|id| format!("KILL {id}"))
            .collect::<Vec<_>>()
            .join("; ");
        // A connection may close by itself between the two statements.
        let _ = self.admin(&sql).await;
        Ok(ids.len())
    }

    /// Waits (up to `limit`) until at most `expected` client connections
    /// remain, so the next contender starts on a quiet server. Returns the
    /// count seen last.
    pub(crate) async fn settle(&self, expected: usize, limit: Duration) -> usize {
        let start = Instant::now();
        loop {
            let n = self.client_threads().await.map(|v| v.len()).unwrap_or(0);
            if n <= expected || start.elapsed() >= limit {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(pairs: &[(&str, &str)]) -> Vec<Vec<String>> {
        pairs
            .iter()
            .map(|(a, b)| vec![(*a).to_owned(), (*b).to_owned()])
            .collect()
    }

    #[test]
    fn deltas_subtract_overhead_and_count_round_trips() {
        let before =
            Counters::from_rows(&rows(&[("Questions", "10"), ("Com_admin_commands", "5")]));
        let after = Counters::from_rows(&rows(&[
            ("Questions", "2012"),
            ("Com_admin_commands", "2005"),
            ("junk", "x"),
        ]));
        let overhead = Counters::from_rows(&rows(&[("Questions", "2")]));
        let d = after.since(&before, &overhead);
        assert_eq!(d.get("Questions"), 2000);
        assert_eq!(d.get("Com_admin_commands"), 2000);
        // 1000 queries, each with a COM_RESET_CONNECTION (counted in both)
        // and a ping: 1000 + 1000 + 1000 commands.
        let pq = PerQuery::new(&d, 1000, 1000);
        assert!((pq.round_trips - 3.0).abs() < 1e-9);
    }
}
