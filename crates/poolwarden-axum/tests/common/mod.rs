//! A fake manager that records BEGIN/COMMIT/ROLLBACK/RESET, log capture and
//! request helpers shared by the integration tests.
#![allow(dead_code)]

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use http::Request;
use poolwarden::Transactional;
use poolwarden::{ErrorClass, Manager, Pool, Probe};
use tracing_subscriber::fmt::MakeWriter;

#[derive(Debug)]
pub(crate) struct FakeError(pub(crate) &'static str);

impl std::fmt::Display for FakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "fake error: {}", self.0)
    }
}

impl std::error::Error for FakeError {}

#[derive(Debug)]
pub(crate) struct FakeConn {
    pub(crate) id: u64,
    pub(crate) in_tx: bool,
}

#[derive(Default)]
pub(crate) struct FakeState {
    log: Mutex<Vec<String>>,
    pub(crate) fail_commit: AtomicBool,
    /// The commit's answer is lost: the connection breaks while committing.
    pub(crate) lose_commit: AtomicBool,
    next_id: AtomicU64,
}

/// A manager whose connections record the statements they run.
#[derive(Clone, Default)]
pub(crate) struct Fake(pub(crate) Arc<FakeState>);

impl Fake {
    pub(crate) fn log(&self) -> Vec<String> {
        self.0.log.lock().unwrap().clone()
    }

    fn record(&self, what: &str, conn: &FakeConn) {
        self.0
            .log
            .lock()
            .unwrap()
            .push(format!("{what} #{}", conn.id));
    }
}

/// The error of a commit whose answer was lost.
const LOST: &str = "connection reset while committing";

impl Manager for Fake {
    type Connection = FakeConn;
    type Error = FakeError;

    async fn connect(&self) -> Result<FakeConn, FakeError> {
        Ok(FakeConn {
            id: self.0.next_id.fetch_add(1, SeqCst) + 1,
            in_tx: false,
        })
    }

    async fn validate(&self, _conn: &mut FakeConn) -> Result<(), FakeError> {
        Ok(())
    }

    fn probe(&self, conn: &mut FakeConn) -> Probe {
        if conn.in_tx {
            Probe::NeedsReset
        } else {
            Probe::Clean
        }
    }

    async fn reset(&self, conn: &mut FakeConn) -> Result<(), FakeError> {
        self.record("RESET", conn);
        conn.in_tx = false;
        Ok(())
    }

    fn classify(&self, error: &FakeError) -> ErrorClass {
        if error.0 == LOST {
            ErrorClass::Disconnect
        } else {
            ErrorClass::Keep
        }
    }
}

impl Transactional for Fake {
    async fn begin(&self, conn: &mut FakeConn) -> Result<(), FakeError> {
        self.record("BEGIN", conn);
        conn.in_tx = true;
        Ok(())
    }

    async fn commit(&self, conn: &mut FakeConn) -> Result<(), FakeError> {
        if self.0.lose_commit.load(SeqCst) {
            self.record("COMMIT lost", conn);
            return Err(FakeError(LOST));
        }
        if self.0.fail_commit.load(SeqCst) {
            self.record("COMMIT failed", conn);
            return Err(FakeError("deadlock found when trying to get lock"));
        }
        self.record("COMMIT", conn);
        conn.in_tx = false;
        Ok(())
    }

    async fn rollback(&self, conn: &mut FakeConn) -> Result<(), FakeError> {
        self.record("ROLLBACK", conn);
        conn.in_tx = false;
        Ok(())
    }
}

/// A pool of `max_size` fake connections with a short checkout timeout.
pub(crate) fn pool(fake: &Fake, max_size: u32) -> Pool<Fake> {
    Pool::builder(fake.clone())
        .name("test")
        .max_size(max_size)
        .checkout_timeout(Duration::from_millis(150))
        .build()
        .unwrap()
}

pub(crate) fn request(method: &str, uri: &str, request_id: Option<&str>) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(uri);
    if let Some(id) = request_id {
        b = b.header("x-request-id", id);
    }
    b.body(Body::empty()).unwrap()
}

pub(crate) async fn body_text(response: Response) -> String {
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

pub(crate) async fn body_json(response: Response) -> serde_json::Value {
    serde_json::from_str(&body_text(response).await).unwrap()
}

/// Wait (up to a second) until `cond` holds.
pub(crate) async fn eventually(mut cond: impl FnMut() -> bool) {
    for _ in 0..200 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(cond(), "condition not met within a second");
}

/// Log lines captured from `tracing` on this thread.
#[derive(Clone, Default)]
pub(crate) struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    /// Capture this thread's logs until the guard drops.
    pub(crate) fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(logs.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .finish();
        let guard = tracing::subscriber::set_default(subscriber);
        (logs, guard)
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

pub(crate) struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Logs {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> LogWriter {
        LogWriter(Arc::clone(&self.0))
    }
}
