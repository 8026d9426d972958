//! `ftx check server`: the cases played against a running server, over real sockets, with the saved files compared when `--dir` is given.

use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use super::launch::Launcher;
use super::wire::{self, Heard};
use super::{leftovers, Case, CaseFailure, Verdict};
use crate::address::Address;
use crate::noise::Noise;
use crate::protocol::GO_AHEAD;

const fn case(id: &'static str, title: &'static str, rule: &'static str, needs_dir: bool) -> Case {
    Case {
        id,
        title,
        rule,
        strict: false,
        needs_dir,
        exercise: 1,
    }
}

/// A case only the second exercise (several clients at once) asks for.
const fn several(id: &'static str, title: &'static str, rule: &'static str) -> Case {
    Case {
        exercise: 2,
        ..case(id, title, rule, false)
    }
}

/// Every server case, in the order they run.
pub const CASES: &[Case] = &[
    case(
        "S1",
        "replies exactly \"go ahead\" (8 bytes, nothing more)",
        "P4",
        false,
    ),
    case("S2", "a small text file arrives intact", "P5", true),
    case(
        "S3",
        "an empty file: \"go ahead\", then the server closes",
        "P1, P5",
        false,
    ),
    case(
        "S4",
        "every byte value (0 to 255) arrives intact",
        "P5",
        true,
    ),
    case("S5", "a large file arrives whole", "P1, P5", false),
    case(
        "S6",
        "content sent in 16-byte pieces with pauses arrives whole",
        "P5",
        false,
    ),
    case(
        "S7",
        "a name with spaces and non-ASCII letters is kept",
        "P1",
        true,
    ),
    case(
        "S8",
        "a client that closes before its header: the server goes on, saving nothing",
        "P9",
        false,
    ),
    case(
        "S9",
        "a client that closes in the middle of its header: the server goes on, saving nothing",
        "P9",
        false,
    ),
    case(
        "S10",
        "a client that closes in the middle of the content leaves no file behind",
        "P6, P9",
        false,
    ),
    several(
        "S11",
        "a second client is served while the first is still connected",
        "P8",
    ),
    several("S12", "ten clients at once, every file whole", "P8, P5"),
    case(
        "S13",
        "the server closes the connection once it has every byte",
        "P5",
        false,
    ),
    Case {
        id: "S14",
        title: "a header sent in two writes (the size, then the name)",
        rule: "P1",
        strict: true,
        needs_dir: true,
        exercise: 1,
    },
    case(
        "S15",
        "a name that is not UTF-8 (Latin-1 bytes) does not stop the server",
        "P1, P9",
        false,
    ),
];

/// Hints for the faults students' servers have.
const HINT_LAST_CHUNK: &str =
    "your loop stops before the last, shorter chunk: receive until you have SIZE bytes \
     (received < size), not until a chunk is shorter than 1024";
const HINT_CLOSE: &str = "close the connection (conn.close()) once the file is saved";
const HINT_DECODE: &str =
    "a name that is not UTF-8 stopped your server: name.decode() raises UnicodeDecodeError. \
     Decode with header[8:].decode(errors=\"replace\"), or catch the error and close the connection";
const HINT_EMPTY_RECV: &str =
    "an empty recv() (b\"\") means the client is gone: stop reading then, \
     close the connection and delete the partial file";

/// What it takes to play the cases against one server.
pub struct Probe {
    addr: SocketAddr,
    shown: String,
    dir: Option<PathBuf>,
    big: u64,
    timeout: Duration,
    /// The case running, and the last one in which the server took a
    /// connection: a case that cannot connect says which case it was gone after.
    running: Mutex<&'static str>,
    answered_in: Mutex<Option<&'static str>>,
    /// The last case in which the server said `go ahead`: a dying server may
    /// still take a connection into its backlog, and reset it.
    replied_in: Mutex<Option<&'static str>>,
    /// Starts the server afresh for each case (`ftx check server -- COMMAND`).
    launcher: Option<Launcher>,
}

