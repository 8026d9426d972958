//! Throughput benchmark: ftx side by side with the raw sendfile/splice floor, nc and the classroom Python pair, in alternating rounds.
//!
//! Run: `cargo bench --bench throughput` (add `-- --quick` for a short run,
//! `-- --big` for the 4 GiB and 5 GiB cases). Data lives on tmpfs
//! (/dev/shm). nc is netcat-openbsd (`apt-get install netcat-openbsd`); it is
//! skipped with a note when missing. Prints medians, ratios and memory peaks
//! as Markdown tables, the ones copied into BENCHMARKS.md.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

#[path = "support/delay_proxy.rs"]
mod delay_proxy;

/// Everything the tables say, for `--write`.
static REPORT: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());

/// `println!` that also keeps the line for `--write`.
macro_rules! out {
    ($($arg:tt)*) => {{
        let line = format!($($arg)*);
        println!("{line}");
        let mut report = REPORT.lock().unwrap();
        report.push_str(&line);
        report.push('\n');
    }};
}

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // The raw floor's two ends run as processes of their own, as every other contestant's do.
    if let Some(i) = args.iter().position(|a| a == "--floor-receive") {
        floor_receive(Path::new(&args[i + 1]));
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--floor-send") {
        floor_send(Path::new(&args[i + 1]), args[i + 2].parse().unwrap());
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let big = args.iter().any(|a| a == "--big");
    let rounds = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(if quick { 3 } else { 7 });
    // `-- --only single,small` runs just those parts (single, many, small, lan, view, memory, scaling, layers).
    let only: Option<Vec<String>> = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(|list| list.split(',').map(str::to_string).collect());
    let wanted = |part: &str| only.as_ref().is_none_or(|o| o.iter().any(|p| p == part));
    // Which code is measured: as it is when the run starts (the binary is built by then).
    let provenance = provenance();
    let bench = Bench::new();
    out!("# ftx throughput benchmark ({} rounds, medians)\n", rounds);
    out!(
        "machine: {} cores, {}; data on {}\n",
        cores(),
        kernel(),
        bench.work.display()
    );

    let single_size = if quick { 128 * MIB } else { 512 * MIB };
    let single = bench.file("single.bin", single_size);
    let floor = if wanted("single") || wanted("many") {
        single_stream(&bench, &single, rounds)
    } else {
        Duration::ZERO
    };

    let (count, each) = if quick { (16, 8 * MIB) } else { (16, 32 * MIB) };
    let many = (0..count)
        .map(|i| bench.file(&format!("many-{i:02}.bin"), each))
        .collect::<Vec<_>>();
    if wanted("many") {
        concurrent(&bench, &many, floor, rounds);
    }
    if wanted("small") {
        let small = bench.small_files(2000, 4096);
        small_files(&bench, &small, rounds.min(5));
    }
    if wanted("lan") {
        lan(&bench, rounds.min(5));
    }
    if wanted("view") {
        live_view_cost(&bench, &single, rounds);
    }
    if wanted("memory") {
        memory(&bench, &many, big);
    }
    if wanted("scaling") {
        scaling(&bench, big, quick);
    }
    if wanted("layers") {
        let small = bench.small_files(2000, 4096);
        layers(&bench, &single, &small, rounds.min(5));
    }
    let _ = fs::remove_dir_all(&bench.work);
    if let Some(path) = args
        .iter()
        .position(|a| a == "--write")
        .and_then(|i| args.get(i + 1))
    {
        write_results(Path::new(path), &args, &provenance);
    }
}

/// The commit measured, marked when the working tree differs from it.
fn provenance() -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    let commit = git(&["rev-parse", "--short", "HEAD"]);
    let dirty = !git(&[
        "status",
        "--porcelain",
        "--untracked-files=no",
        "--",
        "src",
        "benches",
        "tests",
        "Cargo.toml",
        "Cargo.lock",
    ])
    .is_empty();
    format!(
        "commit {commit}{}",
        if dirty {
            " (with uncommitted changes)"
        } else {
            ""
        }
    )
}

/// Puts the tables of this run into `path` between its results markers, with
/// the commit, the date and the command that produced them.
fn write_results(path: &Path, args: &[String], provenance: &str) {
    const BEGIN: &str =
        "<!-- results:begin (written by benches/throughput.rs --write; do not edit) -->";
    const END: &str = "<!-- results:end -->";
    let date = Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let command: String = args
        .iter()
        .skip(1)
        .filter(|a| *a != "--bench")
        .map(|a| format!(" {a}"))
        .collect();
    let results = format!(
        "{BEGIN}\n\nMeasured on {date}, {provenance}, by `cargo bench --bench throughput --{command}`.\n\n{}\n{END}",
        REPORT.lock().unwrap()
    );
    let text = fs::read_to_string(path).unwrap_or_default();
    let text = match (text.find(BEGIN), text.find(END)) {
        (Some(a), Some(b)) if a < b => format!("{}{results}{}", &text[..a], &text[b + END.len()..]),
        _ => format!("{text}\n{results}\n"),
    };
    fs::write(path, text).expect("write the results");
    eprintln!("written into {}", path.display());
}

