//! Free loopback ports and TCP reachability.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::error::TestkitError;

/// Ports this process already gave to a server, so that two servers started
/// at the same time in one test binary never get the same one.
static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// How many ports to probe before giving up.
const PORT_ATTEMPTS: usize = 100;

/// A port on 127.0.0.1 that was free a moment ago and that this process has
/// not handed out before.
///
/// Another process may still take it before the server binds it; callers
/// retry with a new port when the server reports "Address already in use".
pub(crate) fn free_port() -> Result<u16, TestkitError> {
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
    for _ in 0..PORT_ATTEMPTS {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| TestkitError::io("binding 127.0.0.1:0 to find a free port", e))?;
        let port = listener
            .local_addr()
            .map_err(|e| TestkitError::io("reading the address of a probe listener", e))?
            .port();
        drop(listener);
        if handed_out.insert(port) {
            return Ok(port);
        }
    }
    Err(TestkitError::io(
        "finding a free port on 127.0.0.1",
        std::io::Error::other(format!(
            "the OS kept offering ports already handed out ({PORT_ATTEMPTS} tries)"
        )),
    ))
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
pub(crate) fn tcp_accepts(port: u16, timeout: Duration) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, timeout).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct_and_bindable() {
        let a = free_port().unwrap();
        let b = free_port().unwrap();
        assert_ne!(a, b);
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, a)).unwrap();
        assert!(tcp_accepts(a, Duration::from_secs(1)));
        drop(listener);
    }
}
