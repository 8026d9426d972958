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
//! least one name byte are in (see [`HeaderCollector`]). The classroom client
//! sends nothing more until it hears `go ahead`, so nothing else can be mixed in.

pub mod batch;
pub mod hello;
pub mod receipt;

use std::fmt;
use std::io::{self, ErrorKind, Read, Write};

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

/// What a size too large to take most likely is, when a student's client sent
/// it: a text header (`"1234,notes.txt"`) or a little-endian number. `None`
/// when it looks like an honest big-endian size.
pub fn misread_size(header: &Header) -> Option<String> {
    let bytes = header.size.to_be_bytes();
    if bytes.iter().all(|b| (0x20..0x7f).contains(b)) {
        return Some(format!(
            "the first 8 bytes are text (\"{}\"): the size must be a number in 8 bytes, big-endian, \
             e.g. size.to_bytes(8, \"big\") in Python",
            String::from_utf8_lossy(&bytes)
        ));
    }
    let little = u64::from_le_bytes(bytes);
    if little < header.size && little <= 1 << 40 {
        return Some(format!(
            "this looks like a little-endian size ({little} bytes the other way round): \
             send it big-endian, e.g. size.to_bytes(8, \"big\") in Python"
        ));
    }
    None
}

/// Bytes as hex pairs (`00 00 04 00`), for `--trace`; long runs end in `…`.
pub fn hex_dump(bytes: &[u8], max: usize) -> String {
    let shown: Vec<String> = bytes.iter().take(max).map(|b| format!("{b:02x}")).collect();
    let more = if bytes.len() > max { " …" } else { "" };
    format!("{}{more}", shown.join(" "))
}

/// The header as `--trace` shows it: the 8 size bytes and the name bytes, each decoded.
pub fn describe_header(header: &Header) -> [String; 2] {
    [
        format!(
            "size  {}  = {} bytes",
            hex_dump(&header.size.to_be_bytes(), 8),
            header.size
        ),
        format!(
            "name  {}  = \"{}\" ({} bytes)",
            hex_dump(&header.name, 16),
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
        }
    }
}

impl std::error::Error for HeaderError {}

/// True for the errors a socket read timeout produces (the kind differs by platform).
pub fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// Collects a client's first message as it arrives, and says when it is a complete header.
///
/// The name has no terminator: it is everything that arrived with the size.
/// So the header is complete once the 8 size bytes and at least one name byte
/// are in and nothing more is waiting, unless the name so far ends in the
/// middle of a UTF-8 character: the rest of the message is then plainly still
/// on its way. The caller pushes everything that has arrived, then asks.
#[derive(Debug)]
pub struct HeaderCollector {
    message: Vec<u8>,
    max_name: usize,
}

impl HeaderCollector {
    /// A collector that refuses names longer than `max_name` bytes.
    pub fn new(max_name: usize) -> HeaderCollector {
        HeaderCollector {
            message: Vec::new(),
            max_name,
        }
    }

