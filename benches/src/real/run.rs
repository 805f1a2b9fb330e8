//! Starts the server, runs the chosen scenarios, prints and writes the
//! results.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::real::args::{self, Args};
use crate::real::markdown::{upsert, SKELETON};
use crate::real::server::Server;
use crate::real::{machine, s1_throughput, s2_restart, s3_wait_timeout, s4_kill, s5_cancel};
use crate::real::{s6_leak, s7_scaling};

/// What every scenario gets.
pub(crate) struct Ctx {
    pub(crate) server: Server,
    pub(crate) quick: bool,
    /// Write charts (not with `--no-write`).
    pub(crate) write: bool,
    pub(crate) charts: PathBuf,
    /// Scenario 1: only poolwarden's rows and the dedicated rows.
    pub(crate) ours_only: bool,
}

impl Ctx {
    /// `full` normally, `quick` with `--quick`.
    pub(crate) fn pick<T>(&self, full: T, quick: T) -> T {
        if self.quick {
            quick
        } else {
            full
        }
    }

    /// The link to a chart, relative to the workspace root (where
    /// BENCHMARKS.md lives).
    pub(crate) fn chart_link(&self, file: &str) -> String {
        format!("benches/charts/{file}")
    }
}

const METHOD: &str = "\
- **One contender at a time** on the same server; each is built, warmed (as
  many concurrent 50 ms `SELECT SLEEP` as it has connections, so every
  connection is open), measured, closed; the next starts once the server
  shows no client connection left.
- **Operation** = check out, run the query, give the connection back. Latency
  is the whole operation; *wait* is the checkout alone.
- **Transport**: every contender uses TCP to 127.0.0.1. mysql_async's
  default `prefer_socket` would switch its connections to the Unix socket;
  the row \"mysql_async Pool, Unix socket (its default)\" in scenario 1
  shows that default.
- **The limit** (\"dedicated Conns, no pool\"): N `mysql_async::Conn`s opened
  up front; task *i* always uses connection *i mod N* through a
  `tokio::sync::Mutex` (FIFO). The denominator of \"× limit\" in scenario 1
  is this with exactly 10 tasks: each task alone on its own connection,
  never waiting, nothing between it and the server: the raw capacity of 10
  connections on this machine. The same 10 connections shared by 64 tasks
  is shown too, but it is not a ceiling: with a fixed assignment a task
  queues behind its busy connection while another one is free (and 4 of
  the 10 connections carry 7 tasks, the others 6), so a pool can beat it.
- **Round trips** come from the server's own counters (`SHOW GLOBAL
  STATUS`), read before and after each measured window; what the status
  read itself adds (its connection, its statement, its `COM_QUIT`) is
  measured at start and subtracted. MariaDB 10.11 counts every client
  command in `Questions` except `COM_PING` (and statement
  prepare/close/reset), and counts `COM_PING` and `COM_RESET_CONNECTION`
  in `Com_admin_commands`. So commands = ΔQuestions + ΔCom_admin_commands −
  resets, where resets (`COM_RESET_CONNECTION`, counted twice otherwise)
  come from mysql_async's pool metrics (the only contender that sends them
  here). Scenario 1 re-checks these rules on the running server
  (calibration table).
- **Bounds**: every load loop stops at a deadline and at an operation count,
  every operation has its own timeout (counted as an error), and every
  scenario ends by itself.
- **The machine is shared** (2 cores for the server, the clients and
  anything else running): each section gives the load average before and
  after it ran. Numbers from a loaded machine compare contenders with each
  other (they ran interleaved, scenario 1 in rotated order over several
  rounds), not with other machines.
";

pub(crate) fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1).collect()) {
        Ok(Some(a)) => a,
        Ok(None) => {
            print!("{}", args::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn write_section(args: &Args, key: &str, body: &str) -> Result<(), String> {
    if !args.write {
        return Ok(());
    }
    let doc = std::fs::read_to_string(&args.out).unwrap_or_else(|_| SKELETON.to_owned());
    let doc = upsert(&doc, key, body);
    std::fs::write(&args.out, doc).map_err(|e| format!("writing {}: {e}", args.out.display()))
}

/// Runs the scenarios; `Ok(false)` when one of them failed to run.
async fn run(args: Args) -> Result<bool, String> {
    let total = Instant::now();
    eprintln!("starting a private MariaDB...");
    let server = tokio::task::spawn_blocking(Server::start)
        .await
        .map_err(|e| e.to_string())??;
    let version = server.version().await;
    let overhead = server.calibrate_overhead().await?;
    eprintln!(
        "MariaDB {version} at {}; one status read costs {} Questions",
        server.url(),
        overhead.get("Questions")
    );
    let ctx = Ctx {
        server,
        quick: args.quick,
        write: args.write,
        charts: args::charts_dir(),
        ours_only: args.ours_only,
    };
    if args.write {
        std::fs::create_dir_all(&ctx.charts)
            .map_err(|e| format!("creating {}: {e}", ctx.charts.display()))?;
    }
    let machine = format!(
        "Last run: `{}`\n\n{}",
        args.command(),
        machine::describe(&version)
    );
    println!("## Machine\n\n{machine}");
    write_section(&args, "machine", &machine)?;
    write_section(&args, "method", METHOD)?;

    let mut all_ok = true;
    for &n in &args.scenarios {
        let started = Instant::now();
        let load_before = machine::load_average();
        let ticks_before = machine::cpu_ticks();
        let date = machine::now_utc();
        eprintln!("--- scenario {n} ---");
        let result = match n {
            1 => s1_throughput::run(&ctx).await,
            2 => s2_restart::run(&ctx).await,
            3 => s3_wait_timeout::run(&ctx).await,
            4 => s4_kill::run(&ctx).await,
            5 => s5_cancel::run(&ctx).await,
            6 => s6_leak::run(&ctx).await,
            7 => s7_scaling::run(&ctx).await,
            _ => Err(format!("no scenario {n}")),
        };
        let took = started.elapsed();
        let head = format!(
            "Measured {date} with `{}`{}; took {:.0} s; load average {load_before} before, {} after; \
             CPU time stolen by the hypervisor meanwhile: {}.\n\n",
            args.command(),
            if args.quick { " (quick mode)" } else { "" },
            took.as_secs_f64(),
            machine::load_average(),
            machine::steal_share(ticks_before, machine::cpu_ticks()),
        );
        let body = match result {
            Ok(body) => format!("{head}{body}"),
            Err(e) => {
                all_ok = false;
                eprintln!("scenario {n} failed: {e}");
                format!("{head}**The run failed:** {e}\n")
            }
        };
        println!("### Scenario {n}\n\n{body}");
        write_section(&args, &format!("s{n}"), &body)?;
        // The next scenario starts on a quiet server.
        ctx.server.settle(0, Duration::from_secs(5)).await;
    }
    eprintln!("all done in {:.0} s", total.elapsed().as_secs_f64());
    Ok(all_ok)
}
