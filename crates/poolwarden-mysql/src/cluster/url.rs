//! Multi-host URLs: `mysql://user:pass@h1:p1,h2:p2,h3/db?params`, split into
//! one single-host URL per node. Errors never repeat the URL (it holds the
//! password).

/// Why a cluster manager could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The URL is not `mysql://[user[:password]@]host[:port][,host[:port]...][/db][?params]`.
    #[error(
        "bad multi-host URL: {reason} (expected mysql://user:password@host1:port1,host2:port2/db)"
    )]
    BadUrl {
        /// What is wrong (never the URL itself: it holds the password).
        reason: String,
    },
    /// One node's URL was rejected by mysql_async.
    #[error("bad URL for cluster node {node} ({host}): {source}")]
    Node {
        /// The node's position in the URL, from 0.
        node: usize,
        /// The node's `host:port` as written.
        host: String,
        /// mysql_async's complaint (it names parameters, never the password).
        #[source]
        source: mysql_async::UrlError,
    },
    /// A cluster needs at least one node.
    #[error("a cluster manager needs at least one node")]
    NoNodes,
}

impl ClusterError {
    pub(crate) fn from_driver(node: usize, host: &str, error: mysql_async::Error) -> Self {
        match error {
            mysql_async::Error::Url(source) => ClusterError::Node {
                node,
                host: host.to_owned(),
                source,
            },
            other => ClusterError::BadUrl {
                reason: format!("node {node} ({host}): {other}"),
            },
        }
    }
}

/// `(host, single-host URL)` for every host of a multi-host URL, in order
/// (`mysql://u:p@h1:p1,h2:p2/db?params`: the user, password, database and
/// parameters apply to every host). A single-host URL gives one pair.
///
/// # Errors
///
/// [`ClusterError::BadUrl`] for a URL without a scheme or with an empty
/// host; it never contains the password.
pub fn split_url(url: &str) -> Result<Vec<(String, String)>, ClusterError> {
    let bad = |reason: &str| ClusterError::BadUrl {
        reason: reason.to_owned(),
    };
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| bad("no scheme (mysql://)"))?;
    // The authority ends at the first '/' or '?'; the user info at its last '@'.
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (userinfo, hosts) = match authority.rfind('@') {
        Some(at) => (&authority[..=at], &authority[at + 1..]),
        None => ("", authority),
    };
    let hosts: Vec<&str> = hosts.split(',').map(str::trim).collect();
    if hosts.iter().any(|h| h.is_empty()) {
        return Err(bad("an empty host in the host list"));
    }
    Ok(hosts
        .into_iter()
        .map(|host| {
            (
                host.to_owned(),
                format!("{scheme}://{userinfo}{host}{tail}"),
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_hosts_and_keeps_credentials_db_and_params() {
        let nodes =
            split_url("mysql://app:s3cret@h1:3306,h2:3307, h3/shop?tcp_keepalive=5000").unwrap();
        let urls: Vec<&str> = nodes.iter().map(|(_, u)| u.as_str()).collect();
        assert_eq!(
            urls,
            [
                "mysql://app:s3cret@h1:3306/shop?tcp_keepalive=5000",
                "mysql://app:s3cret@h2:3307/shop?tcp_keepalive=5000",
                "mysql://app:s3cret@h3/shop?tcp_keepalive=5000",
            ]
        );
        assert_eq!(nodes[1].0, "h2:3307");
    }

    #[test]
    fn single_host_and_no_credentials() {
        let nodes = split_url("mysql://db").unwrap();
        assert_eq!(nodes, [("db".to_owned(), "mysql://db".to_owned())]);
    }

    #[test]
    fn errors_never_show_the_password() {
        for url in ["mysql://u:s3cret@h1,,h2/db", "u:s3cret@h1,h2"] {
            let text = split_url(url).unwrap_err().to_string();
            assert!(!text.contains("s3cret"), "{text}");
        }
    }
}
