//! The sender's side of the hello (PROTOCOL.md section 5): asked while the first connection is made, so that an ftx server gets a batch from the first file on, and any other server sees only what it would have seen anyway.
//!
//! The question goes to the UDP port with the server's TCP port number as
//! the first connection starts. A classroom server listens on TCP only: its
//! kernel answers "port unreachable", or a firewall drops the question, and
//! the run goes on as it always did (a classic first file). The answer is
//! waited for at most [`GRACE_CAP`] past the connection, twice the time the
//! connection took and at least [`GRACE_FLOOR`]: on a LAN it comes in about
//! the time the connection takes.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use super::connect::{self, Reach};
use crate::config::SendConfig;
use crate::protocol::hello::{self, Nonce, Said};

/// The least and the most the answer is waited for once connected.
const GRACE_FLOOR: Duration = Duration::from_millis(10);
const GRACE_CAP: Duration = Duration::from_millis(250);

/// Asks the server at the first of `addresses` whether it is ftx, while
/// making the first connection (left in `reach` for the first upload or
/// batch to take). What it said, if it answered in time.
pub(super) fn ask(config: &SendConfig, addresses: &[SocketAddr], reach: &Reach) -> Option<Said> {
    let addr = *addresses.first()?;
    let mut nonce: Nonce = [0; hello::NONCE_LEN];
    rustix::rand::getrandom(&mut nonce, rustix::rand::GetRandomFlags::empty()).ok()?;
    let asked = send_question(addr, &nonce);
    let began = Instant::now();
    let first = connect::connect(config, addresses, reach);
    let connected = began.elapsed();
    let up = first.is_ok();
    *reach.early.lock().expect("early lock") = Some(first);
    let socket = asked.filter(|_| up)?;
    let deadline = Instant::now() + (connected * 2).clamp(GRACE_FLOOR, GRACE_CAP);
    let mut datagram = [0u8; hello::QUESTION_LEN];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || socket.set_read_timeout(Some(left)).is_err() {
            return None;
        }
        match socket.recv(&mut datagram) {
            Ok(n) => {
                if let Some(said) = hello::read_answer(&datagram[..n], &nonce) {
                    return Some(said);
                }
                // Not the answer to this question: wait on.
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // No answer in time, or "port unreachable": not an ftx server, or not one that says so.
            Err(_) => return None,
        }
    }
}

/// Sends the question; the socket the answer will come to.
fn send_question(addr: SocketAddr, nonce: &Nonce) -> Option<UdpSocket> {
    let any: SocketAddr = if addr.is_ipv4() {
        "0.0.0.0:0".parse().ok()?
    } else {
        "[::]:0".parse().ok()?
    };
    let socket = UdpSocket::bind(any).ok()?;
    // Connected, so that a "port unreachable" comes back as an error, and
    // only datagrams from the server are taken.
    socket.connect(addr).ok()?;
    socket.send(&hello::question(nonce)).ok()?;
    Some(socket)
}
