//! `ftx check` against the classroom programs (all pass) and against students' faulty servers and clients (each fails exactly its cases).

use std::process::Command;
use std::time::{Duration, Instant};

use predicates::prelude::*;
use serde_json::Value;

use crate::util::{ftx_bin, python_program, PythonServer, PATIENCE, PORTABLE};

/// The whole default run must end within a minute, whatever the peer does.
const RUN_LIMIT: Duration = Duration::from_secs(75);

/// Runs `ftx check ARGS... --json` and returns (exit code, failed case ids, skipped case ids).
fn check(args: &[&str]) -> (i32, Vec<String>, Vec<String>) {
    let mut command = assert_cmd::Command::new(ftx_bin());
    // --json goes right after the subcommand: anything after -- is the client's command.
    command
        .arg("check")
        .arg(args[0])
        .arg("--json")
        .args(&args[1..]);
    let (code, lines) = run_check(command);
    (code, ids_with(&lines, "fail"), ids_with(&lines, "skip"))
}

/// Runs a `--json` check within [`RUN_LIMIT`]: its exit code and its cases' JSON.
fn run_check(mut command: assert_cmd::Command) -> (i32, Vec<Value>) {
    let started = Instant::now();
    let out = command.timeout(RUN_LIMIT).output().unwrap();
    assert!(
        started.elapsed() < RUN_LIMIT,
        "the check ran for {:?}",
        started.elapsed()
    );
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    (out.status.code().unwrap_or(-1), lines)
}

/// The ids of the cases whose result is `result` (pass, fail, skip).
fn ids_with(lines: &[Value], result: &str) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l["result"] == result)
        .map(|l| l["id"].as_str().unwrap().to_string())
        .collect()
}

fn server_check(server: &PythonServer, extra: &[&str]) -> (i32, Vec<String>, Vec<String>) {
    let addr = server.address();
    let dir = server.dir.path().to_str().unwrap().to_string();
    let mut args = vec![
        "server",
        addr.as_str(),
        "--dir",
        dir.as_str(),
        "--timeout",
        "2s",
    ];
    args.extend_from_slice(extra);
    check(&args)
}

#[test]
fn the_classroom_server_passes_every_case_and_is_left_clean() {
    let python = PythonServer::classroom();
    let junit = tempfile::NamedTempFile::new().unwrap();
    let (code, failed, skipped) = server_check(
        &python,
        &["--strict", "--junit", junit.path().to_str().unwrap()],
    );
    // With --strict, the header in two writes is the one thing it gets wrong (one recv for the header).
    assert_eq!(
        (code, failed, skipped),
        (1, vec!["S14".to_string()], vec![])
    );
    let xml = std::fs::read_to_string(junit.path()).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let cases: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    assert_eq!(cases.len(), 15, "{xml}");
    let failures: Vec<_> = cases
        .iter()
        .filter(|c| c.children().any(|n| n.has_tag_name("failure")))
        .map(|c| c.attribute("name").unwrap())
        .collect();
    assert_eq!(failures.len(), 1, "{xml}");
    assert!(failures[0].starts_with("S14 "), "{failures:?}");
    // Every file the check made is gone, and the early closes made none.
    let left = crate::util::entries(python.dir.path());
    assert!(left.is_empty(), "{left:?}");

    let (code, failed, _) = server_check(&python, &[]);
    assert_eq!((code, failed), (0, vec![]));
}

#[test]
fn without_a_folder_the_cases_that_read_files_are_skipped_with_a_hint() {
    let python = PythonServer::classroom();
    let out = assert_cmd::Command::new(ftx_bin())
        .args(["check", "server", &python.address()])
        .timeout(RUN_LIMIT)
        .assert()
        .success()
        .stdout(predicate::str::contains("11 passed, 0 failed, 3 skipped"))
        .stdout(predicate::str::contains(
            "(skipped: pass --dir DIR (the folder your server saves into) to compare the saved file)",
        ));
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(
        text.contains("✓ S1   replies exactly \"go ahead\""),
        "{text}"
    );
}

