//! Links benchmark: ftx against what users pick instead (an rsync daemon, scp, `tar c | nc`) and `cp`, on loopback and over real links: two network namespaces on a veth pair shaped with `tc tbf` to 1 Gbit/s and 100 Mbit/s.
//!
//! Run as root: `cargo bench --bench links` (about five minutes; `-- --quick`
//! for one round; `-- --write FILE` to keep the tables). Needs rsync, sshd
//! and scp (`apt-get install rsync openssh-server`) and netcat-openbsd; a
//! contestant whose program is missing is left out with a note, and without
//! root the shaped links are left out. Contestants alternate within each
//! round; each cell is the median of the rounds. Data is on tmpfs.
//! Everything it starts is stopped, and the namespaces removed, when it ends.

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use ftx::noise::Noise;

const MIB: u64 = 1024 * 1024;

/// The namespace the receiving ends run in, and the addresses of the pair.
const NS: &str = "ftxbench-rx";
const HERE: &str = "10.88.0.1";
const THERE: &str = "10.88.0.2";

/// Ports of the receiving ends.
const FTX_PORT: u16 = 12_500;
const RSYNC_PORT: u16 = 12_501;
const SSH_PORT: u16 = 12_502;
const NC_PORT: u16 = 12_503;

/// No contestant round may take longer than this.
const ROUND_LIMIT: Duration = Duration::from_secs(120);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds = if args.iter().any(|a| a == "--quick") {
        1
    } else {
        3
    };
    let write_to = args
        .iter()
        .position(|a| a == "--write")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from);
    let work = Path::new("/dev/shm").join(format!("ftx-links-{}", std::process::id()));
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work).unwrap();
    let data = Data::make(&work);
    let mut report = String::new();
    let mut say = |text: String| {
        print!("{text}");
        report.push_str(&text);
    };
    say(format!(
        "Produced by `cargo bench --bench links{}` on {} cores, {} rounds, medians; data on tmpfs.\n\n",
        if rounds == 1 { " -- --quick" } else { "" },
        thread::available_parallelism().map_or(0, |n| n.get()),
        rounds
    ));
    let ends = Ends::start(&work, None);
    say(table("Loopback", &ends, &data, rounds, None));
    drop(ends);
    if rustix::process::geteuid().is_root() {
        for (name, rate, big) in [
            ("1 Gbit/s", 1_000_000_000u64, &data.big),
            ("100 Mbit/s", 100_000_000, &data.medium),
        ] {
            let link = Link::shaped(rate);
            let Some(link) = link else {
                say(format!(
                    "## {name}\n\nleft out: the namespaces could not be made\n\n"
                ));
                continue;
            };
            let ends = Ends::start(&work, Some(&link));
            let data = Data {
                big: big.clone(),
                ..data.clone()
            };
            say(table(
                &format!("{name} (veth pair between two namespaces, tbf)"),
                &ends,
                &data,
                rounds,
                Some(rate),
            ));
            drop(ends);
            drop(link);
        }
    } else {
        say("Shaped links left out: they need root (network namespaces).\n".into());
    }
    let _ = fs::remove_dir_all(&work);
    if let Some(path) = write_to {
        fs::write(&path, &report).unwrap();
        eprintln!("written to {}", path.display());
    }
}

/// What is sent: one big file (256 MiB), a medium one for the slow link
/// (64 MiB), and 2,000 files of 4 KiB in a folder.
#[derive(Clone)]
struct Data {
    big: PathBuf,
    medium: PathBuf,
    small: PathBuf,
}

impl Data {
    fn make(work: &Path) -> Data {
        let file = |name: &str, len: u64, seed: u64| {
            let path = work.join(name);
            fs::write(&path, Noise::bytes(seed, len as usize)).unwrap();
            path
        };
        let small = work.join("small");
        fs::create_dir_all(&small).unwrap();
        for n in 0..2000 {
            fs::write(small.join(format!("f{n:04}.bin")), Noise::bytes(n, 4096)).unwrap();
        }
        Data {
            big: file("big.bin", 256 * MIB, 1),
            medium: file("medium.bin", 64 * MIB, 2),
            small,
        }
    }
}

/// A veth pair, one end in a namespace of its own, both ends shaped to a rate.
struct Link;

