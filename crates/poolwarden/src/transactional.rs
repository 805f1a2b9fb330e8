//! [`Transactional`]: how to begin, commit and roll back a transaction on a
//! manager's connection.

use std::future::Future;

use crate::manager::Manager;

/// A [`Manager`] whose connections can run transactions: what
/// `poolwarden-axum`'s `Tx` extractor and `TxLayer` need.
///
/// It lives in the core, beside [`Manager`], so that every manager crate can
/// implement it for its own manager (the orphan rule would stop an
/// application from doing so).
///
/// Each method runs one statement on `conn` and returns the driver's error
/// unchanged (the extractor reports it to the pool with
/// [`PooledConnection::report_error`](crate::PooledConnection::report_error),
/// so a disconnect is classified as usual).
///
/// For the pool to roll back a transaction that was never finished (a
/// handler that panicked, a `Tx` dropped off the request path), the
/// manager's [`probe`](Manager::probe) should report
/// [`Probe::NeedsReset`](crate::Probe::NeedsReset) while a transaction
/// is open and its [`reset`](Manager::reset) should roll it back. `Tx` does
/// not rely on it alone: a connection dropped inside a transaction whose
/// probe says `Clean` is closed instead of reused, so the server rolls it
/// back.
///
/// # Example
///
/// A MySQL manager built on `mysql_async` would implement it as:
///
/// ```
/// # mod mysql_async {
/// #     #[derive(Debug)] pub struct Error;
/// #     impl std::fmt::Display for Error {
/// #         fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("e") }
/// #     }
/// #     impl std::error::Error for Error {}
/// #     pub struct Conn;
/// #     impl Conn {
/// #         pub async fn query_drop(&mut self, _: &str) -> Result<(), Error> { Ok(()) }
/// #     }
/// # }
/// # use poolwarden::{ErrorClass, Manager, Probe};
/// # use poolwarden::Transactional;
/// # struct MySqlManager;
/// # impl Manager for MySqlManager {
/// #     type Connection = mysql_async::Conn;
/// #     type Error = mysql_async::Error;
/// #     async fn connect(&self) -> Result<mysql_async::Conn, mysql_async::Error> { Ok(mysql_async::Conn) }
/// #     async fn validate(&self, _: &mut mysql_async::Conn) -> Result<(), mysql_async::Error> { Ok(()) }
/// #     fn probe(&self, _: &mut mysql_async::Conn) -> Probe { Probe::Clean }
/// #     fn classify(&self, _: &mysql_async::Error) -> ErrorClass { ErrorClass::Keep }
/// # }
/// impl Transactional for MySqlManager {
///     async fn begin(&self, conn: &mut mysql_async::Conn) -> Result<(), mysql_async::Error> {
///         conn.query_drop("BEGIN").await
///     }
///     async fn commit(&self, conn: &mut mysql_async::Conn) -> Result<(), mysql_async::Error> {
///         conn.query_drop("COMMIT").await
///     }
///     async fn rollback(&self, conn: &mut mysql_async::Conn) -> Result<(), mysql_async::Error> {
///         conn.query_drop("ROLLBACK").await
///     }
/// }
/// ```
pub trait Transactional: Manager {
    /// Start a transaction (`BEGIN`).
    fn begin(
        &self,
        conn: &mut Self::Connection,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Make the transaction's changes permanent (`COMMIT`).
    fn commit(
        &self,
        conn: &mut Self::Connection,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Undo the transaction's changes (`ROLLBACK`).
    fn rollback(
        &self,
        conn: &mut Self::Connection,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}
