//! The hello (PROTOCOL.md section 5): a datagram to the UDP port with the TCP port's number, that an ftx server answers and a classroom server never sees, so that a sender knows the server before its first byte.
//!
//! A question is [`QUESTION_LEN`] bytes: [`QUESTION`], 16 random bytes (the
//! nonce), zeros. An answer is [`ANSWER`], the same nonce, then one JSON line
//! ([`Said`]); never longer than the question it answers, so that nobody can
//! use a server to send a third party more than they sent it.

use serde::{Deserialize, Serialize};

/// How a question starts: a size no classroom client sends (its top bit set), then `ftx/h1`.
pub const QUESTION: &[u8; 8] = b"\xffftx/h1\n";

/// How an answer starts.
pub const ANSWER: &[u8; 8] = b"\xffftx/H1\n";

/// Bytes of the nonce a question carries and its answer echoes.
pub const NONCE_LEN: usize = 16;

/// How long a question is: room for any answer.
pub const QUESTION_LEN: usize = 256;

/// The shortest question a server answers (an answer must fit in it).
pub const SHORTEST_QUESTION: usize = 128;

/// The longest server name an answer carries, in bytes.
pub const MAX_NAME: usize = 64;

/// A question's nonce.
pub type Nonce = [u8; NONCE_LEN];

/// What a server says of itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Said {
    /// The version of this hello.
    pub ftx: u32,
    /// The highest batch-mode version it speaks (section 4).
    pub batch: u32,
    /// Its name (`ftx serve --name`, else the host name): untrusted text.
    pub name: String,
    /// Its TCP port.
    pub port: u16,
    pub workers: usize,
    /// Workers free now.
    pub free: usize,
    /// This run of the server (random at its start): one server answering
    /// on several of its addresses is seen as one.
    pub id: String,
}

impl Said {
    /// What it said, in words for `--trace` (its name escaped).
    pub fn in_words(&self) -> String {
        format!(
            "ftx hello {}, batch {}, TCP port {}, name \"{}\", {} of {} workers free",
            self.ftx,
            self.batch,
            self.port,
            crate::names::escape_for_terminal(self.name.as_bytes()),
            self.free,
            self.workers
        )
    }
}

/// A question with `nonce`.
pub fn question(nonce: &Nonce) -> [u8; QUESTION_LEN] {
    let mut bytes = [0u8; QUESTION_LEN];
    bytes[..8].copy_from_slice(QUESTION);
    bytes[8..8 + NONCE_LEN].copy_from_slice(nonce);
    bytes
}

/// The nonce of a question, if `datagram` is one a server answers.
pub fn nonce_of(datagram: &[u8]) -> Option<Nonce> {
    if datagram.len() < SHORTEST_QUESTION || !datagram.starts_with(QUESTION) {
        return None;
    }
    datagram[8..8 + NONCE_LEN].try_into().ok()
}

/// The answer to a question of `room` bytes with `nonce`; the name is cut
/// (on a character boundary) until the answer fits. `None` if it cannot.
pub fn answer(nonce: &Nonce, said: &Said, room: usize) -> Option<Vec<u8>> {
    let mut said = said.clone();
    let mut cut = said.name.len().min(MAX_NAME);
    loop {
        while !said.name.is_char_boundary(cut) {
            cut -= 1;
        }
        said.name.truncate(cut);
        let mut bytes = ANSWER.to_vec();
        bytes.extend_from_slice(nonce);
        bytes.extend_from_slice(&serde_json::to_vec(&said).ok()?);
        bytes.push(b'\n');
        if bytes.len() <= room {
            return Some(bytes);
        }
        if cut == 0 {
            return None;
        }
        cut -= 1;
    }
}

/// What an answer to the question with `nonce` says; `None` for anything
/// else (another nonce: an answer to someone else, or forged blind).
pub fn read_answer(datagram: &[u8], nonce: &Nonce) -> Option<Said> {
    let rest = datagram.strip_prefix(ANSWER)?;
    let (got, line) = rest.split_at_checked(NONCE_LEN)?;
    if got != nonce {
        return None;
    }
    serde_json::from_slice(line.trim_ascii_end()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn said(name: &str) -> Said {
        Said {
            ftx: 1,
            batch: 1,
            name: name.into(),
            port: 12000,
            workers: 8,
            free: 3,
            id: "ab".repeat(8),
        }
    }

    #[test]
    fn an_answer_echoes_the_nonce_and_fits_in_its_question() {
        let nonce = [7u8; NONCE_LEN];
        let asked = question(&nonce);
        assert_eq!(nonce_of(&asked), Some(nonce));
        let bytes = answer(&nonce, &said("room-101"), asked.len()).unwrap();
        assert!(bytes.len() <= asked.len());
        assert_eq!(read_answer(&bytes, &nonce), Some(said("room-101")));
        assert_eq!(
            read_answer(&bytes, &[8u8; NONCE_LEN]),
            None,
            "another nonce"
        );
        // A long name is cut to fit the shortest question answered.
        let long = "é".repeat(100);
        let bytes = answer(&nonce, &said(&long), SHORTEST_QUESTION).unwrap();
        assert!(bytes.len() <= SHORTEST_QUESTION);
        let got = read_answer(&bytes, &nonce).unwrap();
        assert!(long.starts_with(&got.name), "{got:?}");
        assert!(!got.name.is_empty() && got.name.len() <= 40, "{got:?}");
        // Too short to answer, or not a question.
        assert_eq!(nonce_of(&asked[..SHORTEST_QUESTION - 1]), None);
        assert_eq!(nonce_of(&[0u8; QUESTION_LEN]), None);
    }
}
