//! Progress events from the work, and the one render thread that shows them through one sink per output mode.
//!
//! Workers never draw. They send small events (waiting, started, finished,
//! failed, trace) over a channel and count bytes into a shared
//! [`ByteCounter`]; the render thread keeps a record of the uploads in flight
//! ([`Live`]) and hands every event to the [`Sink`] of the chosen mode: bars,
//! plain lines or JSON. Outcomes and exit codes come from the work, which
//! ends the run by sending the [`Summary`]; the render thread only shows it.

mod bars;
mod human;
mod json;
mod plain;
mod screen;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::term::Bytes;
use console::Term;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::outcome::{Done, FileReport, Tally};

/// How often byte counts are read and the screen refreshed when no event comes.
const TICK: Duration = Duration::from_millis(100);

/// What one upload goes through, as told by the work. Every text in an event
/// is already escaped and safe to print.
#[derive(Debug, Clone)]
pub enum Event {
    /// The server is ready (shown in JSON; the terminal has the banner).
    Listening {
        address: SocketAddr,
        dir: String,
        workers: usize,
    },
    /// Server: accepted; its header is still coming.
    Connected { id: u64, peer: SocketAddr },
    /// Server: the header is complete; waiting for a free worker.
    /// Sender: the file's turn came; connecting and waiting for `go ahead`
    /// (`path` is the file as given).
    Queued {
        id: u64,
        name: String,
        size: Option<u64>,
        path: Option<String>,
        /// Server: the client, for a file of a batch (a connection's is known from `Connected`).
        peer: Option<SocketAddr>,
    },
    /// Content is about to flow; the work counts it in `counter` as it goes.
    /// Sender: `socket` too, so that what is shown is what the server's side
    /// acknowledged, not what sits in this machine's buffers.
    Started {
        id: u64,
        name: String,
        size: u64,
        counter: ByteCounter,
        socket: Option<Arc<TcpStream>>,
        /// One of the many files of a batch connection (PROTOCOL.md B3), not a connection of its own.
        batched: bool,
        /// A file inside a folder sent (PROTOCOL.md B5), not a file given by name.
        in_folder: bool,
        /// Bytes the other end held already: where a resumed file starts (B8).
        resumed: u64,
    },
    /// Sender: every byte is out; waiting for the server's word (receipt or close).
    Sent { id: u64 },
    /// The upload ended well.
    Finished { id: u64, done: Done },
    /// Server: a connection's own row goes: a batch opened (its files get rows of their
    /// own), or it ended.
    Closed { id: u64 },
    /// Server: a batch ended, with what it came to. The bars tell it in one
    /// line, as they give no line of its own to a small file of a batch.
    BatchEnded(BatchEnded),
    /// The upload failed; `reason` says why in plain words.
    Failed { id: u64, reason: String },
    /// One step of the protocol exchange, for `--trace`.
    Trace { id: u64, text: String },
    /// A line about no single upload (accept errors, stopping).
    Notice(String),
    /// The run is over: the last event.
    Summary(Summary),
    /// Sender: Ctrl-C. The last event: the summary as things stand, files
    /// not ended reported not sent (those still in flight are told by the
    /// render thread, which knows how far each got); `resumable`: the files
    /// among them whose part the server keeps (PROTOCOL.md B8).
    Interrupted {
        summary: Summary,
        resumable: Vec<usize>,
    },
}

impl Event {
    /// How upload or file `id` ended, for the view: finished, or failed with its reason.
    pub fn outcome(id: u64, result: &Result<Done, String>) -> Event {
        match result {
            Ok(done) => Event::Finished {
                id,
                done: done.clone(),
            },
            Err(reason) => Event::Failed {
                id,
                reason: reason.clone(),
            },
        }
    }
}

