//! Files on Linux: every way into the drop folder goes through a folder's open descriptor (`openat` and friends, never following a link), unnamed partial files (`O_TMPFILE`), and identity by device and inode.

use std::fs::{File, Metadata};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags};
use rustix::io::Errno;

use crate::sys::{Access, FileId, Kind, Stat, NOT_A_FILE};

/// One opened folder.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    id: FileId,
}

/// What tells opened folders apart, as a map key.
pub type DirKey = FileId;

impl Dir {
    pub fn open(path: &Path) -> io::Result<Dir> {
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
            id: FileId {
                dev: stat.st_dev,
                ino: stat.st_ino,
            },
        })
    }

    /// `name` in this folder, as a folder; a link is refused (`O_NOFOLLOW`).
    pub fn open_below(&self, name: &str) -> io::Result<Dir> {
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Dir::of(fd)
    }

    pub fn id(&self) -> Option<FileId> {
        Some(self.id)
    }

    pub fn key(&self) -> DirKey {
        self.id
    }

    /// False once the folder has been removed (it may still be open here).
    pub fn exists(&self) -> bool {
        rustix::fs::fstat(&self.fd).is_ok_and(|stat| stat.st_nlink > 0)
    }

    pub fn stat(&self) -> io::Result<Stat> {
        Ok(stat(&rustix::fs::fstat(&self.fd)?))
    }

    /// What `name` is, never following a link.
    pub fn stat_at(&self, name: &str) -> io::Result<Stat> {
        Ok(stat(&rustix::fs::statat(
            &self.fd,
            name,
            AtFlags::SYMLINK_NOFOLLOW,
        )?))
    }

    /// Opens `name` to read it, whatever it is, never following a link nor
    /// waiting (a named pipe is opened, not waited on): the caller judges what it got.
    pub fn open_to_read(&self, name: &str) -> io::Result<File> {
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        Ok(rustix::fs::openat(&self.fd, name, flags, Mode::empty())?.into())
    }

    /// Opens `name`, made with `mode` if missing, never following a link
    /// nor waiting; anything but a regular file is refused.
    pub fn open_in(&self, name: &str, access: Access, mode: u32) -> io::Result<File> {
        let access = match access {
            Access::ReadWrite => OFlags::RDWR,
            Access::Append => OFlags::WRONLY | OFlags::APPEND,
        };
        let flags = access | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let file = File::from(rustix::fs::openat(
            &self.fd,
            name,
            flags,
            Mode::from_raw_mode(mode),
        )?);
        match stat_of(&file)?.kind {
            Kind::File => Ok(file),
            _ => Err(io::Error::other(NOT_A_FILE)),
        }
    }

    /// Makes `name`, readable and writable, failing with `AlreadyExists` if
    /// anything (a dangling link included) has that name.
    pub fn create_new(&self, name: &str, mode: u32) -> io::Result<File> {
        let flags =
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        Ok(rustix::fs::openat(&self.fd, name, flags, Mode::from_raw_mode(mode))?.into())
    }

    pub fn make_dir(&self, name: &str, mode: u32) -> io::Result<()> {
        Ok(rustix::fs::mkdirat(
            &self.fd,
            name,
            Mode::from_raw_mode(mode),
        )?)
    }

    pub fn remove_file(&self, name: &str) -> io::Result<()> {
        Ok(rustix::fs::unlinkat(&self.fd, name, AtFlags::empty())?)
    }

    /// Removes the folder `name` if it is empty.
    pub fn remove_dir(&self, name: &str) -> io::Result<()> {
        Ok(rustix::fs::unlinkat(&self.fd, name, AtFlags::REMOVEDIR)?)
    }

    /// Gives the file `name` a second name, `new` in `to`; `AlreadyExists` if taken.
    pub fn link_to(&self, name: &str, to: &Dir, new: &str) -> io::Result<()> {
        Ok(rustix::fs::linkat(
            &self.fd,
            name,
            &to.fd,
            new,
            AtFlags::empty(),
        )?)
    }

    /// Moves `name` to `new` in `to`, never replacing: `AlreadyExists` if taken.
    pub fn rename_to(&self, name: &str, to: &Dir, new: &str) -> io::Result<()> {
        Ok(rustix::fs::renameat_with(
            &self.fd,
            name,
            &to.fd,
            new,
            RenameFlags::NOREPLACE,
        )?)
    }

    /// A file in this folder's file system with no name (`O_TMPFILE`),
    /// readable and writable; `None` where the file system has none.
    pub fn unnamed_file(&self) -> io::Result<Option<File>> {
        let flags = OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC;
        match rustix::fs::openat(&self.fd, ".", flags, Mode::from_raw_mode(0o644)) {
            Ok(fd) => Ok(Some(fd.into())),
            Err(Errno::OPNOTSUPP | Errno::ISDIR | Errno::INVAL) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Names a file from [`Dir::unnamed_file`]. `AT_EMPTY_PATH` needs
    /// `CAP_DAC_READ_SEARCH` on most kernels; without it, the same link
    /// through `/proc/self/fd` works for anyone.
    pub fn link_unnamed(&self, file: &File, name: &str) -> io::Result<()> {
        match rustix::fs::linkat(file, "", &self.fd, name, AtFlags::EMPTY_PATH) {
            Err(Errno::NOENT | Errno::PERM) => self.link_through_proc(file, name),
            other => Ok(other?),
        }
    }

    /// [`Dir::link_unnamed`]'s way without `AT_EMPTY_PATH`.
    pub fn link_through_proc(&self, file: &File, name: &str) -> io::Result<()> {
        let path = format!("/proc/self/fd/{}", file.as_raw_fd());
        Ok(rustix::fs::linkat(
            rustix::fs::CWD,
            path.as_str(),
            &self.fd,
            name,
            AtFlags::SYMLINK_FOLLOW,
        )?)
    }

    /// Bytes the folder's file system has free for an unprivileged writer.
    pub fn free_space(&self) -> io::Result<u64> {
        let stat = rustix::fs::fstatvfs(&self.fd)?;
        Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
    }
}

fn stat(stat: &rustix::fs::Stat) -> Stat {
    let ours = stat.st_uid == rustix::process::geteuid().as_raw();
    let kind = FileType::from_raw_mode(stat.st_mode);
    Stat {
        kind: match kind {
            FileType::RegularFile => Kind::File,
            FileType::Directory => Kind::Dir,
            FileType::Symlink => Kind::Link,
            _ => Kind::Other,
        },
        size: u64::try_from(stat.st_size).unwrap_or(0),
        links: stat.st_nlink,
        ours,
        private: ours && stat.st_mode & 0o022 == 0,
        id: Some(FileId {
            dev: stat.st_dev,
            ino: stat.st_ino,
        }),
    }
}

pub fn stat_of(file: &File) -> io::Result<Stat> {
    Ok(stat(&rustix::fs::fstat(file)?))
}

/// What is at `path`, following links; `NotFound` too where a part of the path is not a folder.
pub fn stat_path(path: &Path) -> io::Result<Stat> {
    match rustix::fs::stat(path) {
        Ok(s) => Ok(stat(&s)),
        Err(Errno::NOTDIR) => Err(io::ErrorKind::NotFound.into()),
        Err(e) => Err(e.into()),
    }
}

/// Reads at `offset`, leaving the file's position alone.
pub fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    file.read_at(buf, offset)
}