/// Each faulty server fails exactly the cases its fault breaks.
#[test]
fn faulty_servers_fail_exactly_their_cases() {
    let cases: &[(&str, &[&str], &[&str])] = &[
        ("one-at-a-time", &[], &["S11"]),
        // The first exercise asks for one client at a time: graded so, it passes.
        ("one-at-a-time", &["--exercise", "1"], &[]),
        ("newline-reply", &[], &["S1"]),
        ("spin-on-close", &[], &["S10"]),
        (
            "drop-last-chunk",
            &[],
            &["S2", "S4", "S5", "S6", "S7", "S10", "S12", "S13"],
        ),
        (
            "crash-after-go-ahead",
            &[],
            &[
                "S2", "S3", "S4", "S5", "S6", "S7", "S8", "S9", "S10", "S11", "S12", "S13", "S15",
            ],
        ),
        // A close before the header leaves an empty ".temp".
        ("stray-temp", &[], &["S8"]),
        // Last in the run, so that the cases before it still find it alive.
        ("strict-decode", &["--exercise", "1"], &["S15"]),
    ];
    for (mode, extra, expected) in cases {
        let server = PythonServer::broken(mode);
        let mut args = vec!["--big", "4MiB"];
        args.extend_from_slice(extra);
        let (code, failed, skipped) = server_check(&server, &args);
        assert_eq!(code, i32::from(!expected.is_empty()), "{mode} {extra:?}");
        assert_eq!(failed, *expected, "{mode} {extra:?}");
        assert!(skipped.is_empty(), "{mode}: {skipped:?}");
    }
}

/// Runs `ftx check server ARGS -- python3 PROGRAM...` from the folder
/// holding the programs, as README shows: (exit code, failed ids, the cases' JSON).
fn started_check(args: &[&str], program: &[&str]) -> (i32, Vec<String>, Vec<Value>) {
    let folder = python_program("classroom_server.py")
        .parent()
        .unwrap()
        .to_path_buf();
    let mut command = assert_cmd::Command::new(ftx_bin());
    command
        .current_dir(&folder)
        .args(["check", "server", "--json"])
        .args(args)
        .args(["--", "python3"])
        .args(program);
    let (code, lines) = run_check(command);
    (code, ids_with(&lines, "fail"), lines)
}

/// Started by the check for each case, on a free port in a scratch folder:
/// the classroom server passes every case, a server that spins on a closed
/// connection fails that case only (the next case has a fresh server), a
/// crash is shown with the server's exit, and nothing is left running.
#[test]
fn a_server_started_for_each_case_is_graded_case_by_case() {
    let (code, failed, lines) = started_check(&[], &["classroom_server.py", "127.0.0.1", "{port}"]);
    assert_eq!((code, failed), (0, vec![]));
    assert_eq!(
        lines.len(),
        14,
        "every case ran, S2-S7 with the files compared"
    );
    assert!(lines.iter().all(|l| l["skipped"].is_null()), "{lines:?}");

    let (code, failed, _) = started_check(
        &["--big", "4MiB"],
        &["broken_server.py", "spin-on-close", "{port}"],
    );
    assert_eq!((code, failed), (1, vec!["S10".to_string()]));

    let (_, failed, lines) = started_check(
        &["--exercise", "1", "S15"],
        &["broken_server.py", "strict-decode", "{port}"],
    );
    assert_eq!(failed, ["S15"]);
    let seen = lines[0]["seen"].to_string();
    assert!(
        seen.contains("the server exited with status 1: UnicodeDecodeError"),
        "{seen}"
    );

    let (_, failed, lines) = started_check(
        &["S2"],
        &["broken_server.py", "crash-after-go-ahead", "{port}"],
    );
    assert_eq!(failed, ["S2"]);
    assert!(lines[0]["seen"]
        .to_string()
        .contains("the server exited with status 3"));
    assert!(
        lines[0]["hint"]
            .as_str()
            .unwrap()
            .starts_with("the server crashed during this case"),
        "{}",
        lines[0]
    );
    let running = Command::new("pgrep")
        .args(["-f", "broken_server.py [a-z-]+ [0-9]{4,}$"])
        .output()
        .unwrap();
    assert!(running.stdout.is_empty(), "a server was left running");

    assert_cmd::Command::new(ftx_bin())
        .args([
            "check",
            "server",
            "--dir",
            ".",
            "--",
            "python3",
            "server.py",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "--dir is for a server already running",
        ));
}

