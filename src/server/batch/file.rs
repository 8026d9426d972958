//! One file frame on the server (PROTOCOL.md B3, B4, B8): its content into a partial file or its part, hashed as it lands, compared with the sender's BLAKE3, kept under its final name.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::session::Session;
use crate::drop_folder::{BeginError, PartialFile, Saved};
use crate::names::{self, SafePath};
use crate::outcome::{Done, Kept};
use crate::progress::{ByteCounter, Event};
use crate::protocol::batch;
use crate::server::copy::{self, CopyError, Meter};
use crate::server::worker::{explain, over_limit};

/// What the server's hashing thread reads at once.
const HASH_READ: usize = 64 * 1024;

/// Files (or what is left of them) from this size up are spliced, then hashed back.
const SPLICE_FROM: u64 = 1024 * 1024;

/// Why a file of a batch failed: only that file, or the whole batch.
pub(super) enum FileError {
    /// Its content was read: answer, and go on with the next frame.
    This(String),
    /// The stream cannot be trusted any more: answer if possible, then end the batch.
    Batch(String),
}

/// A file of a batch saved: its outcome, where it is, its BLAKE3, and
/// whether it was there already (B5b: nothing written now).
pub(super) struct FileSaved {
    pub(super) done: Done,
    pub(super) saved_as: String,
    pub(super) hash: Option<String>,
    pub(super) already: bool,
}

/// A file frame, as it came and with its path made safe.
pub(super) struct FileFrame<'a> {
    /// Its id for the view.
    pub(super) id: u64,
    /// The path as sent.
    pub(super) path: &'a str,
    /// The path made safe, or why it could not be.
    pub(super) safe: Result<&'a SafePath, &'a str>,
    pub(super) size: u64,
    /// Bytes the server held already, not sent again (B8).
    pub(super) offset: u64,
    /// Its BLAKE3, sent before its content.
    pub(super) before: Option<&'a str>,
    /// Its BLAKE3 comes after its content.
    pub(super) trailer: bool,
    /// What names its part, when it has one.
    pub(super) key: Option<&'a str>,
}

impl FileFrame<'_> {
    fn verified(&self) -> bool {
        self.before.is_some() || self.trailer
    }
}

