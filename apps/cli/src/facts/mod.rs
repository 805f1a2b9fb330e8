//! What the server says about itself: version, idle timeouts, connection
//! limits and counters, read over one connection that is closed cleanly
//! afterwards.

pub(crate) mod mysql;
mod postgres;
mod read;
mod server;
mod target;

pub(crate) use read::{io_reason, read_facts};
pub(crate) use server::{Flavor, ServerFacts};
pub(crate) use target::{redact, redact_str, Target};
