//! Hostile-load harness: silent and slow clients, tricklers, 10,000 clients at once, memory after 90,000 connections, batch mode's attacks and a flood of hellos; loopback only, bounded, stops by itself.
//!
//! Run: `cargo bench --bench stress` (about three minutes); `-- --quick` for
//! smaller counts; `-- --only slow,trickle,burst,memory,batch,hello` for parts; `-- --write
//! RELIABILITY.md` to write the results there with the commit they were
//! measured on. Clients come from many loopback addresses (127.0.x.y), so no
//! single address runs out of ports. Every scenario has a deadline and kills
//! what it started.

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ftx::noise::Noise;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

#[path = "support/batch_attacks.rs"]
mod batch_attacks;
#[path = "support/hello_flood.rs"]
mod hello_flood;

/// A scenario that has not finished by then is cut short, and says so.
const SCENARIO_LIMIT: Duration = Duration::from_secs(120);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let only: Option<Vec<String>> = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(|list| list.split(',').map(str::to_string).collect());
    let wanted = |part: &str| only.as_ref().is_none_or(|o| o.iter().any(|p| p == part));
    let write_to = args
        .iter()
        .position(|a| a == "--write")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from);
    raise_open_files();
    // Which code is measured: as it is when the run starts (the binary is built by then).
    let provenance = provenance();

    let mut report = Vec::new();
    if wanted("slow") {
        report.push(slow_and_silent(if quick { 500 } else { 2000 }));
    }
    if wanted("trickle") {
        report.push(tricklers());
    }
    if wanted("burst") {
        report.push(burst(if quick { 2000 } else { 10_000 }));
    }
    if wanted("memory") {
        report.push(memory(if quick {
            (6000, 3000)
        } else {
            (60_000, 30_000)
        }));
    }
    if wanted("batch") {
        report.push(batch_attacks::slow_batches());
        report.push(batch_attacks::descriptor_flood(if quick {
            2000
        } else {
            20_000
        }));
        report.push(batch_attacks::record_flood(if quick { 20 } else { 200 }));
        report.push(batch_attacks::blocked_output(if quick {
            5000
        } else {
            20_000
        }));
    }
    if wanted("hello") {
        report.push(hello_flood::hello_flood(
            if quick { 200 } else { 1000 },
            if quick { 2 } else { 5 },
        ));
    }
    let command = format!(
        "cargo bench --bench stress --{}",
        args.iter()
            .skip(1)
            .filter(|a| *a != "--bench")
            .map(|a| format!(" {a}"))
            .collect::<String>()
    );
    let text = document(&report, &command, &provenance);
    print!("{text}");
    if let Some(path) = write_to {
        fs::write(&path, &text).expect("write the results");
        eprintln!("written to {}", path.display());
    }
}

/// The commit measured, marked when the working tree differs from it.
fn provenance() -> String {
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let dirty = Command::new("git")
        .args([
            "status",
            "--porcelain",
            "--untracked-files=no",
            "--",
            "src",
            "benches",
            "tests",
            "Cargo.toml",
            "Cargo.lock",
        ])
        .output()
        .is_ok_and(|o| !o.stdout.is_empty());
    format!(
        "commit {commit}{}",
        if dirty {
            " (with uncommitted changes)"
        } else {
            ""
        }
    )
}

/// The results as a Markdown document, with what produced them.
fn document(sections: &[String], command: &str, provenance: &str) -> String {
    let date = Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let cores = thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "# Reliability under hostile load\n\n\
         Written by `benches/stress.rs`; do not edit by hand. Produced by `{command}` on {date}, \
         {provenance}, on a machine with {cores} cores, loopback only, `ftx serve` in release mode \
         with its drop folder on tmpfs. Clients come from many loopback addresses (127.0.x.y). \
         The machines are shared: times vary from run to run; counts do not.\n\n{}",
        sections.join("\n")
    )
}

/// The harness opens thousands of sockets: raise its soft limit to the hard one.
fn raise_open_files() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    limit.current = limit.maximum;
    let _ = setrlimit(Resource::Nofile, limit);
}

