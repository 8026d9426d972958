//! What the kernel knows about TCP sockets that the socket API does not say (bytes sent and not yet acknowledged, whether a port is listened on), and how it acknowledges (delayed ACKs).

use std::net::{SocketAddr, TcpListener, TcpStream};

/// Bytes sent and not yet acknowledged by the other end (`SIOCOUTQ`); `None`
/// where the system cannot tell.
#[cfg(target_os = "linux")]
pub fn unacknowledged(stream: &TcpStream) -> Option<u32> {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = 0;
    // SAFETY: TIOCOUTQ (SIOCOUTQ on sockets) writes one int through the pointer, which points to `n`.
    let rc = unsafe { libc::ioctl(stream.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
    (rc == 0).then(|| u32::try_from(n).unwrap_or(0))
}

#[cfg(not(target_os = "linux"))]
pub fn unacknowledged(_stream: &TcpStream) -> Option<u32> {
    None
}

/// Makes the connections `listener` accepts acknowledge late (`TCP_QUICKACK`
/// off, which accepted sockets inherit): a client's second small write then
/// waits for Nagle's algorithm until the first is acknowledged, about 40 ms,
/// so a server's first read sees a header sent in two writes as two parts
/// every time, as a classroom server on a real network does. True when the
/// system does it.
#[cfg(target_os = "linux")]
pub fn delay_acks(listener: &TcpListener) -> bool {
    rustix::net::sockopt::set_tcp_quickack(listener, false).is_ok()
}

#[cfg(not(target_os = "linux"))]
pub fn delay_acks(_listener: &TcpListener) -> bool {
    false
}

/// Whether some socket listens on `addr`'s port, asked of the kernel
/// (`/proc/net/tcp`, `/proc/net/tcp6`) without connecting to it.
#[cfg(target_os = "linux")]
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

/// Whether something takes connections on `addr`, by connecting: the
/// kernel's tables are not readable here.
#[cfg(not(target_os = "linux"))]
pub fn listening_on(addr: SocketAddr) -> Option<bool> {
    Some(TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(100)).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listening_port_is_seen_without_connecting() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        assert_eq!(listening_on(addr), Some(true));
        drop(listener);
        assert_eq!(listening_on(addr), Some(false));
    }
}
