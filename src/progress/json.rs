//! `--json`: one JSON object per line on stdout, with stable field names (the schema is in README).

use std::io::Write;
use std::time::Duration;

use serde::Serialize;

/// One event as written to stdout. Absent fields are left out, not null.
#[derive(Debug, Default, Serialize)]
pub struct Record<'a> {
    /// `listening`, `queued`, `started`, `progress`, `finished`, `failed`, `trace`, `notice`, `summary`.
    pub event: &'a str,
    /// Seconds since the command started.
    pub t: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// serve: the client's address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// serve: the name as the client sent it (escaped); send: the file as given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    /// serve: the name the file was saved under in the drop folder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saved_as: Option<&'a str>,
    /// The size the client announced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Content bytes moved so far (progress) or in all (finished).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Why an upload failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
    /// trace and notice lines.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<&'a str>,
    /// listening: where, into which folder, with how many workers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dir: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
    /// summary: how many uploads ended each way.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub done: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed: Option<u64>,
}

/// Milliseconds, for `duration_ms`.
pub fn millis(d: Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX)) as u64
}

/// Writes one record as a line on stdout. A closed stdout (`| head`) is not an error.
pub fn emit(record: &Record<'_>) {
    let mut out = std::io::stdout().lock();
    if serde_json::to_writer(&mut out, record).is_ok() {
        let _ = out.write_all(b"\n");
        let _ = out.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_text_stays_valid_escaped_json() {
        let name = "evil\u{1b}[2J\"quoted\"\\\n.txt";
        let record = Record {
            event: "started",
            name: Some(name),
            size: Some(5),
            ..Record::default()
        };
        let line = serde_json::to_string(&record).unwrap();
        assert!(!line.contains('\u{1b}') && !line.contains('\n'), "{line}");
        let back: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(back["name"], name);
        assert_eq!(back["size"], 5);
        assert!(back.get("reason").is_none(), "absent fields are left out");
    }
}
