//! One file of `ftx send`: connect, header, `go ahead`, content with sendfile(2), then the verdict; every wait bounded.

use std::fs::File;
use std::io::{self, ErrorKind, Read, Seek, SeekFrom};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use super::connect::{self, Opening, Reach};
use super::{shown_path, verdict, Learned, Planned};
use crate::config::SendConfig;
use crate::outcome::{Done, Kept};
use crate::pace::{self, Pace};
use crate::progress::{ByteCounter, Event};
use crate::protocol::{self, Header, ReplyError, GO_AHEAD};
use crate::term::{human_duration, part_of};

/// Content goes out in slices this big, so progress is reported between them.
const SLICE: usize = 8 * 1024 * 1024;

/// How long to wait for the rest of a reply that is not `go ahead`.
const REST_OF_REPLY: Duration = Duration::from_secs(1);

/// One upload and what it needs.
pub(super) struct Upload<'a> {
    pub id: u64,
    pub planned: &'a Planned,
    pub config: &'a SendConfig,
    pub addresses: &'a [SocketAddr],
    pub events: &'a Sender<Event>,
    pub learned: &'a Learned,
    pub reach: &'a Reach,
}

/// Why sending the content stopped, after how many bytes.
pub(super) struct SendError {
    pub sent: u64,
    pub error: io::Error,
}

impl Upload<'_> {
    /// Uploads the file and reports its outcome, which it also returns.
    pub fn run(self) -> Result<Done, String> {
        let _ = self.events.send(Event::Queued {
            id: self.id,
            name: self.planned.shown(),
            size: self.planned.size,
            path: Some(shown_path(&self.planned.path)),
            peer: None,
        });
        let result = self.exchange();
        let _ = self.events.send(Event::outcome(self.id, &result));
        result
    }

    fn trace(&self, text: impl FnOnce() -> String) {
        if self.config.trace {
            let _ = self.events.send(Event::Trace {
                id: self.id,
                text: text(),
            });
        }
    }

    fn exchange(&self) -> Result<Done, String> {
        let to = &self.config.to;
        let timeout = self.config.timeout;
        if let Some(problem) = &self.planned.problem {
            return Err(problem.clone());
        }
        let (file, meta) = open(&self.planned.path)?;
        let size = meta.len();

        let header = Header {
            size,
            name: self.planned.name.clone(),
        };
        let stream = Arc::new(self.open(&header)?);

        let counter = ByteCounter::default();
        let _ = self.events.send(Event::Started {
            id: self.id,
            name: self.planned.shown(),
            size,
            counter: counter.clone(),
            socket: Some(Arc::clone(&stream)),
            batched: false,
            in_folder: false,
            resumed: 0,
        });
        let started = Instant::now();
        let mut pace = self.config.rate.map(Pace::new);
        send_content(
            &file,
            &stream,
            0,
            size,
            &counter,
            self.config.sendfile,
            pace.as_mut(),
        )
        .map_err(|SendError { sent, error }| match error.kind() {
            ErrorKind::UnexpectedEof => format!(
                "the file shrank while sending ({} sent)",
                part_of(sent, size)
            ),
            _ if protocol::is_timeout(&error) => format!(
                "the server took no data for {} (after {}); \
                     it may be stuck: wait longer with --timeout, or check the server",
                human_duration(timeout),
                part_of(sent, size)
            ),
            _ => format!(
                "the server ended the connection after {}: it did not take the whole file ({})",
                part_of(sent, size),
                in_words(&error, timeout)
            ),
        })?;
        self.trace(|| format!("client → {to}  {size} content bytes, then closes its side"));
        let _ = self.events.send(Event::Sent { id: self.id });
        let kept = verdict::after_content(&stream, size, timeout, self.learned)?;
        self.trace(|| match &kept {
            Kept::Saved { .. } => format!("{to} → client  receipt: saved, {size} bytes; closed"),
            Kept::Delivered { .. } => format!("{to} closed the connection without a receipt"),
        });
        let kept = match kept {
            // The saved name is worth a mention only when it differs from the one sent.
            Kept::Saved { saved_as } => Kept::Saved {
                saved_as: saved_as.filter(|name| *name != self.planned.shown()),
            },
            Kept::Delivered { said } => Kept::Delivered { said },
        };
        Ok(Done {
            kept,
            bytes: size,
            elapsed: started.elapsed(),
            verified: None,
            resumed_from: 0,
        })
    }

    /// Connects, sends the header and waits for `go ahead`. A server that turns
    /// the upload away for being busy (`--per-ip`) is asked again, with pauses
    /// that double, for up to `--timeout`.
    fn open(&self, header: &Header) -> Result<TcpStream, String> {
        connect::with_retry(
            self.config,
            |text| self.trace(|| text),
            || self.try_open(header),
        )
    }

    fn try_open(&self, header: &Header) -> Result<TcpStream, Opening> {
        let to = &self.config.to;
        let timeout = self.config.timeout;
        let mut stream =
            connect::connect(self.config, self.addresses, self.reach).map_err(Opening::Failed)?;
        self.trace(|| format!("{}: connected to {to}", self.planned.shown()));
        // The header is one small write that the server waits for: send it at once.
        let _ = stream.set_nodelay(true);
        let set = |e: io::Error| Opening::Failed(e.to_string());
        stream.set_write_timeout(Some(timeout)).map_err(set)?;
        stream.set_read_timeout(Some(timeout)).map_err(set)?;
        header.write_to(&mut stream).map_err(|e| {
            Opening::Failed(format!("sending the header: {}", in_words(&e, timeout)))
        })?;
        for line in protocol::describe_header(header) {
            self.trace(|| format!("client → {to}  {line}"));
        }
        self.read_reply(&mut stream)?;
        Ok(stream)
    }

    /// Waits for `go ahead`. A client queued behind busy workers legitimately
    /// waits here, so the message says how to wait longer.
    fn read_reply(&self, stream: &mut TcpStream) -> Result<(), Opening> {
        let to = &self.config.to;
        match protocol::read_reply(stream) {
            Ok(()) => {
                self.trace(|| {
                    format!(
                        "{to} → client  \"go ahead\"  {}",
                        protocol::hex_dump(GO_AHEAD, 8)
                    )
                });
                Ok(())
            }
            Err(ReplyError::Bad(mut bad)) => {
                let _ = stream.set_read_timeout(Some(REST_OF_REPLY));
                bad.read_rest(stream);
                self.trace(|| format!("{to} → client  {}", protocol::hex_dump(&bad.got, 16)));
                Err(Opening::refused(&bad.got, bad.to_string()))
            }
            Err(ReplyError::Io(e)) if protocol::is_timeout(&e) => Err(Opening::Failed(format!(
                "no reply within {}: the server may be busy with other uploads (wait longer with --timeout 5m)",
                human_duration(self.config.timeout)
            ))),
            Err(ReplyError::Io(e)) => Err(Opening::Failed(format!(
                "waiting for the server's reply: {}",
                in_words(&e, self.config.timeout)
            ))),
        }
    }
}