/// The hint follows from the file the server saved: a count of 1024 per
/// recv() stops the file short of its end, a chunk written twice doubles it,
/// a loop that drops the last chunk stops within its last 1024 bytes. A
/// server that exits after its first client is told so.
#[test]
fn the_hint_follows_from_the_file_saved() {
    let cases = [
        (
            "fixed-count",
            "S6",
            "count what recv() returned (received += len(data)), not 1024 a chunk",
        ),
        ("write-twice", "S2", "every chunk is written twice"),
        (
            "drop-last-chunk",
            "S6",
            "your loop stops before the last, shorter chunk",
        ),
        (
            "exits-after-one",
            "S12",
            "the server ended by itself during this case: serve clients in a loop",
        ),
    ];
    for (mode, case, words) in cases {
        let (code, failed, lines) = started_check(&[case], &["broken_server.py", mode, "{port}"]);
        assert_eq!((code, failed), (1, vec![case.to_string()]), "{mode}");
        let hint = lines[0]["hint"].as_str().unwrap();
        assert!(hint.contains(words), "{mode}: {hint}");
    }
}

/// `--exercise 1` leaves out the cases of several clients at once, and says so in one line.
#[test]
fn the_first_exercise_is_graded_without_the_cases_of_several_clients() {
    let server = PythonServer::broken("one-at-a-time");
    let dir = server.dir.path().to_str().unwrap().to_string();
    let out = assert_cmd::Command::new(ftx_bin())
        .args(["check", "server", &server.address(), "--dir", &dir])
        .args(["--exercise", "1", "--big", "4MiB", "--timeout", "2s"])
        .timeout(RUN_LIMIT)
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "- S11, S12 not run: they check several clients at once, which exercise 1 does not ask for (--exercise 2 runs them)",
        ))
        .stdout(predicate::str::contains("12 passed, 0 failed"));
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(!text.contains("✓ S11") && !text.contains("✗ S11"), "{text}");
    assert_cmd::Command::new(ftx_bin())
        .args(["check", "server", "--list"])
        .assert()
        .stdout(predicate::str::contains(
            "S12  ten clients at once, every file whole  (P8, P5, exercise 2)",
        ));
}

/// A server that keeps a file for a client that closed before its header is
/// told what it left and what to change.
#[test]
fn a_stray_file_after_an_early_close_is_named() {
    let server = PythonServer::broken("stray-temp");
    let dir = server.dir.path().to_str().unwrap().to_string();
    assert_cmd::Command::new(ftx_bin())
        .args([
            "check",
            "server",
            &server.address(),
            "S8",
            "S9",
            "--dir",
            &dir,
        ])
        .timeout(RUN_LIMIT)
        .assert()
        .code(1)
        .stdout(predicate::str::contains("got:      \".temp\" (0 bytes) in"))
        .stdout(predicate::str::contains(
            "hint:     read the whole header before opening a file",
        ))
        .stdout(predicate::str::contains("1 passed, 1 failed"));
}

/// A server that crashes is told it crashed, where: not that its loop
/// stops before the last chunk, and not, for each case after, that the
/// case made it crash.
#[test]
fn a_crashed_server_is_told_so_and_the_cases_after_it_say_since_when() {
    let run = |cases: &[&str]| {
        let server = PythonServer::broken("crash-after-go-ahead");
        let out = assert_cmd::Command::new(ftx_bin())
            .args(["check", "server", &server.address(), "--timeout", "2s"])
            .args(["--big", "4MiB"])
            .args(cases)
            .timeout(RUN_LIMIT)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = run(&["S5"]);
    assert!(
        text.contains(
            "the server no longer takes connections: it crashed or exited during the upload"
        ),
        "{text}"
    );
    assert!(!text.contains("shorter chunk"), "{text}");
    let text = run(&["S1", "S2", "S3"]);
    assert!(
        text.contains(
            "the server took connections up to S1 and no longer does: it stopped during or after S1"
        ),
        "{text}"
    );
}

#[test]
fn a_failure_says_what_was_expected_what_happened_and_what_to_do() {
    let server = PythonServer::broken("one-at-a-time");
    let out = assert_cmd::Command::new(ftx_bin())
        .args([
            "check",
            "server",
            &server.address(),
            "S11",
            "--timeout",
            "1s",
        ])
        .timeout(RUN_LIMIT)
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "✗ S11  a second client is served while the first is still connected  (P8)",
        ))
        .stdout(predicate::str::contains(
            "expected: the second client served while the first is still connected",
        ))
        .stdout(predicate::str::contains("got:      nothing within 1.00s"))
        .stdout(predicate::str::contains(
            "your server serves one client at a time",
        ))
        .stdout(predicate::str::contains("0 passed, 1 failed"));
    assert!(!String::from_utf8_lossy(&out.get_output().stdout).contains("S1 "));
}

