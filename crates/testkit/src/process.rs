//! A server running as a child process: spawning it with its output in a log
//! file, waiting until it is ready, signalling, stopping and killing it.
//!
//! A server may be a single process (mariadbd) or a process tree whose
//! children must be paused and killed with it (the PostgreSQL postmaster and
//! its backends, which each start their own session).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

use crate::error::TestkitError;
use crate::net::tcp_accepts;

/// How many log lines an error message shows.
const LOG_TAIL_LINES: usize = 40;
/// How long to wait for a process to vanish after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(10);
/// Pause between two readiness checks.
const READY_POLL: Duration = Duration::from_millis(50);

/// A server child process and its log file.
#[derive(Debug)]
pub(crate) struct ServerProcess {
    /// The server's name in messages, e.g. "mariadbd".
    server: &'static str,
    /// The running child, `None` once it has exited and been reaped.
    child: Option<Child>,
    /// stdout and stderr of every start are appended here.
    log_path: PathBuf,
    /// Length of the log when the current run started.
    log_offset: u64,
    /// Whether the server's child processes belong to it (PostgreSQL).
    process_tree: bool,
}

impl ServerProcess {
    /// A server that is not running yet.
    pub(crate) fn new(server: &'static str, log_path: PathBuf, process_tree: bool) -> Self {
        ServerProcess {
            server,
            child: None,
            log_path,
            log_offset: 0,
            process_tree,
        }
    }

    /// The log file.
    pub(crate) fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Starts `cmd` with stdin closed and stdout/stderr appended to the log.
    pub(crate) fn spawn(&mut self, mut cmd: Command) -> Result<(), TestkitError> {
        self.ensure_stopped()?;
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .map_err(|e| TestkitError::io(format!("opening log {}", self.log_path.display()), e))?;
        self.log_offset = log.metadata().map(|m| m.len()).unwrap_or(0);
        let log_err = log
            .try_clone()
            .map_err(|e| TestkitError::io("duplicating the log file handle", e))?;
        cmd.stdin(Stdio::null()).stdout(log).stderr(log_err);
        tracing::debug!(server = self.server, command = ?cmd, "spawning server");
        let child = cmd
            .spawn()
            .map_err(|e| TestkitError::io(format!("spawning {cmd:?}"), e))?;
        self.child = Some(child);
        Ok(())
    }

    /// The process id of the server (the postmaster for PostgreSQL).
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the server process is still alive (a paused one is).
    pub(crate) fn is_running(&mut self) -> bool {
        self.reap().is_none() && self.child.is_some()
    }

    /// Errors if the server is running.
    pub(crate) fn ensure_stopped(&mut self) -> Result<(), TestkitError> {
        match (self.is_running(), self.pid()) {
            (true, Some(pid)) => Err(TestkitError::AlreadyRunning {
                server: self.server,
                pid,
            }),
            _ => Ok(()),
        }
    }

