//! [`Transactional`] for [`PgManager`]: what `poolwarden-axum`'s `Tx` and
//! `TxLayer` need.

use poolwarden::Transactional;

use crate::conn::PgConn;
use crate::error::Error;
use crate::manager::PgManager;

/// `BEGIN`, `COMMIT` and `ROLLBACK` as simple queries through the tracked
/// connection, so the probe sees the open transaction: a `Tx` dropped
/// before it finished is rolled back by the pool's reset, never handed to
/// the next borrower. Each is bounded by the connection's deadline.
impl Transactional for PgManager {
    async fn begin(&self, conn: &mut PgConn) -> Result<(), Error> {
        conn.batch_execute("BEGIN").await
    }

    async fn commit(&self, conn: &mut PgConn) -> Result<(), Error> {
        conn.batch_execute("COMMIT").await
    }

    async fn rollback(&self, conn: &mut PgConn) -> Result<(), Error> {
        conn.batch_execute("ROLLBACK").await
    }
}
