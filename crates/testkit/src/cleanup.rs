//! Where the testkit's temporary directories go, how they are named, and
//! removal of those left behind by test processes that died without cleaning
//! up (killed by a timeout, aborted): their servers are killed and their
//! directories removed.
//!
//! Every directory is named `poolwarden-[template-]KIND-OWNERPID-RANDOM`,
//! where OWNERPID is the test process that made it. A directory whose owner
//! no longer runs is stale.
//!
//! The directories go to `$POOLWARDEN_TESTKIT_DIR` if set, else to
//! `/dev/shm` (memory: creating files on a virtual disk can cost about a
//! millisecond each, and a data directory has hundreds), else to the
//! system's temporary directory.

use std::path::{Path, PathBuf};
use std::sync::Once;

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use tempfile::TempDir;

use crate::error::TestkitError;
use crate::pg_ipc::remove_leftover_segment;

/// Prefix of every directory the testkit makes.
const PREFIX: &str = "poolwarden-";
/// Environment variable naming the directory to create directories in.
const DIR_ENV: &str = "POOLWARDEN_TESTKIT_DIR";
/// Preferred place when the variable is not set.
const SHM: &str = "/dev/shm";

/// Creates a fresh temporary directory for `kind` ("mariadb",
/// "template-postgres", ...) owned by this process, after removing stale
/// ones once per process.
pub(crate) fn new_temp_dir(kind: &str) -> Result<TempDir, TestkitError> {
    static SWEEP: Once = Once::new();
    SWEEP.call_once(remove_stale);
    let prefix = format!("{PREFIX}{kind}-{}-", std::process::id());
    let mut last_error = None;
    for base in base_dirs() {
        match tempfile::Builder::new().prefix(&prefix).tempdir_in(&base) {
            Ok(dir) => return Ok(dir),
            Err(e) => {
                tracing::debug!(base = %base.display(), error = %e, "cannot create a directory here");
                last_error = Some((base, e));
            }
        }
    }
    let (base, e) = last_error.unwrap_or_else(|| {
        (
            std::env::temp_dir(),
            std::io::Error::other("no base directory"),
        )
    });
    Err(TestkitError::io(
        format!("creating a temporary directory in {}", base.display()),
        e,
    ))
}

/// Where directories may go, best first.
fn base_dirs() -> Vec<PathBuf> {
    if let Some(dir) = std::env::var_os(DIR_ENV).filter(|dir| !dir.is_empty()) {
        return vec![PathBuf::from(dir)];
    }
    let mut dirs = Vec::new();
    if Path::new(SHM).is_dir() {
        dirs.push(PathBuf::from(SHM));
    }
    let tmp = std::env::temp_dir();
    if !dirs.contains(&tmp) {
        dirs.push(tmp);
    }
    dirs
}

/// The test process that made the directory called `name`, if it is one of ours.
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let segments: Vec<&str> = rest.split('-').collect();
    if segments.len() < 3 {
        return None;
    }
    segments[segments.len() - 2].parse().ok()
}

/// Kills the servers of, and removes, directories whose owner has died.
fn remove_stale() {
    let stale: Vec<PathBuf> = base_dirs()
        .iter()
        .filter_map(|base| std::fs::read_dir(base).ok())
        .flatten()
        .filter_map(Result::ok)
        .filter(|entry| {
            entry
                .file_name()
                .to_str()
                .and_then(owner_pid)
                .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
        })
        .map(|entry| entry.path())
        .collect();
    if stale.is_empty() {
        return;
    }
    kill_processes_using(&stale);
    for dir in stale {
        remove_leftover_segment(&dir.join("data"));
        tracing::info!(dir = %dir.display(), "removing a directory left behind by a dead test process");
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "could not remove stale directory");
        }
    }
}

/// SIGKILLs every process whose command line names one of `dirs` (a server
/// started with `--datadir=DIR/data` or `-D DIR/data`).
pub(crate) fn kill_processes_using(dirs: &[PathBuf]) {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    let needles: Vec<Vec<u8>> = dirs
        .iter()
        .map(|dir| dir.as_os_str().as_encoded_bytes().to_vec())
        .collect();
    for pid in entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
    {
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        if needles.iter().any(|needle| contains(&cmdline, needle)) {
            tracing::info!(pid, "killing a server left behind by a dead test process");
            let _ = signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// Whether `haystack` contains `needle`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pid_is_parsed_from_names() {
        assert_eq!(owner_pid("poolwarden-mariadb-1234-aB3xYz"), Some(1234));
        assert_eq!(
            owner_pid("poolwarden-template-postgres-99-Q1w2e3"),
            Some(99)
        );
        assert_eq!(owner_pid("poolwarden-mariadb-x-aB3xYz"), None);
        assert_eq!(owner_pid("other-mariadb-1234-aB3xYz"), None);
        assert_eq!(owner_pid("poolwarden-1234"), None);
    }

    #[test]
    fn own_directories_are_named_after_this_process() {
        let dir = new_temp_dir("unit").unwrap();
        let name = dir.path().file_name().unwrap().to_str().unwrap().to_owned();
        assert_eq!(owner_pid(&name), Some(std::process::id()));
    }

    #[test]
    fn contains_finds_subslices() {
        assert!(contains(b"--datadir=/tmp/x/data\0", b"/tmp/x"));
        assert!(!contains(b"--datadir=/tmp/y/data\0", b"/tmp/x"));
        assert!(!contains(b"abc", b""));
    }
}
