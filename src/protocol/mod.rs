//! The classroom protocol on the wire: the header, the `go ahead` reply, how each side reads them, and ftx's receipt.
//!
//! ```text
//! client                                   server
//!   | --- SIZE (8 bytes, big-endian) + NAME --> |   one write
//!   | <---------------------------- go ahead -- |   exactly 8 bytes
//!   | --- SIZE bytes of content --------------> |
//!   | --- close ------------------------------> |   the server closes too
//! ```
//!
//! The name has no length prefix and no terminator: it is the rest of the
//! client's first message. TCP keeps no message boundaries, so the server
//! takes the name to be everything that has arrived once the size and at
//! least one name byte are in (see [`read_header`]). The classroom client
//! sends nothing more until it hears `go ahead`, so nothing else can be mixed in.

pub mod receipt;

use std::fmt;
use std::io::{self, ErrorKind, Read, Write};
use std::net::TcpStream;

/// The port classroom programs use when none is given.
pub const DEFAULT_PORT: u16 = 12000;

/// Length of the size field that opens every upload.
pub const SIZE_LEN: usize = 8;

/// The server's only message: these 8 ASCII bytes, in one write, nothing more.
pub const GO_AHEAD: &[u8; 8] = b"go ahead";

/// How an ftx server starts the reply that replaces `go ahead` when it refuses an
/// upload; the reason follows. Classroom clients see a bad response and stop,
/// as they must; ftx shows the reason.
pub const REFUSED: &str = "refused: ";

/// The most name bytes ftx sends. Classroom servers read the whole header with
/// one `recv(1024)`, so a longer name would reach them cut short.
pub const MAX_SEND_NAME: usize = 1024 - SIZE_LEN;

/// The most name bytes `ftx serve` accepts before it drops the connection.
pub const MAX_RECV_NAME: usize = 4096;

/// What opens an upload: how many content bytes follow and the name the client gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Number of content bytes the client will send after `go ahead`.
    pub size: u64,
    /// The name exactly as sent: untrusted bytes, not necessarily UTF-8.
    pub name: Vec<u8>,
}

impl Header {
    /// The header as it goes on the wire, ready for a single write.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(SIZE_LEN + self.name.len());
        bytes.extend_from_slice(&self.size.to_be_bytes());
        bytes.extend_from_slice(&self.name);
        bytes
    }

    /// Sends the header in one write, as classroom servers expect.
    pub fn write_to<W: Write>(&self, out: &mut W) -> io::Result<()> {
        out.write_all(&self.encode())?;
        out.flush()
    }

    /// Splits a complete first message into size and name.
    pub fn decode(message: &[u8]) -> Result<Header, HeaderError> {
        if message.len() <= SIZE_LEN {
            return Err(HeaderError::Incomplete { got: message.len() });
        }
        let (size, name) = message.split_at(SIZE_LEN);
        let size = u64::from_be_bytes(size.try_into().expect("split at SIZE_LEN"));
        Ok(Header {
            size,
            name: name.to_vec(),
        })
    }
}

/// Bytes as hex pairs (`00 00 04 00`), for `--trace`; long runs end in `…`.
pub fn hex(bytes: &[u8], max: usize) -> String {
    let shown: Vec<String> = bytes.iter().take(max).map(|b| format!("{b:02x}")).collect();
    let more = if bytes.len() > max { " …" } else { "" };
    format!("{}{more}", shown.join(" "))
}

/// The header as `--trace` shows it: the 8 size bytes and the name bytes, each decoded.
pub fn describe_header(header: &Header) -> [String; 2] {
    [
        format!(
            "size  {}  = {} bytes",
            hex(&header.size.to_be_bytes(), 8),
            header.size
        ),
        format!(
            "name  {}  = \"{}\" ({} bytes)",
            hex(&header.name, 16),
            crate::names::escape_for_terminal(&header.name),
            header.name.len()
        ),
    ]
}

/// Why a server could not read a header.
#[derive(Debug)]
pub enum HeaderError {
    /// The client closed before the size and a name had arrived.
    Incomplete { got: usize },
    /// The name is longer than the server accepts.
    NameTooLong { max: usize },
    /// The connection failed or went quiet for too long.
    Io(io::Error),
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::Incomplete { got: 0 } => {
                write!(f, "client closed without sending a header")
            }
            HeaderError::Incomplete { got } => write!(
                f,
                "client closed after {got} header bytes (a header is 8 size bytes and a name)"
            ),
            HeaderError::NameTooLong { max } => write!(f, "name longer than {max} bytes"),
            HeaderError::Io(e) if is_timeout(e) => {
                write!(f, "header not complete before the idle timeout")
            }
            HeaderError::Io(e) => write!(f, "reading the header: {e}"),
        }
    }
}

