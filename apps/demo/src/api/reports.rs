//! `/reports`: a slow aggregate run off the request path, the right way
//! (its own connection, labelled with the request that started it, returned
//! as soon as the work is done), and, for the incident replay only, the
//! post-mortem's way (a connection kept long after the work).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use mysql_async::prelude::*;
use parking_lot::Mutex;
use poolwarden_axum::RequestContext;
use serde::Serialize;

use crate::api::error::ApiError;
use crate::api::input::Id;
use crate::app::AppState;

/// One account's totals.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Totals {
    account_id: u64,
    orders: u64,
    amount_cents: i64,
}

/// A report's state.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub(crate) enum Report {
    Pending,
    Done { rows: Vec<Totals> },
    Failed { message: String },
}

/// Reports kept in memory.
#[derive(Debug, Default)]
pub(crate) struct Reports {
    next: AtomicU64,
    all: Mutex<HashMap<u64, Report>>,
}

impl Reports {
    fn start(&self) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        self.all.lock().insert(id, Report::Pending);
        id
    }

    fn finish(&self, id: u64, report: Report) {
        self.all.lock().insert(id, report);
    }
}

/// The aggregate (slow on purpose: it stands for real reporting work).
const TOTALS: &str = "SELECT account_id, COUNT(*), CAST(SUM(amount_cents) AS SIGNED) \
     FROM demo_orders GROUP BY account_id ORDER BY 3 DESC LIMIT 100";

/// `POST /reports`: 202 with the report's id; the work runs in the
/// background on a connection of its own.
pub(crate) async fn create(
    ctx: RequestContext,
    State(state): State<AppState>,
) -> (StatusCode, Json<serde_json::Value>) {
    let id = state.reports.start();
    let pool = state.pool.clone();
    let reports = state.reports.clone();
    ctx.spawn("totals report", move |ctx| async move {
        let result = async {
            let mut conn = ctx.get(&pool).await?;
            conn.query_drop("DO SLEEP(0.2)").await?;
            let rows: Vec<(u64, u64, i64)> = conn.query(TOTALS).await?;
            Ok::<_, ApiError>(rows)
            // `conn` goes back to the pool here, with the work done.
        }
        .await;
        let report = match result {
            Ok(rows) => Report::Done {
                rows: rows
                    .into_iter()
                    .map(|(account_id, orders, amount_cents)| Totals {
                        account_id,
                        orders,
                        amount_cents,
                    })
                    .collect(),
            },
            Err(e) => {
                tracing::warn!(report = id, error = ?e, "report failed");
                Report::Failed {
                    message: "the report failed; try again later".to_owned(),
                }
            }
        };
        reports.finish(id, report);
    });
    (
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "id": id, "status_url": format!("/reports/{id}") })),
    )
}

/// `GET /reports/{id}`
pub(crate) async fn get(
    State(state): State<AppState>,
    Id(id): Id,
) -> Result<Json<Report>, ApiError> {
    let report = state.reports.all.lock().get(&id).cloned();
    report.map(Json).ok_or(ApiError::NotFound("report"))
}

/// `POST /reports/legacy`: only in the incident replay. The background work
/// keeps its session long after the query, like the service in the
/// post-mortem; the server's `wait_timeout` closes it meanwhile.
pub(crate) async fn legacy(ctx: RequestContext, State(state): State<AppState>) -> StatusCode {
    let Some(hold) = state.legacy_hold else {
        return StatusCode::NOT_FOUND;
    };
    let pool = state.pool.clone();
    ctx.spawn("legacy export", move |ctx| async move {
        let Ok(mut conn) = ctx.get(&pool).await else {
            return;
        };
        let _ = conn.query_drop("SELECT COUNT(*) FROM demo_orders").await;
        // The bug: the session is kept after the work is done.
        tokio::time::sleep(hold).await;
        drop(conn);
    });
    StatusCode::ACCEPTED
}

/// The hold of the legacy work, for the replay's settings.
pub(crate) fn legacy_hold(wait_timeout: Duration) -> Duration {
    wait_timeout + Duration::from_secs(2)
}
