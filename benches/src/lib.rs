//! Micro-benchmarks of poolwarden against other Rust connection pools.
//!
//! See `benches/README.md` for the method. The binaries live in `src/bin/`:
//! `micro` (throughput, fairness, and the allocation figures from `allocs`)
//! and `allocs` (heap allocations, run under a counting global allocator).

pub mod conn;
pub mod contender;
pub mod kinds;
pub mod report;
pub mod runner;

pub mod baseline;
pub mod bb8_pool;
pub mod deadpool_pool;
pub mod mobc_pool;
pub mod poolwarden_pool;
pub mod r2d2_pool;
