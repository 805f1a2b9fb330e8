//! Real-server benchmarks of poolwarden-postgres against deadpool-postgres
//! (`Fast`, `Verified`, `Clean`), bb8-postgres, sqlx's `PgPool` and
//! dedicated tokio-postgres connections, on a private PostgreSQL from
//! `poolwarden-testkit`: throughput with round trips per query counted at
//! the protocol level, a cancelled query, and session state left to the
//! next borrower. Prints Markdown.
//!
//! ```text
//! cargo run -p poolwarden-bench-pg --release -- [--quick]
//! ```

mod contenders;
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
