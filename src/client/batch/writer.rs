//! The sender's writer of a batch: a unit's frames and content back to back (PROTOCOL.md B3), small files from memory through one buffer, big ones with sendfile(2) resumed from what the server holds (B8).

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::Instant;

use super::connection::Connection;
use super::plan::{part_key, Unit};
use super::reader::{InFlight, Pending};
use super::shown;
use crate::client::upload::{in_words, open, open_only, send_content};
use crate::client::Planned;
use crate::pace::Pace;
use crate::progress::{ByteCounter, Event};
use crate::protocol::batch::{self, Frame, Trailer, Wanted};

/// Frames and small files are gathered into writes of up to this many bytes.
const OUT_BUFFER: usize = 64 * 1024;

/// Files asked about in one question: its line stays well under the 8 KiB a frame line may take.
const ASK_AT_ONCE: usize = 64;

/// A small file read whole is held in memory; one that grew past this since it was planned is not sent.
const GREW_TOO_MUCH: u64 = 16 * batch::WORTH_RESUMING;

/// What goes out on a batch connection, through one buffer; every frame that
/// awaits an answer is noted in flight as it is written.
struct Frames<'s> {
    out: BufWriter<&'s TcpStream>,
    in_flight: &'s InFlight,
    timeout: std::time::Duration,
}

impl<'s> Frames<'s> {
    fn sending(&self, e: &std::io::Error) -> String {
        format!("sending: {}", in_words(e, self.timeout))
    }

    /// Writes a frame whose answer is awaited as `pending`.
    fn frame(&mut self, frame: &Frame, pending: Pending) -> Result<(), String> {
        self.in_flight
            .write(&mut self.out, frame, pending)
            .map_err(|e| self.sending(&e))
    }

    /// Writes content, or a line that is part of a file (its trailer).
    fn bytes(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.out.write_all(bytes).map_err(|e| self.sending(&e))
    }

    fn flush(&mut self) -> Result<(), String> {
        self.out.flush().map_err(|e| self.sending(&e))
    }

    /// The connection itself, for what goes around the buffer (flushed first).
    fn stream(&mut self) -> Result<&'s TcpStream, String> {
        self.flush()?;
        Ok(*self.out.get_ref())
    }
}

