//! The pool's rules, public for tools that check settings against them
//! (`poolwarden doctor`), so they are defined once, here in the pool, and
//! never restated.

use std::time::Duration;

use crate::{BuildError, PoolConfig};

/// Share of the server's idle timeout at which a hold is reported as near
/// it (F6).
pub use crate::leaks::NEAR_SERVER_TIMEOUT;

/// How long a connection may sit unused before the pool retires it, when it
/// knows the server's idle timeout (learned at connect): the timeout less a
/// safety margin (F1).
pub use crate::health::server_limit;

/// Check `config` as [`Builder::build`](crate::Builder::build) does.
///
/// # Errors
/// The [`BuildError`] `build` would return.
pub fn check_config(config: &PoolConfig) -> Result<(), BuildError> {
    crate::builder::validate(config)
}

/// Whether a connection the server closed for idleness (after
/// `server_idle_timeout`) can reach a borrower without a ping.
///
/// When the pool knows the server's idle timeout (its manager reports it at
/// connect, as `MySqlManager` does by default), it retires every connection
/// unused for [`server_limit`], before the server closes it: none can.
/// Otherwise one can when validation is skipped, or when the bypass window
/// (measured from the last successful use) reaches the server's timeout.
pub fn idle_close_reaches_borrower(
    config: &PoolConfig,
    server_idle_timeout: Duration,
    pool_knows_server_timeout: bool,
) -> bool {
    if pool_knows_server_timeout {
        return false;
    }
    config.skip_validation || config.validation_bypass >= server_idle_timeout
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_server_timeout_retires_connections_before_the_bypass_matters() {
        let mut c = PoolConfig {
            validation_bypass: Duration::from_secs(120),
            ..PoolConfig::default()
        };
        let t = Duration::from_secs(60);
        assert!(idle_close_reaches_borrower(&c, t, false));
        assert!(!idle_close_reaches_borrower(&c, t, true));
        assert!(server_limit(t) < t);
        c.validation_bypass = Duration::from_millis(500);
        assert!(!idle_close_reaches_borrower(&c, t, false));
        c.skip_validation = true;
        assert!(idle_close_reaches_borrower(&c, t, false));
    }
}
