//! `/reports`: a slow aggregate run off the request path, the right way
//! (its own connection, labelled with the request that started it, returned
//! as soon as the work is done), and, for the incident replay only, the
//! post-mortem's way (a connection kept long after the work).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use parking_lot::Mutex;
use poolwarden::Bulkhead;
use poolwarden_axum::RequestContext;
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::api::error::ApiError;
use crate::api::input::Id;
use crate::app::AppState;
use crate::settings::ReportSettings;
use crate::store::Store;

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

/// The longest `Retry-After` a refused report is given, in seconds.
const MAX_RETRY_AFTER_SECS: u64 = 60;

/// Report work: a bulkhead (the connections it may hold), a bounded queue
/// (reports accepted and not finished) and bounded, expiring results.
pub(crate) struct Reports {
    next: AtomicU64,
    /// How long recent reports took from acceptance to their result, in
    /// milliseconds (a moving average; 0 before the first): what a refused
    /// client is told to wait, since a report accepted now would take about
    /// as long. A fixed 1 s had 2,000 refused clients come back ~1,500
    /// times a second (BENCHMARKS.md, "A truthful `Retry-After`").
    turnaround_ms: AtomicU64,
    /// Caps the pool's connections report work may hold.
    pub(crate) bulkhead: Bulkhead,
    /// One permit per accepted, unfinished report.
    queue: Arc<Semaphore>,
    queue_size: usize,
    results: Mutex<Results>,
    settings: ReportSettings,
}

/// Reports by id, with the finished ones in the order they finished.
#[derive(Default)]
struct Results {
    all: HashMap<u64, Report>,
    finished: VecDeque<(Instant, u64)>,
}

impl Reports {
    pub(crate) fn new(settings: ReportSettings) -> Self {
        Reports {
            next: AtomicU64::new(0),
            turnaround_ms: AtomicU64::new(0),
            bulkhead: Bulkhead::new("reports", settings.max_connections),
            queue: Arc::new(Semaphore::new(settings.queue)),
            queue_size: settings.queue,
            results: Mutex::default(),
            settings,
        }
    }

    /// Accept a report if the queue has room: its id, its place in the
    /// queue and when it was accepted (for [`Reports::finish`]).
    fn start(&self) -> Result<(u64, OwnedSemaphorePermit, Instant), ApiError> {
        let permit = match self.queue.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                let retry_after = self.retry_after();
                return Err(ApiError::Busy {
                    message: format!(
                        "{} reports are already queued; retry in {retry_after} s",
                        self.queue_size
                    ),
                    retry_after,
                });
            }
            Err(tokio::sync::TryAcquireError::Closed) => {
                return Err(ApiError::Retry(
                    "the service is shutting down; retry on another instance".to_owned(),
                ))
            }
        };
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        self.results.lock().all.insert(id, Report::Pending);
        Ok((id, permit, Instant::now()))
    }

    /// Seconds a refused report should wait: how long recent reports took
    /// from acceptance to result (a full queue drains in about that), at
    /// least 1, at most [`MAX_RETRY_AFTER_SECS`].
    fn retry_after(&self) -> u64 {
        self.turnaround_ms
            .load(Ordering::Relaxed)
            .div_ceil(1000)
            .clamp(1, MAX_RETRY_AFTER_SECS)
    }

    fn finish(&self, id: u64, accepted: Instant, report: Report) {
        let now = Instant::now();
        let took = u64::try_from(now.duration_since(accepted).as_millis()).unwrap_or(u64::MAX);
        // A moving average over about the last 8 reports; the lost update
        // of a concurrent finish costs nothing but one sample.
        let old = self.turnaround_ms.load(Ordering::Relaxed);
        let new = if old == 0 {
            took
        } else {
            old - old / 8 + took / 8
        };
        self.turnaround_ms.store(new.max(1), Ordering::Relaxed);
        let mut r = self.results.lock();
        r.all.insert(id, report);
        r.finished.push_back((now, id));
        // Bounded and expiring: drop the expired, then the oldest beyond
        // `keep` (pending reports are bounded by the queue).
        while let Some(&(at, old)) = r.finished.front() {
            if r.finished.len() > self.settings.keep
                || now.duration_since(at) > self.settings.keep_for
            {
                r.finished.pop_front();
                r.all.remove(&old);
            } else {
                break;
            }
        }
    }

    fn get(&self, id: u64) -> Option<Report> {
        let r = self.results.lock();
        let expired = r
            .finished
            .iter()
            .any(|&(at, i)| i == id && at.elapsed() > self.settings.keep_for);
        if expired {
            return None;
        }
        r.all.get(&id).cloned()
    }

    /// Reports accepted and not finished.
    pub(crate) fn running(&self) -> usize {
        self.queue_size - self.queue.available_permits()
    }

    /// Reports held in memory (pending and finished).
    pub(crate) fn held(&self) -> usize {
        self.results.lock().all.len()
    }

    /// Stop accepting reports and wait (at most `timeout`) for the accepted
    /// ones to finish, so none is dropped by the pool's closing.
    pub(crate) async fn drain(&self, timeout: Duration) -> bool {
        let all = u32::try_from(self.queue_size).unwrap_or(u32::MAX);
        let drained = tokio::time::timeout(timeout, self.queue.acquire_many(all))
            .await
            .is_ok_and(|r| r.is_ok());
        self.queue.close();
        drained
    }
}

