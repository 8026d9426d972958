//! Batch mode between two ftx ends (PROTOCOL.md B1-B7): folders, many files per connection, BLAKE3 checks; classroom peers see nothing of it.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use predicates::prelude::*;
use serde_json::Value;

use crate::util::{
    batch_by_hand, entries, folder_with, ftx_bin, make_fifo, open_batch, part_bytes, pattern,
    send_to, stderr_of, write_file, PythonServer, Serve, PATIENCE,
};

/// Every file below `dir` (relative path -> bytes), and every folder.
fn tree(dir: &Path) -> (Vec<(String, Vec<u8>)>, Vec<String>) {
    fn walk(base: &Path, dir: &Path, files: &mut Vec<(String, Vec<u8>)>, dirs: &mut Vec<String>) {
        let mut list: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap())
            .collect();
        list.sort_by_key(std::fs::DirEntry::file_name);
        for entry in list {
            let path = entry.path();
            let rel = path
                .strip_prefix(base)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let kind = entry.file_type().unwrap();
            if kind.is_symlink() {
                continue;
            }
            if kind.is_dir() {
                dirs.push(rel);
                walk(base, &path, files, dirs);
            } else {
                files.push((rel, std::fs::read(&path).unwrap()));
            }
        }
    }
    let (mut files, mut dirs) = (Vec::new(), Vec::new());
    walk(dir, dir, &mut files, &mut dirs);
    (files, dirs)
}

/// A folder `photos` with nested folders, empty files, an empty folder, non-ASCII names and a link.
fn photos(parent: &Path) -> PathBuf {
    let top = parent.join("photos");
    for dir in ["2024/summer", "empty", "ünï cöde"] {
        std::fs::create_dir_all(top.join(dir)).unwrap();
    }
    write_file(&top, "cover.jpg", &pattern(300_000, 1));
    write_file(&top.join("2024"), "a.bin", &pattern(70_000, 2));
    write_file(
        &top.join("2024/summer"),
        "beach.jpg",
        &pattern(1_000_000, 3),
    );
    write_file(&top.join("2024/summer"), "zero.txt", b"");
    write_file(&top.join("ünï cöde"), "résumé été.txt", "été".as_bytes());
    std::os::unix::fs::symlink("/etc/passwd", top.join("link-to-passwd")).unwrap();
    top
}

#[test]
fn a_folder_arrives_identical_and_a_second_time_beside_the_first() {
    // Told by the hello, every file goes in batches; without it, the first
    // goes classically and is claimed into its folder (PROTOCOL.md B4a).
    for (extra, classic) in [(&[][..], 0), (&["--no-hello"][..], 1)] {
        a_folder_arrives_identical(extra, classic);
    }
}

