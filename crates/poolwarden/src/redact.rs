//! Keeping passwords out of errors, logs and reports: one routine for every
//! path that can carry a database URL or a config file's text.
//!
//! [`Redactor::text`] masks the password of every URL in a text (`scheme://
//! user:***@host`), the value of every `password=` parameter, and, when the
//! redactor was made [`for_url`](Redactor::for_url), every literal occurrence
//! of that URL's password (raw and percent-decoded), so a parser's message
//! that quotes a malformed URL, or a TOML error that quotes the line, is safe
//! to print too.
//!
//! ```
//! use poolwarden::redact::Redactor;
//! let r = Redactor::for_url("mysql://app:S3cret!@[::1:/db");
//! let shown = r.text("invalid database URL \"mysql://app:S3cret!@[::1:/db\"");
//! assert!(!shown.contains("S3cret"));
//! assert!(shown.contains("mysql://app:***@"));
//! ```

/// What replaces a secret.
pub const MASK: &str = "***";

/// Secrets shorter than this are masked only where they appear inside a URL
/// or a `password=` parameter (replacing every "ab" in a text would garble
/// it without hiding anything).
const MIN_LITERAL: usize = 4;

/// Masks passwords in text; see the [module docs](self).
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("secrets", &self.secrets.len())
            .finish()
    }
}

impl Redactor {
    /// A redactor that masks URL passwords and `password=` values only.
    pub fn new() -> Self {
        Redactor::default()
    }

    /// A redactor that also masks every literal occurrence of `raw`'s
    /// password, parsed leniently (the URL may be malformed).
    pub fn for_url(raw: &str) -> Self {
        let mut r = Redactor::new();
        r.add_url(raw);
        r
    }

    /// Also mask `raw`'s password (and its `password=` parameter) wherever
    /// it appears.
    pub fn add_url(&mut self, raw: &str) {
        if let Some(range) = password_range(raw, 0) {
            self.add_secret(&raw[range]);
        }
        for range in param_ranges(raw) {
            self.add_secret(&raw[range]);
        }
    }

    /// Also mask `secret` wherever it appears (raw and percent-decoded).
    pub fn add_secret(&mut self, secret: &str) {
        let decoded = percent_decode(secret);
        for s in [secret.to_owned(), decoded] {
            if s.len() >= MIN_LITERAL && !self.secrets.contains(&s) {
                self.secrets.push(s);
            }
        }
        // Longest first, so a secret containing another is masked whole.
        self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }

    /// `text` with every password masked.
    pub fn text(&self, text: &str) -> String {
        let mut out = mask_urls(text);
        out = mask_params(&out);
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), MASK);
            }
        }
        out
    }
}

/// `raw` (a URL, possibly malformed) with its password masked.
pub fn url(raw: &str) -> String {
    Redactor::for_url(raw).text(raw)
}

/// `text` with the password of every URL in it and every `password=` value
/// masked.
pub fn text(text: &str) -> String {
    Redactor::new().text(text)
}

/// Characters that end a URL inside a text (a password containing them must
/// be percent-encoded to be valid in a URL at all).
fn ends_token(c: char) -> bool {
    c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '<' | '>')
}

/// The byte range of the password of the URL whose `://` is at or after
/// `from`, if it has one.
fn password_range(s: &str, from: usize) -> Option<std::ops::Range<usize>> {
    let start = from + s[from..].find("://")? + 3;
    let token_end = s[start..].find(ends_token).map_or(s.len(), |i| start + i);
    let at = start + s[start..token_end].rfind('@')?;
    let colon = start + s[start..at].find(':')?;
    Some(colon + 1..at)
}

fn mask_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    while let Some(i) = text[pos..].find("://") {
        let scheme_end = pos + i;
        match password_range(text, scheme_end) {
            Some(r) if !text[r.clone()].is_empty() && &text[r.clone()] != MASK => {
                out.push_str(&text[pos..r.start]);
                out.push_str(MASK);
                pos = r.end;
            }
            _ => {
                out.push_str(&text[pos..scheme_end + 3]);
                pos = scheme_end + 3;
            }
        }
    }
    out.push_str(&text[pos..]);
    out
}

/// The ranges of every `password=` value (case-insensitive, up to `&`, `;`
/// or the end of the token).
fn param_ranges(s: &str) -> Vec<std::ops::Range<usize>> {
    const KEY: &str = "password=";
    let lower = s.to_ascii_lowercase();
    let mut ranges = Vec::new();
    let mut pos = 0;
    while let Some(i) = lower[pos..].find(KEY) {
        let start = pos + i + KEY.len();
        let end = s[start..]
            .find(|c: char| ends_token(c) || c == '&' || c == ';')
            .map_or(s.len(), |e| start + e);
        if end > start {
            ranges.push(start..end);
        }
        pos = end.max(start);
    }
    ranges
}

fn mask_params(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    for r in param_ranges(text) {
        out.push_str(&text[pos..r.start]);
        out.push_str(MASK);
        pos = r.end;
    }
    out.push_str(&text[pos..]);
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_everything_but_the_password() {
        assert_eq!(url("mysql://u:secret@h:1/d"), "mysql://u:***@h:1/d");
        assert_eq!(url("mysql://root@h:1/d"), "mysql://root@h:1/d");
        assert_eq!(url("mysql://h:1/d"), "mysql://h:1/d");
        assert_eq!(
            url("postgres://u@h/d?password=hunter22&x=1"),
            "postgres://u@h/d?password=***&x=1"
        );
    }

    #[test]
    fn malformed_urls_and_texts_quoting_them_are_masked() {
        for raw in [
            "mysql://pw:S3cretPass!@127.0.0.1:3306/db?foo=bar",
            "mysql://pw:S3cretPass!@127.0.0.1:99999/db",
            "mysql://pw:S3cretPass!@[::1:/db",
            "mysql://pw:S3cret@Pass!@h/db",
            "mysql://pw:S3cret%50ass!@h/db",
        ] {
            let r = Redactor::for_url(raw);
            let quoted =
                format!("error: invalid database URL {raw:?}: bad\n  | database_url = \"{raw}\"\n");
            for shown in [url(raw), text(&quoted), r.text(&quoted)] {
                assert!(!shown.contains("S3cret"), "{shown}");
                assert!(!shown.contains("Pass!"), "{shown}");
            }
        }
        // A parser message that quotes the password without the URL.
        let r = Redactor::for_url("mysql://u:S3cret%21x@h/d");
        assert_eq!(r.text("bad char in \"S3cret!x\""), "bad char in \"***\"");
    }

    #[test]
    fn text_without_secrets_is_unchanged() {
        let t = "account a@b.co created; see http://127.0.0.1:8080/accounts";
        assert_eq!(text(t), t);
        assert_eq!(Redactor::for_url("mysql://u:ab@h/d").text("abc"), "abc");
    }
}
