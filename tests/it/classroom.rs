//! The classroom tools: --json events, --trace, --rate, ftx demo, completions and the man page.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use predicates::prelude::*;
use serde_json::Value;

use crate::util::{
    entries, ftx_bin, pattern, signal, stderr_of, wait_until, write_file, PythonServer, Running,
    Serve, PATIENCE, PORTABLE,
};

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"))
        })
        .collect()
}

fn events<'a>(lines: &'a [Value], kind: &str) -> Vec<&'a Value> {
    lines.iter().filter(|v| v["event"] == kind).collect()
}

fn find<'a>(lines: &'a [Value], kind: &str, name: &str) -> &'a Value {
    events(lines, kind)
        .into_iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} for {name} in {lines:?}"))
}

#[test]
fn json_events_on_both_ends_parse_and_carry_sizes_receipts_and_progress() {
    let dir = tempfile::tempdir().unwrap();
    let mut serve = Running(
        Command::new(ftx_bin())
            .args(["serve", "--json", "-l", "127.0.0.1:0", "-d"])
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut stdout = BufReader::new(serve.0.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let listening: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(listening["event"], "listening");
    let addr = listening["address"].as_str().unwrap().to_string();

    let src = tempfile::tempdir().unwrap();
    let files = [
        ("a.bin", 300_000usize),
        ("b \"quoted\".txt", 12),
        ("empty", 0),
    ];
    let paths: Vec<_> = files
        .iter()
        .map(|(n, len)| write_file(src.path(), n, &pattern(*len, 1)))
        .collect();
    std::fs::write(dir.path().join("empty"), b"already here").unwrap();
    // Paced, so that the 300 KB file is in progress for over a second.
    let sent = assert_cmd::Command::new(ftx_bin())
        .args(["send", "--json", "--rate", "200KiB", "-t", &addr])
        .args(&paths)
        .timeout(PATIENCE)
        .assert()
        .success()
        .stderr(predicate::str::is_empty());
    let send_lines = json_lines(&String::from_utf8_lossy(&sent.get_output().stdout));
    for ((name, len), path) in files.iter().zip(&paths) {
        for kind in ["queued", "started", "finished"] {
            let event = find(&send_lines, kind, name);
            assert_eq!(event["path"], path.display().to_string(), "{event}");
            if kind != "queued" {
                assert_eq!(event["size"], *len as u64, "{event}");
            }
        }
        let finished = find(&send_lines, "finished", name);
        assert_eq!(finished["confirmed"], true, "{finished}");
        assert_eq!(finished["bytes"], *len as u64, "{finished}");
    }
    assert_eq!(
        find(&send_lines, "finished", "empty")["saved_as"],
        "empty (1)"
    );
    assert!(find(&send_lines, "finished", "a.bin")
        .get("saved_as")
        .is_none());
    let progress = events(&send_lines, "progress");
    assert!(
        progress.iter().any(|e| e["name"] == "a.bin"
            && e["bytes"].as_u64().unwrap() > 0
            && e["bytes"].as_u64().unwrap() < 300_000),
        "no progress in the middle: {progress:?}"
    );
    let summary = events(&send_lines, "summary")[0];
    assert_eq!(
        (
            &summary["saved"],
            &summary["delivered"],
            &summary["failed"],
            &summary["done"]
        ),
        (
            &Value::from(3),
            &Value::from(0),
            &Value::from(0),
            &Value::from(3)
        )
    );

    wait_until(|| entries(dir.path()).len() == 4, "four files", String::new);
    signal(serve.0.id(), "INT");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(serve.wait_exit(), Some(0));
    let serve_lines = json_lines(&rest);
    for (name, len) in files {
        let event = find(&serve_lines, "finished", name);
        assert_eq!(event["bytes"], len as u64);
        assert!(event["client"].as_str().unwrap().starts_with("127.0.0.1:"));
        assert!(event.get("confirmed").is_none(), "{event}");
        assert_eq!(find(&serve_lines, "started", name)["size"], len as u64);
    }
    assert_eq!(
        find(&serve_lines, "finished", "empty")["saved_as"],
        "empty (1)"
    );
    let summary = events(&serve_lines, "summary")[0];
    assert_eq!(summary["saved"], 3);
    let t = summary["t"].as_f64().unwrap();
    assert_eq!(
        (t * 1000.0).round() / 1000.0,
        t,
        "t is rounded to the millisecond"
    );
}

#[test]
fn json_says_a_classroom_server_did_not_confirm() {
    let python = PythonServer::classroom();
    let src = tempfile::tempdir().unwrap();
    let file = write_file(src.path(), "note.txt", b"hello");
    let sent = assert_cmd::Command::new(ftx_bin())
        .args(["send", "--json", "-t", &python.address()])
        .arg(&file)
        .timeout(PATIENCE)
        .assert()
        .success();
    let lines = json_lines(&String::from_utf8_lossy(&sent.get_output().stdout));
    let finished = find(&lines, "finished", "note.txt");
    assert_eq!(finished["confirmed"], false, "{finished}");
    assert!(finished.get("saved_as").is_none());
    assert_eq!(events(&lines, "summary")[0]["delivered"], 1);
}

#[test]
fn trace_shows_the_header_bytes_go_ahead_and_receipt_on_both_ends() {
    let server = Serve::start(&["--trace"]);
    let src = tempfile::tempdir().unwrap();
    let file = write_file(src.path(), "hi.txt", b"hello");
    // The classroom exchange (an ftx server told by its hello would get a batch).
    server
        .send()
        .args(["--trace", "--classic"])
        .arg(&file)
        .assert()
        .success()
        .stderr(predicate::str::contains("client → 127.0.0.1:"))
        .stderr(predicate::str::contains(
            "size  00 00 00 00 00 00 00 05  = 5 bytes",
        ))
        .stderr(predicate::str::contains(
            "name  68 69 2e 74 78 74  = \"hi.txt\" (6 bytes)",
        ))
        .stderr(predicate::str::contains(
            "→ client  \"go ahead\"  67 6f 20 61 68 65 61 64",
        ))
        .stderr(predicate::str::contains(
            "→ client  receipt: saved, 5 bytes; closed",
        ));
    let log = server.wait_for_log("server closes the connection");
    assert!(
        log.contains("→ server  size  00 00 00 00 00 00 00 05  = 5 bytes"),
        "{log}"
    );
    assert!(log.contains("\"go ahead\""), "{log}");
    assert!(log.contains("→ server  5 content bytes"), "{log}");
    assert!(
        log.contains("receipt: saved as \"hi.txt\", 5 bytes"),
        "{log}"
    );
}

/// `--rate` holds back whichever end it is given to.
#[test]
fn rate_slows_either_end_down() {
    for (serve_args, send_args) in [
        (&[][..], &["--rate", "1MiB"][..]),
        (&["--rate", "1MiB/s"][..], &[][..]),
    ] {
        let server = Serve::start(serve_args);
        let src = tempfile::tempdir().unwrap();
        let file = write_file(src.path(), "paced.bin", &pattern(300 * 1024, 2));
        let start = Instant::now();
        server.send().args(send_args).arg(&file).assert().success();
        // 300 KiB at 1 MiB/s is about 0.29 s; no upper bound, the machine may be slow.
        assert!(
            start.elapsed() >= Duration::from_millis(250),
            "{serve_args:?} {send_args:?}: {:?}",
            start.elapsed()
        );
        assert_eq!(
            std::fs::read(server.drop_dir().join("paced.bin")).unwrap(),
            pattern(300 * 1024, 2)
        );
    }
}

#[test]
fn demo_verifies_every_file_and_cleans_up() {
    let out = assert_cmd::Command::new(ftx_bin())
        .args([
            "demo",
            "--clients",
            "5",
            "--workers",
            "2",
            "--size",
            "64KiB",
            "--duration",
            "1s",
        ])
        .timeout(PATIENCE)
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "5 of 5 files arrived byte-identical",
        ))
        .stderr(predicate::str::contains("3 of them wait for a free worker"))
        .stderr(predicate::str::contains("saved     127.0.0.1:"))
        .stderr(predicate::str::contains(": 5 saved, 0 failed"))
        .stderr(predicate::str::contains("serve -d /tmp/ftx-inbox"));
    let stderr = stderr_of(&out);
    assert!(
        !stderr.contains('\x1b'),
        "escape codes in piped output:\n{stderr}"
    );
    // The command it suggests runs this very program.
    let suggested = stderr
        .lines()
        .find_map(|l| l.trim().strip_suffix(" serve -d /tmp/ftx-inbox"))
        .expect("a command to try");
    let path = if suggested == "ftx" {
        ftx_bin().to_string()
    } else {
        suggested.to_string()
    };
    assert!(
        std::path::Path::new(&path).is_file(),
        "{suggested} is not a program"
    );
    let folder = stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("files go to "))
        .and_then(|l| l.strip_suffix(" (removed at the end)"))
        .expect("the demo names its folder");
    assert!(
        !std::path::Path::new(folder).exists(),
        "{folder} was left behind"
    );
}

