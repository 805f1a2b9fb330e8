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
//! While the server's liveness is in question (a sign of life is being
//! asked for, or none came), the cancel requests of connections dropped
//! after an interrupted command wait ([`Verdict::cancel_soon`]): a frozen
//! server's accept queue would hold each of them ahead of the pool's own
//! reconnect, and on resuming it forks a process for each before it gets to
//! that reconnect. They go out when the server answers again (a sign of
//! life, or a connection opened), at most [`MAX_DEFERRED_CANCELS`] of them.
//!
//! Only for a single TCP host or a Unix socket; with several hosts,
//! `hostaddr` or TLS, no sign of life is asked for and only the borrower's
//! own reports reach the pool.
//!
//! [`PgManager::unresponsive_after`]: crate::PgManager::unresponsive_after

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use poolwarden::ServerSignal;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::cancel::CancelTarget;

/// How many cancel requests wait while the server's liveness is in question
/// (see the module docs); beyond that the oldest is given up (best effort,
/// as every cancel request).
pub(crate) const MAX_DEFERRED_CANCELS: usize = 64;

/// A cancel request to send: spawns it.
type SendCancel = Box<dyn FnOnce() + Send>;

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
pub(crate) struct Verdict {
    within: Duration,
    signal: Mutex<ServerSignal>,
    /// A sign of life is being asked for (one at a time).
    asking: AtomicBool,
    /// A silent episode was signalled; the next answer ends it.
    signalled: AtomicBool,
    signals: AtomicU64,
    /// Cancel requests held back while the liveness is in question.
    deferred: Mutex<std::collections::VecDeque<SendCancel>>,
}

impl std::fmt::Debug for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verdict")
            .field("within", &self.within)
            .field("in_question", &self.in_question())
            .field("deferred_cancels", &self.deferred.lock().len())
            .finish_non_exhaustive()
    }
}

impl Verdict {
    pub(crate) fn new(within: Duration) -> Arc<Self> {
        Arc::new(Verdict {
            within,
            signal: Mutex::new(ServerSignal::detached()),
            asking: AtomicBool::new(false),
            signalled: AtomicBool::new(false),
            signals: AtomicU64::new(0),
            deferred: Mutex::new(std::collections::VecDeque::new()),
        })
    }

    /// A sign of life is being asked for, or none came since.
    fn in_question(&self) -> bool {
        self.asking.load(SeqCst) || self.signalled.load(SeqCst)
    }

    /// Send a cancel request (`send` spawns it) now, or, while the server's
    /// liveness is in question, when it answers again (module docs).
    pub(crate) fn cancel_soon(&self, send: impl FnOnce() + Send + 'static) {
        if !self.in_question() {
            return send();
        }
        {
            let mut deferred = self.deferred.lock();
            if deferred.len() >= MAX_DEFERRED_CANCELS {
                deferred.pop_front();
                tracing::debug!(
                    "too many cancel requests waiting for the server; giving up the oldest"
                );
            }
            deferred.push_back(Box::new(send));
        }
        // The question may have been settled meanwhile (it flushed before
        // this push): then nobody else sends it.
        if !self.in_question() {
            self.flush();
        }
    }

    /// The server answered (a sign of life, a connection opened): the
    /// silent episode, if any, is over, and the held-back cancel requests go.
    pub(crate) fn answered(&self) {
        if self.signalled.load(SeqCst) {
            self.signalled.store(false, SeqCst);
        }
        if !self.asking.load(SeqCst) && !self.deferred.lock().is_empty() {
            self.flush();
        }
    }

    fn flush(&self) {
        let deferred = std::mem::take(&mut *self.deferred.lock());
        for send in deferred {
            send();
        }
    }

    /// How many cancel requests wait.
    #[cfg(test)]
    fn deferred(&self) -> usize {
        self.deferred.lock().len()
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
        if self.asking.swap(true, SeqCst) {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            self.asking.store(false, SeqCst);
            return;
        };
        let (this, target) = (Arc::clone(self), target.clone());
        rt.spawn(async move {
            let life = ask(&target, this.within).await;
            if life == Life::Silent && !this.signalled.swap(true, SeqCst) {
                this.asking.store(false, SeqCst);
                let error = ServerNotAnswering {
                    waited: this.within,
                };
                tracing::warn!(%error, "black-holing the pool");
                this.signals.fetch_add(1, Relaxed);
                let signal = this.signal.lock().clone();
                signal.unresponsive(error);
                return;
            }
            this.asking.store(false, SeqCst);
            match life {
                Life::Answered => this.answered(),
                // Refused (down, not frozen): cancel requests fail at once.
                Life::Unknown if !this.signalled.load(SeqCst) => this.flush(),
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

    /// While a sign of life is being asked for, and after none came, a
    /// dropped connection's cancel request waits (the server would queue it
    /// ahead of the pool's reconnect); it goes when the server answers
    /// (here: a connection opened). Without anything in question it goes at
    /// once.
    #[tokio::test]
    async fn cancel_requests_wait_while_the_server_may_be_frozen() {
        use std::sync::atomic::AtomicUsize;

        let sent = Arc::new(AtomicUsize::new(0));
        let send = || {
            let sent = Arc::clone(&sent);
            move || {
                sent.fetch_add(1, SeqCst);
            }
        };
        let verdict = Verdict::new(Duration::from_secs(3600));
        verdict.cancel_soon(send());
        assert_eq!(sent.load(SeqCst), 1, "nothing in question: sent at once");

        // A listener that never answers: the sign of life is asked for
        // until the test ends.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let silent = CancelTarget::Tcp("127.0.0.1".into(), listener.local_addr().unwrap().port());
        verdict.command_timed_out(&silent);
        assert!(verdict.in_question());
        verdict.cancel_soon(send());
        verdict.cancel_soon(send());
        assert_eq!((sent.load(SeqCst), verdict.deferred()), (1, 2), "held back");
        // A connection opened while the question is open: still held (the
        // question settles them).
        verdict.answered();
        assert_eq!((sent.load(SeqCst), verdict.deferred()), (1, 2));

        // No answer came (as after `ask` found it silent): held until one
        // does.
        let frozen = Verdict::new(Duration::from_secs(1));
        frozen.signalled.store(true, SeqCst);
        for _ in 0..MAX_DEFERRED_CANCELS + 3 {
            frozen.cancel_soon(send());
        }
        assert_eq!(frozen.deferred(), MAX_DEFERRED_CANCELS, "bounded");
        assert_eq!(sent.load(SeqCst), 1);
        frozen.answered();
        assert_eq!(
            sent.load(SeqCst),
            1 + MAX_DEFERRED_CANCELS,
            "sent when it answers"
        );
        assert!(!frozen.in_question() && frozen.deferred() == 0);
        frozen.cancel_soon(send());
        assert_eq!(sent.load(SeqCst), 2 + MAX_DEFERRED_CANCELS);
    }
}