/// The folder with the data, the binaries and the long-running servers.
struct Bench {
    work: PathBuf,
    ftx: PathBuf,
    python: PathBuf,
}

impl Bench {
    fn new() -> Bench {
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let work = base.join(format!("ftx-bench-{}", std::process::id()));
        fs::create_dir_all(work.join("data")).unwrap();
        Bench {
            work,
            ftx: PathBuf::from(env!("CARGO_BIN_EXE_ftx")),
            python: Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python"),
        }
    }

    /// A file of `size` pseudo-random bytes (incompressible, different in every block).
    fn file(&self, name: &str, size: u64) -> PathBuf {
        let path = self.work.join("data").join(name);
        let mut out =
            std::io::BufWriter::with_capacity(4 * MIB as usize, File::create(&path).unwrap());
        let mut noise = ftx::noise::Noise::new(size ^ name.len() as u64);
        let mut block = vec![0u8; MIB as usize];
        let mut left = size;
        while left > 0 {
            noise.fill(&mut block);
            let n = left.min(MIB) as usize;
            out.write_all(&block[..n]).unwrap();
            left -= n as u64;
        }
        path
    }

    fn small_files(&self, count: usize, size: usize) -> Vec<PathBuf> {
        let dir = self.work.join("data/small");
        fs::create_dir_all(&dir).unwrap();
        (0..count)
            .map(|i| {
                let path = dir.join(format!("s{i:04}.bin"));
                fs::write(&path, vec![(i % 251) as u8; size]).unwrap();
                path
            })
            .collect()
    }