fn a_folder_arrives_identical(extra: &[&str], classic: usize) {
    let server = Serve::start(extra);
    let src = tempfile::tempdir().unwrap();
    let top = photos(src.path());
    let loose = write_file(src.path(), "notes.txt", b"loose");
    let sent = assert_cmd::Command::new(ftx_bin())
        .args(["send", "--json", "--to", &server.addr.to_string()])
        .arg(&top)
        .arg(&loose)
        .timeout(PATIENCE)
        .assert()
        .success();
    let (want_files, want_dirs) = tree(&top);
    let (got_files, got_dirs) = tree(&server.drop_dir().join("photos"));
    assert_eq!(got_dirs, want_dirs, "the folders, the empty one included");
    assert_eq!(got_files, want_files, "every file, byte for byte");
    assert!(
        !server.drop_dir().join("photos/link-to-passwd").exists(),
        "a link was followed"
    );
    assert_eq!(
        std::fs::read(server.drop_dir().join("notes.txt")).unwrap(),
        b"loose"
    );
    assert_eq!(
        entries(server.drop_dir()),
        ["notes.txt", "photos"],
        "nothing else at the top"
    );

    // Every file of the batch was checked end to end.
    let lines: Vec<Value> = String::from_utf8_lossy(&sent.get_output().stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let finished: Vec<&Value> = lines.iter().filter(|l| l["event"] == "finished").collect();
    assert_eq!(finished.len(), 6, "{lines:?}");
    let verified = finished.iter().filter(|f| f["verified"] == true).count();
    assert_eq!(
        verified,
        6 - classic,
        "all but a first file that went classically: {finished:?}"
    );
    let beach = finished
        .iter()
        .find(|f| f["name"] == "photos/2024/summer/beach.jpg")
        .unwrap();
    assert_eq!(
        beach["blake3"].as_str().unwrap(),
        blake3::hash(&pattern(1_000_000, 3)).to_hex().as_str()
    );
    assert!(lines.iter().any(|l| l["event"] == "notice"
        && l["text"]
            .as_str()
            .unwrap()
            .contains("1 link not sent: symbolic links are not followed")));

    // Again: the whole tree goes beside the first, never into it.
    server.send().arg(&top).assert().success();
    let (again, _) = tree(&server.drop_dir().join("photos (1)"));
    assert_eq!(again, want_files);
    assert_eq!(
        tree(&server.drop_dir().join("photos")).0,
        want_files,
        "the first copy is untouched"
    );
}

#[test]
fn many_small_files_go_over_a_few_connections() {
    let server = Serve::start(&["--trace"]);
    let src = tempfile::tempdir().unwrap();
    let files: Vec<PathBuf> = (0..50)
        .map(|i| write_file(src.path(), &format!("f{i:02}.bin"), &pattern(4096, i)))
        .collect();
    server
        .send()
        .args(["--jobs", "4"])
        .args(&files)
        .assert()
        .success();
    assert_eq!(entries(server.drop_dir()).len(), 50);
    // Told by the hello: no classic connection, at most four batches.
    crate::util::wait_until(
        || server.log().matches("saved     ").count() == 50,
        "fifty files saved",
        || server.log(),
    );
    let log = server.log();
    assert_eq!(
        log.matches(" sent its header; a worker takes it").count(),
        0,
        "{log}"
    );
    let batches = server.log().matches(" opened a batch").count();
    assert!((1..=4).contains(&batches), "{batches} batches:\n{log}");
}

/// A big folder: hundreds of small files and more resumable ones than one
/// question about parts may name (PROTOCOL.md B8), in one batch.
#[test]
fn a_folder_of_hundreds_of_files_arrives_whole() {
    let server = Serve::start(&[]);
    let src = tempfile::tempdir().unwrap();
    let top = src.path().join("many");
    std::fs::create_dir(&top).unwrap();
    for i in 0..250 {
        write_file(&top, &format!("small-{i:03}.bin"), &pattern(4096, i));
    }
    for i in 0..100 {
        write_file(
            &top,
            &format!("big-{i:02}.bin"),
            &pattern(64 * 1024 + i, i as u8),
        );
    }
    server
        .send()
        .arg(&top)
        .assert()
        .success()
        .stderr(predicate::str::contains("350 saved, 0 failed"));
    assert_eq!(tree(&server.drop_dir().join("many")), tree(&top));
}

/// The first file of a run goes classically, to learn whether the server is
/// ftx: the smallest one, so that a big file is verified (and could resume).
#[test]
fn the_smallest_file_is_the_classic_one() {
    // A server whose hello does not reach the sender (UDP filtered).
    let server = Serve::start(&["--no-hello"]);
    let src = tempfile::tempdir().unwrap();
    let top = src.path().join("d");
    std::fs::create_dir(&top).unwrap();
    write_file(&top, "a-big.bin", &pattern(300_000, 2));
    write_file(&top, "b-small.txt", b"small");
    let files = vec![top];
    let big = finished_of(&server, &files, &[], "d/a-big.bin");
    assert_eq!(big["verified"], true, "{big}");
    let small = finished_of(&server, &files, &[], "b-small.txt");
    assert_ne!(small["verified"], true, "{small}");
    assert_eq!(
        entries(&server.drop_dir().join("d (1)")),
        ["a-big.bin", "b-small.txt"]
    );
}

/// In plain lines (logs, `--plain`), a small file of a batch gets its
/// outcome line only: a folder of small files is one line a file, not two.
/// A classic upload and a big file still get a start line too.
#[test]
fn plain_lines_give_a_small_batch_file_its_outcome_only() {
    // Without the hello, a classic first file too: it has its own lines.
    let server = Serve::start(&["--no-hello"]);
    let src = tempfile::tempdir().unwrap();
    let big = pattern(2 << 20, 4);
    let top = folder_with(
        src.path(),
        "d",
        &[
            ("a.txt", b"a"),
            ("b.txt", b"bb"),
            ("c.txt", b"ccc"),
            ("big.bin", &big),
        ],
    );
    let sent = server.send().arg(&top).timeout(PATIENCE).assert().success();
    let said = stderr_of(&sent);
    for name in ["d/b.txt", "d/c.txt", "d/big.bin"] {
        server.wait_for_log(&format!("  {name}  "));
    }
    let log = server.log();
    for (verb, text) in [("sending", &said), ("receiving", &log)] {
        let starts: Vec<&str> = text.lines().filter(|l| l.starts_with(verb)).collect();
        assert_eq!(
            starts.len(),
            2,
            "{verb}: the classic a.txt and big.bin:\n{text}"
        );
        assert!(starts[0].contains("a.txt"), "{text}");
        assert!(starts[1].contains("d/big.bin"), "{text}");
    }
    // Timed, but for a small file of the batch: its time is its wait in line.
    for (name, timed) in [
        ("a.txt", true),
        ("d/b.txt", false),
        ("d/c.txt", false),
        ("d/big.bin", true),
    ] {
        let line = said
            .lines()
            .find(|l| l.starts_with("saved") && l.contains(name))
            .unwrap_or_else(|| panic!("no outcome line for {name}:\n{said}"));
        assert_eq!(line.contains(" in "), timed, "{line}");
    }
}

/// A named pipe, in a folder or given by name, is not a file to send: it
/// fails at once with the reason (opening one would wait for a writer for
/// ever), and everything else goes.
#[test]
fn a_named_pipe_fails_at_once_and_the_rest_go() {
    let server = Serve::start(&[]);
    let src = tempfile::tempdir().unwrap();
    let top = folder_with(src.path(), "d", &[("a.txt", b"a"), ("b.txt", b"bb")]);
    make_fifo(&top.join("pipe"));
    let loose = src.path().join("loose-pipe");
    make_fifo(&loose);
    let sent = server
        .send()
        .arg(&top)
        .arg(&loose)
        .timeout(PATIENCE)
        .assert()
        .code(1);
    let said = stderr_of(&sent);
    for name in ["d/pipe", "loose-pipe"] {
        assert!(
            said.lines().any(|l| l.starts_with("failed")
                && l.contains(name)
                && l.contains("not a regular file")),
            "{name}:\n{said}"
        );
    }
    assert!(said.contains("2 saved, 2 failed"), "{said}");
    assert_eq!(entries(&server.drop_dir().join("d")), ["a.txt", "b.txt"]);
}

/// A folder big enough goes over several batches that fill one top folder
/// (PROTOCOL.md B5a): sent twice, two whole copies, `many` and `many (1)`.
#[test]
fn a_big_folder_fills_one_top_folder_from_several_batches() {
    let server = Serve::start(&["--trace"]);
    let src = tempfile::tempdir().unwrap();
    let top = src.path().join("many");
    std::fs::create_dir_all(top.join("sub/empty")).unwrap();
    for i in 0..600 {
        let dir = if i % 3 == 0 {
            top.join("sub")
        } else {
            top.clone()
        };
        write_file(&dir, &format!("f{i:03}.bin"), &pattern(2048 + i, i as u8));
    }
    for _ in 0..2 {
        server
            .send()
            .args(["--jobs", "4"])
            .arg(&top)
            .assert()
            .success()
            .stderr(predicate::str::contains("600 saved, 0 failed"));
    }
    assert_eq!(entries(server.drop_dir()), ["many", "many (1)"]);
    for copy in ["many", "many (1)"] {
        assert_eq!(tree(&server.drop_dir().join(copy)), tree(&top), "{copy}");
    }
    // Per run: the classic file, the batch that makes the folder, two that fill it.
    crate::util::wait_until(
        || server.log().matches("saved     ").count() == 1200,
        "every file saved",
        || server.log(),
    );
    assert_eq!(
        server.log().matches(" opened a batch").count(),
        6,
        "{}",
        server.log()
    );
}

#[test]
fn classic_is_classic_even_with_an_ftx_server() {
    let server = Serve::start(&["--trace"]);
    let src = tempfile::tempdir().unwrap();
    let top = photos(src.path());
    server.send().arg("--classic").arg(&top).assert().success();
    // One connection per file, every file under its base name at the top.
    assert_eq!(
        entries(server.drop_dir()),
        [
            "a.bin",
            "beach.jpg",
            "cover.jpg",
            "résumé été.txt",
            "zero.txt"
        ]
    );
    crate::util::wait_until(
        || server.log().matches("saved     ").count() == 5,
        "five files saved",
        || server.log(),
    );
    assert_eq!(
        server
            .log()
            .matches(" sent its header; a worker takes it")
            .count(),
        5
    );
}

/// To a classroom server, a folder is its files under their base names, nothing more.
#[test]
fn a_classroom_server_sees_only_classic_uploads() {
    let python = PythonServer::classroom();
    let src = tempfile::tempdir().unwrap();
    let top = photos(src.path());
    std::fs::create_dir(top.join("2024/other")).unwrap();
    write_file(&top.join("2024/other"), "a.bin", b"same name");
    let out = send_to(&python.address()).arg(&top).assert().success();
    let said = stderr_of(&out);
    assert!(said.contains("6 delivered, 0 failed"), "{said}");
    assert!(
        said.contains("1 empty folder not sent: a classroom server takes files only"),
        "{said}"
    );
    assert_eq!(
        entries(python.dir.path()),
        [
            "a (1).bin.temp",
            "a.bin.temp",
            "beach.jpg.temp",
            "cover.jpg.temp",
            "résumé été.txt.temp",
            "zero.txt.temp"
        ]
    );
    assert_eq!(
        std::fs::read(python.dir.path().join("a (1).bin.temp")).unwrap(),
        b"same name"
    );
}

/// `--ftx` to a classroom server: the one documented trace (PROTOCOL.md B1a),
/// noticed at once, nothing more sent, and a message that says what to do.
#[test]
fn ftx_mode_told_to_a_classroom_server_fails_and_says_so() {
    let python = PythonServer::classroom();
    let src = tempfile::tempdir().unwrap();
    let file = write_file(src.path(), "notes.txt", b"some notes");
    let out = send_to(&python.address())
        .args(["--ftx", "--timeout", "5s"])
        .arg(&file)
        .assert()
        .code(1);
    let said = stderr_of(&out);
    assert!(
        said.contains("is not an ftx server: it answered \"go ahead\" to the opening of ftx mode")
            && said.contains("send without --ftx"),
        "{said}"
    );
    assert!(said.contains("0 saved, 1 failed"), "{said}");
    // Only the opening reached it: no content, notes.txt never sent.
    assert!(!python.dir.path().join("notes.txt.temp").exists());
}

/// `--ftx` with a big folder to a server that answers like a classroom one:
/// one opening reaches it, not one per batch.
#[test]
fn ftx_mode_sends_a_classroom_server_one_opening_only() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let counting = std::thread::spawn(move || {
        let mut connections = 0;
        let until = std::time::Instant::now() + std::time::Duration::from_secs(3);
        while std::time::Instant::now() < until {
            match listener.accept() {
                Ok((mut stream, _)) => {
                    connections += 1;
                    stream.set_nonblocking(false).unwrap();
                    let mut header = [0u8; 1024];
                    let _ = stream.read(&mut header);
                    let _ = stream.write_all(b"go ahead");
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
            }
        }
        connections
    });
    let src = tempfile::tempdir().unwrap();
    let top = src.path().join("many");
    std::fs::create_dir(&top).unwrap();
    for i in 0..600 {
        write_file(&top, &format!("f{i:03}.txt"), b"x");
    }
    let out = send_to(&addr.to_string())
        .args(["--ftx", "--jobs", "4", "--timeout", "2s"])
        .arg(&top)
        .assert()
        .code(1);
    let said = stderr_of(&out);
    assert!(said.contains("0 saved, 600 failed"), "{said}");
    assert!(said.contains("is not an ftx server"), "{said}");
    assert_eq!(counting.join().unwrap(), 1);
}

#[test]
fn hostile_paths_stay_inside_the_drop_folder() {
    let parent = tempfile::tempdir().unwrap();
    let drop = parent.path().join("drop");
    let server = Serve::start_at(tempfile::tempdir().unwrap(), &drop, &[]);
    std::os::unix::fs::symlink(parent.path(), drop.join("escape")).unwrap();
    let paths = [
        "../../outside.txt",
        "/tmp/absolute.txt",
        "a/../../../up.txt",
        "..\\..\\win.txt",
        "escape/through-the-link.txt",
        "a/\u{1b}[2J/clear.txt",
    ];
    let frames: Vec<(Value, Vec<u8>)> = paths
        .iter()
        .map(|p| (serde_json::json!({"path": p, "size": 1}), b"x".to_vec()))
        .collect();
    let answers = batch_by_hand(&server, &frames);
    assert_eq!(answers.len(), paths.len() + 1, "{answers:?}");
    assert!(
        answers[..paths.len()]
            .iter()
            .all(|a| a["status"] == "saved"),
        "{answers:?}"
    );
    assert_eq!(answers[paths.len()]["status"], "end");
    // Nothing beside the drop folder, nothing through the link.
    assert_eq!(entries(parent.path()), ["drop"]);
    let saved: Vec<String> = answers[..paths.len()]
        .iter()
        .map(|a| a["saved_as"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        saved,
        [
            "outside.txt",
            "tmp/absolute.txt",
            "a/up.txt",
            "win.txt",
            "escape (1)/through-the-link.txt",
            "a/_[2J/clear.txt"
        ]
    );
    for path in &saved {
        assert_eq!(std::fs::read(drop.join(path)).unwrap(), b"x", "{path}");
    }
}

#[test]
fn a_wrong_hash_fails_the_file_and_leaves_nothing_and_the_batch_goes_on() {
    let server = Serve::start(&[]);
    let good = b"the real content".to_vec();
    let frames = vec![
        (
            serde_json::json!({"path": "d/corrupted.txt", "size": good.len(), "blake3": blake3::hash(b"other content").to_hex().as_str()}),
            good.clone(),
        ),
        (
            serde_json::json!({"path": "d/fine.txt", "size": good.len(), "blake3": blake3::hash(&good).to_hex().as_str()}),
            good.clone(),
        ),
    ];
    // Big files are spliced and hashed back from the file, small ones hashed as they come: both checked.
    let big = pattern(3 << 20, 5);
    let mut other = big.clone();
    other[2 << 20] ^= 1;
    let frames = [
        frames,
        vec![
            (
                serde_json::json!({"path": "d/big-corrupted.bin", "size": big.len(), "blake3": blake3::hash(&other).to_hex().as_str()}),
                big.clone(),
            ),
            (
                serde_json::json!({"path": "d/big-fine.bin", "size": big.len(), "blake3": blake3::hash(&big).to_hex().as_str()}),
                big.clone(),
            ),
        ],
    ]
    .concat();
    let answers = batch_by_hand(&server, &frames);
    for failed in [0, 2] {
        assert_eq!(answers[failed]["status"], "failed");
        assert!(
            answers[failed]["reason"]
                .as_str()
                .unwrap()
                .starts_with("verification failed"),
            "{answers:?}"
        );
    }
    assert_eq!(answers[1]["status"], "saved");
    assert_eq!(answers[1]["blake3"], blake3::hash(&good).to_hex().as_str());
    assert_eq!(answers[3]["status"], "saved");
    assert_eq!(answers[3]["blake3"], blake3::hash(&big).to_hex().as_str());
    assert_eq!(
        entries(&server.drop_dir().join("d")),
        ["big-fine.bin", "fine.txt"]
    );
    assert_eq!(
        std::fs::read(server.drop_dir().join("d/big-fine.bin")).unwrap(),
        big
    );
    assert_eq!(
        part_bytes(server.drop_dir()),
        0,
        "no part of a file that failed its check"
    );
    server.wait_for_log("d/corrupted.txt  verification failed");
}

/// A hash sent after the content (PROTOCOL.md B3 trailer) is checked the same
/// way; a line that is not a hash ends the batch, saying why.
#[test]
fn a_trailer_hash_is_checked_and_a_bad_one_ends_the_batch() {
    let server = Serve::start(&[]);
    let content = pattern(2 << 20, 8);
    let right = blake3::hash(&content).to_hex().to_string();
    let wrong = blake3::hash(b"something else").to_hex().to_string();
    let mut stream = open_batch(&server);
    for (path, trailer) in [
        ("t/right.bin", format!("{{\"blake3\":\"{right}\"}}\n")),
        ("t/wrong.bin", format!("{{\"blake3\":\"{wrong}\"}}\n")),
        ("t/garbage.bin", "not a hash\n".to_string()),
    ] {
        let frame = serde_json::json!({"path": path, "size": content.len(), "trailer": true});
        stream.write_all(format!("{frame}\n").as_bytes()).unwrap();
        stream.write_all(&content).unwrap();
        stream.write_all(trailer.as_bytes()).unwrap();
    }
    let answers: Vec<Value> = BufReader::new(stream)
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    assert_eq!(answers[0]["status"], "saved", "{answers:?}");
    assert_eq!(answers[0]["blake3"], right.as_str());
    assert_eq!(answers[1]["status"], "failed", "{answers:?}");
    assert!(answers[1]["reason"]
        .as_str()
        .unwrap()
        .starts_with("verification failed"));
    assert_eq!(answers[2]["status"], "aborted", "{answers:?}");
    assert!(
        answers[2]["reason"]
            .as_str()
            .unwrap()
            .contains("the hash after the content"),
        "{answers:?}"
    );
    assert_eq!(entries(&server.drop_dir().join("t")), ["right.bin"]);
    assert_eq!(part_bytes(server.drop_dir()), 0);
}

/// Joining a folder needs the token its batch was given: a made-up one ends
/// the batch before any file, and a top folder name cannot leave the drop folder.
#[test]
fn a_folder_is_joined_only_with_its_token() {
    let parent = tempfile::tempdir().unwrap();
    let drop = parent.path().join("drop");
    let server = Serve::start_at(tempfile::tempdir().unwrap(), &drop, &[]);
    let answers = batch_by_hand(
        &server,
        &[
            (
                serde_json::json!({"top": "photos", "join": "00112233445566778899aabbccddeeff"}),
                vec![],
            ),
            (
                serde_json::json!({"path": "photos/a.txt", "size": 1}),
                b"x".to_vec(),
            ),
        ],
    );
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(answers[0]["status"], "aborted");
    assert!(answers[0]["reason"]
        .as_str()
        .unwrap()
        .contains("no folder is shared under that token"));
    assert!(entries(&drop).is_empty());
    let answers = batch_by_hand(
        &server,
        &[(serde_json::json!({"top": "../../outside"}), vec![])],
    );
    assert_eq!(answers[0]["status"], "top", "{answers:?}");
    assert_eq!(answers[0]["saved_as"], "outside");
    assert_eq!(entries(parent.path()), ["drop"]);
    assert_eq!(entries(&drop), ["outside"]);
}

#[test]
fn a_batch_that_breaks_off_leaves_no_partial_file() {
    let server = Serve::start(&[]);
    let mut stream = open_batch(&server);
    stream
        .write_all(b"{\"path\":\"t/half.bin\",\"size\":100000}\n")
        .unwrap();
    stream.write_all(&[1u8; 40_000]).unwrap();
    drop(stream);
    server.wait_for_log("t/half.bin  client closed after 39.06 KiB of 97.66 KiB");
    batch_seen_ended(&server);
    assert!(
        entries(server.drop_dir()).is_empty(),
        "no partial file, and no empty folder t/"
    );
    // The server goes on.
    let src = tempfile::tempdir().unwrap();
    let file = write_file(src.path(), "after.txt", b"after");
    server
        .send()
        .arg(&file)
        .assert()
        .success()
        .stderr(predicate::str::contains("1 saved, 0 failed"));
}

/// A batch the server ends early (here a file over `--max-size`) tells the
/// sender why, in the batch's own words, and what was saved stays saved.
#[test]
fn a_batch_the_server_ends_says_why() {
    let server = Serve::start(&["--max-size", "10KiB"]);
    let src = tempfile::tempdir().unwrap();
    let top = src.path().join("d");
    std::fs::create_dir(&top).unwrap();
    write_file(&top, "a.txt", b"first");
    write_file(&top, "b.txt", b"second");
    write_file(&top, "c.bin", &pattern(20_000, 3));
    server
        .send()
        .arg(&top)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "failed    d/c.bin  the server ended the batch: too large: 19.53 KiB announced",
        ))
        .stderr(predicate::str::contains("2 saved, 1 failed"));
    assert_eq!(entries(&server.drop_dir().join("d")), ["a.txt", "b.txt"]);
}

