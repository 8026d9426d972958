//! The batch-mode attacks of the hostile-load harness (PROTOCOL.md section 4, B10): slow batches, a descriptor flood, a flood of folder records, output nobody reads; each bounded in time, each measuring what the server held and whether a normal upload was served meanwhile.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use ftx::noise::Noise;

use crate::{memory_kib, mib, normal_upload, open_from, secs, source, Server, SCENARIO_LIMIT};

/// The opening of a batch (B2).
const OPENING: &[u8] = b"\xffftx/b1\n{\"batch\":1}\n";

/// A batch opened from client address number `n`, its welcome read.
fn open_batch(addr: SocketAddr, n: usize) -> std::io::Result<TcpStream> {
    let mut stream = open_from(source(n), addr, true)?;
    stream.set_read_timeout(Some(SCENARIO_LIMIT))?;
    stream.write_all(OPENING)?;
    let mut welcome = [0u8; 26];
    stream.read_exact(&mut welcome)?;
    if &welcome != b"{\"status\":\"go\",\"batch\":1}\n" {
        return Err(std::io::Error::other("no welcome"));
    }
    Ok(stream)
}

/// Descriptors process `pid` holds open.
fn descriptors(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// A normal 1 MiB upload while the attack runs, as a table cell.
pub(crate) fn served(addr: SocketAddr, name: &str) -> String {
    match normal_upload(addr, name, &Noise::bytes(3, 1 << 20)) {
        Ok((go_ahead, done)) => format!(
            "`go ahead` after {}, receipt after {}",
            secs(go_ahead),
            secs(done)
        ),
        Err(e) => format!("**failed**: {e}"),
    }
}

/// Four batches that send one byte of a frame line every 2 s hold all four workers.
pub fn slow_batches() -> String {
    eprintln!("batch-slow: 4 batches trickling a frame line against -w 4");
    let server = Server::start("batch-slow", &["-w", "4"]);
    let ended: Vec<_> = (0..4)
        .map(|n| {
            let addr = server.addr;
            thread::spawn(move || {
                let mut s = open_batch(addr, n).ok()?;
                let started = Instant::now();
                for byte in b"{\"ask\":[]}".iter().cycle() {
                    if started.elapsed() > SCENARIO_LIMIT {
                        return None;
                    }
                    if s.write_all(&[*byte]).is_err() {
                        return Some(started.elapsed());
                    }
                    thread::sleep(Duration::from_secs(2));
                }
                None
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(500));
    let normal = served(server.addr, "normal.bin");
    let ended: Vec<String> = ended
        .into_iter()
        .map(|t| t.join().unwrap().map_or("not ended".into(), secs))
        .collect();
    format!(
        "## Slow batches lose their worker\n\n\
         `ftx serve -w 4`, default settings: four batch connections each send one byte of a frame \
         line every 2 s (each byte restarts the idle timeout), holding every worker; a fifth client \
         uploads 1 MiB classically.\n\
         Goal: served within the minimum-rate window (20 s of waiting) plus a few seconds.\n\n\
         | measure | value |\n| --- | ---: |\n\
         | normal client | {normal} |\n\
         | slow batches: their write failed after (each) | {} |\n",
        ended.join(", ")
    )
}

/// One batch names 20,000 top folders (a `dir` frame each).
pub fn descriptor_flood(frames: usize) -> String {
    eprintln!("batch-descriptors: one batch with {frames} dir frames");
    let server = Server::start("batch-fds", &["-w", "8"]);
    let pid = server.child.id();
    let before = descriptors(pid);
    let mut flood = open_batch(server.addr, 1).expect("open a batch");
    let mut writer = flood.try_clone().unwrap();
    let sending = thread::spawn(move || {
        for n in 0..frames {
            if writer
                .write_all(format!("{{\"dir\":\"d{n}\"}}\n").as_bytes())
                .is_err()
            {
                break;
            }
        }
    });
    let mut answers = BufReader::new(flood.try_clone().unwrap());
    let (mut saved, mut refused) = (0, 0);
    let mut line = String::new();
    for _ in 0..frames {
        line.clear();
        if answers.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        if line.contains("\"saved\"") {
            saved += 1;
        } else if line.contains("at most 64 top folders") {
            refused += 1;
        }
    }
    sending.join().unwrap();
    let held = descriptors(pid);
    let normal = served(server.addr, "normal.bin");
    let _ = flood.write_all(b"{\"end\":true}\n");
    format!(
        "## One batch cannot take the descriptors\n\n\
         `ftx serve -w 8`: one batch sends {frames} `{{\"dir\":\"dN\"}}` frames (each would be a top \
         folder, held open until the batch ends) and keeps the batch open; a normal client \
         uploads 1 MiB meanwhile.\nGoal: at most 64 top folders held (PROTOCOL.md B10), the rest \
         refused, the normal client served.\n\n\
         | measure | value |\n| --- | ---: |\n\
         | folders made / refused | {saved} / {refused} |\n\
         | server descriptors: before / with the batch open | {before} / {held} |\n\
         | normal client | {normal} |\n"
    )
}

/// Batches that leave folders unfinished with long paths and keys, cut each time.
pub fn record_flood(batches: usize) -> String {
    eprintln!("batch-records: {batches} cut batches of 500 keyed empty files with 3 KB paths");
    let server = Server::start("batch-records", &["-w", "8"]);
    let (_, start_rss) = server.memory_kib();
    let empty = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262";
    let began = Instant::now();
    for b in 0..batches {
        let Ok(mut batch) = open_batch(server.addr, b) else {
            continue;
        };
        let key = format!("{b:064x}");
        let mut frames = format!("{{\"top\":\"t{b}\",\"key\":\"{key}\"}}\n");
        for n in 0..500 {
            frames.push_str(&format!(
                "{{\"path\":\"t{b}/{n:03}{}\",\"size\":0,\"blake3\":\"{empty}\",\"key\":\"{}\"}}\n",
                "x".repeat(3000),
                "cd".repeat(32)
            ));
        }
        if batch.write_all(frames.as_bytes()).is_err() {
            continue;
        }
        let mut answers = BufReader::new(batch);
        let mut line = String::new();
        for _ in 0..501 {
            line.clear();
            if answers.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
        }
        // Dropped here: cut off, the folder left unfinished.
    }
    let took = began.elapsed();
    thread::sleep(Duration::from_millis(500));
    let (peak, rss) = server.memory_kib();
    let records: u64 = fs::read_dir(server.dir.join(".ftx-partial"))
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.metadata().map_or(0, |m| m.len()))
                .sum()
        })
        .unwrap_or(0);
    let normal = served(server.addr, "normal.bin");
    format!(
        "## Folders left unfinished stay small\n\n\
         `ftx serve -w 8`: {batches} batches, each a top folder with a key and 500 empty verified \
         files with 3 KB paths and part keys, cut off before their end ({} in all).\n\
         Goal: memory within the registry's bound (128 MiB as it counts), and folder \
         records only for files received into parts (none here).\n\n\
         | measure | value |\n| --- | ---: |\n\
         | server resident: at start / at the end (peak) | {} / {} ({}) |\n\
         | bytes of records in `.ftx-partial/` | {records} |\n\
         | normal client afterwards | {normal} |\n",
        secs(took),
        mib(start_rss),
        mib(rss),
        mib(peak),
    )
}

/// `ftx serve --json` into a pipe nobody reads, and a batch of many files with long names.
pub fn blocked_output(files: usize) -> String {
    eprintln!("batch-output: {files} files into a server whose --json output is not read");
    let dir = std::env::temp_dir().join(format!("ftx-stress-{}-output", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ftx"))
        .args(["serve", "--json", "-l", "127.0.0.1:0", "-d"])
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ftx serve");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    let addr: SocketAddr = first
        .split('"')
        .find_map(|w| w.parse().ok())
        .expect("the address in the first line");
    let rss = |pid: u32| memory_kib(pid).1;
    let pid = child.id();
    let start = rss(pid);
    let batch = open_batch(addr, 1).expect("open a batch");
    let mut writer = batch.try_clone().unwrap();
    let long = "n".repeat(1000);
    let sending = thread::spawn(move || {
        for n in 0..files {
            let frame = format!("{{\"path\":\"{n:06}{long}\",\"size\":0}}\n");
            if writer.write_all(frame.as_bytes()).is_err() {
                return;
            }
        }
        let _ = writer.write_all(b"{\"end\":true}\n");
    });
    let answering = thread::spawn(move || {
        BufReader::new(batch)
            .lines()
            .map_while(Result::ok)
            .take_while(|l| !l.contains("\"end\""))
            .count()
    });
    thread::sleep(Duration::from_secs(5));
    let stalled = rss(pid);
    let saved_stalled = fs::read_dir(&dir).map_or(0, |d| d.count());
    let resumed = Instant::now();
    let reading = thread::spawn(move || {
        out.lines()
            .map_while(Result::ok)
            .filter(|l| l.contains("\"finished\""))
            .take(files)
            .count()
    });
    let finished = reading.join().unwrap();
    let answered = answering.join().unwrap();
    let took = resumed.elapsed();
    sending.join().unwrap();
    let saved = fs::read_dir(&dir).map_or(0, |d| d.count());
    let _ = child.kill();
    let _ = child.wait();
    let _ = fs::remove_dir_all(&dir);
    format!(
        "## Output nobody reads holds the server back, in bounded memory\n\n\
         `ftx serve --json` with its output into a pipe nobody reads (a stalled consumer), and a \
         batch of {files} empty files with 1 KB names; after 5 s the pipe is read again.\n\
         Goal: memory flat while stalled (at most 1,024 events wait), then every file saved and \
         every outcome line out.\n\n\
         | measure | value |\n| --- | ---: |\n\
         | server resident: at start / after 5 s stalled | {} / {} |\n\
         | files saved while stalled | {saved_stalled} |\n\
         | once read again: outcome lines / answers / files saved | {finished} / {answered} / {saved} |\n\
         | all done after the pipe was read again | {} |\n",
        mib(start),
        mib(stalled),
        secs(took)
    )
}