    /// A fresh drop folder.
    fn drop_dir(&self, name: &str) -> PathBuf {
        let dir = self.work.join(name);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// `ftx serve --plain` on a free port; killed on drop.
    fn ftx_server(&self, drop: &Path, workers: usize) -> Server {
        let (child, first) = spawn_reading_first_line(
            Command::new(&self.ftx)
                .args([
                    "serve",
                    "--plain",
                    "-l",
                    "127.0.0.1:0",
                    "-w",
                    &workers.to_string(),
                    "-d",
                ])
                .arg(drop)
                .stdout(Stdio::null()),
            Pipe::Stderr,
        );
        let addr = first
            .split_whitespace()
            .find_map(|w| w.trim_end_matches(',').parse().ok())
            .expect("server address");
        Server { child, addr }
    }

    /// `ftx send --plain -t ADDR -j JOBS FILES...`, ready to run.
    fn send_command(&self, addr: SocketAddr, files: &[PathBuf], jobs: usize) -> Command {
        let mut cmd = Command::new(&self.ftx);
        cmd.args([
            "send",
            "--plain",
            "-t",
            &addr.to_string(),
            "-j",
            &jobs.to_string(),
        ])
        .args(files);
        cmd
    }

    /// `ftx send --plain` of `files` with `jobs`; returns how long it took.
    fn ftx_send(&self, addr: SocketAddr, files: &[PathBuf], jobs: usize) -> Duration {
        self.ftx_send_with(addr, files, jobs, &[])
    }

    /// The same, with more arguments (`--classic`).
    fn ftx_send_with(
        &self,
        addr: SocketAddr,
        files: &[PathBuf],
        jobs: usize,
        extra: &[&str],
    ) -> Duration {
        let start = Instant::now();
        let out = self
            .send_command(addr, files, jobs)
            .args(extra)
            .stdout(Stdio::null())
            .output()
            .unwrap();
        let took = start.elapsed();
        if !out.status.success() {
            let said = String::from_utf8_lossy(&out.stderr);
            let tail: Vec<&str> = said
                .lines()
                .filter(|l| !l.starts_with("sending ") && !l.starts_with("saved "))
                .take(12)
                .collect();
            panic!("ftx send {extra:?} failed:\n{}", tail.join("\n"));
        }
        took
    }
}

struct Server {
    child: Child,
    addr: SocketAddr,
}

/// Which output of a child tells where it listens.
enum Pipe {
    Stdout,
    Stderr,
}

/// Starts `cmd` with that output piped and returns the child and the first line it
/// prints; the rest is drained in the background so the child never blocks on a full pipe.
fn spawn_reading_first_line(cmd: &mut Command, pipe: Pipe) -> (Child, String) {
    match pipe {
        Pipe::Stdout => cmd.stdout(Stdio::piped()),
        Pipe::Stderr => cmd.stderr(Stdio::piped()),
    };
    let mut child = cmd.spawn().unwrap();
    let output: Box<dyn Read + Send> = match pipe {
        Pipe::Stdout => Box::new(child.stdout.take().unwrap()),
        Pipe::Stderr => Box::new(child.stderr.take().unwrap()),
    };
    let mut lines = BufReader::new(output);
    let mut first = String::new();
    lines.read_line(&mut first).unwrap();
    thread::spawn(move || std::io::copy(&mut lines, &mut std::io::sink()));
    (child, first)
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The raw floor's receiving end: accept one connection, splice(2) socket -> pipe -> file until it closes.
fn floor_receive(dst: &Path) {
    use rustix::pipe::{splice, SpliceFlags};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    println!("{}", listener.local_addr().unwrap().port());
    std::io::stdout().flush().unwrap();
    let (sock, _) = listener.accept().unwrap();
    let file = File::create(dst).unwrap();
    let (r, w) = rustix::pipe::pipe().unwrap();
    let _ = rustix::pipe::fcntl_setpipe_size(&w, MIB as usize);
    loop {
        let n = splice(&sock, None, &w, None, MIB as usize, SpliceFlags::MOVE).unwrap();
        if n == 0 {
            break;
        }
        let mut left = n;
        while left > 0 {
            left -= splice(&r, None, &file, None, left, SpliceFlags::MOVE).unwrap();
        }
    }
}

/// The raw floor's sending end: sendfile(2) the whole file into the socket, close.
fn floor_send(src: &Path, port: u16) {
    let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let file = File::open(src).unwrap();
    let size = file.metadata().unwrap().len();
    let mut offset = 0u64;
    while offset < size {
        let want = (size - offset).min(8 * MIB) as usize;
        rustix::fs::sendfile(sock.as_fd(), &file, Some(&mut offset), want).unwrap();
    }
}

/// The raw floor: no protocol, two processes of this benchmark's own binary, timed
/// from the sender's start until the receiver has written the last byte and exited.
fn floor_process(src: &Path, dst: &Path) -> Duration {
    let me = std::env::current_exe().unwrap();
    let (mut receiver, port) = spawn_reading_first_line(
        Command::new(&me).arg("--floor-receive").arg(dst),
        Pipe::Stdout,
    );
    let start = Instant::now();
    let sent = Command::new(&me)
        .arg("--floor-send")
        .arg(src)
        .arg(port.trim())
        .status()
        .unwrap();
    let received = receiver.wait().unwrap();
    let took = start.elapsed();
    assert!(sent.success() && received.success());
    took
}

/// `nc -l > out` fed by `nc -N < file`.
fn netcat(src: &Path, dst: &Path) -> Option<Duration> {
    let port = TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let mut listener = Command::new("nc")
        .args(["-l", "127.0.0.1", &port.to_string()])
        .stdout(File::create(dst).ok()?)
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    thread::sleep(Duration::from_millis(150));
    let start = Instant::now();
    let sent = Command::new("nc")
        .args(["-N", "127.0.0.1", &port.to_string()])
        .stdin(File::open(src).ok()?)
        .stderr(Stdio::null())
        .status()
        .ok()?;
    let received = listener.wait().ok()?;
    let took = start.elapsed();
    (sent.success() && received.success()).then_some(took)
}

/// A local `cp` of the file on the same file system: the physical reference.
fn copy(src: &Path, dst: &Path) -> Duration {
    let start = Instant::now();
    let status = Command::new("cp").arg(src).arg(dst).status().unwrap();
    let took = start.elapsed();
    assert!(status.success());
    took
}

/// `tar c DIR | nc -N` into `nc -l | tar x`: many small files over one connection, the reference for them.
fn tar_nc(src: &Path, dst: &Path) -> Option<Duration> {
    tar_nc_delayed(src, dst, None)
}

/// [`tar_nc`], through a [`delay_proxy::DelayProxy`] when `delay` is given.
fn tar_nc_delayed(src: &Path, dst: &Path, delay: Option<Duration>) -> Option<Duration> {
    let port = TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let mut receiver = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "nc -l 127.0.0.1 {port} | tar x -C '{}'",
            dst.display()
        ))
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    thread::sleep(Duration::from_millis(150));
    let proxy = delay.map(|d| delay_proxy::DelayProxy::start(([127, 0, 0, 1], port).into(), d));
    let to = proxy.as_ref().map_or(port, |p| p.addr.port());
    let start = Instant::now();
    let sent = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "tar c -C '{}' . | nc -N 127.0.0.1 {to}",
            src.display()
        ))
        .stderr(Stdio::null())
        .status()
        .ok()?;
    let received = receiver.wait().ok()?;
    let took = start.elapsed();
    (sent.success() && received.success()).then_some(took)
}

fn have_nc() -> bool {
    Command::new("nc")
        .arg("-h")
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .is_ok()
}

