//! `poolwarden doctor mysql://…,…,…/db` against a real 3-node Galera
//! cluster from the testkit (short EVS timeouts: suspect 1 s, inactive 2 s).
//! One test: the cluster takes 11-30 s to start.

mod common;

use common::{finding, run};
use poolwarden_testkit::{Galera, MariaDb};

#[test]
fn doctor_reads_every_node_and_compares_the_failover_window() {
    let mut cluster = Galera::builder()
        .start()
        .unwrap_or_else(|e| panic!("starting a Galera cluster: {e}"));
    let url = cluster.multi_host_url(MariaDb::PW_USER, MariaDb::PW_PASSWORD, "test");

    // Healthy, with the default pool settings: every node Primary and
    // Synced, 3 members, failover window (1 s / 2 s) below checkout 10 s.
    let (code, out, err) = run(&["doctor", &url, "--json"]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(!out.contains(MariaDb::PW_PASSWORD), "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["mode"], "cluster");
    let nodes = v["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    for n in nodes {
        assert_eq!(n["wsrep_cluster_status"], "Primary", "{n}");
        assert_eq!(n["state_comment"], "Synced", "{n}");
        assert_eq!(n["wsrep_ready"], true, "{n}");
        assert_eq!(n["wsrep_cluster_size"], 3, "{n}");
        assert_eq!(n["suspect_timeout"], 1.0, "{n}");
        assert_eq!(n["inactive_timeout"], 2.0, "{n}");
        assert!(n["flow_control_paused"].is_number(), "{n}");
    }
    let f = finding(&v, "failover-window");
    assert_eq!(f["severity"], "ok", "{f}");
    assert_eq!(finding(&v, "cluster-size")["severity"], "ok");

    // A checkout timeout inside the failover window is a warning.
    let (code, out, err) = run(&["doctor", &url, "--checkout-timeout=1s"]);
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("warn") && l.contains("failover-window")),
        "{out}"
    );

    // A dead node is an error naming it; the others are still read.
    cluster.kill(2).expect("SIGKILL node 2");
    let dead = format!("127.0.0.1:{}", cluster.port(2));
    let (code, out, err) = run(&["doctor", &url]);
    assert_eq!(code, 2, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("error") && l.contains("node-state") && l.contains(&dead)),
        "{out}"
    );
    assert!(!out.contains(MariaDb::PW_PASSWORD), "{out}");
    assert!(out.contains(&format!("{}:***@", MariaDb::PW_USER)), "{out}");
}
