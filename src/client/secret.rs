//! The sender's own secret (PROTOCOL.md B5b, B8): 32 random bytes kept in the user's state folder and mixed into every key it sends, so that only this user's ftx can name its parts and unfinished folders.
//!
//! A key is derived from a file's path, size, modification time and inode,
//! which anyone on the machine can read. Hashed with this secret, the same
//! file gives the same key for this user, run after run, and a key nobody
//! else can make: another user, or another client that knows the path, can
//! neither resume, read nor spoil this user's parts. The secret is
//! `$XDG_STATE_HOME/ftx/secret` (else `~/.local/state/ftx/secret`), made
//! 0600 at the first verified run. Where it can be neither read nor made,
//! each run has a secret of its own: nothing is lost, but nothing resumes.

use std::fs;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::OnceLock;

/// Bytes of the secret: a BLAKE3 key.
const SECRET_LEN: usize = 32;

/// This user's secret, read or made once per run.
pub(super) fn secret() -> &'static [u8; SECRET_LEN] {
    static SECRET: OnceLock<[u8; SECRET_LEN]> = OnceLock::new();
    SECRET.get_or_init(|| {
        path()
            .and_then(|path| kept(&path).ok())
            .unwrap_or_else(random)
    })
}

/// Where the secret is kept.
fn path() -> Option<PathBuf> {
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/state"))
        })?;
    Some(state.join("ftx").join("secret"))
}

/// The secret kept at `path`, made there if there is none.
fn kept(path: &std::path::Path) -> io::Result<[u8; SECRET_LEN]> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let made = crate::sys::fs::create_private(path);
    match made {
        Ok(mut file) => {
            let secret = random();
            file.write_all(&secret)?;
            Ok(secret)
        }
        // Made already (by an earlier run, or one running now).
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => read(path),
        Err(e) => Err(e),
    }
}

/// The secret at `path`; refused if others may read it (it would name this user's files for them).
fn read(path: &std::path::Path) -> io::Result<[u8; SECRET_LEN]> {
    let mut file = fs::File::open(path)?;
    if crate::sys::fs::readable_by_others(&file.metadata()?) {
        return Err(io::Error::other("readable by others"));
    }
    let mut secret = [0u8; SECRET_LEN];
    file.read_exact(&mut secret)?;
    Ok(secret)
}

fn random() -> [u8; SECRET_LEN] {
    let mut secret = [0u8; SECRET_LEN];
    // A machine without randomness has bigger troubles; the keys are then
    // still made, and still this user's (the path and inode are in them).
    let _ = crate::sys::random(&mut secret);
    secret
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Made once, 0600, and the same when read again; a secret others can
    /// read is not used.
    #[test]
    #[cfg(unix)]
    fn the_secret_is_kept_and_private() {
        use crate::sys::testing::{mode, set_mode};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ftx/secret");
        let first = kept(&path).unwrap();
        assert_eq!(kept(&path).unwrap(), first);
        assert_eq!(mode(&path) & 0o777, 0o600);
        assert_ne!(first, [0u8; SECRET_LEN]);
        set_mode(&path, 0o644);
        assert!(kept(&path).is_err());
    }
}