/// What one batch connection came to (PROTOCOL.md B3).
#[derive(Debug, Clone)]
pub struct BatchEnded {
    /// The batch connection's id.
    pub id: u64,
    pub peer: SocketAddr,
    /// The files of its folders: saved, failed, bytes (files given by name
    /// have lines of their own in the human forms).
    pub saved: u64,
    pub failed: u64,
    pub bytes: u64,
    /// All its files, those given by name too.
    pub all: Tally,
    pub elapsed: Duration,
    /// The top folders it filled, as named in the drop folder (escaped).
    pub into: Vec<String>,
    /// Why it ended before its `end` frame, if it did (PROTOCOL.md B7).
    pub broke_off: Option<String>,
}

/// A file of a batch from this size up gets lines of its own in the human
/// forms: a start line in plain lines, an outcome line above the bars.
/// Smaller ones are many and quick: plain lines give them their outcome only,
/// and the bars count those of a folder in their batch's line.
pub(crate) const OWN_LINES_FROM: u64 = 1024 * 1024;

/// What a run came to, from the work: the counts and, for the sender, every file in the order given.
#[derive(Debug, Clone)]
pub struct Summary {
    pub elapsed: Duration,
    pub tally: Tally,
    pub files: Vec<FileReport>,
    /// The sender's server.
    pub to: Option<String>,
    /// Ctrl-C ended the run before its end.
    pub interrupted: bool,
}

/// Which end of the protocol is shown: the words differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Serve,
    Send,
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Live bars on stderr, a terminal.
    Bars,
    /// One line per start and per outcome on stderr.
    Plain,
    /// Newline-delimited JSON events on stdout, nothing on stderr but errors.
    Json,
}

impl Output {
    /// JSON when asked; bars only when stderr is a terminal and plain lines were not asked for.
    pub fn choose(plain: bool, json: bool) -> Output {
        if json {
            Output::Json
        } else if !plain && Term::stderr().is_term() {
            Output::Bars
        } else {
            Output::Plain
        }
    }

    /// True for the human forms (bars and plain lines).
    pub fn is_human(self) -> bool {
        matches!(self, Output::Bars | Output::Plain)
    }
}

/// What the sender knows before it starts: the work it is about to do.
#[derive(Debug, Clone, Copy, Default)]
pub struct Plan {
    pub files: u64,
    pub bytes: u64,
}

/// One upload's running byte count: the work adds to it as bytes move, the
/// render thread reads it whenever it draws. One relaxed atomic add per chunk
/// costs nothing next to the copy, and the screen is never behind a batch.
#[derive(Debug, Clone, Default)]
pub struct ByteCounter(Arc<AtomicU64>);

impl ByteCounter {
    /// Counts `n` more bytes.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Bytes counted so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// An upload the render thread knows about, from its first event to its last.
#[derive(Debug, Clone)]
pub(crate) struct Tracked {
    pub peer: Option<SocketAddr>,
    /// The name on the wire, escaped.
    pub name: Option<String>,
    /// Sender: the file as given.
    pub path: Option<String>,
    pub size: u64,
    pub counter: Option<ByteCounter>,
    /// Sender: the connection, to leave out bytes not yet acknowledged.
    pub socket: Option<Arc<TcpStream>>,
    /// When `go ahead` was said or heard.
    pub started: Option<Instant>,
    /// Bytes counted at the last refresh.
    pub bytes: u64,
    /// Bytes the other end held already when it started (a resumed file, B8).
    pub resumed: u64,
    /// One of the files of a batch connection.
    pub batched: bool,
    /// A file inside a folder sent.
    pub in_folder: bool,
}

impl Tracked {
    /// A small file of a batch (see [`OWN_LINES_FROM`]): no start line, no time.
    pub fn is_small_of_batch(&self) -> bool {
        self.batched && self.size < OWN_LINES_FROM
    }

    /// A small file of a folder sent in batches: the bars count it in its
    /// batch's line. A file given by name keeps a line of its own: its name
    /// is what the person sending it looks for.
    pub fn is_counted_in_its_batch(&self) -> bool {
        self.is_small_of_batch() && self.in_folder
    }

