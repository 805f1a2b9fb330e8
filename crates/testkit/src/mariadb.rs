//! A private MariaDB server: its own data directory and port, as a child process.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tempfile::TempDir;

use crate::binaries::{mariadb_binaries, MariaDbBinaries};
use crate::cleanup::new_temp_dir;
use crate::command::{describe_output, parse_mariadb_rows, run_with_timeout};
use crate::error::TestkitError;
use crate::net::free_port;
use crate::process::ServerProcess;
use crate::template::{copy_tree, TemplateSlot};
use crate::url::connection_url;

/// The server's name in messages and logs.
const SERVER: &str = "mariadbd";
/// Default bound on how long a start may take until the server answers.
const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on a graceful shutdown.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on `mariadb-install-db`.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(120);
/// Bound on one `admin` statement.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on one readiness probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// How many fresh ports a first start tries when the port was taken meanwhile.
const PORT_ATTEMPTS: usize = 5;
/// What the server logs when its port is taken.
const ADDRESS_IN_USE: &str = "Address already in use";

/// Configures a private MariaDB server before starting it.
///
/// ```no_run
/// let db = poolwarden_testkit::MariaDb::builder()
///     .args(["--max-connections=10", "--wait-timeout=2"])
///     .start()?;
/// # Ok::<(), poolwarden_testkit::TestkitError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct MariaDbBuilder {
    args: Vec<String>,
    startup_timeout: Duration,
}

impl Default for MariaDbBuilder {
    fn default() -> Self {
        MariaDbBuilder {
            args: Vec::new(),
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
        }
    }
}

impl MariaDbBuilder {
    /// Adds one `mariadbd` argument, e.g. `"--wait-timeout=2"`.
    ///
    /// Given after the testkit's own arguments, so it overrides them. It is
    /// used again by [`MariaDb::start_again`]. Note that MariaDB silently
    /// raises `--max-connections` below 10 to 10 (and lets one more
    /// connection in for a SUPER user such as root).
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Adds several `mariadbd` arguments (see [`MariaDbBuilder::arg`]).
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// How long a start (and each [`MariaDb::start_again`]) may take until
    /// the server answers queries; 60 s by default.
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// Creates the data directory, starts the server on a free port and
    /// waits until it answers; creates database `test` and user
    /// [`MariaDb::PW_USER`].
    pub fn start(self) -> Result<MariaDb, TestkitError> {
        MariaDb::launch(self)
    }
}

/// A private, disposable MariaDB server.
///
/// It listens on 127.0.0.1 on a port of its own, keeps its data in a
/// temporary directory, and runs as a child process of the test. `root` has
/// no password over TCP from 127.0.0.1; [`MariaDb::PW_USER`] has a password.
/// Dropping it kills the server and removes the directory.
#[derive(Debug)]
pub struct MariaDb {
    /// Declared first so that it is dropped (the server killed) before the
    /// directory is removed.
    process: ServerProcess,
    bins: MariaDbBinaries,
    port: u16,
    args: Vec<String>,
    startup_timeout: Duration,
    datadir: PathBuf,
    dir: TempDir,
}

impl MariaDb {
    /// A user with a password and all privileges, created at start.
    pub const PW_USER: &'static str = "pw_user";
    /// The password of [`MariaDb::PW_USER`].
    pub const PW_PASSWORD: &'static str = "pw_pass";
    /// The database created at start, used by [`MariaDb::url`].
    pub const DATABASE: &'static str = "test";

    /// Starts a server with the default settings (see [`MariaDbBuilder::start`]).
    pub fn start() -> Result<MariaDb, TestkitError> {
        MariaDb::builder().start()
    }

    /// A builder for a server with extra arguments or another startup timeout.
    pub fn builder() -> MariaDbBuilder {
        MariaDbBuilder::default()
    }

    /// The TCP port on 127.0.0.1; it stays the same across restarts.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `mysql://root@127.0.0.1:PORT/test`.
    pub fn url(&self) -> String {
        self.url_for("root", "", Self::DATABASE)
    }

