//! A private 3-node Galera cluster: start, replication, kill and rejoin by
//! IST, pause and resume, cleanup.

use std::time::Duration;

use poolwarden_testkit::Galera;

const WAIT: Duration = Duration::from_secs(60);

#[test]
fn three_nodes_replicate_survive_a_kill_and_a_pause_and_clean_up() {
    let mut cluster = Galera::builder().start().unwrap();
    assert_eq!(cluster.len(), 3);
    for i in 0..3 {
        let s = cluster.status(i).unwrap();
        assert!(s.is_synced(), "node {i}: {s:?}");
        assert_eq!(s.cluster_size, 3, "node {i}: {s:?}");
    }
    let url = cluster.multi_host_url("u", "p", "test");
    assert_eq!(url.matches("127.0.0.1:").count(), 3, "{url}");

    // Writes on one node are seen on the others.
    cluster
        .admin(
            0,
            "CREATE TABLE test.t (id INT PRIMARY KEY); INSERT INTO test.t VALUES (1)",
        )
        .unwrap();
    assert_eq!(
        cluster.admin(2, "SELECT COUNT(*) FROM test.t").unwrap(),
        [["1"]]
    );

    // A crashed node leaves the view; restarted, it rejoins and catches up.
    cluster.kill(1).unwrap();
    cluster.wait_settled(Some(2), WAIT).unwrap();
    cluster.admin(0, "INSERT INTO test.t VALUES (2)").unwrap();
    cluster.start_node(1).unwrap();
    cluster.wait_settled(Some(3), WAIT).unwrap();
    assert_eq!(
        cluster.admin(1, "SELECT COUNT(*) FROM test.t").unwrap(),
        [["2"]]
    );

    // A frozen node drops out of the primary component; resumed, it comes back.
    cluster.pause(2).unwrap();
    cluster.wait_settled(Some(2), WAIT).unwrap();
    cluster.resume(2).unwrap();
    cluster.wait_settled(Some(3), WAIT).unwrap();

    let pids: Vec<u32> = (0..3).filter_map(|i| cluster.pid(i)).collect();
    drop(cluster);
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| s.contains(") Z ")),
            "node process {pid} survived the drop"
        );
    }
}
