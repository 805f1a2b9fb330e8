//! Connection URLs of the private servers.

use std::fmt::Write as _;

/// `SCHEME://USER[:PASSWORD]@127.0.0.1:PORT/DB`, with the user, password and
/// database percent-encoded. An empty password is left out.
pub(crate) fn connection_url(
    scheme: &str,
    user: &str,
    password: &str,
    port: u16,
    db: &str,
) -> String {
    let mut url = format!("{scheme}://{}", encode(user));
    if !password.is_empty() {
        url.push(':');
        url.push_str(&encode(password));
    }
    let _ = write!(url, "@127.0.0.1:{port}/{}", encode(db));
    url
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_url() {
        assert_eq!(
            connection_url("mysql", "root", "", 3307, "test"),
            "mysql://root@127.0.0.1:3307/test"
        );
        assert_eq!(
            connection_url("postgres", "pw_user", "pw_pass", 5433, "postgres"),
            "postgres://pw_user:pw_pass@127.0.0.1:5433/postgres"
        );
    }

    #[test]
    fn special_characters_are_encoded() {
        assert_eq!(
            connection_url("mysql", "a@b", "p:w/d%", 1, "d b"),
            "mysql://a%40b:p%3Aw%2Fd%25@127.0.0.1:1/d%20b"
        );
    }
}