/// The classroom Python server, running in `dir`.
fn python_server(bench: &Bench, dir: &Path) -> (Child, SocketAddr) {
    let (child, line) = spawn_reading_first_line(
        Command::new("python3")
            .arg("-u")
            .arg(bench.python.join("classroom_server.py"))
            .args(["127.0.0.1", "0"])
            .current_dir(dir),
        Pipe::Stdout,
    );
    let port: u16 = line.trim().rsplit(' ').next().unwrap().parse().unwrap();
    (child, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// The classroom Python client sending `src` to a Python server saving into `dir`, until the file is complete there.
fn python_pair(bench: &Bench, src: &Path, addr: SocketAddr, dir: &Path) -> Duration {
    let name = src.file_name().unwrap().to_str().unwrap();
    let size = fs::metadata(src).unwrap().len();
    let saved = dir.join(format!("{name}.temp"));
    let start = Instant::now();
    let status = Command::new("python3")
        .arg(bench.python.join("classroom_client.py"))
        .args([name, "127.0.0.1", &addr.port().to_string()])
        .current_dir(src.parent().unwrap())
        .status()
        .unwrap();
    assert!(status.success());
    while fs::metadata(&saved).map(|m| m.len()).unwrap_or(0) < size {
        thread::sleep(Duration::from_millis(1));
    }
    let took = start.elapsed();
    thread::sleep(Duration::from_millis(20));
    let _ = fs::remove_file(&saved);
    took
}

/// Runs `contestants` `rounds` times each, the order rotating from round to
/// round so that none always runs first; `run(which)` times one (`None`: it
/// could not run here). The times of each contestant, in its order.
fn alternate(
    rounds: usize,
    contestants: usize,
    mut run: impl FnMut(usize) -> Option<Duration>,
) -> Vec<Vec<Duration>> {
    let mut times = vec![Vec::new(); contestants];
    for round in 0..rounds {
        for k in 0..contestants {
            let which = (k + round) % contestants;
            if let Some(took) = run(which) {
                times[which].push(took);
            }
        }
    }
    times
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn rate(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / MIB as f64 / d.as_secs_f64()
}

/// The portable OS layer's ftx (`--features portable`), built for this run
/// beside the benchmark's own, in `target/portable`.
fn portable_ftx() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("portable");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("building the portable layer's ftx (cargo build --release --features portable)");
    let built = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--locked",
            "--features",
            "portable",
            "--bin",
            "ftx",
        ])
        .arg("--target-dir")
        .arg(&target)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .unwrap();
    assert!(built.success(), "the portable build failed");
    target.join("release/ftx")
}

/// The same transfers with the Linux OS layer and the portable one (both
/// ends), beside `cp`: what each fast path (splice, sendfile, O_TMPFILE,
/// openat) is worth.
fn layers(bench: &Bench, single: &Path, small: &[PathBuf], rounds: usize) {
    let portable = Bench {
        work: bench.work.clone(),
        ftx: portable_ftx(),
        python: bench.python.clone(),
    };
    let ends = [bench, &portable];
    let drops = [
        bench.drop_dir("drop-linux"),
        bench.drop_dir("drop-portable"),
    ];
    let servers = [
        bench.ftx_server(&drops[0], 8),
        portable.ftx_server(&drops[1], 8),
    ];
    let size = fs::metadata(single).unwrap().len();
    let out = bench.work.join("out.bin");
    // Rows: (layer, extra arguments); the last is cp.
    let ways: [(usize, &[&str]); 4] =
        [(0, &[]), (1, &[]), (0, &["--classic"]), (1, &["--classic"])];
    let times = alternate(rounds, ways.len() + 1, |which| {
        let took = match ways.get(which) {
            Some(&(layer, extra)) => {
                let took = ends[layer].ftx_send_with(
                    servers[layer].addr,
                    &[single.to_path_buf()],
                    1,
                    extra,
                );
                clear(&drops[layer]);
                took
            }
            None => copy(single, &out),
        };
        let _ = fs::remove_file(&out);
        Some(took)
    });
    out!(
        "## The portable OS layer: one {} MiB file
",
        size / MIB
    );
    contest_table(
        &[
            "Linux layer: `ftx send` (batch mode, verified)",
            "portable layer: `ftx send` (batch mode, verified)",
            "Linux layer: `ftx send --classic` (sendfile, splice)",
            "portable layer: `ftx send --classic` (a buffer)",
            "`cp` (same file system)",
        ],
        &times,
        0,
        "MiB/s",
        |m| rate(size, m),
    );
    out!(
        "\nThe portable layer's throughput as a share of the Linux layer's: verified {:.2}x, classic {:.2}x.\n",
        of_times(&times, 1, 0),
        of_times(&times, 3, 2)
    );

    let source = small[0].parent().unwrap().to_path_buf();
    let copy_to = bench.drop_dir("drop-copy");
    let times = alternate(rounds, 3, |which| {
        let took = match which {
            0 | 1 => {
                let took =
                    ends[which].ftx_send(servers[which].addr, std::slice::from_ref(&source), 8);
                clear(&drops[which]);
                took
            }
            _ => {
                let start = Instant::now();
                let status = Command::new("cp")
                    .arg("-r")
                    .arg(&source)
                    .arg(copy_to.join("copy"))
                    .status()
                    .unwrap();
                assert!(status.success());
                let took = start.elapsed();
                clear(&copy_to);
                took
            }
        };
        Some(took)
    });
    let n = small.len() as f64;
    out!(
        "## The portable OS layer: {} files of 4 KiB, `ftx send DIR`\n",
        small.len()
    );
    contest_table(
        &[
            "Linux layer",
            "portable layer",
            "`cp -r` (same file system)",
        ],
        &times,
        0,
        "files/s",
        |m| n / m.as_secs_f64(),
    );
    out!(
        "\nThe portable layer's throughput as a share of the Linux layer's: {:.2}x.\n",
        of_times(&times, 1, 0)
    );
}

/// Row `a`'s throughput as a share of row `b`'s.
fn of_times(times: &[Vec<Duration>], a: usize, b: usize) -> f64 {
    median(times[b].clone()).as_secs_f64() / median(times[a].clone()).as_secs_f64()
}

