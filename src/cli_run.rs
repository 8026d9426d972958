//! From a parsed command line to a finished run: validation errors are usage errors (exit 2), everything else a run failure (exit 1).

use clap::CommandFactory;

use crate::cli::{Cli, Command};
use crate::commands;
use crate::config::{DemoConfig, SendConfig, ServeConfig};
use crate::exit_codes::Exit;

/// Why a command did not succeed: the command line was wrong, or running it failed.
#[derive(Debug)]
pub enum Failure {
    Usage(anyhow::Error),
    Run(anyhow::Error),
}

/// Runs one command to its end.
pub fn run(command: Command) -> Result<Exit, Failure> {
    match command {
        Command::Serve(args) => {
            let config = ServeConfig::from_args(args).map_err(Failure::Usage)?;
            commands::serve::serve(&config).map_err(Failure::Run)
        }
        Command::Send(args) => {
            let config = SendConfig::from_args(args).map_err(Failure::Usage)?;
            commands::send::send(&config).map_err(Failure::Run)
        }
        Command::Demo(args) => {
            commands::demo::demo(&DemoConfig::from_args(&args)).map_err(Failure::Run)
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "ftx", &mut std::io::stdout());
            Ok(Exit::Success)
        }
        Command::Man => {
            match clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()) {
                // `ftx man | head` closing the pipe early is not an error.
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Failure::Run(e.into())),
                _ => Ok(Exit::Success),
            }
        }
    }
}