    fn new(peer: Option<SocketAddr>, name: Option<String>, path: Option<String>) -> Tracked {
        Tracked {
            peer,
            name,
            path,
            size: 0,
            counter: None,
            socket: None,
            started: None,
            bytes: 0,
            resumed: 0,
            batched: false,
            in_folder: false,
        }
    }
}

/// The uploads in flight and running counts for the screen. Nothing is kept
/// for an upload after it ends, so memory follows the uploads in flight, not
/// the uploads served.
pub(crate) struct Live {
    pub side: Side,
    pub plan: Option<Plan>,
    pub uploads: BTreeMap<u64, Tracked>,
    /// Counts shown while the run goes on; the outcome of the run is the work's [`Summary`].
    pub shown: Tally,
    /// Bytes moved by uploads in flight, at the last refresh.
    pub moving: u64,
    pub began: Instant,
}

impl Live {
    fn new(side: Side, plan: Option<Plan>) -> Live {
        Live {
            side,
            plan,
            uploads: BTreeMap::new(),
            shown: Tally::default(),
            moving: 0,
            began: Instant::now(),
        }
    }

    /// Records an event; for the last event of an upload, returns its record as it was.
    fn apply(&mut self, event: &Event) -> Option<Tracked> {
        match event {
            Event::Connected { id, peer } => {
                self.uploads
                    .insert(*id, Tracked::new(Some(*peer), None, None));
                None
            }
            Event::Queued {
                id,
                name,
                size,
                path,
                peer,
            } => {
                let upload = self.record(*id);
                if peer.is_some() {
                    upload.peer = *peer;
                }
                upload.name = Some(name.clone());
                upload.size = size.unwrap_or_default();
                upload.path.clone_from(path);
                None
            }
            Event::Started {
                id,
                name,
                size,
                counter,
                socket,
                batched,
                in_folder,
                resumed,
            } => {
                let upload = self.record(*id);
                upload.batched = *batched;
                upload.in_folder = *in_folder;
                upload.name = Some(name.clone());
                upload.size = *size;
                // A resumed file starts with what the other end held already
                // (not with what the counter has by now: content may be moving).
                upload.bytes = counter.get();
                upload.resumed = *resumed;
                upload.counter = Some(counter.clone());
                upload.socket.clone_from(socket);
                upload.started = Some(Instant::now());
                None
            }
            Event::Finished { id, done } => {
                let upload = self.end(*id);
                self.shown.count::<()>(&Ok(done.clone()));
                Some(upload)
            }
            Event::Failed { id, .. } => {
                let upload = self.end(*id);
                self.shown.count::<()>(&Err(()));
                Some(upload)
            }
            Event::Closed { id } => Some(self.end(*id)),
            _ => None,
        }
    }

    /// In an interrupted run's summary, the files that were in flight: how
    /// much of each was sent, not confirmed; and for those whose part the server keeps, that the same
    /// command resumes them. The tally follows.
    fn tell_in_flight(&self, summary: &mut Summary, resumable: &[usize]) {
        for (index, report) in summary.files.iter_mut().enumerate() {
            let Some(upload) = self.uploads.get(&(index as u64)) else {
                continue;
            };
            if report.result.is_ok() || upload.started.is_none() {
                continue;
            }
            // What was sent: all the server can hold (what it acknowledged
            // is less, and for a batch shared with the files before).
            let sent = upload
                .counter
                .as_ref()
                .map_or(upload.bytes, ByteCounter::get);
            let (sent, size) = (Bytes(sent), Bytes(upload.size));
            let reason = match resumable.contains(&index) {
                true => format!(
                    "{IN_FLIGHT}the server holds up to {sent} of {size}; the same command resumes it"
                ),
                false => format!("{IN_FLIGHT}{sent} of {size} sent, not confirmed"),
            };
            report.result = Err(reason);
        }
        summary.tally = Tally::of(&summary.files);
    }

    /// The record of upload `id`, made if its first events were missed.
    fn record(&mut self, id: u64) -> &mut Tracked {
        self.uploads
            .entry(id)
            .or_insert_with(|| Tracked::new(None, None, None))
    }

