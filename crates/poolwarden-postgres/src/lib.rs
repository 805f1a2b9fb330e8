#![doc = include_str!("../README.md")]

mod cancel;
mod classify;
mod conn;
mod connect;
mod error;
mod facts;
mod manager;
mod policy;
mod reset;
mod sql;
mod task;
mod tls;
mod track;
mod transactional;
mod verdict;
mod watchdog;

pub use classify::{classify_error, classify_postgres, classify_sqlstate, Classifier};
pub use conn::{
    PgConn, PgStatement, Query, IDLE_IN_TRANSACTION_WARN_FRACTION, STATEMENT_CACHE_SIZE,
};
pub use connect::{DEFAULT_APPLICATION_NAME, DEFAULT_TCP_KEEPALIVE};
pub use error::Error;
pub use facts::{PgServerFacts, FACTS_SQL};
pub use manager::{
    PgManager, DEFAULT_CANCEL_TIMEOUT, DEFAULT_COMMAND_TIMEOUT, DEFAULT_UNRESPONSIVE_AFTER,
};
pub use policy::ResetPolicy;
pub use reset::CLEAN_SQL;
pub use sql::{effect, may_change_session, Effect, SessionEffect, TxEffect};
pub use verdict::ServerNotAnswering;

pub use tokio_postgres;
#[cfg(feature = "tls-rustls")]
pub use {rustls, tokio_postgres_rustls};
