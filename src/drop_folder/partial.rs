//! Partial files: a file being received, unnamed (`O_TMPFILE`) or hidden, that gets its final name only once every byte is in, and never replaces anything.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Seek, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::dir::{all_taken, taken, Dir, Unplaced};
use super::{BeginError, DropFolder};

/// Temporary files start with this, so they are hidden and easy to recognise.
pub const PARTIAL_PREFIX: &str = ".ftx-partial-";

/// The hidden named partial files being written, where the system has no unnamed ones.
#[derive(Debug, Default)]
pub(super) struct NamedPartials {
    /// Each one's name, and the folder it is in.
    in_flight: Mutex<HashMap<String, Arc<Dir>>>,
    /// Numbers them.
    next: AtomicU64,
}

/// Files of a batch from this size up have their name looked up before
/// their content is taken ([`DropFolder::begin_batched`]).
pub const NAME_LOOKED_UP_FROM: u64 = 1 << 20;

/// Whether a batch's file of `size` bytes has its name looked up first.
pub(super) fn looked_up(size: u64) -> bool {
    size >= NAME_LOOKED_UP_FROM
}

/// How a file being received is held.
#[derive(Debug)]
pub(super) enum Temp {
    /// An `O_TMPFILE`: no name until it is kept.
    Unnamed,
    /// A hidden file of that name in the drop folder.
    Named(String),
    /// A part file of a batch (PROTOCOL.md B8): `.ftx-partial/NAME`, kept if
    /// the upload breaks off, so that it can be resumed.
    Part { staging: Arc<Dir>, name: String },
}

/// A file being received. Dropping it without [`PartialFile::keep`] deletes it.
#[derive(Debug)]
pub struct PartialFile {
    pub(super) file: File,
    pub(super) temp: Temp,
    name: String,
    /// The folder it is being written in.
    pub(super) dir: Arc<Dir>,
    /// The drop folder as it was when the upload began.
    root: Arc<Dir>,
    folder: DropFolder,
    /// Announced bytes not written yet (still promised in the drop folder's space).
    remaining: u64,
    done: bool,
    /// A part whose content is known to be wrong: removed, not kept for a resume.
    discard: bool,
}

impl DropFolder {
    /// Starts receiving `size` bytes that will be saved as `safe_name` (or a
    /// numbered variant). `safe_name` must come from [`crate::names::safe_file_name`].
    /// Refuses if the folder is gone or the size does not fit in the free space.
    pub fn begin(&self, safe_name: &str, size: u64) -> Result<PartialFile, BeginError> {
        let root = self.dir()?;
        self.begin_in(&root, Arc::clone(&root), safe_name, size, true)
    }

    /// [`DropFolder::begin`] for a file of a batch, whose answer comes after
    /// its content anyway: a file under [`NAME_LOOKED_UP_FROM`] is not
    /// looked up before (its name is found when it is kept; a name whose
    /// numbered names are all taken fails it then, its few bytes read for
    /// nothing), one system call less per small file.
    pub fn begin_batched(&self, safe_name: &str, size: u64) -> Result<PartialFile, BeginError> {
        let root = self.dir()?;
        self.begin_in(&root, Arc::clone(&root), safe_name, size, looked_up(size))
    }

    /// [`DropFolder::begin`] in `dir`, a folder of a tree under `root` (the
    /// drop folder it was made in); with `look_up`, refused at once when the
    /// name and its numbered names are all taken.
    pub(super) fn begin_in(
        &self,
        root: &Arc<Dir>,
        dir: Arc<Dir>,
        safe_name: &str,
        size: u64,
        look_up: bool,
    ) -> Result<PartialFile, BeginError> {
        if look_up {
            self.name_for(&dir, safe_name)?;
        }
        self.space.reserve(&dir, size)?;
        match self.create_partial(&dir) {
            Ok((file, temp)) => Ok(self.partial(file, temp, safe_name, dir, root, size)),
            Err(e) => {
                self.space.release(size);
                // Removed between the check and now: say so plainly.
                Err(if dir.exists() {
                    BeginError::Io(e)
                } else {
                    BeginError::FolderGone
                })
            }
        }
    }

