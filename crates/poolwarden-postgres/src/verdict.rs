//! Telling "a slow statement on a live server" from "the server stopped
//! answering" after a command deadline, and telling the pool.
//!
//! # Implementation Details
//!
//! When a command passes its deadline, the connection (not the borrower)
//! asks the server for a sign of life on a fresh socket: an `SSLRequest`
//! (8 bytes), which the server answers with one byte (`S` or `N`) at once,
//! before any authentication, and which runs nothing (the socket is closed
//! right after; the server does not log a connection that sends nothing
//! more). No answer within [`PgManager::unresponsive_after`]: the server
//! answers neither the command nor a new connection, and the manager
//! black-holes its pool through its [`ServerSignal`] (once per silent
//! episode; the next answer ends it). A refused connect says the server is
//! down, not silent: the pool sees that on its own connects. Not the cancel
//! request: that one is sent only before the connection's next command, so
//! that a late cancel cannot hit it (`conn.rs`).
//!
//! Only for a single TCP host or a Unix socket; with several hosts,
//! `hostaddr` or TLS, no sign of life is asked for and only the borrower's
//! own reports reach the pool.
//!
//! [`PgManager::unresponsive_after`]: crate::PgManager::unresponsive_after

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use poolwarden::ServerSignal;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::cancel::CancelTarget;

/// `SSLRequest`: length 8, code 80877103.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xD2, 0x16, 0x2F];

/// The server answered neither a command (within its deadline) nor a sign
/// of life on a fresh socket (within `unresponsive_after`): it stopped
/// answering while its sockets stay open (frozen, a black-holed route, a
/// hung proxy). The source of the pool's
/// [`PoolError::Unresponsive`](poolwarden::PoolError::Unresponsive) then.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the PostgreSQL server stopped answering: a command passed its deadline and a fresh \
     connection got no answer within {} ms either; check the server and the network path to it",
    waited.as_millis()
)]
#[non_exhaustive]
pub struct ServerNotAnswering {
    /// How long the fresh connection waited.
    pub waited: Duration,
}

/// What a sign-of-life request found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Life {
    /// An answer (or a clean close): the server is alive.
    Answered,
    /// Nothing within the bound.
    Silent,
    /// Refused or failed at once, or not askable for this target.
    Unknown,
}

/// One per manager, shared with its connections.
#[derive(Debug)]
pub(crate) struct Verdict {
    within: Duration,
    signal: Mutex<ServerSignal>,
    /// A sign of life is being asked for (one at a time).
    asking: AtomicBool,
    /// A silent episode was signalled; the next answer ends it.
    signalled: AtomicBool,
    signals: AtomicU64,
}

impl Verdict {
    pub(crate) fn new(within: Duration) -> Arc<Self> {
        Arc::new(Verdict {
            within,
            signal: Mutex::new(ServerSignal::detached()),
            asking: AtomicBool::new(false),
            signalled: AtomicBool::new(false),
            signals: AtomicU64::new(0),
        })
    }

    pub(crate) fn within(&self) -> Duration {
        self.within
    }

    pub(crate) fn attach(&self, signal: ServerSignal) {
        *self.signal.lock() = signal;
    }

    /// Times the manager found the server silent and told its pool.
    pub(crate) fn signals(&self) -> u64 {
        self.signals.load(Relaxed)
    }

    /// A command to `target` passed its deadline: ask for a sign of life
    /// in the background (never waits). At most one request at a time.
    pub(crate) fn command_timed_out(self: &Arc<Self>, target: &CancelTarget) {
        if self.asking.swap(true, Relaxed) {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            self.asking.store(false, Relaxed);
            return;
        };
        let (this, target) = (Arc::clone(self), target.clone());
        rt.spawn(async move {
            let life = ask(&target, this.within).await;
            this.asking.store(false, Relaxed);
            match life {
                Life::Answered => this.signalled.store(false, Relaxed),
                Life::Silent if !this.signalled.swap(true, Relaxed) => {
                    let error = ServerNotAnswering {
                        waited: this.within,
                    };
                    tracing::warn!(%error, "black-holing the pool");
                    this.signals.fetch_add(1, Relaxed);
                    let signal = this.signal.lock().clone();
                    signal.unresponsive(error);
                }
                Life::Silent | Life::Unknown => {}
            }
        });
    }
}

/// Ask `target` for a sign of life, waiting at most `within`.
async fn ask(target: &CancelTarget, within: Duration) -> Life {
    let attempt = async {
        match target {
            CancelTarget::Tcp(host, port) => {
                match tokio::net::TcpStream::connect((host.as_str(), *port)).await {
                    Ok(mut s) => exchange(&mut s).await,
                    Err(_) => Life::Unknown,
                }
            }
            CancelTarget::Unix(path) => match tokio::net::UnixStream::connect(path).await {
                Ok(mut s) => exchange(&mut s).await,
                Err(_) => Life::Unknown,
            },
            _ => Life::Unknown,
        }
    };
    tokio::time::timeout(within, attempt)
        .await
        .unwrap_or(Life::Silent)
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) -> Life {
    if stream.write_all(&SSL_REQUEST).await.is_err() {
        return Life::Unknown;
    }
    let mut byte = [0u8; 1];
    match stream.read(&mut byte).await {
        Ok(_) => Life::Answered,
        Err(_) => Life::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_listener_that_never_answers_is_silent_and_a_refusal_is_not() {
        // Accepted by the kernel (backlog), never read: like SIGSTOP.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let silent = CancelTarget::Tcp("127.0.0.1".into(), port);
        assert_eq!(ask(&silent, Duration::from_millis(200)).await, Life::Silent);
        drop(listener);
        let refused = CancelTarget::Tcp("127.0.0.1".into(), port);
        assert_eq!(
            ask(&refused, Duration::from_secs(5)).await,
            Life::Unknown,
            "refused: down, not silent"
        );
        assert_eq!(
            ask(&CancelTarget::Driver, Duration::from_secs(5)).await,
            Life::Unknown
        );
    }
}
