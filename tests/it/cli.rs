//! The command line as a user meets it: help, version, and clear refusals of bad input.

use assert_cmd::Command;
use predicates::prelude::*;

fn ftx() -> Command {
    let mut cmd = Command::new(crate::util::ftx_bin());
    cmd.env("COLUMNS", "200");
    cmd
}

#[test]
fn help_names_both_commands_and_the_exit_codes() {
    ftx()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("serve"))
        .stdout(predicate::str::contains("send"))
        .stdout(predicate::str::contains("Exit codes"))
        .stdout(predicate::str::contains("go ahead"));
}

#[test]
fn subcommand_help_shows_every_option() {
    ftx()
        .args(["serve", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("-l, --listen <ADDR>"))
        .stdout(predicate::str::contains("-d, --dir <DIR>"))
        .stdout(predicate::str::contains("-w, --workers <N>"))
        .stdout(predicate::str::contains("--plain"))
        .stdout(predicate::str::contains("[default: 0.0.0.0:12000]"))
        .stdout(predicate::str::contains("Examples:"));
    ftx()
        .args(["send", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("-t, --to <ADDR>"))
        .stdout(predicate::str::contains("-j, --jobs <N>"))
        .stdout(predicate::str::contains("[default: 127.0.0.1:12000]"))
        .stdout(predicate::str::contains("<FILE|DIR>..."));
}

#[test]
fn version_is_printed() {
    ftx()
        .arg("--version")
        .assert()
        .success()
        .stdout(predicate::str::starts_with(format!(
            "ftx {}",
            env!("CARGO_PKG_VERSION")
        )))
        .stdout(predicate::str::contains(match crate::util::PORTABLE {
            true => "OS layer: portable",
            false => "OS layer: linux",
        }));
    // -V stays one line.
    ftx()
        .arg("-V")
        .assert()
        .success()
        .stdout(format!("ftx {}\n", env!("CARGO_PKG_VERSION")));
}

#[test]
fn bad_input_is_a_usage_error() {
    ftx()
        .args(["send", "--to", "localhost:99999", "x"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "ftx: --to: '99999' in 'localhost:99999' is not a port",
        ));
    ftx().args(["send"]).assert().code(2);
    ftx().args(["serve", "--workers", "0"]).assert().code(2);
    ftx()
        .args(["serve", "--idle-timeout", "soon"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not a duration"));
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    // A drop folder that does not exist yet: a start that fails makes none.
    let inbox = dir.path().join("new-inbox");
    ftx()
        .args(["serve", "--plain", "--listen", &addr, "--dir"])
        .arg(&inbox)
        .timeout(crate::util::PATIENCE)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!(
            "ftx: cannot listen on {addr}"
        )))
        .stderr(predicate::str::contains("in use"));
    assert!(
        !inbox.exists(),
        "the drop folder was made before the start failed"
    );
}

/// clap's "a similar argument exists" only for a near miss; no Rust error text.
#[test]
fn suggestions_only_when_close_and_errors_in_plain_words() {
    ftx()
        .args(["send", "--verbose", "x"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unexpected argument '--verbose'"))
        .stderr(predicate::str::contains("--version").not())
        .stderr(predicate::str::contains(
            "Usage: ftx send [OPTIONS] <FILE|DIR>...",
        ));
    ftx()
        .args(["send", "--too", "h", "x"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "a similar argument exists: '--to'",
        ));
    ftx()
        .args(["send", "-t", "127.0.0.1:99999", "x"])
        .assert()
        .code(2)
        .stderr(
            "ftx: --to: '99999' in '127.0.0.1:99999' is not a port: ports go from 0 to 65535\n",
        );
}

#[test]
fn the_banner_says_how_to_connect() {
    let server = crate::util::Serve::start(&["--max-size", "1MiB", "--workers", "1"]);
    let port = server.addr.port();
    let log = server.wait_for_log("clients at once");
    let lines: Vec<&str> = log.lines().collect();
    let send_from = lines
        .iter()
        .position(|l| *l == "  send from this machine:")
        .expect("how to send from this machine");
    assert!(
        lines[..send_from].join(" ").ends_with("(Ctrl-C to stop)"),
        "{log}"
    );
    // Not on PATH here: the command names the program as it was started.
    assert_eq!(
        lines[send_from + 1],
        format!(
            "    {} send --to 127.0.0.1:{port} FILE...",
            crate::util::ftx_bin()
        )
    );
    assert_eq!(
        lines[send_from + 2],
        format!("  classroom clients: IP 127.0.0.1, port {port}")
    );
    let limits = lines[send_from + 3..]
        .iter()
        .map(|l| l.trim())
        .collect::<Vec<_>>()
        .join(" · ");
    for term in [
        "1 worker · headers within 30.0s · idle timeout 30.0s · at least 1.00 KiB/s per 20.0s",
        "max size 1.00 MiB · no per-address cap",
        "more queued by the kernel",
    ] {
        assert!(limits.contains(term), "{term:?} in {log}");
    }
    // Not a terminal: lines fit 80 columns, broken between terms.
    assert!(
        lines[1..]
            .iter()
            .all(|l| console::measure_text_width(l) <= 80),
        "{log}"
    );
}

/// With this ftx on PATH, the banner's command is plain `ftx`.
#[test]
fn the_banner_says_ftx_when_ftx_on_path_is_this_one() {
    let bin = crate::util::ftx_bin();
    let dir = tempfile::tempdir().unwrap();
    let drop = dir.path().join("drop");
    let path = format!(
        "export PATH=\"{}:$PATH\"",
        std::path::Path::new(bin).parent().unwrap().display()
    );
    let server = crate::util::Serve::start_limited(dir, &drop, &path, &[]);
    let port = server.addr.port();
    server.wait_for_log(&format!("\n    ftx send --to 127.0.0.1:{port} FILE...\n"));
}
