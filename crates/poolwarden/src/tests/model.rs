//! A model of the slot/permit accounting: seeded, deterministic
//! interleavings of checkouts (some cancelled mid-wait or mid-ping),
//! returns (clean, dirty, broken, invalidated), server failures and time
//! passing, with every invariant checked after each step. Paused clock,
//! one thread: each seed is one exact, replayable interleaving.

use std::time::Duration;

use super::script::{Scripted, Step};
use super::{check, pool_with, settle};
use crate::{ErrorClass, PooledConnection, Probe};

async fn run_seed(seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let m = Scripted::default();
    let pool = pool_with(&m, |b| {
        b.max_size(3)
            .max_overflow(1)
            .min_idle(1)
            .validation_timeout(Duration::from_millis(300))
            .reset_timeout(Duration::from_millis(300))
            .checkout_timeout(Duration::from_millis(800))
    });
    let mut held: Vec<PooledConnection<Scripted>> = Vec::new();
    for step in 0..400 {
        match rng.u8(0..10) {
            0..=2 => {
                // A checkout, cancelled if it takes longer than a random
                // bound (mid-wait, mid-ping or mid-connect).
                let bound = Duration::from_millis(rng.u64(0..1000));
                if let Ok(Ok(c)) = tokio::time::timeout(bound, pool.get()).await {
                    held.push(c);
                }
            }
            3..=4 if !held.is_empty() => {
                let i = rng.usize(0..held.len());
                let mut c = held.swap_remove(i);
                match rng.u8(0..6) {
                    0 => c.probe = Probe::NeedsReset,
                    1 => c.probe = Probe::Corrupt,
                    2 => c.probe = Probe::Closed,
                    3 => c.invalidate(),
                    _ => {}
                }
                drop(c);
            }
            5 => {
                let step = match rng.u8(0..4) {
                    0 => Step::Err(ErrorClass::Broken),
                    1 => Step::Slow(Duration::from_millis(500)),
                    2 => Step::Panic,
                    _ => Step::Err(ErrorClass::Disconnect),
                };
                let _ = m.validates([step]);
            }
            6 => {
                let step = match rng.u8(0..3) {
                    0 => Step::Err(ErrorClass::Keep),
                    1 => Step::Slow(Duration::from_millis(50)),
                    _ => Step::Panic,
                };
                let _ = m.connects([step]);
            }
            7 => {
                let _ = m.resets([Step::Slow(Duration::from_millis(rng.u64(0..600)))]);
            }
            _ => tokio::time::advance(Duration::from_millis(rng.u64(0..1500))).await,
        }
        settle().await;
        check(&pool);
        let s = pool.status();
        assert_eq!(
            s.in_use as usize,
            held.len(),
            "seed {seed} step {step}: {s:?}"
        );
        assert!(s.open + s.connecting <= 4, "seed {seed} step {step}: {s:?}");
    }
    drop(held);
    // Background resets and connects finish.
    tokio::time::sleep(Duration::from_secs(2)).await;
    settle().await;
    check(&pool);
    let s = pool.status();
    assert_eq!(
        (s.in_use, s.waiting, s.background, s.connecting),
        (0, 0, 0, 0),
        "seed {seed}: {s:?}"
    );
    assert_eq!(
        s.open as usize,
        m.live(),
        "seed {seed}: every connection accounted for"
    );
    assert!(m.max_live() <= 4, "seed {seed}: max live {}", m.max_live());
}

#[tokio::test(start_paused = true)]
async fn seeded_interleavings_keep_every_invariant() {
    for seed in 0..24 {
        run_seed(seed).await;
    }
}