/// One large file: ftx against the floor, nc and the Python pair. Returns the floor's median time.
fn single_stream(bench: &Bench, file: &Path, rounds: usize) -> Duration {
    let size = fs::metadata(file).unwrap().len();
    let drop = bench.drop_dir("drop-single");
    let server = bench.ftx_server(&drop, 8);
    let py_dir = bench.drop_dir("drop-python");
    let (mut py, py_addr) = python_server(bench, &py_dir);
    let nc = have_nc();
    let out = bench.work.join("out.bin");
    let names = [
        "raw floor (sendfile/splice)",
        "ftx send --classic -> ftx serve (one classic upload)",
        "nc -N -> nc -l",
        "Python client -> Python server",
        "cp (same file system)",
        "ftx send (told by the hello: batch mode, BLAKE3 verified)",
        "ftx send --no-verify (batch mode)",
    ];
    let times = alternate(rounds, names.len(), |which| {
        let took = match which {
            0 => Some(floor_process(file, &out)),
            1 | 5 | 6 => {
                let extra: &[&str] = match which {
                    1 => &["--classic"],
                    5 => &[],
                    _ => &["--no-verify"],
                };
                let took = bench.ftx_send_with(server.addr, &[file.to_path_buf()], 1, extra);
                let _ = fs::remove_file(drop.join(file.file_name().unwrap()));
                Some(took)
            }
            2 if nc => netcat(file, &out),
            2 => None,
            3 => Some(python_pair(bench, file, py_addr, &py_dir)),
            _ => Some(copy(file, &out)),
        };
        let _ = fs::remove_file(&out);
        took
    });
    let _ = py.kill();
    let _ = py.wait();
    out!(
        "## One {} MiB file, until it is complete on the receiver's disk\n",
        size / MIB
    );
    contest_table(&names, &times, 1, "MiB/s", |m| rate(size, m));
    out!("\n(\"ftx is\" = its throughput divided by that row's; 1.00x is the row itself.)\n");
    let cp = median(times[4].clone()).as_secs_f64();
    let of_cp = |i: usize| cp / median(times[i].clone()).as_secs_f64();
    out!(
        "Throughput as a share of `cp`'s in this run: classic {:.2}x; batch mode verified (the default) {:.2}x (goal 0.6x); `--no-verify` {:.2}x (goal 0.9x).\n",
        of_cp(1),
        of_cp(5),
        of_cp(6)
    );
    median(times[0].clone())
}

/// 16 files at once with -j 16, against the single-stream floor.
fn concurrent(bench: &Bench, files: &[PathBuf], floor_single: Duration, rounds: usize) {
    let total: u64 = files.iter().map(|f| fs::metadata(f).unwrap().len()).sum();
    let single_size = fs::metadata(bench.work.join("data/single.bin"))
        .unwrap()
        .len();
    let drop = bench.drop_dir("drop-many");
    let server = bench.ftx_server(&drop, 16);
    // By default the files after the first go in batches, verified; what that costs, beside the rest.
    let ways: [(&str, &[&str]); 3] = [
        ("default (batches, BLAKE3 verified)", &[]),
        ("`--no-verify`", &["--no-verify"]),
        ("`--classic` (one connection per file)", &["--classic"]),
    ];
    let times = alternate(rounds, ways.len(), |which| {
        let took = bench.ftx_send_with(server.addr, files, files.len(), ways[which].1);
        clear(&drop);
        Some(took)
    });
    let floor_rate = rate(single_size, floor_single);
    out!(
        "## {} files of {} MiB in one `ftx send -j {}`\n",
        files.len(),
        total / files.len() as u64 / MIB,
        files.len()
    );
    out!("| way | median | aggregate | ratio to the single-stream raw floor ({floor_rate:.0} MiB/s) |");
    out!("| --- | ---: | ---: | ---: |");
    for ((name, _), t) in ways.iter().zip(&times) {
        let m = median(t.clone());
        out!(
            "| {name} | {:.3} s | {:.0} MiB/s | {:.2}x |",
            m.as_secs_f64(),
            rate(total, m),
            rate(total, m) / floor_rate
        );
    }
    out!("");
}

