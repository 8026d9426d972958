//! Batch mode against hostile clients played byte by byte (PROTOCOL.md section 4): slow frames and answers, floods of folders, tokens and parts, each met by a bounded wait or a documented limit while other clients are served.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::util::{entries, open_batch, wait_until, RawClient, Serve, PATIENCE};

/// A classic upload sent while the server is under attack: it gets
/// `go ahead` within `PATIENCE` and its file is saved.
fn classic_upload_is_served(server: &Serve, name: &str) {
    let mut client = RawClient::connect(server.addr);
    client.send_header(3, name.as_bytes());
    assert_eq!(
        client.reply_within(PATIENCE).as_deref(),
        Some(&b"go ahead"[..]),
        "{name}: no go ahead; log:\n{}",
        server.log()
    );
    client.finish(b"yes");
    wait_until(
        || entries(server.drop_dir()).contains(&name.to_string()),
        name,
        || server.log(),
    );
}

/// Writes `bytes` one at a time, `gap` apart, until the server ends the
/// connection or `limit` has passed; how long that took, if it did end.
fn trickle(
    stream: &mut TcpStream,
    bytes: &[u8],
    gap: Duration,
    limit: Duration,
) -> Option<Duration> {
    let began = Instant::now();
    for byte in bytes.iter().cycle() {
        if began.elapsed() > limit {
            return None;
        }
        if stream.write_all(&[*byte]).is_err() {
            return Some(began.elapsed());
        }
        std::thread::sleep(gap);
    }
    unreachable!("a cycle never ends")
}

/// The reason the server gave for ending the batch (B7), read from what it answered.
fn aborted_reason(stream: &mut TcpStream) -> String {
    let mut answers = Vec::new();
    let _ = stream.read_to_end(&mut answers);
    String::from_utf8_lossy(&answers).into_owned()
}

/// A frame line trickled a byte every 100 ms (restarting the idle timeout
/// each time) loses its worker once a window of waiting brings less than
/// `--min-rate`, and the classic upload queued behind it is served.
#[test]
fn a_batch_trickling_a_frame_line_is_ended_by_the_min_rate() {
    let server = Serve::start(&[
        "--workers",
        "1",
        "--min-rate",
        "1KiB",
        "--min-rate-window",
        "1s",
    ]);
    let mut slow = open_batch(&server);
    let ended = trickle(
        &mut slow,
        b"{\"ask\":[]}",
        Duration::from_millis(100),
        Duration::from_secs(15),
    );
    assert!(ended.is_some(), "the trickling batch was never ended");
    let log = server.wait_for_log("ended: reading a frame: client too slow: ");
    assert!(
        log.contains("of waiting, under the minimum of 1.00 KiB/s (--min-rate)"),
        "{log}"
    );
    assert!(aborted_reason(&mut slow).contains("client too slow"));
    classic_upload_is_served(&server, "after-slow.txt");
}

/// With no minimum rate, a frame line must still be whole within
/// `--header-timeout` of when the server began to read it.
#[test]
fn a_frame_line_must_be_whole_within_the_header_timeout() {
    let server = Serve::start(&[
        "--workers",
        "1",
        "--min-rate",
        "0",
        "--header-timeout",
        "1s",
    ]);
    let mut slow = open_batch(&server);
    let ended = trickle(
        &mut slow,
        b"{\"dir\":\"abcdefghijklmnopqrstuvwxyz\"}\n",
        Duration::from_millis(100),
        Duration::from_secs(15),
    );
    let ended = ended.expect("the trickling batch was never ended");
    assert!(ended < Duration::from_secs(10), "ended after {ended:?}");
    server.wait_for_log("ended: reading a frame: a line not whole within 1.00s (--header-timeout)");
    classic_upload_is_served(&server, "after-line.txt");
}

/// A client that sends frames and takes their answers slowly (256 KiB every
/// 1.5 s, each inside the idle timeout) is held to `--min-rate` while the
/// server waits for it to take them.
#[test]
fn a_batch_that_takes_its_answers_slowly_is_ended_by_the_min_rate() {
    let server = Serve::start(&[
        "--workers",
        "1",
        "--idle-timeout",
        "2s",
        "--min-rate",
        "500KiB",
        "--min-rate-window",
        "1s",
    ]);
    let mut slow = open_batch(&server);
    // A small receive buffer, so that the answers back up within seconds.
    rustix::net::sockopt::set_socket_recv_buffer_size(&slow, 64 * 1024).unwrap();
    // Answers echo the path, so frames sent without end make more answers
    // than the sockets' buffers hold (loopback buffers can hold tens of MB).
    // Were the frames to run out, the server would be waiting for a frame,
    // not for the client to take answers.
    let frame = format!("{{\"dir\":\"d/{}\"}}\n", "x".repeat(4000));
    let mut writer = slow.try_clone().unwrap();
    std::thread::spawn(move || {
        let began = Instant::now();
        while began.elapsed() < Duration::from_secs(40) {
            if writer.write_all(frame.as_bytes()).is_err() {
                return;
            }
        }
    });
    let began = Instant::now();
    let mut chunk = vec![0u8; 256 * 1024];
    let mut ended = false;
    while began.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(1500));
        if slow.read_exact(&mut chunk).is_err() {
            ended = true;
            break;
        }
    }
    assert!(
        ended,
        "answers taken 256 KiB every 1.5 s held the worker for 30 s"
    );
    server.wait_for_log("ended: answering the client: client too slow: ");
    classic_upload_is_served(&server, "after-answers.txt");
}

