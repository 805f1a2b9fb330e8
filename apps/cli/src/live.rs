//! `doctor --live`: read a service's `/debug/pool` document over plain HTTP
//! and parse it.
//!
//! The document is the pool's own [`poolwarden::PoolSnapshot`], read back
//! with the same type that wrote it; unknown fields are ignored so a newer
//! service still parses, and a config this version cannot read is dropped.

use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper::{header, Request};
use hyper_util::rt::TokioIo;
use poolwarden::PoolConfig;
use url::Url;

use crate::error::DoctorError;
use crate::facts::redact;

/// The largest document read.
const MAX_BODY: usize = 16 << 20;

/// A service's `/debug/pool` document: the pool's own type, the one
/// `poolwarden-axum` serves.
pub(crate) type LiveReport = poolwarden::PoolSnapshot;

/// One live checkout in it.
pub(crate) type LiveCheckout = poolwarden::CheckoutSnapshot;

/// Parses a `/debug/pool` document. A `config` this version cannot read
/// (a newer service's) is dropped rather than failing the whole document.
pub(crate) fn parse(body: &[u8]) -> Result<LiveReport, String> {
    let raw: poolwarden::PoolSnapshot<serde_json::Value> =
        serde_json::from_slice(body).map_err(|e| e.to_string())?;
    Ok(raw.map_config(|v| serde_json::from_value::<PoolConfig>(v).ok()))
}

/// GETs and parses the document at `raw_url` (plain HTTP), each step
/// bounded by `timeout`.
pub(crate) async fn fetch(raw_url: &str, timeout: Duration) -> Result<LiveReport, DoctorError> {
    let bad = |reason: String| DoctorError::BadUrl {
        url: crate::facts::redact_str(raw_url),
        reason,
    };
    let url = Url::parse(raw_url).map_err(|e| {
        bad(format!(
            "{e}; expected the service's endpoint, e.g. http://127.0.0.1:8080/debug/pool"
        ))
    })?;
    let shown = redact(&url);
    match url.scheme() {
        "http" => {}
        "https" => {
            return Err(bad(
                "https is not supported: /debug/pool is meant to be read over loopback; use http://".to_owned(),
            ))
        }
        "mysql" | "mariadb" | "postgres" | "postgresql" => {
            return Err(bad(
                "this is a database URL; --live takes the URL of a service's /debug/pool endpoint (drop --live to diagnose the database)".to_owned(),
            ))
        }
        other => return Err(bad(format!("unsupported scheme '{other}'; use http://"))),
    }
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad("no host".to_owned()))?
        .to_owned();
    let port = url.port_or_known_default().unwrap_or(80);
    let addr = format!("{host}:{port}");
    let addrs = url
        .socket_addrs(|| Some(80))
        .map_err(|_| DoctorError::UnknownHost { host: host.clone() })?;
    let stream =
        match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&addrs[..])).await {
            Err(_) => return Err(DoctorError::Timeout { addr, timeout }),
            Ok(Err(e)) => {
                return Err(DoctorError::Unreachable {
                    addr,
                    reason: crate::facts::io_reason(&e),
                })
            }
            Ok(Ok(s)) => s,
        };
    let http = |reason: String| DoctorError::Http {
        url: shown.clone(),
        reason,
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| http(format!("HTTP handshake failed: {e}")))?;
    tokio::spawn(conn);
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    let host_header = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.clone(),
    };
    let req = Request::get(path)
        .header(header::HOST, host_header)
        .header(header::ACCEPT, "application/json")
        .header(
            header::USER_AGENT,
            concat!("poolwarden-doctor/", env!("CARGO_PKG_VERSION")),
        )
        .body(Empty::<Bytes>::new())
        .map_err(|e| bad(e.to_string()))?;
    let no_answer = || {
        http(format!(
            "no answer within {}",
            humantime::format_duration(timeout)
        ))
    };
    let resp = tokio::time::timeout(timeout, sender.send_request(req))
        .await
        .map_err(|_| no_answer())?
        .map_err(|e| http(format!("request failed: {e}")))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(DoctorError::HttpStatus {
            url: shown,
            status: status.as_u16(),
        });
    }
    let body = tokio::time::timeout(timeout, Limited::new(resp.into_body(), MAX_BODY).collect())
        .await
        .map_err(|_| no_answer())?
        .map_err(|e| http(format!("reading the body failed: {e}")))?
        .to_bytes();
    parse(&body).map_err(|reason| DoctorError::NotPoolJson { url: shown, reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"{
        "pool": "main",
        "status": {"max_size": 10, "max_open": 15, "open": 4, "idle": 1, "in_use": 3,
                   "overflow": 0, "waiting": 0, "connecting": 0, "generation": 0,
                   "created": 4, "closed": {"stale": 0, "lifetime": 2, "closed": 1},
                   "checkouts": 99, "timeouts": 1, "invalidations": 0,
                   "connect_failures": 0, "leaks": 1, "resets": 98, "validations": 12,
                   "something_new": 5},
        "checkouts": [{"id": 7, "connection_id": 3, "location": "src/x.rs:12:5",
                       "label": "job", "held_for": 75.5, "connection_age": 80.0,
                       "server_idle_timeout": 60.0, "leak_reported": true}],
        "config": {"name": "main", "max_size": 10, "max_overflow": 5, "leak_threshold": "30s"}
    }"#;

    #[test]
    fn parses_the_debug_pool_document() {
        let r = parse(DOC.as_bytes()).unwrap();
        assert_eq!(r.pool, "main");
        assert_eq!(r.status.max_open, 15);
        assert_eq!(r.status.closed.lifetime, 2);
        assert_eq!(r.checkouts[0].location, "src/x.rs:12:5");
        assert_eq!(r.checkouts[0].server_idle_timeout, Some(60.0));
        let cfg = r.config.unwrap();
        assert_eq!(cfg.max_overflow, 5);
        assert_eq!(cfg.leak_threshold, Some(Duration::from_secs(30)));
    }

    #[test]
    fn unreadable_config_is_dropped_not_fatal() {
        let doc = DOC.replace(
            r#""max_overflow": 5"#,
            r#""max_overflow": 5, "future_knob": 1"#,
        );
        let r = parse(doc.as_bytes()).unwrap();
        assert!(r.config.is_none());
    }

    #[test]
    fn not_a_pool_document_is_an_error() {
        assert!(parse(b"<html>").is_err());
        assert!(parse(br#"{"hello": 1}"#).unwrap_err().contains("pool"));
    }
}
