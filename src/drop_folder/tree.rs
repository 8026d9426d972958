//! Trees (PROTOCOL.md B5): a top folder made anew in the drop folder for a folder that is sent, the folders below it, and the files moved or received into them.

use std::io;
use std::sync::Arc;

use super::dir::{open_below, open_regular, taken, Dir, Unplaced};
use super::partial::PartialFile;
use super::{BeginError, DropFolder};
use crate::sys::Kind;

/// The small files whose content a folder taken up again is compared with
/// (PROTOCOL.md B5b), read whole to hash: those whose hash comes before them.
const COMPARED_UP_TO: u64 = crate::protocol::batch::WORTH_RESUMING;

/// A folder tree being received (batch mode): a top folder made anew in the
/// drop folder, and folders made inside it as paths name them.
#[derive(Debug, Clone)]
pub struct Tree {
    pub(super) folder: DropFolder,
    pub(super) root: Arc<Dir>,
    /// The top folder's name in the drop folder (numbered if the sent one was taken).
    pub name: String,
    pub(super) top: Arc<Dir>,
    /// The sender's key for the folder it fills (PROTOCOL.md B5b).
    pub key: Option<String>,
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

/// Why a claimed file was not moved into its folder.
#[derive(Debug)]
pub enum AdoptError {
    /// The token is unknown, used or expired.
    NoClaim,
    /// The file saved is gone from the drop folder.
    Gone(io::Error),
    /// A file of that name is there, but not the one that was saved.
    NotTheSame,
    /// Reading it to hash it failed.
    Reading(io::Error),
    /// Making the folder it goes into failed.
    Folder(io::Error),
    /// Moving it failed (its name and every numbered one taken included).
    Moving(io::Error),
}

impl Tree {
    /// Removes the top folder if it is still empty (a batch that made it
    /// broke off before anything went in), with its share tokens; a folder
    /// that holds anything, or is not this one any more, stays.
    pub fn remove_if_empty(&self) {
        let there = self.root.stat_at(&self.name);
        if there.is_ok_and(|s| s.kind == Kind::Dir && s.same_file(self.top.id())) {
            self.folder.unshare_tree(self);
            // Fails, and nothing happens, if it is not empty.
            let _ = self.root.remove_dir(&self.name);
        }
    }
}

impl DropFolder {
    /// Makes a new top folder for a tree that is sent (batch mode): `name`, or
    /// `name (1)`, `name (2)`... when taken, so that nothing already there is
    /// ever written into. `name` must come from [`crate::names::safe_file_name`].
    pub fn new_tree(&self, name: &str) -> Result<Tree, BeginError> {
        let root = self.dir()?;
        let made = self
            .numbering
            .first_free(&root, name, |candidate| root.make_dir(candidate, 0o755));
        let name = match made {
            Ok(name) => name,
            Err(Unplaced::Failed(e)) => return Err(BeginError::Io(e)),
            Err(Unplaced::AllTaken) => return Err(BeginError::Io(super::dir::all_taken(name))),
        };
        let top = open_below(&root, &name).map_err(BeginError::Io)?;
        Ok(Tree {
            folder: self.clone(),
            root,
            name,
            top,
            key: None,
        })
    }
}

impl Tree {
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
            match dir.make_dir(name, 0o755) {
                Ok(()) => {}
                Err(e) if taken(&e) => {}
                Err(e) => return Err(e),
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
    ) -> Result<Adopted, AdoptError> {
        let claim = self
            .folder
            .take_claim(token, &self.root)
            .ok_or(AdoptError::NoClaim)?;
        let stat = claim.root.stat_at(&claim.name).map_err(AdoptError::Gone)?;
        if stat.kind != Kind::File || !stat.same_file(claim.id) {
            return Err(AdoptError::NotTheSame);
        }
        let size = stat.size;
        let blake3 = match &self.key {
            Some(_) => {
                let (file, _) =
                    open_regular(&claim.root, &claim.name).map_err(AdoptError::Reading)?;
                Some(crate::file_hash::hash_of(&file, size).map_err(AdoptError::Reading)?)
            }
            None => None,
        };
        if let (Some((size_before, before)), Some(blake3)) = (before, &blake3) {
            if size_before == size && before.eq_ignore_ascii_case(blake3) {
                let _ = claim.root.remove_file(&claim.name);
                return Ok(Adopted {
                    name: None,
                    size,
                    blake3: Some(blake3.clone()),
                });
            }
        }
        let dir = self.folder(components).map_err(AdoptError::Folder)?;
        let moved = self
            .folder
            .numbering
            .first_free(&dir, safe_name, |candidate| {
                claim.root.rename_to(&claim.name, &dir, candidate)
            });
        match moved {
            Ok(name) => Ok(Adopted {
                name: Some(name),
                size,
                blake3,
            }),
            Err(Unplaced::Failed(e)) => Err(AdoptError::Moving(e)),
            Err(Unplaced::AllTaken) => Err(AdoptError::Moving(super::dir::all_taken(safe_name))),
        }
    }

    /// [`DropFolder::begin_resumable`] in the folder at `components`.
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

    /// Starts a file `safe_name` in the folder at `components` (its name
    /// looked up first as [`DropFolder::begin_batched`] says).
    pub fn begin(
        &self,
        components: &[String],
        safe_name: &str,
        size: u64,
    ) -> Result<PartialFile, BeginError> {
        let dir = self.folder(components).map_err(BeginError::Io)?;
        let look_up = super::partial::looked_up(size);
        self.folder
            .begin_in(&self.root, dir, safe_name, size, look_up)
    }

    /// The size and BLAKE3 of the small regular file at `components`/`name`
    /// in this folder, if there is one (nothing is made, no link followed).
    pub fn small_file_there(&self, components: &[String], name: &str) -> Option<(u64, String)> {
        let mut dir: Arc<Dir> = Arc::clone(&self.top);
        for component in components {
            dir = open_below(&dir, component).ok()?;
        }
        let (file, size) = open_regular(&dir, name).ok()?;
        if size >= COMPARED_UP_TO {
            return None;
        }
        Some((size, crate::file_hash::hash_of(&file, size).ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::super::both_ways;
    use std::fs;

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
}