/// Descriptors the server holds open now.
fn descriptors_of(server: &Serve) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", server.process.0.id()))
        .unwrap()
        .count()
}

/// One batch naming thousands of top folders (a `dir` frame each) holds at
/// most 64 of them open: the rest fail with the limit, and the server's
/// descriptors stay bounded while the batch is still open.
#[test]
fn a_batch_fills_at_most_64_top_folders() {
    let server = Serve::start(&["--workers", "2"]);
    let before = descriptors_of(&server);
    let mut flood = open_batch(&server);
    let frames: String = (0..2000)
        .map(|n| format!("{{\"dir\":\"d{n}\"}}\n"))
        .collect();
    flood.write_all(frames.as_bytes()).unwrap();
    let mut answers = std::io::BufReader::new(flood.try_clone().unwrap());
    let mut lines = Vec::new();
    for _ in 0..2000 {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut answers, &mut line).unwrap();
        lines.push(line);
    }
    let held = descriptors_of(&server);
    assert!(
        held <= before + 64 + 8,
        "{held} descriptors open with the batch, {before} before"
    );
    assert_eq!(lines.iter().filter(|l| l.contains("\"saved\"")).count(), 64);
    assert!(
        lines[64].contains("a batch fills at most 64 top folders: send the rest in another batch"),
        "{}",
        lines[64]
    );
    assert_eq!(entries(server.drop_dir()).len(), 64);
    classic_upload_is_served(&server, "meanwhile.txt");
    flood.write_all(b"{\"end\":true}\n").unwrap();
}

/// A flood of tokens from another address (127.0.0.2, eight clients:
/// classic uploads, each with a claim, and top frames, each with a share
/// token) while a real `ftx send -j 2` runs whose claim and share token wait
/// 3 s to be used (two slow folders go first): nothing of the sender's is
/// lost, and its first file is not left loose at the top of the drop folder.
#[test]
fn a_token_flood_from_another_client_loses_no_file() {
    let server = Serve::start(&["--workers", "4"]);
    let _floods: Vec<_> = (0..8)
        .map(|n| {
            let flood = std::process::Command::new("python3")
                .arg("-c")
                .arg(FLOOD)
                .arg(server.addr.port().to_string())
                .arg(n.to_string())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            crate::util::Running(flood)
        })
        .collect();
    // The flood has begun once the drop folder holds its first folders.
    wait_until(
        || entries(server.drop_dir()).len() > 200,
        "the flood under way",
        || server.log(),
    );
    let source = tempfile::tempdir().unwrap();
    let folder = |name: &str, files: &[(String, Vec<u8>)]| {
        let dir = source.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        for (file, content) in files {
            std::fs::write(dir.join(file), content).unwrap();
        }
        dir
    };
    let slow = [("big.bin".to_string(), vec![7u8; 300_000])];
    let photos: Vec<(String, Vec<u8>)> = (0..600)
        .map(|n| (format!("p{n:03}.jpg"), format!("photo {n}").into_bytes()))
        .collect();
    let sent = [
        folder("a", &slow),
        folder("a2", &slow),
        folder("b", &[("tiny.txt".to_string(), b"1".to_vec())]),
        folder("photos", &photos),
    ];
    server
        .send()
        .args(["-j", "2", "--rate", "100KiB"])
        .args(&sent)
        .assert()
        .success();
    assert_eq!(entries(&server.drop_dir().join("photos")).len(), 600);
    assert_eq!(entries(&server.drop_dir().join("b")), ["tiny.txt"]);
    let top = entries(server.drop_dir());
    for name in ["a", "a2", "b", "photos"] {
        assert!(top.contains(&name.to_string()), "{name} missing");
    }
    assert!(
        !top.iter().any(|e| e == "tiny.txt"),
        "the first file was left loose at the top"
    );
}

