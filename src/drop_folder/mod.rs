//! The drop folder: files are received without a name (or under a hidden one) and appear under their final name only when complete; batch mode's trees, tokens, parts and folder records live beside it.
//!
//! With the Linux OS layer a file being received is an unnamed `O_TMPFILE`
//! in the drop folder: nothing partial is ever visible, and the kernel frees
//! it whatever happens to the server (a crash or `kill -9` included). It gets
//! its name by `linkat` once every byte is in. Where the file system (or the
//! portable layer) has none, a hidden `.ftx-partial-PID-N` file is used
//! instead and removed on every failure path. Every operation goes through
//! the OS layer's [`Dir`] (the folder's open descriptor on Linux), with names
//! that are single safe components, so nothing a client sends, and no link
//! planted in the folder, can redirect a write elsewhere (`crate::sys` says
//! what the portable layer's path-based way leaves to a local user's race).
//!
//! One module per thing kept on disk:
//!
//! | module | what it keeps |
//! | --- | --- |
//! | [`dir`] | an opened folder; folders below, regular files, the first free numbered name |
//! | [`space`] | free space, and the bytes promised to files in flight |
//! | [`partial`] | a file being received, until it is kept under its final name |
//! | [`tree`] | a top folder made for a folder that is sent (PROTOCOL.md B5), and what goes below it |
//! | [`tokens`] | claim and share tokens (B4a, B5a) |
//! | [`parts`] | resumable parts in `.ftx-partial/` (B8) |
//! | [`record`] | folder records in `.ftx-partial/`, for a server started again (B5b) |

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

mod dir;
mod partial;
mod parts;
mod record;
mod space;
mod tokens;
mod tree;

use dir::Dir;
pub use partial::{PartialFile, PARTIAL_PREFIX};
pub use parts::{BUSY_PART_WAIT, STAGING_LIFE};
pub use record::Saved;
pub use tokens::TOKEN_LIFE;
pub use tree::{AdoptError, Tree};

/// How long the drop folder's path, once looked up, is taken to still name
/// the folder open (a folder removed is seen at once all the same).
const PATH_LOOKUP_EVERY: Duration = Duration::from_millis(1);

/// The folder uploads land in, and what is kept there while files arrive.
#[derive(Debug, Clone)]
pub struct DropFolder {
    path: PathBuf,
    /// The folder now at `path`, opened (opened again when the folder at
    /// `path` is a new one), and when its path was last looked up.
    current: Arc<Mutex<(Arc<Dir>, Instant)>>,
    /// This process's id, part of every named partial file's name.
    pid: u32,
    /// Try unnamed (`O_TMPFILE`) partial files first.
    unnamed: bool,
    /// Free space, and what is promised of it.
    space: Arc<space::Space>,
    /// Named partial files being written.
    named: Arc<partial::NamedPartials>,
    /// Batch mode: tokens given out (B4a, B5a).
    tokens: Arc<tokens::Tokens>,
    /// Batch mode: parts being written (B8).
    parts: Arc<parts::Parts>,
    /// Where the search for a free numbered name goes on.
    numbering: Arc<dir::Numbering>,
}

/// Why an upload could not start.
#[derive(Debug)]
pub enum BeginError {
    /// The announced size does not fit in the free space.
    NoSpace { size: u64, free: u64 },
    /// Nothing is at the folder's path any more, or something that is not a folder.
    FolderGone,
    /// The name and every numbered name are taken.
    AllTaken(String),
    /// Creating the file failed.
    Io(io::Error),
}

impl std::fmt::Display for BeginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::term::Bytes;
        match self {
            BeginError::NoSpace { size, free } => write!(
                f,
                "not enough space: {} announced, {} free in the drop folder",
                Bytes(*size),
                Bytes(*free)
            ),
            BeginError::FolderGone => write!(f, "the drop folder was removed"),
            BeginError::AllTaken(name) => write!(
                f,
                "{name} and {} numbered names are all taken in the drop folder",
                dir::MAX_NUMBERED
            ),
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
        match dir.create_new(&check, 0o600) {
            Ok(_) => {
                let _ = dir.remove_file(&check);
            }
            Err(e) => bail!(
                "cannot write into the drop folder {}: {e}; choose another folder with -d, \
                 or make this one writable (chmod u+w)",
                path.display(),
            ),
        }
        partial::remove_stale(&dir, &path);
        parts::check_staging(&dir).map_err(|e| {
            anyhow::anyhow!(
                "the drop folder {}: {e}: remove it (it holds only unfinished parts) \
                 or choose another folder with -d",
                path.display()
            )
        })?;
        Ok(DropFolder {
            path,
            current: Arc::new(Mutex::new((Arc::new(dir), Instant::now()))),
            pid: std::process::id(),
            unnamed: crate::sys::UNNAMED_PARTIALS,
            space: Arc::default(),
            named: Arc::default(),
            tokens: Arc::default(),
            parts: Arc::default(),
            numbering: Arc::default(),
        })
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
        let stat = match crate::sys::fs::stat_path(&self.path) {
            Ok(stat) => stat,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(BeginError::FolderGone),
            Err(e) => return Err(BeginError::Io(e)),
        };
        if stat.kind != crate::sys::Kind::Dir {
            return Err(BeginError::FolderGone);
        }
        let mut current = self.current.lock().expect("drop folder lock");
        let (dir, checked) = &mut *current;
        // A new folder can get a removed one's inode number: it must also still exist.
        if dir.id() != stat.id || !dir.exists() {
            *dir = Arc::new(match Dir::open(&self.path) {
                Ok(dir) => dir,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(BeginError::FolderGone)
                }
                Err(e) => return Err(BeginError::Io(e)),
            });
        }
        *checked = Instant::now();
        Ok(Arc::clone(dir))
    }

    /// Bytes free for uploads: what the file system has, less what uploads in flight were promised.
    #[cfg(test)]
    pub fn free_space(&self) -> io::Result<u64> {
        use std::sync::atomic::Ordering;
        let dir = self.dir().map_err(|e| io::Error::other(e.to_string()))?;
        Ok(dir
            .free_space()?
            .saturating_sub(self.space.outstanding.load(Ordering::SeqCst)))
    }
}

