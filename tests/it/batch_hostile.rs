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
    // Answers echo the path: 20 MB of frames make more answers than the
    // sockets' buffers hold.
    let frame = format!("{{\"dir\":\"d/{}\"}}\n", "x".repeat(4000));
    let mut writer = slow.try_clone().unwrap();
    std::thread::spawn(move || {
        for _ in 0..5000 {
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
