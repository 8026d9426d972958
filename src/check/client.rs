//! `ftx check client`: an instrumented server on a free loopback port runs the student's client once per case and watches every byte it sends.

use std::io::Write;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

use super::wire::{self, Heard};
use super::{how_it_ended, last_line, Case, CaseFailure, Verdict};
use crate::noise::Noise;
use crate::protocol::{self, Header, GO_AHEAD, SIZE_LEN};

const fn case(id: &'static str, title: &'static str, rule: &'static str) -> Case {
    Case {
        id,
        title,
        rule,
        strict: false,
        needs_dir: false,
        exercise: 1,
    }
}

/// A case only `--strict` runs: the protocol asks for less.
const fn strict_case(id: &'static str, title: &'static str, rule: &'static str) -> Case {
    Case {
        strict: true,
        ..case(id, title, rule)
    }
}

/// Every client case, in the order they run.
pub const CASES: &[Case] = &[
    case(
        "C1",
        "the size is 8 bytes, big-endian, and equals the file's size",
        "P1",
    ),
    case("C2", "the name sent is the file's name", "P1"),
    case(
        "C3",
        "the header is one write, sent before the reply",
        "P1, P2",
    ),
    case("C4", "nothing is sent before \"go ahead\"", "P4, P5"),
    case(
        "C5",
        "exactly SIZE bytes follow, then the client closes",
        "P5",
    ),
    case(
        "C6",
        "an empty file: a header with size 0, then the client closes",
        "P1, P5",
    ),
    case("C7", "a large file arrives whole", "P5"),
    case(
        "C8",
        "a reply other than \"go ahead\" makes the client stop, sending no content",
        "P4",
    ),
    case(
        "C9",
        "a server that closes without replying does not hang the client",
        "P4",
    ),
    strict_case(
        "C10",
        "a reply other than \"go ahead\" ends the client with an error exit (not 0)",
        "P4",
    ),
];

/// What the instrumented server's first read takes, as the classroom server's `recv(1024)`.
const FIRST_READ: usize = 1024;

/// How long the instrumented server holds back `go ahead`, to see whether content comes anyway.
const HOLD_BACK: Duration = Duration::from_millis(500);

/// The name of the file the client is given.
const FILE_NAME: &str = "notes.txt";

/// The instrumented server and the command it runs.
pub struct Lab {
    listener: TcpListener,
    command: Vec<String>,
    timeout: Duration,
    /// Whether the system delays ACKs when asked: without it, a header in
    /// two writes can reach the first read whole, and C3 cannot be judged.
    delays_acks: bool,
}

/// Why C3 is skipped where ACKs cannot be delayed.
const NO_DELAYED_ACKS: &str = "a header in two writes cannot be told from one here: \
    this system's OS layer cannot delay ACKs (TCP_QUICKACK); run ftx check on Linux for C3";

/// What the client did in one case.
struct Seen {
    /// The first message, as it had arrived after a short settle.
    first: Vec<u8>,
    /// Bytes that came while `go ahead` was held back (after the first message).
    early: Vec<u8>,
    /// Content after the reply, and how the client ended.
    after: Heard,
    /// The client's exit, if it ended in time.
    status: Option<ExitStatus>,
    stderr: String,
}

/// How the instrumented server answers the header.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reply {
    GoAhead,
    Refuse,
    Hang,
}

impl Lab {
    pub fn new(command: Vec<String>, timeout: Duration) -> anyhow::Result<Lab> {
        if command.is_empty() {
            anyhow::bail!("give the client's command after --, e.g. -- python3 client.py {{file}} {{host}} {{port}}");
        }
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        // So that a header in two writes reaches the first read as two
        // parts every time (C3), as it does across a real network.
        let delays_acks = crate::sys::net::delay_acks(&listener);
        let here = std::env::current_dir()?;
        Ok(Lab {
            listener,
            command: super::resolved(command, &here),
            timeout,
            delays_acks,
        })
    }

