//! Batch mode on the sender (PROTOCOL.md B2-B7): files and folders pipelined over a few connections, each file hashed with BLAKE3 and checked against the server's answer.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::Instant;

use crossbeam_channel::Receiver;

use super::upload::{in_words, open, open_only, send_content};
use super::{Context, Planned, Run};
use crate::names;
use crate::outcome::{Done, FileReport, Kept};
use crate::pace::Pace;
use crate::progress::{ByteCounter, Event};
use crate::protocol::batch::{self, Answer, Frame, Trailer, Wanted, Welcome};
use crate::protocol::{self, BadReply};

/// Frames and small files are gathered into writes of up to this many bytes.
const OUT_BUFFER: usize = 64 * 1024;

/// Files asked about in one question: its line stays well under the 8 KiB a frame line may take.
const ASK_AT_ONCE: usize = 64;

/// What goes through one batch: a folder given, whole, or some of the files given.
#[derive(Debug, Default)]
struct Unit {
    /// The first file, sent classically, to move into this folder: (its index, the claim token).
    claim: Option<(usize, String)>,
    /// A top folder another batch made, to fill too: (its name as sent, the token that shares it).
    join: Option<(String, String)>,
    /// A top folder to make first, known by the sender's key for it (B5b): (its name as sent, the key).
    keyed: Option<(String, String)>,
    dirs: Vec<String>,
    files: Vec<usize>,
}

/// A folder of at least this many files per batch is filled by several batches at once (B5a).
const SPLIT_FROM: usize = 256;

/// A frame sent and not answered yet.
enum Pending {
    Claim(usize),
    Join,
    Dir,
    File {
        index: usize,
        started: Instant,
        /// The file's BLAKE3, once known (after its content, for a big file).
        hash: Arc<OnceLock<String>>,
        /// Bytes the server held already.
        offset: u64,
    },
    /// A question about parts held; the answer goes to the writer.
    Ask(crossbeam_channel::Sender<Vec<u64>>),
}