    /// Reaps the child if it has exited, returning its status.
    fn reap(&mut self) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => {
                self.child = None;
                Some(status)
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(server = self.server, error = %e, "try_wait failed");
                None
            }
        }
    }

    /// Waits until 127.0.0.1:`port` accepts connections and `check` passes.
    ///
    /// Fails early if the server exits, and kills it after `timeout`. Both
    /// errors carry the tail of the log written since this start.
    pub(crate) fn wait_ready(
        &mut self,
        port: u16,
        timeout: Duration,
        mut check: impl FnMut() -> Result<(), TestkitError>,
    ) -> Result<(), TestkitError> {
        let started = Instant::now();
        let mut last_error = String::from("nothing accepts TCP connections on the port yet");
        loop {
            if let Some(status) = self.reap() {
                return Err(TestkitError::ExitedDuringStartup {
                    server: self.server,
                    port,
                    status: status.to_string(),
                    log_tail: self.log_tail(),
                });
            }
            if self.child.is_none() {
                return Err(TestkitError::NotRunning {
                    server: self.server,
                });
            }
            if tcp_accepts(port, Duration::from_millis(250)) {
                match check() {
                    Ok(()) => {
                        tracing::debug!(
                            server = self.server,
                            port,
                            elapsed = ?started.elapsed(),
                            "server ready"
                        );
                        return Ok(());
                    }
                    Err(e) => last_error = e.to_string(),
                }
            }
            if started.elapsed() >= timeout {
                if let Err(e) = self.kill() {
                    tracing::warn!(server = self.server, error = %e, "killing a server that did not start failed");
                }
                return Err(TestkitError::StartupTimeout {
                    server: self.server,
                    port,
                    waited: started.elapsed(),
                    last_error,
                    log_tail: self.log_tail(),
                });
            }
            thread::sleep(READY_POLL);
        }
    }

    /// Sends `sig` to the server's main process.
    fn signal_main(&self, sig: Signal) -> Result<(), TestkitError> {
        let pid = self.pid().ok_or(TestkitError::NotRunning {
            server: self.server,
        })?;
        send(self.server, pid, sig)
    }

    /// Sends `sig` to the server's children (none for single-process servers).
    fn signal_children(&self, sig: Signal) -> Result<Vec<u32>, TestkitError> {
        let (true, Some(pid)) = (self.process_tree, self.pid()) else {
            return Ok(Vec::new());
        };
        let children = children_of(pid);
        for &child in &children {
            match send(self.server, child, sig) {
                Ok(()) => {}
                // A backend that exited in between is fine.
                Err(TestkitError::Signal {
                    source: nix::Error::ESRCH,
                    ..
                }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(children)
    }

    /// Freezes the server (SIGSTOP): connections are still accepted by the
    /// kernel but nothing answers. Returns once every thread of the main
    /// process is stopped (a signal reaches a multi-threaded process
    /// asynchronously; a server "paused" a moment too early still answers).
    pub(crate) fn pause(&self) -> Result<(), TestkitError> {
        // Main process first, so that it forks no new child meanwhile.
        self.signal_main(Signal::SIGSTOP)?;
        self.signal_children(Signal::SIGSTOP)?;
        if let Some(pid) = self.pid() {
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while !all_threads_stopped(pid) {
                if std::time::Instant::now() >= deadline {
                    return Err(TestkitError::Io {
                        context: format!(
                            "waiting for {} (pid {pid}) to stop after SIGSTOP",
                            self.server
                        ),
                        source: std::io::Error::other("some threads are still running after 5 s"),
                    });
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        Ok(())
    }

    /// Lets a paused server run again (SIGCONT).
    pub(crate) fn resume(&self) -> Result<(), TestkitError> {
        self.signal_children(Signal::SIGCONT)?;
        self.signal_main(Signal::SIGCONT)?;
        Ok(())
    }

    /// Asks the server to shut down with `sig` and waits up to `timeout` for
    /// it to exit; if it does not, kills it and returns an error.
    ///
    /// A stopped server is left as it is.
    pub(crate) fn stop(&mut self, sig: Signal, timeout: Duration) -> Result<(), TestkitError> {
        if !self.is_running() {
            return Ok(());
        }
        let pid = self.pid().unwrap_or_default();
        self.signal_main(sig)?;
        // A paused server would never see the signal.
        self.signal_children(Signal::SIGCONT)?;
        self.signal_main(Signal::SIGCONT)?;
        let started = Instant::now();
        while started.elapsed() < timeout {
            if let Some(status) = self.reap() {
                tracing::debug!(server = self.server, %status, elapsed = ?started.elapsed(), "server stopped");
                return Ok(());
            }
            thread::sleep(Duration::from_millis(20));
        }
        self.kill()?;
        Err(TestkitError::ExitTimeout {
            server: self.server,
            pid,
            signal: sig.to_string(),
            waited: timeout,
        })
    }

    /// Kills the server (SIGKILL, with its children) and waits until it is gone.
    ///
    /// A stopped server is left as it is.
    pub(crate) fn kill(&mut self) -> Result<(), TestkitError> {
        if !self.is_running() {
            return Ok(());
        }
        let pid = self.pid().unwrap_or_default();
        let mut children = Vec::new();
        if self.process_tree {
            // Freeze the main process so it starts no child we would miss.
            self.signal_main(Signal::SIGSTOP)?;
            children = self.signal_children(Signal::SIGKILL)?;
        }
        self.signal_main(Signal::SIGKILL)?;
        let started = Instant::now();
        if let Some(child) = self.child.as_mut() {
            child
                .wait()
                .map_err(|e| TestkitError::io(format!("waiting for {} to exit", self.server), e))?;
        }
        self.child = None;
        // The killed children are re-parented and reaped elsewhere; wait
        // until none of them runs any more (a zombie holds no resources).
        while children.iter().any(|&child| is_alive(child)) {
            if started.elapsed() >= KILL_WAIT {
                return Err(TestkitError::ExitTimeout {
                    server: self.server,
                    pid,
                    signal: "SIGKILL (children)".to_owned(),
                    waited: KILL_WAIT,
                });
            }
            thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// The last lines the server wrote to its log since its current start.
    pub(crate) fn log_tail(&self) -> String {
        read_tail(&self.log_path, self.log_offset, LOG_TAIL_LINES)
    }

    /// Whether the log written since the current start contains `needle`.
    pub(crate) fn log_contains(&self, needle: &str) -> bool {
        read_tail(&self.log_path, self.log_offset, usize::MAX).contains(needle)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Err(e) = self.kill() {
            tracing::warn!(server = self.server, error = %e, "killing server on drop failed");
        }
    }
}

/// Sends `sig` to `pid`.
fn send(server: &'static str, pid: u32, sig: Signal) -> Result<(), TestkitError> {
    let raw = i32::try_from(pid).map_err(|_| TestkitError::Signal {
        server,
        signal: sig.to_string(),
        pid,
        source: nix::Error::EINVAL,
    })?;
    signal::kill(Pid::from_raw(raw), sig).map_err(|source| TestkitError::Signal {
        server,
        signal: sig.to_string(),
        pid,
        source,
    })
}

/// The ids of the processes whose parent is `parent` (from /proc).
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| proc_stat(pid).is_some_and(|(_, ppid)| ppid == parent))
        .collect()
}

/// Whether `pid` exists and is not a zombie.
fn is_alive(pid: u32) -> bool {
    proc_stat(pid).is_some_and(|(state, _)| state != 'Z' && state != 'X')
}

/// State and parent id of `pid`, from `/proc/PID/stat`.
fn proc_stat(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// The last `lines` lines of `path`, starting at byte `offset`.
fn read_tail(path: &Path, offset: u64, lines: usize) -> String {
    let mut text = Vec::new();
    let read = File::open(path).and_then(|mut file| {
        file.seek(SeekFrom::Start(offset))?;
        file.read_to_end(&mut text)
    });
    if let Err(e) = read {
        return format!("(could not read log {}: {e})", path.display());
    }
    let text = String::from_utf8_lossy(&text);
    let all: Vec<&str> = text.lines().collect();
    let tail = &all[all.len().saturating_sub(lines)..];
    if tail.is_empty() {
        format!("(log {} is empty)", path.display())
    } else {
        tail.join("\n")
    }
}

/// Whether every thread of process `pid` is in the stopped state.
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    let mut any = false;
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue; // a thread that just exited
        };
        // "tid (comm) S ...": the state follows the last ')'.
        let state = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].trim_start().chars().next());
        match state {
            Some('T' | 't') => any = true,
            _ => return false,
        }
    }
    any
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_parented() {
        let me = std::process::id();
        assert!(is_alive(me));
        let (_, ppid) = proc_stat(me).unwrap();
        assert!(children_of(ppid).contains(&me));
    }

    #[test]
    fn tail_reads_from_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, "old\nnew 1\nnew 2\nnew 3\n").unwrap();
        assert_eq!(read_tail(&path, 4, 2), "new 2\nnew 3");
        assert_eq!(read_tail(&path, 4, 10), "new 1\nnew 2\nnew 3");
    }

    #[test]
    fn stop_and_kill_a_plain_process() {
        let dir = tempfile::tempdir().unwrap();
        let mut process = ServerProcess::new("sleep", dir.path().join("log"), false);
        let mut cmd = Command::new("sleep");
        cmd.arg("60");
        process.spawn(cmd).unwrap();
        assert!(process.is_running());
        process.pause().unwrap();
        assert!(process.is_running());
        process
            .stop(Signal::SIGTERM, Duration::from_secs(10))
            .unwrap();
        assert!(!process.is_running());
        assert!(process.pid().is_none());

        let mut cmd = Command::new("sleep");
        cmd.arg("60");
        process.spawn(cmd).unwrap();
        process.kill().unwrap();
        assert!(!process.is_running());
    }
}