/// The same folder both ways, for tests: unnamed partial files (where the system has them) and named ones.
#[cfg(test)]
fn both_ways(path: &Path) -> [DropFolder; 2] {
    let folder = DropFolder::open(path).unwrap();
    [folder.clone(), folder.with_named_partials()]
}

#[cfg(test)]
mod tests {
    use super::space::{FreeReading, FREE_READING_FOR};
    use super::*;
    use std::fs;
    use std::sync::atomic::Ordering;

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
        // The portable layer has no unnamed files: a hidden one it is.
        let seen = entries(dir.path());
        match crate::sys::UNNAMED_PARTIALS {
            true => assert!(seen.is_empty(), "an unnamed partial file is visible"),
            false => assert!(seen.len() == 1 && seen[0].starts_with(PARTIAL_PREFIX)),
        }
        drop(invisible);
        let hidden = named.begin("b", 1).unwrap();
        let seen = entries(dir.path());
        assert_eq!(seen.len(), 1);
        assert!(seen[0].starts_with(PARTIAL_PREFIX), "{seen:?}");
        drop(hidden);
        assert!(entries(dir.path()).is_empty());
    }

    #[test]
    #[cfg(unix)]
    fn never_replaces_files_or_links_already_there() {
        let dir = tempfile::tempdir().unwrap();
        for folder in both_ways(dir.path()) {
            fs::write(folder.path().join("a.txt"), b"precious").unwrap();
            let outside = tempfile::tempdir().unwrap();
            let victim = outside.path().join("victim");
            crate::sys::testing::symlink(&victim, &folder.path().join("a (1).txt"));

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

    /// What a server killed while it wrote named partial files left is
    /// removed when one starts again; a running server's files are not.
    #[test]
    fn partial_files_of_a_server_gone_are_removed_at_start() {
        let dir = tempfile::tempdir().unwrap();
        // Past the largest pid Linux gives (2^22); pid 1 always runs; this process.
        let gone = format!("{PARTIAL_PREFIX}4194305-7");
        let running = format!("{PARTIAL_PREFIX}1-0");
        let this = format!("{PARTIAL_PREFIX}{}-0", std::process::id());
        for name in [&gone, &running, &this, &format!("{PARTIAL_PREFIX}notes")] {
            fs::write(dir.path().join(name), b"half").unwrap();
        }
        let mut left = entries(dir.path());
        DropFolder::open(dir.path()).unwrap();
        left.retain(|n| *n != gone);
        assert_eq!(entries(dir.path()), left);
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
            *folder.space.free.lock().unwrap() = Some(FreeReading {
                at: Instant::now() + Duration::from_secs(3600),
                dev: root.id().map(|id| id.dev),
                free,
                written: folder.space.written.load(Ordering::SeqCst),
            });
        };
        recorded(1 << 50);
        let mut file = folder.begin("a", 4096).unwrap();
        file.write_all(&[7; 4096]).unwrap();
        file.keep().unwrap();
        assert_eq!(
            folder.space.free_for(&root, 4096).unwrap(),
            (1 << 50) - 4096
        );
        // A big file reads the file system again.
        let real = folder.space.free_for(&root, FREE_READING_FOR).unwrap();
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
        assert_eq!(folder.space.outstanding.load(Ordering::SeqCst), 0);
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
        // The portable layer finds its hidden partial file by path: the one
        // in the folder moved away stays there, and nothing else does.
        let left = entries(&moved);
        match crate::sys::UNNAMED_PARTIALS {
            true => assert!(left.is_empty(), "saved in the folder moved away: {left:?}"),
            false => assert!(
                left.len() == 1 && left[0].starts_with(PARTIAL_PREFIX),
                "saved in the folder moved away: {left:?}"
            ),
        }
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
}
