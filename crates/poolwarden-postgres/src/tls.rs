//! How connections (and cancel requests) are encrypted: `NoTls` by
//! default, rustls behind the `tls-rustls` feature.

/// The TLS connector of a manager.
#[derive(Clone, Default)]
pub(crate) enum Tls {
    /// Plain TCP or Unix socket.
    #[default]
    None,
    /// rustls; `sslmode` in the config says whether it is required.
    #[cfg(feature = "tls-rustls")]
    Rustls(tokio_postgres_rustls::MakeRustlsConnect),
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tls::None => f.write_str("NoTls"),
            #[cfg(feature = "tls-rustls")]
            Tls::Rustls(_) => f.write_str("Rustls"),
        }
    }
}