/// One upload as a case plays it.
struct Play {
    name: String,
    content: Vec<u8>,
    /// Content in pieces of this many bytes, with this pause after each.
    pieces: Option<(usize, Duration)>,
    /// The header in two writes: the size, a pause, the name.
    split_header: bool,
}

impl Play {
    /// The name without its extension: what every file saved for it starts with.
    fn stem(&self) -> &str {
        self.name
            .rsplit_once('.')
            .map_or(self.name.as_str(), |(s, _)| s)
    }

    fn new(name: String, content: Vec<u8>) -> Play {
        Play {
            name,
            content,
            pieces: None,
            split_header: false,
        }
    }
}

impl Probe {
    pub fn new(
        addr: &Address,
        dir: Option<PathBuf>,
        big: u64,
        timeout: Duration,
        launcher: Option<Launcher>,
    ) -> anyhow::Result<Probe> {
        let resolved = addr.resolve()?;
        if let Some(dir) = &dir {
            if !dir.is_dir() {
                anyhow::bail!(
                    "--dir {}: there is no such folder (give the folder your server saves into)",
                    dir.display()
                );
            }
        }
        Ok(Probe {
            addr: resolved[0],
            shown: addr.to_string(),
            dir,
            big,
            timeout,
            running: Mutex::new(""),
            answered_in: Mutex::new(None),
            replied_in: Mutex::new(None),
            launcher,
        })
    }

    /// A name no one else uses, so the saved file is easy to find.
    fn name(&self, case: &str, rest: &str) -> String {
        format!("ftxcheck-{}-{case}{rest}", std::process::id())
    }

    pub fn run(&mut self, case: &Case) -> Verdict {
        let Some(launcher) = &self.launcher else {
            return self.play(case);
        };
        let mut started = match launcher.start() {
            Ok(started) => started,
            Err(failure) => return Verdict::Fail(failure),
        };
        self.addr = started.addr;
        self.shown = started.addr.to_string();
        self.dir = Some(started.folder().to_path_buf());
        *self.answered_in.lock().expect("case lock") = None;
        *self.replied_in.lock().expect("case lock") = None;
        let verdict = self.play(case);
        let ended = match verdict {
            // A server that closed as it died may not be gone yet.
            Verdict::Fail(_) => started.ended_within(SETTLE),
            _ => started.ended(),
        };
        drop(started);
        match (verdict, ended) {
            (Verdict::Fail(mut failure), Some((ended, by_itself))) => {
                if by_itself {
                    failure.hint = "the server ended by itself during this case: serve clients \
                                    in a loop (while True: conn, addr = server.accept()), never \
                                    exit after one"
                        .to_string();
                } else if case.id != "S15" {
                    // S15's hint names the crash it causes.
                    failure.hint = "the server crashed during this case: its last words are under \
                                    seen:; run it yourself to read the whole error"
                        .to_string();
                }
                failure.seen.push(ended);
                Verdict::Fail(failure)
            }
            (verdict, _) => verdict,
        }
    }