/// A source address for client number `n`: 127.0.x.y, never 127.0.0.1.
fn source(n: usize) -> IpAddr {
    let n = n % (250 * 250);
    let third = u8::try_from(n / 250).expect("under 250");
    let fourth = u8::try_from(n % 250 + 2).expect("under 252");
    IpAddr::V4(Ipv4Addr::new(127, 0, third, fourth))
}

/// A socket from `from` to `to`, connecting: non-blocking, or blocking until connected.
fn open_from(from: IpAddr, to: SocketAddr, blocking: bool) -> std::io::Result<TcpStream> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType};
    let fd = rustix::net::socket_with(
        AddressFamily::INET,
        SocketType::STREAM,
        if blocking {
            SocketFlags::CLOEXEC
        } else {
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK
        },
        None,
    )?;
    rustix::net::bind(&fd, &SocketAddr::new(from, 0))?;
    match rustix::net::connect(&fd, &to) {
        Ok(()) | Err(rustix::io::Errno::INPROGRESS) => Ok(TcpStream::from(fd)),
        Err(e) => Err(e.into()),
    }
}

/// `ftx serve` in release mode on a free loopback port, its log drained and counted; killed on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
    saved: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
}

impl Server {
    fn start(name: &str, extra: &[&str]) -> Server {
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("ftx-stress-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_ftx"))
            .args(["serve", "--plain", "-l", "127.0.0.1:0", "-d"])
            .arg(&dir)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ftx serve");
        let mut lines = BufReader::new(child.stderr.take().unwrap());
        let mut first = String::new();
        lines.read_line(&mut first).unwrap();
        let addr = first
            .split_whitespace()
            .find_map(|w| w.trim_end_matches(',').parse().ok())
            .unwrap_or_else(|| panic!("no address in {first:?}"));
        let (saved, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (s, f) = (Arc::clone(&saved), Arc::clone(&failed));
        thread::spawn(move || {
            let mut line = String::new();
            while lines.read_line(&mut line).unwrap_or(0) > 0 {
                if line.starts_with("saved ") {
                    s.fetch_add(1, Ordering::Relaxed);
                } else if line.starts_with("failed ") {
                    f.fetch_add(1, Ordering::Relaxed);
                }
                line.clear();
            }
        });
        Server {
            child,
            addr,
            dir,
            saved,
            failed,
        }
    }

    /// Peak and current resident memory, in KiB.
    fn memory_kib(&self) -> (u64, u64) {
        memory_kib(self.child.id())
    }
}

