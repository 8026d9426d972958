//! Resumable parts (PROTOCOL.md B8): where a big verified file of a batch is received, `.ftx-partial/KEY-SIZE`, kept when the batch breaks off so that a later one resumes it.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Seek};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::dir::{open_below, regular, taken, Dir};
use super::partial::{PartialFile, Temp};
use super::{BeginError, DropFolder};
use crate::sys::Access;
use crate::sys::Kind;

/// Where parts of batch files wait to be resumed, and folder records are kept (B5b).
pub(super) const STAGING: &str = ".ftx-partial";

/// A part or a folder's record not written to for this long is removed, and
/// an unfinished folder is no longer taken up again (B5b, B8).
pub const STAGING_LIFE: Duration = Duration::from_secs(24 * 3600);

/// Parts and records are looked over for expiry at most this often (each
/// batch opening asks): a folder of many parts costs one scan a minute, not
/// one per batch.
const EXPIRY_EVERY: Duration = Duration::from_secs(60);

/// How long the questions of one batch about parts another batch is writing
/// wait for that batch to end, in all: a sender interrupted and run again at
/// once asks while the server still reads what its first run had sent
/// (PROTOCOL.md B8). In all, so that a batch asking again and again about a
/// part it keeps busy itself holds its worker no longer than this.
pub const BUSY_PART_WAIT: Duration = Duration::from_secs(5);

/// The parts being written, and the lock that keeps their folder in place.
#[derive(Debug, Default)]
pub(super) struct Parts {
    /// Parts being written now: a second batch resuming one of them starts
    /// afresh instead, once it has waited [`BUSY_PART_WAIT`] for it.
    busy: Mutex<HashSet<String>>,
    /// Told whenever a part stops being written.
    freed: Condvar,
    /// Held while the folder of parts is made and a part created in it, and
    /// while it is removed once empty, so that one batch never removes it
    /// under another.
    staging_lock: Mutex<()>,
    /// When parts were last looked over for expiry.
    looked: Mutex<Option<Instant>>,
}

/// Why the folder of parts, or a file in it, is not used: another user could
/// have put it there, to have the server write through it.
pub(super) const NOT_OURS: &str =
    "not the server's own (another user's, writable by others, or a hard link)";

/// Checks that the folder of parts is the server's own: a folder owned by
/// its user, that no one else can write into.
pub(super) fn own_staging(dir: &Dir) -> io::Result<()> {
    if !dir.stat()?.private {
        return Err(io::Error::other(format!("{STAGING}/ is {NOT_OURS}")));
    }
    Ok(())
}

/// `file`, opened in the folder of parts, with its size: a regular file of
/// the server's user with no other name (a hard link planted there would
/// have the server write into a file outside the drop folder).
pub(super) fn staged(file: File) -> io::Result<(File, u64)> {
    let stat = crate::sys::fs::stat_of(&file)?;
    if stat.kind == Kind::File && (!stat.ours || stat.links != 1) {
        return Err(io::Error::other(NOT_OURS));
    }
    regular(file)
}

/// At start: the folder of parts, if there is one, must be the server's own
/// folder (a link or a file in its place is refused too).
pub(super) fn check_staging(root: &Dir) -> io::Result<()> {
    match root.stat_at(STAGING) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(stat) if stat.kind != Kind::Dir => {
            Err(io::Error::other(format!("{STAGING} is not a folder")))
        }
        Ok(_) => own_staging(&*open_below(root, STAGING)?),
    }
}

impl DropFolder {
    /// The folder of parts, if there is one and it is the server's own.
    pub(super) fn staging_if_any(root: &Dir) -> Option<Arc<Dir>> {
        open_below(root, STAGING)
            .ok()
            .filter(|dir| own_staging(dir).is_ok())
    }

    /// Removes the folder of parts once it holds none, so that it is there only while needed.
    pub(super) fn tidy_staging(&self, root: &Dir) {
        let _held = self.parts.staging_lock.lock().expect("staging lock");
        let _ = root.remove_dir(STAGING);
    }

    /// Opens `name` in the folder of parts (made if missing), created if
    /// missing, with `access` (`Append` for a record several batches add
    /// lines to); under the staging lock, so that the folder is not removed
    /// before the file is in it. Returns the folder of parts, the file and the
    /// size it has. Fails with "not a regular file" for anything but a regular
    /// file there (a named pipe would hold the worker for ever).
    pub(super) fn open_in_staging(
        &self,
        root: &Dir,
        name: &str,
        access: Access,
        mode: u32,
    ) -> io::Result<(Arc<Dir>, File, u64)> {
        let _held = self.parts.staging_lock.lock().expect("staging lock");
        let staging = Self::staging(root)?;
        let (file, size) = staged(staging.open_in(name, access, mode)?)?;
        Ok((staging, file, size))
    }

    /// The folder of parts, made if missing.
    fn staging(root: &Dir) -> io::Result<Arc<Dir>> {
        match root.make_dir(STAGING, 0o700) {
            Ok(()) => {}
            Err(e) if taken(&e) => {}
            Err(e) => return Err(e),
        }
        let staging = open_below(root, STAGING)?;
        own_staging(&staging)?;
        Ok(staging)
    }

