//! A private MariaDB Galera cluster: N nodes on 127.0.0.1, each a child
//! process with its own data directory and ports.
//!
//! # Implementation Details
//!
//! - Every node starts from the testkit's MariaDB template. The first node
//!   bootstraps a new cluster (`--wsrep-new-cluster`); the others join and
//!   get a full state transfer (SST) by rsync, which is small and quick for
//!   a fresh data directory.
//! - Stock rsync SST fails when the server runs as root: the joiner's
//!   `rsync --daemon` drops to `nobody` and cannot write the root-owned data
//!   directory. The cluster's SST method is `rsync_root`, a script in the
//!   cluster's directory that puts an `rsync` shim first in `PATH` (adding
//!   `--dparam=uid=root --dparam=gid=root` in daemon mode) and execs the
//!   stock `wsrep_sst_rsync`. mariadbd finds the script through the `PATH`
//!   it is started with.
//! - Each node gets four free ports: SQL, group communication, IST and SST.
//!   A node restarted after SIGKILL first runs `mariadbd --wsrep-recover`
//!   and starts at the recovered position, so it rejoins by IST from the
//!   survivors' gcache instead of a full SST.
//! - "Synced" means `wsrep_local_state = 4`, `wsrep_ready = ON` and
//!   `wsrep_cluster_status = Primary`. Right after SIGCONT a paused node
//!   reports a stale `Synced` (its old view) for a few seconds; use
//!   [`Galera::wait_settled`], which also compares the view id
//!   (`wsrep_cluster_conf_id`) and size across the running nodes.
//! - Dropping the cluster kills every node and any SST helper left behind,
//!   then removes the directory, also when the test panics.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tempfile::TempDir;

use crate::binaries::{GaleraBinaries, MariaDbBinaries};
use crate::cleanup::kill_processes_using;
use crate::error::TestkitError;
use crate::mariadb::run_admin;
use crate::process::ServerProcess;
use crate::url::connection_url;

mod launch;

/// The server's name in messages and logs.
const SERVER: &str = "mariadbd (galera)";
/// Bound on one status query.
const STATUS_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on a graceful shutdown.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between two status polls while waiting for a state.
const POLL: Duration = Duration::from_millis(50);
/// Configures a private Galera cluster before starting it.
#[derive(Debug, Clone)]
#[must_use]
pub struct GaleraBuilder {
    nodes: usize,
    fast_failover: bool,
    startup_timeout: Duration,
}

impl Default for GaleraBuilder {
    fn default() -> Self {
        GaleraBuilder {
            nodes: 3,
            fast_failover: true,
            startup_timeout: Duration::from_secs(120),
        }
    }
}

impl GaleraBuilder {
    /// Number of nodes; 3 by default (at least 1).
    pub fn nodes(mut self, nodes: usize) -> Self {
        self.nodes = nodes.max(1);
        self
    }

    /// Short EVS timeouts (on by default): a dead node is noticed in about
    /// 1-2 s instead of about 6 s.
    pub fn fast_failover(mut self, fast: bool) -> Self {
        self.fast_failover = fast;
        self
    }

    /// Bound on each node's start until it is Synced; 120 s by default
    /// (a joiner's SST included).
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// Bootstraps node 0, creates database `test` and the testkit's users,
    /// then starts the other nodes and waits until every node is Synced.
    ///
    /// A node that exits during the start (another process took one of its
    /// four ports meanwhile), or a cluster that does not settle within
    /// `startup_timeout` (seen about once in eight starts on a machine
    /// loaded by other builds: a joiner stuck in its state transfer), makes
    /// it start over once, on fresh ports and data directories; the failed
    /// attempt's nodes are killed first. A missing binary is not retried.
    pub fn start(self) -> Result<Galera, TestkitError> {
        match Galera::launch(self.clone()) {
            Err(e @ TestkitError::BinaryNotFound { .. }) => Err(e),
            Err(TestkitError::ExitedDuringStartup { log_tail, .. }) => {
                tracing::warn!(%log_tail, "a Galera node exited during the start; starting over");
                Galera::launch(self)
            }
            Err(error) => {
                tracing::warn!(%error, "the Galera cluster did not come up; starting over");
                Galera::launch(self)
            }
            other => other,
        }
    }
}

/// What a node says about itself (`SHOW GLOBAL STATUS LIKE 'wsrep%'`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct GaleraStatus {
    /// `wsrep_ready`.
    pub ready: bool,
    /// `wsrep_cluster_status`: `Primary`, `non-Primary` or `Disconnected`.
    pub cluster_status: String,
    /// `wsrep_local_state`: 1 Joining, 2 Donor/Desynced, 3 Joined, 4 Synced.
    pub local_state: u32,
    /// `wsrep_cluster_size`.
    pub cluster_size: u32,
    /// `wsrep_cluster_conf_id`: the view id, the same on every member of a view.
    pub conf_id: u64,
}

