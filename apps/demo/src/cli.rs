//! Command line, environment and config file.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// The default database: the machine's MariaDB.
pub(crate) const DEFAULT_DATABASE_URL: &str = "mysql://root@127.0.0.1:3306/test";

/// The post-mortem's API service, rebuilt on poolwarden.
///
/// Settings come from flags, then environment variables, then the optional
/// TOML file (`--config`), then defaults.
#[derive(Debug, Parser)]
#[command(name = "poolwarden-demo", version)]
pub(crate) struct Cli {
    /// What to run (default: serve).
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
    /// Database URL. When nothing answers at the default URL, a private
    /// MariaDB server is started for the demo (and the log says so).
    #[arg(long, env = "DATABASE_URL", global = true)]
    pub(crate) database_url: Option<String>,
    /// Address to listen on.
    #[arg(long, env = "POOLWARDEN_DEMO_LISTEN", global = true)]
    pub(crate) listen: Option<SocketAddr>,
    /// A TOML file with `database_url`, `listen` and a `[pool]` table
    /// (poolwarden's `PoolConfig`, durations like "30s").
    #[arg(long, env = "POOLWARDEN_DEMO_CONFIG", global = true)]
    pub(crate) config: Option<PathBuf>,
    /// Stop after this many seconds (for smoke tests); runs until Ctrl-C
    /// or SIGTERM otherwise.
    #[arg(long, global = true)]
    pub(crate) run_for: Option<u64>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the API service (the default).
    Serve,
    /// Replay the post-mortem on a private MariaDB with wait_timeout=5:
    /// background work leaks connections while requests flow, once with
    /// health checks and leak detection off, once with poolwarden's
    /// defaults; prints both side by side.
    ReplayIncident {
        /// Seconds each run lasts.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
    },
}