    /// Plays one case against the server as it is now.
    fn play(&mut self, case: &Case) -> Verdict {
        if case.needs_dir && self.dir.is_none() {
            return Verdict::Skip(
                "pass --dir DIR (the folder your server saves into) to compare the saved file"
                    .into(),
            );
        }
        *self.running.lock().expect("case lock") = case.id;
        let result = match case.id {
            "S1" => self.exact_reply(),
            "S2" => self.intact(
                case.id,
                ".txt",
                b"A small text file.\nIt has two lines.\n".to_vec(),
            ),
            "S3" => self.intact(case.id, ".empty", Vec::new()),
            "S4" => self.intact(
                case.id,
                ".bin",
                (0..=255u8).cycle().take(256 * 4 + 100).collect(),
            ),
            "S5" => {
                // A little over --big, so that its last 1024-byte chunk is a short one.
                let size = usize::try_from(self.big)
                    .unwrap_or(usize::MAX)
                    .saturating_add(123);
                self.intact(case.id, ".big", Noise::bytes(5, size))
            }
            "S6" => {
                let mut upload = Play::new(self.name("S6", ".txt"), Noise::bytes(6, 1500));
                upload.pieces = Some((16, Duration::from_millis(2)));
                self.upload_and_compare(&upload)
            }
            "S7" => self.intact(case.id, " ma thèse été.txt", b"accents and spaces".to_vec()),
            "S8" => self.early_close(b"", "before its header"),
            // The first 6 bytes of a 1 MiB size: read as a whole header, a size of 16.
            "S9" => self.early_close(
                &(1u64 << 20).to_be_bytes()[..6],
                "in the middle of its header",
            ),
            "S10" => self.close_mid_content(),
            "S11" => self.two_at_once(),
            "S12" => self.ten_at_once(),
            "S13" => self.closes_after_content(),
            "S15" => self.latin1_name(),
            "S14" => {
                let mut upload = Play::new(self.name("S14", ".txt"), b"split header".to_vec());
                upload.split_header = true;
                self.upload_and_compare(&upload)
            }
            other => unreachable!("no server case {other}"),
        };
        // Whatever this case made the server save goes, compared or not.
        if let Some(dir) = &self.dir {
            let mut left = leftovers().lock().expect("leftovers lock");
            left.files.extend(find_saved(
                dir,
                &format!("ftxcheck-{}-", std::process::id()),
            ));
        }
        match result {
            Ok(()) => Verdict::Pass,
            Err(failure) => Verdict::Fail(failure),
        }
    }

    fn connect(&self) -> Result<TcpStream, CaseFailure> {
        let wait = wire::bounded(self.timeout).max(Duration::from_millis(1));
        let stream = TcpStream::connect_timeout(&self.addr, wait).map_err(|e| {
            let running = *self.running.lock().expect("case lock");
            let hint = match *self.answered_in.lock().expect("case lock") {
                Some(case) if case == running => {
                    "the server stopped taking connections during this case: it crashed or exited \
                     (its terminal shows the error); start it again"
                        .to_string()
                }
                Some(case) => format!(
                    "the server took connections up to {case} and no longer does: it stopped during \
                     or after {case}; start it again to check the cases after it"
                ),
                None => "is your server running on that address and port?".to_string(),
            };
            CaseFailure::new(
                format!("to connect to {}", self.shown),
                format!("could not: {e}"),
                hint,
            )
        })?;
        let running = *self.running.lock().expect("case lock");
        *self.answered_in.lock().expect("case lock") = Some(running);
        let _ = stream.set_nodelay(true);
        let _ = stream.set_write_timeout(Some(self.timeout));
        Ok(stream)
    }

    /// The server said `go ahead` in the case running.
    fn replied(&self) {
        let running = *self.running.lock().expect("case lock");
        *self.replied_in.lock().expect("case lock") = Some(running);
    }

    /// S1: the reply is these 8 bytes, in one go, and nothing follows them.
    fn exact_reply(&self) -> Result<(), CaseFailure> {
        let stream = self.connect()?;
        let content = b"reply".to_vec();
        send_header(
            &stream,
            self.name("S1", ".txt"),
            content.len() as u64,
            false,
        )?;
        let mut heard = wire::read_for(&stream, GO_AHEAD.len(), self.timeout);
        if heard.bytes.len() >= GO_AHEAD.len() && !heard.closed {
            // Anything more sent with it reaches a client's recv(1024) too.
            let more = wire::read_for(&stream, 1, Duration::from_millis(300));
            heard.bytes.extend_from_slice(&more.bytes);
        }
        if heard.bytes.starts_with(GO_AHEAD) {
            self.replied();
        }
        if heard.bytes != GO_AHEAD {
            let hint = if heard.bytes.starts_with(GO_AHEAD) {
                "send exactly b\"go ahead\", with nothing after it (no newline): clients compare \
                 what recv() returns with b\"go ahead\""
            } else if heard.bytes.is_empty() {
                "send b\"go ahead\" after reading the header"
            } else {
                "the reply must be exactly the 8 bytes b\"go ahead\""
            };
            return Err(CaseFailure::new(
                "8 bytes: 67 6f 20 61 68 65 61 64 (\"go ahead\")",
                self.heard(&heard),
                hint,
            ));
        }
        let _ = (&stream).write_all(&content);
        let _ = stream.shutdown(Shutdown::Write);
        wire::wait_for_close(&stream, self.timeout);
        Ok(())
    }

