//! PostgreSQL's System V shared memory segment, left behind when a
//! postmaster is killed.
//!
//! A graceful shutdown removes it, and a restart on the same data directory
//! reuses it, but a server killed and then thrown away leaves a small
//! segment that nothing removes; enough of them exhaust the kernel's limit.
//! The segment's key and id are in line 7 of `postmaster.pid`; it is removed
//! with `ipcrm` (util-linux) after checking with `ipcs` that both still match.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::command::run_with_timeout;

/// Bound on `ipcs` and `ipcrm`.
const IPC_TIMEOUT: Duration = Duration::from_secs(10);

/// Removes the shared memory segment named by `DATADIR/postmaster.pid`, if
/// the file and the segment exist. The server must be dead. Best effort:
/// failures are logged, not returned.
pub(crate) fn remove_leftover_segment(datadir: &Path) {
    let Ok(pid_file) = std::fs::read_to_string(datadir.join("postmaster.pid")) else {
        return;
    };
    let Some((key, id)) = segment_of(&pid_file) else {
        return;
    };
    let listing = match run_with_timeout(Command::new("ipcs").arg("-m"), IPC_TIMEOUT) {
        Ok(Some(output)) if output.status.success() => output.stdout,
        other => {
            tracing::debug!(?other, "ipcs -m failed; leaving shared memory segment {id}");
            return;
        }
    };
    if !listing_has(&String::from_utf8_lossy(&listing), key, id) {
        return;
    }
    match run_with_timeout(
        Command::new("ipcrm").args(["-m", &id.to_string()]),
        IPC_TIMEOUT,
    ) {
        Ok(Some(output)) if output.status.success() => {
            tracing::debug!(
                key,
                id,
                "removed a killed postmaster's shared memory segment"
            );
        }
        other => tracing::warn!(key, id, ?other, "ipcrm failed"),
    }
}

/// Key and id from the contents of `postmaster.pid`.
fn segment_of(pid_file: &str) -> Option<(u64, u64)> {
    let line = pid_file.lines().nth(6)?;
    let mut fields = line.split_whitespace();
    let key = fields.next()?.parse().ok()?;
    let id = fields.next()?.parse().ok()?;
    Some((key, id))
}

/// Whether `ipcs -m` lists a segment with this key and id.
fn listing_has(listing: &str, key: u64, id: u64) -> bool {
    listing.lines().any(|line| {
        let mut fields = line.split_whitespace();
        let listed_key = fields
            .next()
            .and_then(|k| k.strip_prefix("0x"))
            .and_then(|k| u64::from_str_radix(k, 16).ok());
        let listed_id = fields.next().and_then(|i| i.parse::<u64>().ok());
        listed_key == Some(key) && listed_id == Some(id)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PID_FILE: &str = "4242\n/dev/shm/x/data\n1764070000\n40001\n/dev/shm/x\n127.0.0.1\n  1085491    32791\nready   \n";

    #[test]
    fn segment_is_read_from_pid_file() {
        assert_eq!(segment_of(PID_FILE), Some((1_085_491, 32_791)));
        assert_eq!(segment_of("4242\n"), None);
    }

    #[test]
    fn listing_must_match_key_and_id() {
        let listing = "\n------ Shared Memory Segments --------\n\
            key        shmid      owner      perms      bytes      nattch     status\n\
            0x00109033 32791      postgres   600        56         0\n";
        assert!(listing_has(listing, 0x0010_9033, 32_791));
        assert!(!listing_has(listing, 0x0010_9033, 32_792));
        assert!(!listing_has(listing, 1, 32_791));
    }
}
