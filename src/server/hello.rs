//! The server's side of the hello (PROTOCOL.md section 5): one thread answering questions on the UDP port with the TCP port's number, from the local networks only, rate-limited per source and in all, never with more bytes than it was sent.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Shared;
use crate::protocol::hello::{self, Said};

/// Answers a source gets per second, at most; questions past that are not
/// answered. An answer is never larger than its question, so a forged source
/// gets at most this many datagrams of 256 bytes a second, no more than the
/// forger sent; and each `ftx send` asks at most twice, so a script sending
/// one small file after another (one every 10 ms or more) stays under it.
const PER_SOURCE: u32 = 100;

/// Sources answered in one second, at most. A source's first question of a
/// second is answered while there is room among them: an honest `ftx send`
/// asks once (twice when the first is lost), so a flood from a few hundred
/// sources does not crowd it out, where a budget shared by every answer would.
const SOURCES_A_SECOND: usize = 4096;

/// Answers past a source's first in a second (its 2nd to [`PER_SOURCE`]th),
/// a second in all, at most: so at most this plus [`SOURCES_A_SECOND`]
/// answers leave a second, whoever asks.
const REPEATS_IN_ALL: u32 = 1000;

/// How often the thread looks whether the server is stopping.
const LOOK: Duration = Duration::from_millis(200);

/// How long the machine's networks are taken as they were last read.
const NETWORKS_FOR: Duration = Duration::from_secs(10);

/// The UDP socket hellos are answered on: the TCP listener's address and port.
pub(super) fn bind(listening: SocketAddr) -> io::Result<UdpSocket> {
    let socket = UdpSocket::bind(listening)?;
    socket.set_read_timeout(Some(LOOK))?;
    Ok(socket)
}

/// The server's name for hellos: `--name`, else the host name.
pub fn default_name() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

/// 8 random bytes in hex: which run of a server answers (H2 `id`).
pub(super) fn run_id() -> String {
    let mut random = [0u8; 8];
    let _ = crate::sys::random(&mut random);
    random.iter().map(|b| format!("{b:02x}")).collect()
}

/// Answers hellos on `socket` until the server stops; `trace` hears each
/// question answered and its answer (`--trace`; those not answered are not
/// told: a flood of them would be a flood of lines).
pub(super) fn answer(socket: &UdpSocket, said: Said, shared: &Arc<Shared>, trace: impl Fn(String)) {
    let mut limits = Limits::default();
    let mut local = Local::default();
    let mut question = [0u8; hello::QUESTION_LEN + 1];
    while !shared.stopping() {
        let (len, from) = match socket.recv_from(&mut question) {
            Ok(got) => got,
            Err(e) if crate::protocol::is_timeout(&e) => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // An error queued by an earlier answer (its sender's port closed, say).
            Err(_) => continue,
        };
        let Some(nonce) = hello::nonce_of(&question[..len]) else {
            continue;
        };
        if !local.has(from.ip()) || !limits.allow(from.ip()) {
            continue;
        }
        let busy = shared.busy.load(Ordering::Relaxed);
        let now = Said {
            free: said.workers.saturating_sub(busy),
            ..said.clone()
        };
        if let Some(bytes) = hello::answer(&nonce, &now, len) {
            trace(format!("{from} → server (UDP)  hello, {len} bytes"));
            if socket.send_to(&bytes, from).is_ok() {
                trace(format!(
                    "server → {from} (UDP)  {} ({} bytes)",
                    now.in_words(),
                    bytes.len()
                ));
            }
        }
    }
}

/// The networks of this machine's interfaces: only a source on one of them
/// (or on loopback) is answered, so that the server is found by no one
/// outside the local networks (H4).
#[derive(Default)]
struct Local {
    read: Option<Instant>,
    networks: Vec<(IpAddr, IpAddr)>,
}

impl Local {
    fn has(&mut self, source: IpAddr) -> bool {
        if self.read.is_none_or(|at| at.elapsed() >= NETWORKS_FOR) {
            self.read = Some(Instant::now());
            self.networks = if_addrs::get_if_addrs()
                .unwrap_or_default()
                .into_iter()
                .map(|iface| match iface.addr {
                    if_addrs::IfAddr::V4(v4) => (IpAddr::V4(v4.ip), IpAddr::V4(v4.netmask)),
                    if_addrs::IfAddr::V6(v6) => (IpAddr::V6(v6.ip), IpAddr::V6(v6.netmask)),
                })
                .collect();
        }
        let source = canonical(source);
        // A link-local source is on one of this machine's links: routers
        // never forward such a datagram (and if_addrs lists no fe80::/10 networks).
        let link_local = matches!(source, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80);
        source.is_loopback()
            || link_local
            || self
                .networks
                .iter()
                .any(|(ip, mask)| same_network(source, *ip, *mask))
    }
}

