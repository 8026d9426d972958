//! Moving content from the socket into its partial file: splice(2) through a pipe where the OS layer has it (Linux), a reused buffer elsewhere; the one read-write-count loop ([`read_into`]) that classic uploads and batches share.
//!
//! splice moves pages socket -> pipe -> file inside the kernel, so content
//! never crosses into user space. Where it is not available (another OS, a
//! file system that refuses it) the portable path reads into one buffer
//! allocated per worker. Both go through a [`Meter`]: it counts bytes into the
//! upload's shared counter, holds `--rate`, and enforces `--min-rate`.

use std::io::{self, ErrorKind, Read};
use std::net::TcpStream;
use std::time::Duration;

use super::min_rate::MinRate;
use crate::drop_folder::PartialFile;
use crate::pace::{self, Pace};
use crate::progress::ByteCounter;

/// The portable path's buffer, allocated once per worker.
const BUFFER_SIZE: usize = 256 * 1024;

use crate::sys::copy::{Pipe, PIPE_SIZE};

/// Why the content did not all arrive.
#[derive(Debug)]
pub enum CopyError {
    /// The client closed after `got` bytes.
    Closed { got: u64 },
    /// Reading from the client failed (a timeout included) after `got` bytes.
    Socket { got: u64, error: io::Error },
    /// The client sent `got` bytes in a window of `window`: under `--min-rate`.
    TooSlow { got: u64, window: Duration },
    /// Writing to the drop folder failed.
    Disk(io::Error),
}

/// What watches an upload's bytes as they move: the count the screen shows,
/// the server's own pace (`--rate`) and the client's minimum (`--min-rate`).
pub struct Meter<'a> {
    pub counter: &'a ByteCounter,
    pub pace: Option<Pace>,
    pub min_rate: Option<MinRate>,
}

impl<'a> Meter<'a> {
    /// The meter of one upload (or one file of a batch) under `config`.
    pub(super) fn new(config: &crate::config::ServeConfig, counter: &'a ByteCounter) -> Meter<'a> {
        Meter {
            counter,
            pace: config.rate.map(Pace::new),
            min_rate: config
                .min_rate()
                .map(|rate| MinRate::new(rate, config.min_rate_window)),
        }
    }

    /// The next chunk to ask for, with `left` bytes to go.
    pub(super) fn chunk(&self, unpaced: usize, left: u64) -> usize {
        pace::next_chunk(self.pace.as_ref(), unpaced, left)
    }

    /// `n` more bytes are in the file, `total` in all.
    pub(super) fn moved(&mut self, n: u64, total: u64) -> Result<(), CopyError> {
        self.counter.add(n);
        if let Some(pace) = &mut self.pace {
            pace.moved(n);
        }
        match &mut self.min_rate {
            Some(min_rate) => min_rate.check(total).map_err(|slow| CopyError::TooSlow {
                got: slow.got,
                window: slow.window,
            }),
            None => Ok(()),
        }
    }
}

/// One worker's way of copying, kept across its uploads. The pipe and the
/// buffer are made at the first upload that needs them, not before, so idle
/// workers hold no descriptors.
pub struct Copier {
    /// Still trying splice: asked for, and not refused by the system yet.
    splice: bool,
    pipe: Option<Pipe>,
    buffer: Vec<u8>,
}

impl Copier {
    /// A copier that splices when `splice` is true and the system allows it.
    pub fn new(splice: bool) -> Copier {
        Copier {
            splice: splice && crate::sys::copy::IN_KERNEL,
            pipe: None,
            buffer: Vec::new(),
        }
    }

