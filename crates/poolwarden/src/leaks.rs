//! Leak detection (F6): checkouts held past `leak_threshold` are reported
//! once, with their source location, label, age and (opt-in) backtrace;
//! holds nearing the server's idle timeout are reported louder, before the
//! server kills the connection.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use crate::clock::Tick;
use crate::manager::Manager;
use crate::observe::Event;
use crate::shared::Shared;
use crate::status::CheckoutInfo;

/// Share of the server's idle timeout at which a hold is reported as near
/// it: at 2/3 of `wait_timeout = 5 s` the warning comes 1.7 s before the
/// server would close an idle connection.
pub const NEAR_SERVER_TIMEOUT: f64 = 2.0 / 3.0;

/// What one scan found.
#[derive(Default)]
pub(crate) struct Found {
    pub(crate) leaks: Vec<(CheckoutInfo, Option<String>)>,
    pub(crate) near_timeout: Vec<CheckoutInfo>,
}

/// The hold after which a checkout is reported as near the server timeout.
pub(crate) fn near_server_timeout(server_idle_timeout: Duration) -> Duration {
    crate::health::scale(server_idle_timeout, NEAR_SERVER_TIMEOUT)
}

impl<M: Manager> Shared<M> {
    /// Scan the live checkouts; report each leak once.
    pub(crate) fn scan_leaks(&self, now: Tick) -> usize {
        // `leak_threshold: None` turns all of leak reporting off.
        let Some(threshold) = self.cfg.leak_threshold else {
            return 0;
        };
        let mut found = Found::default();
        for cell in self.inv.all_slots() {
            let mut slot = cell.lock();
            if slot.record.active {
                let held = now.since(slot.record.since);
                if !slot.record.leak_reported && held >= threshold {
                    slot.record.leak_reported = true;
                    let bt = slot.record.backtrace.as_ref().map(|b| b.to_string());
                    found.leaks.push((slot.info(now), bt));
                }
                if let Some(server) = slot.meta.server_idle_timeout {
                    if !slot.record.near_timeout_reported && held >= near_server_timeout(server) {
                        slot.record.near_timeout_reported = true;
                        found.near_timeout.push(slot.info(now));
                    }
                }
            }
        }
        for (info, backtrace) in &found.leaks {
            self.counters.leaks.fetch_add(1, Relaxed);
            #[cfg(feature = "metrics")]
            self.metrics.leaks.increment(1);
            tracing::warn!(
                pool = %self.cfg.name,
                checkout_id = info.id,
                connection_id = info.connection_id,
                location = %info.location,
                label = info.label.as_deref().unwrap_or(""),
                held_for_secs = info.held_for.as_secs_f64(),
                backtrace = backtrace.as_deref().unwrap_or(""),
                "possible connection leak: checked out at {} {}and held for {:.1}s",
                info.location,
                info.label.as_deref().map(|l| format!("({l}) ")).unwrap_or_default(),
                info.held_for.as_secs_f64(),
            );
            self.emit(Event::Leak { checkout: info });
        }
        for info in &found.near_timeout {
            tracing::error!(
                pool = %self.cfg.name,
                checkout_id = info.id,
                connection_id = info.connection_id,
                location = %info.location,
                label = info.label.as_deref().unwrap_or(""),
                held_for_secs = info.held_for.as_secs_f64(),
                server_idle_timeout_secs = info.server_idle_timeout.map(|d| d.as_secs_f64()),
                "connection held near the server's idle timeout: checked out at {} {}for {:.1}s; if it is idle the server will close it",
                info.location,
                info.label.as_deref().map(|l| format!("({l}) ")).unwrap_or_default(),
                info.held_for.as_secs_f64(),
            );
            self.emit(Event::NearServerTimeout { checkout: info });
        }
        found.leaks.len() + found.near_timeout.len()
    }
}