    pub fn run(&mut self, case: &Case) -> Verdict {
        let content = match case.id {
            "C6" => Vec::new(),
            "C7" => Noise::bytes(7, 8 << 20),
            _ => Noise::bytes(1, 3000),
        };
        let reply = match case.id {
            "C8" | "C10" => Reply::Refuse,
            "C9" => Reply::Hang,
            _ => Reply::GoAhead,
        };
        let seen = match self.play(&content, reply) {
            Ok(seen) => seen,
            Err(failure) => return Verdict::Fail(failure),
        };
        let result = match case.id {
            "C1" => size_is_right(&seen, &content),
            "C2" => name_is_right(&seen),
            "C3" => match one_write(&seen, &content) {
                // One piece is proof only where two writes would have come as two.
                Ok(()) if !self.delays_acks => return Verdict::Skip(NO_DELAYED_ACKS.into()),
                judged => judged,
            },
            "C4" => waits(&seen),
            "C5" | "C6" | "C7" => exact_content(&seen, &content, self.timeout),
            "C8" => stops_on_bad_reply(&seen),
            "C9" => does_not_hang(&seen, self.timeout),
            "C10" => fails_on_bad_reply(&seen),
            other => unreachable!("no client case {other}"),
        };
        match result {
            Ok(()) => Verdict::Pass,
            Err(failure) => Verdict::Fail(failure.seen(evidence(&seen, reply))),
        }
    }

    /// Runs the client on a fresh file in a fresh folder and serves it as `reply` says.
    fn play(&self, content: &[u8], reply: Reply) -> Result<Seen, CaseFailure> {
        let folder = tempfile::tempdir()
            .map_err(|e| CaseFailure::new("a scratch folder", e.to_string(), ""))?;
        std::fs::write(folder.path().join(FILE_NAME), content)
            .map_err(|e| CaseFailure::new("a test file", e.to_string(), ""))?;
        let mut child = self.start(folder.path())?;
        let stream = match self.accept(&mut child) {
            Ok(stream) => stream,
            Err(failure) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(failure);
            }
        };
        let seen = self.serve(&stream, reply);
        drop(stream);
        // A client still connected after every wait is hung: it gets a moment, not another timeout.
        let ended = seen.after.closed || seen.after.reset || reply == Reply::Hang;
        let status = wait_child(
            &mut child,
            if ended {
                self.timeout
            } else {
                Duration::from_millis(500)
            },
        );
        let stderr =
            std::fs::read_to_string(folder.path().join(".ftx-check-stderr")).unwrap_or_default();
        Ok(Seen {
            status,
            stderr,
            ..seen
        })
    }

    fn start(&self, folder: &Path) -> Result<Child, CaseFailure> {
        let port = self
            .listener
            .local_addr()
            .map_or(0, |a| a.port())
            .to_string();
        let fill = |arg: &String| {
            arg.replace("{file}", FILE_NAME)
                .replace("{name}", FILE_NAME)
                .replace("{host}", "127.0.0.1")
                .replace("{port}", &port)
        };
        let args: Vec<String> = self.command.iter().map(fill).collect();
        let stderr = std::fs::File::create(folder.join(".ftx-check-stderr"))
            .map_err(|e| CaseFailure::new("a scratch file", e.to_string(), ""))?;
        super::start_program(&args, folder, stderr, false)
    }

    /// Waits for the client's connection; a client that exits or never connects fails the case.
    fn accept(&self, child: &mut Child) -> Result<TcpStream, CaseFailure> {
        let deadline = Instant::now() + wire::bounded(self.timeout);
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    let _ = stream.set_nonblocking(false);
                    let _ = stream.set_nodelay(true);
                    return Ok(stream);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    return Err(CaseFailure::new(
                        "the client's connection",
                        e.to_string(),
                        "",
                    ))
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(CaseFailure::new(
                    "the client to connect to the server at {host} {port}",
                    format!("it exited ({status}) without connecting"),
                    "does it take the host and port from its arguments? check {host} and {port} in the command",
                ));
            }
            if Instant::now() >= deadline {
                return Err(CaseFailure::new(
                    "the client to connect",
                    format!("no connection within {}", crate::term::human_duration(self.timeout)),
                    "does it take the host and port from its arguments? check {host} and {port} in the command",
                ));
            }
            // Soon after it connects: the header's first part is not
            // acknowledged for about 40 ms (see `delay_acks`).
            thread::sleep(Duration::from_millis(2));
        }
    }

    /// The instrumented server's side of one upload.
    fn serve(&self, stream: &TcpStream, reply: Reply) -> Seen {
        // The first message: what one recv(1024) gets, as the classroom server reads the header.
        let first = wire::read_once(stream, FIRST_READ, self.timeout).bytes;
        // Hold back the reply, and see whether content comes anyway.
        let early = wire::read_for(stream, usize::MAX, HOLD_BACK).bytes;
        let after = match reply {
            Reply::GoAhead => {
                let _ = (&*stream).write_all(GO_AHEAD);
                let mut before = first.clone();
                before.extend_from_slice(&early);
                let (header, extra) = split_header(&first, &before);
                let want = header.map_or(0, |h| usize::try_from(h.size).unwrap_or(usize::MAX));
                let mut after = wire::read_for(stream, want.saturating_sub(extra), self.timeout);
                if !after.closed && !after.reset {
                    let rest = wire::wait_for_close(stream, self.timeout);
                    after.bytes.extend_from_slice(&rest.bytes);
                    after.closed = rest.closed;
                    after.reset = rest.reset;
                }
                after
            }
            Reply::Refuse => {
                let _ = (&*stream).write_all(b"no thanks");
                wire::read_for(stream, usize::MAX, HOLD_BACK)
            }
            Reply::Hang => {
                let _ = stream.shutdown(Shutdown::Both);
                Heard::default()
            }
        };
        Seen {
            first,
            early,
            after,
            status: None,
            stderr: String::new(),
        }
    }
}

