//! Real-server benchmarks of poolwarden-postgres against deadpool-postgres
//! (`Fast`, `Verified`, `Clean`), bb8-postgres, sqlx's `PgPool` and
//! dedicated tokio-postgres connections, on a private PostgreSQL from
//! `poolwarden-testkit`: throughput with round trips per query counted at
//! the protocol level, a cancelled query, session state left to the next
//! borrower, one connection slot left, a frozen server (SIGSTOP),
//! `idle_session_timeout` expiry and a restart under load. Prints Markdown;
//! a full run (not `--quick`) also draws `benches/charts/pg_throughput.svg`.
//!
//! ```text
//! cargo run -p poolwarden-bench-pg --release -- [--quick] [--scenario throughput|cancel|leaks|slot|sigstop|idle|restart]...
//! ```

mod contenders;
mod faults;
mod freeze;
mod proxy;
mod scenarios;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(scenarios::run(quick));
}
