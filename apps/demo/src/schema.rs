//! The schema, created or migrated at start-up, from the backend's
//! migrations (`store/mysql.rs`, `store/postgres.rs`). Tables carry a
//! `demo_` prefix so the demo can share a database with other things.

use poolwarden::Pool;

use crate::database::OpenError;
use crate::store::Store;

/// Create or upgrade the schema.
///
/// # Errors
/// No connection, or the server refused a migration.
pub(crate) async fn migrate<B: Store>(pool: &Pool<B>) -> Result<(), OpenError> {
    let mut conn = pool.get().await.map_err(OpenError::Checkout)?;
    conn.label("schema migration");
    let done = B::schema_version(&mut conn)
        .await
        .map_err(OpenError::Schema)?;
    for (i, sql) in B::MIGRATIONS.iter().enumerate().skip(done) {
        B::batch(&mut conn, sql).await.map_err(OpenError::Schema)?;
        B::set_schema_version(&mut conn, i + 1)
            .await
            .map_err(OpenError::Schema)?;
        tracing::info!(version = i + 1, "schema migrated");
    }
    Ok(())
}
