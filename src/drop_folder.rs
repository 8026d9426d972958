//! The drop folder: files are received without a name (or under a hidden one) and appear under their final name only when complete.
//!
//! On Linux a file being received is an unnamed `O_TMPFILE` in the drop
//! folder: nothing partial is ever visible, and the kernel frees it whatever
//! happens to the server (a crash or `kill -9` included). It gets its name by
//! `linkat` once every byte is in. Where the file system has no `O_TMPFILE`,
//! a hidden `.ftx-partial-PID-N` file is used instead and removed on every
//! failure path. Every operation goes through the folder's open descriptor,
//! with names that are single safe components, so nothing a client sends, and
//! no link planted in the folder, can redirect a write elsewhere.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Seek, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags};
use rustix::io::Errno;

use crate::names;

mod noted;

/// Temporary files start with this, so they are hidden and easy to recognise.
pub const PARTIAL_PREFIX: &str = ".ftx-partial-";

/// How long the drop folder's path, once looked up, is taken to still name
/// the folder open (a folder removed is seen at once all the same).
const PATH_LOOKUP_EVERY: std::time::Duration = std::time::Duration::from_millis(1);

/// How many numbered names (`notes (1).txt`, ...) are tried before giving up.
const MAX_NUMBERED: u32 = 9999;

/// The folder uploads land in, and the partial files being written there.
#[derive(Debug, Clone)]
pub struct DropFolder {
    path: PathBuf,
    /// The folder now at `path`, opened (opened again when the folder at
    /// `path` is a new one), and when its path was last looked up.
    current: Arc<Mutex<(Arc<Dir>, std::time::Instant)>>,
    /// Named partial files being written, and the folder each is in.
    partials: Arc<Mutex<HashMap<String, Arc<Dir>>>>,
    /// Numbers the named partial files.
    next_partial: Arc<AtomicU64>,
    /// Bytes announced by uploads in flight and not written yet: space already promised.
    outstanding: Arc<AtomicU64>,
    /// This process's id, part of every named partial file's name.
    pid: u32,
    /// Files saved by classic uploads that a batch may still move into its folder (PROTOCOL.md B4a).
    claims: Arc<Mutex<HashMap<String, Claim>>>,
    /// Parts being written now: a second batch resuming one of them starts afresh instead.
    parts_busy: Arc<Mutex<std::collections::HashSet<String>>>,
    /// Held while the folder of parts is made and a part created in it, and
    /// while it is removed once empty, so that one batch never removes it
    /// under another.
    staging_lock: Arc<Mutex<()>>,
    /// Top folders made by a batch that other batches of the same sender may
    /// fill too (PROTOCOL.md B5a), by token, with when they were shared.
    shared_trees: Arc<Mutex<HashMap<String, (Tree, std::time::Instant)>>>,
    /// Try unnamed (`O_TMPFILE`) partial files first.
    unnamed: bool,
    /// The last reading of the free space, for small files that follow it closely.
    free: Arc<Mutex<Option<FreeReading>>>,
    /// Bytes written into partial files since the server started.
    written: Arc<AtomicU64>,
}

/// A file a claim token may move: where it was saved, and which file it was.
#[derive(Debug)]
struct Claim {
    root: Arc<Dir>,
    name: String,
    dev: u64,
    ino: u64,
    at: std::time::Instant,
}

/// How long a claim token is good for, and how many are kept.
const CLAIM_LIFE: std::time::Duration = std::time::Duration::from_secs(600);
const MAX_CLAIMS: usize = 1024;

/// One opened folder, and which one it is.
#[derive(Debug)]
struct Dir {
    fd: OwnedFd,
    dev: u64,
    ino: u64,
}

impl Dir {
    fn open(path: &Path) -> io::Result<Dir> {
        let fd = rustix::fs::open(
            path,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let stat = rustix::fs::fstat(&fd)?;
        Ok(Dir {
            fd,
            dev: stat.st_dev,
            ino: stat.st_ino,
        })
    }

    /// False once the folder has been removed (it may still be open here).
    fn exists(&self) -> bool {
        rustix::fs::fstat(&self.fd).is_ok_and(|stat| stat.st_nlink > 0)
    }
}

/// How a file being received is held.
#[derive(Debug)]
enum Temp {
    /// An `O_TMPFILE`: no name until it is kept.
    Unnamed,
    /// A hidden file of that name in the drop folder.
    Named(String),
    /// A part file of a batch (PROTOCOL.md B8): `.ftx-partial/NAME`, kept if
    /// the upload breaks off, so that it can be resumed.
    Part { staging: Arc<Dir>, name: String },
}

/// Why an upload could not start.
#[derive(Debug)]
pub enum BeginError {
    /// The announced size does not fit in the free space.
    NoSpace { size: u64, free: u64 },
    /// Nothing is at the folder's path any more, or something that is not a folder.
    FolderGone,
    /// Creating the file failed.
    Io(io::Error),
}

impl std::fmt::Display for BeginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use indicatif::HumanBytes;
        match self {
            BeginError::NoSpace { size, free } => write!(
                f,
                "not enough space: {} announced, {} free in the drop folder",
                HumanBytes(*size),
                HumanBytes(*free)
            ),
            BeginError::FolderGone => write!(f, "the drop folder was removed"),
            BeginError::Io(e) => write!(f, "cannot create a file in the drop folder: {e}"),
        }
    }
}

impl std::error::Error for BeginError {}