impl GaleraStatus {
    /// Synced, ready and in the primary component, as far as this node knows.
    pub fn is_synced(&self) -> bool {
        self.ready && self.cluster_status == "Primary" && self.local_state == 4
    }
}

/// One node of the cluster.
#[derive(Debug)]
struct Node {
    process: ServerProcess,
    root: PathBuf,
    datadir: PathBuf,
    port: u16,
    gcomm_port: u16,
    ist_port: u16,
    sst_port: u16,
    paused: bool,
}

/// A private, disposable MariaDB Galera cluster on 127.0.0.1.
///
/// Nodes are numbered from 0. Like [`MariaDb`], `root` has no password over
/// TCP and [`MariaDb::PW_USER`] has one; database `test` exists. Everything
/// blocks: call it through `tokio::task::spawn_blocking` from async tests.
///
/// ```no_run
/// let mut cluster = poolwarden_testkit::Galera::builder().start()?;
/// cluster.kill(0)?;
/// cluster.wait_settled(Some(2), std::time::Duration::from_secs(30))?;
/// cluster.start_node(0)?; // rejoins by IST
/// # Ok::<(), poolwarden_testkit::TestkitError>(())
/// ```
#[derive(Debug)]
pub struct Galera {
    /// Declared first so that the nodes die before the directory goes.
    nodes: Vec<Node>,
    bins: MariaDbBinaries,
    galera: GaleraBinaries,
    fast_failover: bool,
    startup_timeout: Duration,
    dir: TempDir,
}

impl Galera {
    /// A builder (3 nodes, short EVS timeouts).
    pub fn builder() -> GaleraBuilder {
        GaleraBuilder::default()
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Never true: a cluster has at least one node.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node `i`'s SQL port on 127.0.0.1.
    pub fn port(&self, i: usize) -> u16 {
        self.nodes[i].port
    }

    /// `mysql://USER:PASSWORD@127.0.0.1:PORT/DB` for node `i`.
    pub fn url_for(&self, i: usize, user: &str, password: &str, db: &str) -> String {
        connection_url("mysql", user, password, self.port(i), db)
    }

    /// `mysql://USER:PASSWORD@127.0.0.1:P0,127.0.0.1:P1,.../DB`: every node,
    /// in order, in one multi-host URL.
    pub fn multi_host_url(&self, user: &str, password: &str, db: &str) -> String {
        let first = self.url_for(0, user, password, db);
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        first.replacen(&hosts[0], &hosts.join(","), 1)
    }

    /// Node `i`'s process id while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.nodes[i].process.pid()
    }

    /// Node `i`'s log (all its runs).
    pub fn log_path(&self, i: usize) -> &Path {
        self.nodes[i].process.log_path()
    }

    /// Whether node `i` runs (a paused one does).
    pub fn is_running(&mut self, i: usize) -> bool {
        self.nodes[i].process.is_running()
    }

    /// SIGKILL node `i` and wait until it is gone: a crash.
    pub fn kill(&mut self, i: usize) -> Result<(), TestkitError> {
        self.nodes[i].paused = false;
        self.nodes[i].process.kill()
    }

    /// SIGTERM node `i` and wait for it to leave the cluster and exit.
    pub fn stop(&mut self, i: usize) -> Result<(), TestkitError> {
        self.nodes[i].paused = false;
        self.nodes[i].process.stop(Signal::SIGTERM, STOP_TIMEOUT)
    }

    /// Freeze node `i` (SIGSTOP): its sockets stay open, nothing answers,
    /// and the others drop it from the primary component.
    pub fn pause(&mut self, i: usize) -> Result<(), TestkitError> {
        self.nodes[i].process.pause()?;
        self.nodes[i].paused = true;
        Ok(())
    }

    /// Let a paused node run again (SIGCONT). It reports its stale view for
    /// a while before it rejoins: see [`Galera::wait_settled`].
    pub fn resume(&mut self, i: usize) -> Result<(), TestkitError> {
        self.nodes[i].process.resume()?;
        self.nodes[i].paused = false;
        Ok(())
    }

    /// Start node `i` so that it joins the running cluster, and wait until
    /// it is Synced. After a crash it rejoins by IST where it can.
    pub fn start_node(&mut self, i: usize) -> Result<(), TestkitError> {
        self.spawn_node(i, false)?;
        self.wait_synced(i, self.startup_timeout)
    }