/// `ftx send --json` to `server`, returning the `finished` event of `name`.
fn finished_of(server: &Serve, files: &[PathBuf], extra: &[&str], name: &str) -> Value {
    let out = assert_cmd::Command::new(ftx_bin())
        .args(["send", "--json", "--to", &server.addr.to_string()])
        .args(extra)
        .args(files)
        .timeout(PATIENCE)
        .assert()
        .success();
    String::from_utf8_lossy(&out.get_output().stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|e| e["event"] == "finished" && e["name"] == name)
        .unwrap_or_else(|| panic!("no finished event for {name}"))
}

/// Starts a paced `ftx send` of `files` and kills it (or the server) once the server holds part of the big one.
fn interrupt(server: &mut Serve, files: &[PathBuf], extra: &[&str], kill_server: bool) {
    let mut sender = paced_send_under_way(server, files, extra, std::process::Stdio::null());
    if kill_server {
        server.signal("KILL");
        server.wait_exit();
    } else {
        sender.signal("KILL");
        sender.wait_exit();
    }
}

/// A `ftx send --plain --rate 2MiB` of `files`, once the server holds part of the big one.
fn paced_send_under_way(
    server: &Serve,
    files: &[PathBuf],
    extra: &[&str],
    stderr: std::process::Stdio,
) -> crate::util::Running {
    paced_send_as(
        std::process::Command::new(ftx_bin()),
        server,
        files,
        extra,
        stderr,
    )
}

