#![doc = include_str!("../README.md")]

mod classify;
mod cluster;
mod conn;
mod connect;
mod facts;
mod manager;
mod policy;
mod probe;
mod reset;
mod sql;
mod transactional;

pub use classify::{classify_error, classify_server, codes, Classifier};
pub use cluster::{
    ClusterBuilder, ClusterConn, ClusterError, ClusterManager, DownReason, NodeState, NodeStatus,
    Reading, Routing,
};
pub use conn::{MySqlConn, TrackedStatement};
pub use connect::DEFAULT_TCP_KEEPALIVE;
pub use manager::MySqlManager;
pub use policy::ResetPolicy;
pub use sql::may_change_session;

pub use mysql_async;

/// The workspace README's examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
mod workspace_readme {}