impl DropFolder {
    /// Opens (creating if needed) the drop folder, and makes sure files can be
    /// written there by creating and removing one: a server that would refuse
    /// every upload must not start.
    pub fn open(path: &Path) -> anyhow::Result<DropFolder> {
        let shown = path.display();
        if path.exists() && !path.is_dir() {
            bail!("the drop folder {shown} is a file, not a folder: give a folder with -d (it is made if missing)");
        }
        std::fs::create_dir_all(path).with_context(|| {
            format!("cannot make the drop folder {shown}: choose another place with -d")
        })?;
        let path =
            std::fs::canonicalize(path).with_context(|| format!("opening drop folder {shown}"))?;
        let dir = Dir::open(&path).with_context(|| format!("opening drop folder {shown}"))?;
        let check = format!("{PARTIAL_PREFIX}check-{}", std::process::id());
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match rustix::fs::openat(&dir.fd, check.as_str(), flags, Mode::from_raw_mode(0o600)) {
            Ok(_) => {
                let _ = rustix::fs::unlinkat(&dir.fd, check.as_str(), AtFlags::empty());
            }
            Err(e) => bail!(
                "cannot write into the drop folder {}: {}; choose another folder with -d, \
                 or make this one writable (chmod u+w)",
                path.display(),
                io::Error::from(e)
            ),
        }
        Ok(DropFolder {
            path,
            current: Arc::new(Mutex::new((Arc::new(dir), std::time::Instant::now()))),
            partials: Arc::default(),
            next_partial: Arc::default(),
            outstanding: Arc::default(),
            pid: std::process::id(),
            claims: Arc::default(),
            parts_busy: Arc::default(),
            staging_lock: Arc::default(),
            shared_trees: Arc::default(),
            unnamed: cfg!(target_os = "linux"),
            free: Arc::default(),
            written: Arc::default(),
        })
    }

    /// A token that lets a batch move `saved_as` (just saved at the top of the
    /// drop folder) into its folder; `None` if the file cannot be identified.
    pub fn claim(&self, saved_as: &str) -> Option<String> {
        let root = self.dir().ok()?;
        let stat = rustix::fs::statat(&root.fd, saved_as, AtFlags::SYMLINK_NOFOLLOW).ok()?;
        let token = token()?;
        let mut claims = self.claims.lock().expect("claims lock");
        make_room(&mut claims, |c| c.at);
        claims.insert(
            token.clone(),
            Claim {
                root,
                name: saved_as.to_string(),
                dev: stat.st_dev,
                ino: stat.st_ino,
                at: std::time::Instant::now(),
            },
        );
        Some(token)
    }

    /// Uses hidden named partial files even where unnamed ones are possible
    /// (what other systems and some file systems get; for tests of that path).
    #[cfg(test)]
    pub fn with_named_partials(mut self) -> DropFolder {
        self.unnamed = false;
        self
    }

    /// Where files go.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The folder at the drop folder's path now: the one already open, or, if
    /// it was removed and made again (or replaced), the new one. A folder
    /// removed is seen at once (the open one has no links left); its path is
    /// looked up again at most every [`PATH_LOOKUP_EVERY`], so that a folder
    /// of small files does not pay a path walk per file.
    fn dir(&self) -> Result<Arc<Dir>, BeginError> {
        self.lookup(true)
    }

