#![doc = include_str!("../README.md")]

mod context;
mod db;
mod deadline;
mod debug;
mod home;
mod log_limit;
#[cfg(feature = "metrics")]
mod metrics;
mod rejection;
mod request_id;
mod tx;
mod tx_layer;
mod tx_rejection;

pub use context::RequestContext;
pub use db::Db;
pub use deadline::{DeadlineLayer, DeadlineService, RequestDeadline, DEADLINE_EXCEEDED};
pub use debug::{debug_router, debug_router_with, pool_debug_handler, DEBUG_POOL_PATH};
pub use log_limit::{LogLimiter, LOG_INTERVAL};
#[cfg(feature = "metrics")]
pub use metrics::{install_prometheus, metrics_handler, metrics_router, METRICS_PATH};
#[cfg(feature = "metrics")]
pub use metrics_exporter_prometheus::PrometheusHandle;
/// Re-exported from the core, where every manager crate can implement it.
pub use poolwarden::Transactional;
/// The `/debug/pool` document, defined in the core (the doctor reads it back).
pub use poolwarden::{CheckoutSnapshot, PoolSnapshot};
pub use rejection::{DbRejection, DATABASE_UNAVAILABLE};
pub use request_id::REQUEST_ID_HEADER;
pub use tx::Tx;
pub use tx_layer::{TxLayer, TxService, COMMIT_OUTCOME_UNKNOWN, TRANSACTION_FAILED};
pub use tx_rejection::{TxRejection, INTERNAL_ERROR};
