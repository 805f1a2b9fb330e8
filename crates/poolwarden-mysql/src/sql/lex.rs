//! The tokens of SQL text, as far as the session rules need them.

/// A token outside comments; string literal contents are dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tok<'a> {
    /// A keyword, an unquoted name or a number; also the content of a name
    /// in backquotes or double quotes (which may call a function).
    Word(&'a [u8]),
    /// A `'string'`.
    Str,
    /// `@`: a user variable.
    At,
    /// `@@`: a system variable.
    AtAt,
    /// `:=`.
    Assign,
    /// `(`.
    Open,
    /// `)`.
    Close,
    /// `;`.
    Semicolon,
    /// Any other symbol.
    Other,
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// The tokens of `sql`, or `None` when it cannot be split reliably.
pub(crate) fn lex(sql: &[u8]) -> Option<Vec<Tok<'_>>> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&b) = sql.get(i) {
        let next = sql.get(i + 1).copied();
        match b {
            // Whitespace and control characters.
            0..=b' ' => i += 1,
            b'#' => i = line_end(sql, i),
            // `--` starts a comment only when followed by whitespace or a
            // control character (or the end); `--1` is two minus signs.
            b'-' if next == Some(b'-') && sql.get(i + 2).is_none_or(|&c| c <= b' ') => {
                i = line_end(sql, i)
            }
            b'/' if next == Some(b'*') => {
                let body = &sql[i + 2..];
                // `/*! ... */` and `/*M! ... */` are executed by the server.
                if body.first() == Some(&b'!')
                    || (body.first().is_some_and(|c| c.eq_ignore_ascii_case(&b'm'))
                        && body.get(1) == Some(&b'!'))
                {
                    return None;
                }
                let end = body.windows(2).position(|w| w == b"*/")?;
                i += 2 + end + 2;
            }
            b'\'' | b'"' | b'`' => {
                let end = quoted_end(sql, i)?;
                out.push(if b == b'\'' {
                    Tok::Str
                } else {
                    Tok::Word(&sql[i + 1..end - 1])
                });
                i = end;
            }
            b'@' if next == Some(b'@') => {
                out.push(Tok::AtAt);
                i += 2;
            }
            b'@' => {
                out.push(Tok::At);
                i += 1;
            }
            b':' if next == Some(b'=') => {
                out.push(Tok::Assign);
                i += 2;
            }
            b'(' => {
                out.push(Tok::Open);
                i += 1;
            }
            b')' => {
                out.push(Tok::Close);
                i += 1;
            }
            b';' => {
                out.push(Tok::Semicolon);
                i += 1;
            }
            b if is_word_byte(b) => {
                let start = i;
                while sql.get(i).is_some_and(|&c| is_word_byte(c)) {
                    i += 1;
                }
                out.push(Tok::Word(&sql[start..i]));
            }
            _ => {
                out.push(Tok::Other);
                i += 1;
            }
        }
    }
    Some(out)
}

/// Index after the end of the line that starts a comment at `i`.
fn line_end(sql: &[u8], i: usize) -> usize {
    sql[i..]
        .iter()
        .position(|&c| c == b'\n')
        .map_or(sql.len(), |n| i + n + 1)
}

/// Index after the closing quote of the quoted token starting at `start`;
/// `None` if it is unterminated, or if a string contains a backslash
/// (an escape or a plain character, depending on `NO_BACKSLASH_ESCAPES`).
fn quoted_end(sql: &[u8], start: usize) -> Option<usize> {
    let quote = sql[start];
    let mut i = start + 1;
    loop {
        let b = *sql.get(i)?;
        if b == b'\\' && quote != b'`' {
            return None;
        }
        if b == quote {
            if sql.get(i + 1) == Some(&quote) {
                i += 2; // a doubled quote stands for itself
                continue;
            }
            return Some(i + 1);
        }
        i += 1;
    }
}

pub(crate) fn is(word: &[u8], keyword: &str) -> bool {
    word.eq_ignore_ascii_case(keyword.as_bytes())
}

pub(crate) fn is_any(word: &[u8], keywords: &[&str]) -> bool {
    keywords.iter().any(|k| is(word, k))
}