    /// Copies exactly `size` bytes from `stream` into `file`, through `meter`.
    pub fn copy(
        &mut self,
        stream: &TcpStream,
        file: &mut PartialFile,
        size: u64,
        meter: &mut Meter<'_>,
    ) -> Result<(), CopyError> {
        let mut got = 0;
        if self.splice {
            if self.pipe.is_none() {
                // Out of descriptors, say: this upload takes the portable path, the next tries again.
                self.pipe = Pipe::new().ok();
            }
            if self.pipe.is_some() {
                match self.splice(stream, file, size, meter, &mut got) {
                    Spliced::Fallback => {
                        self.splice = false;
                        self.pipe = None;
                    }
                    Spliced::Done => return Ok(()),
                    Spliced::Failed(e) => return Err(e),
                }
            }
        }
        self.read_write(stream, file, size, meter, got)
    }

    /// The portable path: read into a buffer, write it out.
    fn read_write(
        &mut self,
        stream: &TcpStream,
        file: &mut PartialFile,
        size: u64,
        meter: &mut Meter<'_>,
        got: u64,
    ) -> Result<(), CopyError> {
        if self.buffer.is_empty() {
            self.buffer = vec![0; BUFFER_SIZE];
        }
        read_into(
            &mut &*stream,
            file,
            size,
            meter,
            &mut self.buffer,
            got,
            |_| {},
        )
    }
}

/// Copies bytes `got` to `size` from `src` into `file` through `buffer`,
/// under `meter`, showing each piece to `seen` (a hasher, say) as it goes:
/// the read, write and count loop of all content that is not spliced.
pub fn read_into<R: Read>(
    src: &mut R,
    file: &mut PartialFile,
    size: u64,
    meter: &mut Meter<'_>,
    buffer: &mut [u8],
    mut got: u64,
    mut seen: impl FnMut(&[u8]),
) -> Result<(), CopyError> {
    while got < size {
        let want = meter.chunk(buffer.len(), size - got);
        let n = match src.read(&mut buffer[..want]) {
            Ok(0) => return Err(CopyError::Closed { got }),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(error) => return Err(CopyError::Socket { got, error }),
        };
        file.write_all(&buffer[..n]).map_err(CopyError::Disk)?;
        seen(&buffer[..n]);
        got += n as u64;
        meter.moved(n as u64, got)?;
    }
    Ok(())
}

/// How a splice copy ended.
enum Spliced {
    /// Every byte is in the file.
    Done,
    Failed(CopyError),
    /// splice is not usable here: go on with the portable path (nothing was lost).
    Fallback,
}

impl Copier {
    fn splice(
        &mut self,
        stream: &TcpStream,
        file: &mut PartialFile,
        size: u64,
        meter: &mut Meter<'_>,
        got: &mut u64,
    ) -> Spliced {
        while *got < size {
            let pipe = self.pipe.as_ref().expect("splice needs the pipe");
            let want = meter.chunk(PIPE_SIZE, size - *got);
            // Socket -> pipe. The socket's read timeout applies, as it does to read().
            let n = match pipe.fill(stream, want) {
                Ok(0) => return Spliced::Failed(CopyError::Closed { got: *got }),
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Unsupported && *got == 0 => {
                    return Spliced::Fallback
                }
                Err(error) => return Spliced::Failed(CopyError::Socket { got: *got, error }),
            };
            match self.drain_pipe(file, n) {
                Spliced::Done => {}
                Spliced::Fallback => {
                    // The bytes did reach the file, by hand.
                    *got += n as u64;
                    meter.counter.add(n as u64);
                    return Spliced::Fallback;
                }
                failed @ Spliced::Failed(_) => return failed,
            }
            *got += n as u64;
            if let Err(e) = meter.moved(n as u64, *got) {
                return Spliced::Failed(e);
            }
        }
        Spliced::Done
    }

