//! `load`: the demo under a bounded load on loopback, once quiet and once
//! with a flood of report requests, side by side (BENCHMARKS.md).
//!
//! A private MariaDB or PostgreSQL, the demo's real router and HTTP server on
//! 127.0.0.1, `clients` keep-alive connections each sending
//! `GET /accounts/{id}` back to back for `seconds`; in the second run
//! `flooders` more connections send `POST /reports` back to back (answered
//! 202 or 429). Every loop ends by time and by count.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use poolwarden::PoolConfig;
use poolwarden_mysql::MySqlManager;
use poolwarden_postgres::PgManager;

use crate::app::{self, AppState};
use crate::database::{self, PrivateServer};
use crate::settings::{HttpSettings, ReportSettings};
use crate::store::{Backend, Store};

/// Requests per client at most, whatever the duration.
const MAX_PER_CLIENT: u64 = 2_000_000;
const ACCOUNTS: u64 = 100;

/// One run's figures.
struct Figures {
    reads: u64,
    errors: u64,
    reports_accepted: u64,
    reports_refused: u64,
    p50: Duration,
    p99: Duration,
    seconds: f64,
}

/// Run both loads and print a Markdown table.
pub(crate) async fn run(
    backend: Backend,
    clients: u32,
    flooders: u32,
    seconds: u64,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    match backend {
        Backend::MySql => run_on::<MySqlManager>(clients, flooders, seconds).await,
        Backend::Postgres => run_on::<PgManager>(clients, flooders, seconds).await,
    }
}

async fn run_on<B: Store>(
    clients: u32,
    flooders: u32,
    seconds: u64,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let server = PrivateServer::start(B::BACKEND, None).await?;
    let db = database::open::<B>(&server.url(), true, PoolConfig::default()).await?;
    {
        let mut conn = db.pool.get().await?;
        for i in 0..ACCOUNTS {
            B::insert_account(
                &mut conn,
                &format!("load {i}"),
                &format!("load{i}@example.com"),
            )
            .await?;
        }
    }
    let state = AppState::new(db.pool.clone(), ReportSettings::default());
    let reports = state.reports.clone();
    let http = HttpSettings::default();
    let router = app::router(state, &http);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let serving = tokio::spawn(async move {
        crate::http::serve(listener, router, &http, async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        })
        .await
    });
    let length = Duration::from_secs(seconds);
    let quiet = load(addr, clients, 0, length).await?;
    let flood = load(addr, clients, flooders, length).await?;
    let _ = stop_tx.send(true);
    let _ = serving.await;
    reports.drain(Duration::from_secs(60)).await;
    db.pool.close().await;
    println!(
        "{} (private server), {clients} readers, {flooders} flooders, {seconds} s per run\n",
        B::SERVER
    );
    println!("| run | reads/s | p50 | p99 | read errors | reports 202 | reports 429 |");
    println!("|---|---|---|---|---|---|---|");
    for (name, f) in [("quiet", &quiet), ("report flood", &flood)] {
        println!(
            "| {name} | {:.0} | {:.2} ms | {:.2} ms | {} | {} | {} |",
            f.reads as f64 / f.seconds,
            f.p50.as_secs_f64() * 1e3,
            f.p99.as_secs_f64() * 1e3,
            f.errors,
            f.reports_accepted,
            f.reports_refused
        );
    }
    println!(
        "\nflood/quiet: throughput {:.2}x, p50 {:.2}x, p99 {:.2}x",
        (flood.reads as f64 / flood.seconds) / (quiet.reads as f64 / quiet.seconds),
        flood.p50.as_secs_f64() / quiet.p50.as_secs_f64(),
        flood.p99.as_secs_f64() / quiet.p99.as_secs_f64()
    );
    drop(db);
    drop(server);
    Ok(ExitCode::SUCCESS)
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

async fn connect(addr: std::net::SocketAddr) -> Result<Sender, Box<dyn std::error::Error>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// One request; its status, or `None` on a transport error.
async fn send(sender: &mut Sender, method: &str, path: &str) -> Option<u16> {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1")
        .body(Empty::<Bytes>::new())
        .ok()?;
    sender.ready().await.ok()?;
    let resp = sender.send_request(req).await.ok()?;
    let status = resp.status().as_u16();
    resp.into_body().collect().await.ok()?;
    Some(status)
}

async fn load(
    addr: std::net::SocketAddr,
    clients: u32,
    flooders: u32,
    length: Duration,
) -> Result<Figures, Box<dyn std::error::Error>> {
    let start = Instant::now();
    let deadline = start + length;
    let latencies = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let mut readers = Vec::new();
    for c in 0..clients {
        let mut sender = connect(addr).await?;
        let latencies = latencies.clone();
        readers.push(tokio::spawn(async move {
            let (mut mine, mut errors) = (Vec::new(), 0u64);
            let mut n = 0u64;
            while Instant::now() < deadline && n < MAX_PER_CLIENT {
                let id = (n + u64::from(c)) % ACCOUNTS + 1;
                let t = Instant::now();
                match send(&mut sender, "GET", &format!("/accounts/{id}")).await {
                    Some(200) => mine.push(t.elapsed()),
                    Some(_) => errors += 1,
                    None => {
                        errors += 1;
                        match connect(addr).await {
                            Ok(s) => sender = s,
                            Err(_) => break,
                        }
                    }
                }
                n += 1;
            }
            latencies.lock().extend(mine);
            errors
        }));
    }
    let mut flood = Vec::new();
    for _ in 0..flooders {
        let mut sender = connect(addr).await?;
        flood.push(tokio::spawn(async move {
            let (mut accepted, mut refused, mut n) = (0u64, 0u64, 0u64);
            while Instant::now() < deadline && n < MAX_PER_CLIENT {
                match send(&mut sender, "POST", "/reports").await {
                    Some(202) => accepted += 1,
                    Some(_) => refused += 1,
                    None => break,
                }
                n += 1;
            }
            (accepted, refused)
        }));
    }
    let mut errors = 0;
    for r in readers {
        errors += r.await?;
    }
    let (mut reports_accepted, mut reports_refused) = (0, 0);
    for f in flood {
        let (a, r) = f.await?;
        reports_accepted += a;
        reports_refused += r;
    }
    let seconds = start.elapsed().as_secs_f64();
    let mut all = std::mem::take(&mut *latencies.lock());
    all.sort_unstable();
    let at = |q: f64| {
        all.get(((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Ok(Figures {
        reads: all.len() as u64,
        errors,
        reports_accepted,
        reports_refused,
        p50: at(0.50),
        p99: at(0.99),
        seconds,
    })
}
