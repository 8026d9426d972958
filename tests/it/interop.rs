//! Interop with the classroom Python programs: their client uploads to ftx serve, ftx send uploads to their server.

use std::process::Command;

use predicates::prelude::*;

use crate::util::{
    entries, pattern, python_program, send_to, stderr_of, wait_until, write_file, PythonServer,
    Serve,
};

#[test]
fn python_client_uploads_to_ftx_serve() {
    let server = Serve::start(&[]);
    let work = tempfile::tempdir().unwrap();
    std::fs::create_dir(work.path().join("data")).unwrap();
    let content = pattern(250_000, 9);
    write_file(&work.path().join("data"), "notes.txt", &content);
    write_file(work.path(), "zero.bin", b"");

    // Names exactly as typed, directory included, as students do. The receipt
    // that follows the content must not change what the client does or prints.
    for name in ["data/notes.txt", "zero.bin"] {
        let out = Command::new("python3")
            .arg(python_program("classroom_client.py"))
            .args([name, "127.0.0.1", &server.addr.port().to_string()])
            .current_dir(work.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "python client failed for {name}: {out:?}"
        );
        assert!(
            out.stdout.is_empty() && out.stderr.is_empty(),
            "{name}: {out:?}"
        );
    }
    let log = server.wait_for_log("saved     127.0.0.1:");
    wait_until(
        || server.log().matches("saved     ").count() == 2,
        "both saved",
        || server.log(),
    );
    assert!(!log.contains("failed"), "{log}");
    wait_until(
        || entries(server.drop_dir()).len() == 2,
        "both files",
        || server.log(),
    );
    assert_eq!(
        std::fs::read(server.drop_dir().join("notes.txt")).unwrap(),
        content
    );
    assert_eq!(
        std::fs::read(server.drop_dir().join("zero.bin")).unwrap(),
        b""
    );
    assert_eq!(entries(server.drop_dir()), ["notes.txt", "zero.bin"]);
}

#[test]
fn ftx_send_uploads_to_python_server_and_says_delivered() {
    let python = PythonServer::classroom();
    let src = tempfile::tempdir().unwrap();
    let files = [
        ("report.pdf", pattern(1_500_000, 5)),
        ("tiny.txt", b"hello classroom\n".to_vec()),
        ("empty", Vec::new()),
        ("ünïcödé.txt", pattern(4_000, 6)),
    ];
    let paths: Vec<_> = files
        .iter()
        .map(|(n, d)| write_file(src.path(), n, d))
        .collect();

    let out = send_to(&python.address())
        .args(["--jobs", "3"])
        .args(&paths)
        .assert()
        .success();
    let stderr = stderr_of(&out);
    assert!(stderr.contains("4 delivered, 0 failed"), "{stderr}");
    assert_eq!(
        stderr
            .matches("delivered: the server took every byte and closed the connection cleanly")
            .count(),
        1,
        "said once: {stderr}"
    );
    for (name, data) in &files {
        let temp = python.dir.path().join(format!("{name}.temp"));
        assert_eq!(
            &std::fs::read(&temp).unwrap_or_else(|e| panic!("{name}: {e}")),
            data,
            "{name}"
        );
    }
}

/// Two files of one name would both go to `NAME.temp` at once on the classroom server.
#[test]
fn the_same_name_twice_reaches_a_python_server_as_two_files() {
    let python = PythonServer::classroom();
    let src = tempfile::tempdir().unwrap();
    for sub in ["a", "b"] {
        std::fs::create_dir(src.path().join(sub)).unwrap();
    }
    let a = write_file(&src.path().join("a"), "x.bin", &pattern(300_000, 1));
    let b = write_file(&src.path().join("b"), "x.bin", &pattern(200_000, 2));
    send_to(&python.address())
        .args(["--jobs", "2"])
        .arg(&a)
        .arg(&b)
        .assert()
        .success()
        .stderr(predicate::str::contains("delivered x (1).bin"));
    assert_eq!(
        std::fs::read(python.dir.path().join("x.bin.temp")).unwrap(),
        pattern(300_000, 1)
    );
    assert_eq!(
        std::fs::read(python.dir.path().join("x (1).bin.temp")).unwrap(),
        pattern(200_000, 2)
    );
}
