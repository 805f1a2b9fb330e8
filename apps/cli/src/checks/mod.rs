//! The checks: pure functions from what was read (server facts and pool
//! settings, or a service's `/debug/pool` document) to [`Finding`]s.
//!
//! Nothing here does I/O, so every rule is unit-tested (`tests/`).

mod cluster;
mod finding;
mod live;
mod pool;
mod postgres;
mod server;
#[cfg(test)]
mod tests;

pub(crate) use cluster::*;
pub(crate) use finding::*;
pub(crate) use live::*;
pub(crate) use pool::*;
pub(crate) use postgres::*;
pub(crate) use server::*;
