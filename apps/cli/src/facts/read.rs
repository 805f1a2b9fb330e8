//! Reading the facts: one bounded connection, closed cleanly afterwards
//! (so the doctor itself never adds to `Aborted_clients`), and the words
//! for what went wrong.

use std::time::Duration;

use super::{mysql, postgres, ServerFacts, Target};
use crate::error::DoctorError;

/// Connects with a bound of `timeout` and reads the server's facts.
pub(crate) async fn read_facts(
    target: &Target,
    timeout: Duration,
) -> Result<ServerFacts, DoctorError> {
    if target.postgres {
        postgres::read(target, timeout).await
    } else {
        mysql::read(target, timeout).await
    }
}

/// The error for reading facts that took longer than `timeout`.
pub(super) fn no_answer(timeout: Duration) -> DoctorError {
    DoctorError::Query(format!(
        "no answer within {}",
        humantime::format_duration(timeout)
    ))
}

/// Whether an I/O error is a failed name lookup.
fn is_lookup_failure(e: &std::io::Error) -> bool {
    let s = e.to_string().to_ascii_lowercase();
    s.contains("lookup") || s.contains("name or service not known") || s.contains("resolve")
}

/// The error for an I/O failure while connecting to `target`.
pub(super) fn io_error(target: &Target, e: &std::io::Error) -> DoctorError {
    if is_lookup_failure(e) {
        DoctorError::UnknownHost {
            host: target.host(),
        }
    } else {
        DoctorError::Unreachable {
            addr: target.addr(),
            reason: io_reason(e),
        }
    }
}

/// Words for an I/O error, without the "(os error N)" tail.
pub(crate) fn io_reason(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::ConnectionRefused => "connection refused".to_owned(),
        K::ConnectionReset => "connection reset by the server".to_owned(),
        K::ConnectionAborted => "connection aborted".to_owned(),
        K::TimedOut => "connection timed out".to_owned(),
        K::HostUnreachable => "host unreachable".to_owned(),
        K::NetworkUnreachable => "network unreachable".to_owned(),
        K::AddrNotAvailable => "address not available".to_owned(),
        K::UnexpectedEof => "the server closed the connection during the handshake".to_owned(),
        _ => {
            let s = e.to_string();
            match s.find(" (os error") {
                Some(i) => s[..i].to_owned(),
                None => s,
            }
        }
    }
}

pub(super) fn parse_u64(s: &str) -> Option<u64> {
    s.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_reasons_read_well() {
        let e = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(io_reason(&e), "connection refused");
    }
}
