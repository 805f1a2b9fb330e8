//! MySQL/MariaDB manager for [poolwarden], on
//! [mysql_async].
//!
//! [`MySqlManager`] opens plain [`mysql_async::Conn`]s (never mysql_async's
//! own pool), learns the server's `wait_timeout` so the pool retires idle
//! connections before the server kills them (F1), tells a cancelled or
//! half-read connection from a clean one without a round trip (F5), resets
//! session state between borrowers (F13, [`ResetPolicy`]), and maps driver
//! errors onto the pool's error classes ([`classify_error`]).
//!
//! The borrower gets the driver's full API: the pool's guard dereferences to
//! [`mysql_async::Conn`] (re-exported here as [`mysql_async`]).
//!
//! `RESEARCH.md` in this crate records what mysql_async 0.37 does and does
//! not expose, and why the defaults are what they are.

mod classify;
mod connect;
mod facts;
mod manager;
mod policy;
mod probe;
mod reset;
mod state;

pub use classify::{classify_error, classify_server, codes, Classifier};
pub use connect::DEFAULT_TCP_KEEPALIVE;
pub use manager::MySqlManager;
pub use policy::ResetPolicy;

pub use mysql_async;
