//! `serve`: the API service, with graceful shutdown that drains the pool.
//!
//! The whole shutdown, from the signal to the exit, is bounded by the pool's
//! `close_timeout` (plus [`ANSWER_GRACE`]) even when the database is frozen:
//! open requests, accepted reports and checked-out connections get until
//! then; a request still running then is answered 503 (shutting down) and
//! its connection closed.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;

use poolwarden_mysql::MySqlManager;
use poolwarden_postgres::PgManager;

use crate::api::error::ApiError;
use crate::api::idempotency;
use crate::app::{self, AppState};
use crate::settings::Settings;
use crate::store::{Backend, Store};
use crate::{database, http};

/// How long accepted reports get to finish at shutdown, at most.
const REPORT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the requests cut at the shutdown's deadline get to have their
/// 503 written before their connections are closed.
const ANSWER_GRACE: Duration = Duration::from_millis(200);

/// The shutdown's deadline, once a signal came (`None` until then).
type StopAt = watch::Receiver<Option<Instant>>;

/// Run the service until Ctrl-C, SIGTERM or `run_for` seconds, on the
/// backend the database URL's scheme names.
///
/// Both listeners are bound first (a port in use fails the start before
/// anything touches the database), then the database is reached and the
/// schema migrated, then requests are served, and expired idempotency keys
/// deleted in the background. At shutdown: stop accepting, let open
/// requests finish, let accepted reports finish, close the pool; all of it
/// by one deadline, `close_timeout` after the signal.
pub(crate) async fn run(
    settings: Settings,
    run_for: Option<u64>,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    match database::backend(&settings.database_url)? {
        Backend::MySql => run_on::<MySqlManager>(settings, run_for).await,
        Backend::Postgres => run_on::<PgManager>(settings, run_for).await,
    }
}

async fn run_on<B: Store>(
    settings: Settings,
    run_for: Option<u64>,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let listener = bind(settings.listen, "--listen").await?;
    let admin_listener = bind(settings.admin_listen, "--admin-listen").await?;
    let addr = listener.local_addr()?;
    let admin_addr = admin_listener.local_addr()?;
    if !admin_addr.ip().is_loopback() {
        tracing::warn!("the admin listener {admin_addr} is not a loopback address: /debug/pool and /metrics show request ids, routes and the pool's settings; keep it off public networks");
    }
    // The recorder must exist before the pool registers its metrics.
    let metrics = poolwarden_axum::install_prometheus()
        .map_err(|e| tracing::warn!(error = %e, "metrics disabled"))
        .ok();
    let db = database::open::<B>(
        &settings.database_url,
        settings.url_given,
        settings.pool.clone(),
    )
    .await?;
    let state = AppState::new(db.pool.clone(), settings.reports.clone());
    let reports = state.reports.clone();
    let (stop_tx, stop_rx) = watch::channel(None::<Instant>);
    // Inside the outermost layer: the 503 of a cut request gets the JSON
    // error shape with its request id too.
    let router = app::finish(app::routes(state, &settings.http).layer(
        middleware::from_fn_with_state(stop_rx.clone(), cut_at_shutdown_deadline),
    ));
    let expiry = tokio::spawn(idempotency::expire_until(
        db.pool.clone(),
        settings.idempotency.clone(),
        {
            let rx = stop_rx.clone();
            async move {
                stop_deadline(rx).await;
            }
        },
    ));
    let admin = app::admin_router(db.pool.clone(), metrics);
    tracing::info!(
        "listening on http://{addr} ({} at {}{}); try: curl http://{addr}/accounts ; operators: http://{admin_addr}/debug/pool and /metrics",
        B::SERVER,
        poolwarden::redact::url(&db.url),
        if db.private.is_some() { ", a PRIVATE server whose data is thrown away on exit" } else { "" }
    );
    let close_timeout = db.pool.config().close_timeout;
    let drain_by = |rx: StopAt| async move { stop_deadline(rx).await + ANSWER_GRACE };
    let api = http::serve_draining_by(listener, router, &settings.http, drain_by(stop_rx.clone()));
    let ops = http::serve_draining_by(admin_listener, admin, &settings.http, drain_by(stop_rx));
    let signal = async {
        shutdown(run_for).await;
        let _ = stop_tx.send(Some(Instant::now() + close_timeout));
    };
    let (api, ops, ()) = tokio::join!(api, ops, signal);
    api?;
    ops?;
    let _ = expiry.await;
    let stop_at = (*stop_tx.borrow()).unwrap_or_else(Instant::now);
    tracing::info!(held = reports.held(), "waiting for accepted reports");
    let left = stop_at.saturating_duration_since(Instant::now());
    if !reports.drain(left.min(REPORT_DRAIN_TIMEOUT)).await {
        tracing::warn!("some reports were still running at the shutdown's deadline; they fail with the pool's closing");
    }
    tracing::info!("draining the pool");
    // `close` closes the pool when first polled; the timeout only stops the
    // waiting for connections still checked out.
    if tokio::time::timeout_at(stop_at, db.pool.close())
        .await
        .is_err()
    {
        tracing::warn!(status = ?db.pool.status(), "connections still checked out at the shutdown's deadline ({close_timeout:?} after the signal); exiting");
    }
    tracing::info!(status = ?db.pool.status(), "stopped");
    drop(db);
    Ok(ExitCode::SUCCESS)
}

/// The shutdown's deadline, once it is set; never, if the sender is gone
/// without setting one.
async fn stop_deadline(mut rx: StopAt) -> Instant {
    // The `Ref` is not `Send`: read it out before any other await.
    let at = rx.wait_for(Option::is_some).await.ok().and_then(|at| *at);
    match at {
        Some(at) => at,
        None => std::future::pending().await,
    }
}

/// Middleware: a request still running at the shutdown's deadline is
/// answered 503 (the handler is dropped, its connection closed with the
/// pool), so the process exits on time with an answer to every client.
async fn cut_at_shutdown_deadline(
    State(stop): State<StopAt>,
    req: Request,
    next: Next,
) -> Response {
    let cut = async move { tokio::time::sleep_until(stop_deadline(stop).await).await };
    tokio::select! {
        response = next.run(req) => response,
        () = cut => ApiError::Retry("the service is shutting down; retry the request".to_owned()).into_response(),
    }
}

async fn bind(addr: SocketAddr, flag: &str) -> Result<TcpListener, String> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr} ({flag}): {e}"))
}

/// Resolves on Ctrl-C, SIGTERM, or after `run_for` seconds.
async fn shutdown(run_for: Option<u64>) {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    let timer = async {
        match run_for {
            Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C: shutting down"),
        () = term => tracing::info!("SIGTERM: shutting down"),
        () = timer => tracing::info!("--run-for elapsed: shutting down"),
    }
}
