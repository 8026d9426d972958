//! A batch connection as the server reads and answers it: the one reader of its frame lines, trailers and content, and the answers it holds until nothing more has arrived to read (PROTOCOL.md B3, B4, B9).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;

use crate::protocol::batch::{self, Answer, Frame, Trailer};

/// The buffer frames are read through; content larger than it goes around it.
const READ_BUFFER: usize = 64 * 1024;

/// Answers are sent once this many bytes of them wait, whatever else happens.
const ANSWERS_AT_ONCE: usize = 64 * 1024;

/// What a batch's client sends, read through one buffer, and the answers not sent yet.
pub(super) struct Wire<'a> {
    reader: BufReader<&'a TcpStream>,
    stream: &'a TcpStream,
    /// Answers not sent yet: they go together whenever nothing more has
    /// arrived to read (B9), so that many small files share a write and a
    /// client waiting for an answer always gets it.
    answers: Vec<u8>,
}

impl<'a> Wire<'a> {
    pub(super) fn new(stream: &'a TcpStream) -> Wire<'a> {
        Wire {
            reader: BufReader::with_capacity(READ_BUFFER, stream),
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
        let line = match batch::read_line(self) {
            Ok(Some(line)) => line,
            Ok(None) => return Ok(None),
            Err(e) => return Err(format!("reading a frame: {e}")),
        };
        batch::parse(&line)
            .map(Some)
            .map_err(|e| format!("a frame that cannot be read: {e}"))
    }

    /// The hash sent after a file's content (B3).
    pub(super) fn trailer(&mut self) -> Result<String, String> {
        let line = batch::read_line(self)
            .and_then(|line| line.ok_or_else(|| io::ErrorKind::UnexpectedEof.into()))
            .map_err(|e| format!("reading the hash after the content: {e}"))?;
        batch::parse::<Trailer>(&line)
            .map(|t| t.blake3)
            .map_err(|e| format!("the hash after the content: {e}"))
    }

    /// Reads `n` bytes of content and throws them away; false if the client closed first.
    pub(super) fn skip(&mut self, n: u64) -> io::Result<bool> {
        let read = io::copy(&mut self.take(n), &mut io::sink())?;
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

    /// Sends the answers held so far.
    pub(super) fn flush(&mut self) -> io::Result<()> {
        if self.answers.is_empty() {
            return Ok(());
        }
        let sent = self.stream.write_all(&self.answers);
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
        Ok(self.stream)
    }
}

/// Reads through the buffer; a read that must wait for the client sends the
/// answers held first (B9).
impl Read for Wire<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.reader.buffer().is_empty() {
            self.flush()?;
        }
        self.reader.read(buf)
    }
}

impl BufRead for Wire<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.reader.buffer().is_empty() {
            self.flush()?;
        }
        self.reader.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        self.reader.consume(amt);
    }
}
