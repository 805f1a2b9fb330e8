//! [`Transactional`] for [`MySqlManager`]: what `poolwarden-axum`'s `Tx` and
//! `TxLayer` need.

use mysql_async::prelude::Queryable;
use poolwarden::Transactional;

use crate::conn::MySqlConn;
use crate::manager::MySqlManager;

/// `BEGIN`, `COMMIT` and `ROLLBACK` as plain text statements through the
/// tracked connection, so the manager's probe sees the open transaction: a
/// `Tx` dropped before it finished is rolled back by the pool's reset (or
/// the connection is closed), never handed to the next borrower.
impl Transactional for MySqlManager {
    async fn begin(&self, conn: &mut MySqlConn) -> Result<(), mysql_async::Error> {
        conn.query_drop("BEGIN").await
    }

    async fn commit(&self, conn: &mut MySqlConn) -> Result<(), mysql_async::Error> {
        conn.query_drop("COMMIT").await
    }

    async fn rollback(&self, conn: &mut MySqlConn) -> Result<(), mysql_async::Error> {
        conn.query_drop("ROLLBACK").await
    }
}
