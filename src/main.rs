//! The `ftx` binary: parse the command line, run it, turn the outcome into an exit code.

use clap::Parser;
use ftx::cli::{Cli, Command};
use ftx::config::{SendConfig, ServeConfig};
use ftx::exit_codes::ExitCode;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    ftx::progress::respect_no_color();
    let outcome = match cli.command {
        Command::Serve(args) => match ServeConfig::from_args(args) {
            Ok(config) => ftx::server::serve(config),
            Err(e) => return usage(e),
        },
        Command::Send(args) => match SendConfig::from_args(args) {
            Ok(config) => ftx::client::send(config),
            Err(e) => return usage(e),
        },
    };
    match outcome {
        Ok(code) => code.into(),
        Err(e) => {
            eprintln!("ftx: {e:#}");
            ExitCode::Failure.into()
        }
    }
}

fn usage(e: anyhow::Error) -> std::process::ExitCode {
    eprintln!("ftx: {e:#}");
    ExitCode::Usage.into()
}
