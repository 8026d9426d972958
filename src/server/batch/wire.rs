//! A batch connection as the server reads and answers it: the one reader of its frame lines, trailers and content, each read bounded in time and rate, and the answers it holds until nothing more has arrived to read (PROTOCOL.md B3, B4, B9).
//!
//! Every read of the client and every answer goes through [`Client`]: it
//! waits at most `--idle-timeout` for a byte to move, a frame or trailer
//! line must be whole within `--header-timeout` of when the server began to
//! read it, and the bytes the client moves (sent or taken) while the server
//! waits for it must reach `--min-rate` over each `--min-rate-window` of
//! waiting. The server's own work (hashing, saving) never counts against the
//! client. Big content goes around it (splice) under the per-file
//! `--min-rate` of `server/copy.rs`.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::config::ServeConfig;
use crate::protocol::batch::{self, Answer, Frame, Trailer};
use crate::server::min_rate::MinRate;
use crate::term::human_duration;

/// The buffer frames are read through; content larger than it goes around it.
const READ_BUFFER: usize = 64 * 1024;

/// Answers are sent once this many bytes of them wait, whatever else happens.
const ANSWERS_AT_ONCE: usize = 64 * 1024;

/// What a batch's client sends, read through one buffer, and the answers not sent yet.
pub(super) struct Wire<'a> {
    reader: BufReader<Client<'a>>,
    stream: &'a TcpStream,
    /// Answers not sent yet: they go together whenever nothing more has
    /// arrived to read (B9), so that many small files share a write and a
    /// client waiting for an answer always gets it.
    answers: Vec<u8>,
}

impl<'a> Wire<'a> {
    pub(super) fn new(stream: &'a TcpStream, config: &ServeConfig) -> Wire<'a> {
        let client = Client {
            stream,
            idle: config.idle_timeout,
            line_time: config.header_timeout,
            line_deadline: None,
            min_rate: config
                .min_rate()
                .map(|rate| MinRate::new(rate, config.min_rate_window)),
            waited: Duration::ZERO,
            moved: 0,
            timeouts: [None; 2],
        };
        Wire {
            reader: BufReader::with_capacity(READ_BUFFER, client),
            stream,
            answers: Vec::new(),
        }
    }

    /// The next frame; `Ok(None)` when the client closed between frames.
    pub(super) fn frame(&mut self) -> Result<Option<Frame>, String> {
        if self.reader.buffer().is_empty() {
            self.flush()
                .map_err(|e| format!("answering the client: {e}"))?;
        }
        let line = match self.line() {
            Ok(Some(line)) => line,
            Ok(None) => return Ok(None),
            Err(e) => return Err(reading("reading a frame", e)),
        };
        batch::parse(&line)
            .map(Some)
            .map_err(|e| format!("a frame that cannot be read: {e}"))
    }

    /// The hash sent after a file's content (B3).
    pub(super) fn trailer(&mut self) -> Result<String, String> {
        let line = self
            .line()
            .and_then(|line| line.ok_or_else(|| io::ErrorKind::UnexpectedEof.into()))
            .map_err(|e| reading("reading the hash after the content", e))?;
        batch::parse::<Trailer>(&line)
            .map(|t| t.blake3)
            .map_err(|e| format!("the hash after the content: {e}"))
    }

    /// One frame or trailer line: at most [`batch::MAX_LINE`] bytes, whole
    /// within `--header-timeout` of now.
    fn line(&mut self) -> io::Result<Option<Vec<u8>>> {
        let client = self.reader.get_mut();
        client.line_deadline = Some(Instant::now() + client.line_time);
        let line = batch::read_line(self);
        self.reader.get_mut().line_deadline = None;
        line
    }

    /// Reads `n` bytes of content (`what`) and throws them away; false if
    /// the client closed first.
    pub(super) fn skip(&mut self, n: u64, what: &str) -> Result<bool, String> {
        let read = io::copy(&mut self.take(n), &mut io::sink()).map_err(|e| reading(what, e))?;
        Ok(read == n)
    }

    /// Holds `answer`, sending what is held once it is [`ANSWERS_AT_ONCE`].
    pub(super) fn answer(&mut self, answer: &Answer) -> Result<(), String> {
        self.answers.extend_from_slice(&batch::line(answer));
        if self.answers.len() >= ANSWERS_AT_ONCE {
            self.flush()
                .map_err(|e| format!("answering the client: {e}"))?;
        }
        Ok(())
    }

    /// Sends the answers held so far, within the bounds a read has.
    pub(super) fn flush(&mut self) -> io::Result<()> {
        if self.answers.is_empty() {
            return Ok(());
        }
        let sent = self.reader.get_mut().send(&self.answers);
        self.answers.clear();
        sent
    }

    /// What is read already and not taken yet.
    pub(super) fn held(&self) -> &[u8] {
        self.reader.buffer()
    }

    /// The socket itself, to read content from without the buffer (splice),
    /// once [`Wire::held`] is taken: the answers held go first.
    pub(super) fn socket(&mut self) -> io::Result<&'a TcpStream> {
        debug_assert!(self.reader.buffer().is_empty());
        self.flush()?;
        let client = self.reader.get_mut();
        client.set_timeout(Way::Read, client.idle)?;
        Ok(self.stream)
    }
}

