//! The JSON API: one file per resource, plus errors and input handling.

pub(crate) mod accounts;
pub(crate) mod error;
pub(crate) mod idempotency;
pub(crate) mod input;
pub(crate) mod orders;
pub(crate) mod reports;
