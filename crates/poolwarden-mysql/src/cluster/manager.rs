//! [`ClusterManager`]: the [`Manager`] over several nodes, and its builder.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use poolwarden::{ConnectionFacts, ErrorClass, Manager, Probe, Transactional};
use tokio::sync::Notify;

use super::conn::ClusterConn;
use super::monitor;
use super::nodes::{DownReason, Node, NodeStatus, Nodes, Rules};
use super::reading::{self, Accept};
use super::url::{self, ClusterError};
use crate::manager::MySqlManager;

/// Which node new connections go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Routing {
    /// Every connection to one node, the writer (the usual Galera advice:
    /// no certification conflicts between nodes). The writer is the first
    /// usable node in list order; when it fails the next usable one takes
    /// over; the original (an earlier node in the list) becomes the writer
    /// again only after it has been up for `failback_after`, and then the
    /// interim writer's connections are retired.
    SingleWriter {
        /// How long a returning earlier node must stay up before writes
        /// move back to it. Prevents flapping between nodes.
        failback_after: Duration,
    },
    /// Spread connections over every usable writable node, fewest open
    /// connections first.
    Any,
    /// Reads: prefer read-only nodes (`read_only`, `super_read_only` or
    /// `innodb_read_only` on, as replicas of a primary/replica setup run),
    /// fewest open connections first; writable nodes only when no replica
    /// is usable.
    Replicas,
}

impl Default for Routing {
    /// [`Routing::SingleWriter`], failing back after 30 s.
    fn default() -> Self {
        Routing::SingleWriter {
            failback_after: Duration::from_secs(30),
        }
    }
}

/// The manager's settings (see the [`ClusterBuilder`] setters).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    pub(crate) check_interval: Duration,
    pub(crate) check_timeout: Duration,
    pub(crate) node_wait: Duration,
}

/// What the manager, its connections and its health tasks share.
pub(crate) struct Shared {
    pub(crate) nodes: Nodes,
    pub(crate) settings: Settings,
    /// Wakes the health checks (an error on a pooled connection).
    pub(crate) kick: Arc<Notify>,
    /// The health-check tasks, started by the first connect and again by a
    /// connect that finds them gone (their runtime was shut down).
    monitor: parking_lot::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// Builds a [`ClusterManager`].
///
/// ```
/// use std::time::Duration;
/// use poolwarden_mysql::{ClusterManager, Routing};
///
/// # fn main() -> Result<(), poolwarden_mysql::ClusterError> {
/// let manager = ClusterManager::builder_from_url("mysql://app:secret@db1:3306,db2:3306,db3:3306/shop")?
///     .routing(Routing::SingleWriter { failback_after: Duration::from_secs(60) })
///     .check_interval(Duration::from_millis(500))
///     .build();
/// # let _ = manager; Ok(()) }
/// ```
#[derive(Debug)]
#[must_use]
pub struct ClusterBuilder {
    nodes: Vec<(String, MySqlManager)>,
    routing: Routing,
    accept: Accept,
    readmit_after: Duration,
    settings: Settings,
}

impl ClusterBuilder {
    /// [`check_timeout`](Self::check_timeout)'s default: 1 s. The pool's
    /// `validation_timeout` must stay above it (`validate` bounds its own
    /// ping by it).
    pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(1);
    /// [`node_wait`](Self::node_wait)'s default: 4 s. The pool's
    /// `connect_timeout` must stay above it.
    pub const DEFAULT_NODE_WAIT: Duration = Duration::from_secs(4);

