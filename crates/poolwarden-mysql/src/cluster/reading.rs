//! What a node says about itself, and whether that makes it usable.

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use super::nodes::DownReason;

/// The Galera status variables the health rule reads.
const STATUS_SQL: &str = "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_ready', \
     'wsrep_cluster_status', 'wsrep_local_state', 'wsrep_cluster_size', 'wsrep_cluster_conf_id')";
/// Whether Galera is on, and the read-only switches of a replica.
const VARIABLES_SQL: &str = "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('wsrep_on', \
     'wsrep_desync', 'read_only', 'super_read_only', 'innodb_read_only')";

/// `wsrep_local_state` of a node that is Synced.
const SYNCED: u32 = 4;
/// `wsrep_local_state` of a donor or a desynced node.
const DONOR_DESYNCED: u32 = 2;

/// One reading of a node's state, taken by the health check or on a new
/// connection.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
#[non_exhaustive]
pub struct Reading {
    /// `wsrep_on`: the node is a Galera node. Otherwise the `wsrep_*`
    /// fields mean nothing and only `read_only` counts.
    pub galera: bool,
    /// `wsrep_ready`.
    pub ready: bool,
    /// `wsrep_cluster_status`: `Primary`, `non-Primary` or `Disconnected`.
    pub cluster_status: String,
    /// `wsrep_local_state`: 1 Joining, 2 Donor/Desynced, 3 Joined, 4 Synced.
    pub local_state: u32,
    /// `wsrep_desync`: with state 2, desynced on purpose rather than a donor.
    pub desync: bool,
    /// `wsrep_cluster_size`.
    pub cluster_size: u32,
    /// `wsrep_cluster_conf_id`: the view id, the same on all members of a view.
    pub conf_id: u64,
    /// `read_only`, `super_read_only` or `innodb_read_only` is on.
    pub read_only: bool,
}

/// What the rule accepts besides Synced.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Accept {
    pub(crate) donor: bool,
    pub(crate) desynced: bool,
    /// A read-only node is usable (read routing).
    pub(crate) read_only: bool,
}

impl Reading {
    /// Why the pool may not use this node now, or `None` if it may.
    pub(crate) fn unfit(&self, accept: Accept) -> Option<DownReason> {
        if self.galera {
            if self.cluster_status != "Primary" {
                return Some(DownReason::NonPrimary);
            }
            if !self.ready {
                return Some(DownReason::NotReady);
            }
            match self.local_state {
                SYNCED => {}
                DONOR_DESYNCED if self.desync && accept.desynced => {}
                DONOR_DESYNCED if !self.desync && accept.donor => {}
                state => return Some(DownReason::NotSynced { state }),
            }
        }
        if self.read_only && !accept.read_only {
            return Some(DownReason::ReadOnly);
        }
        None
    }

    /// Why a [`ClusterManager`](super::ClusterManager) with the default
    /// settings (no donor, no desynced node, writer routing) would not use
    /// this node, or `None` if it would.
    pub fn unusable(&self) -> Option<DownReason> {
        self.unfit(Accept::default())
    }

    /// A reading from `(name, value)` rows of `SHOW GLOBAL STATUS` and
    /// `SHOW GLOBAL VARIABLES` (names case-insensitive; others ignored).
    pub fn parse<I>(rows: I) -> Reading
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let on = |v: &str| v.eq_ignore_ascii_case("ON") || v == "1";
        let mut r = Reading::default();
        for (name, value) in rows {
            match name.to_ascii_lowercase().as_str() {
                "wsrep_on" => r.galera = on(&value),
                "wsrep_ready" => r.ready = on(&value),
                "wsrep_cluster_status" => r.cluster_status = value,
                "wsrep_local_state" => r.local_state = value.parse().unwrap_or(0),
                "wsrep_desync" => r.desync = on(&value),
                "wsrep_cluster_size" => r.cluster_size = value.parse().unwrap_or(0),
                "wsrep_cluster_conf_id" => r.conf_id = value.parse().unwrap_or(0),
                "read_only" | "super_read_only" | "innodb_read_only" => {
                    r.read_only |= on(&value);
                }
                _ => {}
            }
        }
        r
    }
}