impl Connection<'_> {
    /// Sends a unit's frames; an error means the connection is of no more use.
    /// Small files go through one buffer, frames and content together, so that
    /// many of them share a write; big ones go with sendfile(2), resumed from
    /// what the server holds (B8).
    pub(super) fn write_unit(
        &self,
        stream: &TcpStream,
        unit: &Unit,
        in_flight: &InFlight,
    ) -> Result<(), String> {
        let mut frames = Frames {
            out: BufWriter::with_capacity(OUT_BUFFER, stream),
            in_flight,
            timeout: self.context.config.timeout,
        };
        self.folder_frames(&mut frames, unit)?;
        let (keys, unusable) = self.keys_of(unit);
        let sizes: Vec<u64> = unit
            .files
            .iter()
            .map(|&i| self.run.files[i].size.unwrap_or(0))
            .collect();
        let held = self.ask(&mut frames, &sizes, &keys, &unusable)?;
        let mut content = Vec::new();
        for (n, &index) in unit.files.iter().enumerate() {
            if !unusable[n] {
                self.write_file(&mut frames, index, held[n], keys[n].clone(), &mut content)?;
            }
        }
        frames.flush()
    }

    /// The frames that come before a unit's files: its top folder (joined or
    /// keyed), the classic file to move in, the empty folders.
    fn folder_frames(&self, frames: &mut Frames<'_>, unit: &Unit) -> Result<(), String> {
        if let Some((top, token)) = &unit.join {
            let top = Frame::Top {
                top: top.clone(),
                join: Some(token.clone()),
                key: None,
            };
            frames.frame(&top, Pending::Join)?;
        }
        if let Some((top, key)) = &unit.keyed {
            let top = Frame::Top {
                top: top.clone(),
                join: None,
                key: Some(key.clone()),
            };
            frames.frame(&top, Pending::Join)?;
        }
        if let Some((index, token)) = &unit.claim {
            let claim = Frame::Claim {
                claim: token.clone(),
                path: self.run.files[*index].batch_path.clone(),
            };
            frames.frame(&claim, Pending::Claim(*index))?;
        }
        for dir in &unit.dirs {
            frames.frame(&Frame::Dir { dir: dir.clone() }, Pending::Dir)?;
        }
        Ok(())
    }

    /// One file of a unit: its frame and content (`held` bytes of it the
    /// server has already). A file that cannot be read fails alone; an error
    /// returned means the connection is of no more use.
    fn write_file(
        &self,
        frames: &mut Frames<'_>,
        index: usize,
        held: u64,
        key: Option<String>,
        content: &mut Vec<u8>,
    ) -> Result<(), String> {
        let config = self.context.config;
        let planned = &self.run.files[index];
        let small = self.is_small(planned);
        // Its turn in the batch has come (what `queued` means for a sender).
        self.queued(index);
        // A small file is read whole, hashed and sent from memory; a big one is opened again.
        let source = if small {
            read_small(planned, content).map(|()| None)
        } else {
            open_big(planned).map(Some)
        };
        let source = match source {
            Ok(source) => source,
            Err(reason) => {
                self.finish(index, Err(reason));
                return Ok(());
            }
        };
        let size = source
            .as_ref()
            .map_or(content.len() as u64, |(_, size)| *size);
        // A small file's hash goes before it; a big one's after it, computed while it goes.
        let hash: Arc<OnceLock<String>> = Arc::default();
        if small && config.verify {
            let _ = hash.set(batch::hex(&blake3::hash(content)));
        }
        let offset = held.min(size);
        let counter = ByteCounter::default();
        counter.add(offset);
        let _ = self.context.events.send(Event::Started {
            id: index as u64,
            name: shown(planned),
            size,
            counter: counter.clone(),
            socket: None,
            batched: true,
            in_folder: planned.top.is_some(),
            resumed: offset,
        });
        let frame = Frame::File {
            path: planned.batch_path.clone(),
            size,
            blake3: hash.get().cloned(),
            trailer: !small && config.verify,
            key,
            offset,
        };
        let pending = Pending::File {
            index,
            started: Instant::now(),
            hash: Arc::clone(&hash),
            offset,
        };
        frames.frame(&frame, pending)?;
        match source {
            None => {
                frames.bytes(content)?;
                counter.add(size);
            }
            Some((file, size)) => {
                // Files after it in this unit are not sent; the reader fails those in flight.
                let stream = frames.stream()?;
                if let Some(blake3) = self.send_big(stream, &file, size, offset, &counter)? {
                    let _ = hash.set(blake3.clone());
                    frames.bytes(&batch::line(&Trailer { blake3 }))?;
                }
            }
        }
        let _ = self.context.events.send(Event::Sent { id: index as u64 });
        Ok(())
    }

    /// Gives each big file of `unit` the key of its part, so that one question
    /// asks what the server already holds of them all (B8). A file that cannot
    /// be read fails here, and is marked unusable.
    fn keys_of(&self, unit: &Unit) -> (Vec<Option<String>>, Vec<bool>) {
        let mut keys: Vec<Option<String>> = vec![None; unit.files.len()];
        let mut unusable = vec![false; unit.files.len()];
        for (n, &index) in unit.files.iter().enumerate() {
            let planned = &self.run.files[index];
            if self.is_small(planned) || !self.context.config.verify {
                continue;
            }
            match part_key(planned) {
                Ok(key) => keys[n] = Some(key),
                Err(reason) => {
                    unusable[n] = true;
                    self.queued(index);
                    self.finish(index, Err(reason));
                }
            }
        }
        (keys, unusable)
    }

    /// Sends bytes `offset` to `size` of a big file with sendfile(2) while
    /// another thread hashes all of it (the server checks the whole file, what
    /// it held before included); returns the hash (`None` with `--no-verify`).
    fn send_big(
        &self,
        stream: &TcpStream,
        file: &File,
        size: u64,
        offset: u64,
        counter: &ByteCounter,
    ) -> Result<Option<String>, String> {
        let config = self.context.config;
        let mut pace = config.rate.map(Pace::new);
        let (sent, hashed) = thread::scope(|scope| {
            let hashing = config.verify.then(|| {
                scope.spawn(|| {
                    let mut hasher = blake3::Hasher::new();
                    crate::file_hash::hash_from(file, size, &mut hasher)
                        .map(|()| batch::hex(&hasher.finalize()))
                })
            });
            let sent = send_content(
                file,
                stream,
                offset,
                size,
                counter,
                config.sendfile,
                pace.as_mut(),
            );
            (sent, hashing.map(|h| h.join().expect("the hashing thread")))
        });
        sent.map_err(|e| format!("sending it: {}", in_words(&e.error, config.timeout)))?;
        hashed.transpose().map_err(|e| format!("hashing it: {e}"))
    }

    /// Whether a file goes from memory, through the shared buffer: under
    /// [`batch::WORTH_RESUMING`], and not paced (`--rate` paces what sendfile sends).
    fn is_small(&self, planned: &Planned) -> bool {
        self.context.config.rate.is_none()
            && planned.problem.is_none()
            && planned
                .size
                .is_some_and(|size| size < batch::WORTH_RESUMING)
    }

    /// Asks what the server holds of the big files from an earlier batch
    /// (B8), [`ASK_AT_ONCE`] files a question; one answer per file, 0 for
    /// files not asked about: small ones (resending one costs less than the
    /// round trip a question waits for), unhashed or unusable ones. Nothing is
    /// resumed from a question not answered in time.
    fn ask(
        &self,
        frames: &mut Frames<'_>,
        sizes: &[u64],
        keys: &[Option<String>],
        unusable: &[bool],
    ) -> Result<Vec<u64>, String> {
        let mut held = vec![0; sizes.len()];
        let asked: Vec<(usize, Wanted)> = keys
            .iter()
            .enumerate()
            .filter(|(n, _)| !unusable[*n])
            .filter_map(|(n, key)| {
                let key = key.clone()?;
                Some((
                    n,
                    Wanted {
                        key,
                        size: sizes[n],
                    },
                ))
            })
            .collect();
        let mut questions = Vec::new();
        for some in asked.chunks(ASK_AT_ONCE) {
            let (tell, told) = crossbeam_channel::bounded(1);
            let ask = Frame::Ask {
                ask: some.iter().map(|(_, wanted)| wanted.clone()).collect(),
            };
            frames.frame(&ask, Pending::Ask(tell))?;
            questions.push((some, told));
        }
        if questions.is_empty() {
            return Ok(held);
        }
        frames.flush()?;
        for (some, told) in questions {
            let have = told
                .recv_timeout(self.context.config.timeout)
                .unwrap_or_default();
            for ((n, _), bytes) in some.iter().zip(have) {
                held[*n] = bytes;
            }
        }
        Ok(held)
    }
}

