//! Command line, environment and config file.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::store::Backend;

/// The default database: the machine's MariaDB.
pub(crate) const DEFAULT_DATABASE_URL: &str = "mysql://root@127.0.0.1:3306/test";

/// The post-mortem's API service, rebuilt on poolwarden.
///
/// Settings come from flags, then environment variables, then the optional
/// TOML file (`--config`), then defaults. The flags are the service's: give
/// them before the subcommand (`poolwarden-demo --listen ... serve`);
/// `replay-incident` starts its own private server and takes none of them.
#[derive(Debug, Parser)]
#[command(name = "poolwarden-demo", version)]
pub(crate) struct Cli {
    /// What to run (default: serve).
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
    /// Database URL: `mysql://` / `mariadb://` or `postgres://` /
    /// `postgresql://`. When nothing answers at the default URL, a private
    /// MariaDB server is started for the demo (and the log says so).
    #[arg(long, env = "DATABASE_URL")]
    pub(crate) database_url: Option<String>,
    /// Address to listen on.
    #[arg(long, env = "POOLWARDEN_DEMO_LISTEN")]
    pub(crate) listen: Option<SocketAddr>,
    /// Address of the operators' listener (`/debug/pool`, `/metrics`);
    /// loopback by default, never the API listener.
    #[arg(long, env = "POOLWARDEN_DEMO_ADMIN_LISTEN")]
    pub(crate) admin_listen: Option<SocketAddr>,
    /// A TOML file with `database_url`, `listen`, `admin_listen` and the
    /// tables `[pool]` (poolwarden's `PoolConfig`, durations like "30s"),
    /// `[http]` and `[reports]`.
    #[arg(long, env = "POOLWARDEN_DEMO_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Stop after this many seconds (for smoke tests); runs until Ctrl-C
    /// or SIGTERM otherwise.
    #[arg(long)]
    pub(crate) run_for: Option<u64>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the API service (the default).
    Serve,
    /// Replay the post-mortem on a private server that closes idle
    /// sessions after 5 s (MariaDB's wait_timeout, PostgreSQL's
    /// idle_session_timeout): background work leaks connections while
    /// requests flow, once with health checks and leak detection off, once
    /// with poolwarden's defaults; prints both side by side.
    ReplayIncident {
        /// Seconds each run lasts.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        /// Which server to replay on.
        #[arg(long, value_enum, default_value_t = Server::Mariadb)]
        server: Server,
    },
    /// Measure the demo on loopback against a private server: `clients`
    /// keep-alive connections reading accounts for `seconds`, once quiet,
    /// once with `flooders` more connections posting reports back to back
    /// (ignoring 429), once with `report-clients` clients posting reports
    /// all at once and honouring `Retry-After`; prints the runs side by side
    /// (BENCHMARKS.md). 0 skips a run.
    Load {
        /// Which server to run on.
        #[arg(long, value_enum, default_value_t = Server::Mariadb)]
        server: Server,
        /// Reading connections.
        #[arg(long, default_value_t = 50)]
        clients: u32,
        /// Connections posting `POST /reports` back to back, ignoring 429.
        #[arg(long, default_value_t = 50)]
        flooders: u32,
        /// Clients posting `POST /reports` at once, each on its own
        /// connection, waiting `Retry-After` when refused and polling their
        /// report when accepted (issue 11's measurement uses 2000).
        #[arg(long, default_value_t = 0)]
        report_clients: u32,
        /// Seconds each run lasts.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
    },
}

/// A private server the subcommands can start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Server {
    /// MariaDB.
    Mariadb,
    /// PostgreSQL.
    Postgres,
}

impl Server {
    pub(crate) fn backend(self) -> Backend {
        match self {
            Server::Mariadb => Backend::MySql,
            Server::Postgres => Backend::Postgres,
        }
    }
}
