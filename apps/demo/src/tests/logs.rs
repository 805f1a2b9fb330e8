//! Logs during an outage: one line per cause per interval, not one per
//! failed request; error chains that do not repeat themselves.

use std::sync::{Arc, Mutex};

use axum::http::{Method, StatusCode};
use poolwarden::Pool;
use poolwarden_mysql::MySqlManager;

use super::common::call;
use crate::app::{self, AppState};
use crate::settings::{HttpSettings, ReportSettings};

#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn an_outage_logs_one_line_per_cause_not_one_per_request() {
    let sink = Sink::default();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer({
            let sink = sink.clone();
            move || sink.clone()
        })
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let manager = MySqlManager::from_url(&format!("mysql://root@127.0.0.1:{port}/none")).unwrap();
    let pool = Pool::builder(manager).build().unwrap();
    let app = app::router(
        AppState::new(pool, ReportSettings::default()),
        &HttpSettings::default(),
    );
    for _ in 0..50 {
        let (s, v) = call(&app, Method::GET, "/accounts", None).await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    }
    let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    let errors = text.lines().filter(|l| l.contains("ERROR")).count();
    assert!(
        errors <= 2,
        "{errors} error lines for 50 failed requests:\n{text}"
    );
}

#[test]
fn error_chains_do_not_repeat() {
    #[derive(Debug, thiserror::Error)]
    #[error("cannot create the schema: {0}")]
    struct Repeats(#[source] std::io::Error);
    let e = Repeats(std::io::Error::other("table is full"));
    let shown = crate::error_chain(&e);
    assert_eq!(shown.matches("table is full").count(), 1, "{shown}");
}
