//! The live view, drawn in a real pseudo-terminal and read back through a terminal emulator.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread;

use crate::util::{address_in, ftx_bin, wait_until, RawClient};
use portable_pty::{native_pty_system, CommandBuilder, PtySize};

/// `ftx` running in a pseudo-terminal, with what it drew kept in a terminal emulator.
struct Terminal {
    child: Box<dyn portable_pty::Child + Send + Sync>,
    screen: Arc<Mutex<vt100::Parser>>,
    raw: Arc<Mutex<Vec<u8>>>,
    /// What a user types.
    keys: Box<dyn Write + Send>,
}

impl Terminal {
    fn run(args: &[&str], rows: u16, cols: u16) -> Terminal {
        Terminal::run_with_env(args, rows, cols, &[])
    }

    /// Runs with extra environment variables (e.g. NO_COLOR).
    fn run_with_env(args: &[&str], rows: u16, cols: u16, env: &[(&str, &str)]) -> Terminal {
        let pty = native_pty_system()
            .openpty(PtySize {
                rows,
                cols,
                pixel_width: 0,
                pixel_height: 0,
            })
            .unwrap();
        let mut cmd = CommandBuilder::new(ftx_bin());
        cmd.args(args);
        cmd.env("TERM", "xterm-256color");
        cmd.env_remove("NO_COLOR");
        // As in a classroom, ftx is installed: the banner's commands say `ftx`.
        let installed = std::path::Path::new(ftx_bin()).parent().unwrap();
        let path = std::env::var("PATH").unwrap_or_default();
        cmd.env("PATH", format!("{}:{path}", installed.display()));
        for (key, value) in env {
            cmd.env(key, value);
        }
        let child = pty.slave.spawn_command(cmd).unwrap();
        drop(pty.slave);
        let mut reader = pty.master.try_clone_reader().unwrap();
        let keys = pty.master.take_writer().unwrap();
        let screen = Arc::new(Mutex::new(vt100::Parser::new(rows, cols, 0)));
        let raw = Arc::new(Mutex::new(Vec::new()));
        let (screen_in, raw_in) = (Arc::clone(&screen), Arc::clone(&raw));
        thread::spawn(move || {
            let _master = pty.master;
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                screen_in.lock().unwrap().process(&buf[..n]);
                raw_in.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Terminal {
            child,
            screen,
            raw,
            keys,
        }
    }

    /// Types Ctrl-C, as a user would (the terminal sends SIGINT and echoes it).
    fn ctrl_c(&mut self) {
        self.keys.write_all(b"\x03").unwrap();
        self.keys.flush().unwrap();
    }

    fn contents(&self) -> String {
        self.screen.lock().unwrap().screen().contents()
    }

    /// Rows the terminal wrapped: a line that ran past the last column.
    fn wrapped(&self) -> Vec<String> {
        let parser = self.screen.lock().unwrap();
        let screen = parser.screen();
        let (rows, width) = screen.size();
        let text: Vec<String> = screen.rows(0, width).collect();
        (0..rows)
            .filter(|&r| screen.row_wrapped(r))
            .map(|r| text[usize::from(r)].clone())
            .collect()
    }

    /// Waits for `text`, checking at every look that no row wrapped.
    fn wait_for_unwrapped(&self, text: &str) -> Vec<String> {
        wait_until(
            || {
                let wrapped = self.wrapped();
                assert!(
                    wrapped.is_empty(),
                    "wrapped {wrapped:#?} in\n{}",
                    self.contents()
                );
                self.contents().contains(text)
            },
            &format!("{text:?} on screen"),
            || self.contents(),
        );
        self.rows()
    }

    /// Waits for the program to exit and returns its exit code.
    fn exit_code(&mut self) -> u32 {
        let deadline = std::time::Instant::now() + crate::util::PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.exit_code();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "still running:\n{}",
                self.contents()
            );
            thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// The screen's rows, one string each (a full row does not run into the next).
    fn rows(&self) -> Vec<String> {
        let parser = self.screen.lock().unwrap();
        let screen = parser.screen();
        let width = screen.size().1;
        screen
            .rows(0, width)
            .map(|r| r.trim_end().to_string())
            .collect()
    }

    fn wait_for(&self, text: &str) -> String {
        wait_until(
            || self.contents().contains(text),
            &format!("{text:?} on screen"),
            || self.contents(),
        );
        self.contents()
    }

    /// Waits until one of `texts` was drawn at some moment, even if the
    /// screen has moved on since (a bar that came and went between two looks).
    fn wait_for_drawn(&self, texts: &[&str]) {
        let drawn = || {
            let raw = self.raw.lock().unwrap();
            texts
                .iter()
                .any(|text| raw.windows(text.len()).any(|w| w == text.as_bytes()))
        };
        wait_until(drawn, &format!("{texts:?} drawn"), || self.contents());
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// `ftx serve` on a free loopback port in a terminal of `rows` x `cols`, saving into a new folder.
fn serve_in_terminal(
    extra: &[&str],
    rows: u16,
    cols: u16,
) -> (Terminal, SocketAddr, tempfile::TempDir) {
    serve_in_terminal_with_env(extra, rows, cols, &[])
}

/// The same, with extra environment variables; the address is read off the banner.
fn serve_in_terminal_with_env(
    extra: &[&str],
    rows: u16,
    cols: u16,
    env: &[(&str, &str)],
) -> (Terminal, SocketAddr, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec![
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--dir",
        dir.path().to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let term = Terminal::run_with_env(&args, rows, cols, env);
    let screen = term.wait_for("listening on");
    let line = screen
        .lines()
        .find(|l| l.contains("listening on"))
        .expect("banner line");
    (term, address_in(line), dir)
}

#[test]
fn server_draws_a_bar_per_upload_with_name_and_progress() {
    let (term, addr, dir) = serve_in_terminal(&["--workers", "1"], 24, 140);

    let mut slow = RawClient::start_upload(addr, 1_000_000, "slow-lecture-é.pdf".as_bytes());
    slow.stream.write_all(&vec![5u8; 300_000]).unwrap();
    let mut queued = RawClient::connect(addr);
    queued.send_header(3, b"later.txt");

    let screen = term.wait_for("30%");
    assert!(screen.contains("slow-lecture-é.pdf"), "{screen}");
    // Bytes that came before the bar was drawn are not a resume.
    assert!(!screen.contains("resuming"), "{screen}");
    assert!(screen.contains("292.97 KiB/976.56 KiB"), "{screen}");
    let screen = term.wait_for("waiting for a free worker");
    assert!(screen.contains("1 active · 1 waiting"), "{screen}");

    slow.finish(&vec![5u8; 700_000]);
    let screen = term.wait_for("✓");
    assert!(
        screen.contains("slow-lecture-é.pdf  976.56 KiB  in"),
        "{screen}"
    );
    assert_eq!(
        queued.reply_within(crate::util::PATIENCE).as_deref(),
        Some(&b"go ahead"[..])
    );
    queued.finish(b"abc");
    term.wait_for("2 saved");
    assert_eq!(
        crate::util::entries(dir.path()),
        ["later.txt", "slow-lecture-é.pdf"]
    );
    assert_eq!(
        std::fs::read(dir.path().join("slow-lecture-é.pdf")).unwrap(),
        vec![5u8; 1_000_000]
    );
}

/// A bar whose first byte has not come shows no remaining time (it said
/// `ETA 0s`); once bytes move, it does.
#[test]
fn a_bar_not_started_shows_no_eta() {
    let (term, addr, _dir) = serve_in_terminal(&["--workers", "1"], 24, 140);
    let mut idle = RawClient::start_upload(addr, 1_000_000, b"not-yet.bin");
    let screen = term.wait_for("not-yet.bin");
    let row = |screen: &str| {
        screen
            .lines()
            .find(|l| l.contains("not-yet.bin"))
            .unwrap_or_default()
            .to_string()
    };
    let first = row(&screen);
    assert!(
        first.contains("   0% ") && first.contains(" ETA   ?"),
        "{screen}"
    );
    assert!(!first.contains("ETA  0s"), "{screen}");
    idle.stream.write_all(&vec![1u8; 300_000]).unwrap();
    let screen = term.wait_for("30%");
    assert!(!row(&screen).contains("ETA   ?"), "{screen}");
    idle.finish(&vec![1u8; 700_000]);
    term.wait_for("1 saved");
}

/// A batch shows its files, each with its bar, and nothing about the
/// connection itself once a worker has it (it is not waiting any more).
#[test]
fn a_batch_shows_its_files_and_no_waiting_row() {
    let (term, addr, dir) = serve_in_terminal(&["--rate", "1MiB"], 24, 140);
    let src = tempfile::tempdir().unwrap();
    let top = src.path().join("talks");
    std::fs::create_dir(&top).unwrap();
    crate::util::write_file(&top, "a.txt", b"first");
    crate::util::write_file(&top, "lecture.mp4", &crate::util::pattern(3_000_000, 1));
    let _sender = crate::util::Running(
        std::process::Command::new(ftx_bin())
            .args(["send", "--plain", "--to", &addr.to_string()])
            .arg(&top)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let screen = term.wait_for("talks/lecture.mp4");
    let screen = if screen.contains("%") {
        screen
    } else {
        term.wait_for("%")
    };
    assert!(!screen.contains("waiting for a free worker"), "{screen}");
    assert!(screen.contains("1 active · 0 waiting"), "{screen}");
    term.wait_for("2 saved");
    assert_eq!(
        std::fs::read(dir.path().join("talks/lecture.mp4")).unwrap(),
        crate::util::pattern(3_000_000, 1)
    );
}

#[test]
fn hostile_names_cannot_drive_the_terminal() {
    let (term, addr, dir) = serve_in_terminal(&[], 24, 140);

    let evil = b"\x1b[2J\x1b[31mred\x07\x1b]0;pwned\x07.txt";
    RawClient::start_upload(addr, 2, evil).finish(b"ok");
    let screen = term.wait_for("1 saved");
    assert!(
        screen.contains("\\x1b[2J\\x1b[31mred\\x07\\x1b]0;pwned\\x07.txt"),
        "{screen}"
    );
    assert!(
        screen.contains("listening on"),
        "the screen was cleared:\n{screen}"
    );
    let raw = term.raw.lock().unwrap().clone();
    assert!(
        !raw.windows(4).any(|w| w == b"\x1b[2J"),
        "clear-screen reached the terminal"
    );
    assert!(!raw.windows(5).any(|w| w == b"pwned") || !raw.windows(4).any(|w| w == b"\x1b]0;"));
    assert_eq!(
        crate::util::entries(dir.path()),
        ["_[2J_[31mred__]0;pwned_.txt"]
    );
}

/// A slow classroom-style server on a free port: reads the header, says go ahead,
/// then takes its time (about half a second for 2 MB) and closes. Returns the bytes it got.
fn slow_classroom_server(files: usize) -> (SocketAddr, thread::JoinHandle<usize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = thread::spawn(move || {
        let mut total = 0;
        for _ in 0..files {
            let (mut stream, _) = listener.accept().unwrap();
            let mut buf = vec![0u8; 64 * 1024];
            let n = stream.read(&mut buf[..1024]).unwrap();
            let size = u64::from_be_bytes(buf[..8].try_into().unwrap()) as usize;
            assert!(n > 8);
            stream.write_all(b"go ahead").unwrap();
            let mut got = 0;
            while got < size {
                let n = stream.read(&mut buf).unwrap();
                assert!(n > 0);
                got += n;
                if got > 500_000 {
                    thread::sleep(std::time::Duration::from_millis(15));
                }
            }
            total += got;
        }
        total
    });
    (addr, server)
}

/// A sender's batch shows the file going and the total, not files that wait
/// their turn in it as if they waited for a `go ahead` they never get.
#[test]
fn a_sender_batch_shows_what_goes_and_the_total() {
    let server = crate::util::Serve::start(&[]);
    let src = tempfile::tempdir().unwrap();
    let top = src.path().join("talks");
    std::fs::create_dir(&top).unwrap();
    crate::util::write_file(&top, "a-lecture.mp4", &crate::util::pattern(3_000_000, 2));
    for i in 0..4 {
        crate::util::write_file(&top, &format!("b{i}.txt"), b"notes");
    }
    let term = Terminal::run(
        &[
            "send",
            "--rate",
            "1MiB",
            "--to",
            &server.addr.to_string(),
            top.to_str().unwrap(),
        ],
        24,
        140,
    );
    let screen = term.wait_for("talks/a-lecture.mp4");
    let screen = if screen.contains("files") {
        screen
    } else {
        term.wait_for("files")
    };
    assert!(screen.contains("/5 files"), "{screen}");
    assert!(!screen.contains("waiting for go ahead"), "{screen}");
    term.wait_for("5 saved, 0 failed");
}

#[test]
fn sender_of_one_file_draws_its_bar_and_no_total() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, server) = slow_classroom_server(1);
    let file = crate::util::write_file(
        dir.path(),
        "big-slides.pdf",
        &crate::util::pattern(2_000_000, 3),
    );
    let term = Terminal::run(
        &["send", "--to", &addr.to_string(), file.to_str().unwrap()],
        24,
        140,
    );
    let screen = term.wait_for("big-slides.pdf  ");
    assert!(
        !screen.contains("total"),
        "a total bar for one file:\n{screen}"
    );
    let screen = term.wait_for("1 delivered, 0 failed");
    assert!(
        screen.contains("✓ delivered big-slides.pdf  1.91 MiB"),
        "{screen}"
    );
    assert_eq!(server.join().unwrap(), 2_000_000);
}

#[test]
fn a_bounded_pool_shows_active_bars_and_waiting_clients() {
    let (term, addr, dir) = serve_in_terminal(&["--workers", "2"], 24, 140);

    let mut active: Vec<RawClient> = ["first.bin", "second.bin"]
        .iter()
        .map(|name| RawClient::start_upload(addr, 100_000, name.as_bytes()))
        .collect();
    for client in &mut active {
        client.stream.write_all(&[9u8; 25_000]).unwrap();
    }
    let mut waiting: Vec<RawClient> = ["third.bin", "fourth.bin"]
        .iter()
        .map(|name| {
            let mut client = RawClient::connect(addr);
            client.send_header(10, name.as_bytes());
            client
        })
        .collect();

    // The screen is read while it is being drawn: wait for a whole frame.
    wait_until(
        || {
            let screen = term.contents();
            screen.contains("2 active · 2 waiting") && screen.matches("25%").count() == 2
        },
        "two bars and two waiting clients",
        || term.contents(),
    );
    let screen = term.contents();
    assert_eq!(
        screen.matches("waiting for a free worker").count(),
        2,
        "{screen}"
    );
    assert_eq!(screen.matches("25%").count(), 2, "{screen}");
    assert!(
        screen.contains("first.bin") && screen.contains("second.bin"),
        "{screen}"
    );

    for client in active {
        client.finish(&[9u8; 75_000]);
    }
    for client in &mut waiting {
        assert_eq!(
            client.reply_within(crate::util::PATIENCE).as_deref(),
            Some(&b"go ahead"[..])
        );
    }
    for client in waiting {
        client.finish(b"0123456789");
    }
    let screen = term.wait_for("4 saved");
    assert!(screen.contains("0 active · 0 waiting"), "{screen}");
    assert_eq!(
        crate::util::entries(dir.path()),
        ["first.bin", "fourth.bin", "second.bin", "third.bin"]
    );
}

#[test]
fn bars_never_outnumber_the_rows() {
    let (term, addr, dir) = serve_in_terminal(&["--workers", "16"], 10, 120);
    let clients: Vec<RawClient> = (0..12)
        .map(|i| {
            let mut c = RawClient::start_upload(addr, 1000, format!("f{i:02}.bin").as_bytes());
            c.stream.write_all(&[1u8; 10]).unwrap();
            c
        })
        .collect();
    let screen = term.wait_for("12 active");
    assert!(screen.contains("+5 more"), "{screen}");
    assert!(screen.matches("1%").count() <= 7, "{screen}");
    for c in clients {
        c.finish(&[1u8; 990]);
    }
    term.wait_for("12 saved");
    assert_eq!(crate::util::entries(dir.path()).len(), 12);
}

#[test]
fn no_color_turns_colours_off_but_keeps_the_bars() {
    let (term, addr, _dir) = serve_in_terminal_with_env(&[], 24, 120, &[("NO_COLOR", "1")]);
    let mut client = RawClient::start_upload(addr, 1000, b"plain.txt");
    client.stream.write_all(&[1u8; 500]).unwrap();
    term.wait_for("50%");
    client.finish(&[1u8; 500]);
    term.wait_for("1 saved");
    let raw = String::from_utf8_lossy(&term.raw.lock().unwrap()).into_owned();
    for colour in [
        "\x1b[32m",
        "\x1b[31m",
        "\x1b[34m",
        "\x1b[36m",
        "\x1b[33m",
        "\x1b[1m",
        "\x1b[38;5;",
    ] {
        assert!(!raw.contains(colour), "{colour:?} despite NO_COLOR");
    }
}

#[test]
fn plain_in_a_terminal_prints_lines_not_bars() {
    let (term, addr, _dir) = serve_in_terminal(&["--plain"], 24, 120);
    RawClient::start_upload(addr, 3, b"line.txt").finish(b"abc");
    let screen = term.wait_for("saved     127.0.0.1:");
    assert!(screen.contains("receiving 127.0.0.1:"), "{screen}");
    assert!(
        !screen.contains("active ·"),
        "a footer was drawn:\n{screen}"
    );
}

#[test]
fn sender_ends_with_a_table_of_every_file() {
    // Without the hello, the smallest file goes classically: a row with a rate of its own.
    let (_server_term, addr, _dir) = serve_in_terminal(&["--no-hello"], 24, 140);
    let src = tempfile::tempdir().unwrap();
    let good = crate::util::write_file(src.path(), "good.txt", b"fine");
    let also = crate::util::write_file(src.path(), "also.bin", &crate::util::pattern(1_500_000, 1));
    let small = crate::util::write_file(src.path(), "small.txt", &[7; 100]);
    let missing = src.path().join("missing.txt");
    let to = addr.to_string();
    let paths = [good, also, small, missing];
    let mut args = vec!["send", "--to", &to];
    args.extend(paths.iter().map(|p| p.to_str().unwrap()));
    let term = Terminal::run(&args, 24, 140);
    let screen = term.wait_for("3 saved, 1 failed");
    let rows = term.rows();
    let table: Vec<&str> = rows
        .iter()
        .map(String::as_str)
        .skip_while(|l| !l.starts_with("file "))
        .take(5)
        .collect();
    assert_eq!(table.len(), 5, "{screen}");
    assert!(
        table[0].contains("result") && table[0].contains("rate"),
        "{screen}"
    );
    // In the order given, columns lined up, the failure's reason right after its name.
    assert!(table[1].starts_with("good.txt     saved"), "{screen}");
    assert!(table[2].starts_with("also.bin     saved"), "{screen}");
    assert!(table[3].starts_with("small.txt    saved"), "{screen}");
    assert!(
        table[4].starts_with("missing.txt  failed     cannot open: No such file"),
        "{screen}"
    );
    let rate_column = |row: &str| row.find("/s").unwrap();
    assert_eq!(rate_column(table[1]), rate_column(table[2]), "{screen}");
    // A small file of a batch: its time would be its wait behind the others.
    assert!(
        table[3].trim_end().ends_with("100 B"),
        "a time or rate for a small batch file:\n{screen}"
    );
    assert_eq!(
        screen.matches("good.txt").count(),
        1,
        "said twice:\n{screen}"
    );
}

/// On the projector, a batch's small files are one line for the batch
/// (how many, how much, into which folder), not a line each; a big file of
/// it still has its own.
#[test]
fn a_batch_of_small_files_is_one_line_on_the_server() {
    let (term, addr, _dir) = serve_in_terminal(&["--no-hello"], 30, 140);
    let src = tempfile::tempdir().unwrap();
    let top = src.path().join("d");
    std::fs::create_dir(&top).unwrap();
    for n in 0..40 {
        crate::util::write_file(&top, &format!("f{n:02}.txt"), &vec![b'x'; 100 + n]);
    }
    crate::util::write_file(&top, "big.bin", &crate::util::pattern(2 << 20, 9));
    let loose = crate::util::write_file(src.path(), "notes.txt", &[b'n'; 500]);
    crate::util::send_to(&addr.to_string())
        .args(["-j", "1"])
        .arg(&top)
        .arg(&loose)
        .assert()
        .success();
    // The smallest went first, classically, and was moved into its folder
    // by a claim; the folder's line counts all 41 of its files, as the
    // sender does (it said 40: the claimed one was left out).
    // The batch's line waits a moment for other batches of its folder.
    let screen = term.wait_for("into d/");
    let rows = term.rows();
    let batch = rows
        .iter()
        .find(|l| l.contains("into d/"))
        .unwrap_or_else(|| panic!("no line for the batch:\n{screen}"));
    assert!(
        batch.starts_with("✓ 127.0.0.1:") && batch.contains("  41 files  2.00 MiB  in "),
        "{screen}"
    );
    assert!(
        screen.contains("d/big.bin  2.00 MiB  in"),
        "the big file's own line:\n{screen}"
    );
    assert!(
        screen.contains("f00.txt  100 B  in"),
        "the classic one:\n{screen}"
    );
    assert!(
        screen.contains("  notes.txt  500 B  in"),
        "a small file given by name has a line of its own:\n{screen}"
    );
    assert!(
        !screen.contains("d/f39.txt"),
        "a small file of the batch has a line:\n{screen}"
    );

    // A folder big enough to be filled by two batches at once: one line still.
    let files: Vec<(String, Vec<u8>)> = (0..600)
        .map(|n| (format!("g{n:03}.txt"), vec![b'y'; 100 + n]))
        .collect();
    let files: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(name, content)| (name.as_str(), content.as_slice()))
        .collect();
    let big = crate::util::folder_with(src.path(), "e", &files);
    crate::util::send_to(&addr.to_string())
        .args(["-j", "4"])
        .arg(&big)
        .assert()
        .success();
    let screen = term.wait_for("into e/");
    let rows = term.rows();
    let lines: Vec<&str> = rows
        .iter()
        .map(|l| l.trim_end())
        .filter(|l| l.contains("into e/"))
        .collect();
    assert_eq!(lines.len(), 1, "{screen}");
    // The batches take the folder's units from one queue: a loaded machine
    // may have one take both before the other starts. Several batches are
    // one line by the client's address; one is its own line.
    let line = lines[0];
    let merged =
        line.starts_with("✓ 127.0.0.1  600 files  ") && line.ends_with("(2 connections at once)");
    let alone = line.starts_with("✓ 127.0.0.1:")
        && line.contains("  600 files  ")
        && !line.contains("connections at once");
    assert!(merged || alone, "{screen}");
}

/// A folder given is one row of the sender's table, its files counted; a
/// file of it that failed has a row of its own below it. Sent again, the
/// row says which top folder the server made for it.
#[test]
fn a_folder_is_one_row_of_the_table_and_its_failures_follow() {
    let (_server_term, addr, _dir) = serve_in_terminal(&[], 24, 140);
    let src = tempfile::tempdir().unwrap();
    let top = src.path().join("photos");
    std::fs::create_dir_all(top.join("2024")).unwrap();
    for (n, name) in ["a.jpg", "b.jpg", "2024/c.jpg", "2024/d.jpg"]
        .iter()
        .enumerate()
    {
        std::fs::write(top.join(name), crate::util::pattern(1000 + n, n as u8)).unwrap();
    }
    crate::util::make_fifo(&top.join("pipe"));
    let loose = crate::util::write_file(src.path(), "notes.txt", b"loose");
    let to = addr.to_string();
    let args = [
        "send",
        "--to",
        &to,
        top.to_str().unwrap(),
        loose.to_str().unwrap(),
    ];
    let table_of = |term: &Terminal| -> Vec<String> {
        term.rows()
            .into_iter()
            .skip_while(|l| !l.starts_with("file "))
            .take_while(|l| !l.contains(" saved, "))
            .collect()
    };
    let term = Terminal::run(&args, 24, 140);
    let screen = term.wait_for("5 saved, 1 failed");
    let table = table_of(&term);
    assert_eq!(table.len(), 4, "{screen}");
    assert!(table[1].starts_with("photos/      saved"), "{screen}");
    assert!(
        table[1].contains("4 of 5 files  (1 failed, below)"),
        "{screen}"
    );
    assert!(
        table[2].starts_with("photos/pipe  failed     not a regular file"),
        "{screen}"
    );
    assert!(table[3].starts_with("notes.txt    saved"), "{screen}");
    assert!(
        !screen.contains("c.jpg"),
        "a file that went well has a row:\n{screen}"
    );
    drop(term);

    std::fs::remove_file(top.join("pipe")).unwrap();
    let term = Terminal::run(&args, 24, 140);
    let screen = term.wait_for("5 saved, 0 failed");
    let table = table_of(&term);
    assert_eq!(table.len(), 3, "{screen}");
    assert!(table[1].starts_with("photos/    saved"), "{screen}");
    assert!(
        table[1].contains("4 files  saved as photos (1)/"),
        "{screen}"
    );
    assert!(table[2].contains("saved as notes (1).txt"), "{screen}");
}

/// Ctrl-C with bars on screen: the stopping line, the outcomes and the summary
/// follow each other cleanly, with no bar left behind and none drawn after.
#[test]
fn ctrl_c_leaves_a_clean_screen() {
    let (mut term, addr, dir) = serve_in_terminal(&["--workers", "2"], 24, 100);
    let mut clients: Vec<RawClient> = ["one.bin", "two.bin"]
        .iter()
        .map(|name| RawClient::start_upload(addr, 1_000_000, name.as_bytes()))
        .collect();
    for client in &mut clients {
        client.stream.write_all(&[1u8; 300_000]).unwrap();
    }
    let mut queued = RawClient::connect(addr);
    queued.send_header(5, b"queued.txt");
    term.wait_for("2 active · 1 waiting");
    term.wait_for("30%");
    term.ctrl_c();
    term.wait_for("stopped after");
    let rows = term.rows();
    let stopping = rows
        .iter()
        .position(|r| r.starts_with("ftx: stopping: cancelling uploads in progress"))
        .unwrap_or_else(|| panic!("{rows:#?}"));
    let tail: Vec<&String> = rows[stopping..].iter().filter(|r| !r.is_empty()).collect();
    assert_eq!(
        tail.len(),
        5,
        "the stopping line, three outcomes, the summary: {rows:#?}"
    );
    assert!(tail[1..4].iter().all(|r| r.starts_with('✗')), "{rows:#?}");
    assert!(tail[4].starts_with("ftx: stopped after"), "{rows:#?}");
    assert!(
        !rows
            .iter()
            .any(|r| r.contains('%') || r.contains("active ·")),
        "a bar or the footer was left on screen: {rows:#?}"
    );
    assert!(crate::util::entries(dir.path()).is_empty());
}

/// At 60 columns, bars drop columns instead of wrapping, and the sender's table fits.
#[test]
fn a_narrow_terminal_keeps_every_bar_on_one_row() {
    let (server, addr, _dir) = serve_in_terminal(&["--workers", "1"], 24, 60);
    let mut slow = RawClient::start_upload(addr, 1_000_000, b"lecture-notes.pdf");
    slow.stream.write_all(&[1u8; 250_000]).unwrap();
    let screen = server.wait_for("25%");
    let rows = server.rows();
    let bar = rows
        .iter()
        .find(|r| r.contains("25%"))
        .expect("the bar's row");
    assert!(
        bar.starts_with("127.0.0.1:") && bar.contains("  lecture-notes.pdf") && bar.contains("ETA"),
        "{screen}"
    );
    // The banner breaks between terms: every row starts a line, a term or an indented line.
    let banner = rows.iter().take_while(|r| !r.contains('%'));
    assert!(
        banner
            .filter(|r| !r.is_empty())
            .all(|r| r.starts_with("ftx serve: ")
                || r.starts_with("listening on ")
                || r.starts_with("saving into ")
                || r.starts_with("  ")),
        "{rows:#?}"
    );
    slow.finish(&[1u8; 750_000]);
    server.wait_for("1 saved");

    let src = tempfile::tempdir().unwrap();
    let files: Vec<String> = ["a-rather-long-file-name.txt", "b.txt", "missing.txt"]
        .iter()
        .map(|n| {
            let path = src.path().join(n);
            if *n != "missing.txt" {
                std::fs::write(&path, b"content").unwrap();
            }
            path.display().to_string()
        })
        .collect();
    let to = addr.to_string();
    let mut args = vec!["send", "--to", to.as_str()];
    args.extend(files.iter().map(String::as_str));
    let sender = Terminal::run(&args, 24, 60);
    sender.wait_for("2 saved, 1 failed");
    let rows = sender.rows();
    let table = rows
        .iter()
        .position(|r| r.starts_with("file "))
        .expect("a table");
    for row in &rows[table + 1..table + 4] {
        assert!(
            ["a-rather", "b.txt", "missing.txt"]
                .iter()
                .any(|n| row.starts_with(n)),
            "a table row wrapped: {rows:#?}"
        );
    }
}

/// Keys typed at the server's terminal while bars are drawn (a teacher
/// pressing Enter) are not echoed, and leave no copy of a bar behind.
#[test]
fn typed_keys_do_not_garble_the_bars() {
    let (mut term, addr, _dir) = serve_in_terminal(&[], 24, 100);
    let mut client = RawClient::start_upload(addr, 1_000_000, b"slow.bin");
    client.stream.write_all(&[1u8; 300_000]).unwrap();
    term.wait_for("30%");
    term.keys.write_all(b"typed\r\r\r").unwrap();
    term.keys.flush().unwrap();
    thread::sleep(std::time::Duration::from_millis(300));
    client.stream.write_all(&[1u8; 300_000]).unwrap();
    let screen = term.wait_for("60%");
    assert!(!screen.contains("typed"), "the keys were echoed:\n{screen}");
    assert_eq!(
        screen.matches("slow.bin").count(),
        1,
        "one row for the upload, no copy left behind:\n{screen}"
    );
}

/// A resumed file's bar on the server starts where the file stopped, and its
/// rate counts only what comes now (it read 1.19 GiB/s for a 1 MiB/s send).
#[test]
fn a_resumed_file_shows_the_rate_of_what_comes_now() {
    let (term, addr, dir) = serve_in_terminal(&[], 24, 140);
    let src = tempfile::tempdir().unwrap();
    let big = crate::util::write_file(src.path(), "big.bin", &crate::util::pattern(8 << 20, 6));
    let send = |rate: &str| {
        crate::util::Running(
            std::process::Command::new(ftx_bin())
                .args(["send", "--plain", "--rate", rate, "--to", &addr.to_string()])
                .arg(&big)
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    let mut first = send("8MiB");
    wait_until(
        || crate::util::part_bytes(dir.path()) > 4 << 20,
        "half the file held",
        || term.contents(),
    );
    first.signal("KILL");
    first.wait_exit();
    term.wait_for("big.bin  ");
    let _second = send("1MiB");
    let row = || {
        term.rows()
            .into_iter()
            .find(|r| r.contains("big.bin") && r.contains('%'))
    };
    wait_until(|| row().is_some(), "the resumed bar", || term.contents());
    thread::sleep(std::time::Duration::from_millis(1500));
    let row = row().unwrap_or_else(|| term.contents());
    let mib = mib_per_second_in(&row);
    assert!(mib < 4.0, "{mib} MiB/s shown for a 1 MiB/s send: {row}");
    assert!(row.contains("  resuming at "), "{row}");
}

/// `ftx` in a tmux window: a terminal that reflows its lines when resized,
/// as a laptop's terminal does when a projector is plugged in.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn run(args: &[&str], cols: u16, rows: u16) -> Tmux {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let socket = format!(
            "ftx-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let installed = std::path::Path::new(ftx_bin()).parent().unwrap();
        let command = format!(
            "PATH={}:$PATH TERM=xterm-256color exec ftx {}",
            installed.display(),
            args.join(" ")
        );
        let tmux = Tmux { socket };
        let status = tmux
            .command()
            .args(["new-session", "-d", "-s", "ftx", "-x", &cols.to_string()])
            .args(["-y", &rows.to_string(), &command])
            .status()
            .expect("tmux is installed (.ci/run installs it)");
        assert!(status.success(), "tmux new-session failed");
        // The window keeps its size whatever clients attach: resizes are the test's.
        tmux.tmux(&["set-option", "-g", "window-size", "manual"]);
        tmux
    }

    fn command(&self) -> std::process::Command {
        let mut tmux = std::process::Command::new("tmux");
        tmux.args(["-L", &self.socket, "-f", "/dev/null"]);
        tmux
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = self.command().args(args).output().unwrap();
        assert!(out.status.success(), "tmux {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn resize(&self, cols: u16, rows: u16) {
        self.tmux(&[
            "resize-window",
            "-t",
            "ftx",
            "-x",
            &cols.to_string(),
            "-y",
            &rows.to_string(),
        ]);
    }

    /// The visible screen, a row each (rows the terminal wrapped stay apart).
    fn rows(&self) -> Vec<String> {
        self.tmux(&["capture-pane", "-p", "-t", "ftx"])
            .lines()
            .map(|r| r.trim_end().to_string())
            .collect()
    }

    fn wait_for(&self, text: &str) -> Vec<String> {
        wait_until(
            || self.rows().iter().any(|r| r.contains(text)),
            &format!("{text:?} on screen"),
            || self.rows().join("\n"),
        );
        self.rows()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.command().arg("kill-server").status();
    }
}

/// Resizing the terminal mid-upload (120x40 -> 60x20 -> 120x40, and again)
/// leaves exactly what is going on: one row per upload, every finished line,
/// the banner. The bars' rows used to run into each other through the
/// terminal's auto-wrap, so that a reflow left frozen copies of bars and
/// swallowed a finished line.
#[test]
fn resizes_leave_no_stale_bar_and_lose_no_line() {
    let dir = tempfile::tempdir().unwrap();
    let term = Tmux::run(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--dir",
            dir.path().to_str().unwrap(),
        ],
        120,
        40,
    );
    let rows = term.wait_for("listening on");
    let addr = address_in(rows.iter().find(|r| r.contains("listening on")).unwrap());
    let names = [
        "upload_file_number_1.dat",
        "upload_file_number_2.dat",
        "upload_file_number_3.dat",
    ];
    let mut clients: Vec<RawClient> = names
        .iter()
        .map(|name| RawClient::start_upload(addr, 1_000_000, name.as_bytes()))
        .collect();
    for (client, sent) in clients.iter_mut().zip([300_000, 120_000, 500_000]) {
        client.stream.write_all(&vec![7u8; sent]).unwrap();
    }
    term.wait_for("50%");
    let pause = || thread::sleep(std::time::Duration::from_millis(600));
    term.resize(60, 20);
    pause();
    clients[1].stream.write_all(&vec![7u8; 100_000]).unwrap();
    pause();
    term.resize(120, 40);
    pause();
    let first = clients.remove(0);
    first.finish(&vec![7u8; 700_000]);
    term.wait_for("1 saved");
    term.resize(60, 20);
    pause();
    term.resize(120, 40);
    pause();
    clients[0].stream.write_all(&vec![7u8; 100_000]).unwrap();
    let rows = term.wait_for("32%");
    let screen = rows.join("\n");
    let bars: Vec<&String> = rows.iter().filter(|r| r.contains('%')).collect();
    assert_eq!(
        bars.len(),
        2,
        "one bar per upload in progress, no copy:\n{screen}"
    );
    assert!(
        bars[0].contains("upload_file_number_2") && bars[0].contains("32%"),
        "{screen}"
    );
    assert!(
        bars[1].contains("upload_file_number_3") && bars[1].contains("50%"),
        "{screen}"
    );
    let finished: Vec<&String> = rows.iter().filter(|r| r.starts_with('✓')).collect();
    assert_eq!(finished.len(), 1, "{screen}");
    assert!(finished[0].contains("upload_file_number_1.dat"), "{screen}");
    assert!(rows[0].starts_with("ftx serve: listening on"), "{screen}");
    assert!(
        rows.iter()
            .any(|r| r.starts_with("2 active · 0 waiting · 1 saved")),
        "{screen}"
    );
    for client in clients {
        drop(client);
    }
}

/// Ctrl-C on a send of several files: the bars go, the table says what came
/// of each file (saved, interrupted with what the server holds, not sent),
/// the exit code is 130, and the same command then resumes the big file.
#[test]
fn ctrl_c_on_a_send_prints_the_table_and_the_same_command_resumes() {
    let server = crate::util::Serve::start(&["--rate", "2MiB"]);
    let src = tempfile::tempdir().unwrap();
    let big_content = crate::util::pattern(8 << 20, 3);
    let files = [
        crate::util::write_file(src.path(), "a.txt", b"tiny"),
        crate::util::write_file(src.path(), "big.bin", &big_content),
        crate::util::write_file(src.path(), "later.bin", &crate::util::pattern(1 << 20, 4)),
    ];
    let to = server.addr.to_string();
    let mut args = vec!["send", "-j", "1", "--to", to.as_str()];
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    let mut term = Terminal::run(&args, 24, 120);
    wait_until(
        || crate::util::part_bytes(server.dir.path()) > 1 << 20,
        "a part of big.bin on the server",
        || term.contents(),
    );
    term.ctrl_c();
    term.wait_for("ftx: interrupted (Ctrl-C)");
    assert_eq!(term.exit_code(), 130, "{}", term.contents());
    let rows = term.rows();
    let screen = rows.join("\n");
    let row = |name: &str| {
        rows.iter()
            .find(|r| r.starts_with(name))
            .unwrap_or_else(|| panic!("no row for {name}:\n{screen}"))
            .clone()
    };
    assert!(row("file ").contains("result"), "{screen}");
    let big = row("big.bin");
    assert!(
        big.contains("failed") && big.contains("interrupted: the server holds up to"),
        "{screen}"
    );
    assert!(big.contains("the same command resumes it"), "{screen}");
    let later = row("later.bin");
    assert!(
        later.contains("not sent") || later.contains("interrupted: "),
        "{screen}"
    );
    assert!(
        !later.contains("resumes"),
        "only a file whose part is kept resumes:\n{screen}"
    );
    assert!(row("a.txt").contains("saved"), "{screen}");
    assert!(
        !rows.iter().any(|r| r.contains('%')),
        "a bar was left on screen:\n{screen}"
    );

    // The same command again, at once: the big file goes on from where it
    // stopped, once the server has read what the first run had sent (it
    // asked while the server still wrote the part, and lost the batch).
    // Its bar says so from its first byte, and still once all is sent (under
    // load the bar may first be drawn then: its bytes fit in the buffers).
    let mut again = Terminal::run(&args, 24, 120);
    again.wait_for_drawn(&["resuming at ", "all sent (resumed at "]);
    again.wait_for("saved, 0 failed");
    assert_eq!(again.exit_code(), 0, "{}", again.contents());
    assert!(
        again.contents().contains("resumed at"),
        "{}",
        again.contents()
    );
    assert_eq!(
        std::fs::read(server.dir.path().join("big.bin")).unwrap(),
        big_content
    );
}

/// At 60 and at 40 columns nothing wraps, on either end or in `ftx demo`:
/// names are cut in the middle so that two of them stay apart, the client
/// stays in some form, finished lines drop their rate and time, waiting rows
/// say it shorter, the table cuts names but never the outcome.
#[test]
fn nothing_wraps_at_60_or_40_columns() {
    for cols in [60u16, 40] {
        let (server, addr, dir) = serve_in_terminal(&["--workers", "2"], 30, cols);
        let mut twelve = RawClient::start_upload(addr, 1_000_000, b"upload_file_number_12.dat");
        let mut thirteen = RawClient::start_upload(addr, 1_000_000, b"upload_file_number_13.dat");
        twelve.stream.write_all(&[1u8; 300_000]).unwrap();
        thirteen.stream.write_all(&[1u8; 500_000]).unwrap();
        let mut queued = RawClient::connect(addr);
        queued.send_header(4, b"a_name_long_enough_to_be_cut_somewhere.txt");
        let rows = server.wait_for_unwrapped("50%");
        let bar = |end: &str| rows.iter().any(|r| r.contains(end) && r.contains('%'));
        assert!(bar("12.dat") && bar("13.dat"), "{cols} columns: {rows:#?}");
        server.wait_for_unwrapped("waiting");
        twelve.finish(&[1u8; 700_000]);
        drop(thirteen);
        server.wait_for_unwrapped("✗");
        let rows = server.wait_for_unwrapped("✓");
        let done = rows.iter().find(|r| r.starts_with('✓')).unwrap();
        assert!(
            done.contains("12.dat") && done.contains("976.56 KiB"),
            "{cols}: {rows:#?}"
        );
        assert!(
            done.contains("127.0.0.1") || done.contains("…1"),
            "the client stays: {done}"
        );
        assert_eq!(
            queued.reply_within(crate::util::PATIENCE).as_deref(),
            Some(&b"go ahead"[..])
        );
        queued.finish(b"four");
        server.wait_for_unwrapped("2 saved");
        drop(dir);

        let src = tempfile::tempdir().unwrap();
        let names = [
            "upload_file_number_12.dat",
            "upload_file_number_13.dat",
            "missing_file_with_a_long_name.txt",
        ];
        let files: Vec<String> = names
            .iter()
            .map(|n| {
                let path = src.path().join(n);
                if !n.starts_with("missing") {
                    std::fs::write(&path, crate::util::pattern(200_000, 1)).unwrap();
                }
                path.display().to_string()
            })
            .collect();
        let serving = crate::util::Serve::start(&[]);
        let to = serving.addr.to_string();
        let mut args = vec!["send", "--to", to.as_str()];
        args.extend(files.iter().map(String::as_str));
        let sender = Terminal::run(&args, 30, cols);
        let rows = sender.wait_for_unwrapped("2 saved, 1 failed");
        let table = rows
            .iter()
            .position(|r| r.starts_with("file "))
            .expect("a table");
        let outcome = |end: &str, word: &str| {
            rows[table..]
                .iter()
                .any(|r| r.contains(end) && r.contains(word))
        };
        assert!(
            outcome("12.dat", "saved") && outcome("13.dat", "saved"),
            "{cols}: {rows:#?}"
        );
        assert!(outcome("name.txt", "failed"), "{cols}: {rows:#?}");

        let demo = Terminal::run(&["demo", "--duration", "2s", "--size", "256KiB"], 30, cols);
        demo.wait_for_unwrapped("%");
        demo.wait_for_unwrapped("byte-identical");
    }
}

/// The rate a bar's row shows, in MiB/s.
fn mib_per_second_in(row: &str) -> f64 {
    let words: Vec<&str> = row.split_whitespace().collect();
    words
        .windows(2)
        .find_map(|w| {
            let scale = match w[1] {
                "B/s" => 1.0 / (1024.0 * 1024.0),
                "KiB/s" => 1.0 / 1024.0,
                "MiB/s" => 1.0,
                "GiB/s" => 1024.0,
                _ => return None,
            };
            w[0].parse::<f64>().ok().map(|n| n * scale)
        })
        .unwrap_or_else(|| panic!("no rate in {row:?}"))
}

/// `ftx send --rate 2MiB`: the bar's rate is what goes now, from the first
/// second on (indicatif's estimate weighed the first instants for seconds:
/// a file paced at 4 MiB/s read 6.14 MiB/s after a second).
#[test]
fn a_paced_send_shows_its_rate_from_the_start() {
    let server = crate::util::Serve::start(&[]);
    let src = tempfile::tempdir().unwrap();
    let big = crate::util::write_file(src.path(), "paced.bin", &crate::util::pattern(8 << 20, 2));
    let to = server.addr.to_string();
    let term = Terminal::run(
        &["send", "--rate", "2MiB", "--to", &to, big.to_str().unwrap()],
        24,
        140,
    );
    let row = || {
        term.rows()
            .into_iter()
            .find(|r| r.contains("paced.bin") && r.contains('%'))
    };
    wait_until(|| row().is_some(), "the bar", || term.contents());
    for _ in 0..3 {
        thread::sleep(std::time::Duration::from_millis(700));
        let Some(row) = row() else { break };
        let mib = mib_per_second_in(&row);
        assert!(mib < 2.6, "{mib} MiB/s shown for a 2 MiB/s send: {row}");
    }
}

/// The server's footer says what comes in now: its rate falls to 0 within
/// about a second of the last byte (it looked back 3 s, and said `339 MiB/s`
/// with nothing moving).
#[test]
fn the_footer_rate_falls_to_zero_once_nothing_moves() {
    let (term, addr, _dir) = serve_in_terminal(&[], 24, 140);
    let mut client = RawClient::start_upload(addr, 4_000_000, b"burst.bin");
    let footer = || {
        term.rows()
            .into_iter()
            .find(|r| r.contains(" received ("))
            .unwrap_or_default()
    };
    // Bytes keep coming for a while: the footer has a rate.
    let mut moving = false;
    for _ in 0..20 {
        client.stream.write_all(&vec![3u8; 100_000]).unwrap();
        thread::sleep(std::time::Duration::from_millis(100));
        moving |= footer().contains(" received (") && !footer().contains("(0 B/s)");
    }
    assert!(moving, "no rate while bytes came: {}", term.contents());
    let stopped = std::time::Instant::now();
    wait_until(
        || footer().contains("(0 B/s)"),
        "the rate at 0 once nothing comes",
        || term.contents(),
    );
    assert!(
        stopped.elapsed() < std::time::Duration::from_secs(3),
        "still {} after {:?}",
        footer(),
        stopped.elapsed()
    );
    client.finish(&vec![3u8; 2_000_000]);
}
