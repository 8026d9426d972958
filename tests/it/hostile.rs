//! Misbehaving clients played over raw sockets: hostile names, lying sizes, stalls, caps, and what the server does about them.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::util::{
    address_in, entries, ftx_bin, wait_until, RawClient, Running, Serve, PATIENCE, PORTABLE,
};

/// Uploads `content` under `name` and waits until the server logged the outcome.
fn upload(server: &Serve, name: &[u8], content: &[u8]) {
    RawClient::start_upload(server.addr, content.len() as u64, name).finish(content);
}

/// What the server replies to a header, up to its close.
fn reply_to(server: &Serve, size: u64, name: &[u8]) -> String {
    let mut client = RawClient::connect(server.addr);
    client.send_header(size, name);
    let mut reply = Vec::new();
    let _ = client.stream.read_to_end(&mut reply);
    String::from_utf8_lossy(&reply).into_owned()
}

fn saved_count(server: &Serve) -> usize {
    server.log().matches("\nsaved ").count()
}

#[test]
fn hostile_names_land_inside_the_drop_folder_under_safe_names() {
    let parent = tempfile::tempdir().unwrap();
    let drop = parent.path().join("drop");
    let outside = tempfile::tempdir().unwrap();
    let absolute = format!("{}/abs.txt", outside.path().display());
    let long = format!("{}.pdf", "l".repeat(300));
    let cases: Vec<(&[u8], String)> = vec![
        (b"../up.txt", "up.txt".into()),
        (b"../../../../../../tmp/deep.txt", "deep.txt".into()),
        (absolute.as_bytes(), "abs.txt".into()),
        (b"a/../../mid.txt", "mid.txt".into()),
        (b"..\\win.txt", "win.txt".into()),
        (b"C:\\Windows\\drive.txt", "drive.txt".into()),
        (b".", "unnamed".into()),
        (b"..", "unnamed (1)".into()),
        (b"nul\0byte.txt", "nul_byte.txt".into()),
        (b"bad\xff\xfeutf8.txt", "bad__utf8.txt".into()),
        (b"CON", "_CON".into()),
        (b".bashrc", "bashrc".into()),
        (long.as_bytes(), format!("{}.pdf", "l".repeat(243))),
    ];
    let server = Serve::start_at(parent, &drop, &[]);
    for (name, _) in &cases {
        upload(&server, name, b"data");
    }
    wait_until(
        || saved_count(&server) == cases.len(),
        "every upload saved",
        || server.log(),
    );

    let mut expected: Vec<String> = cases.iter().map(|(_, safe)| safe.clone()).collect();
    expected.sort();
    assert_eq!(entries(&drop), expected);
    assert_eq!(
        entries(drop.parent().unwrap()),
        ["drop"],
        "nothing beside the drop folder"
    );
    assert!(
        entries(outside.path()).is_empty(),
        "nothing at the absolute path"
    );
    assert!(!Path::new("/tmp/deep.txt").exists());
}

#[test]
fn planted_links_are_never_followed_or_replaced() {
    let server = Serve::start(&[]);
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    std::os::unix::fs::symlink(&victim, server.drop_dir().join("notes.txt")).unwrap();
    std::os::unix::fs::symlink(outside.path(), server.drop_dir().join("sub")).unwrap();

    upload(&server, b"notes.txt", b"mine");
    upload(&server, b"sub/notes.txt", b"also mine");
    wait_until(|| saved_count(&server) == 2, "two uploads", || server.log());

    assert!(!victim.exists(), "wrote through the planted link");
    assert!(entries(outside.path()).is_empty());
    assert_eq!(
        std::fs::read(server.drop_dir().join("notes (1).txt")).unwrap(),
        b"mine"
    );
    assert_eq!(
        std::fs::read(server.drop_dir().join("notes (2).txt")).unwrap(),
        b"also mine"
    );
    assert!(
        server.drop_dir().join("notes.txt").is_symlink(),
        "the link itself is left alone"
    );
}