/// An IPv4 address seen through an IPv6 socket, as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether `a` is on the network of `ip` with `mask`.
fn same_network(a: IpAddr, ip: IpAddr, mask: IpAddr) -> bool {
    match (a, ip, mask) {
        (IpAddr::V4(a), IpAddr::V4(ip), IpAddr::V4(mask)) => {
            let m = u32::from(mask);
            u32::from(a) & m == u32::from(ip) & m
        }
        (IpAddr::V6(a), IpAddr::V6(ip), IpAddr::V6(mask)) => {
            let m = u128::from(mask);
            u128::from(a) & m == u128::from(ip) & m
        }
        _ => false,
    }
}

/// Answers given in the current second, per source (at most
/// [`SOURCES_A_SECOND`] sources counted) and past each source's first.
#[derive(Default)]
struct Limits {
    second: Option<Instant>,
    repeats: u32,
    per_source: HashMap<IpAddr, u32>,
}

impl Limits {
    /// Whether `source` may have one more answer this second.
    fn allow(&mut self, source: IpAddr) -> bool {
        if self
            .second
            .is_none_or(|s| s.elapsed() >= Duration::from_secs(1))
        {
            self.second = Some(Instant::now());
            self.repeats = 0;
            self.per_source.clear();
        }
        let room = self.per_source.len() < SOURCES_A_SECOND;
        match self.per_source.get_mut(&source) {
            None if !room => false,
            None => {
                self.per_source.insert(source, 1);
                true
            }
            Some(count) if *count >= PER_SOURCE || self.repeats >= REPEATS_IN_ALL => false,
            Some(count) => {
                *count += 1;
                self.repeats += 1;
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_local_networks_are_answered() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let (net, mask) = (ip("192.168.4.20"), ip("255.255.255.0"));
        assert!(same_network(ip("192.168.4.77"), net, mask));
        assert!(!same_network(ip("192.168.5.77"), net, mask));
        assert!(!same_network(ip("8.8.8.8"), net, mask));
        let (net6, mask6) = (ip("fd00:1::5"), ip("ffff:ffff:ffff:ffff::"));
        assert!(same_network(ip("fd00:1::99"), net6, mask6));
        assert!(!same_network(ip("fd00:2::99"), net6, mask6));
        assert!(Local::default().has(ip("127.0.0.1")));
        assert!(Local::default().has(ip("::ffff:127.0.0.1")));
        assert!(
            !Local::default().has(ip("203.0.113.9")),
            "a documentation address is no one's network here"
        );
    }

    #[test]
    fn answers_are_limited_per_source_and_in_all() {
        let mut limits = Limits::default();
        let one = IpAddr::from([10, 0, 0, 1]);
        let answered = (0..3 * PER_SOURCE).filter(|_| limits.allow(one)).count();
        assert_eq!(answered, PER_SOURCE as usize);
        // Repeats share a budget: 20 sources asking 100 times each get their
        // first answers and, together, the repeats left.
        let few = |n: u32| IpAddr::from((0x0a01_0000 + n).to_be_bytes());
        let repeats = (0..20)
            .flat_map(|n| std::iter::repeat_n(n, PER_SOURCE as usize))
            .filter(|&n| limits.allow(few(n)))
            .count();
        assert_eq!(repeats, 20 + (REPEATS_IN_ALL - (PER_SOURCE - 1)) as usize);
        // A newcomer's first question is answered all the same.
        assert!(limits.allow(IpAddr::from([10, 2, 0, 1])), "crowded out");
        assert!(
            !limits.allow(IpAddr::from([10, 2, 0, 1])),
            "no repeats left"
        );
        // Sources past the room of a second are not answered at all.
        let many = (0..2 * SOURCES_A_SECOND as u32)
            .filter(|n| limits.allow(IpAddr::from((0x0b00_0000 + n).to_be_bytes())))
            .count();
        assert_eq!(many, SOURCES_A_SECOND - 22);
    }
}
