//! A private PostgreSQL server: its own data directory and port, as a child
//! process running as the `postgres` OS user when the tests run as root.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::{Gid, Uid, User};
use tempfile::TempDir;

use crate::binaries::{postgres_binaries, PostgresBinaries};
use crate::cleanup::new_temp_dir;
use crate::command::{describe_output, parse_psql_rows, run_with_timeout};
use crate::error::TestkitError;
use crate::net::free_port;
use crate::pg_ipc::remove_leftover_segment;
use crate::process::ServerProcess;
use crate::template::{copy_tree, TemplateSlot};
use crate::url::connection_url;

/// The server's name in messages and logs.
const SERVER: &str = "postgres";
/// The OS user the server runs as when the tests run as root.
const OS_USER: &str = "postgres";
/// Default bound on how long a start may take until the server answers.
const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on a graceful shutdown.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on `initdb`.
const INITDB_TIMEOUT: Duration = Duration::from_secs(120);
/// Bound on one `admin` statement.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on one readiness probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// How many fresh ports a first start tries when the port was taken meanwhile.
const PORT_ATTEMPTS: usize = 5;
/// What the server logs when its port is taken.
const ADDRESS_IN_USE: &str = "Address already in use";
/// Client authentication: the superuser is trusted over TCP from 127.0.0.1,
/// every other role needs its password.
const PG_HBA: &str = "\
local all all trust
host all postgres 127.0.0.1/32 trust
host all all 127.0.0.1/32 scram-sha-256
host all postgres ::1/128 trust
host all all ::1/128 scram-sha-256
";

/// Configures a private PostgreSQL server before starting it.
///
/// ```no_run
/// let db = poolwarden_testkit::Postgres::builder()
///     .setting("max_connections", "5")
///     .start()?;
/// # Ok::<(), poolwarden_testkit::TestkitError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct PostgresBuilder {
    args: Vec<String>,
    startup_timeout: Duration,
}

impl Default for PostgresBuilder {
    fn default() -> Self {
        PostgresBuilder {
            args: Vec::new(),
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
        }
    }
}

impl PostgresBuilder {
    /// Adds one `postgres` argument, e.g. `"-N"`.
    ///
    /// Given after the testkit's own arguments, so it overrides them. It is
    /// used again by [`Postgres::start_again`].
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Adds several `postgres` arguments (see [`PostgresBuilder::arg`]).
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets a server setting: adds `-c NAME=VALUE`.
    pub fn setting(self, name: &str, value: &str) -> Self {
        self.arg("-c").arg(format!("{name}={value}"))
    }

    /// How long a start (and each [`Postgres::start_again`]) may take until
    /// the server answers queries; 60 s by default.
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// Creates the data directory, starts the server on a free port and
    /// waits until it answers; creates database `test` and role
    /// [`Postgres::PW_USER`].
    pub fn start(self) -> Result<Postgres, TestkitError> {
        Postgres::launch(self)
    }
}

/// A private, disposable PostgreSQL server.
///
/// It listens on 127.0.0.1 on a port of its own, keeps its data in a
/// temporary directory, and runs as a child process of the test (as the
/// `postgres` OS user when the test runs as root). The superuser `postgres`
/// is trusted over TCP; [`Postgres::PW_USER`] needs its password. Dropping
/// it kills the server with all its backends and removes the directory.
#[derive(Debug)]
pub struct Postgres {
    /// Declared first so that it is dropped (the server killed) before the
    /// directory is removed.
    process: ServerProcess,
    bins: PostgresBinaries,
    run_as: Option<(Uid, Gid)>,
    port: u16,
    args: Vec<String>,
    startup_timeout: Duration,
    datadir: PathBuf,
    dir: TempDir,
}

impl Postgres {
    /// A superuser role with a password, created at start.
    pub const PW_USER: &'static str = "pw_user";
    /// The password of [`Postgres::PW_USER`].
    pub const PW_PASSWORD: &'static str = "pw_pass";
    /// The superuser, trusted without a password.
    pub const SUPERUSER: &'static str = "postgres";
    /// The database of [`Postgres::url`].
    pub const DATABASE: &'static str = "postgres";
    /// An empty database created at start.
    pub const TEST_DATABASE: &'static str = "test";

