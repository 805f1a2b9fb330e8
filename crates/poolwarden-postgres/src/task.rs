//! The connection task: tokio-postgres's `Connection` does the socket I/O
//! for a `Client` and must be polled for as long as the client lives. The
//! manager spawns it and supervises it: its end (the server closed the
//! socket, an I/O error) shows as `Client::is_closed()` right away, with no
//! round trip, and dropping the connection never leaves the task behind,
//! even when the server no longer answers.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinHandle;

/// How long a dropped connection's task may take to say goodbye
/// (`Terminate`) before it is aborted: a frozen server cannot keep it.
pub(crate) const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// The spawned connection task.
#[derive(Debug)]
pub(crate) struct Task {
    handle: Option<JoinHandle<()>>,
    ended: Arc<AtomicBool>,
}

impl Task {
    /// Spawn `connection` on the current runtime.
    pub(crate) fn spawn<S, T>(connection: tokio_postgres::Connection<S, T>) -> Task
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let ended = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&ended);
        let handle = tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "PostgreSQL connection task ended with an error");
            }
            flag.store(true, Relaxed);
        });
        Task {
            handle: Some(handle),
            ended,
        }
    }

    /// The task has finished: the connection is gone.
    pub(crate) fn has_ended(&self) -> bool {
        self.ended.load(Relaxed)
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        let Some(mut handle) = self.handle.take() else {
            return;
        };
        if handle.is_finished() {
            return;
        }
        // The client is dropped with us: the task sends `Terminate` and
        // ends. Give it CLOSE_GRACE, then abort it.
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    if tokio::time::timeout(CLOSE_GRACE, &mut handle)
                        .await
                        .is_err()
                    {
                        tracing::debug!("PostgreSQL connection task did not end; aborting it");
                        handle.abort();
                    }
                });
            }
            Err(_) => handle.abort(),
        }
    }
}
