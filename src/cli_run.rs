//! From a parsed command line to a finished run: validation errors are usage errors (exit 2), everything else a run failure (exit 1).

use clap::CommandFactory;

use crate::check::{self, CheckConfig};
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

/// `ftx man`: one page on stdout, or every page into a folder.
fn man(page: Option<&str>, dir: Option<&std::path::Path>) -> Result<Exit, Failure> {
    let mut cli = Cli::command().disable_help_subcommand(true);
    cli.build();
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir)
            .and_then(|()| clap_mangen::generate_to(cli, dir))
            .map_err(|e| {
                Failure::Run(anyhow::anyhow!(
                    "writing man pages into {}: {e}",
                    dir.display()
                ))
            })?;
        crate::say!(
            "ftx: man pages written into {} (ftx.1, ftx-serve.1, ftx-send.1, ...)",
            dir.display()
        );
        return Ok(Exit::Success);
    }
    let command = match page {
        None | Some("ftx") => cli,
        Some(name) => cli.find_subcommand(name).cloned().ok_or_else(|| {
            Failure::Usage(anyhow::anyhow!(
                "there is no page for '{name}': try serve, send, find, check, demo, completions or man"
            ))
        })?,
    };
    match clap_mangen::Man::new(command).render(&mut std::io::stdout()) {
        // `ftx man | head` closing the pipe early is not an error.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Failure::Run(e.into())),
        _ => Ok(Exit::Success),
    }
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
        Command::Check(target) => {
            let config = CheckConfig::from_args(target).map_err(Failure::Usage)?;
            config.selected().map_err(Failure::Usage)?;
            check::check(&config).map_err(Failure::Run)
        }
        Command::Demo(args) => {
            commands::demo::demo(&DemoConfig::from_args(&args)).map_err(Failure::Run)
        }
        Command::Find(args) => commands::find::find(&args).map_err(Failure::Run),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "ftx", &mut std::io::stdout());
            Ok(Exit::Success)
        }
        Command::Man { page, dir } => man(page.as_deref(), dir.as_deref()),
    }
}