    /// Adds bytes that arrived.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), HeaderError> {
        if self.message.is_empty() {
            self.message.reserve(bytes.len().max(64));
        }
        self.message.extend_from_slice(bytes);
        if self.message.len() > SIZE_LEN + self.max_name {
            Err(HeaderError::NameTooLong { max: self.max_name })
        } else {
            Ok(())
        }
    }

    /// Once everything that has arrived was pushed: the header, if it is
    /// complete. A batch opening (B2) is complete at its line's end.
    pub fn complete(&self) -> Option<Header> {
        if self.message.len() <= SIZE_LEN || ends_mid_character(&self.message[SIZE_LEN..]) {
            return None;
        }
        if self.opening() && !self.opening_whole() {
            return None;
        }
        Header::decode(&self.message).ok()
    }

    /// How many of `arrived` (bytes the socket holds, not pushed yet) belong
    /// to the header: all of them for a classic header (its name is the rest
    /// of the message, P2), those up to the end of the opening's line for a
    /// batch (B2: frames may follow in the same segment; they are the
    /// batch's, to be read by its worker).
    pub fn wanted(&self, arrived: &[u8]) -> usize {
        if self.opening_whole() {
            return 0;
        }
        if !self.may_be_opening() {
            return arrived.len();
        }
        if self.message.len() >= SIZE_LEN {
            // The magic is in: the line goes on to its end.
            return arrived
                .iter()
                .position(|&b| b == b'\n')
                .map_or(arrived.len(), |at| at + 1);
        }
        // What completes the magic (the magic ends in a newline itself), then the line.
        let had = self.message.len();
        let to_magic = (SIZE_LEN - had).min(arrived.len());
        if arrived[..to_magic] != batch::MAGIC[had..had + to_magic] {
            return arrived.len();
        }
        arrived[to_magic..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(arrived.len(), |at| to_magic + at + 1)
    }

    /// Whether what arrived so far may still be a batch opening whose line
    /// is not whole: the start of the magic, or the magic without the end of
    /// its line. Only then must reads stop at a line's end ([`Self::wanted`]).
    pub fn may_be_opening(&self) -> bool {
        let had = self.message.len().min(SIZE_LEN);
        self.message[..had] == batch::MAGIC[..had] && !self.message[had..].contains(&b'\n')
    }

    /// A batch opening, its line whole: nothing after it is the header's.
    pub fn opening_whole(&self) -> bool {
        self.opening() && !self.may_be_opening()
    }

    /// The first 8 bytes are batch mode's magic.
    fn opening(&self) -> bool {
        self.message.len() >= SIZE_LEN && self.message[..SIZE_LEN] == batch::MAGIC
    }

    /// Why there is no header when the client closed now.
    pub fn closed(&self) -> HeaderError {
        HeaderError::Incomplete {
            got: self.message.len(),
        }
    }
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

    /// A batch opening is taken up to its line's end, however it arrives,
    /// and what follows it (frames sent behind it) is left; a classic
    /// header takes all that arrived.
    #[test]
    fn an_opening_is_taken_to_its_line_and_no_further() {
        let opening = batch::opening();
        let mut sent = opening.clone();
        sent.extend_from_slice(b"{\"file\":\"a\"}\n");
        for cut in 1..sent.len() {
            let mut collector = HeaderCollector::new(MAX_RECV_NAME);
            let mut taken = Vec::new();
            for piece in [&sent[..cut], &sent[cut..]] {
                let n = collector.wanted(piece);
                collector.push(&piece[..n]).unwrap();
                taken.extend_from_slice(&piece[..n]);
                if n < piece.len() || collector.complete().is_some() {
                    break;
                }
            }
            assert_eq!(taken, opening, "cut at {cut}");
            let header = collector.complete().expect("complete");
            assert!(batch::is_batch(header.size));
            assert_eq!(collector.wanted(b"more\n"), 0, "cut at {cut}");
        }
        // Half an opening is not a header yet.
        let mut collector = HeaderCollector::new(MAX_RECV_NAME);
        collector.push(&opening[..12]).unwrap();
        assert!(collector.complete().is_none());
        // A classic header takes everything, newlines in its name included.
        let collector = HeaderCollector::new(MAX_RECV_NAME);
        let classic = [&5u64.to_be_bytes()[..], b"a\nb.txt"].concat();
        assert_eq!(collector.wanted(&classic), classic.len());
    }

    /// Feeds a message in pieces, asking after each one whether the header is complete,
    /// as the server does after each read of everything that had arrived.
    fn collect(pieces: &[&[u8]], max_name: usize) -> Result<Option<Header>, HeaderError> {
        let mut collector = HeaderCollector::new(max_name);
        for piece in pieces {
            collector.push(piece)?;
            if let Some(header) = collector.complete() {
                return Ok(Some(header));
            }
        }
        Ok(None)
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
        assert_eq!(
            collect(&[&sent.encode()], MAX_RECV_NAME).unwrap(),
            Some(sent)
        );
    }

    #[test]
    fn waits_for_the_size_and_a_name_byte() {
        let sent = header(5_000_000_000, "lecture-notes.pdf");
        let bytes = sent.encode();
        // Nothing is complete until a name byte is in; then it is whatever arrived.
        assert_eq!(
            collect(&[&bytes[..3], &bytes[3..8]], MAX_RECV_NAME).unwrap(),
            None
        );
        assert_eq!(
            collect(&[&bytes[..3], &bytes[3..8], &bytes[8..]], MAX_RECV_NAME).unwrap(),
            Some(sent)
        );
    }

    #[test]
    fn waits_for_the_rest_of_a_split_character() {
        let sent = header(3, "résumé.txt");
        let bytes = sent.encode();
        // Cut inside the two-byte 'é': the first piece alone is not a header.
        let cut = SIZE_LEN + 2;
        assert_eq!(collect(&[&bytes[..cut]], MAX_RECV_NAME).unwrap(), None);
        assert_eq!(
            collect(&[&bytes[..cut], &bytes[cut..]], MAX_RECV_NAME).unwrap(),
            Some(sent)
        );
    }

    #[test]
    fn short_headers_are_refused() {
        let mut collector = HeaderCollector::new(10);
        assert!(matches!(
            collector.closed(),
            HeaderError::Incomplete { got: 0 }
        ));
        collector.push(b"12345").unwrap();
        assert_eq!(
            collector.closed().to_string(),
            "client closed after 5 header bytes (a header is 8 size bytes and a name)"
        );
        collector.push(b"678").unwrap();
        assert_eq!(collector.complete(), None, "a size without a name");
    }

    #[test]
    fn overlong_names_are_refused() {
        let long = header(1, &"n".repeat(11)).encode();
        assert!(matches!(
            collect(&[&long], 10),
            Err(HeaderError::NameTooLong { max: 10 })
        ));
    }

    #[test]
    fn reply_must_be_exactly_go_ahead() {
        assert!(read_reply(&mut &b"go ahead"[..]).is_ok());
        let mut pieces = std::io::Read::chain(&b"go "[..], &b"ahead"[..]);
        assert!(read_reply(&mut pieces).is_ok());
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
        /// Any bytes, cut anywhere: a header once the size and a name byte are in
        /// (and no character is cut), the whole message at the end, or a clear refusal.
        #[test]
        fn any_first_message_parses_or_is_refused(
            message in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            cuts in proptest::collection::vec(0usize..200, 0..6),
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().filter(|&c| c < message.len()).collect();
            cuts.sort_unstable();
            cuts.dedup();
            let mut collector = HeaderCollector::new(100);
            let mut start = 0;
            for cut in cuts.into_iter().chain([message.len()]) {
                match collector.push(&message[start..cut]) {
                    Ok(()) => {}
                    Err(HeaderError::NameTooLong { max }) => {
                        proptest::prop_assert_eq!(max, 100);
                        proptest::prop_assert!(message.len() > SIZE_LEN + 100);
                        return Ok(());
                    }
                    Err(e) => proptest::prop_assert!(false, "unexpected error {e}"),
                }
                start = cut;
                if let Some(header) = collector.complete() {
                    // Complete early: what arrived so far is a prefix of the message.
                    proptest::prop_assert!(message.starts_with(&header.encode()));
                }
            }
            match collector.complete() {
                Some(header) => proptest::prop_assert_eq!(header.encode(), message),
                None => proptest::prop_assert!(
                    message.len() <= SIZE_LEN || ends_mid_character(&message[SIZE_LEN..])
                ),
            }
        }
    }

    #[test]
    fn sizes_that_are_text_or_little_endian_are_recognised() {
        let text = Header::decode(b"1234,notes.txt").unwrap();
        assert!(misread_size(&text)
            .unwrap()
            .contains("the first 8 bytes are text (\"1234,not\")"));
        let mut little = 100u64.to_le_bytes().to_vec();
        little.extend_from_slice(b"a.txt");
        let little = Header::decode(&little).unwrap();
        assert!(misread_size(&little)
            .unwrap()
            .contains("little-endian size (100 bytes"));
        assert_eq!(misread_size(&header(5 << 30, "big.iso")), None);
        assert_eq!(misread_size(&header(u64::MAX, "x")), None);
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
