//! The commands as a user runs them: signals, banner, summary and exit code around the server and sender libraries.

mod banner;
pub mod demo;
pub mod find;
pub mod send;
pub mod serve;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context;
use crossbeam_channel::Sender;

use crate::drop_folder::DropFolder;
use crate::exit_codes::Exit;
use crate::progress::Event;
use crate::server::Stopper;

/// On the first Ctrl-C (or SIGTERM): say so, and stop the server, cancelling
/// uploads in progress. On the second: remove partial files and quit at once,
/// even if stopping is stuck (a full log pipe, say). Returns a flag that says
/// whether it happened.
fn stop_on_ctrl_c(
    stopper: Stopper,
    folder: DropFolder,
    notices: Sender<Event>,
    first: &'static str,
) -> anyhow::Result<Arc<AtomicBool>> {
    let signals = AtomicU64::new(0);
    let interrupted = Arc::new(AtomicBool::new(false));
    let seen = Arc::clone(&interrupted);
    ctrlc::set_handler(move || {
        if signals.fetch_add(1, Ordering::SeqCst) == 0 {
            seen.store(true, Ordering::SeqCst);
            // Before the cancelled uploads' lines; never waits: with the
            // output stalled and its queue full, this handler must still
            // see the second Ctrl-C.
            let _ = notices.try_send(Event::Notice(first.into()));
            stopper.stop();
        } else {
            folder.remove_partials();
            crate::term::restore_terminal();
            crate::term::say_without_waiting("\nftx: stopped at once; partial files removed");
            std::process::exit(Exit::Interrupted.code().into());
        }
    })
    .context("cannot install the Ctrl-C handler")?;
    Ok(interrupted)
}
