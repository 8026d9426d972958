//! Batch mode, version 1 (PROTOCOL.md section 4): the opening, the frames and answers, their lines (bounded in length) and the hash as frames carry it.

use std::io::{self, BufRead, Read};

use serde::{Deserialize, Serialize};

/// What opens a batch: 8 bytes where a size would be, with the top bit set, which no classroom client sends.
pub const MAGIC: [u8; 8] = *b"\xffftx/b1\n";

/// The batch version this build speaks, as receipts announce it.
pub const VERSION: u32 = 1;

/// What follows [`MAGIC`] in the opening message, where a name would be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub batch: u32,
}

/// The opening message: [`MAGIC`] and the hello line, for one write.
pub fn opening() -> Vec<u8> {
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(&line(&Hello { batch: VERSION }));
    bytes
}

/// Files from this size up are received into parts that a later batch can
/// resume (B8); smaller ones are sent whole again, not asked about.
pub const WORTH_RESUMING: u64 = 64 * 1024;

/// The longest frame or answer line.
pub const MAX_LINE: usize = 8192;

/// The most top folders one batch may fill (B10): each holds a descriptor on
/// the server until the batch ends. `ftx send` opens another batch after this many units.
pub const MAX_TOPS: usize = 64;

/// Whether `key` can be a key (B5b, B8): 64 hex digits, as BLAKE3 gives.
/// A frame's key that is anything else is taken as no key.
pub fn is_key(key: &str) -> bool {
    key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit())
}

/// True when a header's size field opens a batch.
pub fn is_batch(size: u64) -> bool {
    size.to_be_bytes() == MAGIC
}

/// A frame from the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Frame {
    /// A file: `size - offset` bytes of content follow the line (B8: the server
    /// holds the first `offset` bytes from an earlier batch).
    File {
        path: String,
        size: u64,
        /// BLAKE3 of the whole file, given before its content.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        blake3: Option<String>,
        /// BLAKE3 of the whole file, given after its content, in a [`Trailer`] line.
        #[serde(skip_serializing_if = "is_false", default)]
        trailer: bool,
        /// Names the part a broken-off batch leaves, for a later one to resume (B8).
        #[serde(skip_serializing_if = "Option::is_none", default)]
        key: Option<String>,
        #[serde(skip_serializing_if = "is_zero", default)]
        offset: u64,
    },
    /// Which of these files does the server hold part of (B8)?
    Ask { ask: Vec<Wanted> },
    /// A folder, made even if no file goes into it.
    Dir { dir: String },
    /// Moves the file a classic upload saved (its receipt's claim token) to `path`.
    Claim { claim: String, path: String },
    /// Makes the top folder `top` now and shares it (B5a); with `join`, uses
    /// the one another batch made and shared instead.
    Top {
        top: String,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        join: Option<String>,
        /// The sender's name for the folder it sends (B5b): a folder it left
        /// unfinished under this key is filled again rather than made anew.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        key: Option<String>,
    },
    /// Nothing more comes.
    End { end: bool },
}

/// The server's answer to one frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Answer {
    Saved {
        path: String,
        saved_as: String,
        size: u64,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        blake3: Option<String>,
        /// B5b: it was saved there before, and nothing was written now.
        #[serde(skip_serializing_if = "is_false", default)]
        already: bool,
    },
    Failed {
        path: String,
        reason: String,
    },
    /// B5a: the top folder a batch fills, and the token that shares it.
    Top {
        top: String,
        saved_as: String,
        token: String,
    },
    /// B8: the bytes held of each file asked about, in order.
    Have {
        have: Vec<u64>,
    },
    End,
    /// The server's first line, its answer to the opening (B2): ready for frames.
    Go {
        batch: u32,
    },
    /// The server ends the batch early: frames not answered yet are not kept (B7).
    Aborted {
        reason: String,
    },
}

/// How a server took a batch opening (B2).
#[derive(Debug, PartialEq, Eq)]
pub enum Welcome {
    /// `{"status":"go","batch":1}`: an ftx server, ready for frames.
    Go,
    /// `go ahead`: the server took the opening for a classic upload, so it is
    /// not ftx (or not this version of it).
    Classic,
    /// Anything else, such as `refused: ...`, as it came (at most a line).
    Other(Vec<u8>),
}

