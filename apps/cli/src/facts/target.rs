//! The database URL the doctor was given, and its redaction.

use url::Url;

use crate::error::DoctorError;

/// A parsed database URL.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The URL, scheme normalised (`mariadb://` → `mysql://`).
    pub(super) url: Url,
    /// MySQL or Postgres.
    pub(crate) postgres: bool,
}

impl Target {
    /// Parses and checks a database URL.
    pub(crate) fn parse(raw: &str) -> Result<Target, DoctorError> {
        let bad = |reason: &str| DoctorError::BadUrl {
            url: redact_str(raw),
            reason: reason.to_owned(),
        };
        let expected = "expected mysql://USER:PASSWORD@HOST:PORT/DATABASE or postgres://…";
        let mut url = Url::parse(raw).map_err(|e| bad(&format!("{e}; {expected}")))?;
        let postgres = match url.scheme() {
            "mysql" => false,
            "mariadb" => {
                // `Url::set_scheme` refuses nothing between two non-special schemes.
                let rest = &raw["mariadb".len()..];
                url = Url::parse(&format!("mysql{rest}")).map_err(|e| bad(&e.to_string()))?;
                false
            }
            "postgres" | "postgresql" => true,
            "http" | "https" => {
                return Err(bad(
                    "this is an HTTP URL; to read a service's /debug/pool use `poolwarden doctor --live URL`",
                ))
            }
            other => return Err(bad(&format!("unsupported scheme '{other}'; {expected}"))),
        };
        if url.host_str().is_none_or(str::is_empty) {
            return Err(bad(&format!("no host; {expected}")));
        }
        Ok(Target { url, postgres })
    }

    /// The host, for messages.
    pub(crate) fn host(&self) -> String {
        self.url.host_str().unwrap_or_default().to_owned()
    }

    /// `host:port`, for messages.
    pub(crate) fn addr(&self) -> String {
        let default = if self.postgres { 5432 } else { 3306 };
        format!(
            "{}:{}",
            self.url.host_str().unwrap_or_default(),
            self.url.port().unwrap_or(default)
        )
    }

    /// The user, percent-decoded; when the URL names none, the name the
    /// messages use (`root` for MySQL, `postgres` for Postgres).
    pub(crate) fn user(&self) -> String {
        let u = decode(self.url.username());
        if !u.is_empty() {
            u
        } else if self.postgres {
            "postgres".to_owned()
        } else {
            "root".to_owned()
        }
    }

    /// The database, percent-decoded (may be empty).
    pub(crate) fn database(&self) -> String {
        decode(self.url.path().trim_start_matches('/'))
    }

    /// The URL with the password replaced by `***`.
    pub(crate) fn redacted(&self) -> String {
        redact(&self.url)
    }
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// The URL with any password replaced by `***`.
pub(crate) fn redact(url: &Url) -> String {
    let mut u = url.clone();
    if u.password().is_some() {
        // Cannot fail for URLs that have a password.
        let _ = u.set_password(Some("***"));
    }
    u.to_string()
}

/// `raw` with any password replaced by `***` (unchanged if it is no URL).
pub(crate) fn redact_str(raw: &str) -> String {
    Url::parse(raw).map_or_else(|_| raw.to_owned(), |u| redact(&u))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mysql_and_postgres_urls() {
        let t = Target::parse("mysql://u:p%40ss@127.0.0.1:3399/app").unwrap();
        assert!(!t.postgres);
        assert_eq!(t.addr(), "127.0.0.1:3399");
        assert_eq!(t.user(), "u");
        assert_eq!(t.database(), "app");
        assert_eq!(t.redacted(), "mysql://u:***@127.0.0.1:3399/app");

        let t = Target::parse("mariadb://db.internal/app").unwrap();
        assert!(!t.postgres);
        assert_eq!(t.addr(), "db.internal:3306");
        assert_eq!(t.user(), "root");

        let t = Target::parse("postgresql://x@h/d").unwrap();
        assert!(t.postgres);
        assert_eq!(t.addr(), "h:5432");
    }

    #[test]
    fn rejects_bad_urls_with_a_reason() {
        for (raw, word) in [
            ("notaurl", "expected mysql://"),
            ("redis://h:1/0", "unsupported scheme 'redis'"),
            ("http://127.0.0.1:8080/debug/pool", "--live"),
            ("mysql:///db", "no host"),
        ] {
            let e = Target::parse(raw).unwrap_err().to_string();
            assert!(e.starts_with("bad URL"), "{e}");
            assert!(e.contains(word), "{raw}: {e}");
        }
    }

    #[test]
    fn bad_url_message_hides_the_password() {
        let e = Target::parse("redis://u:secret@h/0")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("secret"), "{e}");
    }
}