    /// Pipe -> file, until the `n` bytes just spliced in are out again.
    fn drain_pipe(&mut self, file: &mut PartialFile, n: usize) -> Spliced {
        let pipe = self.pipe.as_ref().expect("splice needs the pipe");
        let mut left = n;
        while left > 0 {
            match file.write_with(|f| pipe.drain_into(f, left)) {
                Ok(0) => return Spliced::Failed(CopyError::Disk(ErrorKind::WriteZero.into())),
                Ok(m) => left -= m,
                // This file system takes no splice writes: move the piped bytes by hand, then stop splicing.
                Err(e) if e.kind() == ErrorKind::Unsupported && left == n => {
                    return match write_out_by_hand(pipe, file, n) {
                        Ok(()) => Spliced::Fallback,
                        Err(e) => Spliced::Failed(CopyError::Disk(e)),
                    }
                }
                Err(e) => {
                    // Bytes stay in the pipe: drop it, the next upload makes a new one.
                    self.pipe = None;
                    return Spliced::Failed(CopyError::Disk(e));
                }
            }
        }
        Spliced::Done
    }
}

/// Reads `n` bytes out of the pipe and writes them to the file.
fn write_out_by_hand(pipe: &Pipe, file: &mut PartialFile, n: usize) -> io::Result<()> {
    let mut piped = vec![0; n];
    let mut filled = 0;
    while filled < n {
        match pipe.read(&mut piped[filled..])? {
            0 => break,
            m => filled += m,
        }
    }
    file.write_all(&piped[..filled])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drop_folder::DropFolder;
    use crate::progress::ByteCounter;
    use crate::sys::copy::IN_KERNEL;
    use std::io::Write as _;

    /// A file of a batch that can be resumed goes into its part file with
    /// splice(2), as a classic upload does, and the worker goes on splicing
    /// after it. (A part opened for appending made splice refuse it, and the
    /// worker copied by hand from then on, classic uploads included.) The
    /// portable layer has no splice: the same bytes go through the buffer.
    #[test]
    fn a_part_is_spliced_into_and_splicing_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let folder = DropFolder::open(dir.path()).unwrap();
        let content = crate::noise::Noise::bytes(7, 300_000);
        let hash = blake3::hash(&content).to_hex().to_string();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let mut copier = Copier::new(true);
        let counter = ByteCounter::default();
        let mut meter = Meter::new(&crate::config::ServeConfig::default(), &counter);

        // Half of it, then cut off: the part holds what came.
        let (mut part, held) = folder.begin_resumable("big.bin", &hash, 300_000).unwrap();
        assert_eq!(held, 0);
        client.write_all(&content[..100_000]).unwrap();
        copier
            .copy(&server, &mut part, 100_000, &mut meter)
            .unwrap();
        drop(part);
        assert_eq!(copier.splice, IN_KERNEL, "splicing into a part was refused");

        // Taken up again: the rest goes after what is held.
        let (mut part, held) = folder.begin_resumable("big.bin", &hash, 300_000).unwrap();
        assert_eq!(held, 100_000);
        client.write_all(&content[100_000..]).unwrap();
        copier
            .copy(&server, &mut part, 200_000, &mut meter)
            .unwrap();
        assert_eq!(copier.splice, IN_KERNEL, "splicing into a part was refused");
        assert_eq!(part.keep().unwrap(), "big.bin");
        let saved = std::fs::read(dir.path().join("big.bin")).unwrap();
        assert!(saved == content, "big.bin differs from what was sent");

        // Sent whole again over a part: what was held goes, from the start.
        let other = crate::noise::Noise::bytes(8, 300_000);
        let hash = blake3::hash(&other).to_hex().to_string();
        let (mut part, _) = folder.begin_resumable("other.bin", &hash, 300_000).unwrap();
        client.write_all(&[0xee; 100_000]).unwrap();
        copier
            .copy(&server, &mut part, 100_000, &mut meter)
            .unwrap();
        drop(part);
        let (mut part, held) = folder.begin_resumable("other.bin", &hash, 300_000).unwrap();
        assert_eq!(held, 100_000);
        part.restart().unwrap();
        client.write_all(&other).unwrap();
        copier
            .copy(&server, &mut part, 300_000, &mut meter)
            .unwrap();
        assert_eq!(part.keep().unwrap(), "other.bin");
        let saved = std::fs::read(dir.path().join("other.bin")).unwrap();
        assert!(saved == other, "other.bin differs from what was sent");
    }
}
