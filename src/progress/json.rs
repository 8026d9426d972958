//! `--json`: one JSON object per line on stdout, one tagged variant per event, so the schema is checked by the compiler (and README is tested against it).

use std::io::Write;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{Event, Live, Sink, Summary, Tracked};
use crate::outcome::Kept;

/// How often `--json` reports the bytes of the uploads in progress.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// One line: the event and when it happened.
#[derive(Debug, Serialize)]
struct Line<'a> {
    #[serde(flatten)]
    record: Record<'a>,
    /// Seconds since the command started, to the millisecond.
    t: f64,
}

/// Who an event is about. Absent fields are left out, not null.
#[derive(Debug, Default, Serialize)]
struct Who<'a> {
    /// serve: the client's `IP:PORT`.
    #[serde(skip_serializing_if = "Option::is_none")]
    client: Option<String>,
    /// The name on the wire, escaped (serve: as the client sent it; send: as ftx sends it).
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    /// send: the file as given on the command line.
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<&'a str>,
}

impl<'a> Who<'a> {
    fn of(upload: &'a Tracked) -> Who<'a> {
        Who {
            client: upload.peer.map(|p| p.to_string()),
            name: upload.name.as_deref(),
            path: upload.path.as_deref(),
        }
    }
}

/// Every event `--json` writes.
#[derive(Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum Record<'a> {
    /// serve is ready.
    Listening {
        address: String,
        dir: &'a str,
        workers: usize,
    },
    /// serve: a client connected; its header is still coming.
    Connected { id: u64, client: String },
    /// serve: a header came in, the upload waits for a worker; send: a file's turn came.
    Queued {
        id: u64,
        #[serde(flatten)]
        who: Who<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        size: Option<u64>,
    },
    /// `go ahead` was said (serve) or heard (send).
    Started {
        id: u64,
        #[serde(flatten)]
        who: Who<'a>,
        size: u64,
    },
    /// Every 0.5 s per upload in progress.
    Progress {
        id: u64,
        #[serde(flatten)]
        who: Who<'a>,
        size: u64,
        bytes: u64,
    },
    /// The upload ended well.
    Finished {
        id: u64,
        #[serde(flatten)]
        who: Who<'a>,
        size: u64,
        bytes: u64,
        duration_ms: u64,
        /// send: true when an ftx server's receipt confirmed it, false for a classroom server.
        #[serde(skip_serializing_if = "Option::is_none")]
        confirmed: Option<bool>,
        /// The name in the drop folder, when it differs from `name`.
        #[serde(skip_serializing_if = "Option::is_none")]
        saved_as: Option<&'a str>,
        /// send: what a classroom server sent after the content, if anything.
        #[serde(skip_serializing_if = "Option::is_none")]
        said: Option<&'a str>,
        /// Batch mode: both ends computed the content's BLAKE3 and they agree.
        #[serde(skip_serializing_if = "Option::is_none")]
        verified: Option<bool>,
        /// Batch mode: that BLAKE3, in hex.
        #[serde(skip_serializing_if = "Option::is_none")]
        blake3: Option<&'a str>,
        /// Batch mode: bytes the server already held from an interrupted batch.
        #[serde(skip_serializing_if = "Option::is_none")]
        resumed_from: Option<u64>,
    },
    /// The upload failed or was refused.
    Failed {
        id: u64,
        #[serde(flatten)]
        who: Who<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        size: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        bytes: Option<u64>,
        reason: &'a str,
    },
    /// `--trace`: one protocol step.
    Trace { id: u64, text: &'a str },
    /// Something about no single upload.
    Notice { text: &'a str },
    /// serve: a batch connection ended (PROTOCOL.md B3); its files had events of their own.
    Batch {
        id: u64,
        client: String,
        saved: u64,
        failed: u64,
        bytes: u64,
        duration_ms: u64,
        into: &'a [String],
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<&'a str>,
    },
    /// The last line.
    Summary {
        done: u64,
        saved: u64,
        delivered: u64,
        failed: u64,
        bytes: u64,
        duration_ms: u64,
        /// send: Ctrl-C ended the run (its files not ended count as failed).
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        interrupted: bool,
    },
}

/// Milliseconds, for `duration_ms`.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// JSON lines on stdout.
pub(super) struct Json {
    last_progress: Instant,
}

impl Json {
    pub fn new() -> Json {
        Json {
            last_progress: Instant::now(),
        }
    }
}

/// Writes one record as a line on stdout. A closed stdout (`| head`) is not an error.
fn emit(record: Record<'_>, live: &Live) {
    let t = (live.began.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
    let mut out = std::io::stdout().lock();
    if serde_json::to_writer(&mut out, &Line { record, t }).is_ok() {
        let _ = out.write_all(b"\n");
        let _ = out.flush();
    }
}

impl Sink for Json {
    fn event(&mut self, event: &Event, ended: Option<&Tracked>, live: &Live) {
        let current = |id: &u64| live.uploads.get(id);
        let record = match event {
            Event::Listening {
                address,
                dir,
                workers,
            } => Record::Listening {
                address: address.to_string(),
                dir,
                workers: *workers,
            },
            Event::Connected { id, peer } => Record::Connected {
                id: *id,
                client: peer.to_string(),
            },
            Event::Queued { id, size, .. } => match current(id) {
                Some(upload) => Record::Queued {
                    id: *id,
                    who: Who::of(upload),
                    size: *size,
                },
                None => return,
            },
            Event::Started { id, size, .. } => match current(id) {
                Some(upload) => Record::Started {
                    id: *id,
                    who: Who::of(upload),
                    size: *size,
                },
                None => return,
            },
            Event::Finished { id, done } => {
                let Some(upload) = ended else { return };
                let (saved_as, said) = match &done.kept {
                    Kept::Saved { saved_as } => (saved_as.as_deref(), None),
                    Kept::Delivered { said } => (None, said.as_deref()),
                };
                Record::Finished {
                    id: *id,
                    who: Who::of(upload),
                    size: upload.size,
                    bytes: done.bytes,
                    duration_ms: millis(done.elapsed),
                    confirmed: (live.side == super::Side::Send).then(|| done.kept.confirmed()),
                    saved_as,
                    said,
                    verified: done.verified.as_ref().map(|_| true),
                    blake3: done.verified.as_deref(),
                    resumed_from: (done.resumed_from > 0).then_some(done.resumed_from),
                }
            }
            Event::Failed { id, reason } => {
                let Some(upload) = ended else { return };
                Record::Failed {
                    id: *id,
                    who: Who::of(upload),
                    size: upload.started.map(|_| upload.size),
                    bytes: upload.started.map(|_| upload.bytes),
                    reason,
                }
            }
            Event::Trace { id, text } => Record::Trace { id: *id, text },
            Event::Notice(text) => Record::Notice { text },
            Event::BatchEnded(batch) => Record::Batch {
                id: batch.id,
                client: batch.peer.to_string(),
                saved: batch.all.saved,
                failed: batch.all.failed,
                bytes: batch.all.bytes,
                duration_ms: millis(batch.elapsed),
                into: &batch.into,
                reason: batch.broke_off.as_deref(),
            },
            // Every file of a batch has its own events already.
            Event::Sent { .. }
            | Event::Closed { .. }
            | Event::Summary(_)
            | Event::Interrupted { .. } => return,
        };
        emit(record, live);
    }

    fn tick(&mut self, live: &Live) {
        if self.last_progress.elapsed() < PROGRESS_EVERY {
            return;
        }
        self.last_progress = Instant::now();
        for (id, upload) in &live.uploads {
            if upload.started.is_some() {
                emit(
                    Record::Progress {
                        id: *id,
                        who: Who::of(upload),
                        size: upload.size,
                        bytes: upload.bytes,
                    },
                    live,
                );
            }
        }
    }

    fn summary(&mut self, summary: &Summary, live: &Live) {
        let t = summary.tally;
        emit(
            Record::Summary {
                done: t.done(),
                saved: t.saved,
                delivered: t.delivered,
                failed: t.failed,
                bytes: t.bytes,
                duration_ms: millis(summary.elapsed),
                interrupted: summary.interrupted,
            },
            live,
        );
    }
}

/// Every event with every field it can carry, in the order written: the
/// schema README documents (a test keeps the two in agreement).
#[cfg(test)]
fn schema() -> Vec<(String, Vec<String>)> {
    let who = || Who {
        client: Some(String::new()),
        name: Some(""),
        path: Some(""),
    };
    let examples = [
        Record::Listening {
            address: String::new(),
            dir: "",
            workers: 0,
        },
        Record::Connected {
            id: 0,
            client: String::new(),
        },
        Record::Queued {
            id: 0,
            who: who(),
            size: Some(0),
        },
        Record::Started {
            id: 0,
            who: who(),
            size: 0,
        },
        Record::Progress {
            id: 0,
            who: who(),
            size: 0,
            bytes: 0,
        },
        Record::Finished {
            id: 0,
            who: who(),
            size: 0,
            bytes: 0,
            duration_ms: 0,
            confirmed: Some(true),
            saved_as: Some(""),
            said: Some(""),
            verified: Some(true),
            blake3: Some(""),
            resumed_from: Some(1),
        },
        Record::Failed {
            id: 0,
            who: who(),
            size: Some(0),
            bytes: Some(0),
            reason: "",
        },
        Record::Trace { id: 0, text: "" },
        Record::Notice { text: "" },
        Record::Batch {
            id: 0,
            client: String::new(),
            saved: 0,
            failed: 0,
            bytes: 0,
            duration_ms: 0,
            into: &[],
            reason: Some(""),
        },
        Record::Summary {
            done: 0,
            saved: 0,
            delivered: 0,
            failed: 0,
            bytes: 0,
            duration_ms: 0,
            interrupted: true,
        },
    ];
    examples
        .into_iter()
        .map(|record| {
            let value = serde_json::to_value(Line { record, t: 0.0 }).expect("records serialize");
            let map = value.as_object().expect("records are objects");
            let event = map["event"].as_str().expect("tagged").to_string();
            let fields = map
                .keys()
                .filter(|k| *k != "event" && *k != "t")
                .cloned()
                .collect();
            (event, fields)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_text_stays_valid_escaped_json() {
        let name = "evil\u{1b}[2J\"quoted\"\\\n.txt";
        let line = Line {
            record: Record::Started {
                id: 1,
                who: Who {
                    name: Some(name),
                    ..Who::default()
                },
                size: 5,
            },
            t: 0.5,
        };
        let text = serde_json::to_string(&line).unwrap();
        assert!(!text.contains('\u{1b}') && !text.contains('\n'), "{text}");
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["event"], "started");
        assert_eq!(back["name"], name);
        assert_eq!(back["size"], 5);
        assert!(back.get("client").is_none(), "absent fields are left out");
    }

    /// README's table of JSON events lists exactly the fields each event can carry.
    #[test]
    fn readme_schema_matches_the_events() {
        let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"));
        let mut documented = Vec::new();
        let mut in_table = false;
        for line in readme.lines() {
            if line.starts_with("| event | when | fields |") {
                in_table = true;
                continue;
            }
            if in_table && !line.starts_with('|') {
                break;
            }
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            if !in_table || cells.len() < 4 || cells[1].starts_with("---") {
                continue;
            }
            let ticked = |cell: &str| -> Vec<String> {
                cell.split('`')
                    .skip(1)
                    .step_by(2)
                    .map(str::to_string)
                    .collect()
            };
            let mut fields = ticked(cells[3]);
            fields.sort();
            documented.push((ticked(cells[1]).concat(), fields));
        }
        let mut actual = schema();
        for (_, fields) in &mut actual {
            fields.sort();
        }
        assert_eq!(documented, actual);
    }
}
