//! The hello flood of the hostile-load harness (PROTOCOL.md section 5): questions from a thousand loopback sources as fast as two threads send them, bounded in time, measuring what the server answered, what it held, and whether uploads and an honest `ftx send` were served meanwhile.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ftx::noise::Noise;

use crate::batch_attacks::served;
use crate::{memory_kib, mib, secs, source, Server};

/// How a question starts (PROTOCOL.md H1): written out here as a hostile
/// client would, from the document, not from ftx's code.
const QUESTION: &[u8; 8] = b"\xffftx/h1\n";

/// How an answer starts (H2).
const ANSWER: &[u8; 8] = b"\xffftx/H1\n";

/// A question's length (H1).
const QUESTION_LEN: usize = 256;

/// The server's limits, as README's limits table documents them: answers a
/// second to one source, and past each source's first, in all.
const PER_SOURCE_A_SECOND: u64 = 100;
const REPEATS_A_SECOND: u64 = 1000;

/// How long one source asks alone, before the flood.
const ALONE_FOR: Duration = Duration::from_millis(1500);

/// A question with nonce `n` (16 bytes: `n` twice).
fn question(n: u64) -> [u8; QUESTION_LEN] {
    let mut bytes = [0u8; QUESTION_LEN];
    bytes[..8].copy_from_slice(QUESTION);
    bytes[8..16].copy_from_slice(&n.to_be_bytes());
    bytes[16..24].copy_from_slice(&n.to_be_bytes());
    bytes
}

/// What the flooders counted.
#[derive(Default)]
struct Tally {
    asked: u64,
    asked_bytes: u64,
    answered: u64,
    answered_bytes: u64,
    /// Answers whose nonce is not one this source asked with (should be none).
    wrong_nonce: u64,
    /// Answers per source number.
    per_source: HashMap<usize, u64>,
}

impl Tally {
    /// Reads every answer waiting on `socket`, source number `n`'s, which has
    /// asked with the nonces of rounds up to `round`.
    fn drain(&mut self, n: usize, socket: &UdpSocket, round: u64) {
        let mut reply = [0u8; 2 * QUESTION_LEN];
        while let Ok(len) = socket.recv(&mut reply) {
            let answer = &reply[..len];
            self.answered += 1;
            self.answered_bytes += len as u64;
            *self.per_source.entry(n).or_insert(0) += 1;
            let nonce = answer
                .get(8..16)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes);
            let ours = answer.starts_with(ANSWER)
                && nonce.is_some_and(|f| f >> 32 == n as u64 && f & 0xffff_ffff <= round);
            if !ours {
                self.wrong_nonce += 1;
            }
        }
    }

    /// Adds what another flooder counted.
    fn add(&mut self, other: Tally) {
        self.asked += other.asked;
        self.asked_bytes += other.asked_bytes;
        self.answered += other.answered;
        self.answered_bytes += other.answered_bytes;
        self.wrong_nonce += other.wrong_nonce;
        self.per_source.extend(other.per_source);
    }
}

/// Sends questions from `sources` (one socket each, bound to its loopback
/// address, not blocking) round and round until `stop`, reading what comes back.
fn flood(to: SocketAddr, sources: std::ops::Range<usize>, stop: &AtomicBool) -> Tally {
    let sockets: Vec<(usize, UdpSocket)> = sources
        .filter_map(|n| {
            let socket = UdpSocket::bind(SocketAddr::new(source(n), 0)).ok()?;
            socket.set_nonblocking(true).ok()?;
            Some((n, socket))
        })
        .collect();
    let mut tally = Tally::default();
    let mut round = 0u64;
    while !stop.load(Ordering::Relaxed) {
        for (n, socket) in &sockets {
            if socket
                .send_to(&question((*n as u64) << 32 | round), to)
                .is_ok()
            {
                tally.asked += 1;
                tally.asked_bytes += QUESTION_LEN as u64;
            }
            tally.drain(*n, socket, round);
        }
        round += 1;
    }
    // Answers still on their way.
    thread::sleep(Duration::from_millis(50));
    for (n, socket) in &sockets {
        tally.drain(*n, socket, round);
    }
    tally
}