/// [`paced_send_under_way`] with `send`, the ftx binary as a given user
/// would run it (its environment).
fn paced_send_as(
    mut send: std::process::Command,
    server: &Serve,
    files: &[PathBuf],
    extra: &[&str],
    stderr: std::process::Stdio,
) -> crate::util::Running {
    let sender = crate::util::Running(
        send.args(["send", "--plain", "--rate", "2MiB", "--to"])
            .arg(server.addr.to_string())
            .args(extra)
            .args(files)
            .stderr(stderr)
            .spawn()
            .unwrap(),
    );
    crate::util::wait_until(
        || part_bytes(server.drop_dir()) > 500_000,
        "part of the big file on the server",
        || server.log(),
    );
    sender
}

/// Killing the sender, then the server, half way through a big file: of two
/// files (the second goes in a batch), and of one file alone with `--ftx`.
#[test]
fn an_upload_killed_half_way_resumes_where_it_stopped() {
    for (kill_server, alone) in [(false, false), (true, false), (false, true), (true, true)] {
        let mut server = Serve::start(&[]);
        let src = tempfile::tempdir().unwrap();
        let small = write_file(src.path(), "small.txt", b"first");
        let big = write_file(src.path(), "big.bin", &pattern(8 << 20, 9));
        let (files, extra) = if alone {
            (vec![big], vec!["--ftx"])
        } else {
            (vec![small, big], vec![])
        };
        interrupt(&mut server, &files, &extra, kill_server);
        assert!(
            !server.drop_dir().join("big.bin").exists(),
            "a part under the final name"
        );
        let held = part_bytes(server.drop_dir());
        if kill_server {
            // The same folder, a new server.
            let dir = std::mem::replace(&mut server.dir, tempfile::tempdir().unwrap());
            let path = dir.path().to_path_buf();
            server = Serve::start_at(dir, &path, &[]);
        }
        let finished = finished_of(&server, &files, &extra, "big.bin");
        let resumed = finished["resumed_from"].as_u64().unwrap_or(0);
        assert!(
            resumed > 0 && resumed <= held,
            "kill_server {kill_server}, alone {alone}: {finished}"
        );
        assert_eq!(finished["verified"], true);
        assert_eq!(
            std::fs::read(server.drop_dir().join("big.bin")).unwrap(),
            pattern(8 << 20, 9),
            "kill_server {kill_server}, alone {alone}"
        );
        assert_eq!(
            part_bytes(server.drop_dir()),
            0,
            "the part is gone once the file is whole"
        );
    }
}