/// A node's [`Reading`]: two round trips on `conn` (the raw driver
/// connection: this is the manager's or the doctor's traffic, not a
/// borrower's).
///
/// # Errors
///
/// The driver's error for a failed query.
///
/// # Cancel safety
///
/// Not cancel safe: dropped midway, `conn` may hold unread results; close it.
pub async fn read_reading(conn: &mut Conn) -> mysql_async::Result<Reading> {
    let mut rows: Vec<(String, String)> = conn.query(STATUS_SQL).await?;
    rows.extend(conn.query::<(String, String), _>(VARIABLES_SQL).await?);
    Ok(Reading::parse(rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn galera(status: &str, ready: &str, state: &str) -> Reading {
        Reading::parse(
            [
                ("wsrep_on", "ON"),
                ("wsrep_cluster_status", status),
                ("wsrep_ready", ready),
                ("wsrep_local_state", state),
                ("wsrep_cluster_conf_id", "7"),
                ("read_only", "OFF"),
            ]
            .map(|(n, v)| (n.to_owned(), v.to_owned())),
        )
    }

    #[test]
    fn synced_primary_ready_is_fit() {
        let r = galera("Primary", "ON", "4");
        assert_eq!(r.conf_id, 7);
        assert_eq!(r.unfit(Accept::default()), None);
    }

    #[test]
    fn non_primary_not_ready_and_not_synced_are_unfit() {
        let accept = Accept::default();
        assert_eq!(
            galera("non-Primary", "OFF", "4").unfit(accept),
            Some(DownReason::NonPrimary)
        );
        assert_eq!(
            galera("Primary", "OFF", "4").unfit(accept),
            Some(DownReason::NotReady)
        );
        assert_eq!(
            galera("Primary", "ON", "1").unfit(accept),
            Some(DownReason::NotSynced { state: 1 })
        );
        assert_eq!(
            galera("Primary", "ON", "2").unfit(accept),
            Some(DownReason::NotSynced { state: 2 })
        );
    }

    #[test]
    fn donor_and_desynced_only_when_allowed() {
        let donor = galera("Primary", "ON", "2");
        let accept = Accept {
            donor: true,
            ..Accept::default()
        };
        assert_eq!(donor.unfit(accept), None);
        let mut desynced = donor.clone();
        desynced.desync = true;
        assert!(desynced.unfit(accept).is_some());
        let accept = Accept {
            desynced: true,
            ..Accept::default()
        };
        assert_eq!(desynced.unfit(accept), None);
        assert!(donor.unfit(accept).is_some());
    }

    #[test]
    fn node_status_serialises_for_status_pages() {
        use super::super::nodes::{NodeState, NodeStatus};
        let status = NodeStatus {
            address: "db2:3306".to_owned(),
            state: NodeState::Down(DownReason::NotSynced { state: 2 }),
            open: 0,
            writer: false,
            generation: 3,
            reading: Some(galera("Primary", "ON", "2")),
            last_error: None,
        };
        let v = serde_json::to_value(&status).unwrap();
        assert_eq!(v["address"], "db2:3306");
        assert_eq!(v["state"]["down"]["not_synced"]["state"], 2);
        assert_eq!(v["reading"]["local_state"], 2);
        assert_eq!(v["reading"]["cluster_status"], "Primary");
        let up = serde_json::to_value(NodeState::Up).unwrap();
        assert_eq!(up, "up");
    }

    #[test]
    fn plain_servers_count_read_only_only() {
        let plain = Reading::parse([("wsrep_on".to_owned(), "OFF".to_owned())]);
        assert_eq!(plain.unfit(Accept::default()), None);
        let replica = Reading::parse(
            [("wsrep_on", "OFF"), ("innodb_read_only", "ON")]
                .map(|(n, v)| (n.to_owned(), v.to_owned())),
        );
        assert_eq!(replica.unfit(Accept::default()), Some(DownReason::ReadOnly));
        let reads = Accept {
            read_only: true,
            ..Accept::default()
        };
        assert_eq!(replica.unfit(reads), None);
    }
}
