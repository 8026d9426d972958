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
/// `trace` hears the question and what came of it (`--trace`).
pub(super) fn ask(
    config: &SendConfig,
    addresses: &[SocketAddr],
    reach: &Reach,
    trace: impl Fn(String),
) -> Option<Said> {
    let addr = *addresses.first()?;
    let nonce = nonce().ok()?;
    let asked = send_question(addr, &nonce);
    if asked.is_some() {
        trace(format!(
            "client → {addr} (UDP)  hello, {} bytes: is this an ftx server?",
            hello::QUESTION_LEN
        ));
    }
    let began = Instant::now();
    let first = connect::connect(config, addresses, reach);
    let connected = began.elapsed();
    let up = first.is_ok();
    *reach.early.lock().expect("early lock") = Some(first);
    let socket = asked.filter(|_| up)?;
    let grace = (connected * 2).clamp(GRACE_FLOOR, GRACE_CAP);
    let deadline = Instant::now() + grace;
    let mut datagram = [0u8; hello::QUESTION_LEN];
    let classic = "the first file goes classically";
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || socket.set_read_timeout(Some(left)).is_err() {
            trace(format!(
                "{addr} (UDP)  no answer within {} of the connection: {classic}",
                crate::term::human_duration(grace)
            ));
            return None;
        }
        match socket.recv(&mut datagram) {
            Ok(n) => {
                if let Some(said) = hello::read_answer(&datagram[..n], &nonce) {
                    trace(format!("{addr} → client (UDP)  {}", said.in_words()));
                    return Some(said);
                }
                // Not the answer to this question: wait on.
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                trace(format!(
                    "{addr} (UDP)  port unreachable: not an ftx server; {classic}"
                ));
                return None;
            }
            // No answer in time: not an ftx server, or not one that says so.
            Err(_) => {
                trace(format!(
                    "{addr} (UDP)  no answer within {}: {classic}",
                    crate::term::human_duration(grace)
                ));
                return None;
            }
        }
    }
}

/// 16 random bytes for one question.
fn nonce() -> std::io::Result<Nonce> {
    let mut nonce: Nonce = [0; hello::NONCE_LEN];
    rustix::rand::getrandom(&mut nonce, rustix::rand::GetRandomFlags::empty())?;
    Ok(nonce)
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

/// How long `ftx find` and `--to @NAME` listen for answers.
pub const FIND_WAIT: Duration = Duration::from_secs(1);

/// An ftx server that answered a find: where (each address it answered
/// from, this machine's loopback last), and what it said.
#[derive(Debug, Clone)]
pub struct Found {
    pub addrs: Vec<SocketAddr>,
    pub said: Said,
}

/// Asks the local networks for ftx servers on `port` (H4): one question to
/// the broadcast address of each IPv4 interface that has one, and to
/// loopback; every answer with the nonce that comes within `wait`, once per
/// server address, sorted by name.
pub fn find(port: u16, wait: Duration) -> std::io::Result<Vec<Found>> {
    let socket = UdpSocket::bind("0.0.0.0:0")?;
    socket.set_broadcast(true)?;
    let nonce = nonce()?;
    let question = hello::question(&nonce);
    let mut targets = vec![std::net::Ipv4Addr::LOCALHOST];
    for iface in if_addrs::get_if_addrs().unwrap_or_default() {
        if let if_addrs::IfAddr::V4(v4) = iface.addr {
            targets.extend(v4.broadcast);
        }
    }
    targets.sort();
    targets.dedup();
    for target in targets {
        // A network that refuses it (no route) is one fewer to ask.
        let _ = socket.send_to(&question, (target, port));
    }
    let deadline = Instant::now() + wait;
    let mut found: Vec<Found> = Vec::new();
    let mut datagram = [0u8; hello::QUESTION_LEN];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        socket.set_read_timeout(Some(left))?;
        match socket.recv_from(&mut datagram) {
            Ok((n, from)) => {
                let Some(said) = hello::read_answer(&datagram[..n], &nonce) else {
                    continue;
                };
                let addr = SocketAddr::new(from.ip(), said.port);
                match found.iter_mut().find(|f| f.said.id == said.id) {
                    Some(known) if !known.addrs.contains(&addr) => known.addrs.push(addr),
                    Some(_) => {}
                    None => found.push(Found {
                        addrs: vec![addr],
                        said,
                    }),
                }
            }
            Err(e) if crate::protocol::is_timeout(&e) => break,
            // An error from one network ("port unreachable" from loopback, say): the others may still answer.
            Err(_) => {}
        }
    }
    for server in &mut found {
        server.addrs.sort_by_key(|a| (a.ip().is_loopback(), *a));
    }
    found.sort_by(|a, b| (&a.said.name, &a.addrs).cmp(&(&b.said.name, &b.addrs)));
    Ok(found)
}

/// The one server on the local networks that calls itself `name` (`--to
/// @NAME`): its address (loopback if it is this machine).
pub fn named(name: &str, port: u16) -> anyhow::Result<SocketAddr> {
    let shown = crate::names::escape_for_terminal(name.as_bytes());
    let found: Vec<Found> = find(port, FIND_WAIT)?
        .into_iter()
        .filter(|f| f.said.name == name)
        .collect();
    match &found[..] {
        [one] => Ok(*one
            .addrs
            .iter()
            .find(|a| a.ip().is_loopback())
            .unwrap_or(&one.addrs[0])),
        [] => anyhow::bail!(
            "no ftx server called \"{shown}\" answered on the local networks within {} (on port {port}): \
             is it running? `ftx find` lists those that answer",
            crate::term::human_duration(FIND_WAIT)
        ),
        several => anyhow::bail!(
            "{} servers call themselves \"{shown}\": {}; choose one with --to ADDRESS",
            several.len(),
            several
                .iter()
                .map(|f| f.addrs[0].to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}