/// Opens `path` to read it without waiting: opening a named pipe waits for a
/// writer, a device may wait too, and neither is a file to send.
pub fn open_without_waiting(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

/// Makes `path`, readable and writable by this user only; `AlreadyExists` if there.
pub fn create_private(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

/// Whether others than this user may read what `meta` describes.
pub fn readable_by_others(meta: &Metadata) -> bool {
    meta.permissions().mode() & 0o077 != 0
}

/// The numbers that tell this file, as it is now, from any other on this
/// machine: size, modification time, device and inode.
pub fn version_numbers(meta: &Metadata) -> Vec<u64> {
    vec![
        meta.size(),
        meta.mtime() as u64,
        meta.mtime_nsec() as u64,
        meta.dev(),
        meta.ino(),
    ]
}

/// The identity of what `meta` describes: its device and inode.
pub fn id_of(meta: &Metadata) -> Option<FileId> {
    Some(FileId {
        dev: meta.dev(),
        ino: meta.ino(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// The way a server without `CAP_DAC_READ_SEARCH` names an unnamed file.
    #[test]
    fn unnamed_files_can_be_named_without_privileges_too() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::open(tmp.path()).unwrap();
        if let Some(mut file) = dir.unnamed_file().unwrap() {
            file.write_all(b"abc").unwrap();
            dir.link_through_proc(&file, "via-proc").unwrap();
            assert_eq!(std::fs::read(tmp.path().join("via-proc")).unwrap(), b"abc");
        }
    }
}