impl std::error::Error for HeaderError {}

/// True for the errors a socket read timeout produces (the kind differs by platform).
pub fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// A byte source that can tell what has already arrived from what is still to come.
pub trait Incoming: Read {
    /// Reads bytes that have already arrived, without waiting.
    /// `Ok(None)` means nothing is waiting right now; `Ok(Some(0))` means the peer closed.
    fn read_arrived(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>>;
}

impl Incoming for &TcpStream {
    fn read_arrived(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        use rustix::io::Errno;
        // One recv(MSG_DONTWAIT) instead of switching the socket to non-blocking and back.
        loop {
            match rustix::net::recv(*self, &mut *buf, rustix::net::RecvFlags::DONTWAIT) {
                Ok((n, _)) => return Ok(Some(n)),
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Reads the client's first message and splits it into size and name.
///
/// Blocks (under the source's own read timeout) until the 8 size bytes and at
/// least one name byte are in, then takes whatever else has already arrived.
/// If the name so far ends in the middle of a UTF-8 character, the rest of the
/// message is plainly still on its way, so it waits for it.
pub fn read_header<R: Incoming>(src: &mut R, max_name: usize) -> Result<Header, HeaderError> {
    let mut message = Vec::with_capacity(256);
    let mut chunk = [0u8; 2048];
    let limit = SIZE_LEN + max_name;
    let keep = |message: &mut Vec<u8>, bytes: &[u8]| {
        message.extend_from_slice(bytes);
        if message.len() > limit {
            Err(HeaderError::NameTooLong { max: max_name })
        } else {
            Ok(())
        }
    };

    while message.len() <= SIZE_LEN {
        match src.read(&mut chunk) {
            Ok(0) => return Err(HeaderError::Incomplete { got: message.len() }),
            Ok(n) => keep(&mut message, &chunk[..n])?,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(HeaderError::Io(e)),
        }
    }
    loop {
        match src.read_arrived(&mut chunk) {
            Ok(Some(0)) => break,
            Ok(Some(n)) => keep(&mut message, &chunk[..n])?,
            Ok(None) if ends_mid_character(&message[SIZE_LEN..]) => match src.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => keep(&mut message, &chunk[..n])?,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(HeaderError::Io(e)),
            },
            Ok(None) => break,
            Err(e) => return Err(HeaderError::Io(e)),
        }
    }
    Header::decode(&message)
}

/// True when the bytes end with the first part of a UTF-8 character.
fn ends_mid_character(name: &[u8]) -> bool {
    let tail = &name[name.len().saturating_sub(3)..];
    (0..tail.len()).any(|start| {
        matches!(std::str::from_utf8(&tail[start..]), Err(e) if e.valid_up_to() == 0 && e.error_len().is_none())
    })
}

/// The server's reply was not `go ahead`.
#[derive(Debug)]
pub struct BadReply {
    /// What the server sent instead (at most 8 bytes), possibly nothing.
    pub got: Vec<u8>,
}

impl fmt::Display for BadReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(reason) = self.got.strip_prefix(REFUSED.as_bytes()) {
            write!(
                f,
                "the server refused it: {}",
                crate::names::escape_for_terminal(reason)
            )
        } else if self.got.is_empty() {
            write!(
                f,
                "bad server response: it closed the connection instead of saying \"go ahead\""
            )
        } else {
            write!(
                f,
                "bad server response: expected \"go ahead\", got \"{}\"",
                crate::names::escape_for_terminal(&self.got)
            )
        }
    }
}

impl std::error::Error for BadReply {}

/// Most bytes of a wrong reply kept to show the user.
const MAX_SHOWN_REPLY: u64 = 512;

impl BadReply {
    /// Adds what else the server says, up to its close (at most 512 bytes), so
    /// that the error shows the whole reason. The caller bounds the wait with a
    /// read timeout; a failed read just ends the message.
    pub fn read_rest<R: Read>(&mut self, src: &mut R) {
        if !self.got.is_empty() {
            let _ = src.take(MAX_SHOWN_REPLY).read_to_end(&mut self.got);
        }
    }
}

/// Why the reply to a header was not `go ahead`.
#[derive(Debug)]
pub enum ReplyError {
    /// The server said something else, or closed.
    Bad(BadReply),
    /// The connection failed while waiting.
    Io(io::Error),
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyError::Bad(bad) => bad.fmt(f),
            ReplyError::Io(e) => write!(f, "waiting for the server's reply: {e}"),
        }
    }
}