    /// The name of the part of a file with this key and size; `None` for a key that is not 64 hex digits.
    fn part_name(key: &str, size: u64) -> Option<String> {
        crate::protocol::batch::is_key(key).then(|| format!("{}-{size}", key.to_ascii_lowercase()))
    }

    /// Bytes held of the file with this key and size, from an earlier batch
    /// (waiting until `until` for a batch still writing it; see [`BUSY_PART_WAIT`]).
    pub fn held(&self, key: &str, size: u64, until: Instant) -> u64 {
        let Some(name) = Self::part_name(key, size) else {
            return 0;
        };
        // Another batch writing it still may end soon; if not, this one
        // will get a fresh file, so it holds nothing for it.
        let busy = self.parts.busy.lock().expect("parts lock");
        let (busy, _) = self
            .parts
            .freed
            .wait_timeout_while(
                busy,
                until.saturating_duration_since(Instant::now()),
                |busy| busy.contains(&name),
            )
            .expect("parts lock");
        if busy.contains(&name) {
            return 0;
        }
        drop(busy);
        self.held_now(&name, size)
    }

    /// Bytes the part `name` holds now (of a file of `size` bytes).
    fn held_now(&self, name: &str, size: u64) -> u64 {
        let Ok(root) = self.dir() else { return 0 };
        let Some(staging) = Self::staging_if_any(&root) else {
            return 0;
        };
        staging
            .stat_at(name)
            .ok()
            .filter(|stat| stat.kind == Kind::File && stat.ours && stat.links == 1)
            .map_or(0, |stat| stat.size.min(size))
    }

    /// Removes parts and records nobody wrote to for [`STAGING_LIFE`], if
    /// they were not looked over in the last [`EXPIRY_EVERY`].
    pub fn expire_parts(&self) {
        {
            let mut looked = self.parts.looked.lock().expect("expiry lock");
            if looked.is_some_and(|at| at.elapsed() < EXPIRY_EVERY) {
                return;
            }
            *looked = Some(Instant::now());
        }
        let Ok(root) = self.dir() else { return };
        let Some(staging) = Self::staging_if_any(&root) else {
            return;
        };
        let Ok(entries) = std::fs::read_dir(self.path.join(STAGING)) else {
            return;
        };
        let busy = self.parts.busy.lock().expect("parts lock").clone();
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > STAGING_LIFE));
            if old && !busy.contains(&name) {
                let _ = staging.remove_file(&name);
            }
        }
        self.tidy_staging(&root);
    }

    /// The part `name` is no longer being written.
    pub(super) fn part_done(&self, name: &str) {
        self.parts.busy.lock().expect("parts lock").remove(name);
        self.parts.freed.notify_all();
    }

    /// Starts, or resumes, a batch file with a known key in its part file;
    /// returns it and how many bytes it already holds. A part another batch is
    /// writing now, or a key that cannot name one, gets a fresh unnamed file.
    pub(super) fn begin_part(
        &self,
        root: &Arc<Dir>,
        dir: Arc<Dir>,
        safe_name: &str,
        key: &str,
        size: u64,
    ) -> Result<(PartialFile, u64), BeginError> {
        let Some(part) = Self::part_name(key, size) else {
            return self
                .begin_in(root, dir, safe_name, size, true)
                .map(|p| (p, 0));
        };
        if !self
            .parts
            .busy
            .lock()
            .expect("parts lock")
            .insert(part.clone())
        {
            return self
                .begin_in(root, dir, safe_name, size, true)
                .map(|p| (p, 0));
        }
        let free_part = |e| {
            self.part_done(&part);
            e
        };
        // The name and the space go first: a file refused leaves no part.
        self.name_for(&dir, safe_name).map_err(free_part)?;
        let mut needed = size - self.held_now(&part, size);
        self.space.reserve(root, needed).map_err(free_part)?;
        let free_all = |e| {
            self.space.release(needed);
            free_part(e)
        };
        // Not opened for appending: splice(2) refuses to write to such a
        // file, and the content would go by hand through a buffer.
        let (staging, mut file, mut held) = self
            .open_in_staging(root, &part, Access::ReadWrite, 0o644)
            .map_err(BeginError::Io)
            .map_err(free_all)?;
        if held > size {
            let _ = file.set_len(0);
            held = 0;
        }
        // What comes is written after what is held.
        file.seek(io::SeekFrom::Start(held))
            .map_err(BeginError::Io)
            .map_err(free_all)?;
        if size - held != needed {
            // Changed since it was looked at (by hand: no batch writes it now).
            self.space.release(needed);
            needed = size - held;
            self.space.reserve(root, needed).map_err(free_part)?;
        }
        let temp = Temp::Part {
            staging,
            name: part,
        };
        Ok((self.partial(file, temp, safe_name, dir, root, needed), held))
    }

    /// Starts, or resumes, a batch file with a known key in its part file, at
    /// the top of the drop folder; returns it and how many bytes it already holds.
    pub fn begin_resumable(
        &self,
        safe_name: &str,
        key: &str,
        size: u64,
    ) -> Result<(PartialFile, u64), BeginError> {
        let root = self.dir()?;
        self.begin_part(&root, Arc::clone(&root), safe_name, key, size)
    }
}