    /// [`DropFolder::dir`]; with `see_removal` false, a folder removed within
    /// the last [`PATH_LOOKUP_EVERY`] is not seen: for a caller that sees it
    /// otherwise, as a file saved in a folder below it does (a folder cannot
    /// be removed before what it holds, and the file checks its own folder).
    fn lookup(&self, see_removal: bool) -> Result<Arc<Dir>, BeginError> {
        {
            let current = self.current.lock().expect("drop folder lock");
            if current.1.elapsed() < PATH_LOOKUP_EVERY && (!see_removal || current.0.exists()) {
                return Ok(Arc::clone(&current.0));
            }
        }
        let stat = match rustix::fs::stat(&self.path) {
            Ok(stat) => stat,
            Err(Errno::NOENT | Errno::NOTDIR) => return Err(BeginError::FolderGone),
            Err(e) => return Err(BeginError::Io(e.into())),
        };
        if !FileType::from_raw_mode(stat.st_mode).is_dir() {
            return Err(BeginError::FolderGone);
        }
        let mut current = self.current.lock().expect("drop folder lock");
        let (dir, checked) = &mut *current;
        // A new folder can get a removed one's inode number: it must also still exist.
        if (dir.dev, dir.ino) != (stat.st_dev, stat.st_ino) || !dir.exists() {
            *dir = Arc::new(match Dir::open(&self.path) {
                Ok(dir) => dir,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(BeginError::FolderGone)
                }
                Err(e) => return Err(BeginError::Io(e)),
            });
        }
        *checked = std::time::Instant::now();
        Ok(Arc::clone(dir))
    }

    /// Bytes free for uploads: what the file system has, less what uploads in flight were promised.
    #[cfg(test)]
    pub fn free_space(&self) -> io::Result<u64> {
        let dir = self.dir().map_err(|e| io::Error::other(e.to_string()))?;
        Ok(filesystem_free(&dir)?.saturating_sub(self.outstanding.load(Ordering::SeqCst)))
    }

    /// Starts receiving `size` bytes that will be saved as `safe_name` (or a
    /// numbered variant). `safe_name` must come from [`names::safe_file_name`].
    /// Refuses if the folder is gone or the size does not fit in the free space.
    pub fn begin(&self, safe_name: &str, size: u64) -> Result<PartialFile, BeginError> {
        let root = self.dir()?;
        self.begin_in(&root, Arc::clone(&root), safe_name, size)
    }

    /// [`DropFolder::begin`] in `dir`, a folder of a [`Tree`] under `root` (the drop folder it was made in).
    fn begin_in(
        &self,
        root: &Arc<Dir>,
        dir: Arc<Dir>,
        safe_name: &str,
        size: u64,
    ) -> Result<PartialFile, BeginError> {
        let available = self.free_for(&dir, size).map_err(BeginError::Io)?;
        self.outstanding
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |promised| {
                (size <= available.saturating_sub(promised)).then_some(promised + size)
            })
            .map_err(|promised| BeginError::NoSpace {
                size,
                free: available.saturating_sub(promised),
            })?;
        match self.create_partial(&dir) {
            Ok((file, temp)) => Ok(PartialFile {
                file,
                temp,
                name: safe_name.to_string(),
                dir,
                root: Arc::clone(root),
                folder: self.clone(),
                remaining: size,
                done: false,
                discard: false,
            }),
            Err(e) => {
                self.outstanding.fetch_sub(size, Ordering::SeqCst);
                // Removed between the check and now: say so plainly.
                Err(if dir.exists() {
                    BeginError::Io(e)
                } else {
                    BeginError::FolderGone
                })
            }
        }
    }

    fn create_partial(&self, dir: &Arc<Dir>) -> io::Result<(File, Temp)> {
        #[cfg(target_os = "linux")]
        if self.unnamed {
            // Readable too: a batch hashes what it wrote (PROTOCOL.md B4).
            let flags = OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC;
            match rustix::fs::openat(&dir.fd, ".", flags, Mode::from_raw_mode(0o644)) {
                Ok(fd) => return Ok((File::from(fd), Temp::Unnamed)),
                // File systems without O_TMPFILE: a named partial file instead.
                Err(Errno::OPNOTSUPP | Errno::ISDIR | Errno::INVAL) => {}
                Err(e) => return Err(e.into()),
            }
        }
        loop {
            let n = self.next_partial.fetch_add(1, Ordering::Relaxed);
            let temp = format!("{PARTIAL_PREFIX}{}-{n}", self.pid);
            // O_EXCL | O_NOFOLLOW: refuses anything already there, a planted symlink included.
            let flags =
                OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            match rustix::fs::openat(&dir.fd, temp.as_str(), flags, Mode::from_raw_mode(0o644)) {
                Ok(fd) => {
                    self.partials
                        .lock()
                        .expect("partials lock")
                        .insert(temp.clone(), Arc::clone(dir));
                    return Ok((File::from(fd), Temp::Named(temp)));
                }
                Err(Errno::EXIST) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Removes every partial file still being written. For a hurried exit.
    pub fn remove_partials(&self) {
        for (temp, dir) in self.partials.lock().expect("partials lock").iter() {
            let _ = rustix::fs::unlinkat(&dir.fd, temp.as_str(), AtFlags::empty());
        }
    }

    fn forget_partial(&self, temp: &str) {
        self.partials.lock().expect("partials lock").remove(temp);
    }
}

impl DropFolder {
    /// Makes a new top folder for a tree that is sent (batch mode): `name`, or
    /// `name (1)`, `name (2)`... when taken, so that nothing already there is
    /// ever written into. `name` must come from [`names::safe_file_name`].
    pub fn new_tree(&self, name: &str) -> Result<Tree, BeginError> {
        let root = self.dir()?;
        for n in 0..=MAX_NUMBERED {
            let candidate = names::numbered(name, n);
            match rustix::fs::mkdirat(&root.fd, candidate.as_str(), Mode::from_raw_mode(0o755)) {
                Ok(()) => {
                    let top = open_below(&root, &candidate).map_err(BeginError::Io)?;
                    return Ok(Tree {
                        folder: self.clone(),
                        root,
                        name: candidate,
                        top,
                        key: None,
                    });
                }
                Err(Errno::EXIST) => {}
                Err(e) => return Err(BeginError::Io(e.into())),
            }
        }
        Err(BeginError::Io(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{name} and {MAX_NUMBERED} numbered names are all taken"),
        )))
    }
}

/// Opens `name` in `dir` as a folder, refusing a link (`O_NOFOLLOW`).
fn open_below(dir: &Dir, name: &str) -> io::Result<Arc<Dir>> {
    let fd = rustix::fs::openat(
        &dir.fd,
        name,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let stat = rustix::fs::fstat(&fd)?;
    Ok(Arc::new(Dir {
        fd,
        dev: stat.st_dev,
        ino: stat.st_ino,
    }))
}

/// Drops the tokens of `tokens` older than [`CLAIM_LIFE`] and, when
/// [`MAX_CLAIMS`] are still kept, the oldest one: room for one more.
fn make_room<T>(tokens: &mut HashMap<String, T>, made: impl Fn(&T) -> std::time::Instant) {
    tokens.retain(|_, t| made(t).elapsed() < CLAIM_LIFE);
    if tokens.len() >= MAX_CLAIMS {
        let oldest = tokens
            .iter()
            .min_by_key(|(_, t)| made(t))
            .map(|(token, _)| token.clone());
        if let Some(oldest) = oldest {
            tokens.remove(&oldest);
        }
    }
}

/// 16 random bytes in hex: what only the one who was told can say again.
fn token() -> Option<String> {
    let mut random = [0u8; 16];
    rustix::rand::getrandom(&mut random, rustix::rand::GetRandomFlags::empty()).ok()?;
    Some(random.iter().map(|b| format!("{b:02x}")).collect())
}

impl DropFolder {
    /// A token with which other batches may fill `tree` too (PROTOCOL.md
    /// B5a); good for [`CLAIM_LIFE`], at most [`MAX_CLAIMS`] kept.
    pub fn share_tree(&self, tree: &Tree) -> Option<String> {
        let token = token()?;
        let mut shared = self.shared_trees.lock().expect("trees lock");
        make_room(&mut shared, |(_, at)| *at);
        shared.insert(token.clone(), (tree.clone(), std::time::Instant::now()));
        Some(token)
    }

    /// The tree a token shares, while it is good.
    pub fn join_tree(&self, token: &str) -> Option<Tree> {
        let shared = self.shared_trees.lock().expect("trees lock");
        shared
            .get(token)
            .filter(|(_, at)| at.elapsed() < CLAIM_LIFE)
            .map(|(tree, _)| tree.clone())
    }
}

/// What became of a claimed file ([`Tree::adopt`]).
#[derive(Debug)]
pub struct Adopted {
    /// The name it got in its folder; `None` if it was there already, and removed.
    pub name: Option<String>,
    pub size: u64,
    /// Its BLAKE3, in a folder known by a key.
    pub blake3: Option<String>,
}

/// BLAKE3 of a claimed file's `size` bytes.
fn hash_claimed(claim: &Claim, size: u64) -> Result<String, String> {
    let reading = |e: io::Error| format!("reading the claimed file: {e}");
    let (file, _) = open_regular(&claim.root, &claim.name).map_err(reading)?;
    crate::protocol::batch::hash_of(&file, size).map_err(reading)
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

/// What opening something in the drop folder that is not a regular file says.
const NOT_A_FILE: &str = "not a regular file";

/// Opens the regular file `name` in `dir` to read it, with its size: no link
/// followed, and without waiting, so that a named pipe put there is refused,
/// not waited on.
fn open_regular(dir: &Dir, name: &str) -> io::Result<(File, u64)> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    regular(rustix::fs::openat(&dir.fd, name, flags, Mode::empty())?)
}

/// `fd` as a file, with its size, if it is a regular file; [`NOT_A_FILE`] otherwise.
fn regular(fd: rustix::fd::OwnedFd) -> io::Result<(File, u64)> {
    let stat = rustix::fs::fstat(&fd)?;
    if !FileType::from_raw_mode(stat.st_mode).is_file() {
        return Err(io::Error::other(NOT_A_FILE));
    }
    Ok((File::from(fd), u64::try_from(stat.st_size).unwrap_or(0)))
}

/// A folder tree being received (batch mode): a top folder made anew in the
/// drop folder, and folders made inside it as paths name them.
#[derive(Debug, Clone)]
pub struct Tree {
    folder: DropFolder,
    root: Arc<Dir>,
    /// The top folder's name in the drop folder (numbered if the sent one was taken).
    pub name: String,
    top: Arc<Dir>,
    /// The sender's key for the folder it fills (PROTOCOL.md B5b).
    pub key: Option<String>,
}

impl Tree {
    /// Writes down (PROTOCOL.md B5b) that it is being filled for its key, and
    /// `line` (a big file saved in it) if given: a server started again can
    /// take it up. Without a key, nothing.
    pub fn note(&self, line: Option<&str>) {
        if let Some(key) = &self.key {
            let _ = self.folder.note_folder(key, self, line);
        }
    }

    /// Forgets what [`Tree::note`] wrote: the folder is finished.
    pub fn forget(&self) {
        if let Some(key) = &self.key {
            self.folder.forget_folder(key);
        }
    }

    /// Whether its top folder is still there, in the drop folder now at its path.
    pub fn exists(&self) -> bool {
        self.top.exists()
            && self
                .folder
                .dir()
                .is_ok_and(|now| Arc::ptr_eq(&now, &self.root))
    }

    /// Makes the folder at `components` below the top (and those above it).
    pub fn make(&self, components: &[String]) -> io::Result<()> {
        self.folder(components).map(drop)
    }

    /// The folder at `components` below the top (made if missing), never through a link.
    fn folder(&self, components: &[String]) -> io::Result<Arc<Dir>> {
        let mut dir = Arc::clone(&self.top);
        for name in components {
            match rustix::fs::mkdirat(&dir.fd, name.as_str(), Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(e.into()),
            }
            dir = open_below(&dir, name)?;
        }
        Ok(dir)
    }

    /// Moves the file a claim token names into the folder at `components`, as
    /// `safe_name` (or a numbered variant). In a folder known by a key
    /// (PROTOCOL.md B5b) the file is hashed first, and if `before` (the size
    /// and BLAKE3 of what was saved there before) is its content, it is
    /// removed instead: it is there already.
    pub fn adopt(
        &self,
        token: &str,
        components: &[String],
        safe_name: &str,
        before: Option<(u64, &str)>,
    ) -> Result<Adopted, String> {
        let claim = self
            .folder
            .claims
            .lock()
            .expect("claims lock")
            .remove(token)
            .filter(|c| c.at.elapsed() < CLAIM_LIFE && Arc::ptr_eq(&c.root, &self.root))
            .ok_or("no such claim: unknown, used or expired")?;
        let stat = rustix::fs::statat(
            &claim.root.fd,
            claim.name.as_str(),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| format!("the claimed file is gone: {}", io::Error::from(e)))?;
        if (stat.st_dev, stat.st_ino) != (claim.dev, claim.ino) {
            return Err("the claimed file is not the one that was saved".into());
        }
        let size = stat.st_size as u64;
        let blake3 = match &self.key {
            Some(_) => Some(hash_claimed(&claim, size)?),
            None => None,
        };
        if let (Some((size_before, before)), Some(blake3)) = (before, &blake3) {
            if size_before == size && before.eq_ignore_ascii_case(blake3) {
                let _ = rustix::fs::unlinkat(&claim.root.fd, claim.name.as_str(), AtFlags::empty());
                return Ok(Adopted {
                    name: None,
                    size,
                    blake3: Some(blake3.clone()),
                });
            }
        }
        let dir = self.folder(components).map_err(|e| e.to_string())?;
        for n in 0..=MAX_NUMBERED {
            let candidate = names::numbered(safe_name, n);
            match rustix::fs::renameat_with(
                &claim.root.fd,
                claim.name.as_str(),
                &dir.fd,
                candidate.as_str(),
                RenameFlags::NOREPLACE,
            ) {
                Ok(()) => {
                    return Ok(Adopted {
                        name: Some(candidate),
                        size,
                        blake3,
                    })
                }
                Err(Errno::EXIST) => {}
                Err(e) => return Err(format!("moving the claimed file: {}", io::Error::from(e))),
            }
        }
        Err("every numbered name is taken".into())
    }

    /// [`DropFolder::begin_part`] in the folder at `components`.
    pub fn begin_resumable(
        &self,
        components: &[String],
        safe_name: &str,
        hash: &str,
        size: u64,
    ) -> Result<(PartialFile, u64), BeginError> {
        let dir = self.folder(components).map_err(BeginError::Io)?;
        self.folder
            .begin_part(&self.root, dir, safe_name, hash, size)
    }

    /// Starts a file `safe_name` in the folder at `components`.
    pub fn begin(
        &self,
        components: &[String],
        safe_name: &str,
        size: u64,
    ) -> Result<PartialFile, BeginError> {
        let dir = self.folder(components).map_err(BeginError::Io)?;
        self.folder.begin_in(&self.root, dir, safe_name, size)
    }
}

/// Where parts of batch files wait to be resumed (PROTOCOL.md B8).
const STAGING: &str = ".ftx-partial";

/// A part not written to for this long is removed.
const PART_LIFE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

impl DropFolder {
    /// The folder of parts, if there is one.
    fn staging_if_any(root: &Dir) -> Option<Arc<Dir>> {
        open_below(root, STAGING).ok()
    }

    /// Removes the folder of parts once it holds none, so that it is there only while needed.
    fn tidy_staging(&self, root: &Dir) {
        let _held = self.staging_lock.lock().expect("staging lock");
        let _ = rustix::fs::unlinkat(&root.fd, STAGING, AtFlags::REMOVEDIR);
    }

    /// Opens `name` in the folder of parts (made if missing), created if
    /// missing, with `access` (`APPEND` for a record several batches add
    /// lines to); under the staging lock, so that the folder is not removed
    /// before the file is in it. Returns the folder of parts, the file and the
    /// size it has. Fails with [`NOT_A_FILE`] for anything but a regular file
    /// there (a named pipe would hold the worker for ever).
    fn open_in_staging(
        &self,
        root: &Dir,
        name: &str,
        access: OFlags,
        mode: u32,
    ) -> io::Result<(Arc<Dir>, File, u64)> {
        let _held = self.staging_lock.lock().expect("staging lock");
        let staging = self.staging(root)?;
        let flags = access | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let (file, size) = regular(rustix::fs::openat(
            &staging.fd,
            name,
            flags,
            Mode::from_raw_mode(mode),
        )?)?;
        Ok((staging, file, size))
    }

    /// The folder of parts, made if missing.
    fn staging(&self, root: &Dir) -> io::Result<Arc<Dir>> {
        match rustix::fs::mkdirat(&root.fd, STAGING, Mode::from_raw_mode(0o700)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
        open_below(root, STAGING)
    }

    /// The name of the part of a file with this hash and size; `None` for a hash that is not 64 hex digits.
    fn part_name(hash: &str, size: u64) -> Option<String> {
        (hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| format!("{}-{size}", hash.to_ascii_lowercase()))
    }

    /// Bytes held of the file with this hash and size, from an earlier batch.
    pub fn held(&self, hash: &str, size: u64) -> u64 {
        let Some(name) = Self::part_name(hash, size) else {
            return 0;
        };
        let Ok(root) = self.dir() else { return 0 };
        let Some(staging) = Self::staging_if_any(&root) else {
            return 0;
        };
        rustix::fs::statat(&staging.fd, name.as_str(), AtFlags::SYMLINK_NOFOLLOW)
            .ok()
            .filter(|stat| FileType::from_raw_mode(stat.st_mode).is_file())
            .map_or(0, |stat| u64::try_from(stat.st_size).unwrap_or(0).min(size))
    }

    /// Removes parts nobody wrote to for [`PART_LIFE`].
    pub fn expire_parts(&self) {
        let Ok(root) = self.dir() else { return };
        let Some(staging) = Self::staging_if_any(&root) else {
            return;
        };
        let Ok(entries) = std::fs::read_dir(self.path.join(STAGING)) else {
            return;
        };
        let busy = self.parts_busy.lock().expect("parts lock").clone();
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > PART_LIFE));
            if old && !busy.contains(&name) {
                let _ = rustix::fs::unlinkat(&staging.fd, name.as_str(), AtFlags::empty());
            }
        }
        self.tidy_staging(&root);
    }

    /// Starts, or resumes, a batch file with a known hash in its part file;
    /// returns it and how many bytes it already holds. A part another batch is
    /// writing now, or a hash that cannot name one, gets a fresh unnamed file.
    fn begin_part(
        &self,
        root: &Arc<Dir>,
        dir: Arc<Dir>,
        safe_name: &str,
        hash: &str,
        size: u64,
    ) -> Result<(PartialFile, u64), BeginError> {
        let Some(part) = Self::part_name(hash, size) else {
            return self.begin_in(root, dir, safe_name, size).map(|p| (p, 0));
        };
        if !self
            .parts_busy
            .lock()
            .expect("parts lock")
            .insert(part.clone())
        {
            return self.begin_in(root, dir, safe_name, size).map(|p| (p, 0));
        }
        let free_part = |e| {
            self.parts_busy.lock().expect("parts lock").remove(&part);
            e
        };
        // Not opened for appending: splice(2) refuses to write to such a
        // file, and the content would go by hand through a buffer.
        let (staging, mut file, mut held) = self
            .open_in_staging(root, &part, OFlags::RDWR, 0o644)
            .map_err(BeginError::Io)
            .map_err(free_part)?;
        if held > size {
            let _ = file.set_len(0);
            held = 0;
        }
        // What comes is written after what is held.
        file.seek(io::SeekFrom::Start(held))
            .map_err(BeginError::Io)
            .map_err(free_part)?;
        let available = self
            .free_for(root, size - held)
            .map_err(BeginError::Io)
            .map_err(free_part)?;
        let needed = size - held;
        self.outstanding
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |promised| {
                (needed <= available.saturating_sub(promised)).then_some(promised + needed)
            })
            .map_err(|promised| BeginError::NoSpace {
                size: needed,
                free: available.saturating_sub(promised),
            })
            .map_err(free_part)?;
        Ok((
            PartialFile {
                file,
                temp: Temp::Part {
                    staging,
                    name: part,
                },
                name: safe_name.to_string(),
                dir,
                root: Arc::clone(root),
                folder: self.clone(),
                remaining: needed,
                done: false,
                discard: false,
            },
            held,
        ))
    }

    /// [`DropFolder::begin_part`] at the top of the drop folder.
    pub fn begin_resumable(
        &self,
        safe_name: &str,
        hash: &str,
        size: u64,
    ) -> Result<(PartialFile, u64), BeginError> {
        let root = self.dir()?;
        self.begin_part(&root, Arc::clone(&root), safe_name, hash, size)
    }
}

