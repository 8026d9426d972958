//! The command line, as clap sees it. Only definitions live here; `config` validates them.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::term::ColorChoice;

const SERVE_HELP: &str = "\
Examples:
  ftx serve                          receive into this folder on port 12000
  ftx serve -l 9000 -d inbox -w 4    port 9000, into ./inbox, 4 at a time
  ftx serve --plain 2> log.txt       one line per upload, into a log (lines go to stderr)

Exit codes:
  0  stopped cleanly (Ctrl-C or SIGTERM)
  1  could not start (address in use, folder not writable, ...)
  2  the command line is wrong";

const SEND_HELP: &str = "\
Examples:
  ftx send notes.pdf slides.pdf      to 127.0.0.1:12000
  ftx send -t 192.168.1.20 *.jpg     to another machine, port 12000
  ftx send -t [::1]:9000 -j 8 data/* eight files at a time
  ftx send photos/                   a folder (to an ftx server); cut off,
                                     the same command continues it

Exit codes:
  0  every file was delivered
  1  at least one file failed (each is named above the summary)
  2  the command line is wrong";

const DEMO_HELP: &str = "\
Starts a server on a free loopback port, saving into a temporary folder,
creates the files, uploads them all at once at a pace that keeps the bars on
screen for about --duration, checks that every file arrived byte-identical,
prints a summary and removes everything it made.

Examples:
  ftx demo                           6 clients, 3 workers: 3 wait their turn
  ftx demo -c 12 -w 4 -s 20MiB       a bigger class
  ftx demo --plain 2> demo.log       plain lines, into a log (lines go to stderr)

Exit codes:
  0  every file arrived byte-identical
  1  something failed (it is named above the summary)
  2  the command line is wrong";

const COMPLETIONS_HELP: &str = "\
Examples:
  ftx completions bash > ~/.local/share/bash-completion/completions/ftx
  ftx completions zsh > ~/.zfunc/_ftx
  ftx completions fish > ~/.config/fish/completions/ftx.fish";

const CHECK_SERVER_HELP: &str = "\
Examples:
  ftx check server -- python3 server.py {port}   starts it for each case, on a free port
  ftx check server                           the server running on 127.0.0.1:12000
  ftx check server 9000 --dir ~/exercise     compare the files it saves in ~/exercise
  ftx check server 9000 S11 S12              only those cases
  ftx check server --exercise 1 --dir .      the first exercise: one client at a time
  ftx check server --junit report.xml        also as JUnit XML, for autograders

Exit codes:
  0  every case passed (skipped ones aside)
  1  at least one case failed
  2  the command line is wrong";

const CHECK_CLIENT_HELP: &str = "\
Examples:
  ftx check client -- python3 client.py {file} {host} {port}
  ftx check client C1 C5 -- python3 client.py {file} {host} {port}

Each case runs the command once, in a scratch folder that holds the case's
file, with {file} and {name} replaced by its name, {host} and {port} by the
instrumented server's address.

Exit codes:
  0  every case passed
  1  at least one case failed
  2  the command line is wrong";

const MAN_HELP: &str = "\
Examples:
  ftx man | man -l -                 read the overview
  ftx man send | man -l -            read the page of ftx send
  ftx man --dir ~/.local/share/man/man1   install every page (then: man ftx-serve)";

const AFTER_HELP: &str = "\
Exit codes:
  0  every upload succeeded (serve: stopped cleanly)
  1  at least one upload failed, or ftx could not run
  2  the command line is wrong

ftx speaks the classroom protocol: an 8-byte big-endian size and the file
name in one message, the reply \"go ahead\", the raw bytes, close. It works
with the Python client and server written in networking classes.";

/// Send files over TCP with the classroom protocol.
///
/// `ftx serve` receives uploads into a drop folder with a fixed pool of workers
/// and draws one live progress bar per client. `ftx send` uploads files
/// concurrently. Either end works with the classroom Python programs.
#[derive(Debug, Parser)]
#[command(name = "ftx", version, long_version = crate::sys::LONG_VERSION, about, long_about, after_help = AFTER_HELP)]
#[command(propagate_version = true, arg_required_else_help = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// When to use colours: auto (on a terminal, unless `NO_COLOR` is set), always, never
    #[arg(long, global = true, value_name = "WHEN", default_value = "auto", value_parser = parse_color)]
    pub color: ColorChoice,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Receive uploads into a drop folder
    #[command(after_help = SERVE_HELP)]
    Serve(ServeArgs),
    /// Upload files to an ftx or classroom server
    #[command(after_help = SEND_HELP)]
    Send(SendArgs),
    /// Show a server and several clients at work, in one command
    #[command(after_help = DEMO_HELP)]
    Demo(DemoArgs),
    /// List the ftx servers on the local networks (those that answer a hello)
    Find(FindArgs),
    /// Grade a student's server or client against the classroom protocol, case by case
    #[command(subcommand)]
    Check(CheckCommand),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish)
    #[command(after_help = COMPLETIONS_HELP)]
    Completions {
        /// The shell to complete for
        shell: clap_complete::Shell,
    },
    /// Print a man page (roff), e.g. `ftx man send > ftx-send.1`, or write them all with --dir
    #[command(after_help = MAN_HELP)]
    Man {
        /// The page: serve, send, find, check, demo, completions or man [default: ftx, the overview]
        #[arg(value_name = "COMMAND")]
        page: Option<String>,

        /// Write every page (ftx.1, ftx-serve.1, ftx-send.1, ...) into this folder instead
        #[arg(long, value_name = "DIR", conflicts_with = "page")]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum CheckCommand {
    /// Check a running server: connects to it, plays each case, compares the saved files (--dir)
    #[command(after_help = CHECK_SERVER_HELP)]
    Server(CheckServerArgs),
    /// Check a client: runs it once per case against an instrumented server on a free port
    #[command(after_help = CHECK_CLIENT_HELP)]
    Client(CheckClientArgs),
}

#[derive(Debug, Args)]
pub struct CheckServerArgs {
    /// The server (PORT, HOST, HOST:PORT or [IPv6]:PORT; default 127.0.0.1:12000), then the cases to run (S1, S2, ...; default all)
    #[arg(value_name = "ADDR|CASE")]
    pub args: Vec<String>,

    /// The folder the server saves into (on this machine), to compare the saved files
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// Size of the large file (S5)
    #[arg(long, value_name = "SIZE", default_value = "64MiB", value_parser = parse_size)]
    pub big: u64,

    /// The server's command line, to start it afresh for each case in a scratch folder; {port} and {dir} are filled in
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,

    /// The exercise graded: 1 serves one client at a time (S11 and S12 not run), 2 several at once
    #[arg(long, value_name = "N", default_value_t = 2,
          value_parser = clap::value_parser!(u8).range(1..=2))]
    pub exercise: u8,

    #[command(flatten)]
    pub common: CheckArgs,
}

#[derive(Debug, Args)]
pub struct CheckClientArgs {
    #[command(flatten)]
    pub common: CheckArgs,

    /// Cases to run (C1, C2, ...; see --list) [default: all]
    #[arg(value_name = "CASE")]
    pub cases: Vec<String>,

    /// The client's command line; {file}, {name}, {host} and {port} are filled in
    #[arg(last = true, value_name = "COMMAND", required_unless_present = "list")]
    pub command: Vec<String>,
}

/// What both checks take.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The longest wait for any one thing: a reply, a close, the client to end
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Also write the results as JUnit XML, for autograders
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,

    /// Print one JSON object per case on stdout instead of lines
    #[arg(long)]
    pub json: bool,

    /// Add the cases the protocol leaves open (a server: a header in two writes; a client: an error exit on a bad reply)
    #[arg(long)]
    pub strict: bool,

    /// List the cases and exit
    #[arg(long)]
    pub list: bool,
}

#[derive(Debug, Args)]
pub struct FindArgs {
    /// The port the servers listen on
    #[arg(short, long, value_name = "PORT", default_value_t = crate::protocol::DEFAULT_PORT)]
    pub port: u16,

    /// How long to listen for answers
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub wait: Duration,

    /// Print one JSON object per server on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How many clients upload at once
    #[arg(short, long, value_name = "N", default_value_t = 6,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub clients: u16,

    /// How many workers the server has (fewer than clients shows queueing)
    #[arg(short, long, value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub workers: u16,

    /// Typical file size (each file is between half and one and a half times this)
    #[arg(short, long, value_name = "SIZE", default_value = "4MiB", value_parser = parse_size)]
    pub size: u64,

    /// About how long the uploads should take, so there is time to watch
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,

    /// Print one line per event instead of live progress bars
    #[arg(long)]
    pub plain: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where to listen: PORT, HOST, HOST:PORT or [IPv6]:PORT
    #[arg(short, long, value_name = "ADDR", default_value = "0.0.0.0:12000")]
    pub listen: String,

    /// The drop folder; created if missing
    #[arg(short, long, value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,

    /// How many uploads are received at once; more clients wait their turn
    #[arg(short, long, value_name = "N", default_value_t = 8,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub workers: u16,

    /// Drop a connection whose whole header has not arrived this long after it connected
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub header_timeout: Duration,

    /// End an upload that sends nothing for this long (e.g. 500ms, 30s, 2m)
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// End an upload that brings less than this per second over a --min-rate-window (0: no minimum)
    #[arg(long, value_name = "RATE", default_value = "1KiB", value_parser = parse_size)]
    pub min_rate: u64,

    /// The stretch of time over which --min-rate is measured, again and again
    #[arg(long, value_name = "DURATION", default_value = "20s", value_parser = parse_duration)]
    pub min_rate_window: Duration,

    /// Refuse uploads announced larger than this (e.g. 500MiB, 2GiB, 1000000) [default: no limit]
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_size: Option<u64>,

    /// At most this many connections at once from one IP address [default: no limit]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub per_ip: Option<u16>,

    /// The name this server tells senders that ask (the hello on the UDP port) [default: the host name]
    #[arg(long, value_name = "NAME", conflicts_with = "no_hello")]
    pub name: Option<String>,

    /// Do not answer hellos on the UDP port: senders learn that this is ftx from their first file
    #[arg(long)]
    pub no_hello: bool,

    #[command(flatten)]
    pub view: ViewArgs,

    /// Receive each upload no faster than this many bytes per second (e.g. 200KiB), to watch it
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub rate: Option<u64>,
}

/// How progress is shown; the same for `serve` and `send`.
#[derive(Debug, Args)]
pub struct ViewArgs {
    /// Print one line per event instead of live progress bars
    #[arg(long)]
    pub plain: bool,

    /// Print newline-delimited JSON events on stdout (schema in README) instead of bars
    #[arg(long, conflicts_with = "plain")]
    pub json: bool,

    /// Show each connection's protocol exchange as it happens (header bytes, go ahead, close)
    #[arg(long)]
    pub trace: bool,
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// The server: PORT, HOST, HOST:PORT, [IPv6]:PORT, or @NAME[:PORT] for the server on the local networks that `ftx find` lists by that name
    #[arg(short, long, value_name = "ADDR", default_value = "127.0.0.1:12000")]
    pub to: String,

    /// How many files are uploaded at once, each on its own connection
    #[arg(short, long, value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub jobs: u16,

    #[command(flatten)]
    pub view: ViewArgs,

    /// Send each file no faster than this many bytes per second (e.g. 200KiB), to watch it
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub rate: Option<u64>,

    /// The longest wait without progress: to connect, for "go ahead", for each write, for the server's close
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Speak only the classroom protocol, one file per connection, even to an ftx server
    #[arg(long, conflicts_with = "ftx")]
    pub classic: bool,

    /// The server is ftx: use ftx mode from the first file, so that even one file is verified and can resume. Not for classroom servers: one would take the opening for an upload
    #[arg(long)]
    pub ftx: bool,

    /// Between ftx ends, skip the BLAKE3 check of each file
    #[arg(long)]
    pub no_verify: bool,

    /// The files to upload, and folders (sent whole to an ftx server; their files under their base names to a classroom server)
    #[arg(required = true, value_name = "FILE|DIR")]
    pub files: Vec<PathBuf>,
}

/// Parses `auto`, `always` or `never`.
pub fn parse_color(text: &str) -> Result<ColorChoice, String> {
    match text {
        "auto" => Ok(ColorChoice::Auto),
        "always" => Ok(ColorChoice::Always),
        "never" => Ok(ColorChoice::Never),
        other => Err(format!("'{other}' is not one of auto, always, never")),
    }
}

/// Parses `500MiB`, `2GiB`, `1.5GB`, `1000000` (KB, MB, GB are powers of 1000; KiB, MiB, GiB of 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    parse_size::parse_size(text)
        .map_err(|e| format!("'{text}' is not a size ({e}); try 500MiB, 2GiB or 1000000"))
}

/// Parses a rate in bytes per second: a size, with or without `/s` (`200KiB`, `1MB/s`).
pub fn parse_rate(text: &str) -> Result<u64, String> {
    let rate = parse_size(text.trim().trim_end_matches("/s"))?;
    if rate == 0 {
        return Err("the rate must be more than zero".into());
    }
    Ok(rate)
}

/// Parses `500ms`, `30s`, `2m`, `1h` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a duration (try 500ms, 30s or 2m)"))?;
    let scale = match unit.trim() {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => return Err(format!("unknown unit '{other}' (use ms, s, m or h)")),
    };
    let duration = Duration::try_from_secs_f64(number * scale).map_err(|e| e.to_string())?;
    if duration.is_zero() {
        return Err("the duration must be more than zero".into());
    }
    Ok(duration)
}

/// A command-line error with clap's "a similar argument exists" tip kept
/// only for a near miss (at most 2 edits or swaps, as `--too` for `--to`): a guess
/// further off (`--version` for `--verbose`) misleads more than it helps.
pub fn without_far_suggestions(error: clap::Error) -> clap::Error {
    use clap::error::{ContextKind, ContextValue};
    let text = |kind| match error.get(kind) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        _ => None,
    };
    let (Some(given), Some(suggested)) = (
        text(ContextKind::InvalidArg),
        text(ContextKind::SuggestedArg),
    ) else {
        return error;
    };
    let given = given.split('=').next().unwrap_or(&given);
    if strsim::osa_distance(given, &suggested) <= 2 {
        return error;
    }
    let mut command = <Cli as clap::CommandFactory>::command();
    command.build();
    let mut plain = clap::Error::new(error.kind()).with_cmd(&command);
    for (kind, value) in error.context() {
        if kind != ContextKind::SuggestedArg && kind != ContextKind::Usage {
            plain.insert(kind, value.clone());
        }
    }
    // The usage clap wrote had the suggestion in it: the subcommand's own instead.
    let words: Vec<String> = std::env::args().skip(1).collect();
    let mut usage_of = &mut command;
    for word in &words {
        if usage_of.find_subcommand(word).is_none() {
            break;
        }
        usage_of = usage_of.find_subcommand_mut(word).expect("just found");
    }
    plain.insert(
        ContextKind::Usage,
        ContextValue::StyledStr(usage_of.render_usage()),
    );
    plain
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn sizes_parse_in_the_usual_forms() {
        assert_eq!(parse_size("500MiB"), Ok(500 * 1024 * 1024));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("1000000"), Ok(1_000_000));
        assert_eq!(parse_size("1.5 GB"), Ok(1_500_000_000));
        assert!(parse_size("big").unwrap_err().contains("is not a size"));
        assert_eq!(parse_rate("200KiB"), Ok(200 * 1024));
        assert_eq!(parse_rate("1MB/s"), Ok(1_000_000));
        assert!(parse_rate("0").is_err());
    }

    #[test]
    fn durations_parse_in_the_usual_forms() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3 weeks").is_err());
    }
}
