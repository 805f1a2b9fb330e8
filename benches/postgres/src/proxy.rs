//! A TCP proxy in front of the server that counts the round trips clients
//! ask for at the protocol level: every simple `Query` ('Q') and every
//! `Sync` ('S') of the extended protocol ends in one `ReadyForQuery`, so
//! each is one round trip (a bare `Sync` ping included, which
//! `pg_stat_statements` would not see).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Round trips counted so far, by kind.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    pub(crate) queries: AtomicU64,
    pub(crate) syncs: AtomicU64,
}

impl Counts {
    pub(crate) fn total(&self) -> u64 {
        self.queries.load(Relaxed) + self.syncs.load(Relaxed)
    }
}

/// Start a proxy to `127.0.0.1:server_port`; returns its port.
pub(crate) async fn start(server_port: u16, counts: Arc<Counts>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding the proxy");
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let counts = Arc::clone(&counts);
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(("127.0.0.1", server_port)).await else {
                    return;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let up = async move {
                    let mut parser = Parser::default();
                    let mut buf = vec![0_u8; 64 * 1024];
                    loop {
                        let n = match cr.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        parser.feed(&buf[..n], &counts);
                        if sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = sw.shutdown().await;
                };
                let down = async move {
                    let _ = tokio::io::copy(&mut sr, &mut cw).await;
                    let _ = cw.shutdown().await;
                };
                tokio::join!(up, down);
            });
        }
    });
    port
}

/// Splits the client's byte stream into messages.
#[derive(Default)]
struct Parser {
    /// Past the startup packet: messages have a type byte.
    typed: bool,
    /// The header being assembled (type byte and/or length).
    header: Vec<u8>,
    /// Body bytes of the current message still to skip.
    skip: usize,
}

/// Untyped packets that are followed by another untyped packet.
const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;

impl Parser {
    fn feed(&mut self, mut bytes: &[u8], counts: &Counts) {
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
                continue;
            }
            let header_len = if self.typed { 5 } else { 8 };
            let n = (header_len - self.header.len()).min(bytes.len());
            self.header.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.header.len() < header_len {
                return;
            }
            if self.typed {
                let len = u32::from_be_bytes(self.header[1..5].try_into().unwrap()) as usize;
                match self.header[0] {
                    b'Q' => counts.queries.fetch_add(1, Relaxed),
                    b'S' => counts.syncs.fetch_add(1, Relaxed),
                    _ => 0,
                };
                self.skip = len.saturating_sub(4);
            } else {
                let len = u32::from_be_bytes(self.header[0..4].try_into().unwrap()) as usize;
                let code = u32::from_be_bytes(self.header[4..8].try_into().unwrap());
                self.skip = len.saturating_sub(8);
                if code != SSL_REQUEST && code != GSSENC_REQUEST {
                    self.typed = true;
                }
            }
            self.header.clear();
        }
    }
}