    fn heard(&self, heard: &Heard) -> String {
        let mut text = wire::shown(&heard.bytes);
        if heard.closed {
            text.push_str(", then the server closed the connection");
        } else if heard.reset {
            text.push_str(", then the server reset the connection");
        } else if heard.bytes.is_empty() {
            text = format!(
                "nothing within {}",
                crate::term::human_duration(self.timeout)
            );
        }
        text
    }

    fn intact(&self, case: &str, rest: &str, content: Vec<u8>) -> Result<(), CaseFailure> {
        self.upload_and_compare(&Play::new(self.name(case, rest), content))
    }

    /// Uploads, then (with `--dir`) compares the saved file byte for byte.
    fn upload_and_compare(&self, upload: &Play) -> Result<(), CaseFailure> {
        self.upload(upload)?;
        self.compare_saved(upload)
    }

    /// One upload as a careful client makes it: every step bounded, every answer checked.
    fn upload(&self, upload: &Play) -> Result<(), CaseFailure> {
        let stream = self.connect()?;
        let size = upload.content.len() as u64;
        send_header(&stream, &upload.name, size, upload.split_header)?;
        self.expect_go_ahead(&stream)?;
        let sent = send_content(&stream, &upload.content, upload.pieces);
        if let Err(at) = sent {
            return Err(CaseFailure::new(
                format!("the server to take all {size} bytes"),
                format!("it ended the connection after {at} of {size} bytes had gone out"),
                self.why_stopped(at as u64, upload),
            ));
        }
        let _ = stream.shutdown(Shutdown::Write);
        let heard = wire::wait_for_close(&stream, self.timeout);
        if heard.reset || (heard.closed && !wire::all_taken(&stream, self.timeout)) {
            return Err(CaseFailure::new(
                format!("the server to read all {size} bytes, then close"),
                "it reset the connection: it closed without reading every byte",
                self.why_stopped(size, upload),
            ));
        }
        if !heard.closed {
            return Err(CaseFailure::new(
                "the server to close the connection once it has every byte",
                format!(
                    "it was still open {} after the last byte",
                    crate::term::human_duration(self.timeout)
                ),
                HINT_CLOSE,
            ));
        }
        Ok(())
    }

    /// Whether the server still takes a connection (within a second).
    /// A server that is dying may still complete a connection into its
    /// backlog: it must also not be reset within [`SETTLE`] (a connection the
    /// server takes and keeps, or closes cleanly, is a live server's).
    fn alive(&self) -> bool {
        thread::sleep(SETTLE);
        let wait = wire::bounded(Duration::from_secs(1)).max(Duration::from_millis(1));
        let Ok(probe) = TcpStream::connect_timeout(&self.addr, wait) else {
            return false;
        };
        !wire::read_for(&probe, 1, SETTLE).reset
    }

    /// The hint for a server that ended an upload after `at` of `size` bytes
    /// had gone out, from what can be seen: whether it still takes
    /// connections, and how far the upload got.
    fn why_stopped(&self, at: u64, upload: &Play) -> String {
        let size = upload.content.len() as u64;
        if !self.alive() {
            return "the server no longer takes connections: it crashed or exited during the upload \
                    (its terminal shows the error); start it again before the next case"
                .into();
        }
        if let Some(hint) = self.hint_from_saved(upload) {
            return hint.into();
        }
        // What the sockets may hold: a stop this far from the end is no last-chunk bug.
        const BUFFERED: u64 = 16 << 20;
        if at.saturating_add(BUFFERED) < size {
            return format!(
                "the server stopped reading long before the end: {at} of {size} bytes had gone out. \
                 A recv() may return fewer than 1024 bytes anywhere in a file, not only at its end: \
                 receive until you have SIZE bytes (received += len(data)), never until a chunk is short"
            );
        }
        HINT_LAST_CHUNK.into()
    }

