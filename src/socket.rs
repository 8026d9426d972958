//! What the kernel knows about a TCP connection that the socket API does not say: bytes sent and not yet acknowledged.

use std::net::TcpStream;

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
