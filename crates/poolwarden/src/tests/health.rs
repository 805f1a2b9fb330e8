//! Every rule of `health.rs`, with plain numbers: no pool, no clock, no
//! runtime.

use std::time::Duration;

use crate::clock::Tick;
use crate::health::{
    at_checkout, at_return, closed_means_disconnect, keepalive_period, retire_at, scale,
    server_limit, while_idle, AtCheckout, AtReturn, Meta, Returned, WhileIdle,
};
use crate::{CloseReason, PoolConfig, Probe};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// `s` seconds after the origin.
fn at(s: u64) -> Tick {
    Tick::default().plus(secs(s))
}

/// A connection opened at 100 s, generation 1, last good and last I/O at
/// 100 s, no limits.
fn meta() -> Meta {
    Meta {
        created: at(100),
        generation: 1,
        last_ok: at(100),
        last_io: at(100),
        idle_since: at(100),
        ..Meta::placeholder()
    }
}

fn returned(probe: Probe) -> Returned {
    Returned {
        probe,
        since: at(100),
        invalidated: false,
        panicking: false,
    }
}

#[test]
fn server_limit_keeps_a_quarter_margin_capped_at_30_s() {
    assert_eq!(server_limit(secs(2)), Duration::from_millis(1500));
    assert_eq!(server_limit(secs(28_800)), secs(28_770));
    assert_eq!(server_limit(secs(120)), secs(90));
}

#[test]
fn keepalive_stays_below_half_the_server_limit_with_up_to_10_percent_jitter() {
    let cfg = PoolConfig::default(); // 2 min
    assert_eq!(keepalive_period(&cfg, None, 0.0), Some(secs(120)));
    assert_eq!(keepalive_period(&cfg, None, 1.0), Some(secs(108)));
    assert_eq!(keepalive_period(&cfg, Some(secs(60)), 0.0), Some(secs(30)));
    let off = PoolConfig {
        keepalive_interval: None,
        ..PoolConfig::default()
    };
    assert_eq!(keepalive_period(&off, Some(secs(60)), 0.5), None);
    let max = PoolConfig {
        keepalive_interval: Some(Duration::MAX),
        ..PoolConfig::default()
    };
    assert_eq!(keepalive_period(&max, None, 0.0), Some(Duration::MAX));
}

#[test]
fn lifetime_is_shortened_by_at_most_the_jitter_share() {
    let cfg = PoolConfig {
        max_lifetime: Some(secs(1000)),
        lifetime_jitter: 0.1,
        ..PoolConfig::default()
    };
    assert_eq!(retire_at(&cfg, at(0), 0.0), Some(at(1000)));
    assert_eq!(retire_at(&cfg, at(0), 1.0), Some(at(900)));
    let forever = PoolConfig {
        max_lifetime: None,
        ..cfg
    };
    assert_eq!(retire_at(&forever, at(0), 0.5), None);
}

#[test]
fn scale_saturates_instead_of_panicking() {
    assert_eq!(scale(secs(10), 0.5), secs(5));
    assert_eq!(scale(Duration::MAX, 1.0), Duration::MAX);
    assert_eq!(scale(Duration::MAX, 0.0), Duration::ZERO);
}

#[test]
fn checkout_uses_within_the_bypass_window_and_pings_after() {
    let cfg = PoolConfig::default(); // bypass 500 ms
    let m = meta();
    let just = at(100).plus(Duration::from_millis(499));
    assert_eq!(at_checkout(&m, just, 1, &cfg), AtCheckout::Use);
    let past = at(100).plus(Duration::from_millis(500));
    assert_eq!(at_checkout(&m, past, 1, &cfg), AtCheckout::Validate);
    let skip = PoolConfig {
        skip_validation: true,
        ..PoolConfig::default()
    };
    assert_eq!(at_checkout(&m, at(1000), 1, &skip), AtCheckout::Use);
    let zero = PoolConfig {
        validation_bypass: Duration::ZERO,
        ..PoolConfig::default()
    };
    assert_eq!(at_checkout(&m, at(100), 1, &zero), AtCheckout::Validate);
}

