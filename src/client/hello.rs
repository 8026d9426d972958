//! The sender's side of the hello (PROTOCOL.md section 5): asked while the first connection is made, so that an ftx server gets a batch from the first file on, and any other server sees only what it would have seen anyway.
//!
//! The question goes to the UDP port with the server's TCP port number as
//! the first connection starts. A classroom server listens on TCP only: its
//! kernel answers "port unreachable", or a firewall drops the question, and
//! the run goes on as it always did (a classic first file). The answer is
//! waited for at most [`GRACE_CAP`] past the connection, twice the time the
//! connection took and at least [`GRACE_FLOOR`]: on a LAN it comes in about
//! the time the connection takes. A question or answer lost (Wi-Fi drops a
//! datagram now and then) is asked once more halfway through the grace.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use super::connect::{self, Reach};
use crate::config::SendConfig;
use crate::protocol::hello::{self, Nonce, Said};

/// The least and the most the answer is waited for once connected. The
/// floor is for a busy sender or server (a laptop projecting, a shared CI
/// machine: an answering thread can wait 10 ms for a core) and for Wi-Fi's
/// jitter; it costs only when the question is silently dropped, once a run.
const GRACE_FLOOR: Duration = Duration::from_millis(50);
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
    let classic = "the first file goes classically";
    let now = Instant::now();
    let mut heard = next_answer(&socket, &nonce, now + grace / 2);
    if matches!(heard, Ok(None)) {
        // Nothing yet: the question or its answer may have been lost.
        if socket.send(&hello::question(&nonce)).is_ok() {
            trace(format!(
                "client → {addr} (UDP)  hello again, no answer within {}",
                crate::term::human_duration(grace / 2)
            ));
        }
        heard = next_answer(&socket, &nonce, now + grace);
    }
    match heard {
        Ok(Some((_, said))) => {
            trace(format!("{addr} → client (UDP)  {}", said.in_words()));
            Some(said)
        }
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            trace(format!(
                "{addr} (UDP)  port unreachable: not an ftx server; {classic}"
            ));
            None
        }
        // No answer in time: not an ftx server, or not one that says so.
        Ok(None) | Err(_) => {
            trace(format!(
                "{addr} (UDP)  no answer within {} of the connection: {classic}",
                crate::term::human_duration(grace)
            ));
            None
        }
    }
}

/// The next answer with `nonce` that comes to `socket` before `deadline`,
/// and where it came from; `Ok(None)` once the deadline has passed; an error
/// as the socket tells it (a "port unreachable" for an earlier question).
fn next_answer(
    socket: &UdpSocket,
    nonce: &Nonce,
    deadline: Instant,
) -> std::io::Result<Option<(SocketAddr, Said)>> {
    let mut datagram = [0u8; hello::QUESTION_LEN];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        socket.set_read_timeout(Some(left))?;
        match socket.recv_from(&mut datagram) {
            Ok((n, from)) => {
                if let Some(said) = hello::read_answer(&datagram[..n], nonce) {
                    return Ok(Some((from, said)));
                }
                // Not an answer to this question: wait on.
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if crate::protocol::is_timeout(&e) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
}

/// 16 random bytes for one question.
fn nonce() -> std::io::Result<Nonce> {
    let mut nonce: Nonce = [0; hello::NONCE_LEN];
    crate::sys::random(&mut nonce)?;
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
/// the broadcast address of each IPv4 interface that has one and to IPv4
/// loopback, one to the all-nodes group (`ff02::1`) of each IPv6 interface
/// and to IPv6 loopback; every answer with the nonce that comes within
/// `wait`, once per server address, sorted by name.
pub fn find(port: u16, wait: Duration) -> std::io::Result<Vec<Found>> {
    let nonce = nonce()?;
    let question = hello::question(&nonce);
    let v4 = UdpSocket::bind("0.0.0.0:0")?;
    v4.set_broadcast(true)?;
    let mut targets: Vec<SocketAddr> = vec![(std::net::Ipv4Addr::LOCALHOST, port).into()];
    let mut v6_targets: Vec<SocketAddr> = vec![(std::net::Ipv6Addr::LOCALHOST, port).into()];
    let all_nodes = std::net::Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
    let mut indices = crate::sys::net::interface_indices();
    for iface in if_addrs::get_if_addrs().unwrap_or_default() {
        if let if_addrs::IfAddr::V4(v4) = &iface.addr {
            targets.extend(v4.broadcast.map(|b| SocketAddr::from((b, port))));
        }
        indices.extend(iface.index);
    }
    for index in indices {
        v6_targets.push(std::net::SocketAddrV6::new(all_nodes, port, 0, index).into());
    }
    targets.sort();
    targets.dedup();
    v6_targets.sort();
    v6_targets.dedup();
    for target in &targets {
        // A network that refuses it (no route) is one fewer to ask.
        let _ = v4.send_to(&question, target);
    }
    // No IPv6 on this machine: the IPv4 answers are all there is.
    let v6 = UdpSocket::bind("[::]:0").ok();
    if let Some(socket) = &v6 {
        for target in &v6_targets {
            let _ = socket.send_to(&question, target);
        }
    }
    let deadline = Instant::now() + wait;
    let mut answers = std::thread::scope(|scope| {
        let v6 = v6
            .as_ref()
            .map(|socket| scope.spawn(|| answers_to(socket, &nonce, deadline)));
        let mut answers = answers_to(&v4, &nonce, deadline);
        if let Some(v6) = v6 {
            answers.extend(v6.join().unwrap_or_default());
        }
        answers
    });
    answers.sort_by_key(|(from, _)| *from);
    let mut found: Vec<Found> = Vec::new();
    for (from, said) in answers {
        let addr = SocketAddr::new(from.ip(), said.port);
        let addr = match (from, addr) {
            // A link-local address needs its interface to be reached.
            (SocketAddr::V6(from), SocketAddr::V6(mut addr)) => {
                addr.set_scope_id(from.scope_id());
                SocketAddr::V6(addr)
            }
            (_, addr) => addr,
        };
        match found.iter_mut().find(|f| f.said.id == said.id) {
            Some(known) if !known.addrs.contains(&addr) => known.addrs.push(addr),
            Some(_) => {}
            None => found.push(Found {
                addrs: vec![addr],
                said,
            }),
        }
    }
    for server in &mut found {
        server.addrs.sort_by_key(|a| (a.ip().is_loopback(), *a));
    }
    found.sort_by(|a, b| (&a.said.name, &a.addrs).cmp(&(&b.said.name, &b.addrs)));
    Ok(found)
}

/// The answers with `nonce` that come to `socket` before `deadline`, with where each came from.
fn answers_to(socket: &UdpSocket, nonce: &Nonce, deadline: Instant) -> Vec<(SocketAddr, Said)> {
    let mut answers = Vec::new();
    loop {
        match next_answer(socket, nonce, deadline) {
            Ok(Some(answer)) => answers.push(answer),
            Ok(None) => return answers,
            // An error from one network ("port unreachable" from loopback, say): the others may still answer.
            Err(_) => {}
        }
    }
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