impl Session<'_> {
    /// One file: its content into a partial file, hashed, compared, kept.
    pub(super) fn file(
        &mut self,
        frame: &FileFrame<'_>,
        stopping: &dyn Fn() -> bool,
    ) -> Result<FileSaved, FileError> {
        if frame.offset > frame.size {
            return Err(FileError::Batch(format!(
                "a file frame that does not add up: its offset {} is past its size of {}",
                frame.offset, frame.size
            )));
        }
        let safe = match frame.safe {
            Ok(safe) => safe,
            Err(reason) => {
                // Refused, but its content comes all the same: read past it.
                self.skip(frame)?;
                return Err(FileError::This(reason.to_string()));
            }
        };
        over_limit(&self.worker.config, frame.size).map_err(FileError::Batch)?;
        // In a folder taken up again (B5b), a file saved there before with this
        // content is not written again. Its folder's key, and where it is remembered there.
        let keyed = self.key_of(safe).map(|key| (key, safe.below_top()));
        if let Some((key, below)) = &keyed {
            if let Some(done) = self.saved_there_before(frame, safe, key, below)? {
                return Ok(done);
            }
        }
        let (mut partial, top) = self.begin(frame, safe)?;
        let counter = ByteCounter::default();
        // Held already: where a resumed file's bar starts.
        counter.add(frame.offset);
        let _ = self.worker.events.send(Event::Started {
            id: frame.id,
            name: names::escape_for_terminal(frame.path.as_bytes()),
            size: frame.size,
            counter: counter.clone(),
            socket: None,
            batched: true,
            in_folder: safe.top.is_some(),
            resumed: frame.offset,
        });
        let started = Instant::now();
        let hash = self.content(&mut partial, frame, &counter, stopping)?;
        let (id, peer, sent) = (self.id, self.peer, frame.size - frame.offset);
        self.worker
            .trace(id, || format!("{peer} → server  {sent} content bytes"));
        self.compare(&mut partial, frame, hash.as_deref())?;
        let kept = partial
            .keep()
            .map_err(|e| FileError::This(format!("saving the received file: {e}")))?;
        let saved_as = match top {
            Some(top) => format!("{top}/{}", safe.below_top_as(&kept)),
            None => kept,
        };
        if let (Some((key, below)), Some(blake3)) = (keyed, &hash) {
            let saved = Saved {
                size: frame.size,
                blake3: blake3.clone(),
                // Written down only for a file received into a part.
                part: frame
                    .key
                    .filter(|_| frame.verified() && frame.size >= batch::WORTH_RESUMING)
                    .map(str::to_string),
                saved_as: saved_as.clone(),
            };
            self.worker.unfinished.saved(&key, below, saved);
        }
        Ok(FileSaved {
            done: Done {
                kept: Kept::Saved {
                    saved_as: Some(saved_as.clone()).filter(|s| s != frame.path),
                },
                bytes: frame.size,
                elapsed: started.elapsed(),
                verified: hash.clone(),
                resumed_from: frame.offset,
            },
            saved_as,
            hash,
            already: false,
        })
    }

    /// Reads a refused file's content (and trailer) and throws it away.
    fn skip(&mut self, frame: &FileFrame<'_>) -> Result<(), FileError> {
        let whole = self
            .wire
            .skip(frame.size - frame.offset, "reading past a refused file")
            .map_err(FileError::Batch)?;
        if !whole {
            return Err(FileError::Batch(
                "the client closed in the middle of a file".into(),
            ));
        }
        if frame.trailer {
            self.wire.trailer().map_err(FileError::Batch)?;
        }
        Ok(())
    }

    /// Where the file goes: a partial file, or, for a verified file with a
    /// key big enough to be worth it, a part that survives a break-off (B8),
    /// at the top of the drop folder or in its tree; with its tree's name.
    /// The offset the client resumes from must be what the part holds.
    fn begin(
        &mut self,
        frame: &FileFrame<'_>,
        safe: &SafePath,
    ) -> Result<(PartialFile, Option<String>), FileError> {
        let resumable = frame
            .key
            .or(frame.before)
            .filter(|_| frame.verified() && frame.size >= batch::WORTH_RESUMING);
        let failed = |e: BeginError| FileError::Batch(e.to_string());
        let size = frame.size;
        let ((mut partial, held), top) = match &safe.top {
            Some(top) => {
                let tree = self.tree(top).map_err(FileError::Batch)?;
                let begun = match resumable {
                    Some(key) => tree.begin_resumable(&safe.folders, &safe.name, key, size),
                    None => tree.begin(&safe.folders, &safe.name, size).map(|p| (p, 0)),
                }
                .map_err(failed)?;
                (begun, Some(tree.name.clone()))
            }
            None => {
                let folder = &self.worker.folder;
                let begun = match resumable {
                    Some(key) => folder.begin_resumable(&safe.name, key, size),
                    None => folder.begin_batched(&safe.name, size).map(|p| (p, 0)),
                }
                .map_err(failed)?;
                (begun, None)
            }
        };
        let offset = frame.offset;
        if offset != held && offset != 0 {
            return Err(FileError::Batch(format!(
                "the client would resume from byte {offset}, the server holds {held}"
            )));
        }
        if offset == 0 && held > 0 {
            // Sent whole again: what was held goes.
            partial
                .restart()
                .map_err(|e| FileError::Batch(e.to_string()))?;
        }
        Ok((partial, top))
    }

    /// Receives the content after the offset into `partial`; returns the
    /// BLAKE3 of the whole file when it is verified. A big file is spliced in
    /// while another thread hashes it, whole, from the file, following what
    /// has landed; a small one is hashed as it goes through the buffer.
    fn content(
        &mut self,
        partial: &mut PartialFile,
        frame: &FileFrame<'_>,
        counter: &ByteCounter,
        stopping: &dyn Fn() -> bool,
    ) -> Result<Option<String>, FileError> {
        let (size, offset, verify) = (frame.size, frame.offset, frame.verified());
        let config = Arc::clone(&self.worker.config);
        let copy_failed =
            |e: CopyError| FileError::Batch(explain(&e, size - offset, &config, stopping));
        let reading_back =
            |e: std::io::Error| FileError::Batch(format!("reading back what was written: {e}"));
        let hash = if size - offset >= SPLICE_FROM {
            let reader = partial.reader().map_err(reading_back)?;
            let ended = AtomicBool::new(false);
            let (copied, hashed) = std::thread::scope(|scope| {
                let hashing =
                    verify.then(|| scope.spawn(|| hash_following(&reader, size, counter, &ended)));
                let copied = self.copy_big(partial, size - offset, counter);
                ended.store(true, Ordering::SeqCst);
                (
                    copied,
                    hashing.map(|h| h.join().expect("the hashing thread")),
                )
            });
            copied.map_err(copy_failed)?;
            hashed.transpose().map_err(reading_back)?
        } else {
            let mut hasher = verify.then(blake3::Hasher::new);
            if let Some(hasher) = &mut hasher {
                partial
                    .hash_held(hasher, offset)
                    .map_err(|e| FileError::Batch(format!("reading the part already held: {e}")))?;
            }
            let mut meter = Meter::new(&self.worker.config, counter);
            copy::read_into(
                &mut self.wire,
                partial,
                size - offset,
                &mut meter,
                &mut self.buffer,
                0,
                |bytes| {
                    if let Some(hasher) = &mut hasher {
                        hasher.update(bytes);
                    }
                },
            )
            .map_err(copy_failed)?;
            hasher.map(|h| h.finalize())
        };
        Ok(hash.map(|h| batch::hex(&h)))
    }

    /// Compares the BLAKE3 of what was written with the sender's (before the
    /// content, or the trailer after it). A file that differs fails, and
    /// leaves nothing under its name nor a part to resume.
    fn compare(
        &mut self,
        partial: &mut PartialFile,
        frame: &FileFrame<'_>,
        got: Option<&str>,
    ) -> Result<(), FileError> {
        let expected = match frame.before {
            Some(before) => Some(before.to_string()),
            None if frame.trailer => Some(self.wire.trailer().map_err(FileError::Batch)?),
            None => None,
        };
        if let (Some(expected), Some(got)) = (&expected, got) {
            if !expected.eq_ignore_ascii_case(got) {
                partial.discard();
                // Never the hash the server found: with a part resumed, it
                // is the hash of bytes this client may not have sent.
                return Err(FileError::This(format!(
                    "verification failed: what arrived is not the sender's BLAKE3 {}",
                    names::escape_for_terminal(expected.as_bytes())
                )));
            }
        }
        Ok(())
    }

    /// Copies `size` bytes into `file`: what the wire holds already, then the
    /// rest with the worker's copier (splice(2) on Linux, as for classic uploads).
    fn copy_big(
        &mut self,
        file: &mut PartialFile,
        size: u64,
        counter: &ByteCounter,
    ) -> Result<(), CopyError> {
        let mut meter = Meter::new(&self.worker.config, counter);
        let held = self.wire.held();
        let first = held.len().min(usize::try_from(size).unwrap_or(usize::MAX));
        file.write_all(&held[..first]).map_err(CopyError::Disk)?;
        std::io::BufRead::consume(&mut self.wire, first);
        meter.moved(first as u64, first as u64)?;
        let socket = self.wire.socket().map_err(|error| CopyError::Socket {
            got: first as u64,
            error,
        })?;
        self.worker
            .copier
            .copy(socket, file, size - first as u64, &mut meter)
    }
}

/// BLAKE3 of the first `size` bytes of `file`, read as they land: `landed`
/// counts the bytes in the file. Fails if the copy `ended` short of `size`.
fn hash_following(
    file: &std::fs::File,
    size: u64,
    landed: &ByteCounter,
    ended: &AtomicBool,
) -> std::io::Result<blake3::Hash> {
    let mut hasher = blake3::Hasher::new();
    let mut buffer = vec![0u8; HASH_READ];
    let mut at = 0;
    while at < size {
        let there = landed.get().min(size);
        // Whole reads only (but the last): BLAKE3 hashes many 1 KiB chunks at
        // once with SIMD only when it gets many at once; a few KiB at a time,
        // as they land, it would take them one by one.
        if there - at >= HASH_READ as u64 || (there == size && at < there) {
            crate::file_hash::hash_span(file, at, there, &mut buffer, &mut hasher)?;
            at = there;
        } else if ended.load(Ordering::SeqCst) && landed.get() < size {
            // The copy ended short of the whole file (a whole one goes round again).
            return Err(std::io::Error::other("the copy ended early"));
        } else {
            std::thread::sleep(std::time::Duration::from_micros(500));
        }
    }
    Ok(hasher.finalize())
}