/// Unix only: they plant named pipes, links, modes and owners.
#[cfg(all(test, unix))]
mod tests {
    use super::super::dir::NOT_A_FILE;
    use super::super::record;
    use super::*;
    use crate::sys::testing::{chown, make_fifo, set_mode, symlink};
    use std::fs;

    fn entries(dir: &std::path::Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
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
        let record = dir.path().join(STAGING).join(record::file_name("k"));
        fs::remove_file(&record).unwrap();
        make_fifo(&record);
        assert!(soon(move || folder.noted_folder("k").is_none()));
    }

    /// A resumable file refused for its size (more than the disk has) leaves
    /// no part behind: 5,000 such frames left 5,000 empty parts for a day.
    #[test]
    fn a_file_refused_for_its_size_leaves_no_part() {
        let dir = tempfile::tempdir().unwrap();
        let folder = DropFolder::open(dir.path()).unwrap();
        let key = "ab".repeat(32);
        let refused = folder.begin_resumable("huge.bin", &key, 1 << 62).map(drop);
        assert!(
            matches!(refused, Err(BeginError::NoSpace { .. })),
            "{refused:?}"
        );
        assert_eq!(folder.held(&key, 1 << 62, Instant::now()), 0);
        let staging = dir.path().join(STAGING);
        assert!(
            !staging.exists() || entries(&staging).is_empty(),
            "{:?}",
            entries(&staging)
        );
    }

    /// A hard link planted in the folder of parts, by a local user who can
    /// write the drop folder, as a part or as a folder's record: the server
    /// neither writes into it nor reads it, and the file it names, outside
    /// the drop folder, is unchanged.
    #[test]
    fn hard_links_in_the_folder_of_parts_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");
        fs::write(&victim, b"precious").unwrap();
        let folder = DropFolder::open(dir.path()).unwrap();
        fs::create_dir(dir.path().join(STAGING)).unwrap();
        let key = "ab".repeat(32);
        let part = dir.path().join(STAGING).join(format!("{key}-100000"));
        fs::hard_link(&victim, &part).unwrap();
        assert_eq!(
            folder.held(&key, 100_000, Instant::now()),
            0,
            "a link holds nothing"
        );
        let refused = folder.begin_resumable("big.bin", &key, 100_000).map(drop);
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.to_string().contains(NOT_OURS)),
            "{refused:?}"
        );
        let tree = folder.new_tree("photos").unwrap();
        let record = dir.path().join(STAGING).join(record::file_name("k"));
        fs::hard_link(&victim, &record).unwrap();
        let noted = folder.note_folder("k", &tree, None);
        assert!(noted.is_err_and(|e| e.to_string().contains(NOT_OURS)));
        assert!(folder.noted_folder("k").is_none());
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
    }

    /// A folder of parts others can write into, or that is not a folder, is
    /// refused when the server starts, with the reason.
    #[test]
    fn a_folder_of_parts_others_can_write_is_refused_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let staging = dir.path().join(STAGING);
        fs::create_dir(&staging).unwrap();
        set_mode(&staging, 0o777);
        let refused = DropFolder::open(dir.path()).map(drop).unwrap_err();
        assert!(
            refused
                .to_string()
                .contains(".ftx-partial/ is not the server's own"),
            "{refused}"
        );
        fs::remove_dir(&staging).unwrap();
        symlink(&std::env::temp_dir(), &staging);
        let refused = DropFolder::open(dir.path()).map(drop).unwrap_err();
        assert!(
            refused.to_string().contains(".ftx-partial is not a folder"),
            "{refused}"
        );
        fs::remove_file(&staging).unwrap();
        fs::create_dir(&staging).unwrap();
        assert!(
            DropFolder::open(dir.path()).is_ok(),
            "its own folder is used"
        );
    }

    /// A folder of parts owned by another user is refused at start, and not
    /// used by a server already running.
    #[test]
    #[ignore = "needs root to give a folder to another user; .ci/run runs it with --ignored"]
    fn a_folder_of_parts_of_another_user_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let folder = DropFolder::open(dir.path()).unwrap();
        let staging = dir.path().join(STAGING);
        fs::create_dir(&staging).unwrap();
        chown(&staging, 65534, 65534);
        let key = "cd".repeat(32);
        let refused = folder.begin_resumable("big.bin", &key, 100_000).map(drop);
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.to_string().contains(NOT_OURS)),
            "{refused:?}"
        );
        assert!(entries(&staging).is_empty());
        let refused = DropFolder::open(dir.path()).map(drop).unwrap_err();
        assert!(
            refused.to_string().contains("not the server's own"),
            "{refused}"
        );
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
