//! The maintenance task: one per pool, every `maintenance_interval`. It
//! reports leaks, retires idle connections past their limits, pings idle
//! connections due for keepalive, keeps `min_idle` warm, notices forks and
//! refreshes the metric gauges. It holds only a weak reference: dropping the
//! last pool handle ends it.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Weak};

use crate::clock;
use crate::health::{self, WhileIdle};
use crate::manager::Manager;
use crate::observe::ManagerCall;
use crate::recycle::Held;
use crate::shared::Shared;
use crate::status::CloseReason;

/// Clears `maintenance_running` when the task ends or is dropped (its
/// runtime shut down), so the next checkout starts a new one (defect 4).
struct Running<M: Manager>(Weak<Shared<M>>);

impl<M: Manager> Drop for Running<M> {
    fn drop(&mut self) {
        if let Some(shared) = self.0.upgrade() {
            shared.maintenance_running.store(false, Relaxed);
        }
    }
}

impl<M: Manager> Shared<M> {
    /// Start the maintenance task, on the current runtime, unless one runs.
    pub(crate) fn start_maintenance(self: &Arc<Self>) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.maintenance_running.swap(true, Relaxed) {
            return;
        }
        *self.runtime.lock() = Some(handle.clone());
        let weak = Arc::downgrade(self);
        let running = Running(weak.clone());
        let period = self.cfg.maintenance_interval.min(clock::NO_LIMIT);
        drop(handle.spawn(async move {
            let _running = running;
            loop {
                let Some(shared) = Weak::upgrade(&weak) else {
                    return;
                };
                if shared.inv.is_closed() {
                    return;
                }
                shared.maintain().await;
                drop(shared);
                tokio::time::sleep(period).await;
            }
        }));
    }

    /// One maintenance pass.
    pub(crate) async fn maintain(self: &Arc<Self>) {
        self.check_fork();
        let now = clock::now();
        self.scan_leaks(now);
        // Idle connections: retire or ping, one at a time, each taken out of
        // the idle set (under the pool lock) so no checkout can claim it
        // meanwhile.
        let generation = self.generation.load(Relaxed);
        while let Some((live, action)) = self.inv.take_idle_where(|st, live| {
            let above_min = st.open() > self.cfg.min_idle;
            match health::while_idle(
                &live.slot.lock().meta,
                now,
                generation,
                &self.cfg,
                above_min,
            ) {
                WhileIdle::Keep => None,
                action => Some(action),
            }
        }) {
            let held = Held::counted(self, live, CloseReason::ValidationFailed);
            match action {
                WhileIdle::Retire(reason) => held.close(reason),
                WhileIdle::Ping => self.keepalive(held).await,
                WhileIdle::Keep => held.finish_idle(now),
            }
        }
        let _ = self.plan_connects(None);
        #[cfg(feature = "metrics")]
        self.metrics.gauges(&self.status());
    }

    /// Ping an idle connection so the server, proxies and NATs keep it (F3).
    /// A failure is logged at `warn` and observed (`Event::CallFailed`).
    async fn keepalive(self: &Arc<Self>, mut held: Held<M>) {
        self.counters.validations.fetch_add(1, Relaxed);
        let target = held.target();
        let res = self
            .bounded(
                ManagerCall::Keepalive,
                target,
                self.cfg.validation_timeout,
                self.manager.validate(held.conn_mut()),
            )
            .await;
        match res {
            Ok(()) => {
                self.note_proven();
                held.finish_idle(clock::now());
            }
            Err(_) => held.close(CloseReason::ValidationFailed),
        }
    }
}