/// 2000 small files: ftx send -j 8 against one Python client looping over them (same ftx server).
fn small_files(bench: &Bench, files: &[PathBuf], rounds: usize) {
    let drop = bench.drop_dir("drop-small");
    let server = bench.ftx_server(&drop, 8);
    let list = bench.work.join("small-list.txt");
    fs::write(
        &list,
        files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .unwrap();
    let loop_client = format!(
        r#"
import os, socket, sys
for path in open({list:?}).read().split("\n"):
    size = os.path.getsize(path)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.connect(("127.0.0.1", {port}))
    s.send(size.to_bytes(8, "big") + os.path.basename(path).encode())
    if s.recv(1024) != b"go ahead":
        raise Exception("Bad server response - was not go ahead!")
    with open(path, "rb") as f:
        while True:
            data = f.read(1024)
            if not data:
                break
            s.sendall(data)
    s.close()
"#,
        list = list.display().to_string(),
        port = server.addr.port()
    );
    let source = files[0].parent().unwrap();
    let tar_dir = bench.drop_dir("drop-tar");
    let nc = have_nc();
    let times = alternate(rounds, 6, |which| {
        let took = match which {
            0 => Some(bench.ftx_send(server.addr, files, 8)),
            4 => Some(bench.ftx_send_with(server.addr, files, 8, &["--classic"])),
            5 => Some(bench.ftx_send(server.addr, &[source.to_path_buf()], 8)),
            1 => {
                let start = Instant::now();
                let status = Command::new("python3")
                    .args(["-c", &loop_client])
                    .status()
                    .unwrap();
                assert!(status.success());
                // The last file may still be in flight on the server.
                while visible_entries(&drop) < files.len() {
                    thread::sleep(Duration::from_millis(1));
                }
                Some(start.elapsed())
            }
            2 if nc => tar_nc(source, &tar_dir),
            2 => None,
            _ => {
                let start = Instant::now();
                let status = Command::new("cp")
                    .arg("-r")
                    .arg(source)
                    .arg(tar_dir.join("copy"))
                    .status()
                    .unwrap();
                assert!(status.success());
                Some(start.elapsed())
            }
        };
        clear(&drop);
        clear(&tar_dir);
        took
    });
    let n = files.len() as f64;
    let names = [
        "`ftx send -j 8 FILES` -> `ftx serve` (batches, the first file too: told by the hello)",
        "Python client in a loop -> `ftx serve`",
        "`tar c | nc -N` -> `nc -l | tar x`",
        "`cp -r` (same file system)",
        "`ftx send --classic -j 8 FILES` (one connection per file)",
        "`ftx send DIR` (the folder, one batch)",
    ];
    let ftx = median(times[0].clone());
    out!("## {} files of 4 KiB\n", files.len());
    contest_table(&names, &times, 0, "files/s", |m| n / m.as_secs_f64());
    if !times[2].is_empty() {
        let tar = median(times[2].clone()).as_secs_f64();
        out!(
            "\nThroughput as a share of `tar c | nc`'s in this run: `ftx send FILES` {:.2}x, `ftx send DIR` {:.2}x (goal 0.9x).",
            tar / ftx.as_secs_f64(),
            tar / median(times[5].clone()).as_secs_f64()
        );
    }
    out!("");
}

/// Each way's delay of the LAN-like case.
const LAN_DELAY: Duration = Duration::from_millis(2);

/// 200 small files through a loopback proxy that delays each direction by
/// [`LAN_DELAY`]: where a round trip per file costs what it costs on a LAN.
fn lan(bench: &Bench, rounds: usize) {
    let dir = bench.work.join("data/lan");
    fs::create_dir_all(&dir).unwrap();
    let files: Vec<PathBuf> = (0..200)
        .map(|i| {
            let path = dir.join(format!("l{i:03}.bin"));
            fs::write(&path, vec![(i % 251) as u8; 4096]).unwrap();
            path
        })
        .collect();
    let drop = bench.drop_dir("drop-lan");
    let server = bench.ftx_server(&drop, 8);
    let proxy = delay_proxy::DelayProxy::start(server.addr, LAN_DELAY);
    let tar_dir = bench.drop_dir("drop-lan-tar");
    let nc = have_nc();
    let names = [
        "`ftx send -j 8 FILES` (batches, the first file too: told by the hello)",
        "`ftx send --classic -j 8 FILES` (one connection per file)",
        "`ftx send DIR` (the folder, one batch)",
        "`tar c | nc -N` -> `nc -l | tar x`",
    ];
    // The proxy's clock per contestant: from the first SYN to the last byte back.
    let mut spans = vec![Vec::new(); names.len()];
    let times = alternate(rounds, names.len(), |which| {
        proxy.reset();
        let took = match which {
            0 => Some(bench.ftx_send(proxy.addr, &files, 8)),
            1 => Some(bench.ftx_send_with(proxy.addr, &files, 8, &["--classic"])),
            2 => Some(bench.ftx_send(proxy.addr, std::slice::from_ref(&dir), 8)),
            _ if nc => tar_nc_delayed(&dir, &tar_dir, Some(LAN_DELAY)),
            _ => None,
        };
        if let Some(span) = proxy.span() {
            spans[which].push(span);
        }
        clear(&drop);
        clear(&tar_dir);
        took
    });
    out!(
        "## {} files of 4 KiB over a LAN-like link ({} ms each way, a delaying loopback proxy)\n",
        files.len(),
        LAN_DELAY.as_millis()
    );
    let n = files.len() as f64;
    contest_table(&names, &times, 0, "files/s", |m| n / m.as_secs_f64());
    out!("");
    let round_trip = (2 * LAN_DELAY).as_secs_f64();
    out!("On the wire (the proxy's clock, from the first SYN to the last byte back to the sender):\n");
    out!("| contestant | median | round trips |");
    out!("| --- | ---: | ---: |");
    for (name, span) in names.iter().zip(&spans).take(3) {
        if !span.is_empty() {
            let m = median(span.clone()).as_secs_f64();
            out!("| {name} | {m:.3} s | {:.1} |", m / round_trip);
        }
    }
    out!("");
    // One small file alone: what the hello saves, in round trips.
    let one = &files[..1];
    let names = [
        "`ftx send ONE` (told by the hello: one batch, verified)",
        "`ftx send --classic ONE`",
    ];
    let mut spans = vec![Vec::new(); names.len()];
    let times = alternate(rounds, names.len(), |which| {
        proxy.reset();
        let took = match which {
            0 => bench.ftx_send(proxy.addr, one, 1),
            _ => bench.ftx_send_with(proxy.addr, one, 1, &["--classic"]),
        };
        if let Some(span) = proxy.span() {
            spans[which].push(span);
        }
        clear(&drop);
        Some(took)
    });
    out!(
        "## One file of 4 KiB over the same link (a round trip is {} ms)\n",
        2 * LAN_DELAY.as_millis()
    );
    out!("| contestant | whole run | round trips | on the wire (first SYN to the receipt) | round trips |");
    out!("| --- | ---: | ---: | ---: | ---: |");
    for ((name, t), span) in names.iter().zip(&times).zip(&spans) {
        let whole = median(t.clone()).as_secs_f64();
        let wire = median(span.clone()).as_secs_f64();
        out!(
            "| {name} | {whole:.3} s | {:.1} | {wire:.3} s | {:.1} |",
            whole / round_trip,
            wire / round_trip
        );
    }
    out!("\n(The whole run includes starting the process and reading the file; on the wire counts only what the link carries.)\n");
}

/// A table of contestants' medians, with `per` (MiB/s, files/s) and how
/// row `ftx` compares with each; a contestant that did not run is said so.
fn contest_table(
    names: &[&str],
    times: &[Vec<Duration>],
    ftx: usize,
    unit: &str,
    per: impl Fn(Duration) -> f64,
) {
    out!("| contestant | median | {unit} | ftx is |");
    out!("| --- | ---: | ---: | ---: |");
    let ftx = median(times[ftx].clone());
    for (name, t) in names.iter().zip(times) {
        if t.is_empty() {
            out!("| {name} | skipped (apt-get install netcat-openbsd) | | |");
            continue;
        }
        let m = median(t.clone());
        out!(
            "| {name} | {:.3} s | {:.0} | {:.2}x |",
            m.as_secs_f64(),
            per(m),
            m.as_secs_f64() / ftx.as_secs_f64()
        );
    }
}

/// Entries of a folder that are not hidden.
fn visible_entries(dir: &Path) -> usize {
    fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            !e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.')
        })
        .count()
}

