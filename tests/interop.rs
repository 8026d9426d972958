//! Interop with the classroom Python programs: their client uploads to ftx serve, ftx send uploads to their server.

mod fixtures;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use fixtures::{entries, pattern, python_program, wait_until, write_file, Serve};

#[test]
fn python_client_uploads_to_ftx_serve() {
    let server = Serve::start(&[]);
    let work = tempfile::tempdir().unwrap();
    std::fs::create_dir(work.path().join("data")).unwrap();
    let content = pattern(250_000, 9);
    write_file(&work.path().join("data"), "notes.txt", &content);
    write_file(work.path(), "zero.bin", b"");

    // Names exactly as typed, directory included, as students do.
    for name in ["data/notes.txt", "zero.bin"] {
        let status = Command::new("python3")
            .arg(python_program("classroom_client.py"))
            .args([name, "127.0.0.1", &server.addr.port().to_string()])
            .current_dir(work.path())
            .status()
            .unwrap();
        assert!(status.success(), "python client failed for {name}");
    }
    server.wait_for_log("zero.bin");
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

/// A running classroom Python server, killed on drop.
struct PythonServer {
    child: std::process::Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl PythonServer {
    fn start() -> PythonServer {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new("python3")
            .arg("-u")
            .arg(python_program("classroom_server.py"))
            .args(["127.0.0.1", "0"])
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().rsplit(' ').next().unwrap().parse().unwrap();
        PythonServer { child, port, dir }
    }
}

impl Drop for PythonServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn ftx_send_uploads_to_python_server() {
    let python = PythonServer::start();
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

    assert_cmd::Command::new(fixtures::ftx_bin())
        .args([
            "send",
            "--plain",
            "--jobs",
            "3",
            "--to",
            &format!("127.0.0.1:{}", python.port),
        ])
        .args(&paths)
        .timeout(fixtures::PATIENCE)
        .assert()
        .success();

    for (name, data) in &files {
        let temp = python.dir.path().join(format!("{name}.temp"));
        assert_eq!(
            &std::fs::read(&temp).unwrap_or_else(|e| panic!("{name}: {e}")),
            data,
            "{name}"
        );
    }
}