/// The client's side of the connection as the server waits for it: each
/// wait bounded by the idle timeout, a line by its deadline, and all of them
/// by the minimum rate: while the server waits for the client (to send
/// frames or content, or to take answers), the bytes it moves either way
/// must reach `--min-rate` over each `--min-rate-window` of waiting.
struct Client<'a> {
    stream: &'a TcpStream,
    idle: Duration,
    /// How long a line may take (`--header-timeout`).
    line_time: Duration,
    /// When the line being read must be whole.
    line_deadline: Option<Instant>,
    /// `--min-rate`, on the clock of [`Client::waited`].
    min_rate: Option<MinRate>,
    /// The time spent waiting for the client, and the bytes it moved.
    waited: Duration,
    moved: u64,
    /// The read and write timeouts the socket has now.
    timeouts: [Option<Duration>; 2],
}

/// Why the server stopped waiting for a batch's client.
#[derive(Debug)]
enum TooLong {
    /// Nothing came for this long.
    Idle(Duration),
    /// It took no answers for this long.
    Deaf(Duration),
    /// A line was not whole by its deadline.
    Line(Duration),
    /// The client moved `got` bytes in `waited` of waiting.
    Slow {
        got: u64,
        waited: Duration,
        rate: u64,
    },
}

impl fmt::Display for TooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TooLong::Idle(limit) => write!(
                f,
                "the client sent nothing for {} (--idle-timeout)",
                human_duration(*limit)
            ),
            TooLong::Deaf(limit) => write!(
                f,
                "the client took no answers for {} (--idle-timeout)",
                human_duration(*limit)
            ),
            TooLong::Line(limit) => write!(
                f,
                "a line not whole within {} (--header-timeout)",
                human_duration(*limit)
            ),
            TooLong::Slow { got, waited, rate } => write!(
                f,
                "client too slow: {} in {} of waiting, under the minimum of {}/s (--min-rate)",
                crate::term::Bytes(*got),
                human_duration(*waited),
                crate::term::Bytes(*rate)
            ),
        }
    }
}

impl std::error::Error for TooLong {}

/// Which way the server waits.
#[derive(Clone, Copy, PartialEq)]
enum Way {
    Read = 0,
    Write = 1,
}