/// Waits until the server has seen a batch of a killed sender end (a person
/// runs the command again seconds later; a folder still being filled is not
/// taken up again).
fn batch_seen_ended(server: &Serve) {
    crate::util::wait_until(
        || server.log().contains("batch from "),
        "the server seeing the batch end",
        || server.log(),
    );
}

/// A folder whose sending was killed half way (the sender, or the server,
/// which is then started again on the same drop folder) is filled again by
/// the same command (PROTOCOL.md B5b): no `photos (1)/`, no file saved
/// twice, the big file resumed; once finished, sending it again goes beside it.
#[test]
fn a_folder_killed_half_way_is_filled_again_not_copied() {
    for kill_server in [false, true] {
        let mut server = Serve::start(&[]);
        let src = tempfile::tempdir().unwrap();
        let top = src.path().join("photos");
        std::fs::create_dir_all(top.join("sub")).unwrap();
        write_file(&top, "a.txt", b"first");
        write_file(&top, "b.txt", b"second file");
        write_file(&top.join("sub"), "c.txt", b"third file, below");
        write_file(&top, "big.bin", &pattern(8 << 20, 5));
        interrupt(&mut server, std::slice::from_ref(&top), &[], kill_server);
        if kill_server {
            let dir = std::mem::replace(&mut server.dir, tempfile::tempdir().unwrap());
            let path = dir.path().to_path_buf();
            server = Serve::start_at(dir, &path, &[]);
        } else {
            batch_seen_ended(&server);
        }
        assert_eq!(entries(server.drop_dir()), [".ftx-partial", "photos"]);
        assert!(
            server.drop_dir().join("photos/b.txt").exists(),
            "b.txt goes before the big file, and must not be saved twice"
        );

        let again = assert_cmd::Command::new(ftx_bin())
            .args(["send", "--json", "--to", &server.addr.to_string()])
            .arg(&top)
            .timeout(PATIENCE)
            .assert()
            .success();
        assert_eq!(
            entries(server.drop_dir()),
            ["photos"],
            "kill_server {kill_server}: the same folder, filled, and nothing at the top"
        );
        assert_eq!(
            tree(&server.drop_dir().join("photos")),
            tree(&top),
            "kill_server {kill_server}: every file once, byte for byte"
        );
        let finished = |name: &str| {
            String::from_utf8_lossy(&again.get_output().stdout)
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .find(|e| e["event"] == "finished" && e["name"] == name)
                .unwrap_or_else(|| panic!("{name} finished"))
        };
        let big = finished("photos/big.bin");
        assert!(big["resumed_from"].as_u64().unwrap_or(0) > 0, "{big}");
        assert_eq!(big["verified"], true);
        let b = finished("photos/b.txt");
        assert_eq!(b["resumed_from"], 11, "all of it was there: {b}");
        assert_eq!(finished("photos/sub/c.txt")["resumed_from"], Value::Null);
        let log = server.log();
        assert!(
            log.lines()
                .any(|l| l.ends_with("  photos/b.txt  11 B  already there")),
            "{log}"
        );

        // Finished now: the next time it goes beside it.
        server.send().arg(&top).assert().success();
        assert_eq!(entries(server.drop_dir()), ["photos", "photos (1)"]);
        assert_eq!(tree(&server.drop_dir().join("photos (1)")), tree(&top));
    }
}