/// Sends what the first (classic) upload, `classic`, left: a folder given goes whole into
/// one batch (its top folder is made once); the files given are spread over
/// the others; at most `jobs` batches at once.
pub(super) fn send(context: &Context, run: &Run, classic: Option<usize>) {
    let mut trees: BTreeMap<String, Unit> = BTreeMap::new();
    let mut loose: Vec<usize> = Vec::new();
    for (index, planned) in run.files.iter().enumerate() {
        if Some(index) == classic {
            continue;
        }
        match &planned.top {
            Some(top) => trees.entry(top.clone()).or_default().files.push(index),
            None => loose.push(index),
        }
    }
    if let Some((first, top)) = classic.and_then(|i| Some((i, run.files[i].top.as_ref()?))) {
        let claim = context.learned.claim.lock().expect("claim lock").take();
        // Without a token, the first file stays where the classic upload put it.
        if let (Some(token), Ok(())) = (claim, report_of(context, first)) {
            trees.entry(top.clone()).or_default().claim = Some((first, token));
        }
    }
    for dir in &run.empty_dirs {
        let top = dir.split('/').next().unwrap_or(dir).to_string();
        trees.entry(top).or_default().dirs.push(dir.clone());
    }
    let jobs = context.config.jobs.max(1);
    let mut units: Vec<Unit> = Vec::new();
    for (top, mut unit) in trees {
        // With a key, a folder left unfinished is filled again (B5b); verified runs only, as that is how files there are known.
        let key = run
            .folders
            .get(&top)
            .filter(|_| context.config.verify)
            .and_then(|path| folder_key(path));
        // A big folder goes over several batches, once one has made its top folder and shared it.
        let parts = jobs.min(unit.files.len() / SPLIT_FROM);
        match (parts > 1)
            .then(|| share_top(context, run, &top, key.as_deref()))
            .flatten()
        {
            Some(token) => units.extend(split(unit, &top, &token, parts)),
            None => {
                unit.keyed = key.map(|key| (top, key));
                units.push(unit);
            }
        }
    }
    let spread = jobs.min(loose.len()).max(1);
    let mut shares: Vec<Unit> = (0..spread).map(|_| Unit::default()).collect();
    for (n, index) in loose.into_iter().enumerate() {
        shares[n % spread].files.push(index);
    }
    units.extend(shares.into_iter().filter(|u| !u.files.is_empty()));
    let (queue, work) = crossbeam_channel::unbounded();
    let connections = jobs.min(units.len());
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

/// Makes `top` on the server in a batch of its own and returns the token
/// that lets other batches fill it (B5a); `None` if that did not work out
/// (the folder then goes in one batch).
fn share_top(context: &Context, run: &Run, top: &str, key: Option<&str>) -> Option<String> {
    let stream = Connection { context, run }.open().ok()?;
    let frames = [
        batch::line(&Frame::Top {
            top: top.to_string(),
            join: None,
            key: key.map(str::to_string),
        }),
        batch::line(&Frame::End { end: true }),
    ]
    .concat();
    (&stream).write_all(&frames).ok()?;
    let mut reader = BufReader::new(&stream);
    let answer = batch::read_line(&mut reader).ok()??;
    let Answer::Top { token, .. } = batch::parse::<Answer>(&answer).ok()? else {
        return None;
    };
    // Its end, so that the server is done with it before the others join.
    let _ = batch::read_line(&mut reader);
    Some(token)
}

/// A folder's unit in `parts` units that all fill the same top folder; the
/// first one also moves the classic file in and makes the empty folders.
fn split(unit: Unit, top: &str, token: &str, parts: usize) -> Vec<Unit> {
    let mut units: Vec<Unit> = (0..parts)
        .map(|_| Unit {
            join: Some((top.to_string(), token.to_string())),
            ..Unit::default()
        })
        .collect();
    units[0].claim = unit.claim;
    units[0].dirs = unit.dirs;
    for (n, index) in unit.files.into_iter().enumerate() {
        units[n % parts].files.push(index);
    }
    units
}

/// The outcome already reported for file `index`.
fn report_of(context: &Context, index: usize) -> Result<(), ()> {
    match &context.reports.lock().expect("reports lock")[index] {
        Some(FileReport { result: Ok(_), .. }) => Ok(()),
        _ => Err(()),
    }
}

/// One batch connection.
struct Connection<'a> {
    context: &'a Context<'a>,
    run: &'a Run,
}

