//! Per-node state: health, generation, open connections; the routing
//! decision. One owner for every transition: [`Nodes::observe`] (a health
//! reading), [`Nodes::down`] (a failure) and [`Nodes::pick`] (routing,
//! including writer changes). No I/O here.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::manager::Routing;
use super::reading::{Accept, Reading};
use crate::abort::{CutReason, Switch};
use crate::manager::MySqlManager;

/// Gauge (feature `metrics`): 1 while the pool uses the node (label `node`,
/// its `host:port`), else 0. Updated by the node's health check.
pub const METRIC_CLUSTER_NODE_UP: &str = "poolwarden_mysql_cluster_node_up";
/// Gauge (feature `metrics`): the node's open connections (label `node`).
/// Sampled by the node's health check.
pub const METRIC_CLUSTER_NODE_CONNECTIONS: &str = "poolwarden_mysql_cluster_node_connections";

/// Whether the pool uses a node. Serialised in snake case: `"up"`,
/// `{"down": "non_primary"}`, `{"down": {"not_synced": {"state": 2}}}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum NodeState {
    /// Not checked yet: a connect may try it (and checks it first).
    Unknown,
    /// Usable: new connections may go there.
    Up,
    /// Not used; its connections were retired.
    Down(DownReason),
    /// Down before, good readings now: used again once they have lasted
    /// `readmit_after` and its view has caught up with the nodes in use.
    Recovering,
}

/// Why a node is not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DownReason {
    /// Connecting or the health check failed or timed out.
    Unreachable,
    /// `wsrep_cluster_status` is not `Primary`: the node is cut off from
    /// the cluster's majority and would refuse or lose writes.
    NonPrimary,
    /// `wsrep_ready` is `OFF`.
    NotReady,
    /// `wsrep_local_state` is not Synced (1 Joining, 2 Donor/Desynced, 3
    /// Joined).
    NotSynced {
        /// The `wsrep_local_state` value.
        state: u32,
    },
    /// Read-only, and this routing needs a writable node.
    ReadOnly,
    /// It reports a view older than the nodes in use: a stale `Synced`
    /// right after it was frozen (SIGSTOP) and resumed.
    StaleView,
}

impl fmt::Display for DownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DownReason::Unreachable => f.write_str("unreachable"),
            DownReason::NonPrimary => f.write_str("not in the primary component"),
            DownReason::NotReady => f.write_str("wsrep_ready is OFF"),
            DownReason::NotSynced { state } => write!(f, "not Synced (wsrep_local_state {state})"),
            DownReason::ReadOnly => f.write_str("read-only"),
            DownReason::StaleView => f.write_str("reports a stale view"),
        }
    }
}

/// A snapshot of one node, for status pages and tests. Serialises to one
/// JSON object per node (e.g. an extra section of `/debug/pool`, see
/// `poolwarden_axum::debug_router_with`).
#[derive(Debug, Clone, serde::Serialize)]
#[non_exhaustive]
pub struct NodeStatus {
    /// `host:port` (never the password).
    pub address: String,
    /// Whether the pool uses it.
    pub state: NodeState,
    /// Connections to it that are open now (idle or handed out).
    pub open: usize,
    /// The single writer (under [`Routing::SingleWriter`]).
    pub writer: bool,
    /// Moves on each time the node's connections are retired.
    pub generation: u64,
    /// The last reading, if any.
    pub reading: Option<Reading>,
    /// The last connect or check error, if the last attempt failed, with
    /// any password in it masked (`poolwarden::redact::text`).
    pub last_error: Option<String>,
}

/// The health rule's settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rules {
    pub(crate) routing: Routing,
    pub(crate) accept: Accept,
    pub(crate) readmit_after: Duration,
}

/// One node: its manager and the counters the hot path reads without a lock.
pub(crate) struct Node {
    pub(crate) manager: MySqlManager,
    pub(crate) address: String,
    pub(crate) generation: AtomicU64,
    pub(crate) open: AtomicUsize,
    /// The switch new connections to the node are opened under (a child of
    /// the node manager's); flipped and replaced when the node is marked
    /// down for a reason that stalls its commands ([`DownReason::cuts`]).
    switch: Mutex<Switch>,
}

