//! Claim tokens (PROTOCOL.md B4a) and share tokens (B5a): 16 random bytes that let a later batch move a classic upload's file into its folder, or fill a folder another batch made.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::fs::AtFlags;

use super::dir::Dir;
use super::tree::Tree;
use super::DropFolder;

/// How long a token is good for (a claim's, a shared folder's).
pub const TOKEN_LIFE: Duration = Duration::from_secs(600);

/// How many tokens of each kind are kept; the oldest goes first.
const MAX_TOKENS: usize = 1024;

/// The tokens given out and not used or expired yet.
#[derive(Debug, Default)]
pub(super) struct Tokens {
    /// Files saved by classic uploads that a batch may still move into its folder.
    claims: Mutex<HashMap<String, Claim>>,
    /// Top folders made by a batch that other batches of the same sender may
    /// fill too, with when they were shared.
    shared: Mutex<HashMap<String, (Tree, Instant)>>,
}

/// A file a claim token may move: where it was saved, and which file it was.
#[derive(Debug)]
pub(super) struct Claim {
    pub(super) root: Arc<Dir>,
    pub(super) name: String,
    pub(super) dev: u64,
    pub(super) ino: u64,
    at: Instant,
}

impl DropFolder {
    /// A token that lets a batch move `saved_as` (just saved at the top of the
    /// drop folder) into its folder; `None` if the file cannot be identified.
    pub fn claim(&self, saved_as: &str) -> Option<String> {
        let root = self.dir().ok()?;
        let stat = rustix::fs::statat(&root.fd, saved_as, AtFlags::SYMLINK_NOFOLLOW).ok()?;
        let token = token()?;
        let mut claims = self.tokens.claims.lock().expect("claims lock");
        make_room(&mut claims, |c| c.at);
        claims.insert(
            token.clone(),
            Claim {
                root,
                name: saved_as.to_string(),
                dev: stat.st_dev,
                ino: stat.st_ino,
                at: Instant::now(),
            },
        );
        Some(token)
    }

    /// Takes the claim of `token` for a tree made in `root`, once: `None` if
    /// it is unknown, used, expired or for another drop folder.
    pub(super) fn take_claim(&self, token: &str, root: &Arc<Dir>) -> Option<Claim> {
        self.tokens
            .claims
            .lock()
            .expect("claims lock")
            .remove(token)
            .filter(|c| c.at.elapsed() < TOKEN_LIFE && Arc::ptr_eq(&c.root, root))
    }

    /// A token with which other batches may fill `tree` too (PROTOCOL.md
    /// B5a); good for [`TOKEN_LIFE`], at most [`MAX_TOKENS`] kept.
    pub fn share_tree(&self, tree: &Tree) -> Option<String> {
        let token = token()?;
        let mut shared = self.tokens.shared.lock().expect("trees lock");
        make_room(&mut shared, |(_, at)| *at);
        shared.insert(token.clone(), (tree.clone(), Instant::now()));
        Some(token)
    }

    /// The tree a token shares, while it is good.
    pub fn join_tree(&self, token: &str) -> Option<Tree> {
        let shared = self.tokens.shared.lock().expect("trees lock");
        shared
            .get(token)
            .filter(|(_, at)| at.elapsed() < TOKEN_LIFE)
            .map(|(tree, _)| tree.clone())
    }
}

/// Drops the tokens of `tokens` older than [`TOKEN_LIFE`] and, when
/// [`MAX_TOKENS`] are still kept, the oldest one: room for one more.
fn make_room<T>(tokens: &mut HashMap<String, T>, made: impl Fn(&T) -> Instant) {
    tokens.retain(|_, t| made(t).elapsed() < TOKEN_LIFE);
    if tokens.len() >= MAX_TOKENS {
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
