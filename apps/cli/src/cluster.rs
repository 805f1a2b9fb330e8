//! What each node of a cluster says about itself, for `poolwarden doctor
//! mysql://u:p@h1:p1,h2:p2/db`. The URL is split, and each node's health
//! read, by their owner (`poolwarden_mysql`'s cluster module); this module
//! adds the facts only the doctor wants: the state's name, flow control and
//! the EVS timeouts that set the failover window.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use poolwarden_mysql::{read_reading, split_url, Reading};
use serde::Serialize;

use crate::error::DoctorError;
use crate::facts::{mysql::connect, Target};

/// The doctor's extra status and variables, beyond the health reading.
const EXTRA_STATUS_SQL: &str = "SHOW GLOBAL STATUS WHERE Variable_name IN \
     ('wsrep_local_state_comment', 'wsrep_flow_control_paused')";
const PROVIDER_OPTIONS_SQL: &str =
    "SHOW GLOBAL VARIABLES WHERE Variable_name = 'wsrep_provider_options'";

/// One node as the doctor saw it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct NodeFacts {
    /// `host:port` as written in the URL (never the password).
    pub(crate) address: String,
    /// Why the node could not be read, if it could not (one line, no password).
    pub(crate) error: Option<String>,
    /// `VERSION()`.
    pub(crate) version: Option<String>,
    /// The health reading the pool's cluster manager takes.
    #[serde(skip)]
    pub(crate) reading: Option<Reading>,
    /// `wsrep_local_state_comment`: `Synced`, `Donor/Desynced`, `Joining`...
    pub(crate) state_comment: Option<String>,
    /// `wsrep_flow_control_paused`: the fraction of time since the last
    /// `FLUSH STATUS` that replication was paused by flow control (0..1).
    pub(crate) flow_control_paused: Option<f64>,
    /// `evs.suspect_timeout` from `wsrep_provider_options`: how long a
    /// silent node goes before the others suspect it and evict it.
    #[serde(serialize_with = "ser_opt_secs")]
    pub(crate) suspect_timeout: Option<Duration>,
    /// `evs.inactive_timeout`: the hard bound after which a silent node is
    /// dropped even without agreement.
    #[serde(serialize_with = "ser_opt_secs")]
    pub(crate) inactive_timeout: Option<Duration>,
}

fn ser_opt_secs<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

/// The `(host, single-host URL)` pairs of a multi-host MySQL URL, or
/// `None` when `raw` is not one (a single host, or another scheme).
pub(crate) fn nodes_of(raw: &str) -> Option<Vec<(String, String)>> {
    let raw = normalise(raw);
    if !raw.starts_with("mysql://") {
        return None;
    }
    split_url(&raw).ok().filter(|nodes| nodes.len() > 1)
}

/// `mariadb://` is the doctor's alias of `mysql://`.
fn normalise(raw: &str) -> String {
    match raw.strip_prefix("mariadb://") {
        Some(rest) => format!("mysql://{rest}"),
        None => raw.to_owned(),
    }
}

/// Reads every node at once, each bounded by `timeout`. A node that cannot
/// be read is a fact (`error`), not a failure of the doctor.
pub(crate) async fn read_nodes(nodes: Vec<(String, String)>, timeout: Duration) -> Vec<NodeFacts> {
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (address, url)) in nodes.into_iter().enumerate() {
        tasks.spawn(async move { (i, read_node(address, &url, timeout).await) });
    }
    let mut out: Vec<(usize, NodeFacts)> = Vec::new();
    while let Some(done) = tasks.join_next().await {
        if let Ok(pair) = done {
            out.push(pair);
        }
    }
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, f)| f).collect()
}

async fn read_node(address: String, url: &str, timeout: Duration) -> NodeFacts {
    let failed = |address: String, e: DoctorError| NodeFacts {
        address,
        error: Some(e.to_string()),
        ..NodeFacts::default()
    };
    let target = match Target::parse(url) {
        Ok(t) => t,
        Err(e) => return failed(address, e),
    };
    let mut conn = match connect(&target, timeout).await {
        Ok(c) => c,
        Err(e) => return failed(address, e),
    };
    let read = tokio::time::timeout(timeout, read_on(&mut conn)).await;
    // Close cleanly either way, so the doctor never counts as an aborted client.
    let _ = tokio::time::timeout(timeout, conn.disconnect()).await;
    match read {
        Err(_) => failed(
            address,
            DoctorError::Query(format!(
                "no answer within {}",
                humantime::format_duration(timeout)
            )),
        ),
        Ok(Err(e)) => failed(address, DoctorError::Query(e.to_string())),
        Ok(Ok(mut facts)) => {
            facts.address = address;
            facts
        }
    }
}

