//! Folders batches are filling, written down beside the parts (PROTOCOL.md B5b), so that a server started again can take an unfinished one up.
//!
//! One file per folder, `.ftx-partial/folder-HASH` (HASH: BLAKE3 of the
//! sender's key, so that no client string names a file), of JSON lines: the
//! top folder first (its name and which folder it is), then every big file
//! saved in it. Small files need no line: their hash comes before their
//! content, and is compared with the file in the folder. Removed once the
//! folder is finished; expired with the parts after a day without a write.

use std::io::{self, BufRead, Write};
use std::sync::Arc;

use rustix::fs::{AtFlags, OFlags};
use serde::{Deserialize, Serialize};

use super::{open_below, open_regular, Dir, DropFolder, Tree};
use crate::protocol::batch;

/// The first line: which top folder it is.
#[derive(Serialize, Deserialize)]
struct Top {
    top: String,
    dev: u64,
    ino: u64,
}

/// The small files whose content the folder may be compared with, read whole to hash.
const COMPARED_UP_TO: u64 = batch::WORTH_RESUMING;

pub(super) fn file_name(key: &str) -> String {
    format!("folder-{}", batch::hex(&blake3::hash(key.as_bytes())))
}

impl DropFolder {
    /// Writes down that `tree` is filled for `key`, if not written yet, and
    /// adds `line` (a big file saved in it) if given.
    pub fn note_folder(&self, key: &str, tree: &Tree, line: Option<&str>) -> io::Result<()> {
        let root = self.dir().map_err(|e| io::Error::other(e.to_string()))?;
        let (_, mut file, size) = self.open_in_staging(
            &root,
            &file_name(key),
            OFlags::WRONLY | OFlags::APPEND,
            0o600,
        )?;
        let mut text = String::new();
        if size == 0 {
            let top = Top {
                top: tree.name.clone(),
                dev: tree.top.dev,
                ino: tree.top.ino,
            };
            text.push_str(&serde_json::to_string(&top).map_err(io::Error::other)?);
            text.push('\n');
        }
        if let Some(line) = line {
            text.push_str(line);
            text.push('\n');
        }
        file.write_all(text.as_bytes())
    }

    /// Forgets the folder of `key`: it is finished.
    pub fn forget_folder(&self, key: &str) {
        let Ok(root) = self.dir() else { return };
        if let Some(staging) = Self::staging_if_any(&root) {
            let _ = rustix::fs::unlinkat(&staging.fd, file_name(key).as_str(), AtFlags::empty());
        }
        self.tidy_staging(&root);
    }

    /// The folder written down for `key` by this server or an earlier one, if
    /// it is still there: its tree, and the lines of the big files saved in it.
    pub fn noted_folder(&self, key: &str) -> Option<(Tree, Vec<String>)> {
        let root = self.dir().ok()?;
        let staging = Self::staging_if_any(&root)?;
        let (file, _) = open_regular(&staging, &file_name(key)).ok()?;
        let mut lines = io::BufReader::new(file).lines().map_while(Result::ok);
        let top: Top = serde_json::from_str(&lines.next()?).ok()?;
        // One safe name, as this server wrote it: never a path.
        if crate::names::safe_file_name(top.top.as_bytes()) != top.top {
            return None;
        }
        let dir = open_below(&root, &top.top).ok()?;
        if (dir.dev, dir.ino) != (top.dev, top.ino) {
            return None;
        }
        let tree = Tree {
            folder: self.clone(),
            root,
            name: top.top,
            top: dir,
            key: Some(key.to_string()),
        };
        Some((tree, lines.collect()))
    }
}

impl Tree {
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
        Some((size, batch::hash_of(&file, size).ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_written_down_is_found_again_by_another_server_until_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let folder = DropFolder::open(dir.path()).unwrap();
        let tree = folder.new_tree("photos").unwrap();
        folder.note_folder("k", &tree, None).unwrap();
        folder.note_folder("k", &tree, Some("{\"a\":1}")).unwrap();
        std::fs::create_dir(dir.path().join("photos/sub")).unwrap();
        std::fs::write(dir.path().join("photos/sub/x.txt"), b"small").unwrap();

        // Another server, the same drop folder.
        let again = DropFolder::open(dir.path()).unwrap();
        let (tree, lines) = again.noted_folder("k").expect("written down");
        assert_eq!(tree.name, "photos");
        assert_eq!(lines, ["{\"a\":1}"]);
        let there = tree.small_file_there(&["sub".to_string()], "x.txt");
        assert_eq!(there, Some((5, batch::hex(&blake3::hash(b"small")))));
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
        use std::os::unix::fs::MetadataExt;
        let old = std::fs::metadata(dir.path().join("old")).unwrap();
        let record = dir.path().join(".ftx-partial").join(file_name("k"));
        let forged = format!(
            "{{\"top\":\"old/.\",\"dev\":{},\"ino\":{}}}\n",
            old.dev(),
            old.ino()
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
