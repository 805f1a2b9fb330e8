//! Request ids: taken from the `x-request-id` header when it is sane,
//! generated otherwise.

use http::HeaderMap;

/// The header a request id is read from.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The longest request id accepted from a client; longer ones are replaced.
const MAX_LEN: usize = 128;

/// The request id for a request with these headers.
///
/// A client-supplied id is kept only if it is 1 to 128 visible ASCII
/// characters (no spaces or control characters), so it cannot forge log
/// lines or blow up labels. Otherwise a fresh UUID v4 (simple form) is used.
pub(crate) fn from_headers(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|s| is_acceptable(s))
        .map_or_else(generate, str::to_owned)
}

fn is_acceptable(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_LEN && id.bytes().all(|b| b.is_ascii_graphic())
}

fn generate() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &[u8]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            REQUEST_ID_HEADER,
            http::HeaderValue::from_bytes(value).unwrap(),
        );
        h
    }

    #[test]
    fn keeps_a_sane_client_id() {
        assert_eq!(from_headers(&headers(b"abc-123")), "abc-123");
    }

    #[test]
    fn replaces_missing_or_odd_ids() {
        for bad in [&b"has space"[..], b"", &[b'x'; 129]] {
            let id = from_headers(&headers(bad));
            assert_eq!(id.len(), 32, "{id}");
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        }
        assert_eq!(from_headers(&HeaderMap::new()).len(), 32);
    }

    #[test]
    fn generated_ids_differ() {
        assert_ne!(generate(), generate());
    }
}