/// Reads the server's answer to a batch opening, a byte at a time so that
/// nothing after it is taken from the stream; `go ahead` is known as soon as
/// its 8 bytes are in, since a classroom server sends nothing more.
pub fn read_welcome<R: Read>(src: &mut R) -> io::Result<Welcome> {
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while got.len() <= MAX_LINE {
        match src.read(&mut byte) {
            Ok(0) => break,
            Ok(_) if byte[0] == b'\n' => {
                return Ok(match parse::<Answer>(&got) {
                    Ok(Answer::Go { batch }) if batch == VERSION => Welcome::Go,
                    _ => Welcome::Other(got),
                });
            }
            Ok(_) => {
                got.push(byte[0]);
                if got == crate::protocol::GO_AHEAD {
                    return Ok(Welcome::Classic);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if got.is_empty() => return Err(e),
            Err(_) => break,
        }
    }
    Ok(Welcome::Other(got))
}

/// A file a batch asks about (B8): the key its part would have, and its size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wanted {
    pub key: String,
    pub size: u64,
}

/// The line after a file's content when its frame said `"trailer":true` (B3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trailer {
    pub blake3: String,
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_false(b: &bool) -> bool {
    !*b
}

/// A value as one line, ready for one write.
pub fn line<T: Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(value).expect("frames serialize");
    bytes.push(b'\n');
    bytes
}

/// Reads one line (without its newline) of at most [`MAX_LINE`] bytes; `None` at the end of the stream.
pub fn read_line<R: BufRead>(src: &mut R) -> io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    let read = src
        .by_ref()
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', &mut line)?;
    if read == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            if line.len() > MAX_LINE {
                "a frame line is too long"
            } else {
                "the stream ended in the middle of a line"
            },
        ));
    }
    line.pop();
    Ok(Some(line))
}

/// Parses one frame line.
pub fn parse<'a, T: Deserialize<'a>>(line: &'a [u8]) -> io::Result<T> {
    serde_json::from_slice(line).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// BLAKE3 as the frames carry it: 64 hex digits.
pub fn hex(hash: &blake3::Hash) -> String {
    hash.to_hex().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_is_a_size_no_classroom_client_sends() {
        let size = u64::from_be_bytes(MAGIC);
        assert!(is_batch(size));
        assert!(size >= 1 << 63);
        assert!(!is_batch(1234));
    }

    #[test]
    fn frames_and_answers_are_lines_of_json() {
        let file = Frame::File {
            path: "photos/a.jpg".into(),
            size: 3,
            blake3: Some("00".into()),
            trailer: false,
            key: None,
            offset: 0,
        };
        assert_eq!(
            line(&file),
            b"{\"path\":\"photos/a.jpg\",\"size\":3,\"blake3\":\"00\"}\n"
        );
        for frame in [
            file,
            Frame::Dir {
                dir: "photos/empty".into(),
            },
            Frame::File {
                path: "a".into(),
                size: 9,
                blake3: None,
                trailer: true,
                key: Some("cd".into()),
                offset: 4,
            },
            Frame::Ask {
                ask: vec![Wanted {
                    key: "ab".into(),
                    size: 9,
                }],
            },
            Frame::End { end: true },
        ] {
            let bytes = line(&frame);
            let mut src = &bytes[..];
            let back: Frame = parse(&read_line(&mut src).unwrap().unwrap()).unwrap();
            assert_eq!(back, frame);
        }
        let saved = Answer::Saved {
            path: "a".into(),
            saved_as: "a (1)".into(),
            size: 1,
            blake3: None,
            already: false,
        };
        assert_eq!(
            line(&saved),
            b"{\"status\":\"saved\",\"path\":\"a\",\"saved_as\":\"a (1)\",\"size\":1}\n"
        );
        assert_eq!(line(&Answer::End), b"{\"status\":\"end\"}\n");
    }

    #[test]
    fn lines_are_bounded_and_whole() {
        let long = vec![b'x'; MAX_LINE + 10];
        assert!(read_line(&mut &long[..]).is_err());
        assert!(read_line(&mut &b"{\"end\":tr"[..]).is_err());
        assert_eq!(read_line(&mut &b""[..]).unwrap(), None);
    }
}
