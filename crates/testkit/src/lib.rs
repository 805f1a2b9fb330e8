//! Private, disposable database servers for poolwarden's tests, and the
//! fault suites' shared tools: [`pool_events`] (an `Observer` that records
//! a pool's events) and [`load`] (a bounded load generator).
//!
//! Tests of the pool stop, restart, kill and freeze servers and change their
//! global settings. They must never do that to the machine's shared servers,
//! so this crate starts private ones: each with its own temporary data
//! directory and a free port on 127.0.0.1, as a child process of the test.
//! Dropping the handle kills the server and removes its data, also when the
//! test panics.
//!
//! ```no_run
//! use poolwarden_testkit::MariaDb;
//!
//! let mut db = MariaDb::builder().arg("--max-connections=10").start()?;
//! db.admin("CREATE TABLE test.t (id INT PRIMARY KEY)")?;
//! db.stop()?;
//! db.start_again()?; // same port, same data
//! assert_eq!(db.admin("SELECT COUNT(*) FROM test.t")?, vec![vec!["0".to_owned()]]);
//! # Ok::<(), poolwarden_testkit::TestkitError>(())
//! ```
//!
//! Everything here blocks; from async tests call it through
//! `tokio::task::spawn_blocking`.
//!
//! # How it works
//!
//! - Data directories live in `$POOLWARDEN_TESTKIT_DIR` if set, else in
//!   `/dev/shm` (creating files on this machine's disk costs about a
//!   millisecond each), else in the system's temporary directory.
//! - `mariadb-install-db` and `initdb` run once per test process, into a
//!   template that each server then copies: after the first, a start takes
//!   a fraction of a second. So options that are fixed when a data
//!   directory is initialised (page size, encoding, ...) cannot be chosen.
//! - Directories and servers left behind by a test process that died
//!   without cleaning up (a timeout killed it) are removed, and the servers
//!   killed, the first time a later test process starts a server.
//! - Readiness means: the port accepts TCP connections and the admin client
//!   reaches a server with *our* data directory.

mod binaries;
mod cleanup;
mod command;
mod error;
mod galera;
pub mod load;
mod mariadb;
mod net;
mod pg_ipc;
pub mod pool_events;
mod postgres;
mod process;
mod template;
mod url;

pub use binaries::{mariadb_available, postgres_available};
pub use error::TestkitError;
pub use galera::{Galera, GaleraBuilder, GaleraStatus};
pub use mariadb::{MariaDb, MariaDbBuilder};
pub use postgres::{Postgres, PostgresBuilder};
