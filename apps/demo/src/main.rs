//! The post-mortem's API service, rebuilt on poolwarden: a JSON API of
//! accounts and orders on MariaDB/MySQL or PostgreSQL whose background work
//! takes its own, labelled connections; `replay-incident` replays the
//! post-mortem.

mod api;
mod app;
mod cli;
mod database;
mod http;
mod load;
mod logging;
mod replay;
mod schema;
mod serve;
mod settings;
mod store;
#[cfg(test)]
mod tests;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::settings::Settings;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Every line this process prints goes through this redactor.
    let redactor = settings::redactor(&cli);
    logging::init(redactor.clone());
    let settings = match Settings::load(&cli) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {}", redactor.text(&error_chain(&e)));
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve::run(settings, cli.run_for).await,
            Command::ReplayIncident { seconds, server } => {
                replay::run(server.backend(), seconds).await
            }
            Command::Load {
                server,
                clients,
                flooders,
                report_clients,
                seconds,
            } => load::run(server.backend(), clients, flooders, report_clients, seconds).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", redactor.text(&error_chain(&*e)));
            ExitCode::FAILURE
        }
    }
}

/// An error and its sources on one line; a source whose text the previous
/// message already contains (an error that repeats its source) is skipped.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut last = text.clone();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !next.is_empty() && !last.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        last = next;
        source = s.source();
    }
    text
}