/// From 127.0.0.2, for ever: empty classic uploads, then a batch of 1000 top frames.
const FLOOD: &str = r#"
import socket, sys, itertools
port, me = int(sys.argv[1]), sys.argv[2]
def conn():
    s = socket.socket()
    s.bind(("127.0.0.2", 0))
    s.connect(("127.0.0.1", port))
    return s
def flood(n):
    for k in range(20):
        s = conn()
        s.sendall((0).to_bytes(8, "big") + f"c{me}-{n}-{k}.txt".encode())
        s.recv(100)
        s.close()
    s = conn()
    s.sendall(b"\xffftx/b1\n{\"batch\":1}\n")
    s.recv(100)
    s.sendall("".join('{"top":"f%s-%d-%d"}\n' % (me, n, k) for k in range(1000)).encode() + b'{"end":true}\n')
    while s.recv(65536):
        pass
    s.close()
for n in itertools.count():
    try:
        flood(n)
    except OSError:
        pass
"#;

/// The resident memory of process `pid`, in bytes.
fn resident(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib * 1024
}

/// With `--json` going into a pipe nobody reads, a batch of 5,000 files with
/// 1 KB names does not pile its events up in memory: the server waits for
/// its output once 1,024 events wait (a few per file), and goes on, every
/// file saved, once the output is read.
#[test]
fn a_stalled_output_holds_the_server_back_in_bounded_memory() {
    use std::io::BufRead;
    let crate::util::JsonServe {
        process: _server,
        addr,
        dir: drop,
        out,
    } = crate::util::JsonServe::start();
    let pid = _server.0.id();
    let mut batch = TcpStream::connect(addr).unwrap();
    batch.write_all(b"\xffftx/b1\n{\"batch\":1}\n").unwrap();
    let mut welcome = [0u8; 26];
    batch.read_exact(&mut welcome).unwrap();
    assert_eq!(&welcome, b"{\"status\":\"go\",\"batch\":1}\n");
    let long = "n".repeat(1000);
    let mut writer = batch.try_clone().unwrap();
    let sending = std::thread::spawn(move || {
        for n in 0..5_000 {
            let frame = format!("{{\"path\":\"{n:05}{long}\",\"size\":0}}\n");
            writer.write_all(frame.as_bytes()).unwrap();
        }
        writer.write_all(b"{\"end\":true}\n").unwrap();
    });
    // Answers are read as they come, so only the output holds the server back.
    let answers = std::thread::spawn(move || {
        let mut lines = 0;
        let mut last = String::new();
        for line in std::io::BufReader::new(batch).lines() {
            last = line.unwrap();
            lines += 1;
            if last.contains("\"end\"") || last.contains("aborted") {
                break;
            }
        }
        (lines, last)
    });
    std::thread::sleep(Duration::from_secs(3));
    let held = resident(pid);
    assert!(
        held < 64 * 1024 * 1024,
        "{} MiB resident with the output stalled",
        held >> 20
    );
    let saved_while_stalled = entries(drop.path()).len();
    assert!(
        saved_while_stalled <= 1024,
        "{saved_while_stalled} files saved with the output stalled"
    );
    // The output moves again: everything goes through.
    let reading = std::thread::spawn(move || {
        let mut finished = 0;
        for line in out.lines() {
            let line = line.unwrap();
            if line.contains("\"finished\"") {
                finished += 1;
                if finished == 5_000 {
                    break;
                }
            }
        }
        finished
    });
    let (lines, last) = answers.join().unwrap();
    assert_eq!(lines, 5_001, "5,000 answers and the end: {last}");
    sending.join().unwrap();
    assert_eq!(
        reading.join().unwrap(),
        5_000,
        "every outcome line, none lost"
    );
    assert_eq!(entries(drop.path()).len(), 5_000);
}

/// A file frame 3,000 folders deep (one 6 KB line) is refused on its own,
/// its content read past: no folder is made for it, and the next file of the
/// batch is saved.
#[test]
fn a_path_too_deep_fails_its_file_and_makes_no_folder() {
    let server = Serve::start(&[]);
    let deep = format!("{}x.txt", "d/".repeat(3000));
    let answers = crate::util::batch_by_hand(
        &server,
        &[
            (
                serde_json::json!({"path": deep, "size": 5}),
                b"12345".to_vec(),
            ),
            (
                serde_json::json!({"path": "ok/y.txt", "size": 2}),
                b"ok".to_vec(),
            ),
        ],
    );
    assert_eq!(answers[0]["status"], "failed", "{answers:?}");
    assert_eq!(answers[0]["reason"], "a path more than 64 folders deep");
    assert_eq!(answers[1]["status"], "saved", "{answers:?}");
    assert_eq!(entries(server.drop_dir()), ["ok"]);
    assert_eq!(
        std::fs::read(server.drop_dir().join("ok/y.txt")).unwrap(),
        b"ok"
    );
}

