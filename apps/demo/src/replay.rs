//! `replay-incident`: the post-mortem, replayed on a private server that
//! closes sessions idle for 5 s (MariaDB's `wait_timeout`, PostgreSQL's
//! `idle_session_timeout`). Requests flow through the real router while
//! background work, started from requests, keeps its connections long after
//! its query (the post-mortem's bug). Run once with health checks and leak
//! detection off (the post-mortem's setup) and once with poolwarden's
//! defaults, then compare.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use parking_lot::Mutex;
use poolwarden::{CloseReason, Event, Observer, PoolConfig};
use tower::ServiceExt;

use poolwarden::Pool;
use poolwarden_mysql::MySqlManager;
use poolwarden_postgres::PgManager;

use crate::api::error::ErrorDetail;
use crate::api::reports::legacy_hold;
use crate::app::{self, AppState};
use crate::database::{self, PrivateServer};
use crate::store::{Backend, Store};

const WAIT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TASKS: usize = 8;
const ACCOUNTS: u64 = 20;

/// Which pool setup a run uses.
#[derive(Debug, Clone, Copy)]
enum Setup {
    /// The post-mortem's: no validation, no leak detection, no keepalive.
    HealthChecksOff,
    /// poolwarden's defaults.
    Defaults,
}

impl Setup {
    fn config(self) -> PoolConfig {
        // The post-mortem's sizes: pool_size=10, max_overflow=5, recycle 300 s.
        let mut c = PoolConfig::default();
        c.max_size = 10;
        c.max_overflow = 5;
        c.max_lifetime = Some(Duration::from_secs(300));
        match self {
            Setup::HealthChecksOff => {
                c.name = "health-checks-off".to_owned();
                c.skip_validation = true;
                c.leak_threshold = None;
                c.keepalive_interval = None;
            }
            Setup::Defaults => c.name = "poolwarden-defaults".to_owned(),
        }
        c
    }

    fn title(self) -> &'static str {
        match self {
            Setup::HealthChecksOff => "health checks off",
            Setup::Defaults => "poolwarden defaults",
        }
    }
}

/// What the pool told us, with when.
#[derive(Default)]
struct Seen {
    start: Option<Instant>,
    reports: Vec<(f64, String)>,
}

struct Watch(Mutex<Seen>);

impl Observer for Watch {
    fn on_event(&self, event: &Event<'_>) {
        let (Event::Leak { checkout } | Event::NearServerTimeout { checkout }) = event else {
            return;
        };
        let kind = if matches!(event, Event::Leak { .. }) {
            "leak"
        } else {
            "near server timeout"
        };
        let mut seen = self.0.lock();
        let at = seen.start.map_or(0.0, |s| s.elapsed().as_secs_f64());
        let text = format!(
            "{kind}: held {:.1}s at {} ({})",
            checkout.held_for.as_secs_f64(),
            checkout.location,
            checkout.label.as_deref().unwrap_or("no label"),
        );
        seen.reports.push((at, text));
    }
}

/// One run's outcome.
pub(crate) struct Outcome {
    setup: Setup,
    requests: u64,
    pub(crate) errors: u64,
    error_kinds: Vec<String>,
    reports: Vec<(f64, String)>,
    closed: Vec<(CloseReason, u64)>,
    invalidations: u64,
    /// The server's setting in the role of `wait_timeout`.
    idle_setting: &'static str,
}

