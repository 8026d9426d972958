//! ftx send -> ftx serve end to end: many files at once, byte-identical on disk, never overwriting.

use crate::util::{address_in, entries, ftx_bin, pattern, send_to, write_file, Running, Serve};
use predicates::prelude::*;

#[test]
fn several_files_at_once_arrive_byte_identical() {
    several_files_arrive_byte_identical(false);
}

/// The same, through the portable paths (`FTX_PORTABLE_IO`): a buffer instead of sendfile(2) and splice(2).
#[test]
fn portable_paths_are_byte_identical_too() {
    several_files_arrive_byte_identical(true);
}

fn several_files_arrive_byte_identical(portable: bool) {
    let dir = tempfile::tempdir().unwrap();
    let drop = dir.path().to_path_buf();
    let env = if portable {
        "export FTX_PORTABLE_IO=1"
    } else {
        ""
    };
    let server = Serve::start_limited(dir, &drop, env, &["--workers", "4"]);
    let src = tempfile::tempdir().unwrap();
    let files = [
        ("big.bin", pattern(3_000_000, 1)),
        ("empty.dat", Vec::new()),
        ("résumé été.txt", pattern(70_001, 2)),
        ("日本語のノート.md", pattern(12_345, 3)),
        ("one.byte", vec![42]),
        ("medium.bin", pattern(1 << 20, 4)),
    ];
    let paths: Vec<_> = files
        .iter()
        .map(|(name, data)| write_file(src.path(), name, data))
        .collect();

    let mut send = server.send();
    if portable {
        send.env("FTX_PORTABLE_IO", "1");
    }
    send.args(["--jobs", "4"])
        .args(&paths)
        .assert()
        .success()
        .stderr(predicate::str::contains("6 saved, 0 failed"));

    for (name, data) in &files {
        let saved =
            std::fs::read(server.drop_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(saved == *data, "{name} differs");
    }
    let mut expected: Vec<String> = files.iter().map(|(n, _)| n.to_string()).collect();
    expected.sort();
    assert_eq!(
        entries(server.drop_dir()),
        expected,
        "no partial or extra files"
    );
    let log = server.wait_for_log("saved    ");
    assert!(log.contains("résumé été.txt"), "{log}");
}

#[test]
fn sends_base_names_only_and_never_overwrites() {
    let server = Serve::start(&[]);
    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir(src.path().join("sub")).unwrap();
    let nested = write_file(&src.path().join("sub"), "notes.txt", b"second");
    let top = write_file(src.path(), "notes.txt", b"first");
    std::fs::write(server.drop_dir().join("notes.txt"), b"precious").unwrap();

    server
        .send()
        .args(["--jobs", "1"])
        .arg(&top)
        .arg(&nested)
        .assert()
        .success()
        .stderr(predicate::str::contains("saved     notes.txt  5 B"))
        .stderr(predicate::str::contains("saved as notes (1).txt"))
        .stderr(predicate::str::contains("saved     notes (1).txt  6 B"))
        .stderr(predicate::str::contains("saved as notes (2).txt"));

    assert_eq!(
        std::fs::read(server.drop_dir().join("notes.txt")).unwrap(),
        b"precious"
    );
    assert_eq!(
        std::fs::read(server.drop_dir().join("notes (1).txt")).unwrap(),
        b"first"
    );
    assert_eq!(
        std::fs::read(server.drop_dir().join("notes (2).txt")).unwrap(),
        b"second"
    );
    assert_eq!(
        entries(server.drop_dir()),
        ["notes (1).txt", "notes (2).txt", "notes.txt"]
    );
    server.wait_for_log("saved as notes (2).txt");
}

#[test]
fn drop_folder_is_created_when_missing() {
    let parent = tempfile::tempdir().unwrap();
    let drop = parent.path().join("new/inbox");
    let mut server = Serve::start_at(parent, &drop, &[]);
    let src = tempfile::tempdir().unwrap();
    let file = write_file(src.path(), "a.txt", b"abc");
    server.send().arg(&file).assert().success();
    assert_eq!(std::fs::read(drop.join("a.txt")).unwrap(), b"abc");
    server.signal("INT");
    assert_eq!(server.wait_exit(), Some(0));
}

/// Also: the server's stderr is closed after its first line (as `2>&1 | head -1` would),
/// and it must go on serving rather than die writing its log.
#[test]
fn works_over_ipv6_even_with_stderr_closed() {
    let dir = tempfile::tempdir().unwrap();
    let mut serve = Running(
        std::process::Command::new(ftx_bin())
            .args(["serve", "--plain", "--listen", "[::1]:0", "--dir"])
            .arg(dir.path())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(serve.0.stderr.take().unwrap()),
        &mut first,
    )
    .unwrap();
    let addr = address_in(&first);
    assert!(addr.is_ipv6(), "{addr}");
    let src = tempfile::tempdir().unwrap();
    let file = write_file(src.path(), "six.txt", b"over IPv6");
    for _ in 0..2 {
        send_to(&format!("[::1]:{}", addr.port()))
            .arg(&file)
            .assert()
            .success();
    }
    assert!(serve.0.try_wait().unwrap().is_none(), "the server died");
    assert_eq!(entries(dir.path()), ["six (1).txt", "six.txt"]);
    assert_eq!(
        std::fs::read(dir.path().join("six.txt")).unwrap(),
        b"over IPv6"
    );
}
