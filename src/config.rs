//! Validated settings for every command, built from the command line; the rest of ftx never sees clap.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::address::Address;
use crate::cli::{CheckCommand, DemoArgs, SendArgs, ServeArgs};
use crate::progress::Output;
use crate::protocol::DEFAULT_PORT;

/// Settings for `ftx serve` (and the server inside `ftx demo`).
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: Address,
    pub dir: PathBuf,
    pub workers: usize,
    /// A connection whose whole header has not arrived this long after it connected is dropped.
    pub header_timeout: Duration,
    /// An upload that sends nothing for this long is dropped.
    pub idle_timeout: Duration,
    /// Least bytes per second an upload must bring over each window (`--min-rate`); `None`: no minimum.
    pub min_rate: Option<u64>,
    /// How long each window of the minimum-rate check is.
    pub min_rate_window: Duration,
    /// Largest announced size accepted; `None` accepts any, as the protocol promises.
    pub max_size: Option<u64>,
    /// Most simultaneous connections (waiting or receiving) from one IP address.
    pub per_ip: Option<usize>,
    /// Receive with splice(2) where the system has it (off only to test the portable path).
    pub splice: bool,
    /// Report each protocol step (`--trace`).
    pub trace: bool,
    /// Receive each upload at most this many bytes per second.
    pub rate: Option<u64>,
    pub output: Output,
    /// What the server calls itself in its hello (PROTOCOL.md section 5).
    pub name: String,
    /// Answer hellos on the UDP port.
    pub hello: bool,
}

impl Default for ServeConfig {
    fn default() -> ServeConfig {
        ServeConfig {
            listen: Address {
                host: "0.0.0.0".into(),
                port: DEFAULT_PORT,
            },
            dir: PathBuf::from("."),
            workers: 8,
            header_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(30),
            min_rate: Some(DEFAULT_MIN_RATE),
            min_rate_window: Duration::from_secs(20),
            max_size: None,
            per_ip: None,
            splice: true,
            trace: false,
            rate: None,
            output: Output::Plain,
            name: crate::server::hello::default_name(),
            hello: true,
        }
    }
}

/// The least an upload must bring, per second, by default: far under any real
/// link, far over a client that sends a byte now and then.
pub const DEFAULT_MIN_RATE: u64 = 1024;

impl ServeConfig {
    /// The minimum rate in force: never more than half the server's own `--rate`,
    /// which would otherwise fail the uploads it slows down itself.
    pub fn min_rate(&self) -> Option<u64> {
        let min = self.min_rate?;
        Some(self.rate.map_or(min, |rate| min.min(rate / 2))).filter(|min| *min > 0)
    }

    pub fn from_args(args: ServeArgs) -> anyhow::Result<ServeConfig> {
        Ok(ServeConfig {
            listen: Address::parse(&args.listen, "0.0.0.0").context("--listen")?,
            dir: args.dir,
            workers: usize::from(args.workers),
            header_timeout: args.header_timeout,
            idle_timeout: args.idle_timeout,
            min_rate: Some(args.min_rate).filter(|rate| *rate > 0),
            min_rate_window: args.min_rate_window,
            max_size: args.max_size,
            per_ip: args.per_ip.map(usize::from),
            splice: !portable_io(),
            trace: args.view.trace,
            rate: args.rate,
            output: Output::choose(args.view.plain, args.view.json),
            name: args.name.unwrap_or_else(crate::server::hello::default_name),
            hello: !args.no_hello,
        })
    }
}

/// Settings for `ftx send` (and the clients inside `ftx demo`).
#[derive(Debug, Clone)]
pub struct SendConfig {
    pub to: Address,
    pub jobs: usize,
    pub output: Output,
    pub files: Vec<PathBuf>,
    /// Send with sendfile(2) where the system has it (off only to test the portable path).
    pub sendfile: bool,
    /// Report each protocol step (`--trace`).
    pub trace: bool,
    /// Send each file at most this many bytes per second.
    pub rate: Option<u64>,
    /// The longest wait without progress: to connect, for the reply, for each write, for the close.
    pub timeout: Duration,
    /// Never use batch mode, even with an ftx server (`--classic`).
    pub classic: bool,
    /// Use batch mode from the first file, without learning first that the server speaks it (`--ftx`).
    pub ftx: bool,
    /// Check each file end to end with BLAKE3 in batch mode (off with `--no-verify`).
    pub verify: bool,
}