/// How long one honest question from 127.0.0.1 waits for its answer (asked
/// again every 100 ms, up to `patience`); `None` if none came.
fn honest_question(to: SocketAddr, patience: Duration) -> Option<Duration> {
    let socket = UdpSocket::bind("127.0.0.1:0").ok()?;
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .ok()?;
    let nonce = 0xfeed_0000_0000_0001;
    let started = Instant::now();
    let mut reply = [0u8; 2 * QUESTION_LEN];
    while started.elapsed() < patience {
        socket.send_to(&question(nonce), to).ok()?;
        if let Ok(len) = socket.recv(&mut reply) {
            if reply[..len].starts_with(ANSWER) && reply[8..16] == nonce.to_be_bytes() {
                return Some(started.elapsed());
            }
        }
    }
    None
}

/// CPU time of the server's thread named `name`, from /proc.
fn thread_cpu(pid: u32, name: &str) -> Duration {
    let ticks: u64 = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|task| {
            let comm = std::fs::read_to_string(task.path().join("comm")).ok()?;
            if comm.trim() != name {
                return None;
            }
            let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
            // The fields after the command's closing parenthesis: utime is the 12th, stime the 13th.
            let after = stat.rsplit_once(')')?.1;
            let fields: Vec<&str> = after.split_whitespace().collect();
            Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
        })
        .sum();
    Duration::from_millis(ticks * 10)
}

/// `ftx send --json` of one 64 KiB file: its outcome in words.
fn ftx_send_one(server: &Server, work: &std::path::Path) -> String {
    let file = work.join("honest.bin");
    std::fs::write(&file, Noise::bytes(9, 64 * 1024)).unwrap();
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_ftx"))
        .args(["send", "--json", "--timeout", "20s", "-t"])
        .arg(server.addr.to_string())
        .arg(&file)
        .output()
        .expect("run ftx send");
    let took = started.elapsed();
    let said = String::from_utf8_lossy(&out.stdout);
    let finished = said
        .lines()
        .find(|l| l.contains("\"event\":\"finished\""))
        .unwrap_or("");
    if !out.status.success() || finished.is_empty() {
        return format!("**failed** (exit {:?})", out.status.code());
    }
    let verified = finished.contains("\"verified\":true");
    format!(
        "saved after {} ({})",
        secs(took),
        if verified {
            "verified: the hello was answered"
        } else {
            "not verified: no hello answer, so a classic upload"
        }
    )
}

