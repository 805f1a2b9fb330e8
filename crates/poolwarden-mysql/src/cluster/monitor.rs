//! The health checks: one task per node, each with its own connection,
//! reading the node's state every `check_interval` (or at once when woken
//! by an error on a pooled connection), each reading bounded by
//! `check_timeout` so a frozen node is noticed as "unreachable" within
//! `check_interval + check_timeout`.
//!
//! The tasks hold the manager weakly and end when it is dropped.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use mysql_async::{Conn, Opts};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::manager::Shared;
use super::reading::{self, Reading};

/// Start one task per node on the current runtime.
pub(crate) fn spawn(shared: &Arc<Shared>) -> Vec<JoinHandle<()>> {
    (0..shared.nodes.nodes.len())
        .map(|i| {
            let weak = Arc::downgrade(shared);
            let kick = Arc::clone(&shared.kick);
            let opts = shared.nodes.nodes[i].manager.opts().clone();
            tokio::spawn(watch(weak, kick, opts, i))
        })
        .collect()
}

async fn watch(shared: Weak<Shared>, kick: Arc<Notify>, opts: Opts, i: usize) {
    let mut conn: Option<Conn> = None;
    loop {
        let Some((interval, timeout)) = shared
            .upgrade()
            .map(|s| (s.settings.check_interval, s.settings.check_timeout))
        else {
            return;
        };
        // Registered before the check, so a wake-up during it is not lost.
        let kicked = kick.notified();
        tokio::pin!(kicked);
        kicked.as_mut().enable();
        let result = check(&mut conn, &opts, timeout).await;
        let Some(s) = shared.upgrade() else {
            return;
        };
        let now = Instant::now();
        s.nodes.observe(i, result, now);
        s.nodes.rebalance(now);
        s.nodes.record(i);
        drop(s);
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = kicked => {}
        }
    }
}

/// One reading on the monitor's connection, opened if needed. On any
/// failure the connection is dropped (its state is unknown) and reopened
/// next time.
async fn check(conn: &mut Option<Conn>, opts: &Opts, timeout: Duration) -> Result<Reading, String> {
    let attempt = async {
        if conn.is_none() {
            *conn = Some(Conn::new(opts.clone()).await?);
        }
        match conn.as_mut() {
            Some(c) => reading::read_reading(c).await,
            None => unreachable!("opened above"),
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(reading)) => Ok(reading),
        Ok(Err(e)) => {
            *conn = None;
            Err(e.to_string())
        }
        Err(_) => {
            *conn = None;
            Err(format!("no answer within {timeout:?}"))
        }
    }
}
