//! `ftx send`: plan the files, upload them with live progress, summarise, and say in the exit code whether any failed.

use std::time::Instant;

use anyhow::Context as _;

use crate::client;
use crate::config::SendConfig;
use crate::exit_codes::Exit;
use crate::outcome::Tally;
use crate::progress::{Reporter, Side, Summary};

/// Runs `ftx send`. A server name that does not resolve fails the run before any file.
pub fn send(config: &SendConfig) -> anyhow::Result<Exit> {
    let addresses = config.to.resolve()?;
    // Ctrl-C (or SIGTERM) ends the run at once, the terminal as it was, with
    // what that means for the files: nothing unconfirmed is saved, and between
    // ftx ends the same command picks up where this one stopped.
    ctrlc::set_handler(|| {
        crate::term::restore_terminal();
        crate::term::say_without_waiting(
            "\nftx: interrupted: files the server had not confirmed are not saved there; \
             to an ftx server, run the same command again to resume (big files where \
             they stopped, folders into the same folder)",
        );
        std::process::exit(Exit::Interrupted.code().into());
    })
    .context("cannot install the Ctrl-C handler")?;
    let run = client::plan(&config.files);
    let reporter = Reporter::start(
        Side::Send,
        config.output,
        Some(client::totals(&run.files)),
        None,
    );
    let started = Instant::now();
    let reports = client::upload_all(config, &addresses, &run, &reporter.events());
    let mut tally = Tally::default();
    for report in &reports {
        tally.count(&report.result);
    }
    reporter.finish(Summary {
        elapsed: started.elapsed(),
        tally,
        files: reports,
        to: Some(config.to.to_string()),
    });
    Ok(Exit::from_failures(tally.failed))
}
