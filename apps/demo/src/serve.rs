//! `serve`: the API service, with graceful shutdown that drains the pool.

use std::process::ExitCode;
use std::time::Duration;

use crate::app::{self, AppState};
use crate::database;
use crate::settings::Settings;

/// Run the service until Ctrl-C, SIGTERM or `run_for` seconds.
pub(crate) async fn run(
    settings: Settings,
    run_for: Option<u64>,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    // The recorder must exist before the pool registers its metrics.
    let metrics = poolwarden_axum::install_prometheus()
        .map_err(|e| tracing::warn!(error = %e, "metrics disabled"))
        .ok();
    let db = database::open(&settings.database_url, settings.pool.clone()).await?;
    let state = AppState::new(db.pool.clone());
    let router = app::router(state, metrics);
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", settings.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(
        "listening on http://{addr} (database {}{}); try: curl http://{addr}/accounts ; operators: http://{addr}/debug/pool",
        redact(&db.url),
        if db.private.is_some() { ", a private server started for this run" } else { "" }
    );
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown(run_for))
        .await?;
    tracing::info!("draining the pool");
    db.pool.close().await;
    tracing::info!(status = ?db.pool.status(), "stopped");
    drop(db);
    Ok(ExitCode::SUCCESS)
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

/// A URL without its password.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redact_hides_passwords_only() {
        assert_eq!(
            super::redact("mysql://u:secret@h:1/d"),
            "mysql://u:***@h:1/d"
        );
        assert_eq!(super::redact("mysql://root@h:1/d"), "mysql://root@h:1/d");
    }
}