    /// Waits for the reply; a reply that starts with `go ahead` will do here (S1 is strict about it).
    fn expect_go_ahead(&self, stream: &TcpStream) -> Result<(), CaseFailure> {
        let heard = wire::read_for(stream, GO_AHEAD.len(), self.timeout);
        if heard.bytes.starts_with(GO_AHEAD) {
            self.replied();
            return Ok(());
        }
        let hint = if heard.bytes.is_empty() && !heard.closed && !heard.reset {
            "no reply: is the server busy with another client? (a server that serves one client \
             at a time fails S11 too)"
                .to_string()
        } else if heard.bytes.is_empty() && !self.alive() {
            let running = *self.running.lock().expect("case lock");
            match *self.replied_in.lock().expect("case lock") {
                // It took this connection as it died: it stopped after the case it last answered.
                Some(case) if case != running => format!(
                    "the server took connections up to {case} and no longer does: it stopped during \
                     or after {case}; start it again to check the cases after it"
                ),
                _ => "the server ended the connection without a reply and no longer takes \
                      connections: it crashed or exited (its terminal shows the error); start it again"
                    .to_string(),
            }
        } else {
            "read the header with one recv(), then send b\"go ahead\"".to_string()
        };
        Err(CaseFailure::new("\"go ahead\"", self.heard(&heard), hint))
    }

    /// With `--dir`: the file is there, under the name sent (or NAME.temp, or a
    /// numbered variant), with every byte; it is removed afterwards.
    fn compare_saved(&self, upload: &Play) -> Result<(), CaseFailure> {
        let Some(dir) = &self.dir else { return Ok(()) };
        let deadline = Instant::now() + wire::bounded(self.timeout);
        let stem = upload.stem();
        loop {
            let found = find_saved(dir, stem);
            for path in &found {
                leftovers()
                    .lock()
                    .expect("leftovers lock")
                    .files
                    .push(path.clone());
            }
            let matching = found
                .iter()
                .find(|p| std::fs::read(p).is_ok_and(|b| b == upload.content));
            if matching.is_some() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(self.explain_saved(&found, upload));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn explain_saved(&self, found: &[PathBuf], upload: &Play) -> CaseFailure {
        let size = upload.content.len();
        let expected = format!(
            "a file \"{}\" (or .temp) of {size} bytes, as sent",
            upload.name
        );
        let Some(path) = found.first() else {
            return CaseFailure::new(
                expected,
                format!(
                    "no such file in {}",
                    self.dir
                        .as_deref()
                        .map_or(String::new(), |d| d.display().to_string())
                ),
                if self.launcher.is_some() {
                    "save into the folder the server runs in (its working folder, {dir} in the \
                     command), under the name from the header"
                } else {
                    "is --dir the folder your server saves into? Save under the name from the header"
                },
            );
        };
        let saved = std::fs::read(path).unwrap_or_default();
        let name = path
            .file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into_owned());
        CaseFailure::new(
            expected,
            format!("{name}: {} bytes, not the bytes sent", saved.len()),
            saved_hint(saved.len(), size),
        )
    }

    /// What the file saved for `upload` says about the fault, with a folder to look in.
    fn hint_from_saved(&self, upload: &Play) -> Option<&'static str> {
        let dir = self.dir.as_deref()?;
        thread::sleep(SETTLE);
        let stem = upload.stem();
        let path = find_saved(dir, stem).into_iter().next()?;
        let saved = std::fs::metadata(&path).ok()?.len();
        Some(saved_hint(
            usize::try_from(saved).unwrap_or(usize::MAX),
            upload.content.len(),
        ))
    }