/// Opens a file to send, saying plainly why not; with what it is now (its size, say).
pub(super) fn open(path: &std::path::Path) -> Result<(File, std::fs::Metadata), String> {
    let file = open_only(path)?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read its size: {e}"))?;
    if meta.is_dir() {
        return Err("is a folder: ftx sends files (to send what is in it, give DIR/*)".into());
    }
    if !meta.is_file() {
        return Err(NOT_REGULAR.into());
    }
    Ok((file, meta))
}

/// Why a device, a pipe or a socket is not sent.
const NOT_REGULAR: &str = "not a regular file (a device, a pipe or a socket)";

/// Opens a file for reading, and nothing more: whether it is a regular file
/// is for the caller to see. Opened without blocking: opening a named pipe
/// waits for a writer, a device may wait too, and neither is a file to send.
/// (Reads from a regular file never wait on this flag.)
pub(super) fn open_only(path: &std::path::Path) -> Result<File, String> {
    crate::sys::fs::open_without_waiting(path).map_err(|e| match e.kind() {
        ErrorKind::NotFound => "cannot open: No such file or directory".to_string(),
        // The portable layer refuses these before opening them.
        _ if std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir()) => {
            NOT_REGULAR.into()
        }
        _ => format!("cannot open: {e}"),
    })
}

/// Socket errors as a user understands them.
pub(super) fn in_words(e: &io::Error, timeout: Duration) -> String {
    match e.kind() {
        ErrorKind::ConnectionReset => "the server reset the connection".into(),
        ErrorKind::BrokenPipe => "the server had closed the connection".into(),
        ErrorKind::NotConnected => "the connection was already closed".into(),
        _ if protocol::is_timeout(e) => format!("nothing happened for {}", human_duration(timeout)),
        _ => e.to_string(),
    }
}

/// Sends exactly `size` bytes of `file`, counting them as they go: with
/// sendfile(2) where the OS layer has it (the kernel copies from the page
/// cache straight into the socket), else, or where it refuses, through a buffer. The socket's
/// write timeout bounds every wait.
pub(super) fn send_content(
    file: &File,
    stream: &TcpStream,
    start: u64,
    size: u64,
    counter: &ByteCounter,
    sendfile: bool,
    mut pace: Option<&mut Pace>,
) -> Result<(), SendError> {
    let mut sent = start;
    let moved = |n: u64, sent: &mut u64, pace: Option<&mut Pace>| {
        *sent += n;
        counter.add(n);
        if let Some(pace) = pace {
            pace.moved(n);
        }
    };
    let shrank = |sent| SendError {
        sent,
        error: ErrorKind::UnexpectedEof.into(),
    };
    if sendfile && crate::sys::copy::IN_KERNEL {
        while sent < size {
            let want = pace::next_chunk(pace.as_deref(), SLICE, size - sent);
            match crate::sys::copy::sendfile(stream, file, sent, want) {
                Ok(0) => return Err(shrank(sent)),
                Ok(n) => moved(n as u64, &mut sent, pace.as_deref_mut()),
                Err(e) if e.kind() == ErrorKind::Unsupported && sent == start => break,
                Err(error) => return Err(SendError { sent, error }),
            }
        }
    }
    if sent == size {
        return Ok(());
    }
    let mut reader = file;
    reader
        .seek(SeekFrom::Start(sent))
        .map_err(|error| SendError { sent, error })?;
    while sent < size {
        let want = pace::next_chunk(pace.as_deref(), SLICE, size - sent) as u64;
        let n = io::copy(&mut reader.take(want), &mut &*stream)
            .map_err(|error| SendError { sent, error })?;
        if n == 0 {
            return Err(shrank(sent));
        }
        moved(n, &mut sent, pace.as_deref_mut());
    }
    Ok(())
}