/// Peak and current resident memory of process `pid`, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// KiB as people read them.
fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// One normal upload over a blocking socket: (time to `go ahead`, time to the receipt).
fn normal_upload(
    addr: SocketAddr,
    name: &str,
    content: &[u8],
) -> Result<(Duration, Duration), String> {
    let started = Instant::now();
    let mut stream = open_from(source(60_000), addr, true).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(SCENARIO_LIMIT)).unwrap();
    let mut header = (content.len() as u64).to_be_bytes().to_vec();
    header.extend_from_slice(name.as_bytes());
    stream.write_all(&header).map_err(|e| e.to_string())?;
    let mut reply = [0u8; 8];
    stream.read_exact(&mut reply).map_err(|e| e.to_string())?;
    if &reply != b"go ahead" {
        return Err(format!("reply {reply:?}"));
    }
    let go_ahead = started.elapsed();
    stream.write_all(content).map_err(|e| e.to_string())?;
    stream
        .shutdown(Shutdown::Write)
        .map_err(|e| e.to_string())?;
    let mut receipt = String::new();
    stream
        .read_to_string(&mut receipt)
        .map_err(|e| e.to_string())?;
    if !receipt.starts_with("ftx/1 {\"status\":\"saved\"") {
        return Err(format!("receipt {receipt:?}"));
    }
    Ok((go_ahead, started.elapsed()))
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// 2,000 silent and 2,000 slow-header connections, then normal uploads: how long until `go ahead`?
fn slow_and_silent(each: usize) -> String {
    eprintln!("slow: {each} silent + {each} slow-header connections");
    let server = Server::start("slow", &["-w", "8"]);
    let mut silent = Vec::new();
    let mut slow = Vec::new();
    for n in 0..each {
        if let Ok(s) = open_from(source(n), server.addr, true) {
            silent.push(s);
        }
        if let Ok(s) = open_from(source(each + n), server.addr, true) {
            s.set_nonblocking(true).unwrap();
            slow.push(s);
        }
    }
    // The slow ones send a header byte every 2 s from another thread, for as long as the run.
    let stop = Arc::new(AtomicU64::new(0));
    let trickle = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            while stop.load(Ordering::Relaxed) == 0 {
                for s in &slow {
                    let _ = (&*s).write(&[0]);
                }
                thread::sleep(Duration::from_secs(2));
            }
            slow.len()
        })
    };
    thread::sleep(Duration::from_secs(3));
    let content = Noise::bytes(1, 1 << 20);
    let mut rows = Vec::new();
    for round in 0..5 {
        let result = normal_upload(server.addr, &format!("normal-{round}.bin"), &content);
        rows.push(match result {
            Ok((go_ahead, done)) => {
                format!("| {} | {} | {} |", round + 1, secs(go_ahead), secs(done))
            }
            Err(e) => format!("| {} | failed: {e} | |", round + 1),
        });
        thread::sleep(Duration::from_millis(500));
    }
    stop.store(1, Ordering::Relaxed);
    let slow_count = trickle.join().unwrap();
    let saved_ok = (0..5)
        .all(|r| fs::read(server.dir.join(format!("normal-{r}.bin"))).is_ok_and(|b| b == content));
    format!(
        "## Silent and slow clients do not hold the pool\n\n\
         `ftx serve -w 8` with default settings; {} silent connections and {slow_count} that send one \
         header byte every 2 s stay open; then five normal 1 MiB uploads, one after another.\n\
         Goal: `go ahead` within 5 s.\n\n\
         | upload | `go ahead` after | receipt after |\n| ---: | ---: | ---: |\n{}\n\n\
         All five saved byte-identical: {}.\n",
        silent.len(),
        rows.join("\n"),
        if saved_ok { "yes" } else { "**no**" }
    )
}

