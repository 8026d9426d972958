//! What the portable layer knows of TCP sockets beyond std: unacknowledged bytes on macOS (`SO_NWRITE`) and nowhere else, whether a port is listened on (by connecting), the backlog's cap on macOS, interfaces (POSIX on Unix, if-addrs elsewhere).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

/// Bytes sent and not yet acknowledged (macOS: `SO_NWRITE`, not compiled on
/// the machines ftx is tested on); `None` elsewhere: the system cannot tell.
#[cfg(target_os = "macos")]
pub fn unacknowledged(stream: &TcpStream) -> Option<u32> {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: SO_NWRITE writes one int through the pointer, which points to `n`, of `len` bytes.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_NWRITE,
            (&mut n as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    (rc == 0).then(|| u32::try_from(n).unwrap_or(0))
}

#[cfg(not(target_os = "macos"))]
pub fn unacknowledged(_stream: &TcpStream) -> Option<u32> {
    None
}

/// Delayed ACKs cannot be asked for here.
pub fn delay_acks(_listener: &TcpListener) -> bool {
    false
}

/// Whether something takes connections on `addr`, by connecting: the
/// kernel's tables are not read here.
pub fn listening_on(addr: SocketAddr) -> Option<bool> {
    Some(TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok())
}

/// The system's cap on a listen backlog (macOS: `kern.ipc.somaxconn`, not
/// compiled on the machines ftx is tested on), if it says.
#[cfg(target_os = "macos")]
pub fn max_backlog() -> Option<i32> {
    let mut n: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>();
    // SAFETY: the name is a NUL-terminated string; the value is one int, written through a pointer to `n` of `len` bytes.
    let rc = unsafe {
        libc::sysctlbyname(
            c"kern.ipc.somaxconn".as_ptr(),
            (&mut n as *mut libc::c_int).cast(),
            &mut len,
            std::ptr::null_mut(),
            0,
        )
    };
    (rc == 0).then_some(n)
}

#[cfg(not(target_os = "macos"))]
pub fn max_backlog() -> Option<i32> {
    None
}

#[cfg(unix)]
pub use crate::sys::unix::interfaces::interface_indices;

/// The index of every interface that has an address (if-addrs): a link
/// with only a link-local IPv6 address is not among them.
#[cfg(not(unix))]
pub fn interface_indices() -> Vec<u32> {
    let mut indices: Vec<u32> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .iter()
        .filter_map(|interface| interface.index)
        .collect();
    indices.sort_unstable();
    indices.dedup();
    indices
}
