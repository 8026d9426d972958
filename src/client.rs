//! `ftx send`: upload many files concurrently, each on its own connection, and report each by name.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::net::{Shutdown, TcpStream};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use crossbeam_channel::Sender;

use crate::config::{Address, SendConfig};
use crate::exit_codes::ExitCode;
use crate::names;
use crate::pace::{self, Pace};
use crate::progress::{self, Counter, Event, Planned, Side};
use crate::protocol::{self, Header, ReplyError, GO_AHEAD, MAX_SEND_NAME};

/// Content goes out in slices this big, so progress is reported between them.
/// Each slice is one `sendfile(2)` loop on Linux (std's `io::copy` picks it).
const SLICE: u64 = 8 * 1024 * 1024;

/// How long to try each resolved address before the next.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long to wait for the rest of a reply that is not `go ahead`.
const REST_OF_REPLY: Duration = Duration::from_secs(1);

/// After the last byte, how long to wait for the server to close before calling it done.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// Runs `ftx send`: uploads every file, prints a summary, and says in the exit code whether any failed.
pub fn send(config: SendConfig) -> anyhow::Result<ExitCode> {
    let planned = Planned {
        files: config.files.len() as u64,
        bytes: config
            .files
            .iter()
            .filter_map(|f| std::fs::metadata(f).ok())
            .filter(|m| m.is_file())
            .map(|m| m.len())
            .sum(),
    };
    let (events, render) = progress::spawn(Side::Send, config.output, Some(planned));
    let started = Instant::now();
    upload_all(&config, &events);
    drop(events);
    let tally = render.join().expect("render thread");

    let elapsed = started.elapsed();
    if config.output == progress::Output::Json {
        progress::emit_summary(tally, elapsed);
        return Ok(ExitCode::from_failures(tally.failed));
    }
    let rate = tally.bytes as f64 / elapsed.as_secs_f64().max(1e-6);
    crate::say!(
        "{} sent, {} failed: {} in {} ({}/s) to {}",
        tally.done,
        tally.failed,
        indicatif::HumanBytes(tally.bytes),
        progress::seconds(elapsed),
        indicatif::HumanBytes(rate as u64),
        config.to.text
    );
    Ok(ExitCode::from_failures(tally.failed))
}

/// Uploads every file in `config`, at most `config.jobs` at a time, reporting each to `events`.
pub fn upload_all(config: &SendConfig, events: &Sender<Event>) {
    let files = &config.files;
    let (queue, work) = crossbeam_channel::bounded(files.len().max(1));
    for (id, path) in files.iter().enumerate() {
        queue
            .send((id as u64, path))
            .expect("queue has room for every file");
    }
    drop(queue);
    thread::scope(|scope| {
        for _ in 0..config.jobs.min(files.len()) {
            let work = work.clone();
            scope.spawn(move || {
                for (id, path) in work.iter() {
                    upload_one(id, path, config, events);
                }
            });
        }
    });
}

fn upload_one(id: u64, path: &Path, config: &SendConfig, events: &Sender<Event>) {
    let label = names::escape_for_terminal(path.as_os_str().as_bytes());
    let _ = events.send(Event::Waiting {
        id,
        peer: None,
        name: Some(label.clone()),
    });
    let started = Instant::now();
    let event = match upload(id, path, &label, config, events) {
        Ok(bytes) => Event::Finished {
            id,
            bytes,
            elapsed: started.elapsed(),
            saved_as: None,
        },
        Err(e) => Event::Failed {
            id,
            reason: format!("{e:#}"),
        },
    };
    let _ = events.send(event);
}

fn upload(
    id: u64,
    path: &Path,
    label: &str,
    config: &SendConfig,
    events: &Sender<Event>,
) -> anyhow::Result<u64> {
    let to = &config.to.text;
    let trace = |text: String| {
        if config.trace {
            let _ = events.send(Event::Trace { id, text });
        }
    };
    let file = File::open(path).context("cannot open")?;
    let meta = file.metadata().context("cannot read its size")?;
    if !meta.is_file() {
        bail!("not a regular file");
    }
    let name = wire_name(path)?;
    let size = meta.len();

    let mut stream = connect(&config.to)?;
    trace(format!("{label}: connected to {to}"));
    // The header is one small write that the server waits for: send it at once.
    stream.set_nodelay(true)?;
    let header = Header {
        size,
        name: name.to_vec(),
    };
    header.write_to(&mut stream).context("sending the header")?;
    for line in protocol::describe_header(&header) {
        trace(format!("client → {to}  {line}"));
    }
    // No timeout here: a client queued behind a busy server simply waits its turn.
    match protocol::read_reply(&mut stream) {
        Ok(()) => trace(format!(
            "{to} → client  \"go ahead\"  {}",
            protocol::hex(GO_AHEAD, 8)
        )),
        Err(ReplyError::Bad(mut bad)) => {
            stream.set_read_timeout(Some(REST_OF_REPLY))?;
            bad.read_rest(&mut stream);
            trace(format!("{to} → client  {}", protocol::hex(&bad.got, 16)));
            return Err(bad.into());
        }
        Err(e) => return Err(e.into()),
    }
    let counter = Counter::default();
    let _ = events.send(Event::Started {
        id,
        name: label.to_string(),
        size,
        counter: counter.clone(),
    });

    let mut pace = config.rate.map(Pace::new);
    send_content(
        &file,
        &mut stream,
        size,
        &counter,
        config.sendfile,
        pace.as_mut(),
    )?;
    trace(format!("client → {to}  {size} content bytes"));
    stream.shutdown(Shutdown::Write).context("closing")?;
    trace(format!("client closed its side of the connection to {to}"));
    if wait_for_close(&mut stream) {
        trace(format!("{to} closed the connection"));
    }
    Ok(size)
}

