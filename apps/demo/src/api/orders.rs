//! Orders of an account: create, list, get, update status, delete.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use poolwarden_axum::{Db, Tx};
use poolwarden_mysql::{MySqlConn, MySqlManager};
use serde::{Deserialize, Serialize};

use crate::api::accounts::{self, paginate, Listing};
use crate::api::error::ApiError;
use crate::api::idempotency;
use crate::api::input::{self, Body, Id, Params};

/// The statuses an order can have.
const STATUSES: &[&str] = &["new", "paid", "shipped", "cancelled"];

/// An order as the API shows it.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Order {
    pub(crate) id: u64,
    pub(crate) account_id: u64,
    pub(crate) amount_cents: i64,
    pub(crate) status: String,
    pub(crate) created_at: String,
}

type Row = (u64, u64, i64, String, String);

const COLUMNS: &str = "id, account_id, amount_cents, status, CAST(created_at AS CHAR)";

impl From<Row> for Order {
    fn from((id, account_id, amount_cents, status, created_at): Row) -> Self {
        Order {
            id,
            account_id,
            amount_cents,
            status,
            created_at,
        }
    }
}

/// `POST /accounts/{id}/orders` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewOrder {
    amount_cents: i64,
    status: Option<String>,
}

/// `PATCH /orders/{id}` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OrderPatch {
    status: String,
}

/// `GET /accounts/{id}/orders` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Page {
    limit: Option<u32>,
    after: Option<u64>,
}

fn status(value: &str) -> Result<String, ApiError> {
    if STATUSES.contains(&value) {
        Ok(value.to_owned())
    } else {
        Err(ApiError::Invalid(format!(
            "`status` must be one of {STATUSES:?}, got {value:?}"
        )))
    }
}

async fn fetch(db: &mut MySqlConn, id: u64) -> Result<Order, ApiError> {
    let row: Option<Row> = db
        .exec_first(
            format!("SELECT {COLUMNS} FROM demo_orders WHERE id = ?"),
            (id,),
        )
        .await?;
    row.map(Order::from).ok_or(ApiError::NotFound("order"))
}

/// `POST /accounts/{id}/orders` (in a transaction; `Idempotency-Key`
/// honoured). An account deleted meanwhile is a 404 (the foreign key's
/// error, mapped in `error.rs`), never a 500.
pub(crate) async fn create(
    key: idempotency::Key,
    Id(account): Id,
    mut tx: Tx<MySqlManager>,
    Body(new): Body<NewOrder>,
) -> Result<Response, ApiError> {
    if new.amount_cents <= 0 {
        return Err(ApiError::Invalid(format!(
            "`amount_cents` must be a positive number of cents, got {}",
            new.amount_cents
        )));
    }
    let status = status(new.status.as_deref().unwrap_or("new"))?;
    let conn: &mut MySqlConn = &mut tx;
    if let Some(k) = &key.0 {
        let fingerprint = serde_json::json!([
            "POST /accounts/{id}/orders",
            account,
            new.amount_cents,
            status
        ])
        .to_string();
        if let Some(replay) = idempotency::claim(conn, k, &fingerprint).await? {
            return Ok(replay.into_response());
        }
    }
    accounts::fetch(conn, account).await?;
    conn.exec_drop(
        "INSERT INTO demo_orders (account_id, amount_cents, status) VALUES (?, ?, ?)",
        (account, new.amount_cents, status),
    )
    .await?;
    let id = conn.last_insert_id().unwrap_or_default();
    let body = serde_json::to_value(fetch(conn, id).await?)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    if let Some(k) = &key.0 {
        idempotency::record(conn, k, StatusCode::CREATED, &body).await?;
    }
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `GET /accounts/{id}/orders?limit=&after=`
pub(crate) async fn list(
    Id(account): Id,
    Params(page): Params<Page>,
    mut db: Db<MySqlManager>,
) -> Result<Json<Listing<Order>>, ApiError> {
    let limit = input::limit(page.limit)?;
    accounts::fetch(&mut db, account).await?;
    let rows: Vec<Row> = db
        .exec(
            format!(
                "SELECT {COLUMNS} FROM demo_orders WHERE account_id = ? AND id > ? ORDER BY id LIMIT ?"
            ),
            (account, page.after.unwrap_or(0), limit + 1),
        )
        .await?;
    Ok(Json(paginate(
        rows.into_iter().map(Order::from).collect(),
        limit,
        |o| o.id,
    )))
}

/// `GET /orders/{id}`
pub(crate) async fn get(Id(id): Id, mut db: Db<MySqlManager>) -> Result<Json<Order>, ApiError> {
    Ok(Json(fetch(&mut db, id).await?))
}

/// `PATCH /orders/{id}`
pub(crate) async fn update(
    Id(id): Id,
    mut db: Db<MySqlManager>,
    Body(patch): Body<OrderPatch>,
) -> Result<Json<Order>, ApiError> {
    let status = status(&patch.status)?;
    fetch(&mut db, id).await?;
    db.exec_drop(
        "UPDATE demo_orders SET status = ? WHERE id = ?",
        (status, id),
    )
    .await?;
    Ok(Json(fetch(&mut db, id).await?))
}

/// `DELETE /orders/{id}`
pub(crate) async fn delete(Id(id): Id, mut db: Db<MySqlManager>) -> Result<StatusCode, ApiError> {
    db.exec_drop("DELETE FROM demo_orders WHERE id = ?", (id,))
        .await?;
    if db.affected_rows() == 0 {
        return Err(ApiError::NotFound("order"));
    }
    Ok(StatusCode::NO_CONTENT)
}
