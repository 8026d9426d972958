//! Moving an upload's content from the socket into its partial file: splice(2) through a pipe on Linux, a reused buffer elsewhere.
//!
//! splice moves pages socket -> pipe -> file inside the kernel, so content
//! never crosses into user space. Where it is not available (another OS, a
//! file system that refuses it) the portable path reads into one buffer
//! allocated per worker. Both count bytes into the upload's shared counter.

use std::io::{self, ErrorKind, Read};
use std::net::TcpStream;

use crate::drop_folder::PartialFile;
use crate::pace::{self, Pace};
use crate::progress::ByteCounter;

/// The portable path's buffer, allocated once per worker.
const BUFFER_SIZE: usize = 256 * 1024;

/// What the pipe is asked to hold; the kernel may give less.
#[cfg(target_os = "linux")]
const PIPE_SIZE: usize = 1024 * 1024;

/// Why the content did not all arrive.
#[derive(Debug)]
pub enum CopyError {
    /// The client closed after `got` bytes.
    Closed { got: u64 },
    /// Reading from the client failed (a timeout included) after `got` bytes.
    Socket { got: u64, error: io::Error },
    /// Writing to the drop folder failed.
    Disk(io::Error),
}

/// One worker's way of copying, kept across its uploads. The pipe and the
/// buffer are made at the first upload that needs them, not before, so idle
/// workers hold no descriptors.
pub struct Copier {
    /// Still trying splice: asked for, and not refused by the system yet.
    splice: bool,
    #[cfg(target_os = "linux")]
    pipe: Option<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)>,
    buffer: Vec<u8>,
}

impl Copier {
    /// A copier that splices when `splice` is true and the system allows it.
    pub fn new(splice: bool) -> Copier {
        Copier {
            splice: splice && cfg!(target_os = "linux"),
            #[cfg(target_os = "linux")]
            pipe: None,
            buffer: Vec::new(),
        }
    }

    /// Copies exactly `size` bytes from `stream` into `file`, counting them.
    pub fn copy(
        &mut self,
        stream: &TcpStream,
        file: &mut PartialFile,
        size: u64,
        counter: &ByteCounter,
        mut pace: Option<&mut Pace>,
    ) -> Result<(), CopyError> {
        let mut got = 0;
        #[cfg(target_os = "linux")]
        if self.splice {
            if self.pipe.is_none() {
                // Out of descriptors, say: this upload takes the portable path, the next tries again.
                self.pipe = new_pipe().ok();
            }
            if self.pipe.is_some() {
                match self.splice(stream, file, size, counter, &mut got, pace.as_deref_mut()) {
                    Spliced::Fallback => {
                        self.splice = false;
                        self.pipe = None;
                    }
                    Spliced::Done => return Ok(()),
                    Spliced::Failed(e) => return Err(e),
                }
            }
        }
        self.read_write(stream, file, size, counter, got, pace)
    }

    /// The portable path: read into a buffer, write it out.
    fn read_write(
        &mut self,
        stream: &TcpStream,
        file: &mut PartialFile,
        size: u64,
        counter: &ByteCounter,
        mut got: u64,
        mut pace: Option<&mut Pace>,
    ) -> Result<(), CopyError> {
        if self.buffer.is_empty() {
            self.buffer = vec![0; BUFFER_SIZE];
        }
        while got < size {
            let want = pace::next_chunk(pace.as_deref(), self.buffer.len(), size - got);
            let n = match (&*stream).read(&mut self.buffer[..want]) {
                Ok(0) => return Err(CopyError::Closed { got }),
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(error) => return Err(CopyError::Socket { got, error }),
            };
            file.write_all(&self.buffer[..n]).map_err(CopyError::Disk)?;
            got += n as u64;
            counter.add(n as u64);
            if let Some(pace) = pace.as_deref_mut() {
                pace.moved(n as u64);
            }
        }
        Ok(())
    }
}

/// How a splice copy ended.
#[cfg(target_os = "linux")]
enum Spliced {
    /// Every byte is in the file.
    Done,
    Failed(CopyError),
    /// splice is not usable here: go on with the portable path (nothing was lost).
    Fallback,
}

#[cfg(target_os = "linux")]
fn new_pipe() -> io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    // A bigger pipe means fewer round trips; the default 64 KiB still works.
    let _ = rustix::pipe::fcntl_setpipe_size(&write, PIPE_SIZE);
    Ok((read, write))
}

#[cfg(target_os = "linux")]
impl Copier {
    fn splice(
        &mut self,
        stream: &TcpStream,
        file: &mut PartialFile,
        size: u64,
        counter: &ByteCounter,
        got: &mut u64,
        mut pace: Option<&mut Pace>,
    ) -> Spliced {
        use rustix::io::Errno;
        use rustix::pipe::{splice, SpliceFlags};

        let (pipe_read, pipe_write) = self.pipe.as_ref().expect("splice needs the pipe");
        while *got < size {
            let want = pace::next_chunk(pace.as_deref(), PIPE_SIZE, size - *got);
            // Socket -> pipe. The socket's read timeout applies, as it does to read().
            let n = match splice(stream, None, pipe_write, None, want, SpliceFlags::MOVE) {
                Ok(0) => return Spliced::Failed(CopyError::Closed { got: *got }),
                Ok(n) => n,
                Err(Errno::INTR) => continue,
                Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) if *got == 0 => {
                    return Spliced::Fallback
                }
                Err(e) => {
                    return Spliced::Failed(CopyError::Socket {
                        got: *got,
                        error: e.into(),
                    })
                }
            };
            // Pipe -> file, until the pipe is empty again.
            let mut left = n;
            while left > 0 {
                match splice(pipe_read, None, file.file(), None, left, SpliceFlags::MOVE) {
                    Ok(0) => return Spliced::Failed(CopyError::Disk(ErrorKind::WriteZero.into())),
                    Ok(m) => left -= m,
                    Err(Errno::INTR) => {}
                    Err(Errno::INVAL) if left == n => {
                        // This file system takes no splice writes: move the piped bytes by hand, then stop splicing.
                        let mut piped = vec![0; n];
                        let mut filled = 0;
                        while filled < n {
                            match rustix::io::read(pipe_read, &mut piped[filled..]) {
                                Ok(m) if m > 0 => filled += m,
                                Ok(_) => break,
                                Err(Errno::INTR) => {}
                                Err(e) => return Spliced::Failed(CopyError::Disk(e.into())),
                            }
                        }
                        if let Err(e) = file.write_all(&piped[..filled]) {
                            return Spliced::Failed(CopyError::Disk(e));
                        }
                        *got += filled as u64;
                        counter.add(filled as u64);
                        return Spliced::Fallback;
                    }
                    Err(e) => {
                        // Bytes stay in the pipe: drop it, the next upload makes a new one.
                        self.pipe = None;
                        return Spliced::Failed(CopyError::Disk(e.into()));
                    }
                }
            }
            file.written(n as u64);
            *got += n as u64;
            counter.add(n as u64);
            if let Some(pace) = pace.as_deref_mut() {
                pace.moved(n as u64);
            }
        }
        Spliced::Done
    }
}