fn client_check(mode: &str, extra: &[&str]) -> (i32, Vec<String>, Vec<String>) {
    let program = python_program("broken_client.py");
    // A dozen of these run at once beside the rest of the suite, on two
    // cores: a second is too short for Python to start under that load.
    let mut args = vec!["client", "--timeout", "3s"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[
        "--",
        "python3",
        program.to_str().unwrap(),
        mode,
        "{file}",
        "{host}",
        "{port}",
    ]);
    check(&args)
}

/// Run as README says, from the folder holding the client, with its relative name.
#[test]
fn the_classroom_client_passes_every_case() {
    let program = python_program("classroom_client.py");
    assert_cmd::Command::new(ftx_bin())
        .current_dir(program.parent().unwrap())
        .args(["check", "client", "--timeout", "2s", "--", "python3"])
        .args(["classroom_client.py", "{file}", "{host}", "{port}"])
        .timeout(RUN_LIMIT)
        .assert()
        .success()
        .stdout(predicate::str::contains(match PORTABLE {
            // C3 cannot be judged without delayed ACKs.
            true => "8 passed, 0 failed, 1 skipped",
            false => "9 passed, 0 failed",
        }));
}

/// Each faulty client fails exactly the cases its fault breaks, and no client is left running.
#[test]
fn faulty_clients_fail_exactly_their_cases() {
    let all: &[&str] = &["C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8", "C9"];
    let cases: &[(&str, &[&str], &[&str])] = &[
        ("good", &[], &[]),
        ("good", &["--strict"], &[]),
        ("before-go-ahead", &[], &["C4", "C8"]),
        ("little-endian", &[], &["C1"]),
        // An empty file's header is not a size 0 either.
        ("text-header", &[], &["C1", "C2", "C6"]),
        ("one-short", &[], &["C5", "C7"]),
        ("never-closes", &[], &["C5", "C6", "C7"]),
        ("ignores-reply", &[], &["C8"]),
        // Two writes one right after the other, as students write them.
        ("split-header", &[], &["C3"]),
        // Nothing before go ahead is no proof of waiting when nothing came after it either.
        ("text-mode", &[], &["C4", "C5", "C7"]),
        // No header, no case passes: not the empty file, not the bad reply.
        ("connects-only", &[], all),
        // Printing the error and exiting 0 stops the upload: only --strict asks for more.
        ("template", &[], &[]),
        ("template", &["--strict"], &["C10"]),
    ];
    // Each check has its own instrumented server: they run side by side.
    let results: Vec<_> = std::thread::scope(|scope| {
        let running: Vec<_> = cases
            .iter()
            .map(|(mode, extra, _)| scope.spawn(move || client_check(mode, extra)))
            .collect();
        running.into_iter().map(|r| r.join().unwrap()).collect()
    });
    for ((mode, extra, expected), (code, failed, skipped)) in cases.iter().zip(results) {
        // The portable OS layer cannot delay ACKs: a header in two writes
        // may reach the server whole, so C3 is skipped, never passed, unless it failed.
        let (expected, skip): (Vec<&str>, Vec<&str>) = match PORTABLE {
            true if !failed.iter().any(|c| c == "C3") => (
                expected.iter().copied().filter(|c| *c != "C3").collect(),
                vec!["C3"],
            ),
            _ => (expected.to_vec(), vec![]),
        };
        assert_eq!(failed, expected, "{mode} {extra:?}");
        assert_eq!(skipped, skip, "{mode} {extra:?}");
        assert_eq!(code, i32::from(!expected.is_empty()), "{mode}");
        let running = Command::new("pgrep")
            .args([
                "-f",
                &format!("broken_client.py {mode} notes.txt 127.0.0.1 [0-9]+$"),
            ])
            .output()
            .unwrap();
        assert!(
            running.stdout.is_empty(),
            "{mode}: a client was left running"
        );
    }
}

#[test]
fn list_json_and_wrong_command_lines() {
    assert_cmd::Command::new(ftx_bin())
        .args(["check", "server", "--list"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "S11  a second client is served while the first is still connected  (P8, exercise 2)",
        ))
        .stdout(predicate::str::contains("S14").not());
    assert_cmd::Command::new(ftx_bin())
        .args(["check", "server", "--list", "--strict"])
        .assert()
        .success()
        .stdout(predicate::str::contains("S14  a header sent in two writes"));
    assert_cmd::Command::new(ftx_bin())
        .args(["check", "client", "--list"])
        .assert()
        .success()
        .stdout(predicate::str::contains("C9"))
        .stdout(predicate::str::contains("C10").not());
    assert_cmd::Command::new(ftx_bin())
        .args(["check", "client", "--list", "--strict"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "C10  a reply other than \"go ahead\" ends the client with an error exit (not 0)  (P4, --strict)",
        ));
    assert_cmd::Command::new(ftx_bin())
        .args(["check", "server", "S99"])
        .timeout(PATIENCE)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("there is no server case 'S99'"));
    assert_cmd::Command::new(ftx_bin())
        .args(["check", "client"])
        .assert()
        .code(2);
}

