//! ftx: send files over TCP with the classroom protocol, from a bounded-pool server with live bars and a concurrent sender.
//!
//! The binary is a thin shell around this library, so tests run the server
//! and the client in-process on port 0 as well as end to end.

pub mod cli;
pub mod client;
pub mod config;
pub mod demo;
pub mod drop_folder;
pub mod exit_codes;
pub mod names;
pub mod pace;
pub mod progress;
pub mod protocol;
pub mod server;

use clap::CommandFactory;

use crate::cli::{Cli, Command};
use crate::config::{SendConfig, ServeConfig};
use crate::exit_codes::ExitCode;

/// Why a command did not succeed: the command line was wrong, or running it failed.
#[derive(Debug)]
pub enum Failure {
    Usage(anyhow::Error),
    Run(anyhow::Error),
}

/// Runs one command to its end.
pub fn run(command: Command) -> Result<ExitCode, Failure> {
    match command {
        Command::Serve(args) => {
            let config = ServeConfig::from_args(args).map_err(Failure::Usage)?;
            server::serve(config).map_err(Failure::Run)
        }
        Command::Send(args) => {
            let config = SendConfig::from_args(args).map_err(Failure::Usage)?;
            client::send(config).map_err(Failure::Run)
        }
        Command::Demo(args) => demo::demo(config::demo_config(args)).map_err(Failure::Run),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "ftx", &mut std::io::stdout());
            Ok(ExitCode::Success)
        }
        Command::Man => {
            match clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()) {
                // `ftx man | head` closing the pipe early is not an error.
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Failure::Run(e.into())),
                _ => Ok(ExitCode::Success),
            }
        }
    }
}