impl Link {
    fn shaped(rate: u64) -> Option<Link> {
        let run = |args: &str| {
            Command::new("ip")
                .args(args.split_whitespace())
                .status()
                .is_ok_and(|s| s.success())
        };
        // What an earlier run left, if anything.
        for gone in [
            &["netns", "del", NS][..],
            &["link", "del", "ftxbench-tx"][..],
        ] {
            let _ = Command::new("ip").args(gone).stderr(Stdio::null()).status();
        }
        let made = run(&format!("netns add {NS}"))
            && run("link add ftxbench-tx type veth peer name ftxbench-rx")
            && run(&format!("link set ftxbench-rx netns {NS}"))
            && run(&format!("addr add {HERE}/24 dev ftxbench-tx"))
            && run(&format!("-n {NS} addr add {THERE}/24 dev ftxbench-rx"))
            && run("link set ftxbench-tx up")
            && run(&format!("-n {NS} link set ftxbench-rx up"))
            && run(&format!("-n {NS} link set lo up"));
        // tbf's bucket must hold at least one timer tick's worth at the rate.
        let burst = (rate / 8 / 250).max(64 * 1024);
        let tbf = format!("qdisc add dev DEV root tbf rate {rate}bit burst {burst} latency 50ms");
        let shaped = run(&format!(
            "netns exec {NS} tc {}",
            tbf.replace("DEV", "ftxbench-rx")
        )) && Command::new("tc")
            .args(tbf.replace("DEV", "ftxbench-tx").split_whitespace())
            .status()
            .is_ok_and(|s| s.success());
        (made && shaped).then_some(Link)
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", NS]).status();
        let _ = Command::new("ip")
            .args(["link", "del", "ftxbench-tx"])
            .status();
    }
}

/// The receiving ends that run for the whole table (ftx, rsync, sshd), in
/// the namespace when there is a link, and where each writes.
struct Ends {
    host: String,
    inside: bool,
    dst: PathBuf,
    key: PathBuf,
    running: Vec<Child>,
    have: Have,
}

/// Which contestants can run here.
#[derive(Clone, Copy)]
struct Have {
    rsync: bool,
    scp: bool,
    nc: bool,
}

