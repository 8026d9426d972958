//! Batch mode on the sender (PROTOCOL.md section 4): what the classic first file left, planned into units, pipelined over a few batch connections, each file hashed with BLAKE3 and checked against the server's answer.
//!
//! | module | step |
//! | --- | --- |
//! | [`plan`] | the run cut into units (a folder, or a share of the loose files) and the keys (B5b, B8) |
//! | [`connection`] | one batch connection: opened (B2), fed units, every file given an outcome |
//! | [`writer`] | a unit's frames and content, and the questions about parts (B3, B8) |
//! | [`reader`] | the server's answers, matched in order to the frames written (B4, B7) |

use std::thread;

use super::{Context, Planned, Run};
use crate::names;

mod connection;
mod plan;
mod reader;
mod writer;

use connection::Connection;

/// Sends what the first (classic) upload, `classic`, left: a folder given goes whole into
/// one batch (its top folder is made once); the files given are spread over
/// the others; at most `jobs` batches at once.
pub(super) fn send(context: &Context, run: &Run, classic: Option<usize>) {
    let units = plan::units(context, run, classic);
    let (queue, work) = crossbeam_channel::unbounded();
    let connections = context.config.jobs.max(1).min(units.len());
    for unit in units {
        queue.send(unit).expect("the queue is open");
    }
    drop(queue);
    thread::scope(|scope| {
        for _ in 0..connections {
            let work = work.clone();
            scope.spawn(move || Connection { context, run }.serve(&work));
        }
    });
}

/// A file of a batch as people read it: its path in the batch.
fn shown(planned: &Planned) -> String {
    names::escape_for_terminal(planned.batch_path.as_bytes())
}
