//! `ftx serve`: the banner, Ctrl-C, the live view and the summary around a [`Server`].

use std::time::Instant;

use crate::config::ServeConfig;
use crate::exit_codes::Exit;
use crate::progress::{Event, Heading, Reporter, Side, Summary};
use crate::server::Server;

/// Runs `ftx serve` until Ctrl-C or SIGTERM.
pub fn serve(config: &ServeConfig) -> anyhow::Result<Exit> {
    let server = Server::bind(config)?;
    let banner = config
        .output
        .is_human()
        .then(|| super::banner::print(&server, config));
    let heading: Option<Heading> = match banner {
        Some(banner) => Some(Box::new(move |width| banner.lines(width))),
        None => None,
    };
    let reporter = Reporter::start(Side::Serve, config.output, None, heading);
    let events = reporter.events();
    let _ = events.send(Event::Listening {
        address: server.local_addr(),
        dir: server.folder().path().display().to_string(),
        workers: config.workers,
    });
    super::stop_on_ctrl_c(
        server.stopper(),
        server.folder().clone(),
        events.clone(),
        "ftx: stopping: cancelling uploads in progress (Ctrl-C again to quit at once)",
    )?;
    let started = Instant::now();
    let tally = server.run(&events);
    reporter.finish(Summary {
        elapsed: started.elapsed(),
        tally,
        files: Vec::new(),
        to: None,
        interrupted: false,
    });
    Ok(Exit::Success)
}
