#![doc = include_str!("../README.md")]

mod abort;
mod ambiguous;
mod classify;
mod cluster;
mod conn;
mod connect;
mod deadline;
mod facts;
mod kill;
mod manager;
mod policy;
mod probe;
mod queryable;
mod reset;
mod sql;
mod stream;
mod track;
mod transactional;
mod watchdog;

pub use abort::{CommandCut, CutReason};
pub use ambiguous::OutcomeUnknown;
pub use classify::{classify_error, classify_server, codes, Classifier};
pub use cluster::{
    read_reading, split_url, ClusterBuilder, ClusterConn, ClusterError, ClusterManager, DownReason,
    NodeState, NodeStatus, Reading, Routing, METRIC_CLUSTER_NODE_CONNECTIONS,
    METRIC_CLUSTER_NODE_UP,
};
pub use conn::MySqlConn;
pub use connect::DEFAULT_TCP_KEEPALIVE;
pub use deadline::{CommandTimeout, DeadlineSource, WithTimeout};
pub use kill::{
    DeadlineStats, KillOutcome, ServerNotAnswering, METRIC_COMMAND_TIMEOUTS, METRIC_KILLS,
};
pub use manager::{
    MySqlManager, DEFAULT_COMMAND_TIMEOUT, DEFAULT_KILL_TIMEOUT, DEFAULT_UNRESPONSIVE_AFTER,
};
pub use policy::ResetPolicy;
pub use sql::may_change_session;
pub use stream::BoundedStream;
pub use track::TrackedStatement;

pub use mysql_async;

/// The workspace README's examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
mod workspace_readme {}
