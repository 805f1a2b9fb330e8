//! [`PoolSnapshot`]: the `/debug/pool` document, defined once. The pool
//! makes it ([`PoolSnapshot::of`]), `poolwarden-axum` serves it, and
//! `poolwarden doctor --live` reads it back: one type, so the three cannot
//! drift apart.
//!
//! ```json
//! {"pool": "main",
//!  "status": {"max_size": 10, "in_use": 3, "idle": 7, ...},
//!  "checkouts": [{"id": 41, "location": "src/jobs/report.rs:88:23",
//!                 "label": "export (spawned from POST /reports req=4f1c…)",
//!                 "held_for": 312.4, ...}],
//!  "config": {"name": "main", "max_size": 10, "checkout_timeout": "10s", ...}}
//! ```
//!
//! Reading is lenient: unknown fields are ignored and missing ones take
//! their defaults, so a reader older than the service still parses it.

use serde::{Deserialize, Serialize};

use crate::{CheckoutInfo, Manager, Pool, PoolConfig, PoolStatus};

/// Everything `/debug/pool` shows about one pool. `C` is the config's type:
/// [`PoolConfig`] to serve, or a looser one (say `serde_json::Value`) to
/// read a document whose config a newer pool wrote.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PoolSnapshot<C = PoolConfig> {
    /// The pool's name.
    pub pool: String,
    /// The pool's counts.
    pub status: PoolStatus,
    /// Every live checkout, longest held first.
    #[serde(default)]
    pub checkouts: Vec<CheckoutSnapshot>,
    /// The pool's configuration.
    #[serde(default)]
    pub config: Option<C>,
}

/// One live checkout as the document shows it: [`CheckoutInfo`] with
/// owned text and durations in seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CheckoutSnapshot {
    /// The checkout's id (unique in its pool).
    pub id: u64,
    /// The connection's id (unique in its pool).
    pub connection_id: u64,
    /// Where `get()` was called, `file:line:column`.
    pub location: String,
    /// The holder's label.
    #[serde(default)]
    pub label: Option<String>,
    /// How long it has been held, in seconds.
    pub held_for: f64,
    /// How old the connection is, in seconds.
    #[serde(default)]
    pub connection_age: f64,
    /// The server's idle timeout for this connection in seconds, when known.
    #[serde(default)]
    pub server_idle_timeout: Option<f64>,
    /// Whether it has been reported as a leak.
    #[serde(default)]
    pub leak_reported: bool,
}

impl From<&CheckoutInfo> for CheckoutSnapshot {
    fn from(c: &CheckoutInfo) -> Self {
        CheckoutSnapshot {
            id: c.id,
            connection_id: c.connection_id,
            location: c.location.to_string(),
            label: c.label.as_deref().map(str::to_owned),
            held_for: c.held_for.as_secs_f64(),
            connection_age: c.connection_age.as_secs_f64(),
            server_idle_timeout: c.server_idle_timeout.map(|d| d.as_secs_f64()),
            leak_reported: c.leak_reported,
        }
    }
}

impl PoolSnapshot {
    /// A snapshot of `pool` now.
    pub fn of<M: Manager>(pool: &Pool<M>) -> Self {
        PoolSnapshot {
            pool: pool.config().name.clone(),
            status: pool.status(),
            checkouts: pool
                .checkouts()
                .iter()
                .map(CheckoutSnapshot::from)
                .collect(),
            config: Some(pool.config().clone()),
        }
    }
}

impl<C> PoolSnapshot<C> {
    /// The same document with its config converted by `f` (for readers: a
    /// config that does not parse becomes `None`).
    pub fn map_config<D>(self, f: impl FnOnce(C) -> Option<D>) -> PoolSnapshot<D> {
        PoolSnapshot {
            pool: self.pool,
            status: self.status,
            checkouts: self.checkouts,
            config: self.config.and_then(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_reads_back_what_it_wrote() {
        let mut status = PoolStatus {
            max_open: 15,
            ..PoolStatus::default()
        };
        status.closed.lifetime = 2;
        let doc = PoolSnapshot {
            pool: "main".to_owned(),
            status,
            checkouts: vec![CheckoutSnapshot {
                id: 7,
                connection_id: 3,
                location: "src/x.rs:12:5".to_owned(),
                label: Some("job".to_owned()),
                held_for: 75.5,
                connection_age: 80.0,
                server_idle_timeout: Some(60.0),
                leak_reported: true,
            }],
            config: Some(PoolConfig::default()),
        };
        let text = serde_json::to_string(&doc).unwrap();
        let back: PoolSnapshot = serde_json::from_str(&text).unwrap();
        assert_eq!(back.status, doc.status);
        assert_eq!(back.checkouts, doc.checkouts);
        assert_eq!(back.config, doc.config);
        // Lenient: unknown fields ignored, missing ones defaulted.
        let newer = text.replace("\"max_open\"", "\"something_new\":1,\"max_open\"");
        let back: PoolSnapshot = serde_json::from_str(&newer).unwrap();
        assert_eq!(back.status.max_open, 15);
        let older: PoolSnapshot =
            serde_json::from_str(r#"{"pool":"p","status":{"open":1}}"#).unwrap();
        assert_eq!((older.status.open, older.checkouts.len()), (1, 0));
    }
}
