//! A batch on the server (PROTOCOL.md B2-B7): frames read one after another on one connection, each file verified with BLAKE3 and answered, folders recreated under a top folder made anew.

use std::collections::HashMap;
use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use indicatif::HumanBytes;

use super::copy::{CopyError, Meter};
use super::unfinished::Saved;
use super::worker::{explain, say_and_reset, Worker};
use super::Upload;
use crate::drop_folder::{PartialFile, Tree};
use crate::names;
use crate::outcome::{Done, Kept, Tally};
use crate::progress::{BatchEnded, ByteCounter, Event};
use crate::protocol::batch::{self, Answer, Frame, Hello, Trailer};
use crate::protocol::REFUSED;

/// The buffer frames are read through; content larger than it goes around it.
const READ_BUFFER: usize = 64 * 1024;

/// Why a file of a batch failed: only that file, or the whole batch.
enum FileError {
    /// Its content was read: answer, and go on with the next frame.
    This(String),
    /// The stream cannot be trusted any more: answer if possible, then end the batch.
    Batch(String),
}

/// A file of a batch saved: its outcome, where it is, its BLAKE3, and
/// whether it was there already (B5b: nothing written now).
struct FileSaved {
    done: Done,
    saved_as: String,
    hash: Option<String>,
    already: bool,
}

/// A path from a frame, made safe: the top folder (if any), the folders below it, the file's name.
struct SafePath {
    top: Option<String>,
    folders: Vec<String>,
    name: String,
}

impl SafePath {
    /// Each component is made safe the way names are; `..`, `.` and empty ones cannot leave the drop folder.
    fn of(path: &str) -> Option<SafePath> {
        let mut parts: Vec<String> = path
            .split(['/', '\\'])
            .filter(|c| !c.is_empty() && *c != "." && *c != "..")
            .map(|c| names::safe_file_name(c.as_bytes()))
            .collect();
        let name = parts.pop()?;
        let top = (!parts.is_empty()).then(|| parts.remove(0));
        Some(SafePath {
            top,
            folders: parts,
            name,
        })
    }
}

/// A path's place below its top folder: the key files are remembered by in a folder (B5b).
fn below_top(path: &SafePath) -> String {
    below_top_as(path, &path.name)
}

/// The same place under `name`: the path's own name, or the numbered one it got.
fn below_top_as(path: &SafePath, name: &str) -> String {
    let mut parts: Vec<&str> = path.folders.iter().map(String::as_str).collect();
    parts.push(name);
    parts.join("/")
}

