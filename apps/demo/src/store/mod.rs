//! The database behind the API: [`Store`], the demo's queries, implemented
//! for MariaDB/MySQL ([`MySqlManager`](poolwarden_mysql::MySqlManager), in
//! `mysql.rs`) and PostgreSQL ([`PgManager`](poolwarden_postgres::PgManager),
//! in `postgres.rs`). Handlers, the schema migration, the report work, the
//! incident replay and the load tool are generic over it.
//!
//! Each backend owns one thing the other has no say in: its SQL and its
//! table from the server's error codes to a [`Kind`]. What a [`Kind`]
//! answers (status and JSON) is decided in one place, `api/error.rs`.

pub(crate) mod mysql;
pub(crate) mod postgres;

use std::future::Future;
use std::time::Duration;

use poolwarden::Transactional;
use serde::{Deserialize, Serialize};

/// What a query failed with, as the API sees it (the backend's table of
/// error codes decides; `api/error.rs` decides the answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A row the write refers to does not exist (a foreign key).
    MissingReference,
    /// Other rows still refer to this one.
    Referenced,
    /// A unique key already has this value.
    Duplicate,
    /// The transaction lost to concurrent writes and was rolled back: a
    /// deadlock, a lock wait timeout, a serialization failure. Running it
    /// again may succeed.
    Conflict,
    /// A value beyond the column's range.
    OutOfRange,
    /// The server did not answer a command within its deadline;
    /// `request_deadline`: the deadline was the request's own.
    NoAnswer { request_deadline: bool },
    /// The connection was lost (the server closed it, restarted, or the
    /// session was killed), or the command was cut before its answer came
    /// (the pool closing, a cluster node marked down as unreachable). The
    /// command committed nothing: a transaction open on the connection is
    /// rolled back by the server. Running the request again may succeed.
    Unavailable,
    /// A command that commits (a `COMMIT`, or a write outside a
    /// transaction) was sent and its answer was lost (the connection
    /// dropped, the command passed its deadline or was cut): the write may
    /// or may not have been applied.
    OutcomeUnknown,
    /// Anything else (a bug, a damaged protocol stream): details are logged.
    Other,
}

/// A failed query: its [`Kind`] and the driver's text (for the log only).
#[derive(Debug)]
pub(crate) struct QueryError {
    pub(crate) kind: Kind,
    pub(crate) detail: String,
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

impl std::error::Error for QueryError {}

/// A query's result.
pub(crate) type Result<T> = std::result::Result<T, QueryError>;

/// An account as the API shows it.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Account {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) email: String,
    pub(crate) created_at: String,
}

/// An order as the API shows it.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Order {
    pub(crate) id: u64,
    pub(crate) account_id: u64,
    pub(crate) amount_cents: i64,
    pub(crate) status: String,
    pub(crate) created_at: String,
}

/// One account's orders, summed: `sum` is the server's exact decimal text
/// (the caller checks that it fits 64 bits instead of letting it clamp).
#[derive(Debug)]
pub(crate) struct TotalsRow {
    pub(crate) account_id: u64,
    pub(crate) orders: u64,
    pub(crate) sum: String,
}

/// The stored answer of an `Idempotency-Key` (`status` and `body` are
/// unset while its request is in progress).
#[derive(Debug)]
pub(crate) struct StoredAnswer {
    pub(crate) fingerprint: String,
    pub(crate) status: Option<u16>,
    pub(crate) body: Option<String>,
}

