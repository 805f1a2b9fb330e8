//! [`Store`] on MariaDB/MySQL: the schema, the queries, and the table from
//! MySQL error codes to [`Kind`]s.

use std::time::Duration;

use mysql_async::prelude::*;
use poolwarden::ErrorClass;
use poolwarden_mysql::{
    classify_error, codes, CommandCut, CommandTimeout, DeadlineSource, MySqlConn, MySqlManager,
    OutcomeUnknown,
};

use super::{Account, Backend, Kind, Order, QueryError, Result, Store, StoredAnswer, TotalsRow};

/// The demo's session settings: strict SQL mode, so the server refuses an
/// out-of-range or truncated value instead of clamping it with a warning.
pub(crate) const INIT_SQL: &[&str] = &[
    "SET SESSION sql_mode = 'STRICT_ALL_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ZERO_DATE,NO_ZERO_IN_DATE,NO_ENGINE_SUBSTITUTION'",
];

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
    // The expiry of idempotency keys deletes the oldest first.
    "CREATE INDEX IF NOT EXISTS demo_idempotency_created ON demo_idempotency (created_at)",
];

/// MySQL's error codes, as the API sees them: the one table.
///
/// The order matters: an [`OutcomeUnknown`] (a commit whose answer was
/// lost) wraps the error that came instead of the answer, a
/// [`CommandTimeout`], a [`CommandCut`] or a lost connection, and
/// `CommandTimeout::find`/`CommandCut::find` see through it; the ambiguity
/// is what the client must hear, so it is asked first.
pub(crate) fn kind(e: &mysql_async::Error) -> Kind {
    if OutcomeUnknown::find(e).is_some() {
        return Kind::OutcomeUnknown;
    }
    if let Some(t) = CommandTimeout::find(e) {
        return Kind::NoAnswer {
            request_deadline: t.source == DeadlineSource::CheckoutDeadline,
        };
    }
    if CommandCut::find(e).is_some() {
        return Kind::Unavailable;
    }
    if let mysql_async::Error::Server(s) = e {
        match s.code {
            codes::NO_REFERENCED_ROW => return Kind::MissingReference,
            codes::ROW_IS_REFERENCED => return Kind::Referenced,
            codes::DUP_ENTRY => return Kind::Duplicate,
            codes::DEADLOCK | codes::LOCK_WAIT_TIMEOUT => return Kind::Conflict,
            codes::DATA_OUT_OF_RANGE | codes::ARITHMETIC_OUT_OF_RANGE => return Kind::OutOfRange,
            _ => {}
        }
    }
    // I/O errors, a closed connection, and the server's "shutting down",
    // "connection killed", "aborted connection" family.
    if classify_error(e) == ErrorClass::Disconnect {
        return Kind::Unavailable;
    }
    Kind::Other
}

impl From<mysql_async::Error> for QueryError {
    fn from(e: mysql_async::Error) -> Self {
        QueryError {
            kind: kind(&e),
            detail: detail(&e),
        }
    }
}

/// The text for the log: the error, and for an [`OutcomeUnknown`] the
/// error that came instead of the answer (its `Display` leaves it to
/// `source()`).
fn detail(e: &mysql_async::Error) -> String {
    match OutcomeUnknown::find(e) {
        Some(o) => format!("{e} (what came instead: {})", o.cause()),
        None => e.to_string(),
    }
}

type AccountRow = (u64, String, String, String);
type OrderRow = (u64, u64, i64, String, String);
const ACCOUNT: &str = "id, name, email, CAST(created_at AS CHAR)";
const ORDER: &str = "id, account_id, amount_cents, status, CAST(created_at AS CHAR)";

fn account((id, name, email, created_at): AccountRow) -> Account {
    Account {
        id,
        name,
        email,
        created_at,
    }
}

fn order((id, account_id, amount_cents, status, created_at): OrderRow) -> Order {
    Order {
        id,
        account_id,
        amount_cents,
        status,
        created_at,
    }
}

