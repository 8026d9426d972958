//! Content moved by the portable layer: no in-kernel path, so every [`Pipe`] and [`sendfile`] says `Unsupported` and the caller copies through its buffer.

use std::fs::File;
use std::io;
use std::net::TcpStream;

/// Whether [`Pipe`] and [`sendfile`] can work here at all.
pub const IN_KERNEL: bool = false;

/// What a pipe would be asked to hold.
pub const PIPE_SIZE: usize = 1024 * 1024;

fn unsupported() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "no splice(2) in the portable layer",
    )
}

/// No pipe can be made: [`Pipe::new`] always fails.
#[derive(Debug)]
pub struct Pipe(());

impl Pipe {
    pub fn new() -> io::Result<Pipe> {
        Err(unsupported())
    }

    pub fn fill(&self, _stream: &TcpStream, _want: usize) -> io::Result<usize> {
        Err(unsupported())
    }

    pub fn drain_into(&self, _file: &File, _n: usize) -> io::Result<usize> {
        Err(unsupported())
    }

    pub fn read(&self, _buf: &mut [u8]) -> io::Result<usize> {
        Err(unsupported())
    }
}

pub fn sendfile(
    _stream: &TcpStream,
    _file: &File,
    _offset: u64,
    _want: usize,
) -> io::Result<usize> {
    Err(unsupported())
}