impl Worker {
    /// Receives a batch; every file is reported on its own (ids from `file_ids`)
    /// and counted in the returned tally.
    pub(super) fn batch(
        &mut self,
        upload: &Upload,
        file_ids: &AtomicU64,
        stopping: &dyn Fn() -> bool,
    ) -> Tally {
        let stream = &*upload.stream;
        let mut tally = Tally::default();
        let _ = stream.set_read_timeout(Some(self.config.idle_timeout));
        let _ = stream.set_write_timeout(Some(self.config.idle_timeout));
        self.folder.expire_parts();
        let hello: Option<Hello> = batch::parse(upload.header.name.trim_ascii_end()).ok();
        if hello.is_none_or(|h| h.batch != batch::VERSION) {
            let _ = (&*stream).write_all(
                format!(
                    "{REFUSED}this server speaks batch version {}",
                    batch::VERSION
                )
                .as_bytes(),
            );
            return tally;
        }
        let welcome = batch::line(&Answer::Go {
            batch: batch::VERSION,
        });
        if (&*stream).write_all(&welcome).is_err() {
            return tally;
        }
        self.trace(upload.id, || format!("{} opened a batch", upload.peer));
        // The connection's own row (waiting for a worker) goes: its files get rows of their own.
        let _ = self.events.send(Event::Closed { id: upload.id });
        let mut session = Session {
            peer: upload.peer,
            worker: self,
            reader: BufReader::with_capacity(READ_BUFFER, stream),
            stream,
            trees: HashMap::new(),
            buffer: vec![0; READ_BUFFER],
            answers: Vec::new(),
        };
        let began = std::time::Instant::now();
        let mut in_folders = Tally::default();
        let read = session.frames(file_ids, &mut tally, &mut in_folders, stopping);
        let mut into: Vec<String> = session
            .trees
            .values()
            .map(|t| names::escape_for_terminal(t.name.as_bytes()))
            .collect();
        into.sort();
        let _ = session.worker.events.send(Event::BatchEnded(BatchEnded {
            peer: upload.peer,
            saved: in_folders.saved,
            failed: in_folders.failed,
            bytes: in_folders.bytes,
            elapsed: began.elapsed(),
            into,
        }));
        // Its folders are left before the last answers go: once the client
        // has read `end`, a finished folder is no longer written down (B5b).
        for key in session.trees.values().filter_map(|t| t.key.as_deref()) {
            session.worker.unfinished.left(key, read.is_ok());
        }
        let ended = read.and_then(|()| session.answer(&Answer::End));
        let ended = ended.and_then(|()| session.send_answers());
        if ended.is_err() {
            let _ = session.send_answers();
        }
        if let Err(reason) = ended {
            let reason = if stopping() {
                "cancelled: the server is stopping".to_string()
            } else {
                reason
            };
            let _ = self.events.send(Event::Notice(format!(
                "batch from {} ended: {}",
                upload.peer, reason
            )));
            if stopping() {
                // No waiting: the reason if it goes at once, then a reset.
                say_and_reset(stream, &batch::line(&Answer::Aborted { reason }));
            } else {
                say_aborted(stream, &reason);
            }
        }
        tally
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
        let deadline = std::time::Instant::now() + DRAIN;
        let mut sink = [0u8; 16 * 1024];
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
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
        let _ = rustix::net::sockopt::set_socket_linger(stream, Some(std::time::Duration::ZERO));
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
            batch::hash_span(file, at, there, &mut buffer, &mut hasher)?;
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

/// What the server's hashing thread reads at once.
const HASH_READ: usize = 64 * 1024;

/// Files (or what is left of them) from this size up are spliced, then hashed back.
const SPLICE_FROM: u64 = 1024 * 1024;

/// Answers are sent once this many bytes of them wait, whatever else happens.
const ANSWERS_AT_ONCE: usize = 64 * 1024;

/// How long a batch ended early waits for the client to read why and close.
const DRAIN: std::time::Duration = std::time::Duration::from_secs(2);

/// A file frame's path: as sent, and made safe (`None`: nothing was left of it).
struct Named<'a> {
    path: &'a str,
    safe: Option<&'a SafePath>,
}

/// How a file of a batch is checked (B3, B8).
struct Check<'a> {
    /// Its BLAKE3, sent before its content.
    before: Option<&'a str>,
    /// Its BLAKE3 comes after its content.
    trailer: bool,
    /// What names its part, when it has one.
    key: Option<&'a str>,
}

/// One batch being read.
struct Session<'a> {
    /// The client, for the view.
    peer: std::net::SocketAddr,
    worker: &'a mut Worker,
    reader: BufReader<&'a TcpStream>,
    stream: &'a TcpStream,
    /// Top folders made in this batch, by the name sent.
    trees: HashMap<String, Tree>,
    /// Content goes through here, one buffer for the whole batch.
    buffer: Vec<u8>,
    /// Answers not sent yet: they go together whenever nothing more has
    /// arrived to read, so that many small files share a write and a client
    /// waiting for an answer always gets it.
    answers: Vec<u8>,
}