/// The demo's queries on one kind of server. `c` is a pooled connection
/// (a `Db`, a `Tx` or a checkout, dereferenced); the methods that write
/// run in whatever transaction `c` has open.
pub(crate) trait Store: Transactional + Sized {
    /// Which backend this is.
    const BACKEND: Backend;
    /// The server's name, for messages.
    const SERVER: &'static str;
    /// Each migration, in order; `demo_schema_version` records how many ran.
    const MIGRATIONS: &'static [&'static str];

    /// What a failed `COMMIT` (`Tx::commit`) means: like any other error of
    /// the backend, except that a commit whose answer was lost is
    /// [`Kind::OutcomeUnknown`].
    fn commit_error(e: &Self::Error) -> QueryError;

    /// A manager for `url`, with the demo's session settings.
    fn manager(url: &str) -> std::result::Result<Self, String>;
    /// The host and port `url` points at (for the reachability check).
    fn address(url: &str) -> std::result::Result<(String, u16), String>;
    /// This manager, not telling the pool the server's idle session timeout
    /// (what a pool without that knowledge does: the incident replay).
    fn ignore_server_timeout(self) -> Self;

    /// Run SQL text (no parameters, no result).
    fn batch<'c>(
        c: &'c mut Self::Connection,
        sql: &'c str,
    ) -> impl Future<Output = Result<()>> + Send + 'c;
    /// How many migrations ran (creating the version table if needed).
    fn schema_version(c: &mut Self::Connection) -> impl Future<Output = Result<usize>> + Send;
    /// Record that migration `version` ran.
    fn set_schema_version(
        c: &mut Self::Connection,
        version: usize,
    ) -> impl Future<Output = Result<()>> + Send;

    fn account(
        c: &mut Self::Connection,
        id: u64,
    ) -> impl Future<Output = Result<Option<Account>>> + Send;
    /// At most `limit` accounts with an id above `after`, by id.
    fn accounts(
        c: &mut Self::Connection,
        after: u64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Account>>> + Send;
    /// The new account's id.
    fn insert_account<'c>(
        c: &'c mut Self::Connection,
        name: &'c str,
        email: &'c str,
    ) -> impl Future<Output = Result<u64>> + Send + 'c;
    /// Set the fields given.
    fn update_account<'c>(
        c: &'c mut Self::Connection,
        id: u64,
        name: Option<&'c str>,
        email: Option<&'c str>,
    ) -> impl Future<Output = Result<()>> + Send + 'c;
    /// Whether there was such an account (its orders go with it).
    fn delete_account(
        c: &mut Self::Connection,
        id: u64,
    ) -> impl Future<Output = Result<bool>> + Send;

    fn order(
        c: &mut Self::Connection,
        id: u64,
    ) -> impl Future<Output = Result<Option<Order>>> + Send;
    /// At most `limit` orders of `account` with an id above `after`, by id.
    fn orders(
        c: &mut Self::Connection,
        account: u64,
        after: u64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Order>>> + Send;
    /// The new order's id.
    fn insert_order<'c>(
        c: &'c mut Self::Connection,
        account: u64,
        amount_cents: i64,
        status: &'c str,
    ) -> impl Future<Output = Result<u64>> + Send + 'c;
    fn update_order<'c>(
        c: &'c mut Self::Connection,
        id: u64,
        status: &'c str,
    ) -> impl Future<Output = Result<()>> + Send + 'c;
    /// Whether there was such an order.
    fn delete_order(c: &mut Self::Connection, id: u64)
        -> impl Future<Output = Result<bool>> + Send;
    /// How many orders there are.
    fn count_orders(c: &mut Self::Connection) -> impl Future<Output = Result<u64>> + Send;

    /// Insert `key` (its primary key): `false` when it exists. A key
    /// inserted by a transaction still open makes this wait for it: `false`
    /// once it committed, `true` (inserted now) once it rolled back. Leaves
    /// the transaction usable either way.
    fn claim_key<'c>(
        c: &'c mut Self::Connection,
        key: &'c str,
        fingerprint: &'c str,
    ) -> impl Future<Output = Result<bool>> + Send + 'c;
    fn stored_answer<'c>(
        c: &'c mut Self::Connection,
        key: &'c str,
    ) -> impl Future<Output = Result<Option<StoredAnswer>>> + Send + 'c;
    fn record_answer<'c>(
        c: &'c mut Self::Connection,
        key: &'c str,
        status: u16,
        body: &'c str,
    ) -> impl Future<Output = Result<()>> + Send + 'c;
    /// Delete at most `batch` keys stored more than `older_than` ago, the
    /// oldest first; how many went.
    fn expire_keys(
        c: &mut Self::Connection,
        older_than: Duration,
        batch: u32,
    ) -> impl Future<Output = Result<u64>> + Send;

    /// Keep the connection busy for `seconds` (the report's stand-in for
    /// slow work).
    fn pause(c: &mut Self::Connection, seconds: f64) -> impl Future<Output = Result<()>> + Send;
    /// The 100 accounts with the largest order totals.
    fn totals(c: &mut Self::Connection) -> impl Future<Output = Result<Vec<TotalsRow>>> + Send;
}

/// Which server a database URL is for, by its scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    /// `mysql://` or `mariadb://`.
    MySql,
    /// `postgres://` or `postgresql://`.
    Postgres,
}

impl Backend {
    /// The backend for `url`; `None` for another scheme.
    pub(crate) fn of_url(url: &str) -> Option<Backend> {
        let scheme = url.split_once("://")?.0.to_ascii_lowercase();
        match scheme.as_str() {
            "mysql" | "mariadb" => Some(Backend::MySql),
            "postgres" | "postgresql" => Some(Backend::Postgres),
            _ => None,
        }
    }
}

/// `id` as the signed 64-bit integer both servers store; `None` beyond it
/// (no such row can exist).
pub(crate) fn signed(id: u64) -> Option<i64> {
    i64::try_from(id).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_picks_the_backend() {
        for (url, want) in [
            ("mysql://root@127.0.0.1/test", Some(Backend::MySql)),
            ("MariaDB://root@127.0.0.1/test", Some(Backend::MySql)),
            ("postgres://u@127.0.0.1/test", Some(Backend::Postgres)),
            ("postgresql://u@127.0.0.1/test", Some(Backend::Postgres)),
            ("sqlite://x", None),
            ("127.0.0.1:3306", None),
        ] {
            assert_eq!(Backend::of_url(url), want, "{url}");
        }
    }
}