fn installed(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `program args` in the namespace (or here).
fn command(inside: bool, program: &str) -> Command {
    if inside {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", NS, program]);
        c
    } else {
        Command::new(program)
    }
}

impl Ends {
    fn start(work: &Path, link: Option<&Link>) -> Ends {
        let inside = link.is_some();
        let host = if inside { THERE } else { "127.0.0.1" }.to_string();
        let dst = work.join("dst");
        let key = work.join("client_key");
        let have = Have {
            rsync: installed("rsync"),
            scp: installed("sshd") && installed("scp") && installed("ssh-keygen"),
            nc: installed("nc"),
        };
        let mut running = Vec::new();
        let quiet = |c: &mut Command| {
            c.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
        };
        fs::create_dir_all(&dst).unwrap();
        let mut ftx = command(inside, env!("CARGO_BIN_EXE_ftx"));
        ftx.args([
            "serve",
            "--plain",
            "-w",
            "8",
            "-l",
            &format!("{host}:{FTX_PORT}"),
            "-d",
        ])
        .arg(&dst);
        quiet(&mut ftx);
        running.push(ftx.spawn().expect("ftx serve"));
        if have.rsync {
            let conf = work.join("rsyncd.conf");
            fs::write(
                &conf,
                format!(
                    "use chroot = no\nuid = root\ngid = root\n[drop]\npath = {}\nread only = no\n",
                    dst.display()
                ),
            )
            .unwrap();
            let mut rsync = command(inside, "rsync");
            rsync
                .args([
                    "--daemon",
                    "--no-detach",
                    &format!("--port={RSYNC_PORT}"),
                    &format!("--address={host}"),
                ])
                .arg(format!("--config={}", conf.display()));
            quiet(&mut rsync);
            running.push(rsync.spawn().expect("rsync --daemon"));
        }
        if have.scp {
            let host_key = work.join("host_key");
            for k in [&host_key, &key] {
                let _ = fs::remove_file(k);
                let _ = fs::remove_file(k.with_extension("pub"));
                let made = Command::new("ssh-keygen")
                    .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                    .arg(k)
                    .status()
                    .is_ok_and(|s| s.success());
                assert!(made, "ssh-keygen");
            }
            let authorized = work.join("authorized_keys");
            fs::copy(key.with_extension("pub"), &authorized).unwrap();
            let _ = fs::create_dir_all("/run/sshd");
            let mut sshd = command(inside, "/usr/sbin/sshd");
            sshd.args(["-D", "-e", "-p", &SSH_PORT.to_string()])
                .args(["-o", &format!("ListenAddress={host}")])
                .args(["-o", &format!("HostKey={}", host_key.display())])
                .args([
                    "-o",
                    &format!("AuthorizedKeysFile={}", authorized.display()),
                ])
                .args([
                    "-o",
                    "PermitRootLogin=yes",
                    "-o",
                    "StrictModes=no",
                    "-o",
                    "UsePAM=no",
                ]);
            quiet(&mut sshd);
            running.push(sshd.spawn().expect("sshd"));
        }
        let ends = Ends {
            host,
            inside,
            dst,
            key,
            running,
            have,
        };
        for port in [FTX_PORT, RSYNC_PORT, SSH_PORT] {
            ends.wait_for(port);
        }
        ends
    }

    /// Waits (a few seconds at most) until something listens on `port`.
    fn wait_for(&self, port: u16) {
        let addr: SocketAddr = format!("{}:{port}", self.host).parse().unwrap();
        let began = Instant::now();
        while began.elapsed() < Duration::from_secs(5) {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Empties the receiving folder between rounds.
    fn clean(&self) {
        for entry in fs::read_dir(&self.dst).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                let _ = fs::remove_dir_all(&path);
            } else {
                let _ = fs::remove_file(&path);
            }
        }
    }

    /// Runs `what` once to `what`'s end; its time, or `None` if it failed.
    fn run(&self, contestant: Contestant, src: &Path) -> Option<Duration> {
        self.clean();
        let is_dir = src.is_dir();
        let began = Instant::now();
        let ok = match contestant {
            Contestant::Cp => Command::new("cp")
                .arg(if is_dir { "-r" } else { "--" })
                .arg(src)
                .arg(&self.dst)
                .status()
                .is_ok_and(|s| s.success()),
            Contestant::Ftx { verify } => {
                let mut send = Command::new(env!("CARGO_BIN_EXE_ftx"));
                send.args([
                    "send",
                    "--plain",
                    "-t",
                    &format!("{}:{FTX_PORT}", self.host),
                ]);
                if !verify {
                    send.arg("--no-verify");
                }
                send.arg(src)
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            }
            Contestant::Rsync => Command::new("rsync")
                .args(["-a"])
                .arg(src)
                .arg(format!("rsync://{}:{RSYNC_PORT}/drop/", self.host))
                .status()
                .is_ok_and(|s| s.success()),
            Contestant::Scp => Command::new("scp")
                .args([
                    "-q",
                    "-o",
                    "StrictHostKeyChecking=no",
                    "-o",
                    "UserKnownHostsFile=/dev/null",
                ])
                .arg("-i")
                .arg(&self.key)
                .args(["-P", &SSH_PORT.to_string()])
                .args(if is_dir { &["-r"][..] } else { &[][..] })
                .arg(src)
                .arg(format!("root@{}:{}/", self.host, self.dst.display()))
                .status()
                .is_ok_and(|s| s.success()),
            Contestant::TarNc => {
                let (receive, send) = if is_dir {
                    (
                        format!(
                            "nc -l {} {NC_PORT} | tar x -C '{}'",
                            self.host,
                            self.dst.display()
                        ),
                        format!(
                            "tar c -C '{}' . | nc -N {} {NC_PORT}",
                            src.display(),
                            self.host
                        ),
                    )
                } else {
                    (
                        format!(
                            "nc -l {} {NC_PORT} > '{}/out'",
                            self.host,
                            self.dst.display()
                        ),
                        format!("nc -N {} {NC_PORT} < '{}'", self.host, src.display()),
                    )
                };
                let mut rx = command(self.inside, "sh")
                    .args(["-c", &receive])
                    .spawn()
                    .ok()?;
                self.wait_listening(NC_PORT);
                let sent = Command::new("sh")
                    .args(["-c", &send])
                    .status()
                    .is_ok_and(|s| s.success());
                // Done once the receiving end has written everything and exited.
                let received = rx.wait().is_ok_and(|s| s.success());
                sent && received
            }
        };
        let took = began.elapsed();
        (ok && took < ROUND_LIMIT).then_some(took)
    }

    /// Waits until nc listens (without connecting to it: that would be its one connection).
    fn wait_listening(&self, port: u16) {
        let began = Instant::now();
        while began.elapsed() < Duration::from_secs(5) {
            let ss = command(self.inside, "ss")
                .args(["-ltnH", &format!("sport = :{port}")])
                .output();
            if ss.is_ok_and(|o| !o.stdout.is_empty()) {
                return;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Ends {
    fn drop(&mut self) {
        for child in &mut self.running {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = fs::remove_dir_all(&self.dst);
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Contestant {
    Cp,
    Ftx { verify: bool },
    Rsync,
    Scp,
    TarNc,
}

impl Contestant {
    fn name(self) -> &'static str {
        match self {
            Contestant::Cp => "`cp` / `cp -r` (the limit, same machine)",
            Contestant::Ftx { verify: true } => "ftx (verified)",
            Contestant::Ftx { verify: false } => "ftx `--no-verify`",
            Contestant::Rsync => "rsync daemon (`rsync -a`)",
            Contestant::Scp => "scp (sshd)",
            Contestant::TarNc => "`tar c | nc` / `nc`",
        }
    }
}

/// One table: each contestant for the big file and the small files, in
/// alternating rounds; times, rates and the ratio to the link's rate.
fn table(title: &str, ends: &Ends, data: &Data, rounds: usize, link: Option<u64>) -> String {
    eprintln!("links: {title}");
    let mut contestants = vec![
        Contestant::Ftx { verify: true },
        Contestant::Ftx { verify: false },
    ];
    if link.is_none() {
        contestants.insert(0, Contestant::Cp);
    }
    if ends.have.rsync {
        contestants.push(Contestant::Rsync);
    }
    if ends.have.scp {
        contestants.push(Contestant::Scp);
    }
    if ends.have.nc {
        contestants.push(Contestant::TarNc);
    }
    let big_len = fs::metadata(&data.big).unwrap().len();
    let n = contestants.len();
    let mut times: Vec<(Vec<Duration>, Vec<Duration>)> = vec![Default::default(); n];
    for round in 0..rounds {
        // Each round starts with the next contestant: none always runs on a cold or warm machine.
        for k in 0..n {
            let c = (k + round) % n;
            times[c].0.extend(ends.run(contestants[c], &data.big));
            times[c].1.extend(ends.run(contestants[c], &data.small));
        }
    }
    let median = |times: &[Duration]| {
        let mut sorted = times.to_vec();
        sorted.sort();
        sorted.get(sorted.len() / 2).copied()
    };
    let cell = |times: &[Duration], bytes: u64| match median(times) {
        None => "failed".to_string(),
        Some(m) => format!(
            "{:.3} s ({:.0} MiB/s)",
            m.as_secs_f64(),
            bytes as f64 / MIB as f64 / m.as_secs_f64()
        ),
    };
    let mut rows = String::new();
    let mut ftx_big = None;
    for (contestant, (big, small)) in contestants.iter().zip(&times) {
        if *contestant == (Contestant::Ftx { verify: true }) {
            ftx_big = median(big);
        }
        rows.push_str(&format!(
            "| {} | {} | {} |\n",
            contestant.name(),
            cell(big, big_len),
            cell(small, 2000 * 4096)
        ));
    }
    let mut text = format!(
        "## {title}\n\n| contestant | one file of {} MiB | 2,000 files of 4 KiB |\n| --- | ---: | ---: |\n{rows}",
        big_len / MIB
    );
    if let (Some(rate), Some(ftx)) = (link, ftx_big) {
        let ideal = big_len as f64 * 8.0 / rate as f64;
        text.push_str(&format!(
            "\nThe link's rate would move the big file in {ideal:.3} s: ftx verified reached {:.2}x of it.\n",
            ideal / ftx.as_secs_f64()
        ));
    }
    text.push('\n');
    text
}