#[test]
fn client_text_never_reaches_the_log_unescaped() {
    let server = Serve::start(&[]);
    let evil: &[u8] = b"\x1b[2J\x1b]0;title\x07\x9b31m\r\x08bell\x07.txt";
    upload(&server, evil, b"x");
    upload(&server, "\u{202e}txt.exe\u{9b}".as_bytes(), b"y");
    let log = server.wait_for_log("bell");
    wait_until(|| saved_count(&server) == 2, "two uploads", || server.log());
    let log = server.log() + &log;
    for bad in ['\x1b', '\x07', '\x08', '\r', '\u{9b}', '\u{202e}'] {
        assert!(!log.contains(bad), "{bad:?} reached the log:\n{log:?}");
    }
    assert!(
        log.contains("\\x1b[2J\\x1b]0;title\\x07\\x9b31m\\x0d\\x08bell\\x07.txt"),
        "{log}"
    );
    assert!(log.contains("\\u{202e}txt.exe\\u{9b}"), "{log}");
}

#[test]
fn max_size_refuses_before_go_ahead_and_creates_nothing() {
    let server = Serve::start(&["--max-size", "1KiB"]);
    let reply = reply_to(&server, 1025, b"big.bin");
    assert_eq!(
        reply,
        "refused: too large: 1.00 KiB announced, the limit is 1.00 KiB"
    );
    server.wait_for_log("refused \"big.bin\": too large");
    assert!(entries(server.drop_dir()).is_empty());

    upload(&server, b"fits.bin", &[1u8; 1024]);
    wait_until(
        || entries(server.drop_dir()) == ["fits.bin"],
        "fits.bin",
        || server.log(),
    );
}

#[test]
fn sizes_that_cannot_fit_on_disk_are_refused() {
    let server = Serve::start(&[]);
    let reply = reply_to(&server, 1 << 63, b"huge.iso");
    assert!(
        reply.starts_with("refused: not enough space: 8.00 EiB announced, "),
        "{reply}"
    );
    assert!(entries(server.drop_dir()).is_empty());
    // Beyond 4 GiB is fine when it fits: the protocol has no size limit.
    let mut big = RawClient::connect(server.addr);
    big.send_header(5 << 30, b"five-gib.bin");
    let reply = big.reply_within(PATIENCE).unwrap_or_default();
    if fs_free(server.drop_dir()) > (6 << 30) {
        assert_eq!(reply, b"go ahead");
    } else {
        assert_eq!(reply, b"refused:", "this disk has less than 6 GiB free");
    }
}

