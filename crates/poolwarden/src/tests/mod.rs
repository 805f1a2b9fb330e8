//! Unit tests with a scripted manager and a paused clock.

mod accounting;
mod checkout;
mod connect;
mod contract;
mod defects;
mod health;
mod leaks;
mod model;
mod return_path;
mod script;
mod signal;
mod waiters;

use std::sync::Arc;
use std::time::Duration;

use crate::{Builder, Pool};
use script::{Recorder, Scripted};

type TestPool = Pool<Scripted>;

fn pool_with(m: &Scripted, f: impl FnOnce(Builder<Scripted>) -> Builder<Scripted>) -> TestPool {
    f(Pool::builder(m.clone())
        .max_size(2)
        .checkout_timeout(Duration::from_secs(10)))
    .build()
    .expect("valid config")
}

fn observed(
    m: &Scripted,
    f: impl FnOnce(Builder<Scripted>) -> Builder<Scripted>,
) -> (TestPool, Arc<Recorder>) {
    let rec = Arc::new(Recorder::default());
    let pool = pool_with(m, |b| f(b.observer(rec.clone())));
    (pool, rec)
}

/// Check the accounting invariants.
fn check(pool: &TestPool) {
    pool.shared.inv.debug_check();
}

/// Let spawned background work (connects, resets) run to completion.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}