    /// Starts a server with the default settings (see [`PostgresBuilder::start`]).
    pub fn start() -> Result<Postgres, TestkitError> {
        Postgres::builder().start()
    }

    /// A builder for a server with extra settings or another startup timeout.
    pub fn builder() -> PostgresBuilder {
        PostgresBuilder::default()
    }

    /// The TCP port on 127.0.0.1; it stays the same across restarts.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        self.url_for(Self::SUPERUSER, "", Self::DATABASE)
    }

    /// `postgres://USER:PASSWORD@127.0.0.1:PORT/DB` (percent-encoded; an
    /// empty password is left out).
    pub fn url_for(&self, user: &str, password: &str, db: &str) -> String {
        connection_url("postgres", user, password, self.port, db)
    }

    /// The postmaster's process id, while it runs (or until its exit is noticed).
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// Whether the postmaster is alive (a paused one is).
    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    /// The data directory.
    pub fn datadir(&self) -> &Path {
        &self.datadir
    }

    /// The file that collects the server's output over all its runs.
    pub fn log_path(&self) -> &Path {
        self.process.log_path()
    }

    /// Shuts the server down gracefully and waits for it to exit.
    ///
    /// Uses PostgreSQL's "fast" shutdown (SIGINT): open transactions are
    /// rolled back, clients disconnected, a checkpoint written. (SIGTERM's
    /// "smart" shutdown would wait for every client to leave, which a pool
    /// never does.) A paused server is resumed so that it can shut down. If
    /// it has not exited within 30 s it is killed and an error returned.
    /// Stopping a stopped server does nothing.
    pub fn stop(&mut self) -> Result<(), TestkitError> {
        self.process.stop(Signal::SIGINT, STOP_TIMEOUT)
    }

    /// Kills the postmaster and all its backends (SIGKILL) and waits until
    /// they are gone: a crash, after which [`Postgres::start_again`] runs
    /// crash recovery.
    pub fn kill(&mut self) -> Result<(), TestkitError> {
        self.process.kill()
    }

    /// Starts the stopped or killed server again on the same data directory
    /// and port, and waits until it answers.
    pub fn start_again(&mut self) -> Result<(), TestkitError> {
        let started = Instant::now();
        loop {
            self.spawn()?;
            match self.wait_ready() {
                Err(TestkitError::ExitedDuringStartup { .. })
                    if self.process.log_contains(ADDRESS_IN_USE)
                        && started.elapsed() < self.startup_timeout =>
                {
                    tracing::info!(port = self.port, "port still in use, retrying the restart");
                    std::thread::sleep(Duration::from_millis(200));
                }
                other => return other,
            }
        }
    }

    /// Freezes the postmaster and every backend (SIGSTOP): the kernel still
    /// accepts TCP connections, but nothing answers — a black hole.
    pub fn pause(&self) -> Result<(), TestkitError> {
        self.process.pause()
    }

    /// Lets a paused server run again (SIGCONT).
    pub fn resume(&self) -> Result<(), TestkitError> {
        self.process.resume()
    }

    /// Runs SQL as `postgres` in database `postgres` over TCP through
    /// `psql -At` and returns the rows, each a list of columns as text (SQL
    /// NULL reads as an empty string).
    ///
    /// Several statements separated by `;` run in one transaction, so
    /// statements like `CREATE DATABASE` must be sent alone. Fails after
    /// 60 s, e.g. when the server is paused.
    pub fn admin(&self, sql: &str) -> Result<Vec<Vec<String>>, TestkitError> {
        if self.process.pid().is_none() {
            return Err(TestkitError::NotRunning { server: SERVER });
        }
        run_admin(&self.bins.psql, self.port, sql, ADMIN_TIMEOUT)
    }

    /// Copies an initialised data directory into a new temporary directory
    /// and starts the server there.
    fn launch(builder: PostgresBuilder) -> Result<Postgres, TestkitError> {
        static TEMPLATE: TemplateSlot = TemplateSlot::new();
        let started = Instant::now();
        let bins = postgres_binaries()?;
        let run_as = run_as()?;
        let template = TEMPLATE.get_or_init("postgres", |root, datadir| {
            initdb(&bins, run_as, datadir, root)
        })?;
        let dir = new_temp_dir("postgres")?;
        let root = dir
            .path()
            .canonicalize()
            .map_err(|e| TestkitError::io("resolving the temporary directory", e))?;
        if let Some((uid, gid)) = run_as {
            chown(&root, uid, gid)?;
        }
        let datadir = root.join("data");
        copy_tree(&template, &datadir)?;

        let mut db = Postgres {
            process: ServerProcess::new(SERVER, root.join("postgres.log"), true),
            bins,
            run_as,
            port: 0,
            args: builder.args,
            startup_timeout: builder.startup_timeout,
            datadir,
            dir,
        };
        let mut attempt = 1;
        loop {
            db.port = free_port()?;
            db.spawn()?;
            match db.wait_ready() {
                Ok(()) => break,
                Err(TestkitError::ExitedDuringStartup { .. })
                    if db.process.log_contains(ADDRESS_IN_USE) && attempt < PORT_ATTEMPTS =>
                {
                    tracing::info!(port = db.port, "port taken meanwhile, trying another");
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
        db.admin(&format!("CREATE DATABASE \"{}\"", Self::TEST_DATABASE))?;
        db.admin(&format!(
            "CREATE ROLE \"{}\" LOGIN SUPERUSER PASSWORD '{}'",
            Self::PW_USER,
            Self::PW_PASSWORD
        ))?;
        tracing::info!(
            port = db.port,
            dir = %db.dir.path().display(),
            elapsed = ?started.elapsed(),
            "private PostgreSQL started"
        );
        Ok(db)
    }

    /// Spawns `postgres` on the current port.
    fn spawn(&mut self) -> Result<(), TestkitError> {
        let root = self.dir.path();
        let mut cmd = Command::new(&self.bins.postgres);
        cmd.current_dir(root)
            .arg("-D")
            .arg(&self.datadir)
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(root)
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "fsync=off"])
            .args(["-c", "full_page_writes=off"])
            .args(["-c", "logging_collector=off"])
            // Dynamic shared memory in the data directory, not in /dev/shm,
            // so that a killed server leaves nothing behind.
            .args(["-c", "dynamic_shared_memory_type=mmap"])
            .args(&self.args);
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid.as_raw()).gid(gid.as_raw());
        }
        self.process.spawn(cmd)
    }

    /// Waits until the server on our port answers and is ours (same data
    /// directory, so never another server that took the port).
    fn wait_ready(&mut self) -> Result<(), TestkitError> {
        let (psql, port) = (&self.bins.psql, self.port);
        let expected = self.datadir.to_string_lossy().into_owned();
        self.process.wait_ready(port, self.startup_timeout, || {
            let rows = run_admin(psql, port, "SHOW data_directory", PROBE_TIMEOUT)?;
            let found = rows.first().and_then(|row| row.first()).cloned();
            match found {
                Some(dir) if dir.trim_end_matches('/') == expected => Ok(()),
                other => Err(TestkitError::io(
                    "checking the server's identity",
                    std::io::Error::other(format!(
                        "port {port} is served with data_directory {other:?}, not {expected}"
                    )),
                )),
            }
        })
    }
}

