//! The folder frames of a batch on the server: top (PROTOCOL.md B5, B5a, B5b), dir and claim (B4a), each answered with where it went in the drop folder.

use super::session::Session;
use crate::drop_folder::{AdoptError, Saved, Tree};
use crate::names::{self, SafePath};
use crate::protocol::batch::MAX_TOPS;

impl Session<'_> {
    /// The tree a top folder of this batch goes into, made at its first mention.
    pub(super) fn tree(&mut self, top: &str) -> Result<&Tree, String> {
        if !self.trees.contains_key(top) {
            self.room_for_a_tree()?;
            let tree = self
                .worker
                .folder
                .new_tree(top)
                .map_err(|e| e.to_string())?;
            self.trees.insert(top.to_string(), tree);
            self.made.push(top.to_string());
        }
        Ok(&self.trees[top])
    }

    /// Fails once this batch fills [`MAX_TOPS`] top folders (B10): the batch ends.
    fn room_for_a_tree(&self) -> Result<(), String> {
        if self.trees.len() >= MAX_TOPS {
            return Err(format!(
                "a batch fills at most {MAX_TOPS} top folders: send the rest in another batch"
            ));
        }
        Ok(())
    }

    /// The key of the folder (B5b) a path of this batch goes into, if it has one.
    pub(super) fn key_of(&self, safe: &SafePath) -> Option<String> {
        self.trees.get(safe.top.as_ref()?)?.key.clone()
    }

    /// A top frame (B5a): this batch's folder `top`, made now and shared, or
    /// the one shared by `join`. Returns its name and token. A folder that
    /// cannot be made or joined ends the batch: its files must not land in
    /// another one.
    pub(super) fn top(
        &mut self,
        top: &str,
        join: Option<&str>,
        key: Option<&str>,
    ) -> Result<(String, String), String> {
        // Named as a file's path names it, made safe the same way.
        let sent = SafePath::of(&format!("{top}/-"))?
            .top
            .ok_or("an empty top folder name")?;
        match join {
            Some(token) => self.join(sent, token),
            None => {
                if let Some(key) = key.filter(|_| !self.trees.contains_key(&sent)) {
                    self.room_for_a_tree()?;
                    // B5b: the folder this sender left unfinished, or a new one known by its key.
                    let unfinished = &self.worker.unfinished;
                    let tree = match unfinished.resume(key, &self.worker.folder) {
                        Some(tree) => tree,
                        None => {
                            let mut tree = self
                                .worker
                                .folder
                                .new_tree(&sent)
                                .map_err(|e| e.to_string())?;
                            tree.key = Some(key.to_string());
                            unfinished.started(key, &tree);
                            tree
                        }
                    };
                    self.trees.insert(sent.clone(), tree);
                }
                let tree = self.tree(&sent)?.clone();
                let token = self
                    .worker
                    .folder
                    .share_tree(&tree, self.peer.ip())
                    .ok_or("sharing a folder: no random token")?;
                Ok((tree.name, token))
            }
        }
    }

    /// A top frame with a share token (B5a): the folder `sent` of this batch
    /// is the one another batch made.
    fn join(&mut self, sent: String, token: &str) -> Result<(String, String), String> {
        let tree = self
            .worker
            .folder
            .join_tree(token)
            .ok_or("joining a folder: no folder is shared under that token (any more)")?;
        match self.trees.get(&sent) {
            Some(mine) if mine.name != tree.name => {
                return Err(format!(
                    "joining a folder: this batch fills {} already",
                    names::escape_for_terminal(mine.name.as_bytes())
                ));
            }
            Some(_) => {}
            None => {
                self.room_for_a_tree()?;
                if let Some(key) = &tree.key {
                    self.worker.unfinished.joined(key);
                }
            }
        }
        let name = tree.name.clone();
        self.trees.insert(sent, tree);
        Ok((name, token.to_string()))
    }

    /// A claim frame (B4a): the file a classic upload saved moves to `path`,
    /// under its tree; where it is now, and its size.
    pub(super) fn adopt(&mut self, token: &str, path: &str) -> Result<(String, u64), String> {
        let safe = SafePath::of(path)?;
        let top = safe
            .top
            .clone()
            .ok_or("a claimed file goes into a folder")?;
        let tree = self.tree(&top)?.clone();
        let below = safe.below_top();
        // In a folder taken up again (B5b), the file may be there already.
        let before = tree
            .key
            .as_deref()
            .and_then(|key| self.before(key, &safe, &below));
        let same = before.as_ref().map(|s| (s.size, s.blake3.as_str()));
        let adopted = tree
            .adopt(token, &safe.folders, &safe.name, same)
            .map_err(|e| adopt_failed(&e))?;
        let Some(name) = adopted.name else {
            return Ok((before.map(|s| s.saved_as).unwrap_or_default(), adopted.size));
        };
        let saved_as = format!("{}/{}", tree.name, safe.below_top_as(&name));
        if let (Some(key), Some(blake3)) = (&tree.key, adopted.blake3) {
            let saved = Saved {
                size: adopted.size,
                blake3,
                part: None,
                saved_as: saved_as.clone(),
            };
            self.worker.unfinished.saved(key, below, saved);
        }
        Ok((saved_as, adopted.size))
    }

    /// A folder frame: the folder, under its tree; what it is called in the drop folder.
    pub(super) fn make_dir(&mut self, dir: &str) -> Result<String, String> {
        let path = SafePath::of(dir)?;
        let (top, folders) = match path.top {
            Some(top) => {
                let mut folders = path.folders;
                folders.push(path.name);
                (top, folders)
            }
            None => (path.name, Vec::new()),
        };
        let tree = self.tree(&top)?;
        tree.make(&folders)
            .map_err(|e| format!("making the folder: {e}"))?;
        let mut saved = vec![tree.name.clone()];
        saved.extend(folders);
        Ok(saved.join("/"))
    }
}

/// Why a claimed file was not moved, as its answer says it.
fn adopt_failed(e: &AdoptError) -> String {
    match e {
        AdoptError::NoClaim => "no such claim: unknown, used or expired".into(),
        AdoptError::Gone(e) => format!("the claimed file is gone: {e}"),
        AdoptError::NotTheSame => "the claimed file is not the one that was saved".into(),
        AdoptError::Reading(e) => format!("reading the claimed file: {e}"),
        AdoptError::Folder(e) => e.to_string(),
        AdoptError::Moving(e) => format!("moving the claimed file: {e}"),
    }
}
