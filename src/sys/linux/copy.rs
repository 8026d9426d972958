//! Content moved inside the kernel on Linux: splice(2) socket -> pipe -> file, sendfile(2) file -> socket. Where the system refuses, the error's kind is `Unsupported` and the caller goes on with a buffer.

use std::fs::File;
use std::io;
use std::net::TcpStream;
use std::os::fd::OwnedFd;

use rustix::io::Errno;
use rustix::pipe::{splice, SpliceFlags};

/// What a pipe is asked to hold; the kernel may give less.
pub const PIPE_SIZE: usize = 1024 * 1024;

/// Whether [`Pipe`] and [`sendfile`] can work here at all.
pub const IN_KERNEL: bool = true;

/// A pipe for splice(2).
#[derive(Debug)]
pub struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

/// `e`, as `Unsupported` where it says the kernel cannot do this here.
fn refused(e: Errno, unsupported: &[Errno]) -> io::Error {
    let error = io::Error::from(e);
    match unsupported.contains(&e) {
        true => io::Error::new(io::ErrorKind::Unsupported, error),
        false => error,
    }
}

impl Pipe {
    pub fn new() -> io::Result<Pipe> {
        let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        // A bigger pipe means fewer round trips; the default 64 KiB still works.
        let _ = rustix::pipe::fcntl_setpipe_size(&write, PIPE_SIZE);
        Ok(Pipe { read, write })
    }

    /// Socket -> pipe, up to `want` bytes; 0 when the peer closed. The
    /// socket's read timeout applies, as it does to read().
    pub fn fill(&self, stream: &TcpStream, want: usize) -> io::Result<usize> {
        loop {
            match splice(stream, None, &self.write, None, want, SpliceFlags::MOVE) {
                Err(Errno::INTR) => {}
                Err(e) => return Err(refused(e, &[Errno::INVAL, Errno::NOSYS, Errno::OPNOTSUPP])),
                Ok(n) => return Ok(n),
            }
        }
    }

    /// Pipe -> file, up to `n` bytes. `Unsupported` from a file system that takes no splice writes.
    pub fn drain_into(&self, file: &File, n: usize) -> io::Result<usize> {
        loop {
            match splice(&self.read, None, file, None, n, SpliceFlags::MOVE) {
                Err(Errno::INTR) => {}
                Err(e) => return Err(refused(e, &[Errno::INVAL])),
                Ok(m) => return Ok(m),
            }
        }
    }

    /// Reads what the pipe holds into `buf`, by hand.
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match rustix::io::read(&self.read, &mut *buf) {
                Err(Errno::INTR) => {}
                other => return Ok(other?),
            }
        }
    }
}

/// Sends up to `want` bytes of `file` from `offset` with sendfile(2): the
/// kernel copies from the page cache straight into the socket.
pub fn sendfile(stream: &TcpStream, file: &File, offset: u64, want: usize) -> io::Result<usize> {
    loop {
        let mut at = offset;
        match rustix::fs::sendfile(stream, file, Some(&mut at), want) {
            Err(Errno::INTR) => {}
            Err(e) => return Err(refused(e, &[Errno::INVAL, Errno::NOSYS, Errno::OPNOTSUPP])),
            Ok(n) => return Ok(n),
        }
    }
}