/// A big file saved before in a folder taken up again, changed since behind
/// ftx's back (same size, same modification time): it fails once, on the
/// check of its hash, then goes whole beside the old one; nothing is replaced.
#[test]
fn a_file_changed_since_it_was_saved_in_a_folder_taken_up_fails_once_then_goes_beside() {
    let mut server = Serve::start(&[]);
    let src = tempfile::tempdir().unwrap();
    let top = src.path().join("photos");
    std::fs::create_dir_all(&top).unwrap();
    write_file(&top, "a.txt", b"first");
    let big = write_file(&top, "big.bin", &pattern(200_000, 1));
    write_file(&top, "z.bin", &pattern(8 << 20, 2));
    interrupt(&mut server, std::slice::from_ref(&top), &[], false);
    batch_seen_ended(&server);
    assert!(server.drop_dir().join("photos/big.bin").exists());

    let when = std::fs::metadata(&big).unwrap().modified().unwrap();
    let mut changed = pattern(200_000, 1);
    changed[0] ^= 0xff;
    std::fs::write(&big, &changed).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&big)
        .unwrap()
        .set_modified(when)
        .unwrap();
    let out = server.send().arg(&top).assert().code(1);
    let said = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        said.contains("photos/big.bin")
            && said.contains("the file saved before is not the sender's BLAKE3"),
        "{said}"
    );
    server.send().arg(&top).assert().success();
    let photos = server.drop_dir().join("photos");
    assert_eq!(
        entries(&photos),
        ["a.txt", "big (1).bin", "big.bin", "z.bin"]
    );
    assert_eq!(
        std::fs::read(photos.join("big.bin")).unwrap(),
        pattern(200_000, 1)
    );
    assert_eq!(std::fs::read(photos.join("big (1).bin")).unwrap(), changed);
    assert_eq!(
        std::fs::read(photos.join("z.bin")).unwrap(),
        pattern(8 << 20, 2)
    );
}

/// The same for a folder big enough to go over several batches (B5a): the
/// one that makes the folder gives the key, the others join it.
#[test]
fn a_big_folder_killed_half_way_is_filled_again_by_its_batches() {
    let mut server = Serve::start(&[]);
    let src = tempfile::tempdir().unwrap();
    let top = src.path().join("photos");
    std::fs::create_dir_all(top.join("many")).unwrap();
    for n in 0..600 {
        write_file(
            &top.join("many"),
            &format!("{n:03}.txt"),
            &pattern(100, n as u8),
        );
    }
    write_file(&top, "big.bin", &pattern(8 << 20, 7));
    let files = std::slice::from_ref(&top);
    interrupt(&mut server, files, &["-j", "4"], false);
    batch_seen_ended(&server);
    let saved_before = entries(&server.drop_dir().join("photos/many")).len();
    assert!(saved_before > 0, "small files went beside the big one");

    server.send().args(["-j", "4"]).arg(&top).assert().success();
    assert_eq!(entries(server.drop_dir()), ["photos"], "{}", server.log());
    assert_eq!(tree(&server.drop_dir().join("photos")), tree(&top));
}

/// A part's key names the file without reading it (PROTOCOL.md B8); a file
/// changed behind ftx's back (same size, same modification time) cannot pass
/// on the old part: the check of the whole file fails it, the part goes, and
/// the next run sends it whole.
#[test]
fn a_part_of_other_content_never_passes_as_the_file() {
    let mut server = Serve::start(&[]);
    let src = tempfile::tempdir().unwrap();
    let big = write_file(src.path(), "big.bin", &pattern(8 << 20, 4));
    let files = vec![big.clone()];
    interrupt(&mut server, &files, &["--ftx"], false);
    assert!(part_bytes(server.drop_dir()) > 0);
    // Its first byte changes, its size and modification time do not.
    let when = std::fs::metadata(&big).unwrap().modified().unwrap();
    let mut changed = pattern(8 << 20, 4);
    changed[0] ^= 0xff;
    {
        use std::io::Seek;
        let mut file = std::fs::OpenOptions::new().write(true).open(&big).unwrap();
        file.seek(std::io::SeekFrom::Start(0)).unwrap();
        file.write_all(&changed[..1]).unwrap();
        file.set_modified(when).unwrap();
    }
    let out = assert_cmd::Command::new(ftx_bin())
        .args(["send", "--plain", "--ftx", "--to", &server.addr.to_string()])
        .arg(&big)
        .timeout(PATIENCE)
        .assert()
        .code(1);
    let said = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(said.contains("verification failed"), "{said}");
    assert!(!server.drop_dir().join("big.bin").exists());
    assert_eq!(
        part_bytes(server.drop_dir()),
        0,
        "the part that failed is gone"
    );
    let finished = finished_of(&server, &files, &["--ftx"], "big.bin");
    assert_eq!(
        finished["resumed_from"].as_u64().unwrap_or(0),
        0,
        "{finished}"
    );
    assert_eq!(
        std::fs::read(server.drop_dir().join("big.bin")).unwrap(),
        changed
    );
}