/// ftx with bars drawn in a pseudo-terminal (both ends) against `--plain`.
fn live_view_cost(bench: &Bench, file: &Path, rounds: usize) {
    use portable_pty::{native_pty_system, CommandBuilder, PtySize};
    let size = fs::metadata(file).unwrap().len();
    let pty_size = PtySize {
        rows: 40,
        cols: 160,
        pixel_width: 0,
        pixel_height: 0,
    };
    // Runs `ftx args` in a pseudo-terminal, draining what it draws; returns the child and everything it printed so far.
    let spawn_in_pty = |args: &[String]| {
        let pair = native_pty_system().openpty(pty_size).unwrap();
        let mut cmd = CommandBuilder::new(&bench.ftx);
        cmd.args(args);
        cmd.env("TERM", "xterm-256color");
        let child = pair.slave.spawn_command(cmd).unwrap();
        drop(pair.slave);
        let mut reader = pair.master.try_clone_reader().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
        thread::spawn(move || {
            let _master = pair.master;
            let mut buf = [0u8; 8192];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        (child, rx)
    };
    let drop_bars = bench.drop_dir("drop-bars");
    let (mut bars_server, rx) = spawn_in_pty(&[
        "serve".into(),
        "-l".into(),
        "127.0.0.1:0".into(),
        "-d".into(),
        drop_bars.display().to_string(),
    ]);
    let mut seen = Vec::new();
    let bars_addr: SocketAddr = loop {
        seen.extend(
            rx.recv_timeout(Duration::from_secs(10))
                .expect("server in pty starts"),
        );
        let text = String::from_utf8_lossy(&seen);
        if let Some(addr) = text
            .split_whitespace()
            .find_map(|w| w.trim_end_matches(',').parse().ok())
        {
            break addr;
        }
    };
    thread::spawn(move || for _ in rx {});
    let drop_plain = bench.drop_dir("drop-plain");
    let plain_server = bench.ftx_server(&drop_plain, 8);

    let (mut bars, mut plain) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        for k in 0..2 {
            if (k + round) % 2 == 0 {
                let args = vec![
                    "send".into(),
                    "-t".into(),
                    bars_addr.to_string(),
                    file.display().to_string(),
                ];
                let start = Instant::now();
                let (mut child, rx) = spawn_in_pty(&args);
                let status = child.wait().unwrap();
                bars.push(start.elapsed());
                assert!(status.success());
                drop(rx);
                let _ = fs::remove_file(drop_bars.join(file.file_name().unwrap()));
            } else {
                plain.push(bench.ftx_send(plain_server.addr, &[file.to_path_buf()], 1));
                let _ = fs::remove_file(drop_plain.join(file.file_name().unwrap()));
            }
        }
    }
    let _ = bars_server.kill();
    let (b, p) = (median(bars), median(plain));
    out!(
        "## Live view cost: {} MiB, bars in a terminal (sender and server) vs `--plain`\n",
        size / MIB
    );
    out!("| mode | median | MiB/s |");
    out!("| --- | ---: | ---: |");
    out!("| bars | {:.3} s | {:.0} |", b.as_secs_f64(), rate(size, b));
    out!(
        "| --plain | {:.3} s | {:.0} |",
        p.as_secs_f64(),
        rate(size, p)
    );
    out!(
        "| bars / plain throughput | {:.3} | |\n",
        p.as_secs_f64() / b.as_secs_f64()
    );
}

/// Peak resident memory (VmHWM) of a process, in KiB.
fn peak_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Runs `ftx send` and samples its peak memory until it exits.
fn send_peak(bench: &Bench, addr: SocketAddr, files: &[PathBuf]) -> u64 {
    let mut child = bench
        .send_command(addr, files, files.len())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut peak = 0;
    loop {
        if let Some(kib) = peak_kib(child.id()) {
            peak = peak.max(kib);
        }
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success());
            return peak;
        }
        thread::sleep(Duration::from_millis(2));
    }
}

