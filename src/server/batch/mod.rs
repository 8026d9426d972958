//! Batch mode on the server (PROTOCOL.md section 4): a batch connection opened (B2), its session of frames read and answered, ended in its own words (B7).
//!
//! | module | step |
//! | --- | --- |
//! | this one | the opening and the welcome (B2), the end or the abort (B7) |
//! | [`wire`] | the one reader of frame lines, trailers and content; the answers held (B9) |
//! | [`session`] | frames dispatched in order, answers, counts for the view (B3, B4) |
//! | [`folders`] | top, dir and claim frames (B4a, B5, B5a, B5b) |
//! | [`file`] | one file frame: into a partial file or a part, verified, kept (B3, B8) |
//! | [`before`] | a file saved there before, in a folder taken up again (B5b) |
//! | [`unfinished`] | the folders left unfinished, by the sender's key (B5b) |

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use super::worker::{say_and_reset, Worker};
use super::Arrival;
use crate::names;
use crate::outcome::Tally;
use crate::progress::{BatchEnded, Event};
use crate::protocol::batch::{self, Answer, Hello};
use crate::protocol::REFUSED;

mod before;
mod file;
mod folders;
mod session;
pub(super) mod unfinished;
mod wire;

use session::{Counted, Session};
use wire::Wire;

/// The buffer the content of small files goes through.
const CONTENT_BUFFER: usize = 64 * 1024;

/// How long a batch ended early waits for the client to read why and close.
const DRAIN: Duration = Duration::from_secs(2);

/// Receives a batch on `worker`; every file is reported on its own (ids from
/// `file_ids`) and counted in the returned tally.
pub(super) fn receive(
    worker: &mut Worker,
    upload: &Arrival,
    file_ids: &AtomicU64,
    stopping: &dyn Fn() -> bool,
) -> Tally {
    let stream = &*upload.stream;
    let _ = stream.set_read_timeout(Some(worker.config.idle_timeout));
    let _ = stream.set_write_timeout(Some(worker.config.idle_timeout));
    worker.folder.expire_parts();
    worker.folder.expire_tokens();
    if !welcome(stream, &upload.header.name) {
        return Tally::default();
    }
    worker.trace(upload.id, || format!("{} opened a batch", upload.peer));
    // The connection's own row (waiting for a worker) goes: its files get rows of their own.
    let _ = worker.events.send(Event::Closed { id: upload.id });
    let wire = Wire::new(stream, &worker.config);
    let mut session = Session {
        id: upload.id,
        peer: upload.peer,
        worker,
        wire,
        trees: Default::default(),
        made: Vec::new(),
        buffer: vec![0; CONTENT_BUFFER],
        ended_with: None,
        busy_parts_until: None,
    };
    let began = Instant::now();
    let mut counted = Counted::default();
    let read = session.frames(file_ids, &mut counted, stopping);
    if read.is_err() {
        // A batch that broke off leaves no empty folder of its own behind
        // (one known by a key stays: it is taken up again, B5b).
        for sent in &session.made {
            let tree = &session.trees[sent];
            if tree.key.is_none() {
                tree.remove_if_empty();
            }
        }
    }
    let mut into: Vec<String> = session
        .trees
        .values()
        .filter(|t| t.exists())
        .map(|t| names::escape_for_terminal(t.name.as_bytes()))
        .collect();
    into.sort();
    let _ = session.worker.events.send(Event::BatchEnded(BatchEnded {
        id: upload.id,
        peer: upload.peer,
        saved: counted.in_folders.saved,
        failed: counted.in_folders.failed,
        bytes: counted.in_folders.bytes,
        all: counted.all,
        elapsed: began.elapsed(),
        into,
        broke_off: read.as_ref().err().cloned(),
    }));
    // Its folders are left before the last answers go: once the client
    // has read `end`, a finished folder is no longer written down (B5b).
    for key in session.trees.values().filter_map(|t| t.key.as_deref()) {
        session.worker.unfinished.left(key, read.is_ok());
    }
    let answered = |wire: &mut Wire<'_>| {
        wire.flush()
            .map_err(|e| format!("answering the client: {e}"))
    };
    if read.is_ok() {
        session.trace_line("server →", &batch::line(&Answer::End));
    }
    let ended = read.and_then(|()| session.wire.answer(&Answer::End));
    let ended = ended.and_then(|()| answered(&mut session.wire));
    if ended.is_err() {
        // What was answered before the batch broke off still goes.
        let _ = answered(&mut session.wire);
    }
    if let Err(reason) = ended {
        end_early(session.worker, upload, reason, session.ended_with, stopping);
    }
    counted.all
}

/// Answers the opening (B2): the welcome for a batch version this server
/// speaks, a refusal otherwise. True when frames are to be read.
fn welcome(stream: &TcpStream, hello: &[u8]) -> bool {
    let hello: Option<Hello> = batch::parse(hello.trim_ascii_end()).ok();
    if hello.is_none_or(|h| h.batch != batch::VERSION) {
        let refusal = format!(
            "{REFUSED}this server speaks batch version {}",
            batch::VERSION
        );
        let _ = (&*stream).write_all(refusal.as_bytes());
        return false;
    }
    let welcome = batch::line(&Answer::Go {
        batch: batch::VERSION,
    });
    (&*stream).write_all(&welcome).is_ok()
}

/// Ends a batch before its end (B7), telling the view and the client why;
/// a batch ended by the failure of `ended_with` points at that file's line
/// rather than saying the reason twice.
fn end_early(
    worker: &Worker,
    upload: &Arrival,
    reason: String,
    ended_with: Option<String>,
    stopping: &dyn Fn() -> bool,
) {
    let (reason, notice) = match ended_with {
        _ if stopping() => {
            let reason = "cancelled: the server is stopping".to_string();
            let notice = format!("batch from {} ended: {reason}", upload.peer);
            (reason, notice)
        }
        Some(file) => {
            let notice = format!(
                "batch from {} ended with {file} (see its line)",
                upload.peer
            );
            (reason, notice)
        }
        None => {
            let notice = format!("batch from {} ended: {reason}", upload.peer);
            (reason, notice)
        }
    };
    let _ = worker.events.send(Event::Notice(notice));
    if stopping() {
        // No waiting: the reason if it goes at once, then a reset.
        say_and_reset(&upload.stream, &batch::line(&Answer::Aborted { reason }));
    } else {
        say_aborted(&upload.stream, &reason);
    }
}

/// Ends a batch early in its own words (B7): the reason, then, so that the
/// client reads it rather than a reset, what it still sends is read and thrown
/// away until it closes, for at most [`DRAIN`]; a reset after that.
fn say_aborted(stream: &TcpStream, reason: &str) {
    let _ = stream.set_write_timeout(Some(DRAIN));
    let said = (&*stream).write_all(&batch::line(&Answer::Aborted {
        reason: reason.to_string(),
    }));
    let closed = said.is_ok() && stream.shutdown(std::net::Shutdown::Write).is_ok() && {
        let deadline = Instant::now() + DRAIN;
        let mut sink = [0u8; 16 * 1024];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
                break false;
            }
            match (&*stream).read(&mut sink) {
                Ok(0) => break true,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break false,
            }
        }
    };
    if !closed {
        let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
    }
}