async fn read_on(conn: &mut Conn) -> mysql_async::Result<NodeFacts> {
    let version: Option<String> = conn.query_first("SELECT VERSION()").await?;
    let reading = read_reading(conn).await?;
    let mut facts = NodeFacts {
        version,
        ..NodeFacts::default()
    };
    for (name, value) in conn.query::<(String, String), _>(EXTRA_STATUS_SQL).await? {
        match name.to_ascii_lowercase().as_str() {
            "wsrep_local_state_comment" => facts.state_comment = Some(value),
            "wsrep_flow_control_paused" => facts.flow_control_paused = value.trim().parse().ok(),
            _ => {}
        }
    }
    if let Some((_, options)) = conn
        .query_first::<(String, String), _>(PROVIDER_OPTIONS_SQL)
        .await?
    {
        facts.suspect_timeout = provider_option(&options, "evs.suspect_timeout").and_then(iso8601);
        facts.inactive_timeout =
            provider_option(&options, "evs.inactive_timeout").and_then(iso8601);
    }
    facts.reading = Some(reading);
    Ok(facts)
}

/// The value of `key` in `wsrep_provider_options` (`a = 1; b.c = PT5S; ...`).
pub(crate) fn provider_option<'a>(options: &'a str, key: &str) -> Option<&'a str> {
    options.split(';').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k.trim() == key).then(|| v.trim())
    })
}

/// An ISO 8601 duration as Galera writes its timeouts: `PT5S`, `PT1.5S`,
/// `PT1M30S`, `PT2H`, `P1D`. `None` for anything else.
pub(crate) fn iso8601(s: &str) -> Option<Duration> {
    let rest = s.trim().strip_prefix('P')?;
    let (date, time) = rest.split_once('T').unwrap_or((rest, ""));
    let mut secs = 0.0_f64;
    for (part, units) in [
        (date, &[('D', 86_400.0)][..]),
        (time, &[('H', 3600.0), ('M', 60.0), ('S', 1.0)][..]),
    ] {
        let mut number = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' {
                number.push(c);
            } else {
                let (_, factor) = units.iter().find(|(u, _)| *u == c)?;
                secs += number.parse::<f64>().ok()? * factor;
                number.clear();
            }
        }
        if !number.is_empty() {
            return None;
        }
    }
    (rest != "T" && !rest.is_empty()).then(|| Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn galera_durations() {
        assert_eq!(iso8601("PT5S"), Some(Duration::from_secs(5)));
        assert_eq!(iso8601("PT1.5S"), Some(Duration::from_millis(1500)));
        assert_eq!(iso8601("PT1M30S"), Some(Duration::from_secs(90)));
        assert_eq!(iso8601("P1DT1H"), Some(Duration::from_secs(90_000)));
        for bad in ["", "P", "PT", "5S", "PT5X", "PT5"] {
            assert_eq!(iso8601(bad), None, "{bad}");
        }
    }

    #[test]
    fn provider_options_by_key() {
        let o = "base_port = 4567; evs.inactive_timeout = PT15S; evs.suspect_timeout = PT5S; gcs.fc_limit = 16";
        assert_eq!(provider_option(o, "evs.suspect_timeout"), Some("PT5S"));
        assert_eq!(provider_option(o, "evs.inactive_timeout"), Some("PT15S"));
        assert_eq!(provider_option(o, "evs.install_timeout"), None);
    }

    #[test]
    fn only_multi_host_mysql_urls_are_clusters() {
        let nodes = nodes_of("mariadb://u:p@h1:1,h2:2/db").unwrap();
        assert_eq!(
            nodes[1],
            ("h2:2".to_owned(), "mysql://u:p@h2:2/db".to_owned())
        );
        assert!(nodes_of("mysql://u:p@h1:1/db").is_none());
        assert!(nodes_of("postgres://u@h1,h2/db").is_none());
        assert!(nodes_of("http://h1,h2/debug/pool").is_none());
    }
}