#[test]
fn checkout_retires_stale_old_and_server_idle_connections_before_pinging() {
    let cfg = PoolConfig::default();
    let m = meta();
    assert_eq!(
        at_checkout(&m, at(100), 2, &cfg),
        AtCheckout::Retire(CloseReason::Stale)
    );
    let old = Meta {
        retire_at: Some(at(200)),
        ..meta()
    };
    assert_eq!(
        at_checkout(&old, at(200), 1, &cfg),
        AtCheckout::Retire(CloseReason::Lifetime)
    );
    assert_eq!(at_checkout(&old, at(199), 1, &cfg), AtCheckout::Validate);
    let limited = Meta {
        server_limit: Some(secs(90)),
        ..meta()
    };
    assert_eq!(
        at_checkout(&limited, at(190), 1, &cfg),
        AtCheckout::Retire(CloseReason::ServerIdleTimeout)
    );
    assert_eq!(
        at_checkout(&limited, at(189), 1, &cfg),
        AtCheckout::Validate
    );
}

#[test]
fn return_rules_in_order() {
    let m = meta();
    let mut r = returned(Probe::NeedsReset);
    r.invalidated = true;
    assert_eq!(
        at_return(&m, r, at(101), 1),
        AtReturn::Discard(CloseReason::Invalidated)
    );
    let mut r = returned(Probe::Clean);
    r.panicking = true;
    assert_eq!(
        at_return(&m, r, at(101), 1),
        AtReturn::Discard(CloseReason::Corrupt)
    );
    assert_eq!(
        at_return(&m, returned(Probe::Closed), at(101), 1),
        AtReturn::Discard(CloseReason::Closed)
    );
    assert_eq!(
        at_return(&m, returned(Probe::Corrupt), at(101), 1),
        AtReturn::Discard(CloseReason::Corrupt)
    );
    // A dirty connection of an older generation is closed, never reset.
    assert_eq!(
        at_return(&m, returned(Probe::NeedsReset), at(101), 2),
        AtReturn::Discard(CloseReason::Stale)
    );
    let old = Meta {
        retire_at: Some(at(150)),
        ..meta()
    };
    assert_eq!(
        at_return(&old, returned(Probe::Clean), at(150), 1),
        AtReturn::Discard(CloseReason::Lifetime)
    );
    // Held about as long as the server's idle limit: closed without reset.
    let limited = Meta {
        server_limit: Some(secs(90)),
        ..meta()
    };
    assert_eq!(
        at_return(&limited, returned(Probe::NeedsReset), at(190), 1),
        AtReturn::Discard(CloseReason::ServerIdleTimeout)
    );
    assert_eq!(
        at_return(&limited, returned(Probe::NeedsReset), at(189), 1),
        AtReturn::Reset
    );
    assert_eq!(
        at_return(&m, returned(Probe::Clean), at(101), 1),
        AtReturn::Idle
    );
}

#[test]
fn a_closed_socket_means_a_disconnect_unless_the_hold_explains_it() {
    let limited = Meta {
        server_limit: Some(secs(90)),
        ..meta()
    };
    assert!(closed_means_disconnect(&limited, at(100), at(189)));
    assert!(!closed_means_disconnect(&limited, at(100), at(190)));
    assert!(closed_means_disconnect(&meta(), at(100), at(100_000)));
}

#[test]
fn idle_rules_retire_then_reap_above_min_idle_then_ping() {
    let cfg = PoolConfig {
        idle_timeout: Some(secs(600)),
        ..PoolConfig::default()
    };
    let m = Meta {
        keepalive: Some(secs(120)),
        ..meta()
    };
    assert_eq!(while_idle(&m, at(101), 1, &cfg, true), WhileIdle::Keep);
    assert_eq!(
        while_idle(&m, at(101), 2, &cfg, true),
        WhileIdle::Retire(CloseReason::Stale)
    );
    assert_eq!(
        while_idle(&m, at(700), 1, &cfg, true),
        WhileIdle::Retire(CloseReason::IdleTimeout)
    );
    // At min_idle: kept, and pinged instead.
    assert_eq!(while_idle(&m, at(700), 1, &cfg, false), WhileIdle::Ping);
    assert_eq!(while_idle(&m, at(220), 1, &cfg, true), WhileIdle::Ping);
    assert_eq!(while_idle(&m, at(219), 1, &cfg, true), WhileIdle::Keep);
}
