//! A run planned for batch mode: cut into units (a folder given, whole or over several batches, B5a; or a share of the loose files), and the keys that name a folder (B5b) and a file's part (B8) on the server.

use std::collections::BTreeMap;
use std::path::Path;

use super::connection::Connection;
use crate::client::upload::open;
use crate::client::{Context, Planned, Run};
use crate::outcome::FileReport;
use crate::protocol::batch;

/// A folder of at least this many files per batch is filled by several batches at once (B5a).
const SPLIT_FROM: usize = 256;

/// What goes through one batch: a folder given, whole, or some of the files given.
#[derive(Debug, Default, Clone)]
pub(super) struct Unit {
    /// The first file, sent classically, to move into this folder: (its index, the claim token).
    pub(super) claim: Option<(usize, String)>,
    /// A top folder another batch made, to fill too: (its name as sent, the token that shares it).
    pub(super) join: Option<(String, String)>,
    /// A top folder to make first, known by the sender's key for it (B5b): (its name as sent, the key).
    pub(super) keyed: Option<(String, String)>,
    pub(super) dirs: Vec<String>,
    pub(super) files: Vec<usize>,
}

/// The units of what the first (classic) upload, `classic`, left: a folder
/// given goes whole into one unit (its top folder is made once), or into
/// several that fill it together when it is big; the files given are spread
/// over up to `jobs` units.
pub(super) fn units(context: &Context, run: &Run, classic: Option<usize>) -> Vec<Unit> {
    let mut trees: BTreeMap<String, Unit> = BTreeMap::new();
    let mut loose: Vec<usize> = Vec::new();
    for (index, planned) in run.files.iter().enumerate() {
        if Some(index) == classic {
            continue;
        }
        match &planned.top {
            Some(top) => trees.entry(top.clone()).or_default().files.push(index),
            None => loose.push(index),
        }
    }
    if let Some((first, top)) = classic.and_then(|i| Some((i, run.files[i].top.as_ref()?))) {
        let claim = context.learned.claim.lock().expect("claim lock").take();
        // Without a token, the first file stays where the classic upload put it.
        if let (Some(token), true) = (claim, saved(context, first)) {
            trees.entry(top.clone()).or_default().claim = Some((first, token));
        }
    }
    for dir in &run.empty_dirs {
        let top = dir.split('/').next().unwrap_or(dir).to_string();
        trees.entry(top).or_default().dirs.push(dir.clone());
    }
    let jobs = context.config.jobs.max(1);
    let mut units: Vec<Unit> = Vec::new();
    for (top, mut unit) in trees {
        // With a key, a folder left unfinished is filled again (B5b); verified runs only, as that is how files there are known.
        let key = run
            .folders
            .get(&top)
            .filter(|_| context.config.verify)
            .and_then(|path| folder_key(path));
        // A big folder goes over several batches, once one has made its top folder and shared it.
        let parts = jobs.min(unit.files.len() / SPLIT_FROM);
        let connection = Connection { context, run };
        match (parts > 1)
            .then(|| connection.share_top(&top, key.as_deref()))
            .flatten()
        {
            Some(token) => units.extend(split(unit, &top, &token, parts)),
            None => {
                unit.keyed = key.map(|key| (top, key));
                units.push(unit);
            }
        }
    }
    let spread = jobs.min(loose.len()).max(1);
    let mut shares: Vec<Unit> = (0..spread).map(|_| Unit::default()).collect();
    for (n, index) in loose.into_iter().enumerate() {
        shares[n % spread].files.push(index);
    }
    units.extend(shares.into_iter().filter(|u| !u.files.is_empty()));
    units
}

/// A folder's unit in `parts` units that all fill the same top folder; the
/// first one also moves the classic file in and makes the empty folders.
fn split(unit: Unit, top: &str, token: &str, parts: usize) -> Vec<Unit> {
    let mut units: Vec<Unit> = (0..parts)
        .map(|_| Unit {
            join: Some((top.to_string(), token.to_string())),
            ..Unit::default()
        })
        .collect();
    units[0].claim = unit.claim;
    units[0].dirs = unit.dirs;
    for (n, index) in unit.files.into_iter().enumerate() {
        units[n % parts].files.push(index);
    }
    units
}

/// Whether file `index` was reported saved (by its classic upload).
fn saved(context: &Context, index: usize) -> bool {
    matches!(
        &context.so_far.reports.lock().expect("reports lock")[index],
        Some(FileReport { result: Ok(_), .. })
    )
}

/// The sender's key for a folder it sends (B5b): the same for the same
/// folder on this machine (its path and identity: its inode, or where the
/// OS layer has none, its creation time), whatever it holds.
fn folder_key(path: &Path) -> Option<String> {
    let path = std::fs::canonicalize(path).ok()?;
    let meta = std::fs::metadata(&path).ok()?;
    Some(key_of(
        b"ftx folder key 2\0",
        &path,
        &crate::sys::identity_numbers(&meta),
    ))
}

/// BLAKE3 of `tag`, the bytes of `path` and `numbers`, keyed with this
/// user's secret: a key that names a file or folder of this machine without
/// reading it, and that no one else can make.
fn key_of(tag: &[u8], path: &Path, numbers: &[u64]) -> String {
    let mut hasher = blake3::Hasher::new_keyed(crate::client::secret::secret());
    hasher.update(tag);
    hasher.update(path.as_os_str().as_encoded_bytes());
    for n in numbers {
        hasher.update(&n.to_le_bytes());
    }
    batch::hex(&hasher.finalize())
}

/// The key of a file's part on the server (B8): the same for the same file
/// on this machine (its path, size, modification time and inode, or where
/// the OS layer has no inodes, its creation time), unless it changed. Cheap:
/// nothing is read. A file changed without its modification time is caught
/// by the check of the whole file at the end.
pub(super) fn part_key(planned: &Planned) -> Result<String, String> {
    if let Some(problem) = &planned.problem {
        return Err(problem.clone());
    }
    let (_, meta) = open(&planned.path)?;
    let path = std::fs::canonicalize(&planned.path).unwrap_or_else(|_| planned.path.clone());
    let numbers = crate::sys::fs::version_numbers(&meta);
    Ok(key_of(b"ftx part key 2\0", &path, &numbers))
}
