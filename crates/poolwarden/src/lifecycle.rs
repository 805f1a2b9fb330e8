//! Starting and stopping a pool: `warm_up` and `close`.

use crate::error::PoolError;
use crate::manager::Manager;
use crate::pool::Pool;
use crate::status::CloseReason;
use std::sync::Arc;

impl<M: Manager> Pool<M> {
    /// Open connections until `min_idle` (at least one) are idle, now.
    /// Each call tries afresh: after a failure the server may be back.
    ///
    /// # Errors
    /// The failure of this call's own connect attempt: [`PoolError::Fatal`]
    /// for settings the server rejects (F11), [`PoolError::Unavailable`]
    /// otherwise.
    ///
    /// # Cancel safety
    /// Cancel safe: a connect cut short is abandoned and nothing is leaked.
    pub async fn warm_up(&self) -> Result<(), PoolError> {
        let shared = &self.shared;
        shared.start_maintenance();
        let want = shared.cfg.min_idle.max(1);
        loop {
            let notified = shared.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (idle, connecting, allowed, closed) = {
                let st = shared.inv.lock();
                let allowed = shared.connects_allowed(&st);
                (st.idle(), st.connecting(), allowed, st.closed())
            };
            if closed {
                return Err(PoolError::Closed);
            }
            if idle >= want {
                return Ok(());
            }
            if idle + connecting >= want || connecting >= allowed {
                notified.await; // a connect in flight will settle it
                continue;
            }
            let Some(reservation) = shared.reserve() else {
                return Ok(()); // at max_open already
            };
            if let Some(error) = Arc::clone(shared).connect_one(reservation).await {
                return Err(error);
            }
        }
    }

    /// Close the pool: stop handing out connections (waiting and new
    /// checkouts fail with [`PoolError::Closed`]), close idle connections,
    /// then wait up to `close_timeout` for checked-out ones to come back and
    /// close them as they do. At `close_timeout` the manager cuts the
    /// commands still in flight on checked-out connections
    /// ([`Manager::cut_in_flight`](crate::Manager::cut_in_flight)): their
    /// borrowers get the manager's error at once (the pool is not waited
    /// for any longer), and the connections are closed when returned.
    ///
    /// # Cancel safety
    /// Cancel safe: the pool is closed as soon as this is first polled;
    /// dropping the future only stops the waiting for returns.
    pub async fn close(&self) {
        let shared = &self.shared;
        let idle = shared.inv.close();
        shared.wake.notify_waiters();
        for live in idle {
            shared.close_conn(live, CloseReason::PoolClosed, false);
        }
        let deadline =
            crate::clock::deadline_after(tokio::time::Instant::now(), shared.cfg.close_timeout);
        loop {
            let notified = shared.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (open, held) = {
                let st = shared.inv.lock();
                (st.open(), st.in_use())
            };
            if open == 0 {
                return;
            }
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep_until(deadline) => {
                    tracing::warn!(pool = %shared.cfg.name, open, held, "close: connections still checked out after close_timeout; their commands in flight are cut, and they are closed when returned");
                    shared.cut_in_flight();
                    return;
                }
            }
        }
    }
}