/// Opens a big file to send, and its size now.
fn open_big(planned: &Planned) -> Result<(File, u64), String> {
    open(&planned.path).map(|(file, meta)| (file, meta.len()))
}

/// Reads a small file whole into `content`: the size it has when opened, whatever it was when planned.
fn read_small(planned: &Planned, content: &mut Vec<u8>) -> Result<(), String> {
    if let Some(problem) = &planned.problem {
        return Err(problem.clone());
    }
    // As planned (the usual case): an open and one read of the planned size
    // and a byte more, which comes back short by that byte. A file that
    // changed size, or is no longer a regular file, is looked at again below.
    if let Some(size) = planned.size.filter(|&size| size > 0) {
        let size = size as usize;
        if let Ok(mut file) = open_only(&planned.path) {
            content.clear();
            content.resize(size + 1, 0);
            if file.read(content).is_ok_and(|n| n == size) {
                content.truncate(size);
                return Ok(());
            }
        }
    }
    let (mut file, meta) = open(&planned.path)?;
    if meta.len() > GREW_TOO_MUCH {
        return Err(format!(
            "it grew to {} while ftx was sending; send it again",
            crate::term::Bytes(meta.len())
        ));
    }
    // Exactly the size it has now: one read, where read_to_end would ask the
    // size again and read once more to see the end.
    content.clear();
    content.resize(meta.len() as usize, 0);
    file.read_exact(content).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => "it shrank while it was read".to_string(),
        _ => format!("cannot read it: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planned(path: &std::path::Path, size: u64) -> Planned {
        Planned {
            path: path.to_path_buf(),
            name: b"f".to_vec(),
            renamed_from: None,
            size: Some(size),
            problem: None,
            batch_path: "f".into(),
            top: None,
        }
    }

    #[test]
    fn a_small_file_is_read_as_it_is_when_opened_unless_it_grew_too_much() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut content = vec![1, 2, 3];
        std::fs::write(&path, b"now longer than planned").unwrap();
        read_small(&planned(&path, 4), &mut content).unwrap();
        assert_eq!(content, b"now longer than planned");

        std::fs::write(&path, vec![0; GREW_TOO_MUCH as usize + 1]).unwrap();
        let said = read_small(&planned(&path, 4), &mut content).unwrap_err();
        assert!(said.starts_with("it grew to 1.00 MiB"), "{said}");
        std::fs::remove_file(&path).unwrap();
        let said = read_small(&planned(&path, 4), &mut content).unwrap_err();
        assert!(said.contains("No such file"), "{said}");

        // As planned, shorter, and no longer a file.
        std::fs::write(&path, b"four").unwrap();
        read_small(&planned(&path, 4), &mut content).unwrap();
        assert_eq!(content, b"four");
        read_small(&planned(&path, 9), &mut content).unwrap();
        assert_eq!(content, b"four", "shrank since planned");
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        let said = read_small(&planned(&path, 4), &mut content).unwrap_err();
        assert!(said.starts_with("is a folder"), "{said}");
    }
}
