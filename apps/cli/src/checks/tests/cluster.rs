//! A cluster from a multi-host URL.

use poolwarden_mysql::Reading;

use super::*;
use crate::cluster::NodeFacts;

fn reading(status: &str, ready: bool, state: u32, size: u32) -> Reading {
    let on = |b: bool| if b { "ON" } else { "OFF" };
    Reading::parse(
        [
            ("wsrep_on", "ON".to_owned()),
            ("wsrep_cluster_status", status.to_owned()),
            ("wsrep_ready", on(ready).to_owned()),
            ("wsrep_local_state", state.to_string()),
            ("wsrep_cluster_size", size.to_string()),
            ("wsrep_cluster_conf_id", "3".to_owned()),
        ]
        .map(|(n, v)| (n.to_owned(), v)),
    )
}

fn node(i: usize, size: u32) -> NodeFacts {
    NodeFacts {
        address: format!("127.0.0.1:{}", 3400 + i),
        version: Some("11.8.3-MariaDB".to_owned()),
        reading: Some(reading("Primary", true, 4, size)),
        state_comment: Some("Synced".to_owned()),
        flow_control_paused: Some(0.0),
        suspect_timeout: Some(d(5)),
        inactive_timeout: Some(d(15)),
        ..NodeFacts::default()
    }
}

fn healthy() -> Vec<NodeFacts> {
    (0..3).map(|i| node(i, 3)).collect()
}

#[test]
fn a_healthy_three_node_cluster_with_default_settings_is_clean() {
    let fs = check_cluster(&healthy(), &cfg());
    assert!(worst(&fs) <= Severity::Info, "{fs:#?}");
    assert_eq!(fs.iter().filter(|f| f.check == "node-state").count(), 3);
    assert_eq!(find(&fs, "cluster-size").severity, Severity::Ok);
    assert_eq!(find(&fs, "flow-control").severity, Severity::Ok);
    assert_eq!(find(&fs, "cluster-timeouts").severity, Severity::Ok);
    // Default EVS: suspect 5 s < checkout 10 s, inactive 15 s is not.
    assert_eq!(find(&fs, "failover-window").severity, Severity::Info);
}

#[test]
fn unreachable_non_primary_and_not_ready_nodes_are_errors() {
    let mut n = node(0, 3);
    n.reading = None;
    n.error = Some("cannot connect to 127.0.0.1:3400: connection refused".to_owned());
    let f = node_state(&n);
    assert_eq!(f.severity, Severity::Error);
    assert!(f.message.contains("connection refused"), "{}", f.message);

    let mut n = node(1, 1);
    n.reading = Some(reading("non-Primary", false, 0, 1));
    let f = node_state(&n);
    assert_eq!(f.severity, Severity::Error);
    assert!(
        f.message.contains("not in the primary component"),
        "{}",
        f.message
    );

    n.reading = Some(reading("Primary", false, 4, 3));
    assert_eq!(node_state(&n).severity, Severity::Error);
}

#[test]
fn a_donor_or_joining_node_is_a_warning() {
    let mut n = node(2, 3);
    n.reading = Some(reading("Primary", true, 2, 3));
    n.state_comment = Some("Donor/Desynced".to_owned());
    let f = node_state(&n);
    assert_eq!(f.severity, Severity::Warn);
    assert!(f.message.contains("Donor/Desynced"), "{}", f.message);
    assert_eq!(
        f.numbers.get("wsrep_local_state"),
        Some(&serde_json::json!(2))
    );
    n.reading = Some(reading("Primary", true, 1, 3));
    assert_eq!(node_state(&n).severity, Severity::Warn);
    assert_eq!(node_state(&node(0, 3)).severity, Severity::Ok);
}

#[test]
fn size_disagreement_and_unlisted_members_are_warnings() {
    let mut nodes = healthy();
    nodes[2].reading = Some(reading("Primary", true, 4, 2));
    let f = cluster_size(&nodes);
    assert_eq!(f.severity, Severity::Warn);
    assert!(f.message.contains("127.0.0.1:3402 says 2"), "{}", f.message);

    let nodes: Vec<_> = (0..2).map(|i| node(i, 5)).collect();
    let f = cluster_size(&nodes);
    assert_eq!(f.severity, Severity::Warn);
    assert!(
        f.message.contains("5 members but the URL lists 2"),
        "{}",
        f.message
    );

    let mut nodes = healthy();
    nodes[0].reading = None;
    for n in &mut nodes[1..] {
        n.reading = Some(reading("Primary", true, 4, 2));
    }
    let f = cluster_size(&nodes);
    assert_eq!(f.severity, Severity::Warn);
    assert!(f.message.contains("lists 3 hosts"), "{}", f.message);

    let nodes: Vec<_> = (0..2).map(|i| node(i, 2)).collect();
    let f = cluster_size(&nodes);
    assert_eq!(f.severity, Severity::Warn);
    assert!(f.message.contains("quorum"), "{}", f.message);
}

#[test]
fn flow_control_above_a_tenth_is_a_warning_per_node() {
    let mut nodes = healthy();
    nodes[1].flow_control_paused = Some(0.35);
    let fs = flow_control(&nodes);
    assert_eq!(fs.len(), 1);
    assert_eq!(fs[0].severity, Severity::Warn);
    assert!(
        fs[0].message.contains("127.0.0.1:3401"),
        "{}",
        fs[0].message
    );
    assert!(fs[0].message.contains("35 %"), "{}", fs[0].message);
    nodes[1].flow_control_paused = Some(FLOW_CONTROL_WARN);
    assert_eq!(flow_control(&nodes)[0].severity, Severity::Ok);
}

#[test]
fn a_failover_window_not_below_the_checkout_timeout_is_a_warning() {
    let mut c = cfg();
    c.checkout_timeout = d(3);
    let f = failover_window(&healthy(), &c);
    assert_eq!(f.severity, Severity::Warn);
    assert_eq!(
        f.numbers.get("evs_suspect_timeout"),
        Some(&serde_json::json!(5.0))
    );
    assert!(f.fix.unwrap().contains("below 3s"));

    c.checkout_timeout = d(20);
    assert_eq!(failover_window(&healthy(), &c).severity, Severity::Ok);

    // The longest of the nodes' windows counts.
    let mut nodes = healthy();
    nodes[2].suspect_timeout = Some(d(30));
    nodes[2].inactive_timeout = Some(d(60));
    assert_eq!(failover_window(&nodes, &c).severity, Severity::Warn);

    for n in &mut nodes {
        n.suspect_timeout = None;
    }
    assert_eq!(failover_window(&nodes, &c).severity, Severity::Info);
}

#[test]
fn pool_timeouts_must_stay_above_the_cluster_managers() {
    let mut c = cfg();
    c.validation_timeout = Duration::from_millis(800);
    let f = manager_timeouts(&c);
    assert_eq!(f.severity, Severity::Warn);
    assert!(f.message.contains("check_timeout 1s"), "{}", f.message);
    c = cfg();
    c.connect_timeout = d(4);
    let f = manager_timeouts(&c);
    assert_eq!(f.severity, Severity::Warn);
    assert!(f.message.contains("node_wait 4s"), "{}", f.message);
}