/// A thousand sources ask as fast as they can for `seconds`: the answers stay
/// within the limits, no byte more than asked, memory flat, uploads served.
pub fn hello_flood(sources: usize, seconds: u64) -> String {
    eprintln!("hello: {sources} sources asking as fast as they can for {seconds} s");
    let server = Server::start("hello", &["-w", "4"]);
    let pid = server.child.id();
    let (_, rss_before) = memory_kib(pid);
    let before = honest_question(server.addr, Duration::from_secs(2));
    // One source alone first: what the per-source limit leaves it.
    let alone = {
        let stop = Arc::new(AtomicBool::new(false));
        let asking = {
            let stop = Arc::clone(&stop);
            let udp = server.addr;
            thread::spawn(move || flood(udp, sources..sources + 1, &stop))
        };
        thread::sleep(ALONE_FOR);
        stop.store(true, Ordering::Relaxed);
        asking.join().unwrap()
    };
    let cpu_before = thread_cpu(pid, "hello");
    let stop = Arc::new(AtomicBool::new(false));
    let udp = server.addr;
    let half = sources / 2;
    let flooders: Vec<_> = [0..half, half..sources]
        .into_iter()
        .map(|range| {
            let stop = Arc::clone(&stop);
            thread::spawn(move || flood(udp, range, &stop))
        })
        .collect();
    let started = Instant::now();
    thread::sleep(Duration::from_millis(300));
    let upload = served(server.addr, "normal.bin");
    let honest_during = honest_question(server.addr, Duration::from_secs(1));
    let work = server.dir.with_extension("work");
    std::fs::create_dir_all(&work).unwrap();
    let sent = ftx_send_one(&server, &work);
    thread::sleep(Duration::from_secs(seconds).saturating_sub(started.elapsed()));
    stop.store(true, Ordering::Relaxed);
    let flooded = started.elapsed();
    let mut tally = Tally::default();
    for flooder in flooders {
        tally.add(flooder.join().unwrap());
    }
    let cpu = thread_cpu(pid, "hello").saturating_sub(cpu_before);
    let after = honest_question(server.addr, Duration::from_secs(3));
    let (peak, rss_after) = memory_kib(pid);
    let _ = std::fs::remove_dir_all(&work);
    let seconds_begun = flooded.as_secs() + 1;
    let most = tally.per_source.values().copied().max().unwrap_or(0);
    let answering = tally.per_source.len();
    let answer_time = |t: Option<Duration>| {
        t.map_or("**no answer**".to_string(), |t| {
            format!("answered after {:.1} ms", t.as_secs_f64() * 1e3)
        })
    };
    format!(
        "## A flood of hellos\n\n\
         `ftx serve -w 4`: one loopback source asks as fast as it can for {:.1} s; then {sources} loopback sources (two threads) send well-formed 256-byte \
         questions to the UDP port as fast as they can for {:.1} s, each with its own nonce, and \
         read what comes back. Meanwhile a classic client uploads 1 MiB, an honest question is \
         asked from 127.0.0.1, and `ftx send` sends one 64 KiB file.\n\
         Goal: at most {PER_SOURCE_A_SECOND} answers a second per source, and \
         {REPEATS_A_SECOND} a second in all past each source's first (README's limits), never \
         more bytes answered than asked, every answer with its question's nonce, memory flat, \
         uploads served, an honest question answered during the flood.\n\n\
         | measure | value |\n| --- | ---: |\n\
         | one source alone: questions sent / answers received | {} / {} (limit {PER_SOURCE_A_SECOND} a second: {} in {} server seconds begun) |\n\
         | the flood: questions sent / bytes | {} / {} |\n\
         | the flood: answers received / bytes | {} / {} |\n\
         | answers a second in all (over {seconds_begun} server seconds begun) | {:.0} (limit {}: {REPEATS_A_SECOND} and a first to each of the {sources}) |\n\
         | the flood: sources answered / most answers to one source | {answering} / {most} (limit {} in {seconds_begun} s) |\n\
         | answers with a nonce that source did not ask with | {} |\n\
         | the hello thread's CPU during the flood | {} |\n\
         | honest question before / during / after the flood | {} / {} / {} |\n\
         | 1 MiB classic upload during the flood | {upload} |\n\
         | `ftx send` of one file during the flood | {sent} |\n\
         | server resident: before / after (peak) | {} / {} ({}) |\n",
        ALONE_FOR.as_secs_f64(),
        flooded.as_secs_f64(),
        alone.asked,
        alone.answered,
        PER_SOURCE_A_SECOND * (ALONE_FOR.as_secs() + 1),
        ALONE_FOR.as_secs() + 1,
        tally.asked,
        mib(tally.asked_bytes / 1024),
        tally.answered,
        mib(tally.answered_bytes / 1024),
        tally.answered as f64 / seconds_begun as f64,
        REPEATS_A_SECOND + sources as u64,
        PER_SOURCE_A_SECOND * seconds_begun,
        tally.wrong_nonce,
        secs(cpu),
        answer_time(before),
        answer_time(honest_during),
        answer_time(after),
        mib(rss_before),
        mib(rss_after),
        mib(peak),
    )
}