/// Run both setups and print them side by side. Exit 0 when the defaults
/// let no error reach a request and named the culprit.
pub(crate) async fn run(
    backend: Backend,
    seconds: u64,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let outcomes = match backend {
        Backend::MySql => replay::<MySqlManager>(seconds).await?,
        Backend::Postgres => replay::<PgManager>(seconds).await?,
    };
    print_summary(&outcomes);
    Ok(if outcomes[1].verdict() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The server setting that closes idle sessions, by backend.
fn idle_setting(backend: Backend) -> &'static str {
    match backend {
        Backend::MySql => "wait_timeout",
        Backend::Postgres => "idle_session_timeout",
    }
}

/// Both runs on one private server that closes sessions idle for 5 s.
pub(crate) async fn replay<B: Store>(
    seconds: u64,
) -> Result<Vec<Outcome>, Box<dyn std::error::Error>> {
    println!(
        "replay-incident: starting a private {} with {}={}s ...",
        B::SERVER,
        idle_setting(B::BACKEND),
        WAIT_TIMEOUT.as_secs()
    );
    let server = PrivateServer::start(B::BACKEND, Some(WAIT_TIMEOUT)).await?;
    let url = server.url();
    seed::<B>(&url).await?;
    let mut outcomes = Vec::new();
    for setup in [Setup::HealthChecksOff, Setup::Defaults] {
        println!("replay-incident: {} for {seconds}s ...", setup.title());
        let mut outcome = run_once::<B>(&url, setup, Duration::from_secs(seconds)).await?;
        outcome.idle_setting = idle_setting(B::BACKEND);
        outcomes.push(outcome);
    }
    drop(server);
    Ok(outcomes)
}

impl Outcome {
    /// No error reached a request, and the pool named the culprit's code.
    pub(crate) fn verdict(&self) -> bool {
        self.errors == 0 && self.reports.iter().any(|(_, r)| r.contains("reports.rs"))
    }
}

async fn seed<B: Store>(url: &str) -> Result<(), Box<dyn std::error::Error>> {
    let pool = database::open_pool::<B>(url, PoolConfig::default()).await?;
    crate::schema::migrate(&pool).await?;
    let mut conn = pool.get().await?;
    for i in 1..=ACCOUNTS {
        let id = B::insert_account(
            &mut conn,
            &format!("account {i}"),
            &format!("a{i}@example.com"),
        )
        .await?;
        B::insert_order(&mut conn, id, i as i64 * 100, "paid").await?;
    }
    drop(conn);
    pool.close().await;
    Ok(())
}

async fn run_once<B: Store>(
    url: &str,
    setup: Setup,
    length: Duration,
) -> Result<Outcome, Box<dyn std::error::Error>> {
    let watch = Arc::new(Watch(Mutex::new(Seen::default())));
    let mut manager = B::manager(url)?;
    if let Setup::HealthChecksOff = setup {
        // The post-mortem's pool knew nothing of the server's wait_timeout.
        manager = manager.ignore_server_timeout();
    }
    let pool: Pool<B> = Pool::builder(manager)
        .config(setup.config())
        .observer(watch.clone())
        .build()?;
    let mut state = AppState::new(pool.clone(), crate::settings::ReportSettings::default());
    state.legacy_hold = Some(legacy_hold(WAIT_TIMEOUT));
    let router = app::router(state, &crate::settings::HttpSettings::default());
    let start = Instant::now();
    watch.0.lock().start = Some(start);
    let deadline = start + length;
    let errors = Arc::new(Mutex::new((0u64, Vec::<String>::new())));
    let mut tasks = Vec::new();
    for t in 0..REQUEST_TASKS {
        let router = router.clone();
        let errors = errors.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            // Bounded by time and by count.
            while Instant::now() < deadline && n < 100_000 {
                let id = (n + t as u64) % ACCOUNTS + 1;
                let req = Request::get(format!("/accounts/{id}")).body(Body::empty());
                let Ok(req) = req else { break };
                let Ok(resp) = router.clone().oneshot(req).await;
                {
                    if resp.status().is_server_error() {
                        let detail = resp
                            .extensions()
                            .get::<ErrorDetail>()
                            .map_or_else(|| resp.status().to_string(), |d| d.0.clone());
                        let mut e = errors.lock();
                        e.0 += 1;
                        if !e.1.contains(&detail) {
                            e.1.push(detail);
                        }
                    }
                }
                n += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            n
        }));
    }
    // The culprit: every 3 s, background work that keeps its connection.
    let mut wave = 1;
    while start.elapsed() + legacy_hold(WAIT_TIMEOUT) < length {
        tokio::time::sleep_until((start + Duration::from_secs(wave * 3 - 2)).into()).await;
        for _ in 0..2 {
            let req = Request::builder()
                .method(Method::POST)
                .uri("/reports/legacy")
                .body(Body::empty())?;
            let resp = router.clone().oneshot(req).await?;
            assert_eq!(resp.status(), StatusCode::ACCEPTED);
        }
        wave += 1;
    }
    let mut requests = 0;
    for t in tasks {
        requests += t.await?;
    }
    // Let the last leaked connections come back before closing.
    let settle = Instant::now() + Duration::from_secs(10);
    while pool.status().in_use > 0 && Instant::now() < settle {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    pool.close().await;
    let status = pool.status();
    let (errors, error_kinds) = std::mem::take(&mut *errors.lock());
    let reports = std::mem::take(&mut watch.0.lock().reports);
    Ok(Outcome {
        setup,
        requests,
        errors,
        error_kinds,
        reports,
        idle_setting: "",
        closed: CloseReason::ALL
            .iter()
            .map(|r| (*r, status.closed.get(*r)))
            .filter(|(_, n)| *n > 0)
            .collect(),
        invalidations: status.invalidations,
    })
}

fn print_summary(outcomes: &[Outcome]) {
    println!();
    let setting = outcomes.first().map_or("wait_timeout", |o| o.idle_setting);
    println!("== replay-incident: {setting}={}s; background work keeps its connection {}s after its query",
        WAIT_TIMEOUT.as_secs(), legacy_hold(WAIT_TIMEOUT).as_secs());
    let w = 34;
    print!("{:<w$}", "");
    for o in outcomes {
        print!("{:<44}", o.setup.title());
    }
    println!();
    let row = |name: &str, f: &dyn Fn(&Outcome) -> String| {
        print!("{name:<w$}");
        for o in outcomes {
            print!("{:<44}", f(o));
        }
        println!();
    };
    row("requests", &|o| o.requests.to_string());
    row("errors that reached requests", &|o| o.errors.to_string());
    row("culprit named by the pool", &|o| {
        o.reports.first().map_or_else(
            || "no".to_owned(),
            |(at, _)| format!("yes, {at:.1}s into the run"),
        )
    });
    row("pool-wide invalidations", &|o| o.invalidations.to_string());
    row("connections closed", &|o| {
        o.closed
            .iter()
            .map(|(r, n)| format!("{}={n}", r.as_str()))
            .collect::<Vec<_>>()
            .join(" ")
    });
    for o in outcomes {
        println!();
        println!("-- {}", o.setup.title());
        for kind in &o.error_kinds {
            println!("   error reaching a request: {kind}");
        }
        for (at, report) in o.reports.iter().take(6) {
            println!("   pool report at {at:>5.1}s: {report}");
        }
        if o.reports.is_empty() {
            println!("   the pool said nothing about who held the connections");
        }
    }
}
