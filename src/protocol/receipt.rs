//! The receipt: what an ftx server says after the last content byte, once the file is in place. Classroom peers never see it.
//!
//! ```text
//! ftx/1 {"status":"saved","saved_as":"notes (1).txt","size":1234}\n
//! ftx/1 {"status":"failed","reason":"the drop folder was removed"}\n
//! ```
//!
//! `ftx/1 `, one JSON object, a newline; at most [`MAX_LEN`] bytes; then the
//! server closes. A classroom client has read its `go ahead` before it sent
//! the first content byte, and has closed or is closing by the time the
//! receipt comes, so it never reads one (an empty file's receipt waits for
//! the client's close). Readers ignore fields they do not know, so later
//! versions can add fields without a new magic.

use serde::{Deserialize, Serialize};

/// What every receipt starts with: the protocol extension and its version.
pub const MAGIC: &[u8] = b"ftx/1 ";

/// The longest receipt a sender reads.
pub const MAX_LEN: usize = 4096;

/// The server's word on one upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Receipt {
    /// In place under `saved_as`, `size` bytes long. `batch`: the highest
    /// batch-mode version the server speaks (PROTOCOL.md B1).
    Saved {
        saved_as: String,
        size: u64,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        batch: Option<u32>,
        /// A token that moves this file into a batch's folder (PROTOCOL.md B4a).
        #[serde(skip_serializing_if = "Option::is_none", default)]
        claim: Option<String>,
    },
    /// Not kept, and why.
    Failed { reason: String },
}

impl Receipt {
    /// The receipt as it goes on the wire, in one write.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = MAGIC.to_vec();
        serde_json::to_writer(&mut bytes, self).expect("receipts serialize");
        bytes.push(b'\n');
        // A receipt must fit what a sender reads; only a reason could make it long.
        if bytes.len() > MAX_LEN {
            if let Receipt::Failed { reason } = self {
                let mut short: String = reason.chars().take(MAX_LEN / 8).collect();
                short.push('…');
                return Receipt::Failed { reason: short }.encode();
            }
        }
        bytes
    }

    /// Reads what a server sent after the content: `None` when it is not a
    /// receipt at all (a classroom server said something of its own), an error
    /// when it claims to be one but cannot be read.
    pub fn decode(bytes: &[u8]) -> Option<Result<Receipt, String>> {
        let body = bytes.strip_prefix(MAGIC)?;
        let Some(line) = body.strip_suffix(b"\n") else {
            return Some(Err("the receipt is cut short".into()));
        };
        Some(serde_json::from_slice(line).map_err(|e| format!("the receipt cannot be read: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_round_trip_and_look_as_documented() {
        let saved = Receipt::Saved {
            saved_as: "notes (1).txt".into(),
            size: 1234,
            batch: Some(1),
            claim: None,
        };
        assert_eq!(
            saved.encode(),
            b"ftx/1 {\"status\":\"saved\",\"saved_as\":\"notes (1).txt\",\"size\":1234,\"batch\":1}\n"
        );
        assert_eq!(Receipt::decode(&saved.encode()), Some(Ok(saved)));
        let failed = Receipt::Failed {
            reason: "disk full".into(),
        };
        assert_eq!(Receipt::decode(&failed.encode()), Some(Ok(failed)));
    }

    #[test]
    fn other_words_are_not_receipts_and_broken_receipts_are_errors() {
        assert_eq!(Receipt::decode(b"File received"), None);
        assert_eq!(Receipt::decode(b""), None);
        assert!(matches!(
            Receipt::decode(b"ftx/1 {\"status\":\"saved\""),
            Some(Err(_))
        ));
        assert!(matches!(
            Receipt::decode(b"ftx/1 {\"status\":\"eaten\"}\n"),
            Some(Err(_))
        ));
        // Fields a later version adds are ignored.
        assert_eq!(
            Receipt::decode(
                b"ftx/1 {\"status\":\"saved\",\"saved_as\":\"a\",\"size\":1,\"blake3\":\"00\"}\n"
            ),
            Some(Ok(Receipt::Saved {
                saved_as: "a".into(),
                size: 1,
                batch: None,
                claim: None
            }))
        );
    }

    #[test]
    fn long_reasons_are_cut_to_fit() {
        let long = Receipt::Failed {
            reason: "x".repeat(10_000),
        };
        let bytes = long.encode();
        assert!(bytes.len() <= MAX_LEN);
        assert!(matches!(
            Receipt::decode(&bytes),
            Some(Ok(Receipt::Failed { .. }))
        ));
    }
}