    fn end(&mut self, id: u64) -> Tracked {
        let mut upload = self
            .uploads
            .remove(&id)
            .unwrap_or_else(|| Tracked::new(None, None, None));
        if let Some(counter) = &upload.counter {
            upload.bytes = counter.get();
        }
        upload
    }

    /// Reads every byte counter (less, on the sender, what the server's side
    /// has not acknowledged yet: bytes in this machine's buffers are not sent).
    fn refresh(&mut self) {
        let mut moving = 0;
        for upload in self.uploads.values_mut() {
            if let Some(counter) = &upload.counter {
                let unacknowledged = upload
                    .socket
                    .as_deref()
                    .and_then(crate::sys::net::unacknowledged)
                    .map_or(0, u64::from);
                upload.bytes = counter.get().saturating_sub(unacknowledged);
                moving += upload.bytes;
            }
        }
        self.moving = moving;
    }

    /// Uploads in progress, uploads waiting for a worker (or for `go ahead`), connections still sending a header.
    pub fn stages(&self) -> (usize, usize, usize) {
        let (mut active, mut waiting, mut connecting) = (0, 0, 0);
        for upload in self.uploads.values() {
            match (upload.started, &upload.name) {
                (Some(_), _) => active += 1,
                (None, Some(_)) => waiting += 1,
                (None, None) => connecting += 1,
            }
        }
        (active, waiting, connecting)
    }

    /// Bytes of the uploads that ended well, plus those in flight.
    pub fn bytes_shown(&self) -> u64 {
        self.shown.bytes + self.moving
    }
}

/// One output mode. Only the render thread calls it.
pub(crate) trait Sink: Send {
    /// An event, after [`Live`] recorded it. For the last event of an upload,
    /// `ended` is its record as it was; for the others, look it up in `live`.
    fn event(&mut self, event: &Event, ended: Option<&Tracked>, live: &Live);
    /// About ten times a second, after the byte counts were read.
    fn tick(&mut self, _live: &Live) {}
    /// No event waits: whatever was held back goes out now.
    fn idle(&mut self) {}
    /// The end of the run.
    fn summary(&mut self, summary: &Summary, live: &Live);
}

/// How many events may wait for the render thread. Past that, whoever sends
/// one waits for it, the way a logger holds back a program whose output is
/// not read (a stalled `--json` consumer, a paused pager): the memory they
/// take stays bounded, no outcome line is lost, and the work goes on as soon
/// as the output moves. Progress is not sent as events (the render thread
/// reads each upload's byte counter), so a busy server sends a few events per
/// file, far fewer than this between two of the render thread's reads.
pub const EVENTS_WAITING: usize = 1024;

/// How the reason of a file in flight when the run was interrupted starts.
const IN_FLIGHT: &str = "interrupted: ";

/// Lines shown above the live view, laid out for a terminal of the given width.
pub type Heading = Box<dyn Fn(usize) -> Vec<String> + Send>;

/// The render thread and the way to reach it.
pub struct Reporter {
    events: Sender<Event>,
    thread: JoinHandle<()>,
    /// Disconnected once the render thread has shown the summary.
    ended: Receiver<()>,
    /// Cuts the render thread's nap short (see [`GATHER`]) when the summary is sent.
    wake: Sender<()>,
}

impl Reporter {
    /// Starts the render thread for `output`; `heading` is what the terminal
    /// shows above the live view (the server's banner), painted again at the
    /// new width when the terminal is resized.
    pub fn start(
        side: Side,
        output: Output,
        plan: Option<Plan>,
        heading: Option<Heading>,
    ) -> Reporter {
        let sink: Box<dyn Sink> = match output {
            Output::Bars => Box::new(bars::Bars::new(side, plan, heading)),
            Output::Plain => Box::new(plain::Plain::new(side)),
            Output::Json => Box::new(json::Json::new()),
        };
        let (events, rx) = crossbeam_channel::bounded(EVENTS_WAITING);
        let (ending, ended) = crossbeam_channel::bounded::<()>(0);
        let (wake, woken) = crossbeam_channel::bounded::<()>(1);
        let thread = thread::Builder::new()
            .name("render".into())
            .spawn(move || {
                render(&rx, &woken, Live::new(side, plan), sink);
                drop(ending);
            })
            .expect("spawn render thread");
        Reporter {
            events,
            thread,
            ended,
            wake,
        }
    }

