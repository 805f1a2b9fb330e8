#![doc = include_str!("../README.md")]

mod builder;
mod bulkhead;
mod call;
mod checkout;
mod clock;
mod config;
mod connect;
mod deadlines;
mod error;
mod guard;
mod health;
mod inventory;
mod leaks;
mod lifecycle;
mod maintain;
mod manager;
mod observe;
mod pool;
mod recycle;
pub mod redact;
pub mod rules;
mod shared;
mod signal;
mod slots;
mod snapshot;
mod status;
mod transactional;
mod waiters;

#[cfg(test)]
mod tests;

pub use builder::{Builder, StartError};
pub use bulkhead::{Bulkhead, BulkheadConnection, BulkheadError};
pub use config::{IdleOrder, PoolConfig, WhenUnavailable};
pub use connect::ConnectTimeout;
pub use error::{BuildError, CallTimeout, ManagerPanic, PoolError, SharedError, TimeoutError};
pub use guard::PooledConnection;
pub use manager::{ConnectionFacts, ErrorClass, Manager, Probe};
pub use observe::{Event, InvalidationCause, ManagerCall, Observer};
pub use pool::Pool;
pub use signal::ServerSignal;
pub use snapshot::{CheckoutSnapshot, PoolSnapshot};
pub use status::{CheckoutInfo, CloseReason, ClosedCounts, PoolStatus};
pub use transactional::Transactional;
