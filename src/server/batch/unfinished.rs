//! Folders that batches left unfinished (PROTOCOL.md B5b): the same sender, run again, fills them instead of making a numbered copy.
//!
//! A top frame may carry the sender's key for the folder it sends. The
//! server remembers, by that key, the top folder it made and every file it
//! saved there with its size and BLAKE3. Once every batch filling the folder
//! has ended cleanly with no file failed, the folder is finished: sending the
//! folder again makes `photos (1)/`. If a batch broke
//! off or a file failed, the next top frame with the same key gets the same
//! folder back, and a file already saved there with the same size and hash
//! is answered as saved without being written again. Each folder is also
//! written down beside the parts, with its big files (`drop_folder::record`):
//! a server started again takes it up from there, comparing small files with
//! what the folder holds.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::drop_folder::{DropFolder, Saved, Tree, STAGING_LIFE, TOKEN_LIFE};

/// How long an unfinished folder can be taken up again: as long as its record is kept.
const LIFE: Duration = STAGING_LIFE;
/// How long taking up a folder waits for the batches still filling it once one of them broke off.
const SIBLINGS_WAIT: Duration = Duration::from_secs(5);
/// How many folders are remembered; the oldest goes first.
const MAX_FOLDERS: usize = 256;
/// Files remembered per folder, and in all (a few hundred bytes each). A
/// folder that would go past either is not continued (its files beyond would
/// be saved twice): it is forgotten instead.
const MAX_FILES: usize = 100_000;
const MAX_FILES_IN_ALL: usize = 400_000;
/// The memory they may take, per folder and in all, counted as
/// [`weight`] says: a folder that would go past either is forgotten too.
const MAX_BYTES: usize = 64 << 20;
const MAX_BYTES_IN_ALL: usize = 128 << 20;

/// What remembering a file takes: its strings, and about as much again for
/// the maps that hold them.
fn weight(path: &str, saved: &Saved) -> usize {
    let strings = path.len() + saved.blake3.len() + saved.saved_as.len();
    2 * (strings + saved.part.as_ref().map_or(0, |p| p.len())) + 64
}

/// How long a finished folder is remembered for batches joining it late: a share token's life.
const JOIN_LIFE: Duration = TOKEN_LIFE;

/// Forgets folders nobody fills that are finished and past [`JOIN_LIFE`], or past [`LIFE`].
fn forget_idle(folders: &mut HashMap<String, Filling>) {
    folders.retain(|_, f| {
        f.users > 0 || (f.at.elapsed() < LIFE && (f.broken || f.at.elapsed() < JOIN_LIFE))
    });
}

/// Files remembered and the bytes they take ([`weight`]), in all.
fn in_all(folders: &HashMap<String, Filling>) -> (usize, usize) {
    folders
        .values()
        .fold((0, 0), |(n, b), f| (n + f.saved.len(), b + f.bytes))
}

/// Room for one more folder under [`MAX_FOLDERS`]: the oldest nobody fills
/// goes, with its record. False if every one is being filled.
fn make_room(folders: &mut HashMap<String, Filling>) -> bool {
    if folders.len() < MAX_FOLDERS {
        return true;
    }
    let oldest = folders
        .iter()
        .filter(|(_, f)| f.users == 0)
        .min_by_key(|(_, f)| f.at)
        .map(|(k, _)| k.clone());
    match oldest.and_then(|oldest| folders.remove(&oldest)) {
        Some(gone) => {
            gone.tree.forget();
            true
        }
        None => false,
    }
}

#[derive(Debug)]
struct Filling {
    tree: Tree,
    /// By path below the top folder.
    saved: HashMap<String, Saved>,
    /// The sizes of the big files saved, by part key.
    parts: HashMap<String, u64>,
    /// Batches filling it now.
    users: usize,
    /// A batch broke off or a file failed.
    broken: bool,
    /// Taken up from its record after the server started again: its small
    /// files are known only by what the folder holds.
    from_record: bool,
    at: Instant,
    /// What its files take in memory ([`weight`]).
    bytes: usize,
}