    /// What says that the summary is shown: its `recv` returns (with an
    /// error) once the render thread is done.
    pub fn ended(&self) -> Receiver<()> {
        self.ended.clone()
    }

    /// Where the work sends its events.
    pub fn events(&self) -> Sender<Event> {
        self.events.clone()
    }

    /// Shows the summary and waits until everything is on screen.
    pub fn finish(self, summary: Summary) {
        let _ = self.events.send(Event::Summary(summary));
        // The last outcome was usually drawn a moment ago: the render thread
        // naps now, and the run would end up to a nap later than it could.
        let _ = self.wake.try_send(());
        let _ = self.thread.join();
    }
}

/// How long the render thread lets events gather once it has drained them.
const GATHER: Duration = Duration::from_millis(2);

fn render(events: &Receiver<Event>, woken: &Receiver<()>, mut live: Live, mut sink: Box<dyn Sink>) {
    // Counters are read and the screen redrawn once a tick, not once an event:
    // thousands of small uploads a second must not cost thousands of redraws.
    let mut next_tick = Instant::now() + TICK;
    loop {
        match events.recv_deadline(next_tick) {
            Ok(Event::Summary(summary)) => {
                live.refresh();
                sink.summary(&summary, &live);
                return;
            }
            Ok(Event::Interrupted {
                mut summary,
                resumable,
            }) => {
                live.refresh();
                live.tell_in_flight(&mut summary, &resumable);
                sink.summary(&summary, &live);
                return;
            }
            Ok(event) => {
                let ended = live.apply(&event);
                sink.event(&event, ended.as_ref(), &live);
                if events.is_empty() {
                    sink.idle();
                    // A short nap before waiting again: events sent meanwhile
                    // queue up without waking this thread, so thousands of
                    // small files a second cost a few hundred wake-ups, not
                    // thousands (each one paid by the worker that sends).
                    // The summary cuts it short.
                    let _ = woken.recv_timeout(GATHER);
                }
            }
            Err(RecvTimeoutError::Timeout) => sink.idle(),
            Err(RecvTimeoutError::Disconnected) => {
                sink.idle();
                return;
            }
        }
        if Instant::now() >= next_tick {
            live.refresh();
            sink.tick(&live);
            next_tick = Instant::now() + TICK;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::Kept;

    #[test]
    fn live_keeps_nothing_once_an_upload_ends() {
        let mut live = Live::new(Side::Serve, None);
        let peer = "127.0.0.1:5000".parse().unwrap();
        for id in 0..1000 {
            live.apply(&Event::Connected { id, peer });
            let counter = ByteCounter::default();
            counter.add(4);
            live.apply(&Event::Started {
                id,
                name: "x".into(),
                size: 10,
                counter,
                socket: None,
                batched: false,
                in_folder: false,
                resumed: 0,
            });
            let ended = if id % 2 == 0 {
                Event::Finished {
                    id,
                    done: Done {
                        kept: Kept::Saved { saved_as: None },
                        bytes: 10,
                        elapsed: Duration::from_secs(1),
                        verified: None,
                        resumed_from: 0,
                    },
                }
            } else {
                Event::Failed {
                    id,
                    reason: "boom".into(),
                }
            };
            let upload = live.apply(&ended).expect("the ended upload's record");
            assert_eq!(upload.bytes, 4);
        }
        assert!(live.uploads.is_empty());
        assert_eq!(live.shown.saved, 500);
        assert_eq!(live.shown.failed, 500);
        assert_eq!(
            live.bytes_shown(),
            5000,
            "failed uploads' bytes are not counted"
        );
    }

    #[test]
    fn counters_are_shared_between_clones() {
        let counter = ByteCounter::default();
        let seen_by_render = counter.clone();
        counter.add(3);
        counter.add(4);
        assert_eq!(seen_by_render.get(), 7);
    }
}