fn memory(bench: &Bench, many: &[PathBuf], big: bool) {
    out!("## Memory (peak resident set, VmHWM)\n");
    out!("| case | ftx serve | ftx send |");
    out!("| --- | ---: | ---: |");
    let drop = bench.drop_dir("drop-mem");
    let server = bench.ftx_server(&drop, 16);
    let idle = peak_kib(server.child.id()).unwrap_or(0);
    out!(
        "| server idle, 16 workers | {:.1} MiB | |",
        idle as f64 / 1024.0
    );
    let sender = send_peak(bench, server.addr, many);
    let srv = peak_kib(server.child.id()).unwrap_or(0);
    out!(
        "| {} uploads in flight | {:.1} MiB | {:.1} MiB |",
        many.len(),
        srv as f64 / 1024.0,
        sender as f64 / 1024.0
    );
    clear(&drop);
    if big {
        // On disk, not tmpfs: 5 GiB twice would take 10 GiB of memory.
        let dir = std::env::temp_dir().join(format!("ftx-bench-big-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let big_bench = Bench {
            work: dir.clone(),
            ftx: bench.ftx.clone(),
            python: bench.python.clone(),
        };
        fs::create_dir_all(dir.join("data")).unwrap();
        let file = big_bench.file("five-gib.bin", 5 * GIB);
        let big_drop = big_bench.drop_dir("drop");
        let server = big_bench.ftx_server(&big_drop, 8);
        let sender = send_peak(&big_bench, server.addr, &[file]);
        let srv = peak_kib(server.child.id()).unwrap_or(0);
        out!(
            "| one 5 GiB file | {:.1} MiB | {:.1} MiB |",
            srv as f64 / 1024.0,
            sender as f64 / 1024.0
        );
        std::mem::drop(server);
        let _ = fs::remove_dir_all(&dir);
    }
    out!("");
}

/// Empties a drop folder. The folder itself stays: a server holds it open.
fn clear(dir: &Path) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if fs::remove_file(&path).is_err() {
            let _ = fs::remove_dir_all(&path);
        }
    }
}

/// How time grows with file size and with the number of concurrent clients.
fn scaling(bench: &Bench, big: bool, quick: bool) {
    let drop = bench.drop_dir("drop-scale");
    let server = bench.ftx_server(&drop, 64);
    let mut sizes = vec![MIB, 16 * MIB, 256 * MIB];
    if !quick {
        sizes.push(GIB);
    }
    if big {
        sizes.push(4 * GIB);
    }
    out!("## Scaling with file size (one file, 3 runs each, median)\n");
    out!("| size | median | MiB/s | s per GiB |");
    out!("| --- | ---: | ---: | ---: |");
    for size in sizes {
        let file = bench.file("scale.bin", size);
        let times: Vec<_> = (0..3)
            .map(|_| {
                let t = bench.ftx_send(server.addr, std::slice::from_ref(&file), 1);
                let _ = fs::remove_file(drop.join("scale.bin"));
                t
            })
            .collect();
        let m = median(times);
        out!(
            "| {} MiB | {:.4} s | {:.0} | {:.3} |",
            size / MIB,
            m.as_secs_f64(),
            rate(size, m),
            m.as_secs_f64() / (size as f64 / GIB as f64)
        );
        let _ = fs::remove_file(file);
    }
    let total = if quick { 128 * MIB } else { 512 * MIB };
    out!(
        "\n## Scaling with concurrent clients ({} MiB in all, split evenly; server -w 64)\n",
        total / MIB
    );
    out!("| clients | median | aggregate MiB/s |");
    out!("| ---: | ---: | ---: |");
    for clients in [1usize, 2, 4, 8, 16, 32, 64] {
        let files: Vec<_> = (0..clients)
            .map(|i| bench.file(&format!("c{i:02}.bin"), total / clients as u64))
            .collect();
        let times: Vec<_> = (0..3)
            .map(|_| {
                let t = bench.ftx_send(server.addr, &files, clients);
                clear(&drop);
                t
            })
            .collect();
        let m = median(times);
        out!(
            "| {clients} | {:.3} s | {:.0} |",
            m.as_secs_f64(),
            rate(total, m)
        );
        for f in files {
            let _ = fs::remove_file(f);
        }
    }
    out!("");
}

fn cores() -> usize {
    thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn kernel() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| format!("Linux {}", s.trim()))
        .unwrap_or_else(|_| "unknown OS".into())
}
