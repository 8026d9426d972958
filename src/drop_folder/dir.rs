//! One opened folder of the drop folder, and the ways into it that never follow a link nor wait: folders below, regular files, the first free numbered name.

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;

use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::names;

/// How many numbered names (`notes (1).txt`, ...) are tried before giving up.
pub const MAX_NUMBERED: u32 = 9999;

/// What opening something in the drop folder that is not a regular file says.
pub(super) const NOT_A_FILE: &str = "not a regular file";

/// One opened folder, and which one it is.
#[derive(Debug)]
pub(super) struct Dir {
    pub(super) fd: OwnedFd,
    pub(super) dev: u64,
    pub(super) ino: u64,
}

impl Dir {
    pub(super) fn open(path: &Path) -> io::Result<Dir> {
        let fd = rustix::fs::open(
            path,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Dir::of(fd)
    }

    fn of(fd: OwnedFd) -> io::Result<Dir> {
        let stat = rustix::fs::fstat(&fd)?;
        Ok(Dir {
            fd,
            dev: stat.st_dev,
            ino: stat.st_ino,
        })
    }

    /// False once the folder has been removed (it may still be open here).
    pub(super) fn exists(&self) -> bool {
        rustix::fs::fstat(&self.fd).is_ok_and(|stat| stat.st_nlink > 0)
    }
}

/// Opens `name` in `dir` as a folder, refusing a link (`O_NOFOLLOW`).
pub(super) fn open_below(dir: &Dir, name: &str) -> io::Result<Arc<Dir>> {
    let fd = rustix::fs::openat(
        &dir.fd,
        name,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    Dir::of(fd).map(Arc::new)
}

/// Opens the regular file `name` in `dir` to read it, with its size: no link
/// followed, and without waiting, so that a named pipe put there is refused,
/// not waited on.
pub(super) fn open_regular(dir: &Dir, name: &str) -> io::Result<(File, u64)> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    regular(rustix::fs::openat(&dir.fd, name, flags, Mode::empty())?)
}

/// `fd` as a file, with its size, if it is a regular file; [`NOT_A_FILE`] otherwise.
pub(super) fn regular(fd: OwnedFd) -> io::Result<(File, u64)> {
    let stat = rustix::fs::fstat(&fd)?;
    if !FileType::from_raw_mode(stat.st_mode).is_file() {
        return Err(io::Error::other(NOT_A_FILE));
    }
    Ok((File::from(fd), u64::try_from(stat.st_size).unwrap_or(0)))
}

/// Why no name of the numbered series could be had.
#[derive(Debug)]
pub(super) enum Unplaced {
    /// The name and its [`MAX_NUMBERED`] numbered names are all taken.
    AllTaken,
    /// Placing under a free name failed otherwise.
    Failed(Errno),
}

/// Gives something `name`, or the first of `name (1)`, `name (2)`... that is
/// free, with `place`, which fails with `EEXIST` for a name taken (a dangling
/// link included). Returns the name it got.
pub(super) fn first_free(
    name: &str,
    mut place: impl FnMut(&str) -> Result<(), Errno>,
) -> Result<String, Unplaced> {
    for n in 0..=MAX_NUMBERED {
        let candidate = names::numbered(name, n);
        match place(&candidate) {
            Ok(()) => return Ok(candidate),
            Err(Errno::EXIST) => {}
            Err(e) => return Err(Unplaced::Failed(e)),
        }
    }
    Err(Unplaced::AllTaken)
}

/// What [`Unplaced::AllTaken`] says of `name`.
pub(super) fn all_taken(name: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("{name} and {MAX_NUMBERED} numbered names are all taken"),
    )
}

/// Makes a named pipe at `path`, for tests of what meets one.
#[cfg(test)]
pub(crate) fn make_fifo(path: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        FileType::Fifo,
        Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
}
