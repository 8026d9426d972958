//! The classroom tools: --json events, --trace, --rate, ftx demo, completions and the man page.

mod fixtures;

use std::time::{Duration, Instant};

use fixtures::{ftx_bin, pattern, wait_until, write_file, Serve};
use predicates::prelude::*;
use serde_json::Value;

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

#[test]
fn json_events_on_both_ends_parse_and_carry_the_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let mut serve = std::process::Command::new(ftx_bin())
        .args(["serve", "--json", "-l", "127.0.0.1:0", "-d"])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(serve.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut first).unwrap();
    let listening: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(listening["event"], "listening");
    let addr = listening["address"].as_str().unwrap().to_string();

    let src = tempfile::tempdir().unwrap();
    let files = [
        ("a.bin", 70_000usize),
        ("b \"quoted\".txt", 12),
        ("empty", 0),
    ];
    let paths: Vec<_> = files
        .iter()
        .map(|(n, len)| write_file(src.path(), n, &pattern(*len, 1)))
        .collect();
    let sent = assert_cmd::Command::new(ftx_bin())
        .args(["send", "--json", "-t", &addr])
        .args(&paths)
        .timeout(fixtures::PATIENCE)
        .assert()
        .success()
        .stderr(predicate::str::is_empty());
    let send_lines = json_lines(&String::from_utf8_lossy(&sent.get_output().stdout));
    for (name, len) in files {
        let path = src.path().join(name).display().to_string();
        for kind in ["started", "finished"] {
            let found = events(&send_lines, kind);
            let event = found
                .iter()
                .find(|e| e["name"] == path.as_str())
                .unwrap_or_else(|| panic!("no {kind} for {path}"));
            assert_eq!(event["size"], len as u64, "{event}");
        }
    }
    let summary = events(&send_lines, "summary");
    assert_eq!(summary[0]["done"], 3);
    assert_eq!(summary[0]["failed"], 0);

    wait_until(
        || fixtures::entries(dir.path()).len() == 3,
        "three files",
        String::new,
    );
    fixtures::Serve::interrupt_pid(serve.id());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    serve.wait().unwrap();
    let serve_lines = json_lines(&rest);
    for (name, len) in files {
        let finished = events(&serve_lines, "finished");
        let event = finished
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("no finished for {name}: {rest}"));
        assert_eq!(event["bytes"], len as u64);
        assert!(event["client"].as_str().unwrap().starts_with("127.0.0.1:"));
        assert!(events(&serve_lines, "started")
            .iter()
            .any(|e| e["name"] == name && e["size"] == len as u64));
    }
    assert_eq!(events(&serve_lines, "summary")[0]["done"], 3);
}

#[test]
fn trace_shows_the_header_bytes_and_go_ahead_on_both_ends() {
    let server = Serve::start(&["--trace"]);
    let src = tempfile::tempdir().unwrap();
    let file = write_file(src.path(), "hi.txt", b"hello");
    server
        .send()
        .arg("--trace")
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
        .stderr(predicate::str::contains("closed the connection"));
    let log = server.wait_for("server closes the connection");
    assert!(
        log.contains("→ server  size  00 00 00 00 00 00 00 05  = 5 bytes"),
        "{log}"
    );
    assert!(log.contains("\"go ahead\""), "{log}");
    assert!(log.contains("→ server  5 content bytes"), "{log}");
}

#[test]
fn rate_slows_the_sender_down() {
    let server = Serve::start(&[]);
    let src = tempfile::tempdir().unwrap();
    let file = write_file(src.path(), "slow.bin", &pattern(300 * 1024, 2));
    let start = Instant::now();
    server
        .send()
        .args(["--rate", "1MiB"])
        .arg(&file)
        .assert()
        .success();
    // 300 KiB at 1 MiB/s is about 0.29 s; no upper bound, the machine may be slow.
    assert!(
        start.elapsed() >= Duration::from_millis(250),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(
        std::fs::read(server.drop_dir().join("slow.bin")).unwrap(),
        pattern(300 * 1024, 2)
    );
}

#[test]
fn rate_slows_the_server_down() {
    let server = Serve::start(&["--rate", "1MiB/s"]);
    let src = tempfile::tempdir().unwrap();
    let file = write_file(src.path(), "paced.bin", &pattern(300 * 1024, 3));
    let start = Instant::now();
    server.send().arg(&file).assert().success();
    assert!(
        start.elapsed() >= Duration::from_millis(250),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(
        std::fs::read(server.drop_dir().join("paced.bin")).unwrap(),
        pattern(300 * 1024, 3)
    );
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
        .timeout(fixtures::PATIENCE)
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "5 of 5 files arrived byte-identical",
        ))
        .stderr(predicate::str::contains("3 of them wait for a free worker"))
        .stderr(predicate::str::contains("saved     127.0.0.1:"));
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        !stderr.contains('\x1b'),
        "escape codes in piped output:\n{stderr}"
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
            let check = std::process::Command::new("bash")
                .arg("-n")
                .arg(&path)
                .status()
                .unwrap();
            assert!(check.success(), "bash rejects the completion script");
        }
    }
    assert_cmd::Command::new(ftx_bin())
        .args(["completions", "tcsh"])
        .assert()
        .code(2);
}

#[test]
fn man_page_is_generated() {
    assert_cmd::Command::new(ftx_bin())
        .arg("man")
        .assert()
        .success()
        .stdout(predicate::str::contains(".TH ftx 1"))
        .stdout(predicate::str::contains("serve"));
}
