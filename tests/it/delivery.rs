//! Delivery you can trust: what `ftx send` reports is what the other end confirmed or what the protocol proves.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use predicates::prelude::*;

use crate::util::{
    entries, ftx_bin, pattern, send_to, stderr_of, wait_until, write_file, PythonServer, Running,
    Serve, PATIENCE, PORTABLE,
};

/// `count` files of `size` bytes in a new folder.
fn files(count: usize, size: usize) -> (tempfile::TempDir, Vec<std::path::PathBuf>) {
    let src = tempfile::tempdir().unwrap();
    let paths = (0..count)
        .map(|i| write_file(src.path(), &format!("f{i:02}.bin"), &pattern(size, i as u8)))
        .collect();
    (src, paths)
}

#[test]
fn a_server_that_drops_the_last_chunk_fails_every_file_it_cut() {
    let python = PythonServer::broken("drop-last-chunk");
    let (_src, paths) = files(6, 5000);
    send_to(&python.address())
        .args(&paths)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("did not take the whole file"))
        .stderr(predicate::str::contains("0 saved, 6 failed"));
}

#[test]
fn a_server_that_resets_half_way_fails_every_file() {
    let python = PythonServer::broken("reset-half");
    let (_src, paths) = files(20, 100_000);
    send_to(&python.address())
        .args(["--jobs", "8"])
        .args(&paths)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("0 saved, 20 failed"))
        .stderr(predicate::str::contains("delivered").not());
}

#[test]
fn a_server_that_never_answers_fails_within_the_timeout() {
    let python = PythonServer::broken("silent");
    let (_src, paths) = files(2, 10);
    let started = Instant::now();
    send_to(&python.address())
        .args(["--timeout", "1s"])
        .args(&paths)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "no reply within 1.00s: the server may be busy with other uploads (wait longer with --timeout 5m)",
        ))
        .stderr(predicate::str::contains("0 saved, 2 failed"));
    assert!(started.elapsed() < PATIENCE);
}

#[test]
fn a_server_that_stops_reading_fails_within_the_timeout() {
    let python = PythonServer::broken("no-read");
    let src = tempfile::tempdir().unwrap();
    // Too big for the socket buffers: a write waits; small: the close does.
    let big = write_file(src.path(), "big.bin", &pattern(40 << 20, 1));
    let small = write_file(src.path(), "small.bin", b"tiny");
    send_to(&python.address())
        .args(["--timeout", "1s"])
        .arg(&big)
        .arg(&small)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "big.bin  the server took no data for 1.00s",
        ))
        .stderr(predicate::str::contains(
            "small.bin  the server did not close the connection within 1.00s of the last byte",
        ));
}

#[test]
fn a_server_that_never_closes_is_not_taken_for_a_success() {
    let python = PythonServer::broken("no-close");
    let (_src, paths) = files(1, 1000);
    send_to(&python.address())
        .args(["--timeout", "1s"])
        .args(&paths)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "did not close the connection within 1.00s",
        ));
}

#[test]
fn what_a_classroom_server_says_after_the_content_is_shown() {
    let python = PythonServer::broken("chatty");
    let (_src, paths) = files(1, 1000);
    send_to(&python.address())
        .args(&paths)
        .assert()
        .success()
        .stderr(predicate::str::contains("delivered f00.bin"))
        .stderr(predicate::str::contains("the server said: File received"));
}

/// A fake ftx server: reads the header, says go ahead, reads `size` bytes, sends `reply(size)`, closes.
fn fake_ftx_server(uploads: usize, reply: fn(usize, u64) -> Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    thread::spawn(move || {
        for n in 0..uploads {
            let (mut stream, _) = listener.accept().unwrap();
            let mut header = [0u8; 1024];
            let got = stream.read(&mut header).unwrap();
            assert!(got > 8);
            let size = u64::from_be_bytes(header[..8].try_into().unwrap());
            stream.write_all(b"go ahead").unwrap();
            let mut content = vec![0u8; usize::try_from(size).unwrap()];
            stream.read_exact(&mut content).unwrap();
            stream.write_all(&reply(n, size)).unwrap();
        }
    });
    addr
}

#[test]
fn a_receipt_with_the_wrong_size_fails_the_file() {
    let addr = fake_ftx_server(1, |_, size| {
        format!(
            "ftx/1 {{\"status\":\"saved\",\"saved_as\":\"f00.bin\",\"size\":{}}}\n",
            size - 1
        )
        .into_bytes()
    });
    let (_src, paths) = files(1, 1000);
    send_to(&addr)
        .args(&paths)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "the server saved 999 bytes, not the 1000 sent",
        ));
}

#[test]
fn once_the_server_gave_receipts_a_close_without_one_fails() {
    let addr = fake_ftx_server(2, |n, size| {
        if n == 0 {
            format!("ftx/1 {{\"status\":\"saved\",\"saved_as\":\"f00.bin\",\"size\":{size}}}\n")
                .into_bytes()
        } else {
            Vec::new()
        }
    });
    let (_src, paths) = files(2, 1000);
    send_to(&addr)
        .args(["--jobs", "1"])
        .args(&paths)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("saved     f00.bin"))
        .stderr(predicate::str::contains(
            "f01.bin  the server closed without a receipt, so it did not confirm the file",
        ));
}