impl Connection<'_> {
    /// Takes units until there are none left, all through one connection.
    fn serve(&self, work: &Receiver<Unit>) {
        let stream = match self.open() {
            Ok(stream) => stream,
            Err(reason) => {
                for unit in work {
                    self.fail_unit(&unit, &reason);
                }
                return;
            }
        };
        let pending: Mutex<VecDeque<Pending>> = Mutex::new(VecDeque::new());
        let writing = AtomicBool::new(true);
        let mut broken: Option<String> = None;
        let mut taken = Vec::new();
        thread::scope(|scope| {
            scope.spawn(|| self.read_answers(&stream, &pending, &writing));
            for unit in work {
                if let Some(reason) = &broken {
                    self.fail_unit(&unit, reason);
                    continue;
                }
                taken.extend_from_slice(&unit.files);
                if let Err(reason) = self.write_unit(&stream, &unit, &pending) {
                    broken = Some(reason);
                }
            }
            if broken.is_none() {
                let _ = (&stream).write_all(&batch::line(&Frame::End { end: true }));
            }
            let _ = stream.shutdown(Shutdown::Write);
            writing.store(false, Ordering::SeqCst);
        });
        // Once the answers are all read: a file of a unit that broke off and
        // was never sent, or never answered, failed.
        let reason = broken.unwrap_or_else(|| "the batch ended before it was sent".into());
        for index in taken {
            // Only files never reached are left here, and the view has not heard of them.
            if self.context.reports.lock().expect("reports lock")[index].is_none() {
                self.queued(index);
            }
            self.finish(
                index,
                Err(format!("not sent: the batch broke off ({reason})")),
            );
        }
    }

    /// Connects and opens a batch (B2), asking again with pauses that double,
    /// for up to `--timeout`, while the server is busy (`--per-ip`).
    fn open(&self) -> Result<TcpStream, String> {
        let deadline = Instant::now() + self.context.config.timeout;
        let mut pause = std::time::Duration::from_millis(100);
        loop {
            match self.try_open() {
                Err((true, _)) if Instant::now() + pause <= deadline => {
                    thread::sleep(pause);
                    pause = (pause * 2).min(std::time::Duration::from_secs(2));
                }
                other => return other.map_err(|(_, reason)| reason),
            }
        }
    }

    /// One try at [`Connection::open`]; the error says whether the server was only busy.
    fn try_open(&self) -> Result<TcpStream, (bool, String)> {
        let config = self.context.config;
        // A server found not to be ftx is not sent another opening (PROTOCOL.md B1a).
        if let Some(reason) = self.context.unreachable.get() {
            return Err((false, reason.clone()));
        }
        let mut last = None;
        let stream = self
            .context
            .addresses
            .iter()
            .find_map(
                |addr| match TcpStream::connect_timeout(addr, config.timeout) {
                    Ok(stream) => Some(stream),
                    Err(e) => {
                        last = Some(e);
                        None
                    }
                },
            )
            .ok_or_else(|| {
                let reason = format!(
                    "cannot connect to {}: {}",
                    config.to,
                    last.map_or("no address".into(), |e| in_words(&e, config.timeout))
                );
                (false, reason)
            })?;
        let _ = stream.set_nodelay(true);
        let set = |e: std::io::Error| (false, e.to_string());
        stream
            .set_write_timeout(Some(config.timeout))
            .map_err(set)?;
        stream.set_read_timeout(Some(config.timeout)).map_err(set)?;
        (&stream).write_all(&batch::opening()).map_err(|e| {
            (
                false,
                format!("opening a batch: {}", in_words(&e, config.timeout)),
            )
        })?;
        match batch::read_welcome(&mut &stream) {
            Ok(Welcome::Go) => Ok(stream),
            Ok(Welcome::Classic) => {
                let reason = format!(
                    "{} is not an ftx server: it answered \"go ahead\" to the opening of ftx mode, \
                     taking it for a classic upload (it may keep a stray file); send without --ftx",
                    config.to
                );
                let _ = self.context.unreachable.set(reason.clone());
                Err((false, reason))
            }
            Ok(Welcome::Other(got)) if got.starts_with(protocol::REFUSED.as_bytes()) => Err((
                got.starts_with(b"refused: too many connections"),
                format!("opening a batch: {}", BadReply { got }),
            )),
            Ok(Welcome::Other(got)) if got.is_empty() => Err((
                false,
                "opening a batch: the server closed the connection without answering".into(),
            )),
            Ok(Welcome::Other(got)) => Err((
                false,
                format!(
                    "opening a batch: the server answered \"{}\", not ftx mode's welcome",
                    names::escape_for_terminal(&got)
                ),
            )),
            Err(e) => Err((
                false,
                format!(
                    "opening a batch: no reply ({}): the server may be busy (wait longer with --timeout)",
                    in_words(&e, config.timeout)
                ),
            )),
        }
    }

    /// Sends a unit's frames; an error means the connection is of no more use.
    /// Small files go through one buffer, frames and content together, so that
    /// many of them share a write; big ones go with sendfile(2), resumed from
    /// what the server holds (B8).
    fn write_unit(
        &self,
        stream: &TcpStream,
        unit: &Unit,
        pending: &Mutex<VecDeque<Pending>>,
    ) -> Result<(), String> {
        let config = self.context.config;
        let events = self.context.events;
        let sending = |e: std::io::Error| format!("sending: {}", in_words(&e, config.timeout));
        let out = RefCell::new(BufWriter::with_capacity(OUT_BUFFER, stream));
        let write = |frame: &Frame| {
            out.borrow_mut()
                .write_all(&batch::line(frame))
                .map_err(sending)
        };
        let expect = |waiting: Pending| pending.lock().expect("pending lock").push_back(waiting);
        if let Some((top, token)) = &unit.join {
            expect(Pending::Join);
            write(&Frame::Top {
                top: top.clone(),
                join: Some(token.clone()),
                key: None,
            })?;
        }
        if let Some((top, key)) = &unit.keyed {
            expect(Pending::Join);
            write(&Frame::Top {
                top: top.clone(),
                join: None,
                key: Some(key.clone()),
            })?;
        }
        if let Some((index, token)) = &unit.claim {
            expect(Pending::Claim(*index));
            write(&Frame::Claim {
                claim: token.clone(),
                path: self.run.files[*index].batch_path.clone(),
            })?;
        }
        for dir in &unit.dirs {
            expect(Pending::Dir);
            write(&Frame::Dir { dir: dir.clone() })?;
        }
        let (keys, unusable) = self.keys_of(unit);
        let sizes: Vec<u64> = unit
            .files
            .iter()
            .map(|&i| self.run.files[i].size.unwrap_or(0))
            .collect();
        let held = self.ask(&sizes, &keys, &unusable, pending, &write, &|| {
            out.borrow_mut().flush().map_err(sending)
        })?;
        let mut content = Vec::new();
        for (n, &index) in unit.files.iter().enumerate() {
            if unusable[n] {
                continue;
            }
            let planned = &self.run.files[index];
            let small = self.is_small(planned);
            // Its turn in the batch has come (what `queued` means for a sender).
            self.queued(index);
            // A small file is read whole, hashed and sent from memory; a big one is opened again.
            let source = if small {
                read_small(planned, &mut content).map(|()| None)
            } else {
                open_big(planned).map(Some)
            };
            let source = match source {
                Ok(source) => source,
                Err(reason) => {
                    self.finish(index, Err(reason));
                    continue;
                }
            };
            let size = source
                .as_ref()
                .map_or(content.len() as u64, |(_, size)| *size);
            // A small file's hash goes before it; a big one's after it, computed while it goes.
            let hash: Arc<OnceLock<String>> = Arc::default();
            if small && config.verify {
                let _ = hash.set(batch::hex(&blake3::hash(&content)));
            }
            let offset = held[n].min(size);
            expect(Pending::File {
                index,
                started: Instant::now(),
                hash: Arc::clone(&hash),
                offset,
            });
            let counter = ByteCounter::default();
            counter.add(offset);
            let _ = events.send(Event::Started {
                id: index as u64,
                name: shown(planned),
                size,
                counter: counter.clone(),
                socket: None,
                batched: true,
                in_folder: planned.top.is_some(),
            });
            write(&Frame::File {
                path: planned.batch_path.clone(),
                size,
                blake3: hash.get().cloned(),
                trailer: !small && config.verify,
                key: keys[n].clone(),
                offset,
            })?;
            match source {
                None => {
                    out.borrow_mut().write_all(&content).map_err(sending)?;
                    counter.add(size);
                }
                Some((file, size)) => {
                    out.borrow_mut().flush().map_err(sending)?;
                    // Files after it in this unit are not sent; the reader fails those in flight.
                    if let Some(blake3) = self.send_big(stream, &file, size, offset, &counter)? {
                        let _ = hash.set(blake3.clone());
                        out.borrow_mut()
                            .write_all(&batch::line(&Trailer { blake3 }))
                            .map_err(sending)?;
                    }
                }
            }
            let _ = events.send(Event::Sent { id: index as u64 });
        }
        let flushed = out.borrow_mut().flush().map_err(sending);
        flushed
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
        sizes: &[u64],
        keys: &[Option<String>],
        unusable: &[bool],
        pending: &Mutex<VecDeque<Pending>>,
        write: &dyn Fn(&Frame) -> Result<(), String>,
        flush: &dyn Fn() -> Result<(), String>,
    ) -> Result<Vec<u64>, String> {
        let mut held = vec![0; sizes.len()];
        let asked: Vec<(usize, Wanted)> = keys
            .iter()
            .enumerate()
            .filter(|(n, _)| !unusable[*n])
            .filter_map(|(n, key)| {
                key.as_ref().map(|key| {
                    (
                        n,
                        Wanted {
                            key: key.clone(),
                            size: sizes[n],
                        },
                    )
                })
            })
            .collect();
        let mut questions = Vec::new();
        for some in asked.chunks(ASK_AT_ONCE) {
            let (tell, told) = crossbeam_channel::bounded(1);
            pending
                .lock()
                .expect("pending lock")
                .push_back(Pending::Ask(tell));
            write(&Frame::Ask {
                ask: some.iter().map(|(_, wanted)| wanted.clone()).collect(),
            })?;
            questions.push((some, told));
        }
        if questions.is_empty() {
            return Ok(held);
        }
        flush()?;
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

    /// Reads the server's answers, in order, until its `end` or the connection's.
    fn read_answers(
        &self,
        stream: &TcpStream,
        pending: &Mutex<VecDeque<Pending>>,
        writing: &AtomicBool,
    ) {
        let mut reader = BufReader::new(stream);
        let ended = loop {
            let line = match batch::read_line(&mut reader) {
                Ok(Some(line)) => line,
                Ok(None) => break Some("the server closed the batch before answering".to_string()),
                // While frames still go out, the next answer may be a big file away.
                Err(e) if protocol::is_timeout(&e) && writing.load(Ordering::SeqCst) => continue,
                Err(e) => {
                    break Some(format!(
                        "waiting for the server's answer: {}",
                        in_words(&e, self.context.config.timeout)
                    ))
                }
            };
            let answer: Answer = match batch::parse(&line) {
                Ok(answer) => answer,
                Err(e) => break Some(format!("an answer that cannot be read: {e}")),
            };
            match answer {
                Answer::End => break None,
                Answer::Aborted { reason } => {
                    break Some(format!(
                        "the server ended the batch: {}",
                        names::escape_for_terminal(reason.as_bytes())
                    ))
                }
                _ => {}
            }
            let Some(waiting) = pending.lock().expect("pending lock").pop_front() else {
                break Some("an answer to nothing that was sent".to_string());
            };
            self.answered(waiting, answer);
        };
        if let Some(reason) = ended {
            // Everything sent and not answered failed.
            loop {
                let next = pending.lock().expect("pending lock").pop_front();
                match next {
                    Some(Pending::File { index, .. }) => self.finish(index, Err(reason.clone())),
                    Some(_) => {}
                    None => break,
                }
            }
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// What an answer means for the frame it answers.
    fn answered(&self, waiting: Pending, answer: Answer) {
        match (waiting, answer) {
            (
                Pending::File {
                    index,
                    started,
                    hash,
                    offset,
                },
                Answer::Saved {
                    saved_as,
                    size,
                    blake3,
                    already,
                    ..
                },
            ) => {
                let planned = &self.run.files[index];
                let sent = planned.size.unwrap_or(size);
                let hash = hash.get().cloned();
                let result = if self.context.config.verify && hash.is_none() {
                    Err("not verified: the server answered before the file's hash was sent".into())
                } else if hash.is_some() && blake3.as_deref() != hash.as_deref() {
                    Err("verification failed: the server's BLAKE3 is not the one sent".to_string())
                } else if size != sent {
                    Err(format!(
                        "the server saved {size} bytes, not the {sent} sent"
                    ))
                } else {
                    Ok(Done {
                        kept: Kept::Saved {
                            saved_as: Some(names::escape_for_terminal(saved_as.as_bytes()))
                                .filter(|s| *s != planned.batch_path),
                        },
                        bytes: size,
                        elapsed: started.elapsed(),
                        verified: hash,
                        // Saved by an earlier run into a folder taken up again: nothing moved now.
                        resumed_from: if already { size } else { offset },
                    })
                };
                self.finish(index, result);
            }
            (Pending::File { index, .. }, Answer::Failed { reason, .. }) => self.finish(
                index,
                Err(format!(
                    "the server could not keep it: {}",
                    names::escape_for_terminal(reason.as_bytes())
                )),
            ),
            (Pending::Ask(tell), Answer::Have { have }) => {
                let _ = tell.send(have);
            }
            (Pending::Claim(index), Answer::Saved { saved_as, .. }) => {
                // The first file moved into its folder: its report says where it is now.
                let mut reports = self.context.reports.lock().expect("reports lock");
                if let Some(FileReport {
                    result: Ok(done), ..
                }) = &mut reports[index]
                {
                    done.kept = Kept::Saved {
                        saved_as: Some(names::escape_for_terminal(saved_as.as_bytes())),
                    };
                }
            }
            (Pending::Claim(_), Answer::Failed { reason, .. }) => {
                let _ = self.context.events.send(Event::Notice(format!(
                    "ftx: the first file stays at the top of the drop folder: {}",
                    names::escape_for_terminal(reason.as_bytes())
                )));
            }
            (Pending::Dir, Answer::Failed { path, reason }) => {
                let _ = self.context.events.send(Event::Notice(format!(
                    "ftx: the empty folder {} was not made: {}",
                    names::escape_for_terminal(path.as_bytes()),
                    names::escape_for_terminal(reason.as_bytes())
                )));
            }
            _ => {}
        }
    }

    fn fail_unit(&self, unit: &Unit, reason: &str) {
        for &index in &unit.files {
            self.queued(index);
            self.finish(index, Err(reason.to_string()));
        }
    }

    /// Tells the view about file `index` before anything else is said about it.
    fn queued(&self, index: usize) {
        let planned = &self.run.files[index];
        let _ = self.context.events.send(Event::Queued {
            id: index as u64,
            name: shown(planned),
            size: planned.size,
            path: Some(super::shown_path(&planned.path)),
            peer: None,
        });
    }

    /// Reports file `index`: to the view, and for the final table. The first
    /// outcome of a file stands.
    fn finish(&self, index: usize, result: Result<Done, String>) {
        let event = match &result {
            Ok(done) => Event::Finished {
                id: index as u64,
                done: done.clone(),
            },
            Err(reason) => Event::Failed {
                id: index as u64,
                reason: reason.clone(),
            },
        };
        {
            let mut reports = self.context.reports.lock().expect("reports lock");
            if reports[index].is_some() {
                return;
            }
            reports[index] = Some(FileReport {
                name: shown(&self.run.files[index]),
                renamed_from: None,
                timed: result
                    .as_ref()
                    .is_ok_and(|done| done.bytes >= crate::progress::OWN_LINES_FROM),
                result,
                folder: None,
            });
        }
        let _ = self.context.events.send(event);
    }
}

/// The sender's key for a folder it sends (B5b): the same for the same
/// folder on this machine (its path and inode), whatever it holds.
fn folder_key(path: &std::path::Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let path = std::fs::canonicalize(path).ok()?;
    let meta = std::fs::metadata(&path).ok()?;
    Some(key_of(
        b"ftx folder key 1\0",
        &path,
        &[meta.dev(), meta.ino()],
    ))
}

/// BLAKE3 of `tag`, the bytes of `path` and `numbers`: a key that names a
/// file or folder of this machine without reading it.
fn key_of(tag: &[u8], path: &std::path::Path, numbers: &[u64]) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(tag);
    hasher.update(path.as_os_str().as_encoded_bytes());
    for n in numbers {
        hasher.update(&n.to_le_bytes());
    }
    batch::hex(&hasher.finalize())
}

/// The key of a file's part on the server (B8): the same for the same file
/// on this machine (its path, size, modification time and inode), unless it
/// changed. Cheap: nothing is read. A file changed without its modification
/// time is caught by the check of the whole file at the end.
fn part_key(planned: &Planned) -> Result<String, String> {
    use std::os::unix::fs::MetadataExt;
    if let Some(problem) = &planned.problem {
        return Err(problem.clone());
    }
    let (_, meta) = open(&planned.path)?;
    let path = std::fs::canonicalize(&planned.path).unwrap_or_else(|_| planned.path.clone());
    let numbers = [
        meta.size(),
        meta.mtime() as u64,
        meta.mtime_nsec() as u64,
        meta.dev(),
        meta.ino(),
    ];
    Ok(key_of(b"ftx part key 1\0", &path, &numbers))
}

/// Opens a big file to send, and its size now.
fn open_big(planned: &Planned) -> Result<(File, u64), String> {
    open(&planned.path).map(|(file, meta)| (file, meta.len()))
}

/// A small file read whole is held in memory; one that grew past this since it was planned is not sent.
const GREW_TOO_MUCH: u64 = 16 * batch::WORTH_RESUMING;

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
            indicatif::HumanBytes(meta.len())
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

/// A file of a batch as people read it: its path in the batch.
fn shown(planned: &Planned) -> String {
    names::escape_for_terminal(planned.batch_path.as_bytes())
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
