//! One worker of the server's pool, and the classic upload it receives: the header the intake read, `go ahead`, the content into a partial file, kept, the receipt.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::term::Bytes;
use crossbeam_channel::Sender;

use super::batch::unfinished::Unfinished;
use super::copy::{Copier, CopyError, Meter};
use super::Arrival;
use crate::config::ServeConfig;
use crate::drop_folder::{BeginError, DropFolder, PartialFile};
use crate::names;
use crate::outcome::{Done, Kept};
use crate::progress::{ByteCounter, Event};
use crate::protocol::receipt::Receipt;
use crate::protocol::{self, Header, GO_AHEAD, REFUSED};
use crate::term::{human_duration, part_of};

/// Most bytes read, and thrown away, while waiting for the close of a client that sent an empty file.
const MAX_AFTER_EMPTY: usize = 64 * 1024;

/// One worker thread's means to receive uploads, kept from one upload to the next.
pub(super) struct Worker {
    pub(super) config: Arc<ServeConfig>,
    pub(super) folder: DropFolder,
    pub(super) events: Sender<Event>,
    pub(super) copier: Copier,
    /// Folders batches are filling or left unfinished (B5b), shared by the workers.
    pub(super) unfinished: Arc<Unfinished>,
}

/// Why an upload failed, and whether the client had already been told `go ahead`.
struct UploadFailure {
    reason: String,
    /// After `go ahead` the client must see a reset, not a clean close.
    abort: bool,
}

impl UploadFailure {
    fn before_go_ahead(reason: impl Into<String>) -> UploadFailure {
        UploadFailure {
            reason: reason.into(),
            abort: false,
        }
    }

    fn after_go_ahead(reason: impl Into<String>) -> UploadFailure {
        UploadFailure {
            reason: reason.into(),
            abort: true,
        }
    }
}

impl Worker {
    pub fn new(
        config: Arc<ServeConfig>,
        folder: DropFolder,
        events: Sender<Event>,
        unfinished: Arc<Unfinished>,
    ) -> Worker {
        let copier = Copier::new(config.splice);
        Worker {
            config,
            folder,
            events,
            copier,
            unfinished,
        }
    }

    /// Receives one upload; never panics on client input. A failure after `go
    /// ahead` ends the connection with a reset, so the client sees it failed.
    pub fn receive(
        &mut self,
        upload: &Arrival,
        stopping: &dyn Fn() -> bool,
    ) -> Result<Done, String> {
        let (id, stream, peer) = (upload.id, &*upload.stream, upload.peer);
        let result = self.exchange(upload, stopping);
        self.trace(id, || format!("server closes the connection to {peer}"));
        result.map_err(|failure| {
            let reason = if stopping() {
                "cancelled: the server is stopping".to_string()
            } else {
                failure.reason
            };
            if failure.abort {
                abort(stream, &reason);
            }
            reason
        })
    }

    /// Tells the render thread how an upload ended.
    pub fn report(&self, id: u64, result: Result<Done, String>) {
        let _ = self.events.send(Event::outcome(id, &result));
    }

    pub(super) fn trace(&self, id: u64, text: impl FnOnce() -> String) {
        if self.config.trace {
            let _ = self.events.send(Event::Trace { id, text: text() });
        }
    }

