//! The JSON API: one file per resource, plus errors, the way out
//! (`respond`), lost-race retries and input handling.

pub(crate) mod accounts;
pub(crate) mod error;
pub(crate) mod idempotency;
pub(crate) mod input;
pub(crate) mod orders;
pub(crate) mod reports;
pub(crate) mod respond;
pub(crate) mod retry;