    /// `mysql://USER:PASSWORD@127.0.0.1:PORT/DB` (percent-encoded; an empty
    /// password is left out).
    pub fn url_for(&self, user: &str, password: &str, db: &str) -> String {
        connection_url("mysql", user, password, self.port, db)
    }

    /// The server's process id, while it runs (or until its exit is noticed).
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// Whether the server process is alive (a paused one is).
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

    /// Shuts the server down gracefully (SIGTERM) and waits for it to exit.
    ///
    /// Open connections are closed by the server. A paused server is resumed
    /// so that it can shut down. If it has not exited within 30 s it is
    /// killed and an error returned. Stopping a stopped server does nothing.
    pub fn stop(&mut self) -> Result<(), TestkitError> {
        self.process.stop(Signal::SIGTERM, STOP_TIMEOUT)
    }

    /// Kills the server (SIGKILL) and waits for it to exit: a crash, after
    /// which [`MariaDb::start_again`] runs InnoDB's crash recovery.
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

    /// Freezes the server (SIGSTOP): the kernel still accepts TCP
    /// connections, but nothing answers — a black hole.
    pub fn pause(&self) -> Result<(), TestkitError> {
        self.process.pause()
    }

    /// Lets a paused server run again (SIGCONT).
    pub fn resume(&self) -> Result<(), TestkitError> {
        self.process.resume()
    }

    /// Runs SQL as `root` over TCP through the `mariadb` client and returns
    /// the rows, each a list of columns as text (SQL NULL reads `NULL`).
    ///
    /// Several statements separated by `;` may be given; the rows of all
    /// of them are returned together. There is no default database: name it
    /// (`test.t`) or start with `USE test;`. Fails after 60 s, e.g. when the
    /// server is paused.
    pub fn admin(&self, sql: &str) -> Result<Vec<Vec<String>>, TestkitError> {
        if self.process.pid().is_none() {
            return Err(TestkitError::NotRunning { server: SERVER });
        }
        run_admin(&self.bins.client, self.port, sql, ADMIN_TIMEOUT)
    }

    /// Copies an initialised data directory into a new temporary directory
    /// and starts the server there.
    fn launch(builder: MariaDbBuilder) -> Result<MariaDb, TestkitError> {
        let started = Instant::now();
        let bins = mariadb_binaries()?;
        let template = template_datadir(&bins)?;
        let dir = new_temp_dir("mariadb")?;
        let root = dir
            .path()
            .canonicalize()
            .map_err(|e| TestkitError::io("resolving the temporary directory", e))?;
        let datadir = root.join("data");
        copy_tree(&template, &datadir)?;

        let mut db = MariaDb {
            process: ServerProcess::new(SERVER, root.join("mariadbd.log"), false),
            bins,
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
        db.admin(&format!(
            "CREATE DATABASE IF NOT EXISTS `{db}`;
             CREATE USER IF NOT EXISTS 'root'@'127.0.0.1';
             GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
             CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY '{password}';
             GRANT ALL PRIVILEGES ON *.* TO '{user}'@'%';",
            db = Self::DATABASE,
            user = Self::PW_USER,
            password = Self::PW_PASSWORD,
        ))?;
        tracing::info!(
            port = db.port,
            dir = %db.dir.path().display(),
            elapsed = ?started.elapsed(),
            "private MariaDB started"
        );
        Ok(db)
    }

    /// Spawns `mariadbd` on the current port.
    fn spawn(&mut self) -> Result<(), TestkitError> {
        let root = self.dir.path();
        let mut cmd = Command::new(&self.bins.server);
        cmd.current_dir(root)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", self.datadir.display()))
            .arg(format!("--port={}", self.port))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}", root.join("mysqld.sock").display()))
            .arg(format!(
                "--pid-file={}",
                root.join("mariadbd.pid").display()
            ))
            .arg(format!("--tmpdir={}", root.display()))
            .arg("--skip-log-bin")
            .arg("--skip-name-resolve")
            .arg("--innodb-buffer-pool-size=16M")
            .arg("--innodb-log-file-size=8M");
        if is_root() {
            cmd.arg("--user=root");
        }
        cmd.args(&self.args);
        self.process.spawn(cmd)
    }