/// What the file system had free at a moment, and how much had been written by then.
#[derive(Debug)]
struct FreeReading {
    at: std::time::Instant,
    dev: u64,
    free: u64,
    written: u64,
}

/// Files smaller than this may start on a reading of the free space this recent
/// (less what has been written since), not a new one: one system call less per
/// file of a folder. Bigger files, and every file once it is older, read it again.
const FREE_READING_FOR: u64 = 1 << 20;
const FREE_READING_LIFE: std::time::Duration = std::time::Duration::from_millis(100);

impl DropFolder {
    /// Bytes free on `dir`'s file system for a file of `size` bytes, before what is promised.
    fn free_for(&self, dir: &Dir, size: u64) -> io::Result<u64> {
        let mut reading = self.free.lock().expect("free space lock");
        let written = self.written.load(Ordering::SeqCst);
        if let Some(last) = reading.as_ref() {
            if size < FREE_READING_FOR
                && last.dev == dir.dev
                && last.at.elapsed() < FREE_READING_LIFE
            {
                return Ok(last.free.saturating_sub(written - last.written));
            }
        }
        let free = filesystem_free(dir)?;
        *reading = Some(FreeReading {
            at: std::time::Instant::now(),
            dev: dir.dev,
            free,
            written,
        });
        Ok(free)
    }
}