/// An `ftx send --rate` in the background, slow enough to be stopped in the middle.
fn paced_send(server: &Serve, file: &Path) -> Running {
    Running(
        Command::new(ftx_bin())
            .args([
                "send",
                "--plain",
                "--rate",
                "1MiB",
                "--to",
                &server.addr.to_string(),
            ])
            .arg(file)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    )
}

fn stderr_to_end(process: &mut Running) -> String {
    let mut text = String::new();
    process
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    text
}

#[test]
fn stopping_or_killing_the_server_mid_upload_fails_the_sender() {
    for signal in ["INT", "KILL"] {
        // Classic uploads (a batch keeps a resumable part when killed).
        let mut server = Serve::start(&["--no-hello"]);
        let src = tempfile::tempdir().unwrap();
        let file = write_file(src.path(), "homework.zip", &pattern(20 << 20, 4));
        let mut sender = paced_send(&server, &file);
        server.wait_for_log("receiving");
        thread::sleep(Duration::from_millis(200));
        server.signal(signal);
        server.wait_exit();
        assert_eq!(sender.wait_exit(), Some(1), "{signal}");
        let said = stderr_to_end(&mut sender);
        assert!(said.contains("failed    homework.zip"), "{signal}: {said}");
        assert!(said.contains("0 saved, 1 failed"), "{signal}: {said}");
        // The portable layer's partial files have names: kill -9 leaves one,
        // hidden, which the next server on the folder removes.
        let left = entries(server.drop_dir());
        match (PORTABLE, signal) {
            (true, "KILL") => assert!(
                left.len() == 1 && left[0].starts_with(".ftx-partial-"),
                "{left:?}"
            ),
            _ => assert!(left.is_empty(), "{signal}: {left:?}"),
        }
    }
}

/// The drop folder removed while the server runs: refused before `go ahead`,
/// uploads in flight fail, and the folder is used again once it is made again.
fn drop_folder_removed_and_made_again(parent: &Path) {
    let drop = parent.join("drop");
    // Classic uploads: what their receipts say.
    let server = Serve::start_at(tempfile::tempdir().unwrap(), &drop, &["--no-hello"]);
    let src = tempfile::tempdir().unwrap();
    let small = write_file(src.path(), "small.txt", b"hello");
    let big = write_file(src.path(), "big.bin", &pattern(6 << 20, 7));

    let mut sender = paced_send(&server, &big);
    server.wait_for_log("receiving");
    std::fs::remove_dir_all(&drop).unwrap();
    assert_eq!(sender.wait_exit(), Some(1));
    let said = stderr_to_end(&mut sender);
    assert!(said.contains("big.bin  the server could not keep it: saving the received file: the drop folder was removed during the upload"), "{said}");

    let refused = send_to(&server.addr.to_string())
        .arg(&small)
        .assert()
        .code(1);
    assert!(
        stderr_of(&refused).contains("the server refused it: the drop folder was removed"),
        "{}",
        stderr_of(&refused)
    );
    server.wait_for_log("refused \"small.txt\": the drop folder was removed");

    std::fs::create_dir(&drop).unwrap();
    send_to(&server.addr.to_string())
        .arg(&small)
        .assert()
        .success()
        .stderr(predicate::str::contains("1 saved, 0 failed"));
    assert_eq!(entries(&drop), ["small.txt"]);
    wait_until(
        || server.log().contains("saved     "),
        "saved",
        || server.log(),
    );
}

#[test]
fn a_removed_drop_folder_on_a_disk_file_system() {
    let parent = tempfile::tempdir().unwrap();
    drop_folder_removed_and_made_again(parent.path());
}

#[test]
fn a_removed_drop_folder_on_tmpfs() {
    let shm = Path::new("/dev/shm");
    assert!(shm.is_dir(), "this test needs /dev/shm (tmpfs)");
    let parent = tempfile::tempdir_in(shm).unwrap();
    drop_folder_removed_and_made_again(parent.path());
}

/// PROTOCOL.md X4: a failure after `go ahead`, even once every byte was read,
/// ends with the failure receipt and a reset, never a clean close.
#[test]
fn a_failure_after_the_last_byte_ends_in_a_reset() {
    let parent = tempfile::tempdir().unwrap();
    let drop = parent.path().join("drop");
    let server = Serve::start_at(tempfile::tempdir().unwrap(), &drop, &[]);
    let mut client = crate::util::RawClient::start_upload(server.addr, 10, b"late.txt");
    client.stream.write_all(b"01234").unwrap();
    server.wait_for_log("receiving");
    std::fs::remove_dir_all(&drop).unwrap();
    client.stream.write_all(b"56789").unwrap();
    client.stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut said = Vec::new();
    let end = client.stream.read_to_end(&mut said);
    assert_eq!(
        String::from_utf8_lossy(&said),
        "ftx/1 {\"status\":\"failed\",\"reason\":\"saving the received file: the drop folder was removed during the upload\"}\n"
    );
    assert_eq!(
        end.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionReset),
        "a clean close"
    );
}
