//! `/accounts`: create, list (keyset pagination), get, update, delete.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use poolwarden_axum::{Db, Tx};
use poolwarden_mysql::{MySqlConn, MySqlManager};
use serde::{Deserialize, Serialize};

use crate::api::error::{is_duplicate, ApiError};
use crate::api::idempotency;
use crate::api::input::{self, Body, Id, Params};

/// An account as the API shows it.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Account {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) email: String,
    pub(crate) created_at: String,
}

type Row = (u64, String, String, String);

const COLUMNS: &str = "id, name, email, CAST(created_at AS CHAR)";

impl From<Row> for Account {
    fn from((id, name, email, created_at): Row) -> Self {
        Account {
            id,
            name,
            email,
            created_at,
        }
    }
}

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

pub(crate) async fn fetch(db: &mut MySqlConn, id: u64) -> Result<Account, ApiError> {
    let row: Option<Row> = db
        .exec_first(
            format!("SELECT {COLUMNS} FROM demo_accounts WHERE id = ?"),
            (id,),
        )
        .await?;
    row.map(Account::from).ok_or(ApiError::NotFound("account"))
}

/// `POST /accounts` (in a transaction; `Idempotency-Key` honoured)
pub(crate) async fn create(
    key: idempotency::Key,
    mut tx: Tx<MySqlManager>,
    Body(new): Body<NewAccount>,
) -> Result<Response, ApiError> {
    let name = input::text("name", &new.name, 100)?;
    let email = input::email(&new.email)?;
    let conn: &mut MySqlConn = &mut tx;
    if let Some(k) = &key.0 {
        let fingerprint = serde_json::json!(["POST /accounts", name, email]).to_string();
        if let Some(replay) = idempotency::claim(conn, k, &fingerprint).await? {
            return Ok(replay.into_response());
        }
    }
    let res = conn
        .exec_drop(
            "INSERT INTO demo_accounts (name, email) VALUES (?, ?)",
            (&name, &email),
        )
        .await;
    match res {
        Ok(()) => {}
        Err(e) if is_duplicate(&e) => {
            return Err(ApiError::Conflict(format!(
                "an account with email {email:?} already exists"
            )))
        }
        Err(e) => return Err(e.into()),
    }
    let id = conn.last_insert_id().unwrap_or_default();
    let body = serde_json::to_value(fetch(conn, id).await?)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    if let Some(k) = &key.0 {
        idempotency::record(conn, k, StatusCode::CREATED, &body).await?;
    }
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `GET /accounts?limit=&after=`
pub(crate) async fn list(
    Params(page): Params<Page>,
    mut db: Db<MySqlManager>,
) -> Result<Json<Listing<Account>>, ApiError> {
    let limit = input::limit(page.limit)?;
    let rows: Vec<Row> = db
        .exec(
            format!("SELECT {COLUMNS} FROM demo_accounts WHERE id > ? ORDER BY id LIMIT ?"),
            (page.after.unwrap_or(0), limit + 1),
        )
        .await?;
    Ok(Json(paginate(
        rows.into_iter().map(Account::from).collect(),
        limit,
        |a| a.id,
    )))
}

/// Keep `limit` items; `next_after` when there was one more.
pub(crate) fn paginate<T>(mut items: Vec<T>, limit: u32, id: impl Fn(&T) -> u64) -> Listing<T> {
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next_after = if more { items.last().map(id) } else { None };
    Listing { items, next_after }
}

/// `GET /accounts/{id}`
pub(crate) async fn get(Id(id): Id, mut db: Db<MySqlManager>) -> Result<Json<Account>, ApiError> {
    Ok(Json(fetch(&mut db, id).await?))
}

/// `PATCH /accounts/{id}`
pub(crate) async fn update(
    Id(id): Id,
    mut db: Db<MySqlManager>,
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
    fetch(&mut db, id).await?;
    let res = db
        .exec_drop(
            "UPDATE demo_accounts SET name = COALESCE(?, name), email = COALESCE(?, email) WHERE id = ?",
            (name, email.clone(), id),
        )
        .await;
    match res {
        Ok(()) => {}
        Err(e) if is_duplicate(&e) => {
            return Err(ApiError::Conflict(format!(
                "an account with email {:?} already exists",
                email.unwrap_or_default()
            )))
        }
        Err(e) => return Err(e.into()),
    }
    Ok(Json(fetch(&mut db, id).await?))
}

/// `DELETE /accounts/{id}` (its orders go with it).
pub(crate) async fn delete(Id(id): Id, mut db: Db<MySqlManager>) -> Result<StatusCode, ApiError> {
    db.exec_drop("DELETE FROM demo_accounts WHERE id = ?", (id,))
        .await?;
    if db.affected_rows() == 0 {
        return Err(ApiError::NotFound("account"));
    }
    Ok(StatusCode::NO_CONTENT)
}