impl Store for MySqlManager {
    const BACKEND: Backend = Backend::MySql;
    const SERVER: &'static str = "MariaDB";
    const MIGRATIONS: &'static [&'static str] = MIGRATIONS;

    fn commit_error(e: &mysql_async::Error) -> QueryError {
        // NOTE: `poolwarden-mysql` already wraps a `COMMIT` whose answer was
        // lost in an `OutcomeUnknown`.
        QueryError {
            kind: kind(e),
            detail: detail(e),
        }
    }

    fn manager(url: &str) -> std::result::Result<Self, String> {
        Ok(MySqlManager::from_url(url)
            .map_err(|e| e.to_string())?
            .init_sql(INIT_SQL.iter().copied()))
    }

    fn address(url: &str) -> std::result::Result<(String, u16), String> {
        let opts = mysql_async::Opts::from_url(url).map_err(|e| e.to_string())?;
        Ok((opts.ip_or_hostname().to_owned(), opts.tcp_port()))
    }

    fn ignore_server_timeout(self) -> Self {
        self.discover_server_timeout(false)
    }

    async fn batch<'c>(c: &'c mut MySqlConn, sql: &'c str) -> Result<()> {
        Ok(c.query_drop(sql).await?)
    }

    async fn schema_version(c: &mut MySqlConn) -> Result<usize> {
        c.query_drop("CREATE TABLE IF NOT EXISTS demo_schema_version (version INT NOT NULL)")
            .await?;
        let done: Option<i64> = c
            .query_first("SELECT MAX(version) FROM demo_schema_version")
            .await?
            .flatten();
        Ok(usize::try_from(done.unwrap_or(0)).unwrap_or(0))
    }

    async fn set_schema_version(c: &mut MySqlConn, version: usize) -> Result<()> {
        Ok(c.exec_drop(
            "INSERT INTO demo_schema_version (version) VALUES (?)",
            (version,),
        )
        .await?)
    }

    async fn account(c: &mut MySqlConn, id: u64) -> Result<Option<Account>> {
        let row: Option<AccountRow> = c
            .exec_first(
                format!("SELECT {ACCOUNT} FROM demo_accounts WHERE id = ?"),
                (id,),
            )
            .await?;
        Ok(row.map(account))
    }

    async fn accounts(c: &mut MySqlConn, after: u64, limit: u32) -> Result<Vec<Account>> {
        let rows: Vec<AccountRow> = c
            .exec(
                format!("SELECT {ACCOUNT} FROM demo_accounts WHERE id > ? ORDER BY id LIMIT ?"),
                (after, limit),
            )
            .await?;
        Ok(rows.into_iter().map(account).collect())
    }

    async fn insert_account<'c>(
        c: &'c mut MySqlConn,
        name: &'c str,
        email: &'c str,
    ) -> Result<u64> {
        c.exec_drop(
            "INSERT INTO demo_accounts (name, email) VALUES (?, ?)",
            (name, email),
        )
        .await?;
        Ok(c.last_insert_id().unwrap_or_default())
    }

    async fn update_account<'c>(
        c: &'c mut MySqlConn,
        id: u64,
        name: Option<&'c str>,
        email: Option<&'c str>,
    ) -> Result<()> {
        Ok(c.exec_drop(
            "UPDATE demo_accounts SET name = COALESCE(?, name), email = COALESCE(?, email) WHERE id = ?",
            (name, email, id),
        )
        .await?)
    }

    async fn delete_account(c: &mut MySqlConn, id: u64) -> Result<bool> {
        c.exec_drop("DELETE FROM demo_accounts WHERE id = ?", (id,))
            .await?;
        Ok(c.affected_rows() > 0)
    }

    async fn order(c: &mut MySqlConn, id: u64) -> Result<Option<Order>> {
        let row: Option<OrderRow> = c
            .exec_first(
                format!("SELECT {ORDER} FROM demo_orders WHERE id = ?"),
                (id,),
            )
            .await?;
        Ok(row.map(order))
    }

    async fn orders(c: &mut MySqlConn, account: u64, after: u64, limit: u32) -> Result<Vec<Order>> {
        let rows: Vec<OrderRow> = c
            .exec(
                format!("SELECT {ORDER} FROM demo_orders WHERE account_id = ? AND id > ? ORDER BY id LIMIT ?"),
                (account, after, limit),
            )
            .await?;
        Ok(rows.into_iter().map(order).collect())
    }

    async fn insert_order<'c>(
        c: &'c mut MySqlConn,
        account: u64,
        amount_cents: i64,
        status: &'c str,
    ) -> Result<u64> {
        c.exec_drop(
            "INSERT INTO demo_orders (account_id, amount_cents, status) VALUES (?, ?, ?)",
            (account, amount_cents, status),
        )
        .await?;
        Ok(c.last_insert_id().unwrap_or_default())
    }

    async fn update_order<'c>(c: &'c mut MySqlConn, id: u64, status: &'c str) -> Result<()> {
        Ok(c.exec_drop(
            "UPDATE demo_orders SET status = ? WHERE id = ?",
            (status, id),
        )
        .await?)
    }

    async fn delete_order(c: &mut MySqlConn, id: u64) -> Result<bool> {
        c.exec_drop("DELETE FROM demo_orders WHERE id = ?", (id,))
            .await?;
        Ok(c.affected_rows() > 0)
    }

    async fn count_orders(c: &mut MySqlConn) -> Result<u64> {
        let n: Option<u64> = c.query_first("SELECT COUNT(*) FROM demo_orders").await?;
        Ok(n.unwrap_or(0))
    }

    async fn claim_key<'c>(
        c: &'c mut MySqlConn,
        key: &'c str,
        fingerprint: &'c str,
    ) -> Result<bool> {
        // NOTE: a duplicate key error leaves a MySQL transaction usable.
        let res = c
            .exec_drop(
                "INSERT INTO demo_idempotency (idem_key, fingerprint) VALUES (?, ?)",
                (key, fingerprint),
            )
            .await;
        match res {
            Ok(()) => Ok(true),
            Err(e) if kind(&e) == Kind::Duplicate => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    async fn stored_answer<'c>(c: &'c mut MySqlConn, key: &'c str) -> Result<Option<StoredAnswer>> {
        let row: Option<(String, Option<u16>, Option<String>)> = c
            .exec_first(
                "SELECT fingerprint, status, body FROM demo_idempotency WHERE idem_key = ?",
                (key,),
            )
            .await?;
        Ok(row.map(|(fingerprint, status, body)| StoredAnswer {
            fingerprint,
            status,
            body,
        }))
    }

    async fn record_answer<'c>(
        c: &'c mut MySqlConn,
        key: &'c str,
        status: u16,
        body: &'c str,
    ) -> Result<()> {
        Ok(c.exec_drop(
            "UPDATE demo_idempotency SET status = ?, body = ? WHERE idem_key = ?",
            (status, body, key),
        )
        .await?)
    }

    async fn expire_keys(c: &mut MySqlConn, older_than: Duration, batch: u32) -> Result<u64> {
        c.exec_drop(
            "DELETE FROM demo_idempotency \
             WHERE created_at < NOW(3) - INTERVAL ? MICROSECOND ORDER BY created_at LIMIT ?",
            (older_than.as_micros() as u64, batch),
        )
        .await?;
        Ok(c.affected_rows())
    }

    async fn pause(c: &mut MySqlConn, seconds: f64) -> Result<()> {
        Ok(c.exec_drop("DO SLEEP(?)", (seconds,)).await?)
    }

    async fn totals(c: &mut MySqlConn) -> Result<Vec<TotalsRow>> {
        let rows: Vec<(u64, u64, String)> = c
            .query(
                "SELECT account_id, COUNT(*), CAST(SUM(amount_cents) AS CHAR) \
                 FROM demo_orders GROUP BY account_id ORDER BY SUM(amount_cents) DESC LIMIT 100",
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|(account_id, orders, sum)| TotalsRow {
                account_id,
                orders,
                sum,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use mysql_async::{DriverError, IoError, ServerError};

    use super::*;

    fn server(code: u16) -> mysql_async::Error {
        mysql_async::Error::Server(ServerError {
            code,
            message: format!("error {code}"),
            state: "HY000".to_owned(),
        })
    }

    /// The errors with a public constructor; `CommandCut`, `CommandTimeout`
    /// and `OutcomeUnknown` have none, so `tests/lost.rs` makes them with a
    /// real server (a killed session, a closed pool, a passed deadline).
    #[test]
    fn lost_connections_are_unavailable() {
        let lost = [
            mysql_async::Error::Io(IoError::Io(io::Error::from(io::ErrorKind::ConnectionReset))),
            mysql_async::Error::Io(IoError::Io(io::Error::from(io::ErrorKind::UnexpectedEof))),
            mysql_async::Error::Driver(DriverError::ConnectionClosed),
            // shutdown, aborted connection, connection killed, session
            // killed, closed for inactivity
            server(codes::SERVER_SHUTDOWN),
            server(codes::ABORTING_CONNECTION),
            server(codes::CONNECTION_KILLED),
            server(codes::SESSION_WAS_KILLED),
            server(codes::CLIENT_INTERACTION_TIMEOUT),
        ];
        for e in &lost {
            assert_eq!(kind(e), Kind::Unavailable, "{e}");
        }
    }

    #[test]
    fn the_server_codes_keep_their_kinds() {
        for (code, want) in [
            (codes::NO_REFERENCED_ROW, Kind::MissingReference),
            (codes::ROW_IS_REFERENCED, Kind::Referenced),
            (codes::DUP_ENTRY, Kind::Duplicate),
            (codes::DEADLOCK, Kind::Conflict),
            (codes::LOCK_WAIT_TIMEOUT, Kind::Conflict),
            (codes::DATA_OUT_OF_RANGE, Kind::OutOfRange),
            (codes::ARITHMETIC_OUT_OF_RANGE, Kind::OutOfRange),
            (1064, Kind::Other),
            (codes::QUERY_INTERRUPTED, Kind::Other),
        ] {
            assert_eq!(kind(&server(code)), want, "{code}");
        }
    }
}
