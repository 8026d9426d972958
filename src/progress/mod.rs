//! Progress events from workers, and the one render thread that turns them into bars, plain lines or JSON.
//!
//! Workers never draw. They send small events (waiting, started, finished,
//! failed, trace) over a channel and count bytes into a shared [`Counter`];
//! the render thread is the only code that touches the terminal or stdout.

mod json;
mod view;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use console::Term;
use crossbeam_channel::{Receiver, Sender};

pub use view::seconds;

/// How often byte counts are read and the screen refreshed when no event comes.
const TICK: Duration = Duration::from_millis(100);

/// What one upload goes through, as told by the worker handling it.
/// Every text in an event is already escaped and safe to print.
#[derive(Debug, Clone)]
pub enum Event {
    /// The server is ready (shown in JSON; the terminal has the banner).
    Listening {
        address: SocketAddr,
        dir: String,
        workers: usize,
    },
    /// Server: accepted, waiting for a free worker (`peer` set).
    /// Sender: the file's turn came; connecting and waiting for `go ahead` (`name` set).
    Waiting {
        id: u64,
        peer: Option<SocketAddr>,
        name: Option<String>,
    },
    /// Content is about to flow; the worker counts it in `counter` as it goes.
    Started {
        id: u64,
        name: String,
        size: u64,
        counter: Counter,
    },
    /// All bytes moved; on the server, `saved_as` is the file's name in the drop folder.
    Finished {
        id: u64,
        bytes: u64,
        elapsed: Duration,
        saved_as: Option<String>,
    },
    /// The upload failed; `reason` says why in plain words.
    Failed { id: u64, reason: String },
    /// One step of the protocol exchange, for `--trace`.
    Trace { id: u64, text: String },
    /// A line for the log that is about no single upload (accept errors, shutting down).
    Notice(String),
}

/// Which end of the protocol is drawing: the words differ.
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
    /// Nothing at all; only the tally (used by `ftx demo` for its clients).
    Quiet,
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

/// Writes one line to stderr in a single write and ignores errors: a closed or
/// full stderr (`2>&-`, `| head -1`) must never stop a server or a transfer,
/// which `eprintln!` would do by panicking.
pub fn say_line(mut line: String) {
    line.push('\n');
    let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), line.as_bytes());
}

/// `eprintln!` that never panics: formats, then [`say_line`].
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::progress::say_line(format!($($arg)*))
    };
}

/// Turns off colours when `NO_COLOR` is set (see no-color.org).
pub fn respect_no_color() {
    if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
        console::set_colors_enabled(false);
        console::set_colors_enabled_stderr(false);
    }
}

/// What the sender knows before it starts: the work it is about to do.
#[derive(Debug, Clone, Copy, Default)]
pub struct Planned {
    pub files: u64,
    pub bytes: u64,
}

/// The counts at the end of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub done: u64,
    pub failed: u64,
    pub bytes: u64,
}

/// One upload's running byte count: the worker adds to it as bytes move, the
/// render thread reads it whenever it draws. One relaxed atomic add per chunk
/// costs nothing next to the copy, and the screen is never behind a batch.
#[derive(Debug, Clone, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    /// Counts `n` more bytes.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Bytes counted so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Writes the closing `summary` record of a `--json` run.
pub fn emit_summary(tally: Tally, elapsed: Duration) {
    json::emit(&json::Record {
        event: "summary",
        t: elapsed.as_secs_f64(),
        done: Some(tally.done),
        failed: Some(tally.failed),
        bytes: Some(tally.bytes),
        duration_ms: Some(json::millis(elapsed)),
        ..json::Record::default()
    });
}

/// Starts the render thread. It ends, returning the tally, once every sender is dropped.
pub fn spawn(
    side: Side,
    output: Output,
    planned: Option<Planned>,
) -> (Sender<Event>, JoinHandle<Tally>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let handle = thread::Builder::new()
        .name("render".into())
        .spawn(move || render(rx, side, output, planned))
        .expect("spawn render thread");
    (tx, handle)
}

fn render(events: Receiver<Event>, side: Side, output: Output, planned: Option<Planned>) -> Tally {
    let mut view = view::View::new(side, output, planned);
    loop {
        match events.recv_timeout(TICK) {
            Ok(event) => view.apply(event),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        }
        view.refresh();
    }
    view.close()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_render_counts_outcomes_and_bytes() {
        let (tx, handle) = spawn(Side::Serve, Output::Quiet, None);
        let peer = Some("127.0.0.1:5000".parse().unwrap());
        tx.send(Event::Waiting {
            id: 1,
            peer,
            name: None,
        })
        .unwrap();
        let counter = Counter::default();
        counter.add(4);
        tx.send(Event::Started {
            id: 1,
            name: "x".into(),
            size: 10,
            counter,
        })
        .unwrap();
        tx.send(Event::Finished {
            id: 1,
            bytes: 10,
            elapsed: Duration::from_secs(1),
            saved_as: None,
        })
        .unwrap();
        tx.send(Event::Waiting {
            id: 2,
            peer,
            name: None,
        })
        .unwrap();
        tx.send(Event::Failed {
            id: 2,
            reason: "boom".into(),
        })
        .unwrap();
        drop(tx);
        assert_eq!(
            handle.join().unwrap(),
            Tally {
                done: 1,
                failed: 1,
                bytes: 10
            }
        );
    }

    #[test]
    fn counters_are_shared_between_clones() {
        let counter = Counter::default();
        let seen_by_render = counter.clone();
        counter.add(3);
        counter.add(4);
        assert_eq!(seen_by_render.get(), 7);
    }
}
