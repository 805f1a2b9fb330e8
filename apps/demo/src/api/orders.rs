//! Orders of an account: create, list, get, update status, delete.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use poolwarden_axum::{Db, Tx};
use serde::Deserialize;

use crate::api::accounts::{self, paginate, Listing};
use crate::api::error::ApiError;
use crate::api::idempotency;
use crate::api::input::{self, Body, Id, Params};
use crate::store::{Order, Store};

/// The statuses an order can have.
const STATUSES: &[&str] = &["new", "paid", "shipped", "cancelled"];

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

async fn fetch<B: Store>(db: &mut B::Connection, id: u64) -> Result<Order, ApiError> {
    B::order(db, id).await?.ok_or(ApiError::NotFound("order"))
}

/// `POST /accounts/{id}/orders` (in a transaction; `Idempotency-Key`
/// honoured). An account deleted meanwhile is a 404 (the foreign key's
/// error, mapped in `error.rs`), never a 500.
pub(crate) async fn create<B: Store>(
    key: idempotency::Key,
    Id(account): Id,
    mut tx: Tx<B>,
    Body(new): Body<NewOrder>,
) -> Result<Response, ApiError> {
    if new.amount_cents <= 0 {
        return Err(ApiError::Invalid(format!(
            "`amount_cents` must be a positive number of cents, got {}",
            new.amount_cents
        )));
    }
    let status = status(new.status.as_deref().unwrap_or("new"))?;
    let conn: &mut B::Connection = &mut tx;
    if let Some(k) = &key.0 {
        let fingerprint = serde_json::json!([
            "POST /accounts/{id}/orders",
            account,
            new.amount_cents,
            status
        ])
        .to_string();
        if let Some(replay) = idempotency::claim::<B>(conn, k, &fingerprint).await? {
            return Ok(replay.into_response());
        }
    }
    accounts::fetch::<B>(conn, account).await?;
    let id = B::insert_order(conn, account, new.amount_cents, &status).await?;
    let body = serde_json::to_value(fetch::<B>(conn, id).await?)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    if let Some(k) = &key.0 {
        idempotency::record::<B>(conn, k, StatusCode::CREATED, &body).await?;
    }
    accounts::commit(tx).await?;
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `GET /accounts/{id}/orders?limit=&after=`
pub(crate) async fn list<B: Store>(
    Id(account): Id,
    Params(page): Params<Page>,
    mut db: Db<B>,
) -> Result<Json<Listing<Order>>, ApiError> {
    let limit = input::limit(page.limit)?;
    accounts::fetch::<B>(&mut db, account).await?;
    let rows = B::orders(&mut db, account, page.after.unwrap_or(0), limit + 1).await?;
    Ok(Json(paginate(rows, limit, |o| o.id)))
}

/// `GET /orders/{id}`
pub(crate) async fn get<B: Store>(Id(id): Id, mut db: Db<B>) -> Result<Json<Order>, ApiError> {
    Ok(Json(fetch::<B>(&mut db, id).await?))
}

/// `PATCH /orders/{id}`
pub(crate) async fn update<B: Store>(
    Id(id): Id,
    mut db: Db<B>,
    Body(patch): Body<OrderPatch>,
) -> Result<Json<Order>, ApiError> {
    let status = status(&patch.status)?;
    fetch::<B>(&mut db, id).await?;
    B::update_order(&mut db, id, &status).await?;
    Ok(Json(fetch::<B>(&mut db, id).await?))
}

/// `DELETE /orders/{id}`
pub(crate) async fn delete<B: Store>(Id(id): Id, mut db: Db<B>) -> Result<StatusCode, ApiError> {
    if B::delete_order(&mut db, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("order"))
    }
}
