//! "Saved there before" (PROTOCOL.md B5b): in a folder taken up again, a file frame whose content was saved at that path already is answered as saved, its content read and not written.

use super::file::{FileError, FileFrame, FileSaved};
use super::session::Session;
use crate::drop_folder::Saved;
use crate::names::{self, SafePath};
use crate::outcome::{Done, Kept};

impl Session<'_> {
    /// The answer to `frame` when the folder of `key` holds its content at
    /// `below` (its path below the top folder) already; `None` when it is to
    /// be received. A frame that names that file with another hash after it
    /// fails, and the folder forgets the file: the next run sends it whole.
    pub(super) fn saved_there_before(
        &mut self,
        frame: &FileFrame<'_>,
        safe: &SafePath,
        key: &str,
        below: &str,
    ) -> Result<Option<FileSaved>, FileError> {
        let Some(before) = self.before(key, safe, below) else {
            return Ok(None);
        };
        let already = self.already_there(frame, &before);
        if let Err(FileError::This(_)) = &already {
            self.worker.unfinished.forget_file(key, below);
        }
        already
    }

    /// What was saved at `safe` (`below` its top folder) before in the folder
    /// of `key` (B5b): as remembered, or, in a folder taken up from its record
    /// after a restart, a small file the folder holds there.
    pub(super) fn before(&self, key: &str, safe: &SafePath, below: &str) -> Option<Saved> {
        let unfinished = &self.worker.unfinished;
        if let Some(saved) = unfinished.find(key, below) {
            return Some(saved);
        }
        if !unfinished.compares_on_disk(key) {
            return None;
        }
        let tree = self.trees.get(safe.top.as_ref()?)?;
        let (size, blake3) = tree.small_file_there(&safe.folders, &safe.name)?;
        Some(Saved {
            size,
            blake3,
            part: None,
            saved_as: format!("{}/{below}", tree.name),
        })
    }

    /// A file of a folder taken up again that was saved there before as
    /// `before`: if the frame names the same content (its hash before it, or,
    /// for a big file the sender resumes from its end, the hash after it),
    /// it is answered as saved and nothing is written; `None` otherwise.
    fn already_there(
        &mut self,
        frame: &FileFrame<'_>,
        before: &Saved,
    ) -> Result<Option<FileSaved>, FileError> {
        let (size, offset) = (frame.size, frame.offset);
        if before.size != size {
            return Ok(None);
        }
        let same = match frame.before {
            Some(blake3) => blake3.eq_ignore_ascii_case(&before.blake3),
            // Only a file the sender was told was held whole comes from its end.
            None if frame.trailer && offset == size && frame.key == before.part.as_deref() => {
                let blake3 = self.wire.trailer().map_err(FileError::Batch)?;
                if !blake3.eq_ignore_ascii_case(&before.blake3) {
                    return Err(FileError::This(format!(
                        "verification failed: the file saved before has BLAKE3 {}, the sender's is {}",
                        before.blake3,
                        names::escape_for_terminal(blake3.as_bytes())
                    )));
                }
                true
            }
            None => false,
        };
        if !same {
            return Ok(None);
        }
        // A small file's content follows its frame all the same: read, not written.
        let whole = self
            .wire
            .skip(size - offset)
            .map_err(|e| FileError::Batch(format!("reading a file already saved: {e}")))?;
        if !whole {
            return Err(FileError::Batch(
                "the client closed in the middle of a file".into(),
            ));
        }
        let done = Done {
            kept: Kept::Saved {
                saved_as: Some(before.saved_as.clone()).filter(|s| s != frame.path),
            },
            bytes: size,
            elapsed: std::time::Duration::ZERO,
            verified: Some(before.blake3.clone()),
            resumed_from: size,
        };
        Ok(Some(FileSaved {
            done,
            saved_as: before.saved_as.clone(),
            hash: Some(before.blake3.clone()),
            already: true,
        }))
    }
}