fn fs_free(path: &Path) -> u64 {
    let out = std::process::Command::new("df")
        .args(["-B1", "--output=avail"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn bad_headers_are_dropped_with_a_reason() {
    let server = Serve::start(&["--header-timeout", "300ms"]);

    let mut stalled = RawClient::connect(server.addr);
    stalled.stream.write_all(b"\0\0\0\0").unwrap();
    let mut rest = Vec::new();
    assert_eq!(
        stalled.stream.read_to_end(&mut rest).unwrap(),
        0,
        "the server closes without a reply"
    );
    server.wait_for_log("no complete header within 0.30s");

    let long = vec![b'n'; 5000];
    let reply = reply_to(&server, 1, &long);
    assert_eq!(reply, "", "no go ahead for an overlong name");
    server.wait_for_log("name longer than 4096 bytes");

    let silent = RawClient::connect(server.addr);
    drop(silent);
    server.wait_for_log("client closed without sending a header");
    assert!(entries(server.drop_dir()).is_empty());
}

#[test]
fn stalled_uploads_time_out_and_free_their_worker() {
    let server = Serve::start(&["--idle-timeout", "400ms", "--workers", "1"]);
    let mut stalled = RawClient::start_upload(server.addr, 100, b"stalled.bin");
    stalled.stream.write_all(&[1u8; 10]).unwrap();

    // The only worker is held by the stalled client; this one waits, then gets its turn.
    upload(&server, b"next.txt", b"served");
    let log = server.wait_for_log("saved    ");
    assert!(
        log.contains("stalled.bin  client sent nothing for 0.40s (after 10 B of 100 B)"),
        "{log}"
    );
    assert_eq!(entries(server.drop_dir()), ["next.txt"]);
}

#[test]
fn per_ip_cap_turns_away_extra_connections_at_once() {
    let server = Serve::start(&["--per-ip", "1"]);
    let first = RawClient::start_upload(server.addr, 3, b"one.txt");
    let reply = reply_to(&server, 3, b"two.txt");
    assert_eq!(reply, "refused: too many connections from 127.0.0.1");
    server.wait_for_log("refused: too many connections from this address");
    first.finish(b"abc");
    wait_until(
        || entries(server.drop_dir()) == ["one.txt"],
        "one.txt",
        || server.log(),
    );
    upload(&server, b"three.txt", b"ok!");
    wait_until(
        || entries(server.drop_dir()).len() == 2,
        "three.txt",
        || server.log(),
    );
}

#[test]
fn write_errors_fail_the_upload_and_the_server_goes_on() {
    write_errors_fail_the_upload("");
}

#[test]
fn write_errors_on_the_portable_path_too() {
    write_errors_fail_the_upload("export FTX_PORTABLE_IO=1");
}

fn write_errors_fail_the_upload(env: &str) {
    // A 64 KiB file-size limit makes the disk refuse the write, as a full disk would.
    let dir = tempfile::tempdir().unwrap();
    let drop = dir.path().to_path_buf();
    let server = Serve::start_limited(dir, &drop, &format!("ulimit -f 64\n{env}"), &[]);
    let mut big = RawClient::start_upload(server.addr, 200_000, b"too-big.bin");
    let _ = big.stream.write_all(&[7u8; 200_000]);
    server.wait_for_log("too-big.bin  writing to the drop folder: File too large");
    assert!(entries(&drop).is_empty(), "{:?}", entries(&drop));

    upload(&server, b"small.txt", b"fine");
    wait_until(
        || entries(&drop) == ["small.txt"],
        "small.txt",
        || server.log(),
    );
}

#[test]
#[ignore = "needs root to mount a 1 MiB tmpfs; .ci/run runs it with --ignored"]
fn a_full_disk_fails_the_upload_and_leaves_nothing() {
    let mount = tempfile::tempdir().unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(mount.path())
        .status()
        .is_ok_and(|s| s.success());
    assert!(mounted, "cannot mount a tmpfs: run this test as root");
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(mount.path());
    let drop = mount.path().join("drop");
    std::fs::create_dir(&drop).unwrap();
    let server = Serve::start_at(tempfile::tempdir().unwrap(), &drop, &[]);

    // Fits when announced; then something else fills the disk.
    let mut upload_client = RawClient::start_upload(server.addr, 700_000, b"filling.bin");
    std::fs::write(mount.path().join("hog"), vec![0u8; 600_000]).unwrap();
    let _ = upload_client.stream.write_all(&[3u8; 700_000]);
    server.wait_for_log("filling.bin  writing to the drop folder: No space left on device");
    assert!(entries(&drop).is_empty(), "{:?}", entries(&drop));

    std::fs::remove_file(mount.path().join("hog")).unwrap();
    upload(&server, b"after.txt", b"room again");
    wait_until(
        || entries(&drop) == ["after.txt"],
        "after.txt",
        || server.log(),
    );
}

/// Ctrl-C and SIGTERM both cancel uploads in progress, remove their partial files and exit 0.
#[test]
fn ctrl_c_and_sigterm_stop_the_server_and_remove_partial_files() {
    for signal in ["INT", "TERM"] {
        let mut server = Serve::start(&[]);
        let mut slow = RawClient::start_upload(server.addr, 1_000_000, b"slow.bin");
        slow.stream.write_all(&[1u8; 10_000]).unwrap();
        server.wait_for_log("receiving");
        server.signal(signal);
        assert_eq!(server.wait_exit(), Some(0), "{signal}");
        assert!(
            entries(server.drop_dir()).is_empty(),
            "{signal}: {:?}",
            entries(server.drop_dir())
        );
        let log = server.log();
        assert!(
            log.contains("slow.bin  cancelled: the server is stopping"),
            "{log}"
        );
        assert!(log.contains("stopped after"), "{log}");
        // The client is reset, not closed cleanly: it must not take this for a success.
        let mut rest = Vec::new();
        let read = slow.stream.read_to_end(&mut rest);
        assert!(
            read.is_err() || rest.starts_with(b"ftx/1 {\"status\":\"failed\""),
            "{signal}: {read:?} {rest:?}"
        );
    }
}

/// When stopping is stuck (here: the log pipe is full and nobody reads it), a
/// second Ctrl-C still quits at once, with exit code 130, removing partial files.
#[test]
fn a_second_ctrl_c_quits_at_once_even_when_stopping_is_stuck() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Running(
        Command::new(ftx_bin())
            .args(["serve", "--plain", "--listen", "127.0.0.1:0", "--dir"])
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut log = BufReader::new(server.0.stderr.take().unwrap());
    let mut first = String::new();
    log.read_line(&mut first).unwrap();
    let addr = address_in(&first);
    // From here on nobody reads the log, and its pipe holds one page: twenty
    // uploads' lines (over 20 KiB with these names) cannot all fit.
    shrink_pipe(&log);
    let long = "n".repeat(1000);
    for i in 0..20 {
        RawClient::start_upload(addr, 1, format!("{long}{i}").as_bytes()).finish(b"x");
    }
    let mut slow = RawClient::start_upload(addr, 1_000_000, b"slow.bin");
    slow.stream.write_all(&[1u8; 5000]).unwrap();
    server.signal("INT");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        server.0.try_wait().unwrap().is_none(),
        "stopping was not stuck: the test proves nothing"
    );
    server.signal("INT");
    assert_eq!(server.wait_exit(), Some(130));
    let left: Vec<String> = entries(dir.path())
        .into_iter()
        .filter(|n| !n.starts_with("nnnnnnnnnn"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Makes the pipe behind `log` as small as the system allows (one page).
fn shrink_pipe(log: &BufReader<std::process::ChildStderr>) {
    use std::os::fd::AsRawFd;
    // SAFETY: F_SETPIPE_SZ takes an int argument and touches no memory of ours.
    let rc = unsafe { libc::fcntl(log.get_ref().as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
    assert!(rc > 0, "F_SETPIPE_SZ failed");
}

#[test]
fn running_out_of_descriptors_does_not_end_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let drop = dir.path().to_path_buf();
    let server = Serve::start_limited(dir, &drop, "ulimit -n 24", &["--workers", "16"]);
    // Hold connections open until accept() runs out of descriptors.
    let mut held = Vec::new();
    for _ in 0..40 {
        if let Ok(stream) = std::net::TcpStream::connect(server.addr) {
            held.push(stream);
        }
    }
    server.wait_for_log("accept failed: Too many open files");
    std::mem::drop(held);
    upload(&server, b"after.txt", b"still serving");
    wait_until(
        || entries(&drop) == ["after.txt"],
        "after.txt",
        || server.log(),
    );
    let log = server.log();
    assert!(
        log.matches("accept failed").count() < 5,
        "one line per burst, not one per retry:\n{log}"
    );
}

/// The Linux layer's partial files have no name: nothing shows, and a
/// `kill -9` leaves nothing. The portable layer's are hidden named files: a
/// `kill -9` leaves one, and the next server on the folder removes it.
#[test]
fn even_kill_9_leaves_no_partial_file() {
    let mut server = Serve::start(&[]);
    let mut slow = RawClient::start_upload(server.addr, 1_000_000, b"killed.bin");
    slow.stream.write_all(&[1u8; 50_000]).unwrap();
    server.wait_for_log("receiving");
    let hidden = |names: Vec<String>| match PORTABLE {
        true => names.len() == 1 && names[0].starts_with(".ftx-partial-"),
        false => names.is_empty(),
    };
    let during = entries(server.drop_dir());
    assert!(
        hidden(during.clone()),
        "a partial file is visible: {during:?}"
    );
    server.signal("KILL");
    assert_eq!(server.wait_exit(), None, "killed by a signal");
    let after = entries(server.drop_dir());
    assert!(hidden(after.clone()), "{after:?}");
    let again = Serve::start_at(tempfile::tempdir().unwrap(), server.drop_dir(), &[]);
    let left = entries(server.drop_dir());
    assert!(left.is_empty(), "left at start: {left:?}");
    drop(again);
}

/// A client that connects and sends half a header (or nothing) holds no worker:
/// with one worker, the next client gets its `go ahead` at once.
#[test]
fn clients_without_a_complete_header_hold_no_worker() {
    let server = Serve::start(&["--workers", "1"]);
    let mut slow = RawClient::connect(server.addr);
    slow.stream.write_all(b"\0\0\0").unwrap();
    let _silent = RawClient::connect(server.addr);
    server.wait_for_log("ftx serve");
    let mut normal = RawClient::connect(server.addr);
    normal.send_header(4, b"on-time.txt");
    assert_eq!(
        normal.reply_within(Duration::from_secs(2)).as_deref(),
        Some(&b"go ahead"[..]),
        "a half-sent header held the only worker"
    );
    normal.finish(b"done");
    wait_until(
        || entries(server.drop_dir()) == ["on-time.txt"],
        "on-time.txt",
        || server.log(),
    );
}

/// A client that trickles content (a byte every 100 ms) is dropped once a
/// window brings less than --min-rate, with a reason, and frees its worker.
#[test]
fn a_trickling_client_is_dropped_after_the_min_rate_window() {
    let server = Serve::start(&[
        "--workers",
        "1",
        "--min-rate",
        "1KiB",
        "--min-rate-window",
        "500ms",
    ]);
    let mut trickler = RawClient::start_upload(server.addr, 1000, b"trickle.bin");
    let mut queued = RawClient::connect(server.addr);
    queued.send_header(3, b"next.txt");
    let mut dropped = false;
    for _ in 0..50 {
        if trickler.stream.write_all(b"x").is_err() {
            dropped = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(dropped, "the trickling client was never dropped");
    let log = server.wait_for_log("trickle.bin  client too slow: ");
    assert!(
        log.contains("under the minimum of 1.00 KiB/s (--min-rate)"),
        "{log}"
    );
    assert_eq!(
        queued.reply_within(PATIENCE).as_deref(),
        Some(&b"go ahead"[..])
    );
    queued.finish(b"yes");
    wait_until(
        || entries(server.drop_dir()) == ["next.txt"],
        "next.txt",
        || server.log(),
    );
}

/// The listen backlog in force is the system's cap, not the 128 std asks for.
#[test]
fn the_listen_backlog_is_the_system_limit() {
    let server = Serve::start(&[]);
    let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let out = Command::new("ss")
        .args(["-ltnH", &format!("sport = :{}", server.addr.port())])
        .output()
        .expect("ss (iproute2) shows listening sockets");
    let text = String::from_utf8_lossy(&out.stdout);
    // State Recv-Q Send-Q ...: for a listener, Send-Q is the backlog.
    let backlog: u32 = text
        .split_whitespace()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no backlog in {text:?}"));
    assert_eq!(backlog, somaxconn);
    assert!(backlog > 128);
}

/// The usual ways students write the header wrong get a refusal that says which.
#[test]
fn text_headers_and_little_endian_sizes_are_named_as_such() {
    let server = Serve::start(&[]);
    let mut text = RawClient::connect(server.addr);
    text.stream.write_all(b"1234,notes.txt").unwrap();
    let mut reply = String::new();
    let _ = text.stream.read_to_string(&mut reply);
    assert!(reply.starts_with("refused: not enough space: "), "{reply}");
    assert!(
        reply.contains("the first 8 bytes are text (\"1234,not\")"),
        "{reply}"
    );

    let mut little = RawClient::connect(server.addr);
    let mut header = 1234u64.to_le_bytes().to_vec();
    header.extend_from_slice(b"notes.txt");
    little.stream.write_all(&header).unwrap();
    let mut reply = String::new();
    let _ = little.stream.read_to_string(&mut reply);
    assert!(
        reply.contains("little-endian size (1234 bytes the other way round)"),
        "{reply}"
    );
    server.wait_for_log("little-endian");
    assert!(entries(server.drop_dir()).is_empty());
}

/// A drop folder this user cannot write to stops the server at once (root
/// bypasses permissions, so the folder is a read-only mount).
#[test]
#[ignore = "needs root to mount a read-only tmpfs; .ci/run runs it with --ignored"]
fn a_drop_folder_that_cannot_be_written_stops_the_server_at_start() {
    let mount = tempfile::tempdir().unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs"])
        .arg(mount.path())
        .status()
        .is_ok_and(|s| s.success());
    assert!(mounted, "cannot mount a tmpfs: run this test as root");
    let out = assert_cmd::Command::new(ftx_bin())
        .args(["serve", "--plain", "-l", "127.0.0.1:0", "-d"])
        .arg(mount.path())
        .timeout(PATIENCE)
        .assert()
        .code(1);
    let _ = Command::new("umount").arg(mount.path()).status();
    let said = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(said.contains("cannot write into the drop folder"), "{said}");
    assert!(said.contains("Read-only file system"), "{said}");
    assert!(said.contains("choose another folder with -d"), "{said}");
    assert!(!said.contains("listening on"), "{said}");
}

/// When a name and all 9,999 numbered names are taken, an upload of that
/// name is refused before `go ahead`, not failed after its whole content.
#[test]
fn an_upload_whose_names_are_all_taken_is_refused_before_go_ahead() {
    let server = Serve::start(&[]);
    std::fs::write(server.drop_dir().join("same.txt"), b"").unwrap();
    for n in 1..=9999 {
        std::fs::write(server.drop_dir().join(format!("same ({n}).txt")), b"").unwrap();
    }
    let reply = reply_to(&server, 5, b"same.txt");
    assert_eq!(
        reply,
        "refused: same.txt and 9999 numbered names are all taken in the drop folder",
        "{}",
        server.log()
    );
    classic_other_name_saved(&server);
    // In a batch a small file's name is found as it is kept: that file
    // fails, the batch goes on.
    let src = tempfile::tempdir().unwrap();
    let same = src.path().join("same.txt");
    let fine = src.path().join("fine.txt");
    std::fs::write(&same, b"taken").unwrap();
    std::fs::write(&fine, b"kept").unwrap();
    let out = crate::util::send_to(&server.addr.to_string())
        .args([&same, &fine])
        .assert()
        .code(1);
    let said = crate::util::stderr_of(&out);
    assert!(
        said.contains("same.txt and 9999 numbered names are all taken"),
        "{said}"
    );
    assert!(said.contains("1 saved, 1 failed"), "{said}");
    assert_eq!(
        std::fs::read(server.drop_dir().join("fine.txt")).unwrap(),
        b"kept"
    );
}

/// Another name is still saved.
fn classic_other_name_saved(server: &Serve) {
    upload(server, b"other.txt", b"fine");
    wait_until(
        || server.drop_dir().join("other.txt").exists(),
        "other.txt",
        || server.log(),
    );
}