impl Drop for Postgres {
    /// Kills the server and its backends and removes the shared memory
    /// segment a killed server leaves; the data directory is removed
    /// afterwards.
    fn drop(&mut self) {
        match self.process.kill() {
            Ok(()) => remove_leftover_segment(&self.datadir),
            Err(e) => tracing::warn!(error = %e, "killing the private PostgreSQL failed"),
        }
    }
}

/// The user and group to run as: `postgres` when we are root (PostgreSQL
/// refuses to run as root), else ourselves.
fn run_as() -> Result<Option<(Uid, Gid)>, TestkitError> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    let missing = || TestkitError::UserNotFound {
        user: OS_USER.to_owned(),
        install: "apt-get install -y postgresql",
    };
    let user = User::from_name(OS_USER)
        .map_err(|_| missing())?
        .ok_or_else(missing)?;
    Ok(Some((user.uid, user.gid)))
}

/// Hands `path` to the server's OS user.
fn chown(path: &Path, uid: Uid, gid: Gid) -> Result<(), TestkitError> {
    std::os::unix::fs::chown(path, Some(uid.as_raw()), Some(gid.as_raw()))
        .map_err(|e| TestkitError::io(format!("chown {} to {OS_USER}", path.display()), e))
}

/// Runs `initdb` into `datadir` (inside `root`, handed to the server's OS
/// user first) and installs our `pg_hba.conf`.
fn initdb(
    bins: &PostgresBinaries,
    run_as: Option<(Uid, Gid)>,
    datadir: &Path,
    root: &Path,
) -> Result<(), TestkitError> {
    if let Some((uid, gid)) = run_as {
        chown(root, uid, gid)?;
    }
    let mut cmd = Command::new(&bins.initdb);
    cmd.current_dir(root)
        .arg("-D")
        .arg(datadir)
        .args([
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "--no-instructions",
        ])
        .args(["-E", "UTF8", "--locale=C"]);
    if let Some((uid, gid)) = run_as {
        cmd.uid(uid.as_raw()).gid(gid.as_raw());
    }
    let tool = bins.initdb.display().to_string();
    let output = run_with_timeout(&mut cmd, INITDB_TIMEOUT)
        .map_err(|e| TestkitError::io(format!("running {tool}"), e))?
        .ok_or_else(|| TestkitError::Init {
            tool: tool.clone(),
            status: format!("did not finish within {INITDB_TIMEOUT:?}"),
            output: String::new(),
        })?;
    if !output.status.success() {
        return Err(TestkitError::Init {
            tool,
            status: output.status.to_string(),
            output: describe_output(&output),
        });
    }
    let hba = datadir.join("pg_hba.conf");
    std::fs::write(&hba, PG_HBA)
        .map_err(|e| TestkitError::io(format!("writing {}", hba.display()), e))?;
    if let Some((uid, gid)) = run_as {
        chown(&hba, uid, gid)?;
    }
    Ok(())
}

