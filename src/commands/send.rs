//! `ftx send`: plan the files, upload them with live progress, summarise, and say in the exit code whether any failed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::client;
use crate::config::SendConfig;
use crate::exit_codes::Exit;
use crate::outcome::Tally;
use crate::progress::{Event, Reporter, Side, Summary};

/// Runs `ftx send`. A server name that does not resolve fails the run before any file.
pub fn send(config: &SendConfig) -> anyhow::Result<Exit> {
    let addresses = config.to.resolve()?;
    let run = client::plan(&config.files);
    let reporter = Reporter::start(
        Side::Send,
        config.output,
        Some(client::totals(&run.files)),
        None,
    );
    let so_far = Arc::new(client::SoFar::new(&run, config));
    let started = Instant::now();
    interrupt_on_ctrl_c(&reporter, &so_far, started, config.to.to_string())?;
    let reports = client::upload_all(config, &addresses, &run, &reporter.events(), &so_far);
    let tally = Tally::of(&reports);
    reporter.finish(Summary {
        elapsed: started.elapsed(),
        tally,
        files: reports,
        to: Some(config.to.to_string()),
        interrupted: false,
    });
    Ok(Exit::from_failures(tally.failed))
}

/// How long an interrupted run waits for its table to be shown before it quits anyway.
const TABLE_WAIT: Duration = Duration::from_secs(2);

/// On Ctrl-C (or SIGTERM): the bars stop and the run's table is printed as
/// things stand (each file saved, delivered, failed, interrupted or not
/// sent), then ftx exits with 130, the terminal as it was. Nothing
/// unconfirmed is called saved; a second Ctrl-C quits at once.
fn interrupt_on_ctrl_c(
    reporter: &Reporter,
    so_far: &Arc<client::SoFar>,
    started: Instant,
    to: String,
) -> anyhow::Result<()> {
    let events = reporter.events();
    let ended = reporter.ended();
    let so_far = Arc::clone(so_far);
    let once = Arc::new(AtomicBool::new(false));
    let quit = || {
        crate::term::restore_terminal();
        std::process::exit(Exit::Interrupted.code().into());
    };
    ctrlc::set_handler(move || {
        if once.swap(true, Ordering::SeqCst) {
            crate::term::say_without_waiting("\nftx: stopped at once");
            quit();
        }
        // Told from a thread of its own, so that this handler is free to
        // hear a second Ctrl-C should the output be stuck.
        let (events, ended, so_far, to) = (
            events.clone(),
            ended.clone(),
            Arc::clone(&so_far),
            to.clone(),
        );
        std::thread::spawn(move || {
            let (files, resumable) = so_far.now();
            let summary = Summary {
                elapsed: started.elapsed(),
                // Counted by the render thread, once it has told the files in flight.
                tally: Tally::default(),
                files,
                to: Some(to),
                interrupted: true,
            };
            let told = events.send_timeout(Event::Interrupted { summary, resumable }, TABLE_WAIT);
            if told.is_ok() {
                let _ = ended.recv_timeout(TABLE_WAIT);
            }
            quit();
        });
    })
    .context("cannot install the Ctrl-C handler")?;
    Ok(())
}