impl std::error::Error for ReplyError {}

/// Waits for the server's reply and checks that it is exactly `go ahead`.
/// Stops reading at the first byte that cannot be part of it.
pub fn read_reply<R: Read>(src: &mut R) -> Result<(), ReplyError> {
    let mut got = Vec::with_capacity(GO_AHEAD.len());
    let mut rest = [0u8; GO_AHEAD.len()];
    while got.len() < GO_AHEAD.len() {
        let want = GO_AHEAD.len() - got.len();
        match src.read(&mut rest[..want]) {
            Ok(0) => break,
            Ok(n) => {
                got.extend_from_slice(&rest[..n]);
                if !GO_AHEAD.starts_with(&got) {
                    break;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(ReplyError::Io(e)),
        }
    }
    if got == GO_AHEAD {
        Ok(())
    } else {
        Err(ReplyError::Bad(BadReply { got }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Delivers a message in pieces; pieces after `arrived` have not reached us yet
    /// when the reader asks what has already arrived.
    struct Pieces {
        pieces: Vec<Vec<u8>>,
        next: usize,
        arrived: usize,
    }

    impl Pieces {
        fn new(pieces: &[&[u8]], arrived: usize) -> Pieces {
            Pieces {
                pieces: pieces.iter().map(|p| p.to_vec()).collect(),
                next: 0,
                arrived,
            }
        }
    }

    impl Read for Pieces {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let Some(piece) = self.pieces.get(self.next) else {
                return Ok(0);
            };
            assert!(buf.len() >= piece.len(), "test pieces fit one read");
            buf[..piece.len()].copy_from_slice(piece);
            self.next += 1;
            self.arrived = self.arrived.max(self.next);
            Ok(piece.len())
        }
    }

    impl Incoming for Pieces {
        fn read_arrived(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
            if self.next < self.arrived || self.next >= self.pieces.len() {
                self.read(buf).map(Some)
            } else {
                Ok(None)
            }
        }
    }

    fn header(size: u64, name: &str) -> Header {
        Header {
            size,
            name: name.as_bytes().to_vec(),
        }
    }

    #[test]
    fn encodes_size_big_endian_then_name() {
        let bytes = header(0x0102, "a.txt").encode();
        assert_eq!(bytes, b"\0\0\0\0\0\0\x01\x02a.txt");
    }

    #[test]
    fn sizes_above_4_gib_round_trip() {
        let big = header(5 * 1024 * 1024 * 1024 + 7, "big.iso");
        let bytes = big.encode();
        assert_eq!(&bytes[..8], &[0, 0, 0, 1, 64, 0, 0, 7]);
        assert_eq!(Header::decode(&bytes).unwrap(), big);
        let max = header(u64::MAX, "x");
        assert_eq!(Header::decode(&max.encode()).unwrap(), max);
    }

    #[test]
    fn reads_header_sent_in_one_piece() {
        let sent = header(42, "notes.txt");
        let mut src = Pieces::new(&[&sent.encode()], 1);
        assert_eq!(read_header(&mut src, MAX_RECV_NAME).unwrap(), sent);
    }

    #[test]
    fn reads_name_split_across_reads() {
        let sent = header(5_000_000_000, "lecture-notes.pdf");
        let bytes = sent.encode();
        // Size split in two, name split in three; all of it has arrived.
        let pieces: Vec<&[u8]> = vec![
            &bytes[..3],
            &bytes[3..8],
            &bytes[8..12],
            &bytes[12..15],
            &bytes[15..],
        ];
        let mut src = Pieces::new(&pieces, pieces.len());
        assert_eq!(read_header(&mut src, MAX_RECV_NAME).unwrap(), sent);
    }

    #[test]
    fn waits_for_the_rest_of_a_split_character() {
        let sent = header(3, "résumé.txt");
        let bytes = sent.encode();
        // Cut inside the two-byte 'é': the second piece has not arrived when the first is read.
        let cut = SIZE_LEN + 2;
        let mut src = Pieces::new(&[&bytes[..cut], &bytes[cut..]], 1);
        assert_eq!(read_header(&mut src, MAX_RECV_NAME).unwrap(), sent);
    }

    #[test]
    fn name_ends_where_the_first_message_ends() {
        let first = header(4, "a.txt").encode();
        // The content (sent only after go ahead) has not arrived while the header is read.
        let mut src = Pieces::new(&[&first, b"data"], 1);
        assert_eq!(
            read_header(&mut src, MAX_RECV_NAME).unwrap(),
            header(4, "a.txt")
        );
    }

    #[test]
    fn short_headers_are_refused() {
        let mut nothing = Pieces::new(&[], 0);
        assert!(matches!(
            read_header(&mut nothing, 10),
            Err(HeaderError::Incomplete { got: 0 })
        ));
        let mut only_size = Pieces::new(&[&[0, 0, 0, 0, 0, 0, 0, 1]], 1);
        assert!(matches!(
            read_header(&mut only_size, 10),
            Err(HeaderError::Incomplete { got: 8 })
        ));
        let mut five = Pieces::new(&[b"12345"], 1);
        let err = read_header(&mut five, 10).unwrap_err();
        assert_eq!(
            err.to_string(),
            "client closed after 5 header bytes (a header is 8 size bytes and a name)"
        );
    }

    #[test]
    fn overlong_names_are_refused() {
        let long = header(1, &"n".repeat(11)).encode();
        let mut src = Pieces::new(&[&long], 1);
        assert!(matches!(
            read_header(&mut src, 10),
            Err(HeaderError::NameTooLong { max: 10 })
        ));
    }

    #[test]
    fn reply_must_be_exactly_go_ahead() {
        assert!(read_reply(&mut &b"go ahead"[..]).is_ok());
        let pieces = Pieces::new(&[b"go ", b"ahead"], 2);
        assert!(read_reply(&mut { pieces }).is_ok());
        let mut src = &b"no way\x1b[2J"[..];
        let Err(ReplyError::Bad(mut bad)) = read_reply(&mut src) else {
            panic!("accepted a bad reply")
        };
        assert_eq!(
            bad.to_string(),
            "bad server response: expected \"go ahead\", got \"no way\\x1b[\""
        );
        bad.read_rest(&mut src);
        assert_eq!(
            bad.to_string(),
            "bad server response: expected \"go ahead\", got \"no way\\x1b[2J\""
        );
        let mut src = &b"refused: too large"[..];
        let Err(ReplyError::Bad(mut refused)) = read_reply(&mut src) else {
            panic!("accepted a refusal")
        };
        refused.read_rest(&mut src);
        assert_eq!(refused.to_string(), "the server refused it: too large");
        let closed = read_reply(&mut &b""[..]).unwrap_err();
        assert!(closed.to_string().contains("closed the connection"));
    }

    proptest::proptest! {
        /// Any bytes, cut anywhere, all arrived: the whole message is the header, or a clear refusal.
        #[test]
        fn any_first_message_parses_or_is_refused(
            message in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            cuts in proptest::collection::vec(0usize..200, 0..6),
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().filter(|&c| c < message.len()).collect();
            cuts.sort_unstable();
            cuts.dedup();
            let mut pieces: Vec<&[u8]> = Vec::new();
            let mut start = 0;
            for cut in cuts.into_iter().chain([message.len()]) {
                if cut > start {
                    pieces.push(&message[start..cut]);
                    start = cut;
                }
            }
            let arrived = pieces.len();
            let mut src = Pieces::new(&pieces, arrived);
            match read_header(&mut src, 100) {
                Ok(header) => {
                    proptest::prop_assert!(message.len() > SIZE_LEN && message.len() <= SIZE_LEN + 100);
                    proptest::prop_assert_eq!(header.encode(), message);
                }
                Err(HeaderError::Incomplete { got }) => {
                    proptest::prop_assert!(message.len() <= SIZE_LEN);
                    proptest::prop_assert_eq!(got, message.len());
                }
                Err(HeaderError::NameTooLong { max }) => {
                    proptest::prop_assert_eq!(max, 100);
                    proptest::prop_assert!(message.len() > SIZE_LEN + 100);
                }
                Err(HeaderError::Io(e)) => proptest::prop_assert!(false, "unexpected I/O error {e}"),
            }
        }
    }

    #[test]
    fn detects_names_cut_inside_a_character() {
        assert!(ends_mid_character("é".as_bytes().split_at(1).0));
        assert!(ends_mid_character(&"a€".as_bytes()[..3]));
        assert!(!ends_mid_character("é".as_bytes()));
        assert!(!ends_mid_character(b"plain"));
        assert!(!ends_mid_character(b"bad\xff"));
    }
}
