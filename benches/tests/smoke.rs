//! Every contender builds, warms to 10 idle connections, and runs a few ops in
//! both modes, in the benchmark's own runtime (so an API change in a pool, or
//! a pool that stops handing connections back, breaks here and not in the
//! middle of a benchmark run).

use std::time::Duration;

use poolwarden_bench::kinds::Kind;
use poolwarden_bench::runner::{self, POOL_SIZE};
use poolwarden_bench::with_contender;

fn smoke<C: poolwarden_bench::contender::Contender>() -> Result<(), String> {
    let rt = runner::runtime();
    let r = rt.block_on(async {
        let (pool, warning) = runner::prepare::<C>(POOL_SIZE).await?;
        if let Some(w) = warning {
            return Err(w);
        }
        for hold in [false, true] {
            runner::run_fixed(&pool, 20, 50, hold, Duration::from_secs(20)).await?;
        }
        Ok(())
    });
    rt.shutdown_timeout(Duration::from_secs(5));
    r
}

#[test]
fn every_contender_runs() {
    for kind in Kind::ALL {
        let r = with_contender!(kind, C => smoke::<C>());
        assert_eq!(r, Ok(()), "{}", kind.name());
    }
}

#[test]
fn fairness_counts_every_task() {
    let r = runner::measure_fairness::<poolwarden_bench::baseline::Baseline>(
        100,
        true,
        Duration::from_millis(50),
    );
    assert_eq!(r.error, None);
    assert_eq!(r.counts.len(), 100);
}