impl Client<'_> {
    /// Sets the socket's timeout for `way`, when it changes.
    fn set_timeout(&mut self, way: Way, timeout: Duration) -> io::Result<()> {
        // Rounded up to whole milliseconds, so that a deadline coming closer
        // does not cost a system call for every read.
        let timeout = Duration::from_millis(timeout.as_millis() as u64 + 1);
        if self.timeouts[way as usize] != Some(timeout) {
            match way {
                Way::Read => self.stream.set_read_timeout(Some(timeout))?,
                Way::Write => self.stream.set_write_timeout(Some(timeout))?,
            }
            self.timeouts[way as usize] = Some(timeout);
        }
        Ok(())
    }

    /// Waits at most until the first bound: nothing moved for the idle
    /// timeout since `began`, the line's deadline, the rate window's end.
    fn wait(&mut self, way: Way, began: Instant) -> io::Result<()> {
        let mut wait = self.idle.saturating_sub(began.elapsed());
        if let Some(deadline) = self.line_deadline.filter(|_| way == Way::Read) {
            wait = wait.min(deadline.saturating_duration_since(Instant::now()));
        }
        if let Some(min_rate) = &self.min_rate {
            // Woken when the window ends, to be judged then.
            wait = wait.min(min_rate.window_left(self.waited));
        }
        // Zero means no timeout to the socket: judged after one more short wait instead.
        self.set_timeout(way, wait.max(Duration::from_millis(1)))
    }

    /// Counts one wait that took since `now` and moved `n` bytes, and judges
    /// the bounds: the rate, then, if nothing moved, the deadline and the idle timeout.
    fn waited(&mut self, way: Way, now: Instant, began: Instant, n: usize) -> io::Result<()> {
        self.waited += now.elapsed();
        self.moved += n as u64;
        if let Some(min_rate) = &mut self.min_rate {
            let rate = min_rate.rate();
            min_rate.check_at(self.moved, self.waited).map_err(|slow| {
                io::Error::other(TooLong::Slow {
                    got: slow.got,
                    waited: slow.window,
                    rate,
                })
            })?;
        }
        if n > 0 {
            return Ok(());
        }
        if way == Way::Read && self.line_deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(io::Error::other(TooLong::Line(self.line_time)));
        }
        if began.elapsed() >= self.idle {
            let why = match way {
                Way::Read => TooLong::Idle(self.idle),
                Way::Write => TooLong::Deaf(self.idle),
            };
            return Err(io::Error::new(io::ErrorKind::TimedOut, why));
        }
        Ok(())
    }

    /// Writes all of `bytes`, within the bounds.
    fn send(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        let mut began = Instant::now();
        while !bytes.is_empty() {
            self.wait(Way::Write, began)?;
            let now = Instant::now();
            match (&*self.stream).write(bytes) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    bytes = &bytes[n..];
                    self.waited(Way::Write, now, began, n)?;
                    began = Instant::now();
                }
                Err(e) if crate::protocol::is_timeout(&e) => {
                    self.waited(Way::Write, now, began, 0)?
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl Read for Client<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let began = Instant::now();
        loop {
            self.wait(Way::Read, began)?;
            let now = Instant::now();
            match (&*self.stream).read(buf) {
                Ok(n) => {
                    self.waited(Way::Read, now, began, n)?;
                    return Ok(n);
                }
                Err(e) if crate::protocol::is_timeout(&e) => {
                    self.waited(Way::Read, now, began, 0)?
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Sending the answers held failed, in the middle of a read.
#[derive(Debug)]
struct Answering(io::Error);

impl fmt::Display for Answering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "answering the client: {}", self.0)
    }
}

impl std::error::Error for Answering {}

/// Why reading `what` failed, in words: a wait for the client to take the
/// answers held is named as such, not as the read it came in.
fn reading(what: &str, e: io::Error) -> String {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<Answering>())
    {
        Some(answering) => answering.to_string(),
        None => format!("{what}: {e}"),
    }
}

impl Wire<'_> {
    /// Sends the answers held before a read that must wait for the client (B9).
    fn flush_before_read(&mut self) -> io::Result<()> {
        if self.reader.buffer().is_empty() {
            self.flush()
                .map_err(|e| io::Error::new(e.kind(), Answering(e)))?;
        }
        Ok(())
    }
}

/// Reads through the buffer; a read that must wait for the client sends the
/// answers held first (B9).
impl Read for Wire<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.flush_before_read()?;
        self.reader.read(buf)
    }
}

impl BufRead for Wire<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.flush_before_read()?;
        self.reader.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        self.reader.consume(amt);
    }
}