    /// S8, S9: a client closes early (its sending side only, so that the
    /// server's close can be seen); the server closes too, saves nothing
    /// (with `--dir`: no file appears or changes in the folder) and goes on serving.
    fn early_close(&self, sent: &[u8], when: &str) -> Result<(), CaseFailure> {
        let before = self.dir.as_deref().map(Folder::now);
        let stream = self.connect()?;
        if !sent.is_empty() {
            let _ = (&stream).write_all(sent);
        }
        let _ = stream.shutdown(Shutdown::Write);
        let heard = wire::wait_for_close(&stream, self.timeout);
        drop(stream);
        if !heard.closed && !heard.reset {
            return Err(CaseFailure::new(
                format!("the server to close the connection of a client that closed {when}"),
                format!(
                    "it was still open after {}",
                    crate::term::human_duration(self.timeout)
                ),
                HINT_EMPTY_RECV,
            ));
        }
        if let (Some(dir), Some(before)) = (&self.dir, before) {
            // A server that saves before it closes has done so by now; one that saves after, nearly.
            thread::sleep(SETTLE);
            let made = Folder::now(dir).made_since(&before);
            if !made.is_empty() {
                return Err(CaseFailure::new(
                    format!("no file saved for a client that closed {when}"),
                    format!(
                        "{} in {} (left there)",
                        made.join(", "),
                        dir.display()
                    ),
                    "read the whole header before opening a file: when recv() returns b\"\" or fewer \
                     than 9 bytes (8 size bytes and a name), close the connection and save nothing",
                ));
            }
        }
        self.still_serving(when)
    }

    /// After an early close, the server still answers: the next client gets its
    /// `go ahead` and can send a file (1024 bytes: no short chunk, so that only
    /// this is checked here).
    fn still_serving(&self, when: &str) -> Result<(), CaseFailure> {
        self.answers(&self.name("after", ".txt")).map_err(|f| {
            CaseFailure::new(
                format!("the next client to be served after one closed {when}"),
                f.got,
                format!("{}; {HINT_EMPTY_RECV}", f.hint),
            )
        })
    }

    /// S15: a name in Latin-1 (`café` with a lone 0xe9 byte), as a
    /// Windows or old Mac client may send: the server answers it or closes
    /// it, and the next client is served.
    fn latin1_name(&self) -> Result<(), CaseFailure> {
        let mut name = self.name("S15", "-caf").into_bytes();
        name.extend_from_slice(b"\xe9.txt");
        let content = b"latin-1".to_vec();
        let stream = self.connect()?;
        send_header(&stream, &name, content.len() as u64, false)?;
        let heard = wire::read_for(&stream, GO_AHEAD.len(), self.timeout);
        if heard.bytes.starts_with(GO_AHEAD) {
            let _ = (&stream).write_all(&content);
            let _ = stream.shutdown(Shutdown::Write);
            wire::wait_for_close(&stream, self.timeout);
        } else if !heard.closed && !heard.reset {
            return Err(CaseFailure::new(
                "\"go ahead\", or the connection closed, for a name that is not UTF-8",
                self.heard(&heard),
                HINT_DECODE,
            ));
        }
        drop(stream);
        self.answers(&self.name("after", ".txt")).map_err(|f| {
            CaseFailure::new(
                "the next client to be served after a name that is not UTF-8",
                f.got,
                HINT_DECODE,
            )
        })
    }

    /// A client gets `go ahead`, sends 1024 bytes and sees the connection end.
    fn answers(&self, name: &str) -> Result<(), CaseFailure> {
        let stream = self.connect()?;
        send_header(&stream, name, 1024, false)?;
        self.expect_go_ahead(&stream)?;
        let _ = (&stream).write_all(&Noise::bytes(11, 1024));
        let _ = stream.shutdown(Shutdown::Write);
        wire::wait_for_close(&stream, self.timeout);
        Ok(())
    }

