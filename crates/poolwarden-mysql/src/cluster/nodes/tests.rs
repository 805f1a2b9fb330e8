//! The routing and health rules, with plain readings and instants.

use super::*;

fn nodes(routing: Routing) -> Nodes {
    let list = (0..3)
        .map(|i| {
            Node::new(
                MySqlManager::new(mysql_async::OptsBuilder::default()),
                format!("n{i}"),
            )
        })
        .collect();
    Nodes::new(
        list,
        Rules {
            routing,
            accept: Accept::default(),
            readmit_after: Duration::from_secs(2),
        },
    )
}

fn synced(conf_id: u64) -> Reading {
    Reading {
        galera: true,
        ready: true,
        cluster_status: "Primary".into(),
        local_state: 4,
        conf_id,
        ..Reading::default()
    }
}

fn single_writer() -> Routing {
    Routing::SingleWriter {
        failback_after: Duration::from_secs(10),
    }
}

#[test]
fn writer_fails_over_to_the_next_node_and_retires_only_its_connections() {
    let n = nodes(single_writer());
    let t0 = Instant::now();
    for i in 0..3 {
        n.observe(i, Ok(synced(3)), t0);
    }
    assert_eq!(n.pick(t0), Some(0));
    n.down(0, Some(0), DownReason::Unreachable, Some("refused".into()));
    assert_eq!(
        [n.generation(0), n.generation(1), n.generation(2)],
        [1, 0, 0]
    );
    assert_eq!(n.pick(t0), Some(1));
    // A second report of the same failure changes nothing.
    n.down(0, Some(0), DownReason::Unreachable, None);
    assert_eq!(n.generation(0), 1);
    assert!(n.describe().contains("n0: unreachable (refused)"));
}

#[test]
fn marking_a_node_down_cuts_its_commands_unless_it_merely_lags() {
    let n = nodes(single_writer());
    let t0 = Instant::now();
    for i in 0..3 {
        n.observe(i, Ok(synced(3)), t0);
    }
    let (on0, on1) = (n.nodes[0].switch(), n.nodes[1].switch());
    let mut donor = synced(3);
    donor.local_state = 2;
    n.observe(1, Ok(donor), t0);
    assert!(!on1.is_flipped(), "a donor keeps serving what it started");
    n.observe(0, Err("no answer within 1s".into()), t0);
    assert!(on0.is_flipped(), "an unreachable node's commands are cut");
    let text = on0.reason().to_string();
    assert!(
        text.contains("n0") && text.contains("unreachable"),
        "{text}"
    );
    assert!(
        !n.nodes[0].switch().is_flipped(),
        "new connections get a fresh switch"
    );
    // Out of the primary component, but answering: not cut.
    let mut cut_off = synced(3);
    cut_off.cluster_status = "non-Primary".into();
    n.observe(1, Ok(cut_off), t0);
    assert!(!on1.is_flipped());
    // Down already (not Synced), then unreachable: cut.
    n.observe(1, Err("no answer within 1s".into()), t0);
    assert!(on1.is_flipped());
    assert!(!n.nodes[2].switch().is_flipped());
}

#[test]
fn a_returning_node_waits_for_its_view_and_readmit_after_then_fails_back() {
    let n = nodes(single_writer());
    let t0 = Instant::now();
    for i in 0..3 {
        n.observe(i, Ok(synced(3)), t0);
    }
    assert_eq!(n.pick(t0), Some(0));
    n.observe(0, Err("timed out".into()), t0);
    n.observe(1, Ok(synced(4)), t0);
    n.observe(2, Ok(synced(4)), t0);
    assert_eq!(n.pick(t0), Some(1));
    // Resumed: its old view says Synced, but it is behind.
    n.observe(0, Ok(synced(3)), t0 + Duration::from_secs(1));
    assert_eq!(
        n.snapshot()[0].state,
        NodeState::Down(DownReason::StaleView)
    );
    // Rejoined (same view as the others): good readings must last.
    let t1 = t0 + Duration::from_secs(2);
    n.observe(0, Ok(synced(5)), t1);
    assert_eq!(n.snapshot()[0].state, NodeState::Recovering);
    n.observe(0, Ok(synced(5)), t1 + Duration::from_secs(2));
    assert_eq!(n.snapshot()[0].state, NodeState::Up);
    // Fail back only after it has been up for failback_after.
    assert_eq!(n.pick(t1 + Duration::from_secs(3)), Some(1));
    let g1 = n.generation(1);
    assert_eq!(n.pick(t1 + Duration::from_secs(13)), Some(0));
    assert_eq!(n.generation(1), g1 + 1, "the interim writer is drained");
}

#[test]
fn non_primary_or_donor_nodes_are_never_picked() {
    let n = nodes(Routing::Any);
    let t0 = Instant::now();
    let mut donor = synced(3);
    donor.local_state = 2;
    let mut cut_off = synced(3);
    cut_off.cluster_status = "non-Primary".into();
    n.observe(0, Ok(donor.clone()), t0);
    n.observe(1, Ok(cut_off), t0);
    n.observe(2, Ok(synced(3)), t0);
    for _ in 0..5 {
        assert_eq!(n.pick(t0), Some(2));
    }
    assert_eq!(
        n.admit_new(0, n.generation(0), &donor, t0),
        Err(DownReason::NotSynced { state: 2 })
    );
}

#[test]
fn when_no_node_is_up_one_good_reading_suffices() {
    let n = nodes(single_writer());
    let t0 = Instant::now();
    for i in 0..3 {
        n.observe(i, Err("refused".into()), t0);
    }
    assert_eq!(n.pick(t0), None);
    n.observe(2, Ok(synced(1)), t0);
    assert_eq!(n.pick(t0), Some(2));
}

#[test]
fn any_spreads_by_open_connections() {
    let n = nodes(Routing::Any);
    n.nodes[0].open.store(2, Ordering::Relaxed);
    n.nodes[1].open.store(1, Ordering::Relaxed);
    n.nodes[2].open.store(3, Ordering::Relaxed);
    assert_eq!(n.pick(Instant::now()), Some(1));
}
