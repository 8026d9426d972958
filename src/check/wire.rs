//! The checker's hands on the wire: bounded reads and waits, and bytes shown the way `--trace` shows them.

use std::io::{ErrorKind, Read};
use std::net::TcpStream;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::names;
use crate::protocol;

/// When the whole run must be over: no wait goes past it.
static RUN_DEADLINE: OnceLock<Instant> = OnceLock::new();

/// Sets the run's deadline (once).
pub fn set_run_deadline(at: Instant) {
    let _ = RUN_DEADLINE.set(at);
}

/// `wait`, cut to what is left of the run.
pub fn bounded(wait: Duration) -> Duration {
    match RUN_DEADLINE.get() {
        Some(deadline) => wait.min(deadline.saturating_duration_since(Instant::now())),
        None => wait,
    }
}

/// Bytes as a student can read them: hex, and the text they spell.
pub fn shown(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "nothing".into();
    }
    format!(
        "{} bytes: {} (\"{}\")",
        bytes.len(),
        protocol::hex_dump(bytes, 24),
        names::escape_for_terminal(&bytes[..bytes.len().min(64)])
    )
}

/// What a bounded read brought.
#[derive(Debug, Default)]
pub struct Heard {
    pub bytes: Vec<u8>,
    /// The other end closed (cleanly).
    pub closed: bool,
    /// The other end reset the connection.
    pub reset: bool,
}

/// Reads until `enough` bytes came, the other end closed, or `wait` passed.
pub fn read_for(stream: &TcpStream, enough: usize, wait: Duration) -> Heard {
    let deadline = Instant::now() + bounded(wait);
    let mut heard = Heard::default();
    let mut buf = [0u8; 4096];
    while heard.bytes.len() < enough {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let _ = stream.set_read_timeout(Some(left.max(Duration::from_millis(1))));
        match (&*stream).read(&mut buf) {
            Ok(0) => {
                heard.closed = true;
                break;
            }
            Ok(n) => heard.bytes.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if protocol::is_timeout(&e) => break,
            Err(_) => {
                heard.reset = true;
                break;
            }
        }
    }
    heard
}

/// One read of at most `max` bytes, as a classroom server's one `recv(1024)`
/// takes a header: what has arrived when the first bytes do, waiting up to
/// `wait` for them.
pub fn read_once(stream: &TcpStream, max: usize, wait: Duration) -> Heard {
    let deadline = Instant::now() + bounded(wait);
    let mut heard = Heard::default();
    let mut buf = vec![0u8; max];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return heard;
        }
        let _ = stream.set_read_timeout(Some(left.max(Duration::from_millis(1))));
        match (&*stream).read(&mut buf) {
            Ok(0) => heard.closed = true,
            Ok(n) => heard.bytes.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if protocol::is_timeout(&e) => {}
            Err(_) => heard.reset = true,
        }
        return heard;
    }
}

/// Waits up to `wait` for the other end to close; what it sent meanwhile is thrown away.
pub fn wait_for_close(stream: &TcpStream, wait: Duration) -> Heard {
    read_for(stream, usize::MAX, wait)
}

/// After a clean close: were all bytes sent acknowledged (none answered with a reset)?
pub fn all_taken(stream: &TcpStream, wait: Duration) -> bool {
    let deadline = Instant::now() + bounded(wait);
    loop {
        if let Ok(Some(_)) = stream.take_error() {
            return false;
        }
        match crate::sys::net::unacknowledged(stream) {
            Some(0) | None => return true,
            Some(_) if Instant::now() >= deadline => return false,
            Some(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}
