//! A cluster from a multi-host URL: each node's state, the members' view of
//! the cluster, flow control, and the failover window (the EVS timeouts)
//! against the pool's timeouts.

use std::time::Duration;

use poolwarden::PoolConfig;
use poolwarden_mysql::{ClusterBuilder, DownReason};

use super::*;
use crate::cluster::NodeFacts;

/// `wsrep_flow_control_paused` above this: replication was paused a tenth
/// of the time, and every commit waited for the slowest node.
pub(crate) const FLOW_CONTROL_WARN: f64 = 0.1;

/// Every check of `poolwarden doctor mysql://…,…/db`. Worst first.
pub(crate) fn check_cluster(nodes: &[NodeFacts], cfg: &PoolConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    out.extend(config_sanity(cfg));
    out.push(checkout_timeout(cfg));
    out.extend(nodes.iter().map(node_state));
    out.push(cluster_size(nodes));
    out.extend(flow_control(nodes));
    out.push(failover_window(nodes, cfg));
    out.push(manager_timeouts(cfg));
    sort_worst_first(&mut out);
    out
}

/// One node: reachable, and usable by the pool's cluster manager (the
/// manager's own rule, `Reading::unusable`).
pub(crate) fn node_state(node: &NodeFacts) -> Finding {
    let a = &node.address;
    let Some(r) = &node.reading else {
        let why = node.error.as_deref().unwrap_or("not read");
        return Finding::new(
            Severity::Error,
            "node-state",
            None,
            format!("node {a}: {why}"),
        )
        .fix("start the node, or fix its host:port in the URL; until then the pool has one node fewer to fail over to");
    };
    let state = node.state_comment.as_deref().unwrap_or("?");
    let facts = format!(
        "wsrep_cluster_status {}, wsrep_local_state {} ({state}), wsrep_ready {}",
        r.cluster_status,
        r.local_state,
        if r.ready { "ON" } else { "OFF" }
    );
    let finding = |severity, message: String| {
        Finding::new(severity, "node-state", None, message)
            .num("wsrep_local_state", r.local_state)
            .num("wsrep_cluster_size", r.cluster_size)
    };
    if !r.galera {
        return finding(
            Severity::Info,
            format!("node {a} is not a Galera node (wsrep_on OFF): only read_only decides whether the pool uses it"),
        );
    }
    match r.unusable() {
        None => finding(Severity::Ok, format!("node {a}: {facts}")),
        Some(reason @ (DownReason::NotSynced { .. } | DownReason::ReadOnly)) => finding(
            Severity::Warn,
            format!("node {a} is {reason}: the pool does not use it until it is Synced and writable ({facts})"),
        )
        .fix("wait for the state transfer to finish, or check the node's error log if it stays so"),
        Some(reason) => finding(
            Severity::Error,
            format!("node {a} is {reason}: the pool never uses it; it refuses or may lose writes ({facts})"),
        )
        .fix("check the node's network and error log; a node outside the primary component must rejoin (or the cluster be re-bootstrapped if no node is Primary)"),
    }
}

/// The members agree on the cluster's size, and the URL lists all of them.
pub(crate) fn cluster_size(nodes: &[NodeFacts]) -> Finding {
    let listed = nodes.len();
    let sizes: Vec<(&str, u32)> = nodes
        .iter()
        .filter_map(|n| {
            let r = n.reading.as_ref().filter(|r| r.galera)?;
            Some((n.address.as_str(), r.cluster_size))
        })
        .collect();
    let Some(&(_, size)) = sizes.first() else {
        return Finding::new(
            Severity::Info,
            "cluster-size",
            None,
            "no Galera node could be read: the cluster's size is unknown",
        );
    };
    let finding = |severity, message: String| {
        Finding::new(severity, "cluster-size", None, message)
            .num("wsrep_cluster_size", size)
            .num("listed", listed)
    };
    if sizes.iter().any(|&(_, s)| s != size) {
        let each: Vec<String> = sizes.iter().map(|(a, s)| format!("{a} says {s}")).collect();
        return finding(
            Severity::Warn,
            format!(
                "the nodes disagree on the cluster's size ({}): the cluster is split, or a node is joining or leaving",
                each.join(", ")
            ),
        )
        .fix("run the doctor again in a minute; if it persists, check which nodes are in the primary component");
    }
    let size_us = usize::try_from(size).unwrap_or(usize::MAX);
    if size_us > listed {
        return finding(
            Severity::Warn,
            format!("the cluster has {size} members but the URL lists {listed}: the pool cannot fail over to the others"),
        )
        .fix("list every member's host:port in the URL");
    }
    if size_us < listed {
        return finding(
            Severity::Warn,
            format!("the URL lists {listed} hosts but the cluster has {size} members: some listed nodes are not in it"),
        )
        .fix("bring the missing nodes back, or remove them from the URL");
    }
    if size == 2 {
        return finding(
            Severity::Warn,
            "the cluster has 2 members: when one fails the other loses quorum (non-Primary) and refuses writes".to_owned(),
        )
        .fix("run 3 nodes (or 2 and a garbd arbitrator)");
    }
    finding(
        Severity::Ok,
        format!("{size} members, all listed in the URL, all agree"),
    )
}

