//! `load`: the demo under a bounded load on loopback, quiet and with report
//! traffic, side by side, in one process and one run (BENCHMARKS.md).
//!
//! A private MariaDB or PostgreSQL, the demo's real router and HTTP server on
//! 127.0.0.1, `clients` keep-alive connections each sending
//! `GET /accounts/{id}` back to back for `seconds`, first alone ("quiet"),
//! then with each kind of report traffic asked for:
//! * `flooders` connections sending `POST /reports` back to back and
//!   ignoring 429 (a misbehaving client: CPU contention more than anything);
//! * `report_clients` clients, each on its own connection, all starting at
//!   once (issue 11's "2,000 report requests in flight"), each behaving as a
//!   client should: `POST /reports`; refused (429/503), it waits the
//!   `Retry-After` it was given (plus up to half as much again at random, so
//!   the refused do not all come back in the same millisecond); accepted
//!   (202), it polls `GET /reports/{id}` once a second until the report is
//!   done, then asks for the next one. A connection the server closed while
//!   it waited (longer than `http.idle_timeout`) is replaced, not counted
//!   as an error.
//!
//! Every loop ends by time and by count; the HTTP server's connection cap
//! is raised to let every client in (`http.max_connections`, 1024 by
//! default, would otherwise keep the excess waiting in the accept queue).

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
/// Reports one well-behaved report client asks for at most.
const MAX_REPORTS_PER_CLIENT: u64 = 1_000;
/// Status polls of one report at most.
const MAX_POLLS: u32 = 600;
/// The longest `Retry-After` a report client honours (a longer one is
/// taken as this: the run is bounded).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);
/// How often a report client polls its report.
const POLL_EVERY: Duration = Duration::from_secs(1);
const ACCOUNTS: u64 = 100;

/// What the report traffic of one run is.
#[derive(Debug, Clone, Copy)]
enum Traffic {
    Quiet,
    Flood(u32),
    Polite(u32),
}

/// What report clients saw.
#[derive(Debug, Default, Clone, Copy)]
struct ReportCounts {
    accepted: u64,
    refused: u64,
    done: u64,
    polls: u64,
    errors: u64,
}

impl std::ops::AddAssign for ReportCounts {
    fn add_assign(&mut self, o: Self) {
        self.accepted += o.accepted;
        self.refused += o.refused;
        self.done += o.done;
        self.polls += o.polls;
        self.errors += o.errors;
    }
}

/// One run's figures.
struct Figures {
    reads: u64,
    errors: u64,
    reports: ReportCounts,
    p50: Duration,
    p99: Duration,
    seconds: f64,
}

/// Run the loads and print a Markdown table.
pub(crate) async fn run(
    backend: Backend,
    clients: u32,
    flooders: u32,
    report_clients: u32,
    seconds: u64,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    match backend {
        Backend::MySql => run_on::<MySqlManager>(clients, flooders, report_clients, seconds).await,
        Backend::Postgres => run_on::<PgManager>(clients, flooders, report_clients, seconds).await,
    }
}

async fn run_on<B: Store>(
    clients: u32,
    flooders: u32,
    report_clients: u32,
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
    let http = HttpSettings {
        max_connections: (clients as usize) + flooders.max(report_clients) as usize + 64,
        ..HttpSettings::default()
    };
    let router = app::router(state, &http);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let max_connections = http.max_connections;
    let serving = tokio::spawn(async move {
        crate::http::serve(listener, router, &http, async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        })
        .await
    });
    let length = Duration::from_secs(seconds);
    let mut runs = vec![(
        "quiet".to_owned(),
        load(addr, clients, Traffic::Quiet, length).await?,
    )];
    if flooders > 0 {
        let f = load(addr, clients, Traffic::Flood(flooders), length).await?;
        runs.push((format!("{flooders} flooders (ignore 429)"), f));
        // The flood's accepted reports finish before the next run.
        settle(&reports).await;
    }
    if report_clients > 0 {
        let f = load(addr, clients, Traffic::Polite(report_clients), length).await?;
        runs.push((
            format!("{report_clients} report clients (honour Retry-After)"),
            f,
        ));
    }
    let _ = stop_tx.send(true);
    let _ = serving.await;
    reports.drain(Duration::from_secs(60)).await;
    db.pool.close().await;
    println!(
        "{} (private server), {clients} readers, {seconds} s per run, http.max_connections {max_connections}\n",
        B::SERVER
    );
    println!("| run | reads/s | p50 | p99 | read errors | reports 202 | reports 429/503 | reports done | status polls | report errors |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (name, f) in &runs {
        let r = f.reports;
        println!(
            "| {name} | {:.0} | {:.2} ms | {:.2} ms | {} | {} | {} | {} | {} | {} |",
            f.reads as f64 / f.seconds,
            f.p50.as_secs_f64() * 1e3,
            f.p99.as_secs_f64() * 1e3,
            f.errors,
            r.accepted,
            r.refused,
            r.done,
            r.polls,
            r.errors
        );
    }
    let quiet = &runs[0].1;
    for (name, f) in &runs[1..] {
        println!(
            "\n{name} / quiet: throughput {:.2}x, p50 {:.2}x, p99 {:.2}x",
            (f.reads as f64 / f.seconds) / (quiet.reads as f64 / quiet.seconds),
            f.p50.as_secs_f64() / quiet.p50.as_secs_f64(),
            f.p99.as_secs_f64() / quiet.p99.as_secs_f64()
        );
    }
    drop(db);
    drop(server);
    Ok(ExitCode::SUCCESS)
}