/// Ctrl-C on `ftx send`: exit 130 at once, what came of the file in words,
/// and the same command then resumes, saying where it took up again.
#[test]
fn ctrl_c_on_the_sender_says_how_to_resume_and_the_next_run_does() {
    let server = Serve::start(&[]);
    let src = tempfile::tempdir().unwrap();
    let big = write_file(src.path(), "big.bin", &pattern(8 << 20, 6));
    let mut sender = paced_send_under_way(
        &server,
        std::slice::from_ref(&big),
        &["--ftx"],
        std::process::Stdio::piped(),
    );
    sender.signal("INT");
    assert_eq!(sender.wait_exit(), Some(130));
    let said = sender.stderr_text();
    assert!(
        said.contains("ftx: interrupted (Ctrl-C): 0 saved, 1 failed")
            && said.contains("big.bin  interrupted: the server holds up to ")
            && said.contains(" of 8.00 MiB; the same command resumes it"),
        "{said}"
    );
    let out = server.send().arg("--ftx").arg(&big).assert().success();
    let said = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        said.contains("saved     big.bin  8.00 MiB")
            && said.contains("resumed at ")
            && said.contains("1 saved, 0 failed: 8.00 MiB (")
            && said.contains(" of it on the server already) in "),
        "{said}"
    );
    assert_eq!(
        std::fs::read(server.drop_dir().join("big.bin")).unwrap(),
        pattern(8 << 20, 6)
    );
}

#[test]
fn parts_nobody_resumed_for_a_day_are_removed() {
    let server = Serve::start(&[]);
    let staging = server.drop_dir().join(".ftx-partial");
    std::fs::create_dir(&staging).unwrap();
    let old = staging.join(format!("{}-100", "ab".repeat(32)));
    let fresh = staging.join(format!("{}-100", "cd".repeat(32)));
    std::fs::write(&old, b"old").unwrap();
    std::fs::write(&fresh, b"fresh").unwrap();
    let aged = std::process::Command::new("touch")
        .args(["-d", "25 hours ago"])
        .arg(&old)
        .status()
        .unwrap();
    assert!(aged.success());
    // Any batch opening looks.
    let src = tempfile::tempdir().unwrap();
    let files = [
        write_file(src.path(), "one.txt", b"1"),
        write_file(src.path(), "two.txt", b"2"),
    ];
    server.send().args(&files).assert().success();
    assert!(!old.exists(), "a day-old part is still there");
    assert!(fresh.exists(), "a fresh part was removed");
}

/// A file frame whose offset is past its size (PROTOCOL.md B8) does not add
/// up: the batch ends with that reason, also where the file was saved there
/// before (B5b), where `size - offset` once wrapped and the server took the
/// rest of the stream, `end` included, for content.
#[test]
fn an_offset_past_the_size_ends_the_batch() {
    let server = Serve::start(&[]);
    let key = "ab".repeat(32);
    let blake3 = blake3::hash(b"hello").to_hex().to_string();
    let top = serde_json::json!({"top": "t", "key": key});
    let file = |offset: u64| serde_json::json!({"path": "t/a.txt", "size": 5, "blake3": blake3, "offset": offset});
    // The first batch saves t/a.txt and breaks off: the folder is unfinished.
    let mut first = open_batch(&server);
    first
        .write_all(format!("{top}\n{}\nhello", file(0)).as_bytes())
        .unwrap();
    let mut answers = BufReader::new(first.try_clone().unwrap());
    for _ in 0..2 {
        let mut line = String::new();
        answers.read_line(&mut line).unwrap();
        assert!(line.contains("\"status\""), "{line}");
    }
    drop((first, answers));
    batch_seen_ended(&server);

    let answers = batch_by_hand(&server, &[(top, Vec::new()), (file(9), Vec::new())]);
    assert_eq!(answers[0]["saved_as"], "t", "{answers:?}");
    let last = answers.last().unwrap();
    assert_eq!(last["status"], "aborted", "{answers:?}");
    let reason = last["reason"].as_str().unwrap();
    assert!(
        reason.contains("offset 9 is past its size of 5"),
        "{reason}"
    );
}

/// More top folders than one batch may fill (64, PROTOCOL.md B10) go over
/// one batch after another, each folder whole.
#[test]
fn seventy_folders_go_over_several_batches() {
    let source = tempfile::tempdir().unwrap();
    let folders: Vec<PathBuf> = (0..70)
        .map(|n| {
            let name = format!("f{n:02}");
            folder_with(source.path(), &name, &[("a.txt", name.as_bytes())])
        })
        .collect();
    let server = Serve::start(&[]);
    server
        .send()
        .args(["-j", "1"])
        .args(&folders)
        .assert()
        .success();
    for n in 0..70 {
        let name = format!("f{n:02}");
        let got = std::fs::read(server.drop_dir().join(&name).join("a.txt")).unwrap();
        assert_eq!(got, name.as_bytes());
    }
    assert_eq!(entries(server.drop_dir()).len(), 70);
}

/// Part keys are the sender's own (mixed with a secret in its state
/// folder): another user sending the same file, same path, size, time and
/// inode, makes a key of its own and resumes nothing of the first one's
/// part; the first user's next run resumes it.
#[test]
fn another_user_cannot_take_up_a_part() {
    let server = Serve::start(&[]);
    let src = tempfile::tempdir().unwrap();
    let big = write_file(src.path(), "big.bin", &pattern(8 << 20, 3));
    let (first, other) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let as_user = |state: &Path| {
        let mut send = std::process::Command::new(ftx_bin());
        send.env("XDG_STATE_HOME", state);
        send
    };
    let mut sender = paced_send_as(
        as_user(first.path()),
        &server,
        std::slice::from_ref(&big),
        &["--ftx"],
        std::process::Stdio::null(),
    );
    sender.signal("KILL");
    sender.wait_exit();
    batch_seen_ended(&server);
    let resumed_from = |state: &Path| {
        let out = assert_cmd::Command::from_std(as_user(state))
            .args(["send", "--json", "--ftx", "--to", &server.addr.to_string()])
            .arg(&big)
            .timeout(PATIENCE)
            .assert()
            .success();
        let finished = String::from_utf8_lossy(&out.get_output().stdout)
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .find(|e| e["event"] == "finished")
            .unwrap();
        finished["resumed_from"].as_u64().unwrap_or(0)
    };
    assert_eq!(
        resumed_from(other.path()),
        0,
        "another user resumed the part"
    );
    assert!(
        part_bytes(server.drop_dir()) > 500_000,
        "the first one's part is kept"
    );
    std::fs::remove_file(server.drop_dir().join("big.bin")).unwrap();
    assert!(
        resumed_from(first.path()) > 0,
        "the first user's run resumes"
    );
}

