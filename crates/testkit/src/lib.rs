//! Private, disposable database servers for poolwarden's tests.
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

mod binaries;
mod command;
mod error;
mod mariadb;
mod net;
mod postgres;
mod process;
mod url;

pub use binaries::{mariadb_available, postgres_available};
pub use error::TestkitError;
pub use mariadb::{MariaDb, MariaDbBuilder};
pub use postgres::{Postgres, PostgresBuilder};