    /// Nodes from one multi-host URL: `mysql://user:pass@h1:p1,h2:p2/db?params`
    /// (the user, password, database and parameters apply to every host).
    ///
    /// # Errors
    ///
    /// [`ClusterError`] for a malformed URL; it never contains the password.
    pub fn from_url(url: &str) -> Result<Self, ClusterError> {
        let nodes = url::split_url(url)?
            .into_iter()
            .enumerate()
            .map(|(i, (host, node_url))| {
                MySqlManager::from_url(&node_url)
                    .map(|m| (host.clone(), m))
                    .map_err(|e| ClusterError::from_driver(i, &host, e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::with_nodes(nodes))
    }

    /// Nodes from managers configured one by one (init SQL, reset policy,
    /// TCP keepalive... each as for a single server).
    ///
    /// # Errors
    ///
    /// [`ClusterError::NoNodes`] for an empty list.
    pub fn new(nodes: impl IntoIterator<Item = MySqlManager>) -> Result<Self, ClusterError> {
        let nodes: Vec<(String, MySqlManager)> = nodes
            .into_iter()
            .map(|m| {
                let address = format!("{}:{}", m.opts().ip_or_hostname(), m.opts().tcp_port());
                (address, m)
            })
            .collect();
        if nodes.is_empty() {
            return Err(ClusterError::NoNodes);
        }
        Ok(Self::with_nodes(nodes))
    }

    fn with_nodes(nodes: Vec<(String, MySqlManager)>) -> Self {
        ClusterBuilder {
            nodes,
            routing: Routing::default(),
            accept: Accept::default(),
            readmit_after: Duration::from_secs(2),
            settings: Settings {
                check_interval: Duration::from_millis(500),
                check_timeout: Self::DEFAULT_CHECK_TIMEOUT,
                node_wait: Self::DEFAULT_NODE_WAIT,
            },
        }
    }

    /// Applies `f` to every node's manager, e.g. to set init SQL on all.
    pub fn map_nodes(mut self, f: impl Fn(MySqlManager) -> MySqlManager) -> Self {
        self.nodes = self.nodes.into_iter().map(|(a, m)| (a, f(m))).collect();
        self
    }

    /// Where new connections go. Defaults to [`Routing::SingleWriter`]
    /// failing back after 30 s.
    pub fn routing(mut self, routing: Routing) -> Self {
        self.routing = routing;
        self
    }

    /// Use a Galera node that is a state-transfer donor
    /// (`wsrep_local_state` 2, `wsrep_desync` off). Defaults to `false`: a
    /// donor may stall writes while it serves a snapshot.
    pub fn allow_donor(mut self, allow: bool) -> Self {
        self.accept.donor = allow;
        self
    }

    /// Use a Galera node desynced on purpose (`wsrep_desync = ON`, e.g.
    /// for a backup). Defaults to `false`: it may lag behind the cluster.
    pub fn allow_desynced(mut self, allow: bool) -> Self {
        self.accept.desynced = allow;
        self
    }

    /// How often each node's health is read. Defaults to 500 ms. Together
    /// with `check_timeout` it bounds how long a frozen node (no error,
    /// no answer) keeps getting new connections.
    pub fn check_interval(mut self, interval: Duration) -> Self {
        self.settings.check_interval = interval;
        self
    }

    /// Bound on one health reading; a node that does not answer within it
    /// is down. Defaults to 1 s. Keep it above the slowest `SHOW STATUS`
    /// under load, or healthy nodes flap.
    pub fn check_timeout(mut self, timeout: Duration) -> Self {
        self.settings.check_timeout = timeout;
        self
    }

    /// How long a node that was down must read healthy (and in the current
    /// view) before it is used again, while other nodes are up. Defaults
    /// to 2 s. Prevents routing to a node that flaps or that reports a
    /// stale `Synced` right after it was frozen.
    pub fn readmit_after(mut self, after: Duration) -> Self {
        self.readmit_after = after;
        self
    }

    /// How long a connect waits for a usable node when none is usable
    /// (a failover in progress) before it fails with an error naming each
    /// node's state. Defaults to 4 s; keep it below the pool's
    /// `connect_timeout` so that error, not a bare timeout, is what
    /// checkouts see.
    pub fn node_wait(mut self, wait: Duration) -> Self {
        self.settings.node_wait = wait;
        self
    }

    /// The manager.
    pub fn build(self) -> ClusterManager {
        let accept = Accept {
            read_only: self.routing == Routing::Replicas,
            ..self.accept
        };
        let nodes = self
            .nodes
            .into_iter()
            .map(|(address, manager)| Node::new(manager, address))
            .collect();
        let rules = Rules {
            routing: self.routing,
            accept,
            readmit_after: self.readmit_after,
        };
        ClusterManager {
            shared: Arc::new(Shared {
                nodes: Nodes::new(nodes, rules),
                settings: self.settings,
                kick: Arc::new(Notify::new()),
                monitor: parking_lot::Mutex::new(Vec::new()),
            }),
        }
    }
}

/// A [`Manager`] over several MySQL/MariaDB servers: a Galera cluster, or a
/// primary with replicas. `docs/architecture.md` ("Multi-host") describes
/// the design and its limits.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use mysql_async::prelude::*;
/// use poolwarden_mysql::ClusterManager;
///
/// let manager = ClusterManager::from_url("mysql://app:secret@db1,db2,db3/shop")?;
/// let pool = poolwarden::Pool::builder(manager).build()?;
/// let mut conn = pool.get().await?;
/// conn.query_drop("INSERT INTO t VALUES (1)").await?;
/// println!("written on {}", conn.address());
/// # Ok(()) }
/// ```
///
/// The health checks run as tasks on the Tokio runtime of the first
/// connect, and end when the manager (the pool) is dropped.
pub struct ClusterManager {
    shared: Arc<Shared>,
}

impl ClusterManager {
    /// A manager with the default settings for a multi-host URL (see
    /// [`ClusterBuilder::from_url`]).
    ///
    /// # Errors
    ///
    /// [`ClusterError`] for a malformed URL; it never contains the password.
    pub fn from_url(url: &str) -> Result<Self, ClusterError> {
        Ok(ClusterBuilder::from_url(url)?.build())
    }

    /// A builder for a multi-host URL (see [`ClusterBuilder::from_url`]).
    ///
    /// # Errors
    ///
    /// As [`ClusterBuilder::from_url`].
    pub fn builder_from_url(url: &str) -> Result<ClusterBuilder, ClusterError> {
        ClusterBuilder::from_url(url)
    }

    /// Every node's state: address, health, open connections, writer, the
    /// last reading and error.
    pub fn nodes(&self) -> Vec<NodeStatus> {
        self.shared.nodes.snapshot()
    }

    /// Read every node's health now instead of at the next interval.
    pub fn check_now(&self) {
        self.shared.kick.notify_waiters();
    }

    fn node(&self, conn: &ClusterConn) -> &MySqlManager {
        &self.shared.nodes.nodes[conn.node].manager
    }

    fn start_monitor(&self) {
        let mut tasks = self.shared.monitor.lock();
        if tasks.is_empty() || tasks.iter().any(|t| t.is_finished()) {
            tasks.iter().for_each(|t| t.abort());
            *tasks = monitor::spawn(&self.shared);
        }
    }

    /// Open a connection on node `i` and read its health on it.
    async fn open_on(&self, i: usize) -> Result<ClusterConn, Attempt> {
        let nodes = &self.shared.nodes;
        let node = &nodes.nodes[i];
        let seen = nodes.generation(i);
        let failed = |e: mysql_async::Error| {
            if node.manager.classify(&e) == ErrorClass::Fatal {
                return Attempt::Fatal(e);
            }
            nodes.down(i, Some(seen), DownReason::Unreachable, Some(e.to_string()));
            Attempt::Failed(e)
        };
        let mut conn = node
            .manager
            .connect_under(&node.switch())
            .await
            .map_err(failed)?;
        let reading = reading::read_reading(&mut conn.inner)
            .await
            .map_err(failed)?;
        match nodes.admit_new(i, seen, &reading, Instant::now()) {
            Ok(()) if nodes.prefer_replica(&reading) => Err(Attempt::Unfit),
            Ok(()) => Ok(ClusterConn::new(conn, i, seen, Arc::clone(&self.shared))),
            Err(_) => Err(Attempt::Unfit),
        }
    }

    /// The error a connect returns when no node became usable in time.
    fn no_node(&self, last: Option<mysql_async::Error>) -> mysql_async::Error {
        let mut text = format!(
            "no usable cluster node within {:?} ({})",
            self.shared.settings.node_wait,
            self.shared.nodes.describe()
        );
        if let Some(e) = last {
            text.push_str(&format!("; last connect error: {e}"));
        }
        not_connected(text)
    }
}

/// The manager's own "no connection" error, as the driver's error type.
fn not_connected(text: String) -> mysql_async::Error {
    mysql_async::Error::Io(mysql_async::IoError::Io(std::io::Error::new(
        std::io::ErrorKind::NotConnected,
        text,
    )))
}

/// How one connect attempt on a node ended.
enum Attempt {
    /// Retrying elsewhere will not help (bad credentials, unknown database).
    Fatal(mysql_async::Error),
    /// The node failed; it is marked down.
    Failed(mysql_async::Error),
    /// The node answered but may not be used now.
    Unfit,
}

impl fmt::Debug for ClusterManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let addresses: Vec<&str> = self
            .shared
            .nodes
            .nodes
            .iter()
            .map(|n| n.address.as_str())
            .collect();
        f.debug_struct("ClusterManager")
            .field("nodes", &addresses)
            .field("settings", &self.shared.settings)
            .finish_non_exhaustive()
    }
}

impl Manager for ClusterManager {
    type Connection = ClusterConn;
    type Error = mysql_async::Error;