/// A client that crashes is told so, with what it printed, and the hint is
/// the crash's, not the case's usual one; `--json` carries the evidence.
#[test]
fn a_crashed_client_is_told_its_crash_and_what_to_fix() {
    let program = python_program("broken_client.py");
    let run = |mode: &str, json: bool| {
        let mut command = assert_cmd::Command::new(ftx_bin());
        command.args(["check", "client", "C5", "--timeout", "3s"]);
        if json {
            command.arg("--json");
        }
        let out = command
            .args(["--", "python3"])
            .arg(&program)
            .args([mode, "{file}", "{host}", "{port}"])
            .timeout(RUN_LIMIT)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{mode}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = run("text-mode", false);
    for words in [
        "got:      0 bytes, then the client closed",
        "seen:     17 bytes in the first read, 17 before the reply in all",
        "0 bytes after \"go ahead\", then it closed the connection",
        "the client exited with status 1: UnicodeDecodeError:",
        "hint:     the client crashed; it read the file as text: open it with open(name, \"rb\")",
    ] {
        assert!(text.contains(words), "no {words:?} in:\n{text}");
    }
    assert!(!text.contains("sendall"), "the usual hint for C5:\n{text}");
    let json: Value = serde_json::from_str(run("text-mode", true).trim()).unwrap();
    assert!(
        json["seen"]
            .as_array()
            .unwrap()
            .iter()
            .any(|fact| fact.as_str().unwrap().contains("UnicodeDecodeError")),
        "{json}"
    );
    let text = run("connects-only", false);
    assert!(
        text.contains("the client connected and ended without sending a header"),
        "{text}"
    );
}

/// Ctrl-C in the middle of a check stops the client it started and ends at once.
#[test]
fn ctrl_c_stops_what_the_check_started() {
    let program = python_program("broken_client.py");
    let mut checker = crate::util::Running(
        Command::new(ftx_bin())
            .args(["check", "client", "C5", "--timeout", "20s", "--", "python3"])
            .arg(&program)
            // The last word marks this test's client apart from other tests' ones.
            .args(["never-closes", "{file}", "{host}", "{port}", "ctrl-c-test"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let running = || {
        !Command::new("pgrep")
            .args([
                "-f",
                "broken_client.py never-closes notes.txt .* ctrl-c-test",
            ])
            .output()
            .unwrap()
            .stdout
            .is_empty()
    };
    crate::util::wait_until(running, "the client to be running", String::new);
    crate::util::signal(checker.0.id(), "INT");
    assert_eq!(checker.wait_exit(), Some(130));
    crate::util::wait_until(|| !running(), "the client to be stopped", String::new);
}

/// A server that stops reading part way through a big file: S5 says how
/// far the file got (it said "after 0 of 33554555 bytes", counting only
/// whole writes of the file).
#[test]
fn s5_says_how_far_the_file_got() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let mut header = [0u8; 1024];
                if conn.read(&mut header).unwrap_or(0) == 0 {
                    return;
                }
                let _ = conn.write_all(b"go ahead");
                // One MiB, then a close with the rest unread (a reset).
                let mut taken = 0;
                let mut buf = [0u8; 64 * 1024];
                while taken < 1 << 20 {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => taken += n,
                    }
                }
            });
        }
    });
    let out = assert_cmd::Command::new(ftx_bin())
        .args([
            "check",
            "server",
            &addr.to_string(),
            "S5",
            "--json",
            "--big",
            "32MiB",
        ])
        .args(["--timeout", "2s"])
        .timeout(RUN_LIMIT)
        .assert()
        .code(1);
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let case: Value = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|l| l["id"] == "S5")
        .unwrap_or_else(|| panic!("{text}"));
    let got = case["got"].as_str().unwrap_or_default().to_string();
    let after: u64 = got
        .split("after ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {case}"));
    assert!(after >= 1 << 20, "{case}");
}
