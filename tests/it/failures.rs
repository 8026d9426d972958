//! Failures are reported by name, counted in the exit code, and never stop the other files or the server.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::thread;

use predicates::prelude::*;

use crate::util::{entries, pattern, send_to, wait_until, write_file, RawClient, Serve};

#[test]
fn a_missing_file_and_a_device_among_good_ones() {
    let server = Serve::start(&[]);
    let src = tempfile::tempdir().unwrap();
    let good = write_file(src.path(), "good.txt", b"good");
    let also = write_file(src.path(), "also.bin", &pattern(100_000, 1));
    let missing = src.path().join("missing.txt");

    server
        .send()
        .arg(&good)
        .arg(&missing)
        .arg(&also)
        .arg("/dev/null")
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "missing.txt  cannot open: No such file",
        ))
        .stderr(predicate::str::contains(
            "null  not a regular file (a device, a pipe or a socket)",
        ))
        .stderr(predicate::str::contains("2 saved, 2 failed"));
    assert_eq!(entries(server.drop_dir()), ["also.bin", "good.txt"]);
}

#[test]
fn a_closed_port_is_explained_once_per_run() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let src = tempfile::tempdir().unwrap();
    let files: Vec<_> = ["a.txt", "b.txt", "c.txt"]
        .iter()
        .map(|n| write_file(src.path(), n, b"x"))
        .collect();
    let out = send_to(&format!("127.0.0.1:{port}"))
        .args(&files)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("0 saved, 1 failed, 2 not sent"));
    let said = crate::util::stderr_of(&out);
    let explained = format!(
        "cannot connect to 127.0.0.1:{port}: nothing is listening there (is the server running, on that port?)"
    );
    assert_eq!(said.matches(&explained).count(), 1, "{said}");
    assert_eq!(
        said.matches("not sent: the server cannot be reached (see the first failure)")
            .count(),
        2,
        "{said}"
    );
}

/// A server at its `--per-ip` cap turns extra uploads away for now; `ftx send` asks again.
#[test]
fn uploads_turned_away_for_load_are_retried() {
    let server = Serve::start(&["--per-ip", "1"]);
    let src = tempfile::tempdir().unwrap();
    let files: Vec<_> = (0..6)
        .map(|i| write_file(src.path(), &format!("f{i}.bin"), &pattern(50_000, i)))
        .collect();
    server
        .send()
        .args(["--jobs", "6"])
        .args(&files)
        .assert()
        .success()
        .stderr(predicate::str::contains("6 saved, 0 failed"));
    assert_eq!(entries(server.drop_dir()).len(), 6);
}

#[test]
fn a_drop_folder_that_is_a_file_or_a_port_in_use_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "small.txt", b"x");
    assert_cmd::Command::new(crate::util::ftx_bin())
        .args(["serve", "--plain", "-l", "127.0.0.1:0", "-d"])
        .arg(&file)
        .timeout(crate::util::PATIENCE)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "is a file, not a folder: give a folder with -d",
        ));
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    assert_cmd::Command::new(crate::util::ftx_bin())
        .args(["serve", "--plain", "-l", &format!("127.0.0.1:{port}"), "-d"])
        .arg(dir.path())
        .timeout(crate::util::PATIENCE)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!(
            "choose another port: -l {}",
            port + 1
        )));
}

#[test]
fn a_name_that_does_not_resolve_is_a_run_failure() {
    let src = tempfile::tempdir().unwrap();
    let a = write_file(src.path(), "a.txt", b"a");
    send_to("no.such.host.invalid")
        .arg(&a)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "ftx: cannot find the address of 'no.such.host.invalid'",
        ));
}

#[test]
fn server_that_does_not_say_go_ahead() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming().take(2) {
            let mut stream = stream.unwrap();
            let mut header = [0u8; 1024];
            let _ = stream.read(&mut header);
            let _ = stream.write_all(b"go away\x1b[31m");
        }
    });
    let src = tempfile::tempdir().unwrap();
    let a = write_file(src.path(), "a.txt", b"a");
    send_to(&addr.to_string())
        .arg(&a)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "a.txt  bad server response: expected \"go ahead\", got \"go away\\x1b[31m\"",
        ))
        .stderr(predicate::str::contains("\x1b[31m").not());
}

#[test]
fn client_that_stops_early_leaves_no_file_and_the_server_goes_on() {
    let server = Serve::start(&[]);
    let mut early = RawClient::start_upload(server.addr, 1000, b"half.bin");
    early.stream.write_all(&[7u8; 400]).unwrap();
    drop(early);
    server.wait_for_log("client closed after 400 B of 0.98 KiB");
    assert!(
        entries(server.drop_dir()).is_empty(),
        "{:?}",
        entries(server.drop_dir())
    );

    let mut short = RawClient::connect(server.addr);
    short.stream.write_all(b"\0\0\0").unwrap();
    drop(short);
    server.wait_for_log("client closed after 3 header bytes");

    RawClient::start_upload(server.addr, 3, b"next.txt").finish(b"yes");
    wait_until(
        || entries(server.drop_dir()) == ["next.txt"],
        "next.txt",
        || server.log(),
    );
}

#[test]
fn extra_bytes_beyond_the_size_are_not_kept() {
    let server = Serve::start(&[]);
    RawClient::start_upload(server.addr, 4, b"exact.txt").finish(b"keepdrop");
    wait_until(
        || entries(server.drop_dir()) == ["exact.txt"],
        "exact.txt",
        || server.log(),
    );
    assert_eq!(
        std::fs::read(server.drop_dir().join("exact.txt")).unwrap(),
        b"keep"
    );
}