/// Wait (at most a minute) until no accepted report is left running.
async fn settle(reports: &crate::api::reports::Reports) {
    let until = Instant::now() + Duration::from_secs(60);
    while reports.running() > 0 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

async fn connect(addr: std::net::SocketAddr) -> Result<Sender, Box<dyn std::error::Error>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// Replace `sender` with a new connection; `false` if connecting failed.
async fn reopen(sender: &mut Sender, addr: std::net::SocketAddr) -> bool {
    match connect(addr).await {
        Ok(s) => {
            *sender = s;
            true
        }
        Err(_) => false,
    }
}

/// One answer: its status, its `Retry-After` (seconds) and its body.
struct Answer {
    status: u16,
    retry_after: Option<u64>,
    body: Bytes,
}

/// One request; `None` on a transport error.
async fn send(sender: &mut Sender, method: &str, path: &str) -> Option<Answer> {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1")
        .body(Empty::<Bytes>::new())
        .ok()?;
    sender.ready().await.ok()?;
    let resp = sender.send_request(req).await.ok()?;
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get(hyper::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let body = resp.into_body().collect().await.ok()?.to_bytes();
    Some(Answer {
        status,
        retry_after,
        body,
    })
}

/// Sleep for `d`, but not past `deadline`.
async fn pause(d: Duration, deadline: Instant) {
    let until = (Instant::now() + d).min(deadline);
    tokio::time::sleep_until(tokio::time::Instant::from_std(until)).await;
}

/// A client that sends `POST /reports` back to back, ignoring 429.
async fn flooder(mut sender: Sender, deadline: Instant) -> ReportCounts {
    let (mut c, mut n) = (ReportCounts::default(), 0u64);
    while Instant::now() < deadline && n < MAX_PER_CLIENT {
        match send(&mut sender, "POST", "/reports").await {
            Some(a) if a.status == 202 => c.accepted += 1,
            Some(_) => c.refused += 1,
            None => {
                c.errors += 1;
                break;
            }
        }
        n += 1;
    }
    c
}

/// A well-behaved report client (see the module's doc).
async fn report_client(addr: std::net::SocketAddr, deadline: Instant) -> ReportCounts {
    let mut c = ReportCounts::default();
    let Ok(mut sender) = connect(addr).await else {
        c.errors += 1;
        return c;
    };
    let mut asked = 0u64;
    while Instant::now() < deadline && asked < MAX_REPORTS_PER_CLIENT {
        asked += 1;
        // A connection the server closed while it sat idle longer than
        // `http.idle_timeout` (a long `Retry-After`) is replaced, as an HTTP
        // client's connection pool does; not an error.
        if sender.is_closed() && !reopen(&mut sender, addr).await {
            c.errors += 1;
            return c;
        }
        let Some(a) = send(&mut sender, "POST", "/reports").await else {
            c.errors += 1;
            if !reopen(&mut sender, addr).await {
                return c;
            }
            continue;
        };
        match a.status {
            202 => {
                c.accepted += 1;
                let id = serde_json::from_slice::<serde_json::Value>(&a.body)
                    .ok()
                    .and_then(|v| v["id"].as_u64());
                let Some(id) = id else {
                    c.errors += 1;
                    continue;
                };
                for _ in 0..MAX_POLLS {
                    pause(POLL_EVERY, deadline).await;
                    if Instant::now() >= deadline {
                        break;
                    }
                    c.polls += 1;
                    match send(&mut sender, "GET", &format!("/reports/{id}")).await {
                        Some(a) if a.status == 200 && !is_pending(&a.body) => {
                            c.done += 1;
                            break;
                        }
                        Some(a) if a.status == 200 => {}
                        Some(_) => {
                            c.errors += 1;
                            break;
                        }
                        None => {
                            c.errors += 1;
                            if !reopen(&mut sender, addr).await {
                                return c;
                            }
                            break;
                        }
                    }
                }
            }
            429 | 503 => {
                c.refused += 1;
                let wait = Duration::from_secs(a.retry_after.unwrap_or(1)).min(MAX_RETRY_AFTER);
                pause(wait + wait.mul_f64(fastrand::f64() / 2.0), deadline).await;
            }
            _ => c.errors += 1,
        }
    }
    c
}

fn is_pending(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body).is_ok_and(|v| v["status"] == "pending")
}

async fn load(
    addr: std::net::SocketAddr,
    clients: u32,
    traffic: Traffic,
    length: Duration,
) -> Result<Figures, Box<dyn std::error::Error>> {
    // The readers connect first: the run's clock starts once they have.
    let mut senders = Vec::new();
    for _ in 0..clients {
        senders.push(connect(addr).await?);
    }
    let start = Instant::now();
    let deadline = start + length;
    let latencies = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let mut readers = Vec::new();
    for (c, mut sender) in (0u64..).zip(senders) {
        let latencies = latencies.clone();
        readers.push(tokio::spawn(async move {
            let (mut mine, mut errors) = (Vec::new(), 0u64);
            let mut n = 0u64;
            while Instant::now() < deadline && n < MAX_PER_CLIENT {
                let id = (n + c) % ACCOUNTS + 1;
                let t = Instant::now();
                match send(&mut sender, "GET", &format!("/accounts/{id}")).await {
                    Some(a) if a.status == 200 => mine.push(t.elapsed()),
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
    let mut others = Vec::new();
    match traffic {
        Traffic::Quiet => {}
        Traffic::Flood(n) => {
            for _ in 0..n {
                let sender = connect(addr).await?;
                others.push(tokio::spawn(flooder(sender, deadline)));
            }
        }
        Traffic::Polite(n) => {
            for _ in 0..n {
                others.push(tokio::spawn(report_client(addr, deadline)));
            }
        }
    }
    let mut errors = 0;
    for r in readers {
        errors += r.await?;
    }
    let mut reports = ReportCounts::default();
    for o in others {
        reports += o.await?;
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
        reports,
        p50: at(0.50),
        p99: at(0.99),
        seconds,
    })
}