/// Empty verified files with long paths and keys, in a folder known by its
/// key, batch cut off: only files received into a part are written down, so
/// the folder's record stays one line; a key that is not 64 hex digits (4 KB
/// of them) is no key, and writes nothing down.
#[test]
fn records_hold_only_files_received_into_parts() {
    let server = Serve::start(&[]);
    let empty = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262";
    for (top, key) in [("photos", "ab".repeat(32)), ("other", "c".repeat(4000))] {
        let mut batch = open_batch(&server);
        let mut frames = format!("{{\"top\":\"{top}\",\"key\":\"{key}\"}}\n");
        for n in 0..500 {
            frames.push_str(&format!(
                "{{\"path\":\"{top}/{n:03}{}\",\"size\":0,\"blake3\":\"{empty}\",\"key\":\"{}\"}}\n",
                "x".repeat(3000),
                "cd".repeat(32)
            ));
        }
        batch.write_all(frames.as_bytes()).unwrap();
        let mut answers = std::io::BufReader::new(batch);
        for _ in 0..501 {
            let mut line = String::new();
            std::io::BufRead::read_line(&mut answers, &mut line).unwrap();
            assert!(
                line.contains("\"saved\"") || line.contains("\"top\""),
                "{line}"
            );
        }
        // Cut off: the folder is left unfinished.
    }
    wait_until(
        || server.log().matches("batch from ").count() == 2,
        "both batches seen ending",
        || server.log(),
    );
    let records = crate::util::part_bytes(server.drop_dir());
    assert!(records < 1024, "{records} bytes written down");
}

/// A batch that makes top folders and breaks off leaves none of them
/// behind empty (each was a numbered folder for ever); one it put a file or
/// a folder it was asked for in (and answered saved) stays.
#[test]
fn a_batch_that_breaks_off_leaves_no_empty_folder() {
    let server = Serve::start(&[]);
    let mut batch = open_batch(&server);
    batch
        .write_all(b"{\"top\":\"empty\"}\n{\"dir\":\"also/inner\"}\n{\"path\":\"kept/a.txt\",\"size\":2}\nok")
        .unwrap();
    let mut answers = std::io::BufReader::new(batch.try_clone().unwrap());
    for _ in 0..3 {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut answers, &mut line).unwrap();
    }
    batch.write_all(b"not a frame\n").unwrap();
    assert!(aborted_reason(&mut batch).contains("a frame that cannot be read"));
    wait_until(
        || server.log().contains("batch from "),
        "the batch seen ending",
        || server.log(),
    );
    assert_eq!(entries(server.drop_dir()), ["also", "kept"]);
}

/// A batch that keeps a part busy in one connection and asks about it again
/// and again in another holds that second worker at most BUSY_PART_WAIT (5 s)
/// in all: a question waits for a busy part, but one batch's waits share one
/// budget (each of 30 asks waited 5 s: 150 s).
#[test]
fn questions_about_a_busy_part_wait_five_seconds_per_batch_in_all() {
    let server = Serve::start(&[]);
    let key = "ab".repeat(32);
    let size = 1_000_000;
    let mut writer = open_batch(&server);
    writer
        .write_all(
            format!(
                "{{\"path\":\"busy.bin\",\"size\":{size},\"trailer\":true,\"key\":\"{key}\"}}\n"
            )
            .as_bytes(),
        )
        .unwrap();
    writer.write_all(&[1u8; 100_000]).unwrap();
    // The part stays busy: content keeps coming, above the minimum rate.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = std::sync::Arc::clone(&done);
    let keep_busy = std::thread::spawn(move || {
        for _ in 0..40 {
            if stop.load(std::sync::atomic::Ordering::Relaxed)
                || writer.write_all(&[1u8; 4096]).is_err()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    });
    wait_until(
        || crate::util::part_bytes(server.drop_dir()) > 0,
        "the part being written",
        || server.log(),
    );
    let mut asker = open_batch(&server);
    asker
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let wanted = vec![format!("{{\"key\":\"{key}\",\"size\":{size}}}"); 10].join(",");
    let began = Instant::now();
    let mut answers = std::io::BufReader::new(asker.try_clone().unwrap());
    for _ in 0..3 {
        asker
            .write_all(format!("{{\"ask\":[{wanted}]}}\n").as_bytes())
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(&mut answers, &mut line).unwrap();
        assert!(
            line.starts_with("{\"status\":\"have\",\"have\":[0,"),
            "{line}"
        );
    }
    let took = began.elapsed();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = keep_busy.join();
    assert!(
        took < Duration::from_secs(12),
        "three questions took {took:?}"
    );
}