    /// Waits until the server on our port answers and is ours (same data
    /// directory, so never another server that took the port).
    fn wait_ready(&mut self) -> Result<(), TestkitError> {
        let (client, port) = (&self.bins.client, self.port);
        let expected = self.datadir.to_string_lossy().into_owned();
        self.process.wait_ready(port, self.startup_timeout, || {
            let rows = run_admin(client, port, "SELECT @@datadir", PROBE_TIMEOUT)?;
            let found = rows.first().and_then(|row| row.first()).cloned();
            match found {
                Some(dir) if dir.trim_end_matches('/') == expected => Ok(()),
                other => Err(TestkitError::io(
                    "checking the server's identity",
                    std::io::Error::other(format!(
                        "port {port} is served with datadir {other:?}, not {expected}"
                    )),
                )),
            }
        })
    }
}

impl Drop for MariaDb {
    /// Kills the server; the data directory is removed afterwards.
    fn drop(&mut self) {
        if let Err(e) = self.process.kill() {
            tracing::warn!(error = %e, "killing the private MariaDB failed");
        }
    }
}

/// The initialised data directory every private server (and every Galera
/// node) starts from, made once per test process.
pub(crate) fn template_datadir(bins: &MariaDbBinaries) -> Result<PathBuf, TestkitError> {
    static TEMPLATE: TemplateSlot = TemplateSlot::new();
    TEMPLATE.get_or_init("mariadb", |root, datadir| install_db(bins, datadir, root))
}

/// Runs `mariadb-install-db` into `datadir`.
fn install_db(bins: &MariaDbBinaries, datadir: &Path, root: &Path) -> Result<(), TestkitError> {
    let mut cmd = Command::new(&bins.install_db);
    cmd.current_dir(root)
        .arg("--no-defaults")
        .arg(format!("--datadir={}", datadir.display()))
        .arg("--auth-root-authentication-method=normal")
        .arg("--skip-test-db")
        // Passed on to the bootstrap server: a small redo log from the start.
        .arg("--skip-log-bin")
        .arg("--innodb-buffer-pool-size=16M")
        .arg("--innodb-log-file-size=8M");
    if is_root() {
        cmd.arg("--user=root");
    }
    let tool = bins.install_db.display().to_string();
    let output = run_with_timeout(&mut cmd, INSTALL_TIMEOUT)
        .map_err(|e| TestkitError::io(format!("running {tool}"), e))?
        .ok_or_else(|| TestkitError::Init {
            tool: tool.clone(),
            status: format!("did not finish within {INSTALL_TIMEOUT:?}"),
            output: String::new(),
        })?;
    if !output.status.success() {
        return Err(TestkitError::Init {
            tool,
            status: output.status.to_string(),
            output: describe_output(&output),
        });
    }
    Ok(())
}

/// Runs `sql` as root over TCP through the command-line client.
pub(crate) fn run_admin(
    client: &Path,
    port: u16,
    sql: &str,
    timeout: Duration,
) -> Result<Vec<Vec<String>>, TestkitError> {
    let mut cmd = Command::new(client);
    cmd.arg("--no-defaults")
        .arg("--protocol=tcp")
        .arg("--host=127.0.0.1")
        .arg(format!("--port={port}"))
        .arg("--user=root")
        .arg("--connect-timeout=5")
        .arg("--batch")
        .arg("--skip-column-names")
        .arg(format!("--execute={sql}"))
        .env_remove("MYSQL_PWD")
        .env_remove("MYSQL_HOST")
        .env_remove("MYSQL_TCP_PORT");
    let client_name = client.display().to_string();
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
    Ok(parse_mariadb_rows(&String::from_utf8_lossy(&output.stdout)))
}

/// Whether this process runs as root (then mariadbd needs `--user=root`).
pub(crate) fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}
