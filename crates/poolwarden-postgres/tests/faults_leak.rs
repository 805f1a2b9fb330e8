//! Fault suite, who holds what: F6 (a leaked or long-held checkout) and F7
//! (an exhausted pool), against private PostgreSQL servers.

mod common;

use std::time::Duration;

use common::{Events, Kind};
use poolwarden::CheckoutInfo;

/// This file's name as it appears in `Location`s.
const THIS_FILE: &str = "faults_leak.rs";

fn is_here(info: &CheckoutInfo, line: u32) -> bool {
    info.location.file().ends_with(THIS_FILE) && info.location.line() == line
}

/// F6, the origin incident on PostgreSQL: a checkout held past
/// `leak_threshold` is reported with this file's name and line and its
/// label; with `idle_session_timeout = 3s` the near-timeout warning comes
/// while the session still answers; the holder then idles until the server
/// closes the session and returns it: the dead session is discarded, the
/// pool is not invalidated, and the next borrowers are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f6_leak_named_at_file_line_and_warned_before_idle_session_timeout() {
    let _serial = common::serial().await;
    let db = common::start_postgres(&[("idle_session_timeout", "3s")]);
    let events = Events::new();
    let pool = common::builder(&db.url(), &events)
        .max_size(2)
        .leak_threshold(Some(Duration::from_secs(1)))
        .maintenance_interval(Duration::from_millis(50))
        .build()
        .unwrap();

    let (get, line) = (pool.get(), line!());
    let mut c = get.await.unwrap();
    c.label("f6-background-job");
    let checkout_id = c.checkout_id();
    assert_eq!(c.server_idle_timeout(), Some(Duration::from_secs(3)));
    let pid = common::backend_pid(&mut c).await;

    let live = pool.checkouts();
    assert_eq!(live.len(), 1, "{live:?}");
    assert!(is_here(&live[0], line), "{live:?}");

    let leak = events
        .wait_for(
            Duration::from_secs(10),
            |r| matches!(&r.kind, Kind::Leak(i) if i.id == checkout_id),
        )
        .await
        .expect("no leak report");
    let Kind::Leak(info) = &leak.kind else {
        unreachable!()
    };
    assert!(is_here(info, line), "leak reported at {}", info.location);
    assert_eq!(info.label.as_deref(), Some("f6-background-job"));

    let near = events
        .wait_for(
            Duration::from_secs(10),
            |r| matches!(&r.kind, Kind::NearServerTimeout(i) if i.id == checkout_id),
        )
        .await
        .expect("no near-server-timeout warning");
    let Kind::NearServerTimeout(near_info) = &near.kind else {
        unreachable!()
    };
    assert!(is_here(near_info, line), "{near_info:?}");
    assert_eq!(
        common::select_42(&mut c).await.unwrap(),
        Some(42),
        "still answers"
    );

    // The holder idles until the server closes the session.
    let gone = common::poll_until(Duration::from_secs(15), || {
        !common::pool_backends(&db).contains(&pid)
    })
    .await;
    assert!(gone, "the server never closed the idle session");
    drop(c);

    for _ in 0..20 {
        let mut c = pool.get().await.unwrap();
        assert_ne!(common::backend_pid(&mut c).await, pid);
    }
    let status = pool.status();
    assert_eq!(status.invalidations, 0, "{status:?}");
    assert_eq!(status.closed.validation_failed, 0, "{status:?}");
}

/// F7: a pool of two held by two labelled checkouts; a third checkout
/// times out with a message naming both holders' file:line and labels.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f7_exhausted_pool_timeout_names_the_holders() {
    let db = common::shared_postgres();
    let pool = common::builder(&db.url(), &Events::new())
        .max_size(2)
        .build()
        .unwrap();

    let (get_a, line_a) = (pool.get(), line!());
    let mut a = get_a.await.unwrap();
    a.label("nightly-report");
    let (get_b, line_b) = (pool.get(), line!());
    let mut b = get_b.await.unwrap();
    b.label("request-7f3a");

    let err = pool
        .get_timeout(Duration::from_millis(500))
        .await
        .expect_err("a third checkout from an exhausted pool of two succeeded");
    assert!(err.is_timeout(), "expected a timeout, got {err}");
    let msg = err.to_string();
    for needle in [
        format!("{THIS_FILE}:{line_a}:"),
        format!("{THIS_FILE}:{line_b}:"),
        "(nightly-report)".to_owned(),
        "(request-7f3a)".to_owned(),
        "2/2 connections in use".to_owned(),
    ] {
        assert!(msg.contains(&needle), "{needle:?} missing from: {msg}");
    }
    assert_eq!(common::select_42(&mut a).await.unwrap(), Some(42));
    assert_eq!(common::select_42(&mut b).await.unwrap(), Some(42));
}
