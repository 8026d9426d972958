//! Free space in the drop folder: what the file system has, less what uploads in flight were promised; one reservation per file being received.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::dir::Dir;
use super::BeginError;

/// Files smaller than this may start on a reading of the free space this recent
/// (less what has been written since), not a new one: one system call less per
/// file of a folder. Bigger files, and every file once it is older, read it again.
pub(super) const FREE_READING_FOR: u64 = 1 << 20;
const FREE_READING_LIFE: Duration = Duration::from_millis(100);

/// The space the server has promised and written, shared by its workers.
#[derive(Debug, Default)]
pub(super) struct Space {
    /// Bytes announced by uploads in flight and not written yet: space already promised.
    pub(super) outstanding: AtomicU64,
    /// The last reading of the free space, for small files that follow it closely.
    pub(super) free: Mutex<Option<FreeReading>>,
    /// Bytes written into partial files since the server started.
    pub(super) written: AtomicU64,
}

/// What the file system had free at a moment, and how much had been written by then.
#[derive(Debug)]
pub(super) struct FreeReading {
    pub(super) at: Instant,
    /// The file system's device, where the OS layer tells.
    pub(super) dev: Option<u64>,
    pub(super) free: u64,
    pub(super) written: u64,
}

impl Space {
    /// Promises `size` bytes on `dir`'s file system to one file, or says how
    /// much is free. The promise shrinks as the file is written
    /// ([`Space::wrote`]) and what is left of it goes with [`Space::release`].
    pub(super) fn reserve(&self, dir: &Dir, size: u64) -> Result<(), BeginError> {
        let available = self.free_for(dir, size).map_err(BeginError::Io)?;
        self.outstanding
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |promised| {
                (size <= available.saturating_sub(promised)).then_some(promised + size)
            })
            .map(drop)
            .map_err(|promised| BeginError::NoSpace {
                size,
                free: available.saturating_sub(promised),
            })
    }

    /// `n` promised bytes were written.
    pub(super) fn wrote(&self, n: u64) {
        self.outstanding.fetch_sub(n, Ordering::SeqCst);
        self.written.fetch_add(n, Ordering::SeqCst);
    }

    /// `n` promised bytes will not be written after all.
    pub(super) fn release(&self, n: u64) {
        self.outstanding.fetch_sub(n, Ordering::SeqCst);
    }

    /// Bytes free on `dir`'s file system for a file of `size` bytes, before what is promised.
    pub(super) fn free_for(&self, dir: &Dir, size: u64) -> io::Result<u64> {
        let mut reading = self.free.lock().expect("free space lock");
        let written = self.written.load(Ordering::SeqCst);
        if let Some(last) = reading.as_ref() {
            if size < FREE_READING_FOR
                && last.dev == dir.id().map(|id| id.dev)
                && last.at.elapsed() < FREE_READING_LIFE
            {
                return Ok(last.free.saturating_sub(written - last.written));
            }
        }
        let free = dir.free_space()?;
        *reading = Some(FreeReading {
            at: Instant::now(),
            dev: dir.id().map(|id| id.dev),
            free,
            written,
        });
        Ok(free)
    }
}