/// Waits up to `wait` for the child, killing it if it is still running then.
fn wait_child(child: &mut Child, wait: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + wire::bounded(wait);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Everything that came before the reply: the first message and what followed it.
fn before_reply(seen: &Seen) -> Vec<u8> {
    let mut before = seen.first.clone();
    before.extend_from_slice(&seen.early);
    before
}

/// The header among the bytes that came before the reply, and how many bytes
/// came after it (content sent too early). When the 8 size bytes are followed
/// by the file's name, the header ends there, however it was cut into writes
/// (C3 judges that); otherwise the first message is the header, as a server
/// reading it with one recv() takes it.
fn split_header(first: &[u8], before: &[u8]) -> (Option<Header>, usize) {
    if before.len() >= SIZE_LEN + FILE_NAME.len()
        && &before[SIZE_LEN..SIZE_LEN + FILE_NAME.len()] == FILE_NAME.as_bytes()
    {
        let header = Header::decode(&before[..SIZE_LEN + FILE_NAME.len()]).ok();
        return (header, before.len() - SIZE_LEN - FILE_NAME.len());
    }
    match Header::decode(first) {
        Ok(header) => (Some(header), before.len() - first.len()),
        Err(_) => (Header::decode(before).ok(), 0),
    }
}

/// The header the client sent: every case needs one to judge anything.
fn header_of(seen: &Seen) -> Result<Header, CaseFailure> {
    let before = before_reply(seen);
    split_header(&seen.first, &before).0.ok_or_else(|| {
        let hint = if before.is_empty() && seen.status.is_some_and(|s| s.success()) {
            "the client connected and ended without sending a header: send the size and the name right after connect()"
        } else {
            "send the size (8 bytes, big-endian) and the name in one send()"
        };
        CaseFailure::new(
            "a header: 8 size bytes, then the name",
            wire::shown(&before),
            crash_or(seen, hint),
        )
    })
}

/// How the client ended, when it crashed (a non-zero exit or a signal): its
/// status and the last line it printed on stderr.
fn crash(seen: &Seen) -> Option<String> {
    let status = seen.status.filter(|s| !s.success())?;
    Some(how_it_ended("client", status, &seen.stderr))
}

/// `hint`, unless the client crashed: then what the crash says to fix.
fn crash_or(seen: &Seen, hint: &str) -> String {
    if crash(seen).is_none() {
        return hint.to_string();
    }
    let said = last_line(&seen.stderr);
    let fix = if said.contains("UnicodeDecodeError") {
        "it read the file as text: open it with open(name, \"rb\") and send the bytes read() returns"
    } else if said.contains("UnicodeEncodeError") {
        "it could not encode the name: name.encode(\"utf-8\")"
    } else if said.contains("FileNotFoundError") {
        "it looked for a file that is not there: open the file named by its {file} argument"
    } else if said.contains("IndexError") || said.contains("ValueError") {
        "it did not find its arguments: take the file, host and port from sys.argv, in the order the command gives them"
    } else if said.contains("ConnectionRefusedError") {
        "it connected to the wrong place: take the host and port from its arguments"
    } else {
        "read the error it printed (under seen:) and fix that first"
    };
    format!("the client crashed; {fix}")
}

/// The evidence a failed case was judged on: the bytes each way, how the
/// connection and the client ended, what it printed.
fn evidence(seen: &Seen, reply: Reply) -> Vec<String> {
    let before = before_reply(seen);
    let mut facts = vec![format!(
        "{} bytes in the first read, {} before the reply in all",
        seen.first.len(),
        before.len()
    )];
    let ended = if seen.after.reset {
        "then it reset the connection"
    } else if seen.after.closed {
        "then it closed the connection"
    } else {
        "and the connection was still open"
    };
    facts.push(match reply {
        Reply::GoAhead => format!(
            "{} bytes after \"go ahead\", {ended}",
            seen.after.bytes.len()
        ),
        Reply::Refuse => format!(
            "{} bytes after the reply \"no thanks\", {ended}",
            seen.after.bytes.len()
        ),
        Reply::Hang => "the checker closed the connection without a reply".to_string(),
    });
    facts.push(match (crash(seen), seen.status) {
        (Some(crash), _) => crash,
        (None, Some(_)) => "the client exited with status 0".to_string(),
        (None, None) => "the client was still running; the checker stopped it".to_string(),
    });
    facts
}

/// Content bytes that came before the reply.
fn sent_early(seen: &Seen) -> usize {
    split_header(&seen.first, &before_reply(seen)).1
}

/// C1.
fn size_is_right(seen: &Seen, content: &[u8]) -> Result<(), CaseFailure> {
    let header = header_of(seen)?;
    let size = content.len() as u64;
    if header.size == size {
        return Ok(());
    }
    let hint = protocol::misread_size(&header).unwrap_or_else(|| {
        "send os.path.getsize(name).to_bytes(8, \"big\"): the file's size, 8 bytes, big-endian"
            .into()
    });
    Err(CaseFailure::new(
        format!("{} ({size})", protocol::hex_dump(&size.to_be_bytes(), 8)),
        format!(
            "{} ({})",
            protocol::hex_dump(&header.size.to_be_bytes(), 8),
            header.size
        ),
        hint,
    ))
}

/// C2.
fn name_is_right(seen: &Seen) -> Result<(), CaseFailure> {
    let header = header_of(seen)?;
    if header.name == FILE_NAME.as_bytes() {
        return Ok(());
    }
    let hint = if header.name.starts_with(FILE_NAME.as_bytes()) {
        "more than the name came with the header: send nothing else until the reply"
    } else {
        "send the file's name, encoded as UTF-8, right after the 8 size bytes"
    };
    Err(CaseFailure::new(
        wire::shown(FILE_NAME.as_bytes()),
        wire::shown(&header.name),
        hint,
    ))
}

/// C3: the header came as one message: not the size alone, not part of it
/// with the rest later.
fn one_write(seen: &Seen, content: &[u8]) -> Result<(), CaseFailure> {
    let mut expected = (content.len() as u64).to_be_bytes().to_vec();
    expected.extend_from_slice(FILE_NAME.as_bytes());
    let cut = seen.first.len() <= SIZE_LEN
        || (seen.first.len() < expected.len() && expected.starts_with(&seen.first));
    if !cut {
        return Ok(());
    }
    let more = seen.early.len();
    Err(CaseFailure::new(
        format!("the {} bytes of the header in one message", expected.len()),
        format!(
            "{} first{}",
            wire::shown(&seen.first),
            if more > 0 { format!(", {more} more bytes later") } else { String::new() }
        ),
        "the size and the name went in two send() calls: a classroom server reads the header with one \
         recv(1024) and gets the size alone (across a network, and here, the second part waits for the \
         first to be acknowledged). Send them together: sock.sendall(size.to_bytes(8, \"big\") + name.encode())",
    ))
}

/// C4.
fn waits(seen: &Seen) -> Result<(), CaseFailure> {
    header_of(seen)?;
    let early = sent_early(seen);
    if early > 0 {
        return Err(CaseFailure::new(
            "nothing until the server says \"go ahead\"",
            format!(
                "{early} bytes of content while the reply was held back for {} ms",
                HOLD_BACK.as_millis()
            ),
            "after sending the header, wait for the reply (recv) and check it is b\"go ahead\" before sending the file",
        ));
    }
    if !seen.after.bytes.is_empty() {
        return Ok(());
    }
    // Nothing early proves nothing by itself: content after the reply shows the client waited for it.
    Err(CaseFailure::new(
        "the content after \"go ahead\", and none before",
        "no content before the reply, and none after it",
        crash_or(
            seen,
            "after the reply b\"go ahead\", send the file: only then can this case tell that the client waited",
        ),
    ))
}

/// C5, C6, C7.
fn exact_content(seen: &Seen, content: &[u8], timeout: Duration) -> Result<(), CaseFailure> {
    let header = header_of(seen)?;
    if content.is_empty() && header.size != 0 {
        return Err(CaseFailure::new(
            "a header with size 0 for an empty file",
            format!("size {}", header.size),
            "send os.path.getsize(name), which is 0 for an empty file",
        ));
    }
    let before = before_reply(seen);
    let mut got = before[before.len() - sent_early(seen)..].to_vec();
    got.extend_from_slice(&seen.after.bytes);
    let size = content.len();
    if got.len() < size {
        return Err(CaseFailure::new(
            format!("{size} bytes of content"),
            format!(
                "{} bytes, then the client {}",
                got.len(),
                if seen.after.closed {
                    "closed"
                } else {
                    "stopped"
                }
            ),
            crash_or(
                seen,
                "send the whole file: sendall(), or loop until every chunk of f.read() is sent",
            ),
        ));
    }
    if got.len() > size {
        return Err(CaseFailure::new(
            format!("{size} bytes of content, then the close"),
            format!("{} bytes", got.len()),
            "send exactly the file's bytes, nothing after them",
        ));
    }
    if got != content {
        return Err(CaseFailure::new(
            "the file's bytes",
            "as many bytes, but not the same ones",
            "open the file in binary mode (\"rb\") and send what read() returns",
        ));
    }
    if !seen.after.closed {
        return Err(CaseFailure::new(
            "the client to close the connection after the last byte",
            format!("still open after {}", crate::term::human_duration(timeout)),
            "close the socket (sock.close()) once the file is sent: the server waits for it",
        ));
    }
    if let Some(crash) = crash(seen) {
        return Err(CaseFailure::new(
            "the client to end cleanly once the file is sent",
            crash,
            crash_or(seen, ""),
        ));
    }
    Ok(())
}

/// C8: no content after a bad reply, and the client stops. Printing the
/// error and exiting 0, as the exercise's template does, passes; C10 asks
/// for more.
fn stops_on_bad_reply(seen: &Seen) -> Result<(), CaseFailure> {
    header_of(seen)?;
    let sent = seen.after.bytes.len() + sent_early(seen);
    if sent > 0 {
        return Err(CaseFailure::new(
            "no content after the reply \"no thanks\"",
            format!("{sent} bytes of content"),
            "compare the reply with b\"go ahead\" and stop (raise an error) when it differs",
        ));
    }
    match seen.status {
        Some(_) => Ok(()),
        None => Err(CaseFailure::new(
            "the client to stop after a bad reply",
            "it was still running",
            "compare the reply with b\"go ahead\" and stop when it differs",
        )),
    }
}

/// C9.
fn does_not_hang(seen: &Seen, timeout: Duration) -> Result<(), CaseFailure> {
    header_of(seen)?;
    match seen.status {
        Some(_) => Ok(()),
        None => Err(CaseFailure::new(
            "the client to end when the server closes without a reply",
            format!("still running after {}", crate::term::human_duration(timeout)),
            "recv() returns b\"\" when the server closed: treat it as a bad reply, not as \"try again\"",
        )),
    }
}

/// C10 (`--strict`): a bad reply ends the client with a non-zero exit, so
/// that a script running it can tell.
fn fails_on_bad_reply(seen: &Seen) -> Result<(), CaseFailure> {
    header_of(seen)?;
    match seen.status {
        Some(status) if !status.success() => Ok(()),
        Some(_) => Err(CaseFailure::new(
            "an error exit (not 0) after a bad reply",
            "exit status 0",
            "let the error end the program (raise it, or sys.exit(1) after printing it): \
             an except that catches it and goes on ends with 0",
        )),
        None => Err(CaseFailure::new(
            "the client to stop after a bad reply",
            "it was still running",
            "compare the reply with b\"go ahead\" and stop when it differs",
        )),
    }
}