/// Sends exactly `size` bytes of `file`, counting them as they go: with
/// sendfile(2) on Linux (the kernel copies from the page cache straight into
/// the socket), else, or where sendfile refuses, through a buffer.
fn send_content(
    file: &File,
    stream: &mut TcpStream,
    size: u64,
    counter: &Counter,
    sendfile: bool,
    mut pace: Option<&mut Pace>,
) -> anyhow::Result<()> {
    let mut sent = 0;
    let slice = pace::chunk(pace.as_deref(), SLICE as usize) as u64;
    #[cfg(target_os = "linux")]
    if sendfile {
        use rustix::io::Errno;
        while sent < size {
            let want = (size - sent).min(slice) as usize;
            let mut offset = sent;
            match rustix::fs::sendfile(&*stream, file, Some(&mut offset), want) {
                Ok(0) => bail!("the file shrank while sending ({sent} of {size} bytes sent)"),
                Ok(n) => {
                    sent += n as u64;
                    counter.add(n as u64);
                    if let Some(pace) = pace.as_deref_mut() {
                        pace.moved(n as u64);
                    }
                }
                Err(Errno::INTR) => {}
                Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) if sent == 0 => break,
                Err(e) => return Err(io::Error::from(e)).context("sending"),
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = sendfile;
    if sent == size {
        return Ok(());
    }
    let mut reader = file;
    reader
        .seek(SeekFrom::Start(sent))
        .context("reading the file")?;
    while sent < size {
        let n = io::copy(&mut reader.take((size - sent).min(slice)), stream).context("sending")?;
        if n == 0 {
            bail!("the file shrank while sending ({sent} of {size} bytes sent)");
        }
        sent += n;
        counter.add(n);
        if let Some(pace) = pace.as_deref_mut() {
            pace.moved(n);
        }
    }
    Ok(())
}

/// The name sent for `path`: its base name, if a classroom server can take it whole.
fn wire_name(path: &Path) -> anyhow::Result<&[u8]> {
    let Some(name) = path.file_name() else {
        bail!("has no file name to send");
    };
    let name = name.as_bytes();
    if name.len() > MAX_SEND_NAME {
        bail!(
            "its name is {} bytes; classroom servers read at most {MAX_SEND_NAME} (rename it)",
            name.len()
        );
    }
    Ok(name)
}

fn connect(to: &Address) -> anyhow::Result<TcpStream> {
    let mut last = None;
    for addr in &to.resolved {
        match TcpStream::connect_timeout(addr, CONNECT_TIMEOUT) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    let e = last.unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"));
    Err(e).with_context(|| format!("cannot connect to {}", to.text))
}

/// The server closes once it has every byte; waiting for that means "sent" also
/// means "received". A server that never closes is given up on after a while.
/// True if the server closed.
fn wait_for_close(stream: &mut TcpStream) -> bool {
    let _ = stream.set_read_timeout(Some(CLOSE_WAIT));
    let mut sink = [0u8; 64];
    while let Ok(n) = stream.read(&mut sink) {
        if n == 0 {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_the_base_name_and_refuses_names_a_classroom_server_would_cut() {
        assert_eq!(
            wire_name(Path::new("data/sub/notes.txt")).unwrap(),
            b"notes.txt"
        );
        assert!(wire_name(Path::new("..")).is_err());
        let longest = "n".repeat(MAX_SEND_NAME);
        assert_eq!(wire_name(Path::new(&longest)).unwrap().len(), 1016);
        let err = wire_name(Path::new(&format!("{longest}x"))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "its name is 1017 bytes; classroom servers read at most 1016 (rename it)"
        );
    }
}