    fn exchange(
        &mut self,
        upload: &Arrival,
        stopping: &dyn Fn() -> bool,
    ) -> Result<Done, UploadFailure> {
        let (id, stream, peer, header) = (upload.id, &*upload.stream, upload.peer, &upload.header);
        let idle = self.config.idle_timeout;
        let io = |e: std::io::Error| UploadFailure::before_go_ahead(e.to_string());
        stream.set_read_timeout(Some(idle)).map_err(io)?;
        stream.set_write_timeout(Some(idle)).map_err(io)?;
        self.trace(id, || format!("{peer} sent its header; a worker takes it"));
        for line in protocol::describe_header(header) {
            self.trace(id, || format!("{peer} → server  {line}"));
        }
        let shown = names::escape_for_terminal(&header.name);
        let mut partial = match self.admit(header) {
            Ok(partial) => partial,
            Err(reason) => {
                // Said in place of `go ahead`: classroom clients report a bad response, ftx shows the reason.
                let reply = format!("{REFUSED}{reason}");
                let _ = (&*stream).write_all(reply.as_bytes());
                self.trace(id, || format!("server → {peer}  \"{reply}\""));
                return Err(UploadFailure::before_go_ahead(format!(
                    "refused \"{shown}\": {reason}"
                )));
            }
        };
        (&*stream)
            .write_all(GO_AHEAD)
            .map_err(|e| UploadFailure::after_go_ahead(format!("sending go ahead: {e}")))?;
        self.trace(id, || {
            format!(
                "server → {peer}  \"go ahead\"  {}",
                protocol::hex_dump(GO_AHEAD, 8)
            )
        });
        let counter = ByteCounter::default();
        let _ = self.events.send(Event::Started {
            id,
            name: shown.clone(),
            size: header.size,
            counter: counter.clone(),
            socket: None,
            batched: false,
            in_folder: false,
            resumed: 0,
        });

        let started = Instant::now();
        let size = header.size;
        let mut meter = Meter::new(&self.config, &counter);
        self.copier
            .copy(stream, &mut partial, size, &mut meter)
            .map_err(|e| {
                UploadFailure::after_go_ahead(explain(&e, size, &self.config, stopping))
            })?;
        self.trace(id, || format!("{peer} → server  {size} content bytes"));
        let saved_as = partial
            .keep()
            .map_err(|e| UploadFailure::after_go_ahead(format!("saving the received file: {e}")))?;
        if size == 0 {
            // No content byte proves the client read its `go ahead`: a receipt sent
            // now could reach a classroom client in the same read. Wait for its close.
            wait_for_close(stream);
        }
        let receipt = Receipt::Saved {
            saved_as: saved_as.clone(),
            size,
            batch: Some(crate::protocol::batch::VERSION),
            claim: self.folder.claim(&saved_as, peer.ip()),
        };
        // A classroom client has closed by now: a failed write changes nothing.
        if (&*stream).write_all(&receipt.encode()).is_ok() {
            self.trace(id, || {
                format!("server → {peer}  receipt: saved as \"{saved_as}\", {size} bytes")
            });
        }
        Ok(Done {
            kept: Kept::Saved {
                saved_as: (saved_as != shown).then_some(saved_as),
            },
            bytes: size,
            elapsed: started.elapsed(),
            verified: None,
            resumed_from: 0,
        })
    }

    /// Decides, before `go ahead`, whether the upload may start; creates its partial file if so.
    fn admit(&self, header: &Header) -> Result<PartialFile, String> {
        // A size no one could send is most often a student's header written wrong: say which way.
        let with_hint = |reason: String| match protocol::misread_size(header) {
            Some(hint) => format!("{reason}; {hint}"),
            None => reason,
        };
        over_limit(&self.config, header.size).map_err(with_hint)?;
        let safe = names::safe_file_name(&header.name);
        self.folder.begin(&safe, header.size).map_err(|e| match e {
            BeginError::NoSpace { .. } => with_hint(e.to_string()),
            _ => e.to_string(),
        })
    }
}

/// Refuses a file announced larger than `--max-size`, in the words both kinds of upload use.
pub(super) fn over_limit(config: &ServeConfig, size: u64) -> Result<(), String> {
    match config.max_size {
        Some(max) if size > max => Err(format!(
            "too large: {} announced, the limit is {}",
            Bytes(size),
            Bytes(max)
        )),
        _ => Ok(()),
    }
}

/// Why the content did not all arrive, in words.
pub(super) fn explain(
    e: &CopyError,
    size: u64,
    config: &ServeConfig,
    stopping: &dyn Fn() -> bool,
) -> String {
    let idle = config.idle_timeout;
    let min_rate = config.min_rate().unwrap_or_default();
    match e {
        _ if stopping() => "cancelled: the server is stopping".into(),
        CopyError::Closed { got } => format!("client closed after {}", part_of(*got, size)),
        CopyError::Socket { got, error } if protocol::is_timeout(error) => format!(
            "client sent nothing for {} (after {})",
            human_duration(idle),
            part_of(*got, size)
        ),
        CopyError::Socket { got, error } => {
            format!("receiving (after {}): {error}", part_of(*got, size))
        }
        CopyError::TooSlow { got, window } => format!(
            "client too slow: {} in {}, under the minimum of {}/s (--min-rate)",
            Bytes(*got),
            human_duration(*window),
            Bytes(min_rate)
        ),
        CopyError::Disk(error) => format!("writing to the drop folder: {error}"),
    }
}

/// Ends a connection after `go ahead` so that the client cannot take it for a
/// success: a failure receipt for an ftx sender that is listening, then a
/// reset (`SO_LINGER` 0), never a clean close.
pub(super) fn abort(stream: &TcpStream, reason: &str) {
    let receipt = Receipt::Failed {
        reason: reason.to_string(),
    };
    say_and_reset(stream, &receipt.encode());
}

/// Writes `last` if it goes at once (never waiting on a client that reads
/// nothing), then makes the close a reset.
pub(super) fn say_and_reset(stream: &TcpStream, last: &[u8]) {
    let _ = stream.set_nonblocking(true);
    let _ = (&*stream).write_all(last);
    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
}

/// Waits (within the read timeout) for the client to close, throwing away anything it still sends.
fn wait_for_close(stream: &TcpStream) {
    let mut sink = [0u8; 4096];
    let mut read = 0;
    while read < MAX_AFTER_EMPTY {
        match (&*stream).read(&mut sink) {
            Ok(0) | Err(_) => return,
            Ok(n) => read += n,
        }
    }
}
