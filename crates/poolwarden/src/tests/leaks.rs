//! Leak detection (F6) and the live checkout list.

use std::time::Duration;

use super::observed;
use super::script::Scripted;

#[tokio::test(start_paused = true)]
async fn a_leak_is_reported_once_with_location_and_label_then_resolved() {
    let m = Scripted::default();
    let (pool, rec) = observed(&m, |b| b.leak_threshold(Some(Duration::from_secs(2))));
    let mut conn = pool.get().await.unwrap();
    let line = line!() - 1;
    conn.label("job:report 42");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(rec.count("leak "), 0);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let leak = rec.find("leak ").expect("reported");
    assert!(leak.contains(&format!("leaks.rs:{line}")), "{leak}");
    assert!(leak.contains("job:report 42"), "{leak}");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(rec.count("leak "), 1, "reported once");
    assert_eq!(pool.status().leaks, 1);
    let info = &pool.checkouts()[0];
    assert!(info.leak_reported);
    assert_eq!(info.held_for, Duration::from_secs(11));
    drop(conn);
    assert_eq!(rec.count("leak_resolved"), 1);
    assert!(pool.checkouts().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_hold_near_the_server_timeout_is_reported_before_it() {
    let m = Scripted::default();
    *m.0.server_idle_timeout.lock() = Some(Duration::from_secs(5));
    let (pool, rec) = observed(&m, |b| b.leak_threshold(Some(Duration::from_secs(60))));
    let conn = pool.get().await.unwrap();
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let near = rec
        .find("near_timeout")
        .expect("warned before the server timeout");
    assert!(near.contains("leaks.rs"), "{near}");
    assert_eq!(rec.count("leak "), 0, "not a leak yet by the threshold");
    drop(conn);
}

#[tokio::test(start_paused = true)]
async fn leak_detection_off_reports_nothing() {
    let m = Scripted::default();
    *m.0.server_idle_timeout.lock() = Some(Duration::from_secs(5));
    let (pool, rec) = observed(&m, |b| b.leak_threshold(None));
    let conn = pool.get().await.unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(rec.count("leak"), 0);
    assert_eq!(rec.count("near_timeout"), 0);
    assert_eq!(pool.checkouts().len(), 1, "the live list stays available");
    drop(conn);
}

#[tokio::test(start_paused = true)]
async fn checkouts_lists_every_holder_longest_first() {
    let m = Scripted::default();
    let (pool, _) = observed(&m, |b| b.max_size(3));
    let mut a = pool.get().await.unwrap();
    a.label("first");
    tokio::time::advance(Duration::from_secs(3)).await;
    let _b = pool.get().await.unwrap();
    let list = pool.checkouts();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].label.as_deref(), Some("first"));
    assert_eq!(list[0].held_for, Duration::from_secs(3));
    assert!(list[1].label.is_none());
    let json = serde_json::to_value(&list[0]).unwrap();
    assert!(json["location"].as_str().unwrap().contains("leaks.rs"));
    assert_eq!(json["held_for"].as_f64(), Some(3.0));
}
