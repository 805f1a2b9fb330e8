//! [`ClusterConn`]: a [`MySqlConn`] that knows its node.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::manager::Shared;
use crate::conn::MySqlConn;

/// A pooled connection of a [`ClusterManager`](crate::ClusterManager): a
/// [`MySqlConn`] (it dereferences to one, so the query API and the session
/// tracking are the same) plus the node it belongs to and the node
/// generation it was opened in.
pub struct ClusterConn {
    pub(crate) conn: MySqlConn,
    pub(crate) node: usize,
    pub(crate) generation: u64,
    shared: Arc<Shared>,
}

impl ClusterConn {
    pub(crate) fn new(conn: MySqlConn, node: usize, generation: u64, shared: Arc<Shared>) -> Self {
        shared.nodes.nodes[node]
            .open
            .fetch_add(1, Ordering::Relaxed);
        ClusterConn {
            conn,
            node,
            generation,
            shared,
        }
    }

    /// The node's position in the manager's node list (the URL's order), from 0.
    pub fn node(&self) -> usize {
        self.node
    }

    /// The node's `host:port`.
    pub fn address(&self) -> &str {
        &self.shared.nodes.nodes[self.node].address
    }

    /// Whether the node's connections were retired since this one opened
    /// (the node failed, or the writer moved): the pool closes it at its
    /// next checkout or return.
    pub fn is_retired(&self) -> bool {
        self.shared.nodes.generation(self.node) != self.generation
    }
}

impl Drop for ClusterConn {
    fn drop(&mut self) {
        self.shared.nodes.nodes[self.node]
            .open
            .fetch_sub(1, Ordering::Relaxed);
    }
}

impl Deref for ClusterConn {
    type Target = MySqlConn;

    fn deref(&self) -> &MySqlConn {
        &self.conn
    }
}

/// Not raw use: [`MySqlConn`] still tracks what goes through it.
impl DerefMut for ClusterConn {
    fn deref_mut(&mut self) -> &mut MySqlConn {
        &mut self.conn
    }
}

impl fmt::Debug for ClusterConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterConn")
            .field("node", &self.address())
            .field("generation", &self.generation)
            .field("conn", &self.conn)
            .finish()
    }
}