impl Node {
    pub(crate) fn new(manager: MySqlManager, address: String) -> Self {
        let switch = Mutex::new(manager.switch().child());
        Node {
            manager,
            address,
            generation: AtomicU64::new(0),
            open: AtomicUsize::new(0),
            switch,
        }
    }

    /// The switch a new connection to this node is opened under.
    pub(crate) fn switch(&self) -> Switch {
        self.switch.lock().clone()
    }

    /// Cut the commands in flight on this node's connections; connections
    /// opened from now on get a fresh switch.
    fn cut(&self, reason: DownReason) {
        let fresh = self.manager.switch().child();
        let old = std::mem::replace(&mut *self.switch.lock(), fresh);
        old.flip(CutReason::NodeDown {
            address: self.address.clone(),
            why: reason.to_string(),
        });
    }
}

impl DownReason {
    /// Whether commands in flight on the node are cut when it is marked
    /// down for this reason: only when it does not answer (frozen, dead,
    /// cut off by the network): its commands would wait for their deadline.
    /// A node that answers (out of the primary component, not ready, not
    /// Synced, read-only, a stale view) answers its in-flight commands
    /// itself, with a result or an error such as 1047; cutting them would
    /// add errors during the short view changes in which a healthy node
    /// reads not ready. Its connections are retired at their next checkout
    /// or return either way.
    pub fn cuts(self) -> bool {
        matches!(self, DownReason::Unreachable)
    }
}

#[derive(Debug, Clone)]
struct Health {
    state: NodeState,
    /// When it last became Up.
    up_since: Option<Instant>,
    /// First good reading of the current streak while not Up.
    good_since: Option<Instant>,
    reading: Option<Reading>,
    last_error: Option<String>,
}

struct Table {
    health: Vec<Health>,
    writer: Option<usize>,
}

/// New connections may go to node `i` (an unchecked node is checked on the
/// new connection).
fn usable(t: &Table, i: usize) -> bool {
    matches!(t.health[i].state, NodeState::Up | NodeState::Unknown)
}

/// Every node's state.
pub(crate) struct Nodes {
    pub(crate) nodes: Vec<Node>,
    rules: Rules,
    table: Mutex<Table>,
    /// Notified on every change that may make a node usable.
    pub(crate) changed: Notify,
}

impl Nodes {
    pub(crate) fn new(nodes: Vec<Node>, rules: Rules) -> Self {
        let health = vec![
            Health {
                state: NodeState::Unknown,
                up_since: None,
                good_since: None,
                reading: None,
                last_error: None,
            };
            nodes.len()
        ];
        Nodes {
            nodes,
            rules,
            table: Mutex::new(Table {
                health,
                writer: None,
            }),
            changed: Notify::new(),
        }
    }

    pub(crate) fn generation(&self, i: usize) -> u64 {
        self.nodes[i].generation.load(Ordering::Acquire)
    }

