//! Connecting to the server, for classic uploads and batches alike: the first address that answers, said plainly when none does (once per run), and asked again with doubling pauses while the server is busy.

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpStream};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::config::SendConfig;
use crate::protocol;
use crate::term::human_duration;

/// The first pause before asking a busy server again, and the longest.
const FIRST_RETRY: Duration = Duration::from_millis(100);
const LAST_RETRY: Duration = Duration::from_secs(2);

/// How an ftx server's refusal starts when it is busy (`--per-ip`), not unwilling.
const BUSY: &[u8] = b"refused: too many connections";

/// What the files after the first that could not connect are told.
const SEE_FIRST: &str = "not sent: the server cannot be reached (see the first failure)";

/// Why an upload or a batch could not start.
pub(super) enum Opening {
    /// The server turned it away for now (too many connections from here): worth asking again.
    Busy(String),
    Failed(String),
}

impl Opening {
    /// A refusal as the server sent it: busy if it says so.
    pub(super) fn refused(got: &[u8], reason: String) -> Opening {
        if got.starts_with(BUSY) {
            Opening::Busy(reason)
        } else {
            Opening::Failed(reason)
        }
    }
}

/// Runs `try_open` until it opens, fails for good, or the server is still
/// busy after `--timeout`; `trace` hears of each pause.
pub(super) fn with_retry<T>(
    config: &SendConfig,
    trace: impl Fn(String),
    mut try_open: impl FnMut() -> Result<T, Opening>,
) -> Result<T, String> {
    let deadline = Instant::now() + config.timeout;
    let mut pause = FIRST_RETRY;
    loop {
        match try_open() {
            Ok(opened) => return Ok(opened),
            Err(Opening::Failed(reason)) => return Err(reason),
            Err(Opening::Busy(reason)) => {
                if Instant::now() + pause > deadline {
                    return Err(format!(
                        "{reason}; still busy after {}: send fewer files at once (-j 1)",
                        human_duration(config.timeout)
                    ));
                }
                trace(format!(
                    "the server is busy; trying again in {}",
                    human_duration(pause)
                ));
                std::thread::sleep(pause);
                pause = (pause * 2).min(LAST_RETRY);
            }
        }
    }
}

/// How a run reaches the server: why it cannot (said once), and the
/// connection made while the hello was asked (PROTOCOL.md section 5), for
/// the first upload or batch to take.
#[derive(Debug, Default)]
pub(super) struct Reach {
    /// Set by the first upload that could not connect: the others do not try.
    pub(super) unreachable: OnceLock<String>,
    /// The first connection, made while the hello was asked, or why it could not be made.
    pub(super) early: Mutex<Option<Result<TcpStream, String>>>,
    /// A batch sent behind its opening was not welcomed (a busy server, say):
    /// the batches after it wait for the welcome first (PROTOCOL.md B2).
    pub(super) wait_for_welcome: std::sync::atomic::AtomicBool,
}

/// Connects to the first of `addresses` that answers (or takes the
/// connection made early). When none does, says why once per run (in
/// `reach`): the connections after it fail at once, without trying again.
pub(super) fn connect(
    config: &SendConfig,
    addresses: &[SocketAddr],
    reach: &Reach,
) -> Result<TcpStream, String> {
    if let Some(early) = reach.early.lock().expect("early lock").take() {
        return early;
    }
    let unreachable = &reach.unreachable;
    if unreachable.get().is_some() {
        return Err(SEE_FIRST.into());
    }
    let mut last = None;
    for addr in addresses {
        match TcpStream::connect_timeout(addr, config.timeout) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    let to = &config.to;
    let reason = match last {
        Some(e) if e.kind() == ErrorKind::ConnectionRefused => format!(
            "cannot connect to {to}: nothing is listening there (is the server running, on that port?)"
        ),
        Some(e) if protocol::is_timeout(&e) => format!(
            "cannot connect to {to}: no answer within {} (is the address right, and no firewall in the way?)",
            human_duration(config.timeout)
        ),
        Some(e) => format!("cannot connect to {to}: {e}"),
        None => format!("cannot connect to {to}: it has no address"),
    };
    if unreachable.set(reason.clone()).is_err() {
        return Err(SEE_FIRST.into());
    }
    Err(reason)
}
