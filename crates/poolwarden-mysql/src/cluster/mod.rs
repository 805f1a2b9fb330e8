//! [`ClusterManager`]: one pool over several MySQL/MariaDB servers (a
//! Galera cluster, or a primary with replicas), routing each new connection
//! to a node the server itself says is usable, and retiring one node's
//! connections when that node fails, not the whole pool's.
//!
//! # Implementation Details
//!
//! - One [`MySqlManager`](crate::MySqlManager) per node does the real work
//!   (connect, ping, probe, reset, classify); the cluster manager decides
//!   which node and keeps per-node state (`nodes.rs`).
//! - Per-node invalidation without the core's help: the core retires every
//!   connection when a manager classifies an error as
//!   [`ErrorClass::Disconnect`](poolwarden::ErrorClass::Disconnect), and
//!   black-holes the pool on [`ErrorClass::Unresponsive`](poolwarden::ErrorClass::Unresponsive)
//!   or a validation ping it had to time out. This manager never lets one
//!   node cause that: a disconnect or an unresponsive command is
//!   [`ErrorClass::Broken`](poolwarden::ErrorClass::Broken) (only that
//!   connection goes) and wakes the health checks, and `validate` bounds
//!   its ping itself (`check_timeout`). When a check (or a failed connect)
//!   finds a node down, the node's generation moves on; each
//!   [`ClusterConn`] remembers the node generation it was opened in, and
//!   for connections of an older generation the probes answer `Closed` (at
//!   checkout) or `Corrupt` (at return, where the core would read `Closed`
//!   as a whole-server disconnect) and `validate` fails at once. So that
//!   node's connections are retired at their next checkout or return, and
//!   no others.
//! - Health comes from the server (`reading.rs`): for Galera `wsrep_ready`,
//!   `wsrep_cluster_status = Primary`, `wsrep_local_state = 4` (Synced;
//!   Donor/Desynced if allowed), checked on every new connection before the
//!   pool gets it and by one background task per node (`monitor.rs`),
//!   every `check_interval`, each check bounded by `check_timeout`.
//! - A node that was down is used again only after good readings for
//!   `readmit_after`, and only when its view (`wsrep_cluster_conf_id`) has
//!   caught up with the nodes in use: right after SIGCONT a frozen node
//!   still reports its old view as `Synced` for seconds.

mod conn;
mod manager;
mod monitor;
mod nodes;
mod reading;
mod url;

pub use conn::ClusterConn;
pub use manager::{ClusterBuilder, ClusterManager, Routing};
pub use nodes::{
    DownReason, NodeState, NodeStatus, METRIC_CLUSTER_NODE_CONNECTIONS, METRIC_CLUSTER_NODE_UP,
};
pub use reading::{read_reading, Reading};
pub use url::{split_url, ClusterError};
