//! The maintenance task: one per pool, every `maintenance_interval`. It
//! reports leaks, retires idle connections past their limits, pings idle
//! connections due for keepalive, keeps `min_idle` warm, notices forks and
//! refreshes the metric gauges. It holds only a weak reference: dropping the
//! last pool handle ends it.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Weak};

use crate::clock;
use crate::health::{self, WhileIdle};
use crate::manager::{ErrorClass, Manager};
use crate::observe::InvalidationCause;
use crate::pool::Shared;
use crate::recycle::Working;
use crate::slots::Idle;
use crate::status::CloseReason;

impl<M: Manager> Shared<M> {
    /// Start the maintenance task once, on the first runtime that needs it.
    pub(crate) fn start_maintenance(self: &Arc<Self>) {
        if self.maintenance_started.load(Relaxed) || self.maintenance_started.swap(true, Relaxed) {
            return;
        }
        let weak = Arc::downgrade(self);
        let period = self.cfg.maintenance_interval;
        let started = self.spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(shared) = Weak::upgrade(&weak) else {
                    return;
                };
                if shared.state.lock().closed {
                    return;
                }
                shared.maintain().await;
            }
        });
        if !started {
            self.maintenance_started.store(false, Relaxed);
        }
    }

    /// One maintenance pass.
    pub(crate) async fn maintain(self: &Arc<Self>) {
        self.check_fork();
        let now = self.now_refresh();
        self.scan_leaks(now);
        // Idle connections: retire or ping, one at a time, each taken out of
        // the idle set with its permit so no checkout can claim it meanwhile.
        let mut budget = self.cfg.max_open();
        while budget > 0 {
            budget -= 1;
            let Some((idle, action)) = self.take_idle_needing_work() else {
                break;
            };
            match action {
                WhileIdle::Retire(reason) => self.close_conn(idle, reason),
                WhileIdle::Ping => self.keepalive(idle).await,
                WhileIdle::Keep => self.put_idle(idle),
            }
        }
        let _ = self.plan_connects(None);
        #[cfg(feature = "metrics")]
        self.metrics.gauges(&self.status());
    }

    /// Take the first idle connection that must retire or be pinged.
    fn take_idle_needing_work(&self) -> Option<(Idle<M::Connection>, WhileIdle)> {
        let now = clock::now();
        let generation = self.generation.load(Relaxed);
        let needs_work = |st: &crate::slots::State<M::Connection>| {
            let above_min = st.open > self.cfg.min_idle;
            st.idle.iter().position(|i| {
                let slot = self.slots.get(i.slot);
                health::while_idle(&slot.meta, now, generation, &self.cfg, above_min)
                    != WhileIdle::Keep
            })
        };
        // Cheap look first: most passes find nothing to do.
        needs_work(&self.state.lock())?;
        let permit = self.sem.try_acquire().ok()?;
        let mut st = self.state.lock();
        let Some(index) = needs_work(&st) else {
            drop(st);
            drop(permit); // nothing claimed: the permit goes back
            return None;
        };
        permit.forget();
        let above_min = st.open > self.cfg.min_idle;
        let idle = st.idle.remove(index)?;
        drop(st);
        let action = health::while_idle(
            &self.slots.get(idle.slot).meta,
            now,
            generation,
            &self.cfg,
            above_min,
        );
        Some((idle, action))
    }

    /// Ping an idle connection so the server, proxies and NATs keep it (F3).
    async fn keepalive(self: &Arc<Self>, idle: Idle<M::Connection>) {
        self.counters.validations.fetch_add(1, Relaxed);
        let mut working = Working::new(Arc::clone(self), idle, false);
        let res = {
            let idle = working.idle_mut();
            tokio::time::timeout(
                self.cfg.validation_timeout,
                self.manager.validate(&mut idle.conn),
            )
            .await
        };
        match res {
            Ok(Ok(())) => working.finish_idle(clock::now()),
            Ok(Err(e)) => {
                if self.manager.classify(&e) == ErrorClass::Disconnect {
                    let generation = working.generation();
                    self.invalidate(Some(generation), InvalidationCause::Disconnect);
                }
                working.finish_close(CloseReason::ValidationFailed);
            }
            Err(_) => working.finish_close(CloseReason::ValidationFailed),
        }
    }
}
