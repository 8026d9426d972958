//! Folder records (PROTOCOL.md B5b): each folder batches are filling, written down beside the parts, so that a server started again can take an unfinished one up.
//!
//! One file per folder, `.ftx-partial/folder-HASH` (HASH: BLAKE3 of the
//! sender's key, so that no client string names a file), of JSON lines: the
//! top folder first ([`TopLine`]: its name and which folder it is), then
//! every big file saved in it ([`FileLine`]). Small files need no line: their
//! hash comes before their content, and is compared with the file in the
//! folder. Removed once the folder is finished; expired with the parts after
//! a day without a write. Both line kinds are written and read here only.

use std::io::{self, Write};

use serde::{Deserialize, Serialize};

use super::dir::open_below;
use super::parts::staged;
use super::tree::Tree;
use super::DropFolder;
use crate::protocol::batch::read_line;
use crate::sys::Access;
use crate::sys::FileId;

/// A file saved in a keyed folder: what a later batch compares a file with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Saved {
    pub size: u64,
    pub blake3: String,
    /// The key of its part (B8), for a big file.
    pub part: Option<String>,
    /// Where it is, from the drop folder.
    pub saved_as: String,
}

/// The first line: which top folder it is (its identity from the OS layer:
/// device and inode, or 0 and its creation time; 0 and 0 where it has none).
#[derive(Serialize, Deserialize)]
struct TopLine {
    top: String,
    dev: u64,
    ino: u64,
}

/// A big file saved, as its folder's record holds it: its path below the top folder.
#[derive(Serialize, Deserialize)]
struct FileLine {
    path: String,
    #[serde(flatten)]
    saved: Saved,
}

/// The longest a folder's record may grow: past it, big files saved are no
/// longer written down (a server started again has them sent again), and a
/// longer one found is not taken up. Its lines are at most a frame line long.
pub const MAX_RECORD: u64 = 16 << 20;

pub(super) fn file_name(key: &str) -> String {
    format!(
        "folder-{}",
        crate::protocol::batch::hex(&blake3::hash(key.as_bytes()))
    )
}

impl DropFolder {
    /// Writes down that `tree` is filled for `key`, if not written yet, and
    /// adds `file` (a big file saved in it: its path below the top, and what
    /// it is) if given.
    pub fn note_folder(
        &self,
        key: &str,
        tree: &Tree,
        file: Option<(&str, &Saved)>,
    ) -> io::Result<()> {
        let root = self.dir().map_err(|e| io::Error::other(e.to_string()))?;
        let (_, mut record, size) =
            self.open_in_staging(&root, &file_name(key), Access::Append, 0o600)?;
        let mut text = String::new();
        if size == 0 {
            let id = tree.top.id().unwrap_or(FileId { dev: 0, ino: 0 });
            let top = TopLine {
                top: tree.name.clone(),
                dev: id.dev,
                ino: id.ino,
            };
            text.push_str(&serde_json::to_string(&top).map_err(io::Error::other)?);
            text.push('\n');
        }
        if let Some((path, saved)) = file {
            let line = FileLine {
                path: path.to_string(),
                saved: saved.clone(),
            };
            text.push_str(&serde_json::to_string(&line).map_err(io::Error::other)?);
            text.push('\n');
        }
        if size + text.len() as u64 > MAX_RECORD {
            return Err(io::Error::other("the folder's record is full"));
        }
        record.write_all(text.as_bytes())
    }

    /// Forgets the folder of `key`: it is finished.
    pub fn forget_folder(&self, key: &str) {
        let Ok(root) = self.dir() else { return };
        if let Some(staging) = Self::staging_if_any(&root) {
            let _ = staging.remove_file(&file_name(key));
        }
        self.tidy_staging(&root);
    }

    /// The folder written down for `key` by this server or an earlier one, if
    /// it is still there: its tree, and the big files saved in it, by path
    /// below the top (lines that cannot be read are passed over).
    pub fn noted_folder(&self, key: &str) -> Option<(Tree, Vec<(String, Saved)>)> {
        let root = self.dir().ok()?;
        let staging = Self::staging_if_any(&root)?;
        let (file, size) = staged(staging.open_to_read(&file_name(key)).ok()?).ok()?;
        if size > MAX_RECORD {
            return None;
        }
        let mut reader = io::BufReader::new(io::Read::take(file, MAX_RECORD));
        let mut lines = std::iter::from_fn(|| read_line(&mut reader).ok().flatten())
            .filter_map(|line| String::from_utf8(line).ok());
        let top: TopLine = serde_json::from_str(&lines.next()?).ok()?;
        // One safe name, as this server wrote it: never a path.
        if crate::names::safe_file_name(top.top.as_bytes()) != top.top {
            return None;
        }
        let dir = open_below(&root, &top.top).ok()?;
        let noted = FileId {
            dev: top.dev,
            ino: top.ino,
        };
        if dir.id().is_some_and(|id| id != noted) {
            return None;
        }
        let tree = Tree {
            folder: self.clone(),
            root,
            name: top.top,
            top: dir,
            key: Some(key.to_string()),
        };
        let files = lines
            .filter_map(|line| serde_json::from_str::<FileLine>(&line).ok())
            .map(|line| (line.path, line.saved))
            .collect();
        Some((tree, files))
    }
}

