//! The server's side of the hello (PROTOCOL.md section 5): one thread answering questions on the UDP port with the TCP port's number, rate-limited per source and in all, never with more bytes than it was sent.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Shared;
use crate::protocol::hello::{self, Said};

/// Answers a source gets per second, at most; questions past that are not answered.
const PER_SOURCE: u32 = 10;

/// Answers per second in all, at most.
const IN_ALL: u32 = 1000;

/// How often the thread looks whether the server is stopping.
const LOOK: Duration = Duration::from_millis(200);

/// The UDP socket hellos are answered on: the TCP listener's address and port.
pub(super) fn bind(listening: SocketAddr) -> io::Result<UdpSocket> {
    let socket = UdpSocket::bind(listening)?;
    socket.set_read_timeout(Some(LOOK))?;
    Ok(socket)
}

/// The server's name for hellos: `--name`, else the host name.
pub fn default_name() -> String {
    let uname = rustix::system::uname();
    String::from_utf8_lossy(uname.nodename().to_bytes()).into_owned()
}

/// Answers hellos on `socket` until the server stops.
pub(super) fn answer(socket: &UdpSocket, said: Said, shared: &Arc<Shared>) {
    let mut limits = Limits::default();
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
        if !limits.allow(from.ip()) {
            continue;
        }
        let busy = shared.busy.load(Ordering::Relaxed);
        let now = Said {
            free: said.workers.saturating_sub(busy),
            ..said.clone()
        };
        if let Some(bytes) = hello::answer(&nonce, &now, len) {
            let _ = socket.send_to(&bytes, from);
        }
    }
}

/// Answers given in the current second, per source and in all (so at most
/// [`IN_ALL`] sources are counted).
#[derive(Default)]
struct Limits {
    second: Option<Instant>,
    in_all: u32,
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
            self.in_all = 0;
            self.per_source.clear();
        }
        if self.in_all >= IN_ALL {
            return false;
        }
        let count = self.per_source.entry(source).or_insert(0);
        if *count >= PER_SOURCE {
            return false;
        }
        *count += 1;
        self.in_all += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_limited_per_source_and_in_all() {
        let mut limits = Limits::default();
        let one = IpAddr::from([10, 0, 0, 1]);
        let answered = (0..50).filter(|_| limits.allow(one)).count();
        assert_eq!(answered, PER_SOURCE as usize);
        let others = (0..2000u32)
            .filter(|n| limits.allow(IpAddr::from(n.to_be_bytes())))
            .count();
        assert_eq!(others, (IN_ALL - PER_SOURCE) as usize);
    }
}