    /// Retire node `i`'s connections: the probes close them at their next
    /// checkout or return.
    fn retire(&self, i: usize) {
        self.nodes[i].generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Node `i` failed (a connect, a check, or a reading that rules it
    /// out). `seen` is the generation the failure was seen in: a failure of
    /// an older generation changes nothing.
    pub(crate) fn down(
        &self,
        i: usize,
        seen: Option<u64>,
        reason: DownReason,
        error: Option<String>,
    ) {
        let mut t = self.table.lock();
        if seen.is_some_and(|g| g != self.generation(i)) {
            return;
        }
        let h = &mut t.health[i];
        h.good_since = None;
        h.up_since = None;
        if let Some(error) = error {
            // Kept redacted: it is logged and shown on `/debug/pool`.
            h.last_error = Some(poolwarden::redact::text(&error));
        }
        let was = h.state;
        h.state = NodeState::Down(reason);
        if matches!(was, NodeState::Up | NodeState::Unknown) {
            self.retire(i);
            tracing::warn!(node = %self.nodes[i].address, %reason, error = h.last_error.as_deref().unwrap_or(""), cut = reason.cuts(), "cluster node down; retiring its connections");
        }
        // NOTE: also when it was down already (for a reason that did not
        // cut): commands still in flight there stall now.
        if reason.cuts() {
            self.nodes[i].cut(reason);
        }
        if t.writer == Some(i) {
            t.writer = None;
        }
    }

    /// A health reading (or the check's failure) for node `i`.
    pub(crate) fn observe(&self, i: usize, reading: Result<Reading, String>, now: Instant) {
        let reading = match reading {
            Ok(r) => r,
            Err(e) => return self.down(i, None, DownReason::Unreachable, Some(e)),
        };
        if let Some(reason) = reading.unfit(self.accept()) {
            self.table.lock().health[i].reading = Some(reading);
            return self.down(i, None, reason, None);
        }
        let mut t = self.table.lock();
        let newest_view = (0..self.nodes.len())
            .filter(|&j| j != i && t.health[j].state == NodeState::Up)
            .filter_map(|j| t.health[j].reading.as_ref())
            .filter(|r| r.galera)
            .map(|r| r.conf_id)
            .max();
        let others_up = (0..self.nodes.len()).any(|j| j != i && t.health[j].state == NodeState::Up);
        let stale = reading.galera && newest_view.is_some_and(|v| reading.conf_id < v);
        let h = &mut t.health[i];
        h.reading = Some(reading);
        h.last_error = None;
        match h.state {
            NodeState::Up => {}
            _ if stale => {
                h.good_since = None;
                h.state = NodeState::Down(DownReason::StaleView);
            }
            NodeState::Unknown => self.admit(h, i, now),
            NodeState::Down(_) | NodeState::Recovering => {
                let since = *h.good_since.get_or_insert(now);
                if !others_up || now.saturating_duration_since(since) >= self.rules.readmit_after {
                    self.admit(h, i, now);
                } else {
                    h.state = NodeState::Recovering;
                }
            }
        }
    }

    fn admit(&self, h: &mut Health, i: usize, now: Instant) {
        h.state = NodeState::Up;
        h.up_since = Some(now);
        h.good_since = None;
        tracing::info!(node = %self.nodes[i].address, "cluster node up");
        self.changed.notify_waiters();
    }

    /// A new connection to node `i`, opened in generation `seen`, read
    /// `reading`: may the pool have it? Marks the node down if not.
    pub(crate) fn admit_new(
        &self,
        i: usize,
        seen: u64,
        reading: &Reading,
        now: Instant,
    ) -> Result<(), DownReason> {
        if let Some(reason) = reading.unfit(self.accept()) {
            self.table.lock().health[i].reading = Some(reading.clone());
            self.down(i, Some(seen), reason, None);
            return Err(reason);
        }
        let mut t = self.table.lock();
        if self.generation(i) != seen {
            return Err(DownReason::Unreachable);
        }
        let h = &mut t.health[i];
        match h.state {
            NodeState::Up => Ok(()),
            NodeState::Unknown => {
                h.reading = Some(reading.clone());
                self.admit(h, i, now);
                Ok(())
            }
            NodeState::Down(reason) => Err(reason),
            NodeState::Recovering => Err(DownReason::StaleView),
        }
    }

    /// The node a new connection should go to, or `None` if none is usable
    /// now. Under [`Routing::SingleWriter`] this also moves the writer
    /// (fail over, fail back) and retires the old writer's connections.
    pub(crate) fn pick(&self, now: Instant) -> Option<usize> {
        let mut t = self.table.lock();
        let n = self.nodes.len();
        match self.rules.routing {
            Routing::SingleWriter { failback_after } => self.elect(&mut t, failback_after, now),
            Routing::Any => (0..n)
                .filter(|&i| usable(&t, i))
                .min_by_key(|&i| self.nodes[i].open.load(Ordering::Relaxed)),
            Routing::Replicas => {
                // Known replicas first, then unchecked nodes (they may be
                // replicas), then writable nodes.
                let rank = |i: usize| match (&t.health[i].state, &t.health[i].reading) {
                    (NodeState::Up, Some(r)) if r.read_only => 0,
                    (NodeState::Unknown, _) => 1,
                    _ => 2,
                };
                (0..n)
                    .filter(|&i| usable(&t, i))
                    .min_by_key(|&i| (rank(i), self.nodes[i].open.load(Ordering::Relaxed)))
            }
        }
    }

    /// After a reading: under [`Routing::SingleWriter`], fail back to an
    /// earlier node that has been up for `failback_after`, retiring the
    /// interim writer's connections (so the pool reconnects to the new
    /// writer without waiting for a connect to ask).
    pub(crate) fn rebalance(&self, now: Instant) {
        if let Routing::SingleWriter { failback_after } = self.rules.routing {
            let mut t = self.table.lock();
            if t.writer.is_some() {
                self.elect(&mut t, failback_after, now);
            }
        }
    }

    /// The single writer: the current one while usable, else the first
    /// usable node; an earlier node once it has been up for
    /// `failback_after`. Owns every writer change.
    fn elect(&self, t: &mut Table, failback_after: Duration, now: Instant) -> Option<usize> {
        let n = self.nodes.len();
        let current = t.writer.filter(|&w| usable(t, w));
        let next = match current {
            None => (0..n).find(|&i| usable(t, i)),
            Some(w) => (0..w)
                .find(|&i| {
                    t.health[i].state == NodeState::Up
                        && t.health[i]
                            .up_since
                            .is_some_and(|s| now.saturating_duration_since(s) >= failback_after)
                })
                .or(Some(w)),
        };
        if next != t.writer {
            if let Some(old) = current {
                // Fail back: drain the interim writer.
                self.retire(old);
            }
            tracing::info!(
                from = t
                    .writer
                    .map(|w| self.nodes[w].address.as_str())
                    .unwrap_or("none"),
                to = next
                    .map(|w| self.nodes[w].address.as_str())
                    .unwrap_or("none"),
                "cluster writer moves"
            );
            t.writer = next;
        }
        next
    }

    /// Under [`Routing::Replicas`], a new connection to a writable node
    /// while another node is a usable replica or still unchecked (it may
    /// be one): the connect tries that node instead.
    pub(crate) fn prefer_replica(&self, reading: &Reading) -> bool {
        if self.rules.routing != Routing::Replicas || reading.read_only {
            return false;
        }
        let t = self.table.lock();
        t.health.iter().any(|h| match (&h.state, &h.reading) {
            (NodeState::Unknown, _) => true,
            (NodeState::Up, Some(r)) => r.read_only,
            _ => false,
        })
    }

    fn accept(&self) -> Accept {
        self.rules.accept
    }

    /// Every node's state, for status pages.
    pub(crate) fn snapshot(&self) -> Vec<NodeStatus> {
        let t = self.table.lock();
        self.nodes
            .iter()
            .zip(&t.health)
            .enumerate()
            .map(|(i, (node, h))| NodeStatus {
                address: node.address.clone(),
                state: h.state,
                open: node.open.load(Ordering::Relaxed),
                writer: t.writer == Some(i),
                generation: self.generation(i),
                reading: h.reading.clone(),
                last_error: h.last_error.clone(),
            })
            .collect()
    }

    /// Node `i`'s gauges (see [`METRIC_CLUSTER_NODE_UP`]).
    pub(crate) fn record(&self, i: usize) {
        #[cfg(feature = "metrics")]
        {
            let node = &self.nodes[i];
            let up = self.table.lock().health[i].state == NodeState::Up;
            let label = node.address.clone();
            metrics::gauge!(METRIC_CLUSTER_NODE_UP, "node" => label.clone()).set(if up {
                1.0
            } else {
                0.0
            });
            metrics::gauge!(METRIC_CLUSTER_NODE_CONNECTIONS, "node" => label)
                .set(node.open.load(Ordering::Relaxed) as f64);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = i;
    }

    /// One line per node, for the error a connect returns when no node is
    /// usable.
    pub(crate) fn describe(&self) -> String {
        self.snapshot()
            .iter()
            .map(|s| match (s.state, &s.last_error) {
                (NodeState::Down(r), Some(e)) => format!("{}: {r} ({e})", s.address),
                (NodeState::Down(r), None) => format!("{}: {r}", s.address),
                (state, _) => format!("{}: {state:?}", s.address),
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

#[cfg(test)]
mod tests;
