//! Files for the portable layer: std by path, each name checked not to be a link before it is used, identity by creation time, free space from fs4.
//!
//! No client string ever picks a path (names reaching here are single safe
//! components), so what the path-based way loses against the Linux layer's
//! descriptors is only against a local user racing the server: one who swaps
//! a folder for a link between the check and the use.

use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::UNIX_EPOCH;

use crate::sys::{Access, FileId, Kind, Stat, NOT_A_FILE};

/// One folder, by path.
#[derive(Debug)]
pub struct Dir {
    path: PathBuf,
    id: Option<FileId>,
}

/// What tells opened folders apart, as a map key.
pub type DirKey = PathBuf;

const A_LINK: &str = "a link, not followed";

/// Held across a check and a rename, so that no two renames of ftx's own
/// replace what the other put there ([`Dir::rename_to`]).
static RENAMING: Mutex<()> = Mutex::new(());

impl Dir {
    pub fn open(path: &Path) -> io::Result<Dir> {
        let meta = std::fs::metadata(path)?;
        if !meta.is_dir() {
            return Err(io::Error::other("not a folder"));
        }
        Ok(Dir {
            path: path.to_path_buf(),
            id: id_of(&meta),
        })
    }

    /// `name` in this folder, as a folder; a link is refused.
    pub fn open_below(&self, name: &str) -> io::Result<Dir> {
        let path = self.path.join(name);
        let meta = std::fs::symlink_metadata(&path)?;
        match kind(&meta) {
            Kind::Dir => Ok(Dir {
                path,
                id: id_of(&meta),
            }),
            Kind::Link => Err(io::Error::other(A_LINK)),
            _ => Err(io::Error::other("not a folder")),
        }
    }

    pub fn id(&self) -> Option<FileId> {
        self.id
    }

    pub fn key(&self) -> DirKey {
        self.path.clone()
    }

    /// False once the folder has been removed, or replaced by another at its path.
    pub fn exists(&self) -> bool {
        std::fs::symlink_metadata(&self.path)
            .is_ok_and(|meta| meta.is_dir() && (self.id.is_none() || id_of(&meta) == self.id))
    }

    pub fn stat(&self) -> io::Result<Stat> {
        Ok(stat(&std::fs::symlink_metadata(&self.path)?))
    }

    /// What `name` is, never following a link.
    pub fn stat_at(&self, name: &str) -> io::Result<Stat> {
        Ok(stat(&std::fs::symlink_metadata(self.path.join(name))?))
    }

    /// Opens `name` to read it if it is a regular file; a link or anything
    /// else (a named pipe would be waited on) is refused before it is opened.
    pub fn open_to_read(&self, name: &str) -> io::Result<File> {
        match self.stat_at(name)?.kind {
            Kind::File => File::open(self.path.join(name)),
            Kind::Link => Err(io::Error::other(A_LINK)),
            _ => Err(io::Error::other(NOT_A_FILE)),
        }
    }

    /// Opens `name`, made with `mode` if missing; a link or anything but a
    /// regular file is refused.
    pub fn open_in(&self, name: &str, access: Access, mode: u32) -> io::Result<File> {
        match self.stat_at(name) {
            Ok(stat) if stat.kind == Kind::Link => return Err(io::Error::other(A_LINK)),
            Ok(stat) if stat.kind != Kind::File => return Err(io::Error::other(NOT_A_FILE)),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut options = OpenOptions::new();
        match access {
            Access::ReadWrite => options.read(true).write(true),
            Access::Append => options.append(true),
        };
        with_mode(options.create(true), mode).open(self.path.join(name))
    }

    /// Makes `name`, readable and writable, failing with `AlreadyExists` if
    /// anything (a dangling link included) has that name.
    pub fn create_new(&self, name: &str, mode: u32) -> io::Result<File> {
        let mut options = OpenOptions::new();
        with_mode(options.read(true).write(true).create_new(true), mode).open(self.path.join(name))
    }

    pub fn make_dir(&self, name: &str, mode: u32) -> io::Result<()> {
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, mode);
        #[cfg(not(unix))]
        let _ = mode;
        builder.create(self.path.join(name))
    }

    pub fn remove_file(&self, name: &str) -> io::Result<()> {
        std::fs::remove_file(self.path.join(name))
    }

    /// Removes the folder `name` if it is empty.
    pub fn remove_dir(&self, name: &str) -> io::Result<()> {
        std::fs::remove_dir(self.path.join(name))
    }

    /// Gives the file `name` a second name, `new` in `to`; `AlreadyExists` if taken.
    pub fn link_to(&self, name: &str, to: &Dir, new: &str) -> io::Result<()> {
        std::fs::hard_link(self.path.join(name), to.path.join(new))
    }

