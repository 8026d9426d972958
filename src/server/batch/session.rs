//! A batch session on the server: frames read one after another from the wire and dispatched (PROTOCOL.md B3), each answered in order (B4), counted for the view.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::file::{FileError, FileFrame, FileSaved};
use super::wire::Wire;
use crate::drop_folder::Tree;
use crate::names::{self, SafePath};
use crate::outcome::{Done, Tally};
use crate::progress::Event;
use crate::protocol::batch::{self, Answer, Frame, Wanted};
use crate::server::worker::Worker;

/// The most of a frame or answer line `--trace` shows.
const TRACED: usize = 160;

/// One batch being read.
pub(super) struct Session<'a> {
    /// The connection's id and its client, for the view and `--trace`.
    pub(super) id: u64,
    pub(super) peer: std::net::SocketAddr,
    pub(super) worker: &'a mut Worker,
    pub(super) wire: Wire<'a>,
    /// Top folders this batch fills, by the name sent.
    pub(super) trees: HashMap<String, Tree>,
    /// Those of them it made (not joined, nor taken up again), by the name sent.
    pub(super) made: Vec<String>,
    /// Content goes through here, one buffer for the whole batch.
    pub(super) buffer: Vec<u8>,
    /// The file whose failure ended the batch, as shown: its line says why.
    pub(super) ended_with: Option<String>,
    /// Until when its questions wait for parts other batches write (set at its first question).
    pub(super) busy_parts_until: Option<Instant>,
}

/// What a batch's files came to: all of them, and those of its folders.
#[derive(Default)]
pub(super) struct Counted {
    pub(super) all: Tally,
    pub(super) in_folders: Tally,
}

impl Session<'_> {
    /// Reads frames until `end` (answered by the caller); an error ends the batch.
    pub(super) fn frames(
        &mut self,
        file_ids: &AtomicU64,
        counted: &mut Counted,
        stopping: &dyn Fn() -> bool,
    ) -> Result<(), String> {
        loop {
            let frame = self
                .wire
                .frame()?
                .ok_or("the client closed without ending the batch")?;
            self.trace_line("→ server", &batch::line(&frame));
            let answer = match frame {
                Frame::End { .. } => return Ok(()),
                Frame::Claim { claim, path } => match self.adopt(&claim, &path) {
                    Ok((saved_as, size)) => {
                        // One of its folder's files, as the sender counts them; its
                        // upload was counted on its own when it was saved.
                        counted.in_folders.saved += 1;
                        counted.in_folders.bytes += size;
                        made(path, saved_as)
                    }
                    Err(reason) => Answer::Failed { path, reason },
                },
                Frame::Top { top, join, key } => {
                    let key = key.as_deref().filter(|k| batch::is_key(k));
                    let (saved_as, token) = self.top(&top, join.as_deref(), key)?;
                    Answer::Top {
                        top,
                        saved_as,
                        token,
                    }
                }
                Frame::Dir { dir } => match self.make_dir(&dir) {
                    Ok(saved_as) => made(dir, saved_as),
                    Err(reason) => Answer::Failed { path: dir, reason },
                },
                Frame::Ask { ask } => self.have(&ask),
                Frame::File {
                    path,
                    size,
                    blake3,
                    trailer,
                    key,
                    offset,
                } => {
                    let safe = SafePath::of(&path);
                    let frame = FileFrame {
                        id: file_ids.fetch_add(1, Ordering::Relaxed),
                        path: &path,
                        safe: safe.as_ref().map_err(String::as_str),
                        size,
                        offset,
                        before: blake3.as_deref(),
                        trailer,
                        key: key.as_deref().filter(|k| batch::is_key(k)),
                    };
                    self.file_frame(&frame, counted, stopping)?
                }
            };
            self.trace_line("server →", &batch::line(&answer));
            self.wire.answer(&answer)?;
        }
    }

    /// One frame or answer line for `--trace`, escaped, cut to a screen line.
    pub(super) fn trace_line(&self, way: &str, line: &[u8]) {
        self.worker.trace(self.id, || {
            let line = line.trim_ascii_end();
            let shown = names::escape_for_terminal(&line[..line.len().min(TRACED)]);
            let cut = if line.len() > TRACED { " ..." } else { "" };
            match way {
                "→ server" => format!("{} {way}  {shown}{cut}", self.peer),
                _ => format!("{way} {}  {shown}{cut}", self.peer),
            }
        });
    }

    /// B8: the bytes held of each file asked about. Saved whole by an earlier
    /// batch into a folder this one continues (B5b): all of it is held.
    fn have(&mut self, ask: &[Wanted]) -> Answer {
        let keys: Vec<&str> = self
            .trees
            .values()
            .filter_map(|t| t.key.as_deref())
            .collect();
        // One wait for busy parts for the whole batch (BUSY_PART_WAIT).
        let until = *self
            .busy_parts_until
            .get_or_insert_with(|| Instant::now() + crate::drop_folder::BUSY_PART_WAIT);
        let unfinished = &self.worker.unfinished;
        let have = ask
            .iter()
            .map(|w| match unfinished.holds(&keys, &w.key, w.size) {
                true => w.size,
                false => self.worker.folder.held(&w.key, w.size, until),
            })
            .collect();
        Answer::Have { have }
    }

    /// A file frame, reported to the view and counted; its answer, or the
    /// reason the batch ends after it.
    fn file_frame(
        &mut self,
        frame: &FileFrame<'_>,
        counted: &mut Counted,
        stopping: &dyn Fn() -> bool,
    ) -> Result<Answer, String> {
        let _ = self.worker.events.send(Event::Queued {
            id: frame.id,
            name: names::escape_for_terminal(frame.path.as_bytes()),
            size: Some(frame.size),
            path: None,
            peer: Some(self.peer),
        });
        let result = self.file(frame, stopping);
        if result.is_err() {
            // Its folder, if known by a key, is unfinished (B5b).
            if let Some(key) = frame.safe.ok().and_then(|p| self.key_of(p)) {
                self.worker.unfinished.failed(&key);
            }
        }
        let path = frame.path.to_string();
        let (answer, outcome, fatal): (Answer, Result<Done, String>, _) = match result {
            Ok(FileSaved {
                done,
                saved_as,
                hash,
                already,
            }) => (
                Answer::Saved {
                    path,
                    saved_as,
                    size: frame.size,
                    blake3: hash,
                    already,
                },
                Ok(done),
                None,
            ),
            Err(FileError::This(reason)) => (
                Answer::Failed {
                    path,
                    reason: reason.clone(),
                },
                Err(reason),
                None,
            ),
            Err(FileError::Batch(reason)) => (
                Answer::Failed {
                    path,
                    reason: reason.clone(),
                },
                Err(reason.clone()),
                Some(reason),
            ),
        };
        counted.all.count(&outcome);
        if frame.safe.is_ok_and(|s| s.top.is_some()) {
            counted.in_folders.count(&outcome);
        }
        self.worker.report(frame.id, outcome);
        match fatal {
            Some(reason) => {
                self.ended_with = Some(names::escape_for_terminal(frame.path.as_bytes()));
                Err(reason)
            }
            None => Ok(answer),
        }
    }
}

/// The answer to a folder made or a file moved: saved there, nothing sent.
fn made(path: String, saved_as: String) -> Answer {
    Answer::Saved {
        path,
        saved_as,
        size: 0,
        blake3: None,
        already: false,
    }
}
