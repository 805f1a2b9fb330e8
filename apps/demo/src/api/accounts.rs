//! `/accounts`: create, list (keyset pagination), get, update, delete.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use poolwarden_axum::{Db, Tx};
use serde::{Deserialize, Serialize};

use crate::api::error::ApiError;
use crate::api::idempotency;
use crate::api::input::{self, Body, Id, Params};
use crate::store::{Account, Kind, Store};

/// `POST /accounts` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewAccount {
    name: String,
    email: String,
}

/// `PATCH /accounts/{id}` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AccountPatch {
    name: Option<String>,
    email: Option<String>,
}

/// `GET /accounts` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Page {
    limit: Option<u32>,
    /// Return accounts with an id above this one.
    after: Option<u64>,
}

/// A page of results.
#[derive(Debug, Serialize)]
pub(crate) struct Listing<T> {
    pub(crate) items: Vec<T>,
    /// Pass as `after` to get the next page; absent on the last page.
    pub(crate) next_after: Option<u64>,
}

/// The account, or 404.
pub(crate) async fn fetch<B: Store>(db: &mut B::Connection, id: u64) -> Result<Account, ApiError> {
    B::account(db, id)
        .await?
        .ok_or(ApiError::NotFound("account"))
}

/// Commit the request's transaction now, before the answer is made,
/// instead of leaving it to `TxLayer`: a failed commit then answers what
/// it means (`api/error.rs`), above all a commit whose answer was lost,
/// which may have been applied (`TxLayer` answers every failed commit
/// "nothing was saved").
///
/// # Errors
/// The commit's error, as its [`Kind`](crate::store::Kind) says.
///
/// # Cancel safety
/// Not cancel safe: dropped mid-commit, the outcome is unknown (the
/// connection is discarded by the pool).
pub(crate) async fn commit<B: Store>(tx: Tx<B>) -> Result<(), ApiError> {
    tx.commit()
        .await
        .map_err(|e| ApiError::from(B::commit_error(&e)))
}

fn taken(email: &str) -> ApiError {
    ApiError::Conflict(format!("an account with email {email:?} already exists"))
}

/// `POST /accounts` (in a transaction; `Idempotency-Key` honoured)
pub(crate) async fn create<B: Store>(
    key: idempotency::Key,
    mut tx: Tx<B>,
    Body(new): Body<NewAccount>,
) -> Result<Response, ApiError> {
    let name = input::text("name", &new.name, 100)?;
    let email = input::email(&new.email)?;
    let conn: &mut B::Connection = &mut tx;
    if let Some(k) = &key.0 {
        let fingerprint = serde_json::json!(["POST /accounts", name, email]).to_string();
        if let Some(replay) = idempotency::claim::<B>(conn, k, &fingerprint).await? {
            return Ok(replay.into_response());
        }
    }
    let id = match B::insert_account(conn, &name, &email).await {
        Ok(id) => id,
        Err(e) if e.kind == Kind::Duplicate => return Err(taken(&email)),
        Err(e) => return Err(e.into()),
    };
    let body = serde_json::to_value(fetch::<B>(conn, id).await?)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    if let Some(k) = &key.0 {
        idempotency::record::<B>(conn, k, StatusCode::CREATED, &body).await?;
    }
    commit(tx).await?;
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `GET /accounts?limit=&after=`
pub(crate) async fn list<B: Store>(
    Params(page): Params<Page>,
    mut db: Db<B>,
) -> Result<Json<Listing<Account>>, ApiError> {
    let limit = input::limit(page.limit)?;
    let rows = B::accounts(&mut db, page.after.unwrap_or(0), limit + 1).await?;
    Ok(Json(paginate(rows, limit, |a| a.id)))
}

/// Keep `limit` items; `next_after` when there was one more.
pub(crate) fn paginate<T>(mut items: Vec<T>, limit: u32, id: impl Fn(&T) -> u64) -> Listing<T> {
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next_after = if more { items.last().map(id) } else { None };
    Listing { items, next_after }
}

/// `GET /accounts/{id}`
pub(crate) async fn get<B: Store>(Id(id): Id, mut db: Db<B>) -> Result<Json<Account>, ApiError> {
    Ok(Json(fetch::<B>(&mut db, id).await?))
}

/// `PATCH /accounts/{id}`
pub(crate) async fn update<B: Store>(
    Id(id): Id,
    mut db: Db<B>,
    Body(patch): Body<AccountPatch>,
) -> Result<Json<Account>, ApiError> {
    if patch.name.is_none() && patch.email.is_none() {
        return Err(ApiError::Invalid("give `name`, `email` or both".to_owned()));
    }
    let name = patch
        .name
        .as_deref()
        .map(|n| input::text("name", n, 100))
        .transpose()?;
    let email = patch.email.as_deref().map(input::email).transpose()?;
    fetch::<B>(&mut db, id).await?;
    match B::update_account(&mut db, id, name.as_deref(), email.as_deref()).await {
        Ok(()) => {}
        Err(e) if e.kind == Kind::Duplicate => {
            return Err(taken(email.as_deref().unwrap_or_default()))
        }
        Err(e) => return Err(e.into()),
    }
    Ok(Json(fetch::<B>(&mut db, id).await?))
}

/// `DELETE /accounts/{id}` (its orders go with it).
pub(crate) async fn delete<B: Store>(Id(id): Id, mut db: Db<B>) -> Result<StatusCode, ApiError> {
    if B::delete_account(&mut db, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("account"))
    }
}