/// What a report run produced: the aggregate (slow on purpose: it stands
/// for real reporting work), on a connection of the reports bulkhead. The
/// sum is read as the server's exact decimal text and checked: a total
/// beyond 64 bits fails the report instead of being clamped.
async fn run_report<B: Store>(
    state: &AppState<B>,
    ctx: &RequestContext,
) -> Result<Vec<Totals>, ApiError> {
    let mut conn = state.reports.bulkhead.get(&state.pool).await?;
    conn.label(ctx.label());
    B::pause(&mut conn, 0.2).await?;
    let rows = B::totals(&mut conn).await?;
    drop(conn); // back to the pool, with the work done
    rows.into_iter()
        .map(|row| {
            let amount_cents = row.sum.parse::<i64>().map_err(|_| {
                ApiError::Internal(format!(
                    "account {}: total {} is beyond the 64-bit range",
                    row.account_id, row.sum
                ))
            })?;
            Ok(Totals {
                account_id: row.account_id,
                orders: row.orders,
                amount_cents,
            })
        })
        .collect()
}

/// `POST /reports`: 202 with the report's id; the work runs in the
/// background behind the reports bulkhead. 429 with `Retry-After` when the
/// queue is full, 503 when shutting down.
pub(crate) async fn create<B: Store>(
    ctx: RequestContext,
    State(state): State<AppState<B>>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let (id, permit, accepted) = state.reports.start()?;
    let task_state = state.clone();
    ctx.spawn("totals report", move |ctx| async move {
        let report = match run_report(&task_state, &ctx).await {
            Ok(rows) => Report::Done { rows },
            Err(ApiError::Internal(why)) => Report::Failed {
                message: format!("the report cannot be computed: {why}"),
            },
            Err(e) => {
                if let Some(held_back) =
                    poolwarden_axum::LogLimiter::global().admit("report failed")
                {
                    tracing::warn!(report = id, error = ?e, held_back, "report failed");
                }
                Report::Failed {
                    message: "the report failed; try again later".to_owned(),
                }
            }
        };
        task_state.reports.finish(id, accepted, report);
        drop(permit);
    });
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "id": id, "status_url": format!("/reports/{id}") })),
    ))
}

/// `GET /reports/{id}`: the report; a failed one is a 500 with its reason.
pub(crate) async fn get<B: Store>(
    State(state): State<AppState<B>>,
    Id(id): Id,
) -> Result<Json<Report>, ApiError> {
    match state.reports.get(id) {
        None => Err(ApiError::NotFound("report")),
        Some(Report::Failed { message }) => Err(ApiError::Failed(message)),
        Some(report) => Ok(Json(report)),
    }
}

