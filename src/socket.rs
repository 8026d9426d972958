//! What the kernel knows about a TCP connection that the socket API does not say (bytes sent and not yet acknowledged), and how it acknowledges (delayed ACKs).

use std::net::{TcpListener, TcpStream};

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
