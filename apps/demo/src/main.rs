//! The post-mortem's API service, rebuilt on poolwarden: a JSON API of
//! accounts and orders on MariaDB whose background work takes its own,
//! labelled connections; `replay-incident` replays the post-mortem.

mod api;
mod app;
mod cli;
mod database;
mod replay;
mod schema;
mod serve;
mod settings;
#[cfg(test)]
mod tests;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::settings::Settings;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,poolwarden=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let settings = match Settings::load(&cli) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
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
            Command::ReplayIncident { seconds } => replay::run(seconds).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", error_chain(&*e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its sources on one line.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
