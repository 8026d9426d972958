//! Claim tokens (PROTOCOL.md B4a) and share tokens (B5a): 16 random bytes that let a later batch move a classic upload's file into its folder, or fill a folder another batch made.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::sys::FileId;

use super::dir::Dir;
use super::tree::Tree;
use super::DropFolder;

/// How long a token is good for (a claim's, a shared folder's).
pub const TOKEN_LIFE: Duration = Duration::from_secs(600);

/// How many tokens of each kind are kept in all (a shared folder's holds its
/// folder's descriptor).
pub const MAX_TOKENS: usize = 1024;

/// How many tokens of each kind one client (one IP address) may hold: one
/// that asks for more loses its own oldest. When all [`MAX_TOKENS`] are
/// held, the oldest token of the client holding the most goes, so that a
/// client can take room only from one holding more than it does.
pub const MAX_TOKENS_PER_CLIENT: usize = 64;

/// The tokens given out and not used or expired yet.
#[derive(Debug, Default)]
pub(super) struct Tokens {
    /// Files saved by classic uploads that a batch may still move into its folder.
    claims: Mutex<HashMap<String, Given<Claim>>>,
    /// Top folders made by a batch that other batches of the same sender may fill too.
    shared: Mutex<HashMap<String, Given<Tree>>>,
}

/// What a token stands for, to whom and when it was given.
#[derive(Debug)]
struct Given<T> {
    what: T,
    client: IpAddr,
    at: Instant,
}

impl<T> Given<T> {
    fn good(&self) -> bool {
        self.at.elapsed() < TOKEN_LIFE
    }
}

/// A file a claim token may move: where it was saved, and which file it was.
#[derive(Debug)]
pub(super) struct Claim {
    pub(super) root: Arc<Dir>,
    pub(super) name: String,
    /// Which file it is, where the OS layer can tell.
    pub(super) id: Option<FileId>,
}

impl DropFolder {
    /// A token that lets a batch move `saved_as` (just saved at the top of the
    /// drop folder by `client`) into its folder; `None` if the file cannot be identified.
    pub fn claim(&self, saved_as: &str, client: IpAddr) -> Option<String> {
        let root = self.dir().ok()?;
        let stat = root.stat_at(saved_as).ok()?;
        let claim = Claim {
            root,
            name: saved_as.to_string(),
            id: stat.id,
        };
        give(&self.tokens.claims, claim, client)
    }

    /// Takes the claim of `token` for a tree made in `root`, once: `None` if
    /// it is unknown, used, expired or for another drop folder.
    pub(super) fn take_claim(&self, token: &str, root: &Arc<Dir>) -> Option<Claim> {
        self.tokens
            .claims
            .lock()
            .expect("claims lock")
            .remove(token)
            .filter(|c| c.good() && Arc::ptr_eq(&c.what.root, root))
            .map(|c| c.what)
    }

    /// The token with which other batches may fill `tree` too (PROTOCOL.md
    /// B5a), for `client`: the one it has already while that is good, or a
    /// new one, good for [`TOKEN_LIFE`].
    pub fn share_tree(&self, tree: &Tree, client: IpAddr) -> Option<String> {
        {
            let shared = self.tokens.shared.lock().expect("trees lock");
            let had = shared
                .iter()
                .find(|(_, t)| t.good() && Arc::ptr_eq(&t.what.top, &tree.top));
            if let Some((token, _)) = had {
                return Some(token.clone());
            }
        }
        give(&self.tokens.shared, tree.clone(), client)
    }

    /// The tree a token shares, while it is good.
    pub fn join_tree(&self, token: &str) -> Option<Tree> {
        let shared = self.tokens.shared.lock().expect("trees lock");
        shared
            .get(token)
            .filter(|t| t.good())
            .map(|t| t.what.clone())
    }

    /// Drops the share tokens of `tree`: no other batch may join it any more.
    pub fn unshare_tree(&self, tree: &Tree) {
        let mut shared = self.tokens.shared.lock().expect("trees lock");
        shared.retain(|_, t| !Arc::ptr_eq(&t.what.top, &tree.top));
    }