/// Bytes the folder's file system has free for an unprivileged writer.
fn filesystem_free(dir: &Dir) -> io::Result<u64> {
    let stat = rustix::fs::fstatvfs(&dir.fd)?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// A file being received. Dropping it without [`PartialFile::keep`] deletes it.
#[derive(Debug)]
pub struct PartialFile {
    file: File,
    temp: Temp,
    name: String,
    /// The folder it is being written in.
    dir: Arc<Dir>,
    /// The drop folder as it was when the upload began.
    root: Arc<Dir>,
    folder: DropFolder,
    /// Announced bytes not written yet (still promised in `outstanding`).
    remaining: u64,
    done: bool,
    /// A part whose content is known to be wrong: removed, not kept for a resume.
    discard: bool,
}

impl PartialFile {
    /// For a part being resumed: feeds the bytes it already holds to `hasher`.
    pub fn hash_held(&self, hasher: &mut blake3::Hasher, held: u64) -> io::Result<()> {
        crate::protocol::batch::hash_from(&self.file, held, hasher)
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
        self.written(bytes.len() as u64);
        Ok(())
    }

    /// The open file, for writers that bypass [`PartialFile::write_all`]; they must call [`PartialFile::written`].
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Records `n` bytes written to [`PartialFile::file`] directly.
    pub fn written(&mut self, n: u64) {
        let n = n.min(self.remaining);
        self.remaining -= n;
        self.folder.outstanding.fetch_sub(n, Ordering::SeqCst);
        self.folder.written.fetch_add(n, Ordering::SeqCst);
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
        for n in 0..=MAX_NUMBERED {
            let candidate = names::numbered(&self.name, n);
            match self.place(&candidate) {
                Ok(()) => {
                    self.done = true;
                    if !self.dir.exists() {
                        return Err(io::Error::other(
                            "the drop folder was removed as the file was saved",
                        ));
                    }
                    return Ok(candidate);
                }
                Err(Errno::EXIST) => {}
                Err(Errno::NOENT) if !self.dir.exists() => {
                    return Err(io::Error::other(
                        "the drop folder was removed during the upload",
                    ))
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "{} and {MAX_NUMBERED} numbered names are all taken",
                self.name
            ),
        ))
    }

    /// Gives the file the name `candidate`, atomically, failing with EEXIST if
    /// anything (even a dangling symlink) already has that name.
    fn place(&mut self, candidate: &str) -> Result<(), Errno> {
        let dir = &self.dir.fd;
        match &self.temp {
            Temp::Unnamed => link_unnamed(&self.file, dir, candidate),
            Temp::Part { staging, name } => {
                rustix::fs::linkat(&staging.fd, name.as_str(), dir, candidate, AtFlags::empty())?;
                let _ = rustix::fs::unlinkat(&staging.fd, name.as_str(), AtFlags::empty());
                self.folder.tidy_staging(&self.root);
                Ok(())
            }
            Temp::Named(temp) => {
                // A hard link, then the temporary name goes; where the file system
                // has no hard links, a rename that refuses to replace does the same.
                match rustix::fs::linkat(dir, temp.as_str(), dir, candidate, AtFlags::empty()) {
                    Ok(()) => {
                        let _ = rustix::fs::unlinkat(dir, temp.as_str(), AtFlags::empty());
                    }
                    Err(Errno::EXIST) => return Err(Errno::EXIST),
                    Err(_) => rustix::fs::renameat_with(
                        dir,
                        temp.as_str(),
                        dir,
                        candidate,
                        RenameFlags::NOREPLACE,
                    )?,
                }
                self.folder.forget_partial(temp);
                Ok(())
            }
        }
    }
}

/// Names an `O_TMPFILE`. `AT_EMPTY_PATH` needs `CAP_DAC_READ_SEARCH` on most
/// kernels; without it, the same link through `/proc/self/fd` works for anyone.
fn link_unnamed(file: &File, dir: &OwnedFd, name: &str) -> Result<(), Errno> {
    match rustix::fs::linkat(file, "", dir, name, AtFlags::EMPTY_PATH) {
        Err(Errno::NOENT | Errno::PERM) => link_through_proc(file, dir, name),
        other => other,
    }
}

fn link_through_proc(file: &File, dir: &OwnedFd, name: &str) -> Result<(), Errno> {
    use std::os::fd::AsRawFd;
    let path = format!("/proc/self/fd/{}", file.as_raw_fd());
    rustix::fs::linkat(
        rustix::fs::CWD,
        path.as_str(),
        dir,
        name,
        AtFlags::SYMLINK_FOLLOW,
    )
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        self.folder
            .outstanding
            .fetch_sub(self.remaining, Ordering::SeqCst);
        // An unnamed file is freed when it is closed; a named one must be removed;
        // a part stays, to be resumed, unless its content is known to be wrong.
        match (self.done, &self.temp) {
            (false, Temp::Named(temp)) => {
                let _ = rustix::fs::unlinkat(&self.dir.fd, temp.as_str(), AtFlags::empty());
                self.folder.forget_partial(temp);
            }
            (done, Temp::Part { staging, name }) => {
                if !done && self.discard {
                    let _ = rustix::fs::unlinkat(&staging.fd, name.as_str(), AtFlags::empty());
                    self.folder.tidy_staging(&self.root);
                }
                self.folder
                    .parts_busy
                    .lock()
                    .expect("parts lock")
                    .remove(name);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// The same folder both ways: unnamed partial files (where the system has them) and named ones.
    fn both_ways(path: &Path) -> [DropFolder; 2] {
        let folder = DropFolder::open(path).unwrap();
        [folder.clone(), folder.with_named_partials()]
    }

    #[test]
    fn complete_files_appear_under_their_name_only_when_kept() {
        let dir = tempfile::tempdir().unwrap();
        for folder in both_ways(&dir.path().join("drop")) {
            let mut partial = folder.begin("notes.txt", 5).unwrap();
            partial.write_all(b"hello").unwrap();
            assert!(!folder.path().join("notes.txt").exists());
            assert_eq!(partial.keep().unwrap(), "notes.txt");
            assert_eq!(entries(folder.path()), ["notes.txt"]);
            assert_eq!(fs::read(folder.path().join("notes.txt")).unwrap(), b"hello");
            fs::remove_file(folder.path().join("notes.txt")).unwrap();
        }
    }

    #[test]
    fn dropped_partial_files_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        for folder in both_ways(dir.path()) {
            let mut partial = folder.begin("notes.txt", 10).unwrap();
            partial.write_all(b"half").unwrap();
            drop(partial);
            assert!(entries(folder.path()).is_empty());
        }
    }

    #[test]
    fn partial_files_are_unnamed_on_linux_and_hidden_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let [unnamed, named] = both_ways(dir.path());
        let invisible = unnamed.begin("a", 1).unwrap();
        assert!(
            entries(dir.path()).is_empty(),
            "an unnamed partial file is visible"
        );
        let hidden = named.begin("b", 1).unwrap();
        let seen = entries(dir.path());
        assert_eq!(seen.len(), 1);
        assert!(seen[0].starts_with(PARTIAL_PREFIX), "{seen:?}");
        drop((invisible, hidden));
        assert!(entries(dir.path()).is_empty());
    }

    #[test]
    fn unnamed_files_can_be_named_without_privileges_too() {
        let dir = tempfile::tempdir().unwrap();
        let folder = DropFolder::open(dir.path()).unwrap();
        let mut partial = folder.begin("x", 3).unwrap();
        partial.write_all(b"abc").unwrap();
        if matches!(partial.temp, Temp::Unnamed) {
            // The path a server without CAP_DAC_READ_SEARCH takes.
            link_through_proc(&partial.file, &partial.dir.fd, "via-proc").unwrap();
            assert_eq!(fs::read(dir.path().join("via-proc")).unwrap(), b"abc");
        }
    }

    #[test]
    fn never_replaces_files_or_links_already_there() {
        let dir = tempfile::tempdir().unwrap();
        for folder in both_ways(dir.path()) {
            fs::write(folder.path().join("a.txt"), b"precious").unwrap();
            let outside = tempfile::tempdir().unwrap();
            let victim = outside.path().join("victim");
            std::os::unix::fs::symlink(&victim, folder.path().join("a (1).txt")).unwrap();

            let mut partial = folder.begin("a.txt", 3).unwrap();
            partial.write_all(b"new").unwrap();
            assert_eq!(partial.keep().unwrap(), "a (2).txt");
            assert_eq!(fs::read(folder.path().join("a.txt")).unwrap(), b"precious");
            assert_eq!(fs::read(folder.path().join("a (2).txt")).unwrap(), b"new");
            assert!(!victim.exists(), "the planted link was followed");
            for name in entries(folder.path()) {
                fs::remove_file(folder.path().join(name)).unwrap();
            }
        }
    }

    #[test]
    fn remove_partials_deletes_named_files_in_flight() {
        let dir = tempfile::tempdir().unwrap();
        let folder = DropFolder::open(dir.path()).unwrap().with_named_partials();
        let partial = folder.begin("x", 1).unwrap();
        assert_eq!(entries(folder.path()).len(), 1);
        folder.remove_partials();
        assert!(entries(folder.path()).is_empty());
        drop(partial);
    }

    #[test]
    fn small_files_start_on_a_recent_reading_less_what_was_written_since() {
        let dir = tempfile::tempdir().unwrap();
        let folder = DropFolder::open(dir.path()).unwrap();
        let root = folder.dir().unwrap();
        // A made-up reading that stays recent: far from what the file system has.
        let recorded = |free| {
            *folder.free.lock().unwrap() = Some(FreeReading {
                at: std::time::Instant::now() + std::time::Duration::from_secs(3600),
                dev: root.dev,
                free,
                written: folder.written.load(Ordering::SeqCst),
            });
        };
        recorded(1 << 50);
        let mut file = folder.begin("a", 4096).unwrap();
        file.write_all(&[7; 4096]).unwrap();
        file.keep().unwrap();
        assert_eq!(folder.free_for(&root, 4096).unwrap(), (1 << 50) - 4096);
        // A big file reads the file system again.
        let real = folder.free_for(&root, FREE_READING_FOR).unwrap();
        assert!(real < 1 << 50, "{real}");

        // Small files are refused on the reading too, promises counted.
        recorded(8192);
        let first = folder.begin("b", 4096).unwrap();
        assert!(matches!(
            folder.begin("c", 8192),
            Err(BeginError::NoSpace {
                size: 8192,
                free: 4096
            })
        ));
        drop(first);
    }

    #[test]
    fn promised_space_is_reserved_until_written_or_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let folder = DropFolder::open(dir.path()).unwrap();
        let free = folder.free_space().unwrap();
        let err = folder.begin("huge", u64::MAX / 2).unwrap_err();
        assert!(err.to_string().starts_with("not enough space: "), "{err}");
        assert!(
            entries(folder.path()).is_empty(),
            "nothing is created for a refused upload"
        );

        // Half the free space is promised to one upload, so a second of the same size cannot fit.
        let half = free / 2 + free / 10;
        let mut first = folder.begin("first", half).unwrap();
        assert!(matches!(
            folder.begin("second", half),
            Err(BeginError::NoSpace { .. })
        ));
        first.write_all(b"abc").unwrap();
        drop(first);
        let second = folder.begin("second", half).unwrap();
        drop(second);
        assert_eq!(folder.outstanding.load(Ordering::SeqCst), 0);
    }

    /// Runs `work` and returns what it gives, failing if it takes seconds (it
    /// would be waiting on a named pipe for ever).
    fn soon<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(work()));
        rx.recv_timeout(std::time::Duration::from_secs(5))
            .expect("waited on a named pipe")
    }

    /// Named pipes put in the drop folder where the server reads or writes
    /// (a part, a folder's record, a small file of a folder taken up again)
    /// are refused at once: a worker waiting on one would wait for ever.
    #[test]
    fn named_pipes_in_the_drop_folder_are_refused_not_waited_on() {
        let dir = tempfile::tempdir().unwrap();
        let folder = DropFolder::open(dir.path()).unwrap();
        let hash = "ab".repeat(32);
        fs::create_dir(dir.path().join(STAGING)).unwrap();
        make_fifo(&dir.path().join(STAGING).join(format!("{hash}-100")));
        let part = folder.clone();
        let err = soon(move || part.begin_resumable("big.bin", &hash, 100).map(drop)).unwrap_err();
        assert!(err.to_string().contains(NOT_A_FILE), "{err}");

        let tree = folder.new_tree("photos").unwrap();
        folder.note_folder("k", &tree, None).unwrap();
        make_fifo(&dir.path().join("photos/x.txt"));
        let (there, taken_up) = soon(move || {
            (
                tree.small_file_there(&[], "x.txt"),
                tree.folder.noted_folder("k").is_some(),
            )
        });
        assert_eq!(there, None);
        assert!(taken_up, "the record, a file, is read");
        let record = dir.path().join(STAGING).join(noted::file_name("k"));
        fs::remove_file(&record).unwrap();
        make_fifo(&record);
        assert!(soon(move || folder.noted_folder("k").is_none()));
    }

    /// A file of a tree does not look at the drop folder itself before it is
    /// linked in (its own folder is looked at after): a drop folder removed
    /// under it is still said to be so, in the same words.
    #[test]
    fn a_file_of_a_tree_sees_the_drop_folder_removed() {
        let dir = tempfile::tempdir().unwrap();
        for folder in both_ways(&dir.path().join("drop")) {
            let tree = folder.new_tree("photos").unwrap();
            let mut in_flight = tree.begin(&["2024".to_string()], "a.jpg", 3).unwrap();
            in_flight.write_all(b"abc").unwrap();
            fs::remove_dir_all(folder.path()).unwrap();
            let err = in_flight.keep().unwrap_err();
            assert_eq!(
                err.to_string(),
                "the drop folder was removed during the upload"
            );
            fs::create_dir(folder.path()).unwrap();
        }
    }

    #[test]
    fn a_removed_folder_is_reported_as_such_and_used_again_once_made_again() {
        let dir = tempfile::tempdir().unwrap();
        for folder in both_ways(&dir.path().join("drop")) {
            let mut in_flight = folder.begin("early", 3).unwrap();
            in_flight.write_all(b"abc").unwrap();
            fs::remove_dir_all(folder.path()).unwrap();
            let err = folder.begin("x", 1).unwrap_err();
            assert_eq!(err.to_string(), "the drop folder was removed");
            fs::create_dir(folder.path()).unwrap();
            let err = in_flight.keep().unwrap_err();
            assert!(err.to_string().contains("during the upload"), "{err}");
            let mut again = folder.begin("again.txt", 2).unwrap();
            again.write_all(b"ok").unwrap();
            assert_eq!(again.keep().unwrap(), "again.txt");
            assert_eq!(entries(folder.path()), ["again.txt"]);
            fs::remove_file(folder.path().join("again.txt")).unwrap();
        }
    }

    #[test]
    fn a_folder_renamed_away_and_made_again_is_seen_once_its_path_is_looked_up() {
        let dir = tempfile::tempdir().unwrap();
        let folder = DropFolder::open(&dir.path().join("drop")).unwrap();
        let mut in_flight = folder.begin("early", 3).unwrap();
        in_flight.write_all(b"abc").unwrap();
        let moved = dir.path().join("moved");
        fs::rename(folder.path(), &moved).unwrap();
        fs::create_dir(folder.path()).unwrap();
        std::thread::sleep(PATH_LOOKUP_EVERY * 2);
        let err = in_flight.keep().unwrap_err();
        assert!(
            err.to_string().contains("replaced during the upload"),
            "{err}"
        );
        assert!(entries(&moved).is_empty(), "saved in the folder moved away");
        let mut next = folder.begin("next", 2).unwrap();
        next.write_all(b"ok").unwrap();
        assert_eq!(next.keep().unwrap(), "next");
        assert_eq!(entries(folder.path()), ["next"]);
    }

    #[test]
    fn a_folder_replaced_by_a_file_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let folder = DropFolder::open(&dir.path().join("drop")).unwrap();
        fs::remove_dir(folder.path()).unwrap();
        fs::write(folder.path(), b"not a folder").unwrap();
        assert!(matches!(folder.begin("x", 1), Err(BeginError::FolderGone)));
    }

    /// Batches saving resumable files at once: the folder of parts comes and
    /// goes, never under a batch that is creating its part.
    #[test]
    fn parts_of_concurrent_batches_never_lose_their_folder() {
        let dir = tempfile::tempdir().unwrap();
        let folder = DropFolder::open(dir.path()).unwrap();
        std::thread::scope(|scope| {
            for t in 0..4 {
                let folder = folder.clone();
                scope.spawn(move || {
                    for n in 0..300 {
                        let hash = format!("{:064x}", t * 1000 + n);
                        let (mut part, held) = folder
                            .begin_resumable(&format!("{t}-{n}"), &hash, 1)
                            .unwrap();
                        assert_eq!(held, 0);
                        part.write_all(b"x").unwrap();
                        part.keep().unwrap();
                    }
                });
            }
        });
        assert_eq!(entries(dir.path()).len(), 1200);
    }
}