    /// A connection on the node the routing picks, whose health (read on
    /// the new connection) allows it. Waits up to `node_wait` for a usable
    /// node when none is (a failover in progress).
    async fn connect(&self) -> Result<ClusterConn, mysql_async::Error> {
        self.start_monitor();
        let deadline = Instant::now() + self.shared.settings.node_wait;
        let mut last = None;
        loop {
            let changed = self.shared.nodes.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(i) = self.shared.nodes.pick(Instant::now()) {
                match self.open_on(i).await {
                    Ok(conn) => return Ok(conn),
                    Err(Attempt::Fatal(e)) => return Err(e),
                    Err(Attempt::Failed(e)) => {
                        self.check_now();
                        last = Some(e);
                    }
                    Err(Attempt::Unfit) => {}
                }
                if Instant::now() < deadline {
                    continue;
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(self.no_node(last));
            }
            tokio::select! {
                () = changed => {}
                () = tokio::time::sleep(deadline - now) => {}
            }
        }
    }

    /// Fails at once when the node's connections were retired (the pool
    /// validates instead of probing a connection idle past the bypass
    /// window, so this is where those are caught); otherwise `COM_PING` on
    /// the connection's node, bounded by `check_timeout` (keep the pool's
    /// `validation_timeout` above it: a ping the pool times out makes it
    /// treat the whole pool as a black hole).
    async fn validate(&self, conn: &mut ClusterConn) -> Result<(), mysql_async::Error> {
        if conn.is_retired() {
            return Err(not_connected(format!(
                "the connections of cluster node {} were retired",
                conn.address()
            )));
        }
        let node = &self.shared.nodes.nodes[conn.node].manager;
        let bound = self.shared.settings.check_timeout;
        match tokio::time::timeout(bound, node.validate(&mut conn.conn)).await {
            Ok(result) => result,
            // Ours, not the pool's timeout: the pool would call a silent
            // node a black hole for the whole pool (every node).
            Err(_) => {
                self.check_now();
                Err(not_connected(format!(
                    "cluster node {} did not answer a ping within {bound:?}",
                    conn.address()
                )))
            }
        }
    }

    /// `Closed` when the node's connections were retired; otherwise the
    /// node manager's probe.
    fn probe(&self, conn: &mut ClusterConn) -> Probe {
        if conn.is_retired() {
            return Probe::Closed;
        }
        let probe = self.node(conn).probe(&mut conn.conn);
        if probe == Probe::Closed {
            self.check_now();
        }
        probe
    }

    /// As [`probe`](Manager::probe), but `Corrupt` instead of `Closed`:
    /// at return the core reads `Closed` as "the server went away" and
    /// retires every connection of the pool, while here one node's failure
    /// must retire only that node's connections.
    fn probe_returned(&self, conn: &mut ClusterConn) -> Probe {
        if conn.is_retired() {
            return Probe::Corrupt;
        }
        match self.node(conn).probe_returned(&mut conn.conn) {
            Probe::Closed => {
                self.check_now();
                Probe::Corrupt
            }
            other => other,
        }
    }

    async fn reset(&self, conn: &mut ClusterConn) -> Result<(), mysql_async::Error> {
        let node = &self.shared.nodes.nodes[conn.node].manager;
        node.reset(&mut conn.conn).await
    }

    /// The node manager's classification, except that a disconnect, an
    /// unresponsive server (a command deadline passed) and a Galera node's
    /// "not ready" (1047) are [`ErrorClass::Broken`]: only this connection
    /// is discarded, and the health checks run at once to find out whether
    /// its node is down (then the node's connections are retired). The
    /// pool's own reading of those classes would retire, or black-hole,
    /// every node's connections.
    fn classify(&self, error: &mysql_async::Error) -> ErrorClass {
        let class = self.shared.nodes.nodes[0].manager.classify(error);
        let not_ready = matches!(
            crate::ambiguous::cause(error),
            mysql_async::Error::Server(e) if e.code == crate::ambiguous::WSREP_NOT_READY
        );
        if matches!(class, ErrorClass::Disconnect | ErrorClass::Unresponsive) || not_ready {
            self.check_now();
            return ErrorClass::Broken;
        }
        class
    }

    fn facts(&self, conn: &ClusterConn) -> ConnectionFacts {
        self.node(conn).facts(&conn.conn)
    }

    /// The node manager's (command deadlines).
    fn on_hand_out(&self, conn: &mut ClusterConn, deadline: Option<tokio::time::Instant>) {
        let node = &self.shared.nodes.nodes[conn.node].manager;
        node.on_hand_out(&mut conn.conn, deadline);
    }

    /// Cuts the commands in flight on every node's connections (each node
    /// manager's [`cut_in_flight`](Manager::cut_in_flight)).
    fn cut_in_flight(&self) {
        for node in &self.shared.nodes.nodes {
            node.manager.cut_in_flight();
        }
    }
}

/// `BEGIN`, `COMMIT` and `ROLLBACK` through the tracked connection, as for
/// [`MySqlManager`].
impl Transactional for ClusterManager {
    async fn begin(&self, conn: &mut ClusterConn) -> Result<(), mysql_async::Error> {
        conn.conn.query_drop("BEGIN").await
    }

