//! `poolwarden`: the pool doctor. Checks pool settings against what the
//! database server says about itself (`doctor URL`), or reads a running
//! service's `/debug/pool` (`doctor --live URL`). See `--help` and the
//! README for the exit codes.

mod checks;
mod cli;
mod cluster;
mod error;
mod exit;
mod facts;
mod live;
mod render;
mod render_cluster;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use poolwarden::redact::Redactor;

use crate::cli::{Cli, ColorWhen, Command, DoctorArgs};
use crate::error::DoctorError;
use crate::exit::Exit;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            let _ = e.print();
            return match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => ExitCode::SUCCESS,
                _ => Exit::Undiagnosed.into(),
            };
        }
    };
    let Command::Doctor(args) = cli.command;
    match args.color {
        ColorWhen::Auto => {}
        ColorWhen::Always => anstream::ColorChoice::AlwaysAnsi.write_global(),
        ColorWhen::Never => anstream::ColorChoice::Never.write_global(),
    }
    let json = args.json;
    // Everything printed goes through this: a URL's password never leaves
    // the process, whatever path (parse error, connect error, report).
    let redactor = Redactor::for_url(&args.url);
    match run(&args) {
        Ok((report, code)) => {
            let mut out = anstream::stdout();
            let _ = out.write_all(redactor.text(&report).as_bytes());
            let _ = out.flush();
            code.into()
        }
        Err(e) => {
            let message = redactor.text(&e.to_string());
            if json {
                println!("{}", render::error_json(&message));
            }
            let mut err = anstream::stderr();
            let _ = writeln!(err, "error: {message}");
            Exit::Undiagnosed.into()
        }
    }
}

/// Runs `doctor`; returns the report to print and the exit code.
fn run(args: &DoctorArgs) -> Result<(String, Exit), DoctorError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| DoctorError::Usage(format!("cannot start the async runtime: {e}")))?;
    if args.live {
        let report = rt.block_on(live::fetch(&args.url, args.timeout))?;
        let findings = checks::check_live(&report);
        let code = render::exit_code(&findings);
        let shown = facts::redact_str(&args.url);
        let text = if args.json {
            pretty(&render::live_json(&shown, &report, &findings))
        } else {
            render::live_human(&shown, &report, &findings)
        };
        return Ok((text, code));
    }
    let cfg = args.pool_config()?;
    let postgres = ["postgres://", "postgresql://"]
        .iter()
        .any(|s| args.url.starts_with(s));
    if args.command_timeout.is_some() && !postgres {
        return Err(DoctorError::Usage(
            "--command-timeout is checked against PostgreSQL's statement_timeout only; leave it out for MySQL and MariaDB".to_owned(),
        ));
    }
    if let Some(nodes) = cluster::nodes_of(&args.url) {
        let nodes = rt.block_on(cluster::read_nodes(nodes, args.timeout));
        if nodes.iter().all(|n| n.reading.is_none()) {
            let why: Vec<String> = nodes.iter().filter_map(|n| n.error.clone()).collect();
            return Err(DoctorError::NoNode(why.join("; ")));
        }
        let findings = checks::check_cluster(&nodes, &cfg);
        let code = render::exit_code(&findings);
        // The multi-host URL is no `url::Url`: the pool's redaction, which
        // parses leniently, masks its password.
        let shown = poolwarden::redact::url(&args.url);
        let text = if args.json {
            pretty(&render_cluster::cluster_json(
                &shown, &nodes, &cfg, &findings,
            ))
        } else {
            render_cluster::cluster_human(&shown, &nodes, &cfg, &args.pool_source(), &findings)
        };
        return Ok((text, code));
    }
    let target = facts::Target::parse(&args.url)?;
    let facts = rt.block_on(facts::read_facts(&target, args.timeout))?;
    let findings = checks::check_server(&facts, &cfg, args.processes, args.command_timeout());
    let code = render::exit_code(&findings);
    let text = if args.json {
        pretty(&render::server_json(
            &target.redacted(),
            &facts,
            &cfg,
            args.processes,
            &findings,
        ))
    } else {
        render::server_human(
            &target.redacted(),
            &facts,
            &cfg,
            &args.pool_source(),
            args.processes,
            &findings,
        )
    };
    Ok((text, code))
}

fn pretty(v: &serde_json::Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
    s.push('\n');
    s
}