    /// Start node `i` without waiting: it joins in the background.
    pub fn spawn_node(&mut self, i: usize, bootstrap: bool) -> Result<(), TestkitError> {
        let mut extra = Vec::new();
        if bootstrap {
            self.mark_safe_to_bootstrap(i)?;
            extra.push("--wsrep-new-cluster".to_owned());
        }
        if let Some(position) = self.recover_position(i)? {
            extra.push(format!("--wsrep-start-position={position}"));
        }
        let cmd = self.command(i, &extra);
        self.nodes[i].process.spawn(cmd)?;
        self.nodes[i].paused = false;
        Ok(())
    }

    /// Start node `i` as a new cluster of its own (after every node
    /// stopped), and wait until it is Synced.
    pub fn bootstrap(&mut self, i: usize) -> Result<(), TestkitError> {
        self.spawn_node(i, true)?;
        self.wait_synced(i, self.startup_timeout)
    }

    /// Runs SQL as root on node `i` (see [`MariaDb::admin`]).
    pub fn admin(&self, i: usize, sql: &str) -> Result<Vec<Vec<String>>, TestkitError> {
        run_admin(
            &self.bins.client,
            self.port(i),
            sql,
            Duration::from_secs(60),
        )
    }

    /// What node `i` says about itself. Fails while it is down or paused.
    pub fn status(&self, i: usize) -> Result<GaleraStatus, TestkitError> {
        let rows = run_admin(
            &self.bins.client,
            self.port(i),
            "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_ready', \
             'wsrep_cluster_status', 'wsrep_local_state', 'wsrep_cluster_size', \
             'wsrep_cluster_conf_id')",
            STATUS_TIMEOUT,
        )?;
        let mut status = GaleraStatus::default();
        for row in rows {
            let (Some(name), Some(value)) = (row.first(), row.get(1)) else {
                continue;
            };
            match name.as_str() {
                "wsrep_ready" => status.ready = value == "ON",
                "wsrep_cluster_status" => status.cluster_status.clone_from(value),
                "wsrep_local_state" => status.local_state = value.parse().unwrap_or(0),
                "wsrep_cluster_size" => status.cluster_size = value.parse().unwrap_or(0),
                "wsrep_cluster_conf_id" => status.conf_id = value.parse().unwrap_or(0),
                _ => {}
            }
        }
        Ok(status)
    }

    /// Wait until node `i` reports Synced (see [`GaleraStatus::is_synced`]),
    /// at most `timeout`. Fails early if the node exits.
    pub fn wait_synced(&mut self, i: usize, timeout: Duration) -> Result<(), TestkitError> {
        self.wait_for(timeout, &format!("node {i} to be Synced"), |c| {
            let node = &mut c.nodes[i];
            if !node.process.is_running() {
                return Err(TestkitError::ExitedDuringStartup {
                    server: SERVER,
                    port: node.port,
                    status: "exited".to_owned(),
                    log_tail: node.process.log_tail(),
                });
            }
            Ok(c.status(i).is_ok_and(|s| s.is_synced()))
        })
    }

    /// Wait until every running, unpaused node is Synced in the same view
    /// (same `wsrep_cluster_conf_id`) of `size` nodes (default: as many as
    /// run unpaused), at most `timeout`. Unlike one node's `Synced`, this
    /// is not fooled by a resumed node's stale view.
    pub fn wait_settled(
        &mut self,
        size: Option<usize>,
        timeout: Duration,
    ) -> Result<(), TestkitError> {
        self.wait_for(timeout, "the cluster to settle", |c| {
            let live: Vec<usize> = (0..c.nodes.len())
                .filter(|&i| !c.nodes[i].paused && c.nodes[i].process.is_running())
                .collect();
            let want = size.unwrap_or(live.len());
            let mut view = None;
            for &i in &live {
                let Ok(s) = c.status(i) else {
                    return Ok(false);
                };
                if !s.is_synced() || s.cluster_size as usize != want {
                    return Ok(false);
                }
                if *view.get_or_insert(s.conf_id) != s.conf_id {
                    return Ok(false);
                }
            }
            Ok(!live.is_empty())
        })
    }

    /// Polls `done` every 50 ms until it returns true, at most `timeout`.
    fn wait_for(
        &mut self,
        timeout: Duration,
        what: &str,
        mut done: impl FnMut(&mut Self) -> Result<bool, TestkitError>,
    ) -> Result<(), TestkitError> {
        let started = Instant::now();
        loop {
            if done(self)? {
                return Ok(());
            }
            if started.elapsed() >= timeout {
                return Err(TestkitError::io(
                    format!("waiting for {what}"),
                    std::io::Error::other(format!("not reached within {timeout:?}")),
                ));
            }
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for Galera {
    /// Kills every node, then any SST helper (rsync) they left behind.
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Err(e) = node.process.kill() {
                tracing::warn!(error = %e, "killing a Galera node failed");
            }
        }
        kill_processes_using(&[self.dir.path().to_path_buf()]);
    }
}
