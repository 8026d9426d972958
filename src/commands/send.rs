//! `ftx send`: plan the files, upload them with live progress, summarise, and say in the exit code whether any failed.

use std::time::Instant;

use crate::client;
use crate::config::SendConfig;
use crate::exit_codes::Exit;
use crate::outcome::Tally;
use crate::progress::{Reporter, Side, Summary};

/// Runs `ftx send`. A server name that does not resolve fails the run before any file.
pub fn send(config: &SendConfig) -> anyhow::Result<Exit> {
    let addresses = config.to.resolve()?;
    let run = client::plan(&config.files);
    let reporter = Reporter::start(Side::Send, config.output, Some(client::totals(&run.files)));
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