/// Flow control: replication paused a noticeable share of the time (every
/// commit in the cluster waits for the slowest node).
pub(crate) fn flow_control(nodes: &[NodeFacts]) -> Vec<Finding> {
    let slow: Vec<Finding> = nodes
        .iter()
        .filter_map(|n| Some((n, n.flow_control_paused?)))
        .filter(|&(_, p)| p > FLOW_CONTROL_WARN)
        .map(|(n, p)| {
            Finding::new(
                Severity::Warn,
                "flow-control",
                None,
                format!(
                    "node {}: replication paused by flow control {:.0} % of the time (wsrep_flow_control_paused {p:.2}, above {FLOW_CONTROL_WARN}): commits wait for the slowest node, and checkouts queue behind them",
                    n.address,
                    p * 100.0
                ),
            )
            .num("wsrep_flow_control_paused", p)
            .fix("find the slow node (disk, CPU, long transactions); raise gcs.fc_limit only if it is merely bursty")
        })
        .collect();
    if !slow.is_empty() {
        return slow;
    }
    let worst = nodes
        .iter()
        .filter_map(|n| n.flow_control_paused)
        .fold(None, |m: Option<f64>, p| Some(m.map_or(p, |m| m.max(p))));
    match worst {
        Some(p) => vec![Finding::new(
            Severity::Ok,
            "flow-control",
            None,
            format!("replication paused by flow control at most {p:.2} of the time"),
        )
        .num("wsrep_flow_control_paused", p)],
        None => Vec::new(),
    }
}

/// The failover window: after a node dies the survivors keep it in their
/// view, and stall every commit, until `evs.suspect_timeout` evicts it (at
/// worst `evs.inactive_timeout`). Borrowers' commands hang that long and
/// hold their connections, so checkouts waiting meanwhile time out unless
/// `checkout_timeout` is longer.
pub(crate) fn failover_window(nodes: &[NodeFacts], cfg: &PoolConfig) -> Finding {
    let max = |f: fn(&NodeFacts) -> Option<Duration>| nodes.iter().filter_map(f).max();
    let suspect = max(|n| n.suspect_timeout);
    let inactive = max(|n| n.inactive_timeout);
    let c = cfg.checkout_timeout;
    let finding = |severity, message: String| {
        Finding::new(severity, "failover-window", Some("F7"), message)
            .opt_secs("evs_suspect_timeout", suspect)
            .opt_secs("evs_inactive_timeout", inactive)
            .secs("checkout_timeout", c)
    };
    let Some(s) = suspect else {
        return finding(
            Severity::Info,
            "evs.suspect_timeout could not be read (wsrep_provider_options): the failover window is unknown".to_owned(),
        );
    };
    if s >= c {
        return finding(
            Severity::Warn,
            format!(
                "evs.suspect_timeout {} is not below checkout_timeout {}: when a node dies the survivors stall commits for {}, and callers waiting for a connection meanwhile fail",
                fmt_d(s),
                fmt_d(c),
                fmt_d(s)
            ),
        )
        .fix(format!(
            "lower evs.suspect_timeout (wsrep_provider_options) below {}, or raise checkout_timeout above it",
            fmt_d(c)
        ));
    }
    match inactive {
        Some(i) if i >= c => finding(
            Severity::Info,
            format!(
                "evs.suspect_timeout {} is below checkout_timeout {}, but evs.inactive_timeout {} is not: when the survivors cannot agree on the dead node, callers waiting for a connection fail",
                fmt_d(s),
                fmt_d(c),
                fmt_d(i)
            ),
        ),
        _ => finding(
            Severity::Ok,
            format!(
                "failover window (evs.suspect_timeout {}, evs.inactive_timeout {}) below checkout_timeout {}",
                fmt_d(s),
                fmt_opt(inactive),
                fmt_d(c)
            ),
        ),
    }
}

/// The pool's timeouts against the cluster manager's defaults: its
/// `validate` bounds its ping by `check_timeout`, and a connect waits up
/// to `node_wait` for a usable node during a failover.
pub(crate) fn manager_timeouts(cfg: &PoolConfig) -> Finding {
    let check = ClusterBuilder::DEFAULT_CHECK_TIMEOUT;
    let wait = ClusterBuilder::DEFAULT_NODE_WAIT;
    let finding = |severity, message: String| {
        Finding::new(severity, "cluster-timeouts", Some("F10"), message)
            .secs("validation_timeout", cfg.validation_timeout)
            .secs("check_timeout", check)
            .secs("connect_timeout", cfg.connect_timeout)
            .secs("node_wait", wait)
    };
    let mut problems = Vec::new();
    if cfg.validation_timeout <= check {
        problems.push(format!(
            "validation_timeout {} is not above the cluster manager's check_timeout {}: a slow node's ping times out in the pool first, which retires every node's connections",
            fmt_d(cfg.validation_timeout),
            fmt_d(check)
        ));
    }
    if cfg.connect_timeout <= wait {
        problems.push(format!(
            "connect_timeout {} is not above the cluster manager's node_wait {}: during a failover connects fail with a bare timeout instead of the error naming each node's state",
            fmt_d(cfg.connect_timeout),
            fmt_d(wait)
        ));
    }
    if problems.is_empty() {
        finding(
            Severity::Ok,
            format!(
                "validation_timeout {} above check_timeout {}, connect_timeout {} above node_wait {} (the cluster manager's defaults)",
                fmt_d(cfg.validation_timeout),
                fmt_d(check),
                fmt_d(cfg.connect_timeout),
                fmt_d(wait)
            ),
        )
    } else {
        finding(Severity::Warn, problems.join("; "))
            .fix("raise the pool's timeouts above the cluster manager's, or lower check_timeout/node_wait on the ClusterBuilder")
    }
}