/// Eight clients that trickle content hold every worker: how long until a normal client is served?
fn tricklers() -> String {
    eprintln!("trickle: 8 content-stage tricklers against -w 8");
    let server = Server::start("trickle", &["-w", "8"]);
    let dropped_after: Vec<_> = (0..8)
        .map(|n| {
            let addr = server.addr;
            thread::spawn(move || {
                let mut s = open_from(source(n), addr, true).ok()?;
                s.write_all(&[0, 0, 0, 0, 0, 0, 0x10, 0, b't', b'0' + n as u8])
                    .ok()?;
                let mut reply = [0u8; 8];
                s.read_exact(&mut reply).ok()?;
                let started = Instant::now();
                // One byte every 3 s until the server drops the connection (or the scenario's limit).
                while started.elapsed() < SCENARIO_LIMIT {
                    if s.write_all(b"x").is_err() {
                        return Some(started.elapsed());
                    }
                    thread::sleep(Duration::from_secs(3));
                }
                None
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(500));
    let result = normal_upload(server.addr, "normal.bin", &Noise::bytes(2, 1 << 20));
    let dropped: Vec<String> = dropped_after
        .into_iter()
        .map(|t| t.join().unwrap().map_or("not dropped".into(), secs))
        .collect();
    format!(
        "## Tricklers lose their worker\n\n\
         `ftx serve -w 8` with default settings (`--min-rate 1KiB` per 20 s window): eight clients get \
         `go ahead` and then send one byte every 3 s, holding every worker; a ninth client uploads 1 MiB.\n\
         Goal: served within the minimum-rate window (20 s) plus a few seconds.\n\n\
         | measure | value |\n| --- | ---: |\n\
         | normal client: `go ahead` after | {} |\n\
         | normal client: receipt after | {} |\n\
         | tricklers: their write failed after (each; a write every 3 s) | {} |\n",
        result.as_ref().map_or_else(|e| format!("failed: {e}"), |(g, _)| secs(*g)),
        result.as_ref().map_or_else(|_| String::new(), |(_, d)| secs(*d)),
        dropped.join(", ")
    )
}

/// Where one client of a crowd is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Connecting,
    AwaitReply,
    Sending,
    AwaitReceipt,
    Saved,
    Refused,
    Reset,
    Failed,
}

/// One client of a crowd, driven by the poller.
struct Crowd {
    stream: TcpStream,
    stage: Stage,
    header: Vec<u8>,
    content: Arc<Vec<u8>>,
    sent: usize,
    said: Vec<u8>,
    /// When the socket was opened, then when the header went out.
    started: Instant,
    connected: Option<Duration>,
    go_ahead: Option<Duration>,
}

impl Crowd {
    /// Moves as far as the socket allows without waiting.
    fn advance(&mut self) {
        loop {
            let before = (self.stage, self.sent, self.said.len());
            match self.stage {
                Stage::Connecting => match self.stream.take_error() {
                    Ok(Some(_)) | Err(_) => self.stage = Stage::Failed,
                    Ok(None) if self.stream.peer_addr().is_ok() => {
                        self.connected = Some(self.started.elapsed());
                        self.started = Instant::now();
                        match (&self.stream).write(&self.header) {
                            Ok(n) if n == self.header.len() => self.stage = Stage::AwaitReply,
                            Ok(_) => self.stage = Stage::Failed,
                            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                            Err(_) => self.stage = Stage::Reset,
                        }
                    }
                    Ok(None) => return,
                },
                Stage::AwaitReply => {
                    let mut buf = [0u8; 512];
                    match (&self.stream).read(&mut buf) {
                        Ok(0) => self.stage = self.ended(),
                        Ok(n) => {
                            self.said.extend_from_slice(&buf[..n]);
                            if self.said == b"go ahead" {
                                self.go_ahead = Some(self.started.elapsed());
                                self.said.clear();
                                self.stage = Stage::Sending;
                            } else if !b"go ahead".starts_with(&self.said) {
                                self.stage = Stage::Refused;
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                        Err(_) => self.stage = Stage::Reset,
                    }
                }
                Stage::Sending => {
                    if self.sent == self.content.len() {
                        let _ = self.stream.shutdown(Shutdown::Write);
                        self.stage = Stage::AwaitReceipt;
                        continue;
                    }
                    match (&self.stream).write(&self.content[self.sent..]) {
                        Ok(n) => self.sent += n,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                        Err(_) => self.stage = Stage::Reset,
                    }
                }
                Stage::AwaitReceipt => {
                    let mut buf = [0u8; 512];
                    match (&self.stream).read(&mut buf) {
                        Ok(0) => self.stage = self.ended(),
                        Ok(n) => self.said.extend_from_slice(&buf[..n]),
                        Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                        Err(_) => self.stage = Stage::Reset,
                    }
                }
                Stage::Saved | Stage::Refused | Stage::Reset | Stage::Failed => return,
            }
            if before == (self.stage, self.sent, self.said.len()) {
                return;
            }
        }
    }

    /// What a clean close means at this point.
    fn ended(&self) -> Stage {
        if self.said.starts_with(b"ftx/1 {\"status\":\"saved\"") {
            Stage::Saved
        } else if self.said.starts_with(b"refused: ") {
            Stage::Refused
        } else {
            Stage::Failed
        }
    }

    fn done(&self) -> bool {
        matches!(
            self.stage,
            Stage::Saved | Stage::Refused | Stage::Reset | Stage::Failed
        )
    }
}

/// How a crowd fared.
struct Tally {
    stages: HashMap<&'static str, usize>,
    /// How long opening every connection took.
    opened: Duration,
    /// From opening a socket to its connection being up, per client.
    connected: Vec<Duration>,
    /// From the header sent to `go ahead`, per client.
    go_ahead: Vec<Duration>,
    took: Duration,
    cut_short: bool,
}

/// Starts `count` clients (`first_source` onwards) as fast as sockets open and drives them all to the end.
fn crowd(
    addr: SocketAddr,
    count: usize,
    first_source: usize,
    make: &dyn Fn(usize) -> (Vec<u8>, Arc<Vec<u8>>),
) -> Tally {
    let mut poll = Poll::new().unwrap();
    let started = Instant::now();
    let mut clients: Vec<Crowd> = Vec::with_capacity(count);
    let mut events = Events::with_capacity(4096);
    let mut left = count;
    let mut opened = Duration::ZERO;
    let mut cut_short = false;
    while left > 0 {
        if started.elapsed() > SCENARIO_LIMIT {
            cut_short = true;
            break;
        }
        // Open the next batch, then see to what happened meanwhile, so that no
        // client waits for the harness to finish opening the others.
        let batch = clients.len()..(clients.len() + 256).min(count);
        for n in batch.clone() {
            let (header, content) = make(n);
            let stream =
                open_from(source(first_source + n), addr, false).expect("open a client socket");
            poll.registry()
                .register(
                    &mut SourceFd(&stream.as_raw_fd()),
                    Token(n),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .unwrap();
            clients.push(Crowd {
                stream,
                stage: Stage::Connecting,
                header,
                content,
                sent: 0,
                said: Vec::new(),
                started: Instant::now(),
                connected: None,
                go_ahead: None,
            });
        }
        if clients.len() == count && opened.is_zero() {
            opened = started.elapsed();
        }
        let wait = if clients.len() < count {
            Duration::ZERO
        } else {
            Duration::from_millis(200)
        };
        poll.poll(&mut events, Some(wait)).unwrap();
        for event in &events {
            let client = &mut clients[event.token().0];
            if !client.done() {
                client.advance();
                if client.done() {
                    left -= 1;
                    let _ = poll
                        .registry()
                        .deregister(&mut SourceFd(&client.stream.as_raw_fd()));
                }
            }
        }
    }
    let mut stages = HashMap::new();
    for c in &clients {
        let name = match c.stage {
            Stage::Saved => "saved",
            Stage::Refused => "refused",
            Stage::Reset => "reset",
            Stage::Failed => "failed",
            _ => "unfinished",
        };
        *stages.entry(name).or_insert(0) += 1;
    }
    Tally {
        stages,
        opened,
        connected: clients.iter().filter_map(|c| c.connected).collect(),
        go_ahead: clients.iter().filter_map(|c| c.go_ahead).collect(),
        took: started.elapsed(),
        cut_short,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

/// 10,000 clients connect at once and upload 64 KiB each to `-w 8`.
fn burst(count: usize) -> String {
    eprintln!("burst: {count} clients at once, 64 KiB each");
    let server = Server::start("burst", &["-w", "8"]);
    let make = |n: usize| {
        let content = Arc::new(Noise::bytes(n as u64, 64 * 1024));
        let mut header = (64u64 * 1024).to_be_bytes().to_vec();
        header.extend_from_slice(format!("burst-{n:05}.bin").as_bytes());
        (header, content)
    };
    let tally = crowd(server.addr, count, 0, &make);
    let mut intact = 0;
    for n in 0..count {
        if fs::read(server.dir.join(format!("burst-{n:05}.bin")))
            .is_ok_and(|b| b == Noise::bytes(n as u64, 64 * 1024))
        {
            intact += 1;
        }
    }
    let files = fs::read_dir(&server.dir).map(Iterator::count).unwrap_or(0);
    let mut waits = tally.go_ahead.clone();
    waits.sort();
    let mut connects = tally.connected.clone();
    connects.sort();
    let (peak, rss) = server.memory_kib();
    format!(
        "## {count} clients at once\n\n\
         `ftx serve -w 8`, default settings; {count} clients open their connections as fast as \
         the harness can (all within {}), each uploads 64 KiB and waits for its receipt.\n\
         Goal: every file saved intact, none lost, none reset, no waves of TCP retries (a retried \
         connection takes a second or more to come up).\n\n\
         | measure | value |\n| --- | ---: |\n\
         | files in the drop folder, intact | {intact} of {count} ({files} files in all) |\n\
         | clients with a receipt (saved) | {} |\n\
         | reset / refused / failed / unfinished | {} / {} / {} / {} |\n\
         | all done after | {}{} |\n\
         | connected after (socket opened to connection up): median / max | {} / {} |\n\
         | `go ahead` after the header: median / 99th percentile / max | {} / {} / {} |\n\
         | server log: saved / failed | {} / {} |\n\
         | server memory: peak / at the end | {:.1} MiB / {:.1} MiB |\n",
        secs(tally.opened),
        tally.stages.get("saved").unwrap_or(&0),
        tally.stages.get("reset").unwrap_or(&0),
        tally.stages.get("refused").unwrap_or(&0),
        tally.stages.get("failed").unwrap_or(&0),
        tally.stages.get("unfinished").unwrap_or(&0),
        secs(tally.took),
        if tally.cut_short { " (cut short)" } else { "" },
        secs(percentile(&connects, 0.5)),
        secs(connects.last().copied().unwrap_or_default()),
        secs(percentile(&waits, 0.5)),
        secs(percentile(&waits, 0.99)),
        secs(waits.last().copied().unwrap_or_default()),
        server.saved.load(Ordering::Relaxed),
        server.failed.load(Ordering::Relaxed),
        peak as f64 / 1024.0,
        rss as f64 / 1024.0,
    )
}

/// 60,000 hostile connections and 30,000 normal uploads, in waves: does the server's memory stay flat?
fn memory((hostile, normal): (usize, usize)) -> String {
    eprintln!("memory: {hostile} hostile connections, {normal} normal uploads");
    let server = Server::start("memory", &["-w", "8"]);
    let (start_peak, _) = server.memory_kib();
    let wave = 1000;
    let empty = Arc::new(Vec::new());
    let hostile_header = {
        let mut h = u64::MAX.to_be_bytes().to_vec();
        h.extend(std::iter::repeat_n(b'h', 4096));
        h
    };
    let mut refused = 0;
    let mut n = 0;
    while n < hostile {
        let make = |_| (hostile_header.clone(), Arc::clone(&empty));
        let tally = crowd(server.addr, wave.min(hostile - n), n, &make);
        refused += tally.stages.get("refused").unwrap_or(&0);
        n += wave;
    }
    let (after_hostile, _) = server.memory_kib();
    let content = Arc::new(Noise::bytes(7, 1024));
    let mut saved = 0;
    let mut n = 0;
    while n < normal {
        let make = |i: usize| {
            let mut h = 1024u64.to_be_bytes().to_vec();
            h.extend_from_slice(format!("m-{:05}.bin", n + i).as_bytes());
            (h, Arc::clone(&content))
        };
        let tally = crowd(server.addr, wave.min(normal - n), n, &make);
        saved += tally.stages.get("saved").unwrap_or(&0);
        n += wave;
    }
    let (peak, rss) = server.memory_kib();
    format!(
        "## Memory stays flat\n\n\
         `ftx serve -w 8`: {hostile} connections that announce 2^64-1 bytes with a 4 KiB name (each \
         is refused), then {normal} normal 1 KiB uploads, in waves of {wave} at once.\n\
         Goal: the server under 32 MiB resident.\n\n\
         | measure | value |\n| --- | ---: |\n\
         | hostile connections refused | {refused} of {hostile} |\n\
         | normal uploads saved (receipt) | {saved} of {normal} |\n\
         | peak resident: at start / after the hostile ones / at the end | {} / {} / {} |\n\
         | resident at the end | {} |\n",
        mib(start_peak),
        mib(after_hostile),
        mib(peak),
        mib(rss),
    )
}
