//! ftx send -> ftx serve end to end: many files at once, byte-identical on disk, never overwriting.

mod fixtures;

use fixtures::{entries, pattern, write_file, Serve};
use predicates::prelude::*;

#[test]
fn several_files_at_once_arrive_byte_identical() {
    several_files_arrive_byte_identical(&[], &[]);
}

/// The same, through the portable paths: a buffer instead of sendfile(2) and splice(2).
#[test]
fn portable_paths_are_byte_identical_too() {
    several_files_arrive_byte_identical(&["--no-splice"], &["--no-sendfile"]);
}

fn several_files_arrive_byte_identical(extra: &[&str], send_extra: &[&str]) {
    let mut args = vec!["--workers", "4"];
    args.extend_from_slice(extra);
    let server = Serve::start(&args);
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

    server
        .send()
        .args(["--jobs", "4"])
        .args(send_extra)
        .args(&paths)
        .assert()
        .success()
        .stderr(predicate::str::contains("6 sent, 0 failed"));

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
        .success();

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
    server.interrupt();
    assert_eq!(server.wait_exit(), Some(0));
}