impl Filling {
    fn new(tree: Tree) -> Filling {
        Filling {
            tree,
            saved: HashMap::new(),
            parts: HashMap::new(),
            users: 1,
            broken: false,
            from_record: false,
            at: Instant::now(),
            bytes: 0,
        }
    }

    fn add(&mut self, path: String, saved: Saved) {
        if let Some(part) = &saved.part {
            self.parts.insert(part.clone(), saved.size);
        }
        if let Some(old) = self.saved.remove(&path) {
            self.bytes -= weight(&path, &old);
        }
        self.bytes += weight(&path, &saved);
        self.saved.insert(path, saved);
    }

    /// Whether one more file of `weight` goes past its bounds.
    fn full(&self, weight: usize, in_all: (usize, usize)) -> bool {
        self.saved.len() >= MAX_FILES
            || in_all.0 >= MAX_FILES_IN_ALL
            || self.bytes + weight > MAX_BYTES
            || in_all.1 + weight > MAX_BYTES_IN_ALL
    }
}

/// The folders being filled, and those left unfinished, by the sender's key.
#[derive(Debug, Default)]
pub struct Unfinished {
    folders: Mutex<HashMap<String, Filling>>,
    /// Told when a batch leaves a folder.
    ended: Condvar,
}

impl Unfinished {
    /// The unfinished folder of `key`, taken up again if nobody fills it now
    /// and it is still there; `None` means a new one is to be made (and given
    /// to [`Unfinished::started`]).
    ///
    /// A folder one of whose batches broke off while others are still being
    /// read (what is left of a sender that was killed) is waited for, up to
    /// [`SIBLINGS_WAIT`]: the same command run again at once takes it up.
    pub fn resume(&self, key: &str, drop_folder: &DropFolder) -> Option<Tree> {
        let deadline = Instant::now() + SIBLINGS_WAIT;
        let known = self
            .folders
            .lock()
            .expect("unfinished lock")
            .contains_key(key);
        // Written down by a server that stopped before it was finished: read
        // without the lock, which other batches need meanwhile (MAX_RECORD bounds it).
        let noted = (!known).then(|| drop_folder.noted_folder(key)).flatten();
        let mut folders = self.folders.lock().expect("unfinished lock");
        forget_idle(&mut folders);
        let room = folders.contains_key(key) || make_room(&mut folders);
        if let (false, true, Some((tree, files))) = (folders.contains_key(key), room, noted) {
            let mut folder = Filling::new(tree);
            folder.users = 0;
            folder.broken = true;
            folder.from_record = true;
            let mut all = in_all(&folders);
            for (path, saved) in files {
                let this = weight(&path, &saved);
                if folder.full(this, all) {
                    break;
                }
                folder.add(path, saved);
                all = (all.0 + 1, all.1 + this);
            }
            folders.insert(key.to_string(), folder);
        }
        while folders.get(key).is_some_and(|f| f.broken && f.users > 0) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            folders = self
                .ended
                .wait_timeout(folders, left)
                .expect("unfinished lock")
                .0;
        }
        let folder = folders.get_mut(key)?;
        if folder.users > 0 || !folder.broken || !folder.tree.exists() {
            return None;
        }
        folder.users = 1;
        folder.broken = false;
        folder.at = Instant::now();
        folder.tree.note(None);
        Some(folder.tree.clone())
    }

    /// `tree`, just made for `key`, is being filled by one batch.
    pub fn started(&self, key: &str, tree: &Tree) {
        let mut folders = self.folders.lock().expect("unfinished lock");
        forget_idle(&mut folders);
        if !make_room(&mut folders) {
            return;
        }
        tree.note(None);
        folders.insert(key.to_string(), Filling::new(tree.clone()));
    }

    /// One more batch fills the folder of `key` (it joined with a token).
    pub fn joined(&self, key: &str) {
        if let Some(folder) = self.folders.lock().expect("unfinished lock").get_mut(key) {
            folder.users += 1;
            folder.tree.note(None);
        }
    }

    /// A batch filling the folder of `key` ended: `cleanly` after its end
    /// frame with no file failed. A folder no batch broke off is finished:
    /// never taken up again; it is remembered only while batches of the same
    /// run may still join it (a join token's life), then forgotten.
    pub fn left(&self, key: &str, cleanly: bool) {
        let mut folders = self.folders.lock().expect("unfinished lock");
        if let Some(folder) = folders.get_mut(key) {
            folder.users = folder.users.saturating_sub(1);
            folder.broken |= !cleanly;
            folder.at = Instant::now();
            if folder.users == 0 && !folder.broken {
                folder.tree.forget();
            }
        }
        self.ended.notify_all();
    }

    /// A file of the folder of `key` failed: it is unfinished.
    pub fn failed(&self, key: &str) {
        if let Some(folder) = self.folders.lock().expect("unfinished lock").get_mut(key) {
            folder.broken = true;
        }
    }

    /// `path` (below the top folder) was saved in the folder of `key`.
    pub fn saved(&self, key: &str, path: String, saved: Saved) {
        let mut folders = self.folders.lock().expect("unfinished lock");
        let this = weight(&path, &saved);
        let mut all = in_all(&folders);
        if all.0 >= MAX_FILES_IN_ALL || all.1 + this > MAX_BYTES_IN_ALL {
            // Finished folders nobody fills go first.
            folders.retain(|_, f| f.users > 0 || f.broken);
            all = in_all(&folders);
        }
        let Some(folder) = folders.get_mut(key) else {
            return;
        };
        if folder.full(this, all) {
            folder.tree.forget();
            folders.remove(key);
            return;
        }
        if saved.part.is_some() {
            folder.tree.note(Some((&path, &saved)));
        }
        folder.add(path, saved);
    }

    /// Whether the small files of the folder of `key` are to be compared
    /// with what it holds (it was taken up from its record).
    pub fn compares_on_disk(&self, key: &str) -> bool {
        let folders = self.folders.lock().expect("unfinished lock");
        folders.get(key).is_some_and(|f| f.from_record)
    }

    /// Forgets what was saved at `path` in the folder of `key`: it is not the
    /// file the sender has (its next run sends it whole).
    pub fn forget_file(&self, key: &str, path: &str) {
        let mut folders = self.folders.lock().expect("unfinished lock");
        if let Some(folder) = folders.get_mut(key) {
            if let Some(saved) = folder.saved.remove(path) {
                folder.bytes -= weight(path, &saved);
                if let Some(part) = saved.part {
                    folder.parts.remove(&part);
                }
            }
        }
    }

    /// What was saved at `path` in the folder of `key`, if anything.
    pub fn find(&self, key: &str, path: &str) -> Option<Saved> {
        let folders = self.folders.lock().expect("unfinished lock");
        folders.get(key)?.saved.get(path).cloned()
    }

    /// Whether one of the folders of `keys` holds, whole, the file whose part key is `part`.
    pub fn holds(&self, keys: &[&str], part: &str, size: u64) -> bool {
        let folders = self.folders.lock().expect("unfinished lock");
        keys.iter()
            .filter_map(|k| folders.get(*k))
            .any(|f| f.parts.get(part) == Some(&size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drop_folder::DropFolder;

    fn saved(blake3: &str) -> Saved {
        Saved {
            size: 3,
            blake3: blake3.into(),
            part: Some("p".into()),
            saved_as: "photos/a".into(),
        }
    }

    /// The memory a folder's files take is bounded in bytes, not only in
    /// count: long paths get a folder forgotten long before 100,000 files.
    #[test]
    fn a_folder_is_forgotten_past_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let folder = DropFolder::open(dir.path()).unwrap();
        let mut tree = folder.new_tree("photos").unwrap();
        tree.key = Some("k".into());
        let unfinished = Unfinished::default();
        unfinished.started("k", &tree);
        let long = |n: usize| format!("{n:06}{}", "p".repeat(3000));
        let one = weight(&long(0), &saved("h"));
        let fit = MAX_BYTES / one;
        for n in 0..fit {
            unfinished.saved("k", long(n), saved("h"));
        }
        assert!(unfinished.find("k", &long(0)).is_some(), "{fit} files fit");
        unfinished.saved("k", long(fit), saved("h"));
        assert!(
            unfinished.find("k", &long(0)).is_none(),
            "past {MAX_BYTES} bytes the folder is forgotten"
        );
    }

    #[test]
    fn a_server_started_again_takes_up_what_the_last_one_wrote_down() {
        let dir = tempfile::tempdir().unwrap();
        let folder = DropFolder::open(dir.path()).unwrap();
        let mut tree = folder.new_tree("photos").unwrap();
        tree.key = Some("k".into());
        let before = Unfinished::default();
        before.started("k", &tree);
        before.saved("k", "big".into(), saved("h"));
        let mut small = saved("s");
        small.part = None;
        before.saved("k", "small".into(), small);
        // The server stops there (killed): a new one, the same drop folder.
        let after = Unfinished::default();
        let again = after.resume("k", &folder).expect("written down");
        assert_eq!(again.name, "photos");
        assert!(after.compares_on_disk("k"));
        assert_eq!(
            after.find("k", "big"),
            Some(saved("h")),
            "big files are written down"
        );
        assert_eq!(
            after.find("k", "small"),
            None,
            "small ones are compared instead"
        );
        assert!(after.holds(&["k"], "p", 3));
        // Not the sender's file after all: its next run sends it whole.
        after.forget_file("k", "big");
        assert!(!after.holds(&["k"], "p", 3));
        assert_eq!(after.find("k", "big"), None);
        after.left("k", true);
        assert!(
            Unfinished::default().resume("k", &folder).is_none(),
            "finished: forgotten on disk too"
        );
    }

    #[test]
    fn only_a_folder_left_unfinished_is_taken_up_again_and_by_one_batch() {
        let dir = tempfile::tempdir().unwrap();
        let folder = DropFolder::open(dir.path()).unwrap();
        let unfinished = Unfinished::default();
        let mut tree = folder.new_tree("photos").unwrap();
        tree.key = Some("k".into());

        // Two batches fill it; both end cleanly: finished, never taken up again.
        unfinished.started("k", &tree);
        unfinished.left("k", true);
        unfinished.joined("k");
        unfinished.saved("k", "a".into(), saved("h"));
        assert!(unfinished.resume("k", &folder).is_none(), "in use");
        unfinished.left("k", true);
        assert!(unfinished.resume("k", &folder).is_none(), "finished");
        // A batch that joins late and breaks off leaves it unfinished, with every file saved in it.
        unfinished.joined("k");
        unfinished.left("k", false);
        assert!(unfinished.resume("k", &folder).is_some(), "unfinished");
        assert_eq!(unfinished.find("k", "a"), Some(saved("h")));
        unfinished.left("k", true);
        // The next run makes a new folder for a finished one: what the old one held is forgotten.
        let new = folder.new_tree("photos").unwrap();
        unfinished.started("k", &new);
        assert_eq!(unfinished.find("k", "a"), None);
        unfinished.left("k", true);

        // One breaks off: the next one with the key gets it, with what it holds.
        unfinished.started("k", &tree);
        unfinished.saved("k", "a".into(), saved("h"));
        unfinished.left("k", false);
        let again = unfinished.resume("k", &folder).expect("unfinished");
        assert_eq!(again.name, "photos");
        assert_eq!(unfinished.find("k", "a"), Some(saved("h")));
        assert!(unfinished.holds(&["k"], "p", 3));
        assert!(!unfinished.holds(&["k"], "p", 4));
        assert!(
            unfinished.resume("k", &folder).is_none(),
            "one batch at a time"
        );

        // One batch of a killed sender seen ending, another still being read:
        // taking it up waits for that one.
        unfinished.joined("k");
        unfinished.left("k", false);
        std::thread::scope(|scope| {
            let waiting = scope.spawn(|| unfinished.resume("k", &folder));
            std::thread::sleep(Duration::from_millis(50));
            assert!(
                !waiting.is_finished(),
                "waits for the batch still filling it"
            );
            unfinished.left("k", true);
            assert!(waiting.join().unwrap().is_some());
        });

        // A failed file leaves it unfinished too; a folder removed is not taken up.
        unfinished.failed("k");
        unfinished.left("k", true);
        std::fs::remove_dir(dir.path().join("photos")).unwrap();
        assert!(unfinished.resume("k", &folder).is_none(), "gone");
    }
}