    /// Moves `name` to `new` in `to`, never replacing what ftx put there:
    /// `AlreadyExists` if taken. std's rename replaces, so the check and the
    /// rename are one step for ftx's own threads; another program can race it.
    pub fn rename_to(&self, name: &str, to: &Dir, new: &str) -> io::Result<()> {
        let _held = RENAMING.lock().unwrap_or_else(|e| e.into_inner());
        let target = to.path.join(new);
        match std::fs::symlink_metadata(&target) {
            Ok(_) => Err(io::ErrorKind::AlreadyExists.into()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::rename(self.path.join(name), target)
            }
            Err(e) => Err(e),
        }
    }

    /// No file without a name here: the caller makes a hidden named one.
    pub fn unnamed_file(&self) -> io::Result<Option<File>> {
        Ok(None)
    }

    pub fn link_unnamed(&self, _file: &File, _name: &str) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }

    /// Bytes the folder's file system has free for an unprivileged writer.
    pub fn free_space(&self) -> io::Result<u64> {
        fs4::available_space(&self.path)
    }
}

#[cfg(unix)]
fn with_mode(options: &mut OpenOptions, mode: u32) -> &mut OpenOptions {
    std::os::unix::fs::OpenOptionsExt::mode(options, mode)
}

#[cfg(not(unix))]
fn with_mode(options: &mut OpenOptions, _mode: u32) -> &mut OpenOptions {
    options
}

fn kind(meta: &Metadata) -> Kind {
    let kind = meta.file_type();
    if kind.is_symlink() {
        Kind::Link
    } else if kind.is_dir() {
        Kind::Dir
    } else if kind.is_file() {
        Kind::File
    } else {
        Kind::Other
    }
}

#[cfg(unix)]
fn owner(meta: &Metadata) -> (bool, bool, u64) {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let ours = meta.uid() == unsafe { libc::geteuid() };
    (ours, ours && meta.mode() & 0o022 == 0, meta.nlink())
}

/// Windows: no owner ftx can read with std; what the folder's ACL allows decides.
#[cfg(not(unix))]
fn owner(_meta: &Metadata) -> (bool, bool, u64) {
    (true, true, 1)
}

fn stat(meta: &Metadata) -> Stat {
    let (ours, private, links) = owner(meta);
    Stat {
        kind: kind(meta),
        size: meta.len(),
        links,
        ours,
        private,
        id: id_of(meta),
    }
}

pub fn stat_of(file: &File) -> io::Result<Stat> {
    Ok(stat(&file.metadata()?))
}

/// What is at `path`, following links; `NotFound` too where a part of the path is not a folder.
pub fn stat_path(path: &Path) -> io::Result<Stat> {
    match std::fs::metadata(path) {
        Ok(meta) => Ok(stat(&meta)),
        Err(e) if not_a_folder(&e) => Err(io::ErrorKind::NotFound.into()),
        Err(e) => Err(e),
    }
}

#[cfg(unix)]
fn not_a_folder(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOTDIR)
}

#[cfg(not(unix))]
fn not_a_folder(_e: &io::Error) -> bool {
    false
}

/// Reads at `offset`, leaving the file's position alone (a part being
/// resumed is hashed, then appended to through the same handle).
#[cfg(unix)]
pub fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

/// Windows' `seek_read` moves the position: it is put back.
#[cfg(windows)]
pub fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    use std::io::{Seek, SeekFrom};
    let was = (&*file).stream_position()?;
    let read = std::os::windows::fs::FileExt::seek_read(file, buf, offset);
    (&*file).seek(SeekFrom::Start(was))?;
    read
}

/// Opens `path` to read it, refusing what is not a regular file before it
/// is opened (a named pipe would wait for a writer).
pub fn open_without_waiting(path: &Path) -> io::Result<File> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() && !meta.is_dir() {
        return Err(io::Error::other(NOT_A_FILE));
    }
    File::open(path)
}

/// Makes `path`, readable and writable by this user only (Windows: as the
/// folder it is in allows, a user's own profile); `AlreadyExists` if there.
pub fn create_private(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    with_mode(options.write(true).create_new(true), 0o600).open(path)
}

/// Whether others than this user may read what `meta` describes.
#[cfg(unix)]
pub fn readable_by_others(meta: &Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o077 != 0
}

#[cfg(not(unix))]
pub fn readable_by_others(_meta: &Metadata) -> bool {
    false
}

fn nanos(time: io::Result<std::time::SystemTime>) -> u64 {
    time.ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The numbers that tell this file, as it is now, from any other on this
/// machine, as far as std tells: size, modification and creation times.
pub fn version_numbers(meta: &Metadata) -> Vec<u64> {
    vec![meta.len(), nanos(meta.modified()), nanos(meta.created())]
}

/// The identity of what `meta` describes: its creation time, where the file system keeps one.
pub fn id_of(meta: &Metadata) -> Option<FileId> {
    match nanos(meta.created()) {
        0 => None,
        ino => Some(FileId { dev: 0, ino }),
    }
}