#[test]
fn completions_are_generated_for_each_shell() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = assert_cmd::Command::new(ftx_bin())
            .args(["completions", shell])
            .assert()
            .success();
        let script = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
        assert!(
            script.contains("serve") && script.contains("send") && script.contains("listen"),
            "{shell}"
        );
        if shell == "bash" {
            let dir = tempfile::tempdir().unwrap();
            let path = write_file(dir.path(), "ftx.bash", script.as_bytes());
            let check = Command::new("bash").arg("-n").arg(&path).status().unwrap();
            assert!(check.success(), "bash rejects the completion script");
        }
    }
    assert_cmd::Command::new(ftx_bin())
        .args(["completions", "tcsh"])
        .assert()
        .code(2);
}

#[test]
fn man_pages_exist_for_every_command() {
    assert_cmd::Command::new(ftx_bin())
        .arg("man")
        .assert()
        .success()
        .stdout(predicate::str::contains(".TH ftx 1"))
        .stdout(predicate::str::contains("serve"));
    assert_cmd::Command::new(ftx_bin())
        .args(["man", "send"])
        .assert()
        .success()
        .stdout(predicate::str::contains(".TH ftx-send 1"))
        .stdout(predicate::str::contains("timeout"));
    let dir = tempfile::tempdir().unwrap();
    assert_cmd::Command::new(ftx_bin())
        .args(["man", "--dir"])
        .arg(dir.path())
        .assert()
        .success();
    assert_eq!(
        entries(dir.path()),
        [
            "ftx-check-client.1",
            "ftx-check-server.1",
            "ftx-check.1",
            "ftx-completions.1",
            "ftx-demo.1",
            "ftx-find.1",
            "ftx-man.1",
            "ftx-send.1",
            "ftx-serve.1",
            "ftx.1"
        ]
    );
    let serve = std::fs::read_to_string(dir.path().join("ftx-serve.1")).unwrap();
    assert!(serve.contains("min\\-rate"), "{serve}");
    assert_cmd::Command::new(ftx_bin())
        .args(["man", "nope"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("there is no page for 'nope'"));
}

/// With a paced server (`serve --rate`), the sender's progress is what the
/// server took, not what went into the buffers between them.
#[test]
fn a_paced_server_paces_what_the_sender_shows() {
    let server = Serve::start(&["--rate", "100KiB"]);
    let src = tempfile::tempdir().unwrap();
    let file = write_file(src.path(), "paced.bin", &pattern(1_000_000, 5));
    let mut send = Running(
        Command::new(ftx_bin())
            .args([
                "send",
                "--json",
                "--classic",
                "--to",
                &server.addr.to_string(),
            ])
            .arg(&file)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(send.0.stdout.take().unwrap()).lines();
    let progress = lines
        .find_map(|line| {
            let event: Value = serde_json::from_str(&line.unwrap()).unwrap();
            (event["event"] == "progress").then_some(event)
        })
        .expect("a progress event");
    let (bytes, t) = (
        progress["bytes"].as_u64().unwrap(),
        progress["t"].as_f64().unwrap(),
    );
    // 100 KiB/s for about half a second, and a small window: far from the
    // whole megabyte. The portable layer cannot see what the server has not
    // acknowledged (README, Platforms): its bar counts what went into the
    // sender's buffers, up to the whole file.
    let window = match PORTABLE {
        true => 1_000_000,
        false => 60 * 1024 + (t * 100.0 * 1024.0) as u64,
    };
    assert!(
        bytes <= window,
        "{bytes} bytes shown after {t} s at 100 KiB/s"
    );
}
