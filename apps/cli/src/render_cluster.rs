//! The report of `doctor mysql://…,…/db` (a cluster), for people and for
//! scripts. Shares the table and summary of `render`.

use std::fmt::Write as _;

use poolwarden::PoolConfig;
use serde_json::{json, Value};

use crate::checks::{fmt_opt, Finding};
use crate::cluster::NodeFacts;
use crate::render::{kv, pool_and_findings, summary_json, BOLD, DIM};

/// One line per node: its state, size, flow control and EVS timeouts.
fn node_line(n: &NodeFacts) -> String {
    let Some(r) = &n.reading else {
        return format!("unreachable: {}", n.error.as_deref().unwrap_or("not read"));
    };
    if !r.galera {
        return format!(
            "not Galera (wsrep_on OFF), read_only {}",
            if r.read_only { "ON" } else { "OFF" }
        );
    }
    let mut s = format!(
        "{} {}, ready {}, size {}, view {}",
        r.cluster_status,
        n.state_comment.as_deref().unwrap_or("?"),
        if r.ready { "ON" } else { "OFF" },
        r.cluster_size,
        r.conf_id
    );
    if let Some(p) = n.flow_control_paused {
        let _ = write!(s, ", fc paused {p:.2}");
    }
    let _ = write!(
        s,
        ", evs suspect {} inactive {}",
        fmt_opt(n.suspect_timeout),
        fmt_opt(n.inactive_timeout)
    );
    s
}

/// The report, for people.
pub(crate) fn cluster_human(
    target: &str,
    nodes: &[NodeFacts],
    cfg: &PoolConfig,
    pool_source: &str,
    findings: &[Finding],
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{BOLD}Cluster{BOLD:#}  {target}  {DIM}{} nodes{DIM:#}",
        nodes.len()
    );
    let rows: Vec<(String, String)> = nodes
        .iter()
        .map(|n| (n.address.clone(), node_line(n)))
        .collect();
    kv(&mut out, &rows);
    pool_and_findings(&mut out, pool_source, cfg, findings);
    out
}

/// The report, for scripts.
pub(crate) fn cluster_json(
    target: &str,
    nodes: &[NodeFacts],
    cfg: &PoolConfig,
    findings: &[Finding],
) -> Value {
    let nodes: Vec<Value> = nodes
        .iter()
        .map(|n| {
            let mut v = json!(n);
            if let (Some(r), Some(obj)) = (&n.reading, v.as_object_mut()) {
                obj.insert("galera".into(), r.galera.into());
                obj.insert("wsrep_ready".into(), r.ready.into());
                obj.insert(
                    "wsrep_cluster_status".into(),
                    r.cluster_status.clone().into(),
                );
                obj.insert("wsrep_local_state".into(), r.local_state.into());
                obj.insert("wsrep_cluster_size".into(), r.cluster_size.into());
                obj.insert("wsrep_cluster_conf_id".into(), r.conf_id.into());
                obj.insert("read_only".into(), r.read_only.into());
                obj.insert(
                    "unusable".into(),
                    r.unusable().map(|d| d.to_string()).into(),
                );
            }
            v
        })
        .collect();
    json!({
        "mode": "cluster",
        "target": target,
        "nodes": nodes,
        "pool": cfg,
        "findings": findings,
        "summary": summary_json(findings),
    })
}
