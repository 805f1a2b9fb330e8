//! The schema, created or migrated at start-up. Tables carry a `demo_`
//! prefix so the demo can share a database with other things.

use mysql_async::prelude::*;

use crate::database::{DbError, DemoPool};

/// Each migration, in order; `demo_schema_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS demo_accounts (
        id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        name VARCHAR(100) NOT NULL,
        email VARCHAR(255) NOT NULL,
        created_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
        UNIQUE KEY demo_accounts_email (email)
    ) ENGINE=InnoDB",
    "CREATE TABLE IF NOT EXISTS demo_orders (
        id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        account_id BIGINT NOT NULL,
        amount_cents BIGINT NOT NULL,
        status VARCHAR(20) NOT NULL,
        created_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
        KEY demo_orders_account (account_id),
        CONSTRAINT demo_orders_account_fk FOREIGN KEY (account_id)
            REFERENCES demo_accounts (id) ON DELETE CASCADE
    ) ENGINE=InnoDB",
    "CREATE TABLE IF NOT EXISTS demo_report_runs (
        id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        kind VARCHAR(40) NOT NULL,
        started_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
    ) ENGINE=InnoDB",
    "CREATE TABLE IF NOT EXISTS demo_idempotency (
        idem_key VARCHAR(100) NOT NULL PRIMARY KEY,
        fingerprint TEXT NOT NULL,
        status SMALLINT UNSIGNED NULL,
        body MEDIUMTEXT NULL,
        created_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
    ) ENGINE=InnoDB",
];

/// The demo's session settings: strict SQL mode, so the server refuses an
/// out-of-range or truncated value instead of clamping it with a warning.
pub(crate) const INIT_SQL: &[&str] = &[
    "SET SESSION sql_mode = 'STRICT_ALL_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ZERO_DATE,NO_ZERO_IN_DATE,NO_ENGINE_SUBSTITUTION'",
];

/// Create or upgrade the schema.
pub(crate) async fn migrate(pool: &DemoPool) -> Result<(), DbError> {
    let mut conn = pool.get().await.map_err(DbError::Checkout)?;
    conn.label("schema migration");
    conn.query_drop("CREATE TABLE IF NOT EXISTS demo_schema_version (version INT NOT NULL)")
        .await
        .map_err(DbError::Schema)?;
    let done: Option<i64> = conn
        .query_first("SELECT MAX(version) FROM demo_schema_version")
        .await
        .map_err(DbError::Schema)?
        .flatten();
    let done = usize::try_from(done.unwrap_or(0)).unwrap_or(0);
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(done) {
        conn.query_drop(*sql).await.map_err(DbError::Schema)?;
        conn.exec_drop(
            "INSERT INTO demo_schema_version (version) VALUES (?)",
            (i + 1,),
        )
        .await
        .map_err(DbError::Schema)?;
        tracing::info!(version = i + 1, "schema migrated");
    }
    Ok(())
}