    /// Drops the tokens past their life, and with them the folders they hold open.
    pub fn expire_tokens(&self) {
        let claims = &self.tokens.claims;
        claims.lock().expect("claims lock").retain(|_, t| t.good());
        let shared = &self.tokens.shared;
        shared.lock().expect("trees lock").retain(|_, t| t.good());
    }

    /// How many tokens of each kind are held: (claims, shared folders).
    #[cfg(test)]
    pub fn tokens_held(&self) -> (usize, usize) {
        let claims = self.tokens.claims.lock().expect("claims lock").len();
        (claims, self.tokens.shared.lock().expect("trees lock").len())
    }
}

/// A new token for `what`, given to `client`, once there is room for it
/// under [`MAX_TOKENS_PER_CLIENT`] and [`MAX_TOKENS`].
fn give<T>(tokens: &Mutex<HashMap<String, Given<T>>>, what: T, client: IpAddr) -> Option<String> {
    let token = token()?;
    let mut tokens = tokens.lock().expect("tokens lock");
    tokens.retain(|_, t| t.good());
    let mut held: HashMap<IpAddr, usize> = HashMap::new();
    for t in tokens.values() {
        *held.entry(t.client).or_default() += 1;
    }
    let from = if held.get(&client).copied().unwrap_or(0) >= MAX_TOKENS_PER_CLIENT {
        Some(client)
    } else if tokens.len() >= MAX_TOKENS {
        held.iter().max_by_key(|(_, n)| **n).map(|(c, _)| *c)
    } else {
        None
    };
    if let Some(from) = from {
        let oldest = tokens
            .iter()
            .filter(|(_, t)| t.client == from)
            .min_by_key(|(_, t)| t.at)
            .map(|(token, _)| token.clone());
        if let Some(oldest) = oldest {
            tokens.remove(&oldest);
        }
    }
    let given = Given {
        what,
        client,
        at: Instant::now(),
    };
    tokens.insert(token.clone(), given);
    Some(token)
}

/// 16 random bytes in hex: what only the one who was told can say again.
fn token() -> Option<String> {
    let mut random = [0u8; 16];
    crate::sys::random(&mut random).ok()?;
    Some(random.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    /// A client flooding tokens loses its own oldest, never another's; a full
    /// store gives way only from the client that holds the most.
    #[test]
    fn a_client_cannot_take_another_clients_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let folder = DropFolder::open(dir.path()).unwrap();
        std::fs::write(dir.path().join("first.txt"), b"x").unwrap();
        let victim = folder.claim("first.txt", ip(1)).unwrap();
        let tree = folder.new_tree("photos").unwrap();
        let shared = folder.share_tree(&tree, ip(1)).unwrap();
        assert_eq!(
            folder.share_tree(&tree, ip(1)).as_deref(),
            Some(shared.as_str()),
            "a folder shared already keeps its token"
        );
        for _ in 0..MAX_TOKENS + 100 {
            folder.claim("first.txt", ip(2)).unwrap();
        }
        for n in 0..MAX_TOKENS + 100 {
            let flood = folder.new_tree(&format!("f{n}")).unwrap();
            folder.share_tree(&flood, ip(2)).unwrap();
        }
        assert_eq!(
            folder.tokens_held(),
            (MAX_TOKENS_PER_CLIENT + 1, MAX_TOKENS_PER_CLIENT + 1)
        );
        assert!(folder.join_tree(&shared).is_some());
        let root = folder.dir().unwrap();
        assert!(folder.take_claim(&victim, &root).is_some());

        // Room for everyone's quota is all there is: a new client takes it
        // from the one holding the most, not from those holding fewer.
        let mut first_of = Vec::new();
        for client in 3..3 + (MAX_TOKENS / MAX_TOKENS_PER_CLIENT) as u8 {
            let tree = folder.new_tree(&format!("c{client}")).unwrap();
            first_of.push(folder.share_tree(&tree, ip(client)).unwrap());
            for n in 1..MAX_TOKENS_PER_CLIENT {
                let more = folder.new_tree(&format!("c{client}-{n}")).unwrap();
                folder.share_tree(&more, ip(client)).unwrap();
            }
        }
        assert_eq!(folder.tokens_held().1, MAX_TOKENS);
        assert!(
            folder.join_tree(&shared).is_some(),
            "the client holding one token kept it"
        );
    }
}
