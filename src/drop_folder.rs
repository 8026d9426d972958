//! The drop folder: files are received under a hidden temporary name and appear under their final name only when complete.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context;

use crate::names;

/// Temporary files start with this, so they are hidden and easy to recognise.
pub const PARTIAL_PREFIX: &str = ".ftx-partial-";

/// How many numbered names (`notes (1).txt`, ...) are tried before giving up.
const MAX_NUMBERED: u32 = 9999;

/// The folder uploads land in, and the partial files currently being written there.
#[derive(Debug, Clone)]
pub struct DropFolder {
    path: PathBuf,
    partials: Arc<Mutex<HashSet<PathBuf>>>,
    counter: Arc<AtomicU64>,
}

impl DropFolder {
    /// Opens (creating if needed) the drop folder.
    pub fn open(path: &Path) -> anyhow::Result<DropFolder> {
        fs::create_dir_all(path)
            .with_context(|| format!("creating drop folder {}", path.display()))?;
        let path = fs::canonicalize(path)
            .with_context(|| format!("opening drop folder {}", path.display()))?;
        anyhow::ensure!(path.is_dir(), "{} is not a folder", path.display());
        Ok(DropFolder {
            path,
            partials: Arc::default(),
            counter: Arc::default(),
        })
    }

    /// Where files go.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Starts receiving a file that will be saved as `safe_name` (or a numbered variant).
    /// `safe_name` must come from [`names::safe_file_name`].
    pub fn begin(&self, safe_name: &str) -> io::Result<PartialFile> {
        loop {
            let n = self.counter.fetch_add(1, Ordering::Relaxed);
            let temp = self
                .path
                .join(format!("{PARTIAL_PREFIX}{}-{n}", std::process::id()));
            // create_new refuses anything already there, a planted symlink included.
            match OpenOptions::new().write(true).create_new(true).open(&temp) {
                Ok(file) => {
                    self.partials
                        .lock()
                        .expect("partials lock")
                        .insert(temp.clone());
                    return Ok(PartialFile {
                        file,
                        temp,
                        name: safe_name.to_string(),
                        folder: self.clone(),
                        done: false,
                    });
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Removes every partial file still being written. For a hurried exit.
    pub fn remove_partials(&self) {
        let partials = self.partials.lock().expect("partials lock");
        for path in partials.iter() {
            let _ = fs::remove_file(path);
        }
    }

    fn forget(&self, temp: &Path) {
        self.partials.lock().expect("partials lock").remove(temp);
    }
}

/// A file being received. Dropping it without [`PartialFile::keep`] deletes it.
#[derive(Debug)]
pub struct PartialFile {
    file: File,
    temp: PathBuf,
    name: String,
    folder: DropFolder,
    done: bool,
}

impl PartialFile {
    /// The open file to write content into.
    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// Moves the complete file to its final name, never replacing an existing
    /// entry: if the name is taken it becomes `name (1).ext`, `name (2).ext`, ...
    /// Returns the name it was saved under.
    pub fn keep(mut self) -> io::Result<String> {
        for n in 0..=MAX_NUMBERED {
            let candidate = names::numbered(&self.name, n);
            let target = self.folder.path.join(&candidate);
            // A hard link is created atomically and fails if anything, even a
            // dangling symlink, already has that name.
            match fs::hard_link(&self.temp, &target) {
                Ok(()) => {
                    self.remove_temp();
                    return Ok(candidate);
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(_) => match self.reserve_and_rename(&target) {
                    Ok(true) => return Ok(candidate),
                    Ok(false) => continue,
                    Err(e) => return Err(e),
                },
            }
        }
        Err(io::Error::new(
            ErrorKind::AlreadyExists,
            format!(
                "{} and {MAX_NUMBERED} numbered names are all taken",
                self.name
            ),
        ))
    }

    /// For file systems without hard links: claim the name with an empty file
    /// (refused if anything is there), then rename over our own claim.
    fn reserve_and_rename(&mut self, target: &Path) -> io::Result<bool> {
        match OpenOptions::new().write(true).create_new(true).open(target) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(e),
        }
        if let Err(e) = fs::rename(&self.temp, target) {
            let _ = fs::remove_file(target);
            return Err(e);
        }
        self.folder.forget(&self.temp);
        self.done = true;
        Ok(true)
    }

    fn remove_temp(&mut self) {
        let _ = fs::remove_file(&self.temp);
        self.folder.forget(&self.temp);
        self.done = true;
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if !self.done {
            self.remove_temp();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn complete_files_appear_under_their_name_only_when_kept() {
        let dir = tempfile::tempdir().unwrap();
        let folder = DropFolder::open(&dir.path().join("drop")).unwrap();
        let mut partial = folder.begin("notes.txt").unwrap();
        partial.file().write_all(b"hello").unwrap();
        assert!(!folder.path().join("notes.txt").exists());
        assert_eq!(partial.keep().unwrap(), "notes.txt");
        assert_eq!(entries(folder.path()), ["notes.txt"]);
        assert_eq!(fs::read(folder.path().join("notes.txt")).unwrap(), b"hello");
    }

    #[test]
    fn dropped_partial_files_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let folder = DropFolder::open(dir.path()).unwrap();
        let mut partial = folder.begin("notes.txt").unwrap();
        partial.file().write_all(b"half").unwrap();
        drop(partial);
        assert!(entries(folder.path()).is_empty());
    }

    #[test]
    fn never_replaces_files_or_links_already_there() {
        let dir = tempfile::tempdir().unwrap();
        let folder = DropFolder::open(dir.path()).unwrap();
        fs::write(folder.path().join("a.txt"), b"precious").unwrap();
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");
        std::os::unix::fs::symlink(&victim, folder.path().join("a (1).txt")).unwrap();

        let mut partial = folder.begin("a.txt").unwrap();
        partial.file().write_all(b"new").unwrap();
        assert_eq!(partial.keep().unwrap(), "a (2).txt");
        assert_eq!(fs::read(folder.path().join("a.txt")).unwrap(), b"precious");
        assert_eq!(fs::read(folder.path().join("a (2).txt")).unwrap(), b"new");
        assert!(!victim.exists(), "the planted link was followed");
    }

    #[test]
    fn remove_partials_deletes_files_in_flight() {
        let dir = tempfile::tempdir().unwrap();
        let folder = DropFolder::open(dir.path()).unwrap();
        let partial = folder.begin("x").unwrap();
        assert_eq!(entries(folder.path()).len(), 1);
        folder.remove_partials();
        assert!(entries(folder.path()).is_empty());
        drop(partial);
    }
}