impl Tree {
    /// Writes down (B5b) that it is being filled for its key, and `file` (a
    /// big file saved in it) if given: a server started again can take it
    /// up. Without a key, nothing.
    pub fn note(&self, file: Option<(&str, &Saved)>) {
        if let Some(key) = &self.key {
            let _ = self.folder.note_folder(key, self, file);
        }
    }

    /// Forgets what [`Tree::note`] wrote: the folder is finished.
    pub fn forget(&self) {
        if let Some(key) = &self.key {
            self.folder.forget_folder(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn big(blake3: &str) -> Saved {
        Saved {
            size: 70_000,
            blake3: blake3.into(),
            part: Some("p".into()),
            saved_as: "photos/a".into(),
        }
    }

    /// A record stops growing at MAX_RECORD, and one longer than that (put
    /// there by hand) is not read.
    #[test]
    fn a_record_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let folder = DropFolder::open(dir.path()).unwrap();
        let tree = folder.new_tree("photos").unwrap();
        let mut long = big("h");
        long.saved_as = "s".repeat(7000);
        let mut full = None;
        for n in 0..(MAX_RECORD / 7000 + 10) {
            if let Err(e) = folder.note_folder("k", &tree, Some((&n.to_string(), &long))) {
                full = Some(e.to_string());
                break;
            }
        }
        assert_eq!(full.as_deref(), Some("the folder's record is full"));
        let record = dir.path().join(".ftx-partial").join(file_name("k"));
        assert!(std::fs::metadata(&record).unwrap().len() <= MAX_RECORD);
        assert!(folder.noted_folder("k").is_some());
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&record)
            .unwrap();
        file.set_len(MAX_RECORD + 1).unwrap();
        assert!(folder.noted_folder("k").is_none(), "too long to be read");
    }

    #[test]
    fn a_folder_written_down_is_found_again_by_another_server_until_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let folder = DropFolder::open(dir.path()).unwrap();
        let tree = folder.new_tree("photos").unwrap();
        folder.note_folder("k", &tree, None).unwrap();
        folder
            .note_folder("k", &tree, Some(("a", &big("h"))))
            .unwrap();
        std::fs::create_dir(dir.path().join("photos/sub")).unwrap();
        std::fs::write(dir.path().join("photos/sub/x.txt"), b"small").unwrap();

        // Another server, the same drop folder.
        let again = DropFolder::open(dir.path()).unwrap();
        let (tree, files) = again.noted_folder("k").expect("written down");
        assert_eq!(tree.name, "photos");
        assert_eq!(files, [("a".to_string(), big("h"))]);
        let there = tree.small_file_there(&["sub".to_string()], "x.txt");
        assert_eq!(
            there,
            Some((5, crate::protocol::batch::hex(&blake3::hash(b"small"))))
        );
        assert_eq!(tree.small_file_there(&[], "x.txt"), None);
        assert!(again.noted_folder("other key").is_none());

        again.forget_folder("k");
        assert!(again.noted_folder("k").is_none());
        assert!(
            !dir.path().join(".ftx-partial").exists(),
            "nothing left behind"
        );

        // A folder written down that is not the one there any more is not taken.
        folder.note_folder("k", &tree, None).unwrap();
        std::fs::rename(dir.path().join("photos"), dir.path().join("old")).unwrap();
        std::fs::create_dir(dir.path().join("photos")).unwrap();
        assert!(folder.noted_folder("k").is_none());

        // A record naming a path, not a name (written by someone else), is not followed.
        let old = std::fs::metadata(dir.path().join("old")).unwrap();
        let old = crate::sys::fs::id_of(&old).unwrap_or(FileId { dev: 0, ino: 0 });
        let record = dir.path().join(".ftx-partial").join(file_name("k"));
        let forged = format!(
            "{{\"top\":\"old/.\",\"dev\":{},\"ino\":{}}}\n",
            old.dev, old.ino
        );
        std::fs::write(&record, forged).unwrap();
        assert!(folder.noted_folder("k").is_none());
        // Numbered names are names.
        let numbered = folder.new_tree("photos").unwrap();
        assert_eq!(numbered.name, "photos (1)");
        folder.note_folder("n", &numbered, None).unwrap();
        assert_eq!(folder.noted_folder("n").unwrap().0.name, "photos (1)");
    }
}