    /// Fails, before anything is received, when `safe_name` and every
    /// numbered name are taken in `dir`.
    pub(super) fn name_for(&self, dir: &Dir, safe_name: &str) -> Result<(), BeginError> {
        match self.numbering.any_free(dir, safe_name) {
            Ok(()) => Ok(()),
            Err(Unplaced::AllTaken) => Err(BeginError::AllTaken(safe_name.to_string())),
            Err(Unplaced::Failed(e)) => Err(BeginError::Io(e)),
        }
    }

    /// A partial file for `file`, held as `temp`, to be saved as `safe_name`
    /// in `dir`; `promised` bytes of space were reserved for it.
    pub(super) fn partial(
        &self,
        file: File,
        temp: Temp,
        safe_name: &str,
        dir: Arc<Dir>,
        root: &Arc<Dir>,
        promised: u64,
    ) -> PartialFile {
        PartialFile {
            file,
            temp,
            name: safe_name.to_string(),
            dir,
            root: Arc::clone(root),
            folder: self.clone(),
            remaining: promised,
            done: false,
            discard: false,
        }
    }

    fn create_partial(&self, dir: &Arc<Dir>) -> io::Result<(File, Temp)> {
        // Readable too: a batch hashes what it wrote (PROTOCOL.md B4). File
        // systems without unnamed files: a named partial file instead.
        if self.unnamed {
            if let Some(file) = dir.unnamed_file()? {
                return Ok((file, Temp::Unnamed));
            }
        }
        loop {
            let n = self.named.next.fetch_add(1, Ordering::Relaxed);
            let temp = format!("{PARTIAL_PREFIX}{}-{n}", self.pid);
            // Refuses anything already there, a planted symlink included.
            match dir.create_new(&temp, 0o644) {
                Ok(file) => {
                    self.named
                        .in_flight
                        .lock()
                        .expect("partials lock")
                        .insert(temp.clone(), Arc::clone(dir));
                    return Ok((file, Temp::Named(temp)));
                }
                Err(e) if taken(&e) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Removes every partial file still being written. For a hurried exit.
    pub fn remove_partials(&self) {
        for (temp, dir) in self.named.in_flight.lock().expect("partials lock").iter() {
            let _ = dir.remove_file(temp);
        }
    }

    fn forget_partial(&self, temp: &str) {
        self.named
            .in_flight
            .lock()
            .expect("partials lock")
            .remove(temp);
    }
}

impl PartialFile {
    /// For a part being resumed: feeds the bytes it already holds to `hasher`.
    pub fn hash_held(&self, hasher: &mut blake3::Hasher, held: u64) -> io::Result<()> {
        crate::file_hash::hash_from(&self.file, held, hasher)
    }

    /// A second handle on the file, to read back what was written.
    pub fn reader(&self) -> io::Result<File> {
        self.file.try_clone()
    }

    /// Empties a part that is being sent whole again.
    pub fn restart(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.file.seek(io::SeekFrom::Start(0)).map(drop)
    }

    /// The content is wrong: a part is removed, not kept for a resume.
    pub fn discard(&mut self) {
        self.discard = true;
    }

    /// Appends received content.
    pub fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)?;
        self.wrote(bytes.len() as u64);
        Ok(())
    }

    /// Appends what `write` puts into the file (splice(2), say), which
    /// returns how many bytes that was; they are counted as written.
    pub fn write_with<E>(
        &mut self,
        write: impl FnOnce(&File) -> Result<usize, E>,
    ) -> Result<usize, E> {
        let n = write(&self.file)?;
        self.wrote(n as u64);
        Ok(n)
    }

    /// `n` bytes are in the file: that much less of the space promised is still to come.
    fn wrote(&mut self, n: u64) {
        let n = n.min(self.remaining);
        self.remaining -= n;
        self.folder.space.wrote(n);
    }

    /// Moves the complete file to its final name, never replacing an existing
    /// entry: if the name is taken it becomes `name (1).ext`, `name (2).ext`, ...
    /// Returns the name it was saved under. Fails if the drop folder was
    /// removed or replaced while the file was received: the file would be lost.
    pub fn keep(mut self) -> io::Result<String> {
        // In a folder below the drop folder, the check of that folder after
        // the link below also sees the drop folder removed.
        let below = !Arc::ptr_eq(&self.dir, &self.root);
        match self.folder.lookup(!below) {
            Ok(now) if Arc::ptr_eq(&now, &self.root) => {}
            Ok(_) => {
                return Err(io::Error::other(
                    "the drop folder was replaced during the upload",
                ))
            }
            Err(_) => {
                return Err(io::Error::other(
                    "the drop folder was removed during the upload",
                ))
            }
        }
        let name = self.name.clone();
        let (numbering, dir) = (Arc::clone(&self.folder.numbering), Arc::clone(&self.dir));
        match numbering.first_free(&dir, &name, |candidate| self.place(candidate)) {
            Ok(kept) => {
                self.done = true;
                if !self.dir.exists() {
                    return Err(io::Error::other(
                        "the drop folder was removed as the file was saved",
                    ));
                }
                Ok(kept)
            }
            Err(Unplaced::Failed(e))
                if e.kind() == io::ErrorKind::NotFound && !self.dir.exists() =>
            {
                Err(io::Error::other(
                    "the drop folder was removed during the upload",
                ))
            }
            Err(Unplaced::Failed(e)) => Err(e),
            Err(Unplaced::AllTaken) => Err(all_taken(&name)),
        }
    }

    /// Gives the file the name `candidate`, atomically, failing with
    /// `AlreadyExists` if anything (even a dangling symlink) already has that name.
    fn place(&mut self, candidate: &str) -> io::Result<()> {
        let dir = &self.dir;
        match &self.temp {
            Temp::Unnamed => dir.link_unnamed(&self.file, candidate),
            Temp::Part { staging, name } => {
                staging.link_to(name, dir, candidate)?;
                let _ = staging.remove_file(name);
                self.folder.tidy_staging(&self.root);
                Ok(())
            }
            Temp::Named(temp) => {
                // A hard link, then the temporary name goes; where the file system
                // has no hard links, a rename that refuses to replace does the same.
                match dir.link_to(temp, dir, candidate) {
                    Ok(()) => {
                        let _ = dir.remove_file(temp);
                    }
                    Err(e) if taken(&e) => return Err(e),
                    Err(_) => dir.rename_to(temp, dir, candidate)?,
                }
                self.folder.forget_partial(temp);
                Ok(())
            }
        }
    }
}

/// Removes the hidden partial files (`.ftx-partial-PID-N`) at the top of
/// `dir` (at `path`) that a server no longer running left: one killed
/// (`kill -9`, a crash) while it received them, where partial files have
/// names (the portable layer, a file system without `O_TMPFILE`). Files of
/// a process still running, or of one the system cannot tell about, stay.
pub(super) fn remove_stale(dir: &Dir, path: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(path) else {
        return;
    };
    let ours = std::process::id();
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some((pid, n)) = name
            .strip_prefix(PARTIAL_PREFIX)
            .and_then(|rest| rest.split_once('-'))
        else {
            continue;
        };
        let (Ok(pid), Ok(_)) = (pid.parse::<u32>(), n.parse::<u64>()) else {
            continue;
        };
        if pid != ours && crate::sys::process::alive(pid) == Some(false) {
            let _ = dir.remove_file(name);
        }
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        self.folder.space.release(self.remaining);
        // An unnamed file is freed when it is closed; a named one must be removed;
        // a part stays, to be resumed, unless its content is known to be wrong.
        match (self.done, &self.temp) {
            (false, Temp::Named(temp)) => {
                let _ = self.dir.remove_file(temp);
                self.folder.forget_partial(temp);
            }
            (done, Temp::Part { staging, name }) => {
                if !done && self.discard {
                    let _ = staging.remove_file(name);
                    self.folder.tidy_staging(&self.root);
                }
                self.folder.part_done(name);
            }
            _ => {}
        }
    }
}