    /// S10: half the content, then the client closes: the server closes, keeps no file, and goes on.
    fn close_mid_content(&self) -> Result<(), CaseFailure> {
        let name = self.name("S10", ".bin");
        let stream = self.connect()?;
        send_header(&stream, &name, 10_000, false)?;
        self.expect_go_ahead(&stream)?;
        let _ = (&stream).write_all(&Noise::bytes(10, 3000));
        let _ = stream.shutdown(Shutdown::Write);
        let heard = wire::wait_for_close(&stream, self.timeout);
        drop(stream);
        if !heard.closed && !heard.reset {
            return Err(CaseFailure::new(
                "the server to close the connection of a client that stopped after 3000 of 10000 bytes",
                format!("it was still open after {}", crate::term::human_duration(self.timeout)),
                HINT_EMPTY_RECV,
            ));
        }
        if let Some(dir) = &self.dir {
            thread::sleep(SETTLE);
            let stem = name.trim_end_matches(".bin");
            let left = find_saved(dir, stem);
            if let Some(path) = left.first() {
                for path in &left {
                    leftovers()
                        .lock()
                        .expect("leftovers lock")
                        .files
                        .push(path.clone());
                }
                return Err(CaseFailure::new(
                    "no file left behind for an upload that stopped half way",
                    format!(
                        "{} ({} of 10000 bytes)",
                        path.file_name()
                            .map_or(String::new(), |n| n.to_string_lossy().into_owned()),
                        std::fs::metadata(path).map_or(0, |m| m.len())
                    ),
                    "delete the partial file when recv() returns b\"\" before SIZE bytes came",
                ));
            }
        }
        self.still_serving("in the middle of the content")
    }

    /// S11: the first client pauses after its header; the second must get its
    /// `go ahead` meanwhile (what it then sends is other cases' business).
    fn two_at_once(&self) -> Result<(), CaseFailure> {
        let first = self.connect()?;
        let content = b"first client".to_vec();
        send_header(
            &first,
            self.name("S11a", ".txt"),
            content.len() as u64,
            false,
        )?;
        // The first client now pauses (as a student's input() or sleep() would).
        thread::sleep(Duration::from_millis(200));
        let second = self.connect()?;
        send_header(&second, self.name("S11b", ".txt"), 1024, false)?;
        let served = self.expect_go_ahead(&second);
        // Let the first one finish, whatever happened; then the second, which a
        // server that takes one client at a time may serve only now. Walking
        // away from it instead would leave such a server writing to a closed
        // connection, and many crash on that.
        let finish = |stream: &TcpStream, content: &[u8]| {
            let _ = (&*stream).write_all(content);
            let _ = stream.shutdown(Shutdown::Write);
            wire::wait_for_close(stream, self.timeout);
        };
        if self.expect_go_ahead(&first).is_ok() {
            finish(&first, &content);
        }
        drop(first);
        if served.is_ok() || self.expect_go_ahead(&second).is_ok() {
            finish(&second, &Noise::bytes(11, 1024));
        }
        drop(second);
        served.map_err(|f| {
            CaseFailure::new(
                "the second client served while the first is still connected",
                f.got,
                "your server serves one client at a time: while the first client waits, the second \
                 gets no reply. Start a thread for each client (threading.Thread(target=handle, \
                 args=(conn,)).start()) right after accept(). (Grading the first exercise, which \
                 asks for one client at a time? --exercise 1)",
            )
        })
    }

    /// S12: ten uploads at the same time, each whole.
    fn ten_at_once(&self) -> Result<(), CaseFailure> {
        let uploads: Vec<Play> = (0..10u8)
            .map(|i| {
                Play::new(
                    self.name("S12", &format!("-{i}.bin")),
                    Noise::bytes(u64::from(i) + 100, 20_000 + usize::from(i) * 999),
                )
            })
            .collect();
        let results: Vec<Result<(), CaseFailure>> = thread::scope(|scope| {
            let running: Vec<_> = uploads
                .iter()
                .map(|u| scope.spawn(move || self.upload(u)))
                .collect();
            running
                .into_iter()
                .map(|t| t.join().expect("upload thread"))
                .collect()
        });
        for (i, result) in results.into_iter().enumerate() {
            result.map_err(|f| {
                CaseFailure::new(
                    format!("client {} of 10: {}", i + 1, f.expected),
                    f.got,
                    f.hint,
                )
            })?;
        }
        for upload in &uploads {
            self.compare_saved(upload)?;
        }
        Ok(())
    }

    /// S13: after the last byte, the server closes (it read them all).
    fn closes_after_content(&self) -> Result<(), CaseFailure> {
        self.upload(&Play::new(self.name("S13", ".txt"), Noise::bytes(13, 5000)))
    }
}

