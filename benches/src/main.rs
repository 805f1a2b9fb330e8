//! Real-server benchmarks of poolwarden against other Rust pools (sqlx,
//! mysql_async's own pool, deadpool, bb8) on a private MariaDB: throughput,
//! restarts, server timeouts, killed connections, cancellation, leaks and
//! scaling. See `BENCHMARKS.md` at the workspace root for the results and
//! `src/real/` for the scenarios.
//!
//! ```text
//! cargo run -p poolwarden-bench --release -- [--quick] [--scenario N] [--out BENCHMARKS.md]
//! ```

mod real;

fn main() -> std::process::ExitCode {
    real::run::main()
}
