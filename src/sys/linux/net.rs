//! What the Linux kernel knows about TCP sockets that the socket API does not say: bytes not yet acknowledged, whether a port is listened on, the listen backlog's cap; delayed ACKs.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;

/// Bytes sent and not yet acknowledged by the other end (`SIOCOUTQ`); `None`
/// where the system cannot tell.
pub fn unacknowledged(stream: &TcpStream) -> Option<u32> {
    let mut n: libc::c_int = 0;
    // SAFETY: TIOCOUTQ (SIOCOUTQ on sockets) writes one int through the pointer, which points to `n`.
    let rc = unsafe { libc::ioctl(stream.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
    (rc == 0).then(|| u32::try_from(n).unwrap_or(0))
}

/// Makes the connections `listener` accepts acknowledge late (`TCP_QUICKACK`
/// off, which accepted sockets inherit): a client's second small write then
/// waits for Nagle's algorithm until the first is acknowledged, about 40 ms,
/// so a server's first read sees a header sent in two writes as two parts
/// every time, as a classroom server on a real network does. True when the
/// system does it.
pub fn delay_acks(listener: &TcpListener) -> bool {
    rustix::net::sockopt::set_tcp_quickack(listener, false).is_ok()
}

/// Whether some socket listens on `addr`'s port, asked of the kernel
/// (`/proc/net/tcp`, `/proc/net/tcp6`) without connecting to it.
pub fn listening_on(addr: SocketAddr) -> Option<bool> {
    let port = format!(":{:04X}", addr.port());
    let mut known = false;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        known = true;
        // Columns: sl, local address (hex IP:port), remote address, state (0A: LISTEN), ...
        let listens = text.lines().skip(1).any(|line| {
            let mut columns = line.split_whitespace().skip(1);
            let local = columns.next().unwrap_or("");
            let state = columns.nth(1).unwrap_or("");
            local.ends_with(&port) && state == "0A"
        });
        if listens {
            return Some(true);
        }
    }
    known.then_some(false)
}

/// The system's cap on a listen backlog (`net.core.somaxconn`), if it says.
pub fn max_backlog() -> Option<i32> {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|text| text.trim().parse().ok())
}

pub use crate::sys::unix::interfaces::interface_indices;
