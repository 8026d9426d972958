//! The `ftx` binary: parse the command line, run it, turn the outcome into an exit code.

use clap::Parser;
use ftx::cli::Cli;
use ftx::exit_codes::ExitCode;
use ftx::Failure;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    ftx::progress::respect_no_color();
    match ftx::run(cli.command) {
        Ok(code) => code.into(),
        Err(Failure::Usage(e)) => {
            ftx::say!("ftx: {e:#}");
            ExitCode::Usage.into()
        }
        Err(Failure::Run(e)) => {
            ftx::say!("ftx: {e:#}");
            ExitCode::Failure.into()
        }
    }
}