/// The fault a saved file of `saved` bytes shows, for `size` sent.
fn saved_hint(saved: usize, size: usize) -> &'static str {
    if saved < size && size - saved <= 1024 {
        HINT_LAST_CHUNK
    } else if saved < size {
        "the file is cut short, not at its last chunk: count what recv() returned \
         (received += len(data)), not 1024 a chunk, and receive until you have SIZE bytes"
    } else if size > 0 && saved == 2 * size {
        "the file is saved twice over: every chunk is written twice; write each recv() once"
    } else if saved > size {
        "the file is longer than sent: write only what recv() returned (data[:n]), and open it with \"wb\""
    } else {
        "the bytes differ: open the file in binary mode (\"wb\") and write the chunks as they come"
    }
}

/// How long a server gets, after it closed, to have saved what it saves.
const SETTLE: Duration = Duration::from_millis(200);

/// What a folder holds: each entry's name, size and time of change.
struct Folder(std::collections::BTreeMap<std::ffi::OsString, (u64, Option<std::time::SystemTime>)>);

impl Folder {
    fn now(dir: &Path) -> Folder {
        let entries = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .filter_map(Result::ok);
        Folder(
            entries
                .map(|e| {
                    let meta = e.metadata().ok();
                    let size = meta.as_ref().map_or(0, |m| m.len());
                    (e.file_name(), (size, meta.and_then(|m| m.modified().ok())))
                })
                .collect(),
        )
    }

    /// The entries made or changed since `before`, as a student reads them: `NAME (N bytes)`.
    fn made_since(&self, before: &Folder) -> Vec<String> {
        self.0
            .iter()
            .filter(|(name, now)| before.0.get(*name) != Some(*now))
            .map(|(name, (size, _))| {
                format!(
                    "\"{}\" ({size} bytes)",
                    crate::names::escape_for_terminal(name.as_encoded_bytes())
                )
            })
            .collect()
    }
}

/// The header in one write (or, for S14, the size and the name apart).
fn send_header(
    stream: &TcpStream,
    name: impl AsRef<[u8]>,
    size: u64,
    split: bool,
) -> Result<(), CaseFailure> {
    let mut header = size.to_be_bytes().to_vec();
    header.extend_from_slice(name.as_ref());
    let written = if split {
        (&*stream).write_all(&header[..8]).and_then(|()| {
            thread::sleep(Duration::from_millis(200));
            (&*stream).write_all(&header[8..])
        })
    } else {
        (&*stream).write_all(&header)
    };
    written.map_err(|e| {
        CaseFailure::new(
            "to send the header",
            format!("could not: {e}"),
            "the server closed the connection as soon as the client connected",
        )
    })
}

/// Sends the content, in pieces if asked; on failure, how many bytes went.
fn send_content(
    stream: &TcpStream,
    content: &[u8],
    pieces: Option<(usize, Duration)>,
) -> Result<(), usize> {
    let (piece, pause) = pieces.unwrap_or((content.len().max(1), Duration::ZERO));
    // Counted write by write, not chunk by chunk: a server that stops part
    // way through one big write has still taken what went before.
    let mut sent = 0;
    for chunk in content.chunks(piece) {
        let mut rest = chunk;
        while !rest.is_empty() {
            match (&*stream).write(rest) {
                Ok(0) => return Err(sent),
                Ok(n) => {
                    sent += n;
                    rest = &rest[n..];
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return Err(sent),
            }
        }
        if !pause.is_zero() {
            thread::sleep(pause);
        }
    }
    Ok(())
}

/// Regular files in `dir` whose name starts with `stem` (NAME, NAME.temp, NAME (1).txt...).
fn find_saved(dir: &Path, stem: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(stem))
        // Regular files only: reading a named pipe would wait past every bound.
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .collect();
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(unix)]
    fn only_regular_files_count_as_saved() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.txt.temp"), b"x").unwrap();
        std::fs::create_dir(dir.path().join("notes (1).txt")).unwrap();
        crate::sys::testing::make_fifo(&dir.path().join("notes.txt"));
        assert_eq!(
            find_saved(dir.path(), "notes"),
            [dir.path().join("notes.txt.temp")]
        );
    }
}