/// Runs `sql` as the superuser over TCP through `psql`.
fn run_admin(
    psql: &Path,
    port: u16,
    sql: &str,
    timeout: Duration,
) -> Result<Vec<Vec<String>>, TestkitError> {
    let mut cmd = Command::new(psql);
    cmd.args(["-X", "-q", "-A", "-t", "-F", "\t"])
        .args(["-v", "ON_ERROR_STOP=1"])
        .args(["-h", "127.0.0.1", "-p"])
        .arg(port.to_string())
        .args(["-U", Postgres::SUPERUSER, "-d", Postgres::DATABASE])
        .arg("-c")
        .arg(sql)
        .env("PGCONNECT_TIMEOUT", "5")
        .env_remove("PGOPTIONS")
        .env_remove("PGSERVICE")
        .env_remove("PGSSLMODE")
        .env_remove("PGPASSWORD");
    let client_name = psql.display().to_string();
    let output = run_with_timeout(&mut cmd, timeout)
        .map_err(|e| TestkitError::io(format!("running {client_name}"), e))?
        .ok_or_else(|| TestkitError::AdminTimeout {
            client: client_name.clone(),
            sql: sql.to_owned(),
            waited: timeout,
        })?;
    if !output.status.success() {
        return Err(TestkitError::Admin {
            client: client_name,
            sql: sql.to_owned(),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(parse_psql_rows(&String::from_utf8_lossy(&output.stdout)))
}