/// `POST /reports/legacy`: only in the incident replay. The background work
/// keeps its session long after the query, like the service in the
/// post-mortem; the server's `wait_timeout` (`idle_session_timeout` on
/// PostgreSQL) closes it meanwhile.
pub(crate) async fn legacy<B: Store>(
    ctx: RequestContext,
    State(state): State<AppState<B>>,
) -> StatusCode {
    let Some(hold) = state.legacy_hold else {
        return StatusCode::NOT_FOUND;
    };
    let pool = state.pool.clone();
    ctx.spawn("legacy export", move |ctx| async move {
        let Ok(mut conn) = ctx.get(&pool).await else {
            return;
        };
        let _ = B::count_orders(&mut conn).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn reports(queue: usize, keep: usize) -> Reports {
        Reports::new(ReportSettings {
            queue,
            keep,
            keep_for: Duration::from_secs(600),
            ..ReportSettings::default()
        })
    }

    #[tokio::test(start_paused = true)]
    async fn results_are_bounded_and_expire() {
        let r = reports(4, 3);
        for _ in 0..10 {
            let (id, permit, at) = r.start().unwrap();
            r.finish(id, at, Report::Done { rows: Vec::new() });
            drop(permit);
        }
        assert_eq!(r.held(), 3, "only the newest `keep` are kept");
        assert!(r.get(10).is_some() && r.get(7).is_none());
        tokio::time::advance(Duration::from_secs(601)).await;
        assert!(r.get(10).is_none(), "expired");
    }

    #[tokio::test(start_paused = true)]
    async fn the_queue_refuses_when_full_and_shutdown_waits_for_accepted_reports() {
        let r = Arc::new(reports(2, 10));
        let (a, pa, at) = r.start().unwrap();
        let (_b, pb, _) = r.start().unwrap();
        assert!(matches!(r.start(), Err(ApiError::Busy { .. })));
        drop(pb);
        let finisher = tokio::spawn({
            let r = r.clone();
            async move {
                tokio::time::sleep(Duration::from_secs(5)).await;
                r.finish(a, at, Report::Done { rows: Vec::new() });
                drop(pa);
            }
        });
        assert!(
            r.drain(Duration::from_secs(30)).await,
            "waited for report {a}"
        );
        assert!(matches!(r.get(a), Some(Report::Done { .. })));
        assert!(
            matches!(r.start(), Err(ApiError::Retry(_))),
            "closed after draining"
        );
        finisher.await.unwrap();
    }

    fn refused_after(r: &Reports) -> u64 {
        match r.start() {
            Err(ApiError::Busy { retry_after, .. }) => retry_after,
            other => panic!("expected a refusal, got {:?}", other.map(|(id, ..)| id)),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_report_is_told_to_come_back_when_the_queue_has_drained() {
        let r = reports(2, 10);
        let (a, pa, at_a) = r.start().unwrap();
        let (b, pb, at_b) = r.start().unwrap();
        assert_eq!(refused_after(&r), 1, "nothing measured yet: 1 s");
        // Each report took 6.4 s from acceptance to result (a full queue
        // behind a small bulkhead): a refused client is told 7 s, not 1 s.
        tokio::time::advance(Duration::from_millis(6_400)).await;
        r.finish(a, at_a, Report::Done { rows: Vec::new() });
        drop(pa);
        let (_c, _pc, _) = r.start().unwrap();
        assert_eq!(refused_after(&r), 7);
        r.finish(b, at_b, Report::Done { rows: Vec::new() });
        drop(pb);
        // Never beyond the cap, however slow reports get.
        let (d, pd, at_d) = r.start().unwrap();
        tokio::time::advance(Duration::from_secs(3_600)).await;
        r.finish(d, at_d, Report::Done { rows: Vec::new() });
        drop(pd);
        let _full = r.start().unwrap();
        assert_eq!(refused_after(&r), MAX_RETRY_AFTER_SECS);
    }
}