    async fn commit(&self, conn: &mut ClusterConn) -> Result<(), mysql_async::Error> {
        conn.conn.query_drop("COMMIT").await
    }

    async fn rollback(&self, conn: &mut ClusterConn) -> Result<(), mysql_async::Error> {
        conn.conn.query_drop("ROLLBACK").await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_errors_hide_the_password() {
        let m = ClusterManager::from_url("mysql://app:s3cret@h1:3306,h2:3307/db").unwrap();
        let text = format!("{m:?}");
        assert!(
            text.contains("h2:3307") && !text.contains("s3cret"),
            "{text}"
        );
        let e = m.no_node(None).to_string();
        assert!(e.contains("h1:3306") && !e.contains("s3cret"), "{e}");
        let bad = ClusterManager::from_url("mysql://app:s3cret@h1,h2/db?no_such_param=1")
            .unwrap_err()
            .to_string();
        assert!(!bad.contains("s3cret"), "{bad}");
    }

    #[test]
    fn builder_from_managers() {
        let nodes =
            ["mysql://u@a:1/db", "mysql://u@b:2/db"].map(|u| MySqlManager::from_url(u).unwrap());
        let m = ClusterBuilder::new(nodes)
            .unwrap()
            .routing(Routing::Any)
            .build();
        let addresses: Vec<String> = m.nodes().into_iter().map(|n| n.address).collect();
        assert_eq!(addresses, ["a:1", "b:2"]);
        assert!(matches!(
            ClusterBuilder::new(Vec::new()),
            Err(ClusterError::NoNodes)
        ));
    }
}
