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
                    // Not the hash saved: the client sent none of that file's bytes now.
                    return Err(FileError::This(format!(
                        "verification failed: the file saved before is not the sender's BLAKE3 {}",
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
            .skip(size - offset, "reading a file already saved")
            .map_err(FileError::Batch)?;
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::Arc;

    use super::super::unfinished::Unfinished;
    use super::super::wire::Wire;
    use super::*;
    use crate::config::ServeConfig;
    use crate::drop_folder::DropFolder;
    use crate::protocol::batch::{self, Trailer};
    use crate::server::worker::Worker;

    fn frame<'a>(path: &'a str, safe: &'a SafePath, size: u64) -> FileFrame<'a> {
        FileFrame {
            id: 0,
            path,
            safe: Ok(safe),
            size,
            offset: 0,
            before: None,
            trailer: false,
            key: None,
        }
    }

    /// In a folder taken up again, a file frame with the content saved at
    /// its path is answered `already`, its content read and not written; other
    /// content is received; a big file resumed from its end whose hash after
    /// it is another fails, and the folder forgets it.
    #[test]
    fn a_file_saved_there_before_is_answered_without_being_written() {
        let dir = tempfile::tempdir().unwrap();
        let folder = DropFolder::open(dir.path()).unwrap();
        let unfinished = Arc::new(Unfinished::default());
        let (events, _seen) = crossbeam_channel::unbounded();
        let config = Arc::new(ServeConfig::default());
        let mut worker = Worker::new(config, folder.clone(), events, Arc::clone(&unfinished));
        let mut tree = folder.new_tree("photos").unwrap();
        tree.key = Some("k".into());
        unfinished.started("k", &tree);
        let small = batch::hex(&blake3::hash(b"hello"));
        let saved = |size, blake3: &str, part: Option<&str>, name: &str| Saved {
            size,
            blake3: blake3.to_string(),
            part: part.map(str::to_string),
            saved_as: format!("photos/{name}"),
        };
        unfinished.saved("k", "a.txt".into(), saved(5, &small, None, "a.txt"));
        let big = "ab".repeat(32);
        let part = "cd".repeat(32);
        let big_saved = saved(100_000, &big, Some(&part), "big.bin");
        unfinished.saved("k", "big.bin".into(), big_saved);

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, peer) = listener.accept().unwrap();
        let mut session = Session {
            id: 1,
            peer,
            worker: &mut worker,
            wire: Wire::new(&server, &ServeConfig::default()),
            trees: HashMap::from([("photos".to_string(), tree)]),
            made: Vec::new(),
            buffer: Vec::new(),
            ended_with: None,
            busy_parts_until: None,
        };

        // The same content: answered as saved then, its bytes skipped.
        client.write_all(b"hellonext").unwrap();
        let safe = SafePath::of("photos/a.txt").unwrap();
        let same = FileFrame {
            before: Some(&small),
            ..frame("photos/a.txt", &safe, 5)
        };
        let Ok(Some(answer)) = session.saved_there_before(&same, &safe, "k", "a.txt") else {
            panic!("not answered as saved before");
        };
        assert!(answer.already);
        assert_eq!(answer.saved_as, "photos/a.txt");
        assert_eq!(answer.hash.as_deref(), Some(small.as_str()));
        let mut next = [0u8; 4];
        session.wire.read_exact(&mut next).unwrap();
        assert_eq!(&next, b"next", "the content was not read past");

        // Other content at that path, or another size: received as usual.
        let other = "00".repeat(32);
        let changed = FileFrame {
            before: Some(&other),
            ..frame("photos/a.txt", &safe, 5)
        };
        assert!(matches!(
            session.saved_there_before(&changed, &safe, "k", "a.txt"),
            Ok(None)
        ));
        let longer = FileFrame {
            before: Some(&small),
            ..frame("photos/a.txt", &safe, 6)
        };
        assert!(matches!(
            session.saved_there_before(&longer, &safe, "k", "a.txt"),
            Ok(None)
        ));
        assert!(unfinished.find("k", "a.txt").is_some(), "still remembered");

        // A big file sent from its end with another hash after it: fails, forgotten.
        let wrong = batch::line(&Trailer {
            blake3: "ef".repeat(32),
        });
        client.write_all(&wrong).unwrap();
        let safe = SafePath::of("photos/big.bin").unwrap();
        let resumed = FileFrame {
            offset: 100_000,
            trailer: true,
            key: Some(&part),
            ..frame("photos/big.bin", &safe, 100_000)
        };
        match session.saved_there_before(&resumed, &safe, "k", "big.bin") {
            Err(FileError::This(reason)) => {
                assert!(
                    reason.contains("the file saved before is not the sender's BLAKE3")
                        && !reason.contains(&big),
                    "{reason}"
                )
            }
            _ => panic!("another hash after the content passed"),
        }
        assert!(unfinished.find("k", "big.bin").is_none(), "not forgotten");
    }
}