impl Session<'_> {
    /// Reads frames until `end` (answered by the caller); an error ends the batch.
    fn frames(
        &mut self,
        file_ids: &AtomicU64,
        tally: &mut Tally,
        in_folders: &mut Tally,
        stopping: &dyn Fn() -> bool,
    ) -> Result<(), String> {
        loop {
            if self.reader.buffer().is_empty() {
                self.send_answers()?;
            }
            let line = match batch::read_line(&mut self.reader) {
                Ok(Some(line)) => line,
                Ok(None) => return Err("the client closed without ending the batch".into()),
                Err(e) => return Err(format!("reading a frame: {e}")),
            };
            let frame: Frame =
                batch::parse(&line).map_err(|e| format!("a frame that cannot be read: {e}"))?;
            match frame {
                Frame::End { .. } => return Ok(()),
                Frame::Claim { claim, path } => {
                    let answer = match self.adopt(&claim, &path) {
                        Ok(saved_as) => Answer::Saved {
                            path,
                            saved_as,
                            size: 0,
                            blake3: None,
                            already: false,
                        },
                        Err(reason) => Answer::Failed { path, reason },
                    };
                    self.answer(&answer)?;
                }
                Frame::Top { top, join, key } => {
                    let (saved_as, token) = self.top(&top, join.as_deref(), key.as_deref())?;
                    self.answer(&Answer::Top {
                        top,
                        saved_as,
                        token,
                    })?;
                }
                Frame::Dir { dir } => {
                    let answer = match self.make_dir(&dir) {
                        Ok(saved_as) => Answer::Saved {
                            path: dir,
                            saved_as,
                            size: 0,
                            blake3: None,
                            already: false,
                        },
                        Err(reason) => Answer::Failed { path: dir, reason },
                    };
                    self.answer(&answer)?;
                }
                Frame::Ask { ask } => {
                    let keys: Vec<&str> = self
                        .trees
                        .values()
                        .filter_map(|t| t.key.as_deref())
                        .collect();
                    let unfinished = &self.worker.unfinished;
                    // Saved whole by an earlier batch into a folder this one continues: all of it is held.
                    let have = ask
                        .iter()
                        .map(|w| match unfinished.holds(&keys, &w.key, w.size) {
                            true => w.size,
                            false => self.worker.folder.held(&w.key, w.size),
                        })
                        .collect();
                    self.answer(&Answer::Have { have })?;
                }
                Frame::File {
                    path,
                    size,
                    blake3,
                    trailer,
                    key,
                    offset,
                } => {
                    let id = file_ids.fetch_add(1, Ordering::Relaxed);
                    let shown = names::escape_for_terminal(path.as_bytes());
                    let _ = self.worker.events.send(Event::Queued {
                        id,
                        name: shown,
                        size: Some(size),
                        path: None,
                        peer: Some(self.peer),
                    });
                    let check = Check {
                        before: blake3.as_deref(),
                        trailer,
                        key: key.as_deref(),
                    };
                    let safe = SafePath::of(&path);
                    let in_folder = safe.as_ref().is_some_and(|s| s.top.is_some());
                    let named = Named {
                        path: &path,
                        safe: safe.as_ref(),
                    };
                    let result = self.file(id, &named, size, offset, &check, stopping);
                    if result.is_err() {
                        // Its folder, if known by a key, is unfinished (B5b).
                        if let Some(key) = safe.as_ref().and_then(|p| self.key_of(p)) {
                            self.worker.unfinished.failed(&key);
                        }
                    }
                    let (answer, outcome, fatal) = match result {
                        Ok(FileSaved {
                            done,
                            saved_as,
                            hash,
                            already,
                        }) => (
                            Answer::Saved {
                                path,
                                saved_as,
                                size,
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
                    tally.count(&outcome);
                    if in_folder {
                        in_folders.count(&outcome);
                    }
                    self.worker.report(id, outcome);
                    if let Some(reason) = fatal {
                        return Err(reason);
                    }
                    self.answer(&answer)?;
                }
            }
        }
    }

    fn answer(&mut self, answer: &Answer) -> Result<(), String> {
        self.answers.extend_from_slice(&batch::line(answer));
        if self.answers.len() >= ANSWERS_AT_ONCE {
            self.send_answers()?;
        }
        Ok(())
    }

    /// Sends the answers gathered so far.
    fn send_answers(&mut self) -> Result<(), String> {
        if self.answers.is_empty() {
            return Ok(());
        }
        let sent = self
            .stream
            .write_all(&self.answers)
            .map_err(|e| format!("answering the client: {e}"));
        self.answers.clear();
        sent
    }

    /// The tree a top folder of this batch goes into, made at its first mention.
    fn tree(&mut self, top: &str) -> Result<&Tree, String> {
        if !self.trees.contains_key(top) {
            let tree = self
                .worker
                .folder
                .new_tree(top)
                .map_err(|e| e.to_string())?;
            self.trees.insert(top.to_string(), tree);
        }
        Ok(&self.trees[top])
    }

    /// A top frame (B5a): this batch's folder `top`, made now and shared, or
    /// the one shared by `join`. Returns its name and token. A folder that
    /// cannot be made or joined ends the batch: its files must not land in
    /// another one.
    fn top(
        &mut self,
        top: &str,
        join: Option<&str>,
        key: Option<&str>,
    ) -> Result<(String, String), String> {
        // Named as a file's path names it, made safe the same way.
        let sent = SafePath::of(&format!("{top}/-"))
            .and_then(|p| p.top)
            .ok_or("an empty top folder name")?;
        match join {
            Some(token) => {
                let tree =
                    self.worker.folder.join_tree(token).ok_or(
                        "joining a folder: no folder is shared under that token (any more)",
                    )?;
                match self.trees.get(&sent) {
                    Some(mine) if mine.name != tree.name => {
                        return Err(format!(
                            "joining a folder: this batch fills {} already",
                            names::escape_for_terminal(mine.name.as_bytes())
                        ));
                    }
                    Some(_) => {}
                    None => {
                        if let Some(key) = &tree.key {
                            self.worker.unfinished.joined(key);
                        }
                    }
                }
                let name = tree.name.clone();
                self.trees.insert(sent, tree);
                Ok((name, token.to_string()))
            }
            None => {
                if let Some(key) = key.filter(|_| !self.trees.contains_key(&sent)) {
                    // B5b: the folder this sender left unfinished, or a new one known by its key.
                    let unfinished = &self.worker.unfinished;
                    let tree = match unfinished.resume(key, &self.worker.folder) {
                        Some(tree) => tree,
                        None => {
                            let mut tree = self
                                .worker
                                .folder
                                .new_tree(&sent)
                                .map_err(|e| e.to_string())?;
                            tree.key = Some(key.to_string());
                            unfinished.started(key, &tree);
                            tree
                        }
                    };
                    self.trees.insert(sent.clone(), tree);
                }
                let tree = self.tree(&sent)?.clone();
                let token = self
                    .worker
                    .folder
                    .share_tree(&tree)
                    .ok_or("sharing a folder: no random token")?;
                Ok((tree.name, token))
            }
        }
    }

    /// A claim frame: the file a classic upload saved moves to `path`, under its tree.
    fn adopt(&mut self, token: &str, path: &str) -> Result<String, String> {
        let safe = SafePath::of(path).ok_or("an empty path")?;
        let top = safe
            .top
            .clone()
            .ok_or("a claimed file goes into a folder")?;
        let tree = self.tree(&top)?.clone();
        let below = below_top(&safe);
        // In a folder taken up again (B5b), the file may be there already.
        let before = tree
            .key
            .as_deref()
            .and_then(|key| self.before(key, &safe, &below));
        let same = before.as_ref().map(|s| (s.size, s.blake3.as_str()));
        let adopted = tree.adopt(token, &safe.folders, &safe.name, same)?;
        let Some(name) = adopted.name else {
            return Ok(before.map(|s| s.saved_as).unwrap_or_default());
        };
        let saved_as = format!("{}/{}", tree.name, below_top_as(&safe, &name));
        if let (Some(key), Some(blake3)) = (&tree.key, adopted.blake3) {
            let saved = Saved {
                size: adopted.size,
                blake3,
                part: None,
                saved_as: saved_as.clone(),
            };
            self.worker.unfinished.saved(key, below, saved);
        }
        Ok(saved_as)
    }

    /// A folder frame: the folder, under its tree; what it is called in the drop folder.
    fn make_dir(&mut self, dir: &str) -> Result<String, String> {
        let path = SafePath::of(dir).ok_or("an empty folder path")?;
        let (top, folders) = match path.top {
            Some(top) => {
                let mut folders = path.folders;
                folders.push(path.name);
                (top, folders)
            }
            None => (path.name, Vec::new()),
        };
        let tree = self.tree(&top)?;
        tree.make(&folders)
            .map_err(|e| format!("making the folder: {e}"))?;
        let mut saved = vec![tree.name.clone()];
        saved.extend(folders);
        Ok(saved.join("/"))
    }

    /// One file: its content into a partial file, hashed, compared, kept.
    fn file(
        &mut self,
        id: u64,
        named: &Named<'_>,
        size: u64,
        offset: u64,
        check: &Check<'_>,
        stopping: &dyn Fn() -> bool,
    ) -> Result<FileSaved, FileError> {
        let verify = check.before.is_some() || check.trailer;
        let path = named.path;
        let safe = named
            .safe
            .ok_or_else(|| FileError::Batch("an empty path".into()))?;
        if let Some(max) = self.worker.config.max_size {
            if size > max {
                return Err(FileError::Batch(format!(
                    "too large: {} announced, the limit is {}",
                    HumanBytes(size),
                    HumanBytes(max)
                )));
            }
        }
        // In a folder taken up again (B5b), a file saved there before with this
        // content is not written again.
        // Its folder's key, and where it is remembered there.
        let keyed = self.key_of(safe).map(|key| (key, below_top(safe)));
        if let Some((key, below)) = &keyed {
            if let Some(before) = self.before(key, safe, below) {
                let already = self.already_there(path, &before, size, offset, check);
                if let Err(FileError::This(_)) = &already {
                    // Not the file saved before: the next run sends it whole.
                    self.worker.unfinished.forget_file(key, below);
                }
                if let Some(done) = already? {
                    return Ok(done);
                }
            }
        }
        // A verified file with a key, big enough to be worth it, is received
        // into a part that survives a break-off (B8).
        let resumable = check
            .key
            .or(check.before)
            .filter(|_| verify && size >= batch::WORTH_RESUMING);
        let failed = |e: crate::drop_folder::BeginError| FileError::Batch(e.to_string());
        let ((mut partial, held), top) = match &safe.top {
            Some(top) => {
                let tree = self.tree(top).map_err(FileError::Batch)?;
                let begun = match resumable {
                    Some(hash) => tree.begin_resumable(&safe.folders, &safe.name, hash, size),
                    None => tree.begin(&safe.folders, &safe.name, size).map(|p| (p, 0)),
                }
                .map_err(failed)?;
                (begun, Some(tree.name.clone()))
            }
            None => {
                let folder = &self.worker.folder;
                let begun = match resumable {
                    Some(hash) => folder.begin_resumable(&safe.name, hash, size),
                    None => folder.begin(&safe.name, size).map(|p| (p, 0)),
                }
                .map_err(failed)?;
                (begun, None)
            }
        };
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
        let counter = ByteCounter::default();
        let _ = self.worker.events.send(Event::Started {
            id,
            name: names::escape_for_terminal(path.as_bytes()),
            size,
            counter: counter.clone(),
            socket: None,
            batched: true,
            in_folder: safe.top.is_some(),
        });
        counter.add(offset);
        let started = Instant::now();
        let config = Arc::clone(&self.worker.config);
        let copy_failed =
            |e: CopyError| FileError::Batch(explain(&e, size - offset, &config, stopping));
        let hash = if size - offset >= SPLICE_FROM {
            // Big: spliced into the file while another thread hashes it,
            // whole, from the file, following what has landed.
            let reader = partial
                .file()
                .try_clone()
                .map_err(|e| FileError::Batch(format!("reading back what was written: {e}")))?;
            let ended = AtomicBool::new(false);
            let (copied, hashed) = std::thread::scope(|scope| {
                let hashing =
                    verify.then(|| scope.spawn(|| hash_following(&reader, size, &counter, &ended)));
                let copied = self.copy_big(&mut partial, size - offset, &counter);
                ended.store(true, Ordering::SeqCst);
                (
                    copied,
                    hashing.map(|h| h.join().expect("the hashing thread")),
                )
            });
            copied.map_err(copy_failed)?;
            hashed
                .transpose()
                .map_err(|e| FileError::Batch(format!("reading back what was written: {e}")))?
        } else {
            let mut hasher = verify.then(blake3::Hasher::new);
            if let Some(hasher) = &mut hasher {
                partial
                    .hash_held(hasher, offset)
                    .map_err(|e| FileError::Batch(format!("reading the part already held: {e}")))?;
            }
            self.copy(&mut partial, size - offset, &counter, hasher)
                .map_err(copy_failed)?
        };
        let hash = hash.map(|h| batch::hex(&h));
        let expected = match check.before {
            Some(before) => Some(before.to_string()),
            None if check.trailer => Some(self.trailer()?),
            None => None,
        };
        if let (Some(expected), Some(got)) = (&expected, &hash) {
            if !expected.eq_ignore_ascii_case(got) {
                // Dropping the partial file leaves nothing under the name, nor a part to resume.
                partial.discard();
                return Err(FileError::This(format!(
                    "verification failed: the content's BLAKE3 is {got}, the sender's is {}",
                    names::escape_for_terminal(expected.as_bytes())
                )));
            }
        }
        let kept = partial
            .keep()
            .map_err(|e| FileError::This(format!("saving the received file: {e}")))?;
        let saved_as = match top {
            Some(top) => format!("{top}/{}", below_top_as(safe, &kept)),
            None => kept,
        };
        let done = Done {
            kept: Kept::Saved {
                saved_as: Some(saved_as.clone()).filter(|s| s != path),
            },
            bytes: size,
            elapsed: started.elapsed(),
            verified: hash.clone(),
            resumed_from: offset,
        };
        if let (Some((key, below)), Some(blake3)) = (keyed, &hash) {
            self.worker.unfinished.saved(
                &key,
                below,
                Saved {
                    size,
                    blake3: blake3.clone(),
                    part: check.key.map(str::to_string),
                    saved_as: saved_as.clone(),
                },
            );
        }
        Ok(FileSaved {
            done,
            saved_as,
            hash,
            already: false,
        })
    }

    /// The key of the folder (B5b) a path of this batch goes into, if it has one.
    fn key_of(&self, safe: &SafePath) -> Option<String> {
        self.trees.get(safe.top.as_ref()?)?.key.clone()
    }

    /// What was saved at `safe` (`below` its top folder) before in the folder
    /// of `key` (B5b): as remembered, or, in a folder taken up from its record
    /// after a restart, a small file the folder holds there.
    fn before(&self, key: &str, safe: &SafePath, below: &str) -> Option<Saved> {
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
        path: &str,
        before: &Saved,
        size: u64,
        offset: u64,
        check: &Check<'_>,
    ) -> Result<Option<FileSaved>, FileError> {
        if before.size != size {
            return Ok(None);
        }
        let same = match check.before {
            Some(blake3) => blake3.eq_ignore_ascii_case(&before.blake3),
            // Only a file the sender was told was held whole comes from its end.
            None if check.trailer && offset == size && check.key == before.part.as_deref() => {
                let blake3 = self.trailer()?;
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
        let content = size - offset;
        let read = std::io::copy(&mut (&mut self.reader).take(content), &mut std::io::sink())
            .map_err(|e| FileError::Batch(format!("reading a file already saved: {e}")))?;
        if read < content {
            return Err(FileError::Batch(
                "the client closed in the middle of a file".into(),
            ));
        }
        let done = Done {
            kept: Kept::Saved {
                saved_as: Some(before.saved_as.clone()).filter(|s| s != path),
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

    /// The hash sent after a file's content (B3).
    fn trailer(&mut self) -> Result<String, FileError> {
        let line = batch::read_line(&mut self.reader)
            .and_then(|line| line.ok_or_else(|| std::io::ErrorKind::UnexpectedEof.into()))
            .map_err(|e| FileError::Batch(format!("reading the hash after the content: {e}")))?;
        batch::parse::<Trailer>(&line)
            .map(|t| t.blake3)
            .map_err(|e| FileError::Batch(format!("the hash after the content: {e}")))
    }

    /// Copies `size` bytes into `file`: what the reader holds already, then the
    /// rest with the worker's copier (splice(2) on Linux, as for classic uploads).
    fn copy_big(
        &mut self,
        file: &mut PartialFile,
        size: u64,
        counter: &ByteCounter,
    ) -> Result<(), CopyError> {
        let mut meter = Meter::new(&self.worker.config, counter);
        let held = self.reader.buffer();
        let first = held.len().min(usize::try_from(size).unwrap_or(usize::MAX));
        file.write_all(&held[..first]).map_err(CopyError::Disk)?;
        std::io::BufRead::consume(&mut self.reader, first);
        meter.moved(first as u64, first as u64)?;
        if !self.answers.is_empty() {
            // The socket is read directly from here: the answers gathered go first.
            self.stream
                .write_all(&self.answers)
                .map_err(|error| CopyError::Socket {
                    got: first as u64,
                    error,
                })?;
            self.answers.clear();
        }
        self.worker
            .copier
            .copy(self.stream, file, size - first as u64, &mut meter)
    }

    /// Copies `size` bytes from the batch's stream into `file`, hashing them if asked.
    fn copy(
        &mut self,
        file: &mut PartialFile,
        size: u64,
        counter: &ByteCounter,
        mut hasher: Option<blake3::Hasher>,
    ) -> Result<Option<blake3::Hash>, CopyError> {
        let mut meter = Meter::new(&self.worker.config, counter);
        let buffer = &mut self.buffer;
        let mut got = 0;
        while got < size {
            let want = meter.chunk(buffer.len(), size - got);
            if self.reader.buffer().is_empty() && !self.answers.is_empty() {
                // Nothing left to read without waiting: the answers gathered go first.
                self.stream
                    .write_all(&self.answers)
                    .map_err(|error| CopyError::Socket { got, error })?;
                self.answers.clear();
            }
            let n = match self.reader.read(&mut buffer[..want]) {
                Ok(0) => return Err(CopyError::Closed { got }),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(CopyError::Socket { got, error }),
            };
            file.write_all(&buffer[..n]).map_err(CopyError::Disk)?;
            if let Some(hasher) = &mut hasher {
                hasher.update(&buffer[..n]);
            }
            got += n as u64;
            meter.moved(n as u64, got)?;
        }
        Ok(hasher.map(|h| h.finalize()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_and_are_made_safe() {
        let p = SafePath::of("photos/2024/a.jpg").unwrap();
        assert_eq!(
            (p.top.as_deref(), p.folders, p.name.as_str()),
            (Some("photos"), vec!["2024".to_string()], "a.jpg")
        );
        let p = SafePath::of("../../etc/passwd").unwrap();
        assert_eq!((p.top.as_deref(), p.name.as_str()), (Some("etc"), "passwd"));
        let p = SafePath::of("/abs//x/./y").unwrap();
        assert_eq!(
            (p.top.as_deref(), p.folders, p.name.as_str()),
            (Some("abs"), vec!["x".to_string()], "y")
        );
        let p = SafePath::of("a\\..\\b").unwrap();
        assert_eq!((p.top.as_deref(), p.name.as_str()), (Some("a"), "b"));
        let p = SafePath::of("notes.txt").unwrap();
        assert_eq!((p.top, p.name.as_str()), (None, "notes.txt"));
        assert!(SafePath::of("../..").is_none());
        let p = SafePath::of(".hidden/\u{1b}[2J").unwrap();
        assert_eq!(
            (p.top.as_deref(), p.name.as_str()),
            (Some("hidden"), "_[2J")
        );
    }
}
