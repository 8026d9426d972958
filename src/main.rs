//! The `ftx` binary: parse the command line, run it, turn the outcome into an exit code.

use clap::Parser;
use ftx::cli::Cli;
use ftx::exit_codes::Exit;
use ftx::Failure;

fn main() -> std::process::ExitCode {
    let cli = Cli::try_parse().unwrap_or_else(|e| ftx::cli::without_far_suggestions(e).exit());
    cli.color.apply();
    let result = ftx::run(cli.command);
    ftx::term::restore_terminal();
    match result {
        Ok(exit) => exit.into(),
        Err(Failure::Usage(e)) => {
            ftx::say!("ftx: {e:#}");
            Exit::Usage.into()
        }
        Err(Failure::Run(e)) => {
            ftx::say!("ftx: {e:#}");
            Exit::Failure.into()
        }
    }
}
