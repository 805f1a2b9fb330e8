//! `serve`: the API service, with graceful shutdown that drains the pool.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::app::{self, AppState};
use crate::settings::Settings;
use crate::{database, http};

/// How long accepted reports get to finish at shutdown.
const REPORT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Run the service until Ctrl-C, SIGTERM or `run_for` seconds.
///
/// Both listeners are bound first (a port in use fails the start before
/// anything touches the database), then the database is reached and the
/// schema migrated, then requests are served. At shutdown: stop accepting,
/// let open requests finish, let accepted reports finish, close the pool.
pub(crate) async fn run(
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
    let db = database::open(
        &settings.database_url,
        settings.url_given,
        settings.pool.clone(),
    )
    .await?;
    let state = AppState::new(db.pool.clone(), settings.reports.clone());
    let reports = state.reports.clone();
    let router = app::router(state, &settings.http);
    let admin = app::admin_router(db.pool.clone(), metrics);
    tracing::info!(
        "listening on http://{addr} (database {}{}); try: curl http://{addr}/accounts ; operators: http://{admin_addr}/debug/pool and /metrics",
        poolwarden::redact::url(&db.url),
        if db.private.is_some() { ", a PRIVATE server whose data is thrown away on exit" } else { "" }
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let api = http::serve(listener, router, &settings.http, stopped(stop_rx.clone()));
    let ops = http::serve(admin_listener, admin, &settings.http, stopped(stop_rx));
    let signal = async {
        shutdown(run_for).await;
        let _ = stop_tx.send(true);
    };
    let (api, ops, ()) = tokio::join!(api, ops, signal);
    api?;
    ops?;
    tracing::info!(held = reports.held(), "waiting for accepted reports");
    if !reports.drain(REPORT_DRAIN_TIMEOUT).await {
        tracing::warn!("some reports were still running after {REPORT_DRAIN_TIMEOUT:?}; they fail with the pool's closing");
    }
    tracing::info!("draining the pool");
    db.pool.close().await;
    tracing::info!(status = ?db.pool.status(), "stopped");
    drop(db);
    Ok(ExitCode::SUCCESS)
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
