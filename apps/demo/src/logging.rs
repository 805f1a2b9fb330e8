//! Logging: `tracing` to stderr, every line through the one redaction
//! routine (`poolwarden::redact`), colour only when stderr is a terminal.

use std::io::{IsTerminal, Write};

use poolwarden::redact::Redactor;
use tracing_subscriber::fmt::MakeWriter;

/// Install the subscriber; `RUST_LOG` overrides the default filter.
pub(crate) fn init(redactor: Redactor) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,poolwarden=info".into()),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(Redacting::new(redactor, std::io::stderr))
        .try_init();
}

/// A [`MakeWriter`] that redacts each log line before it reaches `make`'s
/// writer (the formatter writes a whole event in one `write_all`).
#[derive(Clone)]
pub(crate) struct Redacting<F> {
    redactor: std::sync::Arc<Redactor>,
    make: F,
}

impl<F> Redacting<F> {
    pub(crate) fn new(redactor: Redactor, make: F) -> Self {
        Redacting {
            redactor: std::sync::Arc::new(redactor),
            make,
        }
    }
}

impl<'a, F, W> MakeWriter<'a> for Redacting<F>
where
    F: Fn() -> W + 'static,
    W: Write,
{
    type Writer = Line<W>;

    fn make_writer(&'a self) -> Line<W> {
        Line {
            redactor: self.redactor.clone(),
            out: (self.make)(),
            buf: Vec::new(),
        }
    }
}

/// One event's text, redacted and written when dropped.
pub(crate) struct Line<W: Write> {
    redactor: std::sync::Arc<Redactor>,
    out: W,
    buf: Vec<u8>,
}

impl<W: Write> Write for Line<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            let text = String::from_utf8_lossy(&self.buf);
            let shown = self.redactor.text(&text);
            self.buf.clear();
            self.out.write_all(shown.as_bytes())?;
        }
        self.out.flush()
    }
}

impl<W: Write> Drop for Line<W> {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn log_lines_never_carry_the_password() {
        let sink = Sink::default();
        let url = "mysql://app:S3cretPass!@127.0.0.1:99999/prod";
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(Redacting::new(Redactor::for_url(url), {
                let sink = sink.clone();
                move || sink.clone()
            }))
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(url, "cannot reach {url}");
            tracing::error!(error = %format!("bad URL: S3cretPass!"), "database error");
        });
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert!(
            text.contains("mysql://app:***@127.0.0.1:99999/prod"),
            "{text}"
        );
        assert!(!text.contains("S3cret"), "{text}");
        assert!(!text.contains('\u{1b}'), "no colour off a terminal: {text}");
    }
}