/// `serve --json` shows a batch waiting for a worker without a size: the
/// opening's first 8 bytes are its magic, not a size (it read
/// 18403524986835972362 bytes).
#[test]
fn a_batch_waiting_has_no_size_in_json() {
    let server = crate::util::JsonServe::start();
    let mut batch = std::net::TcpStream::connect(server.addr).unwrap();
    batch.write_all(b"\xffftx/b1\n{\"batch\":1}\n").unwrap();
    let queued = server
        .out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(&l.unwrap()).unwrap())
        .find(|e| e["event"] == "queued")
        .unwrap();
    assert!(queued.get("size").is_none(), "{queued}");
    assert_eq!(queued["name"], "(a batch of files from ftx send)");
}

/// `serve --trace` shows a batch's exchange: each frame and each answer as
/// its line, and the content's bytes.
#[test]
fn trace_shows_a_batchs_frames_and_answers() {
    let server = Serve::start(&["--trace"]);
    let src = tempfile::tempdir().unwrap();
    let folder = folder_with(src.path(), "trd", &[("a.txt", b"a\n")]);
    server.send().arg(&folder).assert().success();
    let log = server.wait_for_log("{\"status\":\"end\"}");
    for line in [
        " opened a batch",
        " → server  {\"top\":\"trd\"",
        " → server  {\"path\":\"trd/a.txt\",\"size\":2,",
        " → server  2 content bytes",
        "{\"status\":\"saved\",\"path\":\"trd/a.txt\"",
        " → server  {\"end\":true}",
    ] {
        assert!(log.contains(line), "{line:?} not in:\n{log}");
    }
    assert!(log.contains("trace server → 127.0.0.1:"), "{log}");
}

/// The server killed under a big verified file: the sender says the file
/// failed and that running the same command again resumes it (its part is kept).
#[test]
fn a_batch_cut_off_says_that_running_again_resumes() {
    let mut server = Serve::start(&[]);
    let src = tempfile::tempdir().unwrap();
    let big = write_file(src.path(), "big.bin", &pattern(8 << 20, 5));
    let mut sender = paced_send_under_way(&server, &[big], &[], std::process::Stdio::piped());
    server.signal("KILL");
    server.wait_exit();
    assert_eq!(sender.wait_exit(), Some(1));
    let said = sender.stderr_text();
    assert!(
        said.contains("big.bin")
            && said.contains("run the same command again to resume it where it stopped"),
        "{said}"
    );
}

/// `serve --json` reports a batch as a batch when it ends: its client, how
/// many files it saved and failed, its bytes, the folders it filled, and
/// why it ended early if it did; its files have events of their own.
#[test]
fn json_reports_a_batch_as_a_batch() {
    let server = crate::util::JsonServe::start();
    let src = tempfile::tempdir().unwrap();
    let folder = folder_with(src.path(), "jb", &[("a.txt", b"a\n"), ("b.txt", b"bb\n")]);
    let loose = write_file(src.path(), "c.txt", b"ccc\n");
    // One run each: given together, they may share a batch or not.
    for sent in [&folder, &loose] {
        crate::util::send_to(&server.addr.to_string())
            .arg(sent)
            .assert()
            .success();
    }
    let mut lines = server.out.lines();
    let mut events = Vec::new();
    let mut batches: Vec<serde_json::Value> = Vec::new();
    while batches.len() < 2 {
        let line = lines.next().expect("a batch event").unwrap();
        let event: serde_json::Value = serde_json::from_str(&line).unwrap();
        match event["event"] == "batch" {
            true => batches.push(event),
            false => events.push(event),
        }
    }
    let (folder, loose) = (&batches[0], &batches[1]);
    assert_eq!(folder["into"], serde_json::json!(["jb"]), "{folder}");
    assert_eq!(folder["saved"], 2, "{folder}");
    assert_eq!(folder["failed"], 0, "{folder}");
    assert_eq!(folder["bytes"], 5, "{folder}");
    assert_eq!(loose["into"], serde_json::json!([]), "{loose}");
    assert_eq!(loose["saved"], 1, "{loose}");
    assert_eq!(loose["bytes"], 4, "{loose}");
    for batch in &batches {
        assert!(
            batch["client"].as_str().unwrap().starts_with("127.0.0.1:"),
            "{batch}"
        );
        assert!(batch.get("reason").is_none(), "{batch}");
    }
    let finished = events.iter().filter(|e| e["event"] == "finished").count();
    assert_eq!(finished, 3, "{events:#?}");

    // One that breaks off says why.
    let mut cut = crate::util::open_batch_at(server.addr);
    cut.write_all(b"not a frame\n").unwrap();
    let batch = loop {
        let line = lines.next().expect("a batch event").unwrap();
        let event: serde_json::Value = serde_json::from_str(&line).unwrap();
        if event["event"] == "batch" {
            break event;
        }
    };
    assert_eq!(batch["saved"], 0, "{batch}");
    assert!(
        batch["reason"]
            .as_str()
            .unwrap()
            .contains("a frame that cannot be read"),
        "{batch}"
    );
}

/// `ftx send --json` interrupted: its last line is the summary, saying so,
/// and the exit code is 130.
#[test]
fn an_interrupted_json_send_says_so_in_its_summary() {
    let server = Serve::start(&[]);
    let src = tempfile::tempdir().unwrap();
    let big = write_file(src.path(), "big.bin", &pattern(8 << 20, 8));
    let mut sender = crate::util::Running(
        std::process::Command::new(ftx_bin())
            .args(["send", "--json", "--rate", "2MiB", "--to"])
            .arg(server.addr.to_string())
            .arg(&big)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    crate::util::wait_until(
        || crate::util::part_bytes(server.drop_dir()) > 1 << 20,
        "a part on the server",
        || server.log(),
    );
    sender.signal("INT");
    assert_eq!(sender.wait_exit(), Some(130));
    let out = sender.stdout_text();
    let last: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(last["event"], "summary", "{out}");
    assert_eq!(last["interrupted"], true, "{last}");
    assert_eq!(last["failed"], 1, "{last}");
}
