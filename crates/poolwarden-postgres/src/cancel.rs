//! Cancelling a command on the server (`CancelRequest` through
//! tokio-postgres's `CancelToken`), bounded and best effort.
//!
//! tokio-postgres's `CancelToken::cancel_query` returns once the request is
//! written, before the server acted on it. Here the request goes over a
//! socket of ours, and we read it until the server closes it: by then the
//! server has signalled the backend, so a command sent afterwards is not
//! hit by a late cancel.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio_postgres::config::Host;
use tokio_postgres::{CancelToken, Config, NoTls};

use crate::tls::Tls;

/// Where to send the cancel request: the single host of the config, or
/// `None` to let tokio-postgres find it again.
#[derive(Debug, Clone)]
pub(crate) enum CancelTarget {
    Tcp(String, u16),
    Unix(std::path::PathBuf),
    Driver,
    /// Through tokio-postgres with TLS (the request is encrypted like the
    /// connection; no wait for the server's close).
    #[cfg(feature = "tls-rustls")]
    Tls(Tls),
}

impl CancelTarget {
    pub(crate) fn of(config: &Config, tls: &Tls) -> CancelTarget {
        #[cfg(feature = "tls-rustls")]
        if let Tls::Rustls(_) = tls {
            return CancelTarget::Tls(tls.clone());
        }
        let _ = tls;
        let port = config.get_ports().first().copied().unwrap_or(5432);
        match config.get_hosts() {
            [Host::Tcp(h)] if config.get_hostaddrs().is_empty() => {
                CancelTarget::Tcp(h.clone(), port)
            }
            [Host::Unix(dir)] => CancelTarget::Unix(dir.join(format!(".s.PGSQL.{port}"))),
            _ => CancelTarget::Driver,
        }
    }
}

/// Send a cancel request for `token`'s backend, waiting at most `timeout`.
/// Returns whether the server took it.
pub(crate) async fn cancel(token: &CancelToken, target: &CancelTarget, timeout: Duration) -> bool {
    let result = tokio::time::timeout(timeout, send(token, target)).await;
    match result {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "cancel request failed");
            false
        }
        Err(_) => {
            tracing::debug!(?timeout, "cancel request timed out");
            false
        }
    }
}

async fn send(token: &CancelToken, target: &CancelTarget) -> std::io::Result<()> {
    match target {
        CancelTarget::Tcp(host, port) => {
            let mut stream = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
            send_on(token, &mut stream).await
        }
        CancelTarget::Unix(path) => {
            let mut stream = tokio::net::UnixStream::connect(path).await?;
            send_on(token, &mut stream).await
        }
        CancelTarget::Driver => token
            .cancel_query(NoTls)
            .await
            .map_err(std::io::Error::other),
        #[cfg(feature = "tls-rustls")]
        CancelTarget::Tls(tls) => match tls {
            Tls::Rustls(make) => token.cancel_query(make.clone()).await,
            Tls::None => token.cancel_query(NoTls).await,
        }
        .map_err(std::io::Error::other),
    }
}

async fn send_on<S>(token: &CancelToken, stream: &mut S) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    token
        .cancel_query_raw(&mut *stream, NoTls)
        .await
        .map_err(std::io::Error::other)?;
    // The server answers nothing and closes the socket once it has
    // signalled the backend.
    let mut sink = Vec::new();
    stream.read_to_end(&mut sink).await?;
    Ok(())
}