impl Default for SendConfig {
    fn default() -> SendConfig {
        SendConfig {
            to: Address {
                host: "127.0.0.1".into(),
                port: DEFAULT_PORT,
            },
            jobs: 4,
            output: Output::Plain,
            files: Vec::new(),
            sendfile: true,
            trace: false,
            rate: None,
            timeout: Duration::from_secs(30),
            classic: false,
            ftx: false,
            verify: true,
        }
    }
}

impl SendConfig {
    pub fn from_args(args: SendArgs) -> anyhow::Result<SendConfig> {
        let to = match args.to.strip_prefix('@') {
            // A server by the name its hello gives (no host name has an @).
            Some(named) => {
                let (name, port) = match named.rsplit_once(':') {
                    Some((name, port)) if port.parse::<u16>().is_ok() => {
                        (name, port.parse().unwrap_or(DEFAULT_PORT))
                    }
                    _ => (named, DEFAULT_PORT),
                };
                let addr = crate::client::hello::named(name, port).context("--to")?;
                let host = match addr {
                    // A link-local address is reached through its interface.
                    std::net::SocketAddr::V6(v6) if v6.scope_id() != 0 => {
                        format!("{}%{}", v6.ip(), v6.scope_id())
                    }
                    _ => addr.ip().to_string(),
                };
                Address {
                    host,
                    port: addr.port(),
                }
            }
            None => Address::parse(&args.to, "127.0.0.1").context("--to")?,
        };
        if to.port == 0 {
            bail!("--to: port 0 cannot be connected to");
        }
        Ok(SendConfig {
            to,
            jobs: usize::from(args.jobs),
            output: Output::choose(args.view.plain, args.view.json),
            files: args.files,
            sendfile: !portable_io(),
            trace: args.view.trace,
            rate: args.rate,
            timeout: args.timeout,
            classic: args.classic,
            ftx: args.ftx,
            verify: !args.no_verify,
        })
    }
}

/// `FTX_PORTABLE_IO` set: content moves through plain reads and writes,
/// not splice(2) or sendfile(2), as on systems without them. For testing
/// that path here; not an option, so that it stays out of help and completions.
fn portable_io() -> bool {
    std::env::var_os("FTX_PORTABLE_IO").is_some()
}

impl crate::check::CheckConfig {
    pub fn from_args(command: CheckCommand) -> anyhow::Result<crate::check::CheckConfig> {
        use crate::check::{CheckConfig, Target};
        let exercise = match &command {
            CheckCommand::Server(args) => args.exercise,
            CheckCommand::Client(_) => 2,
        };
        let (target, common, cases) = match command {
            CheckCommand::Server(args) => {
                // Positionals: at most one address, and case ids (S1, s12, ...).
                let is_case = |a: &String| {
                    a.len() > 1
                        && a.starts_with(['S', 's'])
                        && a[1..].bytes().all(|b| b.is_ascii_digit())
                };
                let (cases, addrs): (Vec<String>, Vec<String>) =
                    args.args.into_iter().partition(is_case);
                if addrs.len() > 1 {
                    bail!(
                        "one server address at most: {} were given",
                        addrs.join(", ")
                    );
                }
                let start = (!args.command.is_empty()).then_some(args.command);
                if start.is_some() && args.dir.is_some() {
                    bail!(
                        "--dir is for a server already running: a server started with -- COMMAND \
                         saves into a scratch folder ({{dir}}), and the files are compared there"
                    );
                }
                let addr = addrs.first().map_or("127.0.0.1:12000", String::as_str);
                (
                    Target::Server {
                        addr: Address::parse(addr, "127.0.0.1").context("the server's address")?,
                        dir: args.dir,
                        big: args.big,
                        start,
                    },
                    args.common,
                    cases,
                )
            }
            CheckCommand::Client(args) => (
                Target::Client {
                    command: args.command,
                },
                args.common,
                args.cases,
            ),
        };
        Ok(CheckConfig {
            target,
            timeout: common.timeout,
            junit: common.junit,
            json: common.json,
            strict: common.strict,
            list: common.list,
            cases,
            exercise,
        })
    }
}

/// Settings for `ftx demo`.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    pub clients: usize,
    pub workers: usize,
    /// Typical file size; each file is between half and one and a half times this.
    pub size: u64,
    /// About how long the uploads should take.
    pub duration: Duration,
    pub output: Output,
}

impl DemoConfig {
    pub fn from_args(args: &DemoArgs) -> DemoConfig {
        DemoConfig {
            clients: usize::from(args.clients),
            workers: usize::from(args.workers),
            size: args.size,
            duration: args.duration,
            output: Output::choose(args.plain, false),
        }
    }
}
