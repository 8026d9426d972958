//! The OS layer: every call that portable std does not offer goes through here, in a Linux implementation (the fast paths) or a portable one (std and cross-platform crates), which macOS and Windows build and `--features portable` makes Linux use too, so that it is tested here.
//!
//! The rest of ftx has no `cfg(target_os)` and no `std::os::unix`: it asks
//! this module, and where a guarantee depends on the layer it asks what the
//! layer can do ([`UNNAMED_PARTIALS`], `FILE_IDENTITY`, `copy::IN_KERNEL`);
//! `ftx --version` says which layer it was built with. What differs:
//!
//! | | Linux layer | portable layer |
//! | --- | --- | --- |
//! | a file being received | unnamed (`O_TMPFILE`): nothing partial is ever visible, a crash leaves nothing | a hidden `.ftx-partial-PID-N`, removed on every failure path; a crash (`kill -9`) can leave one, which the next server on the folder removes (on Unix) |
//! | ways into the drop folder | through its open descriptor (`openat`, no link followed) | by path, each name checked not to be a link first (a local user who swaps a folder for a link between the check and the open can win the race; a client cannot, as no client string picks a path) |
//! | keeping under a final name | `linkat` / `renameat2(RENAME_NOREPLACE)`: never replaces | a hard link (never replaces), or, where there are none, a rename after a check, under one lock (never replaces what ftx itself made; another program can race it) |
//! | which file is which (claims, folder records, the drop folder made again) | device and inode | creation time, where the file system keeps one; where not, files are taken to be the same |
//! | content moved | `splice(2)` socket -> file, `sendfile(2)` file -> socket | a buffer |
//! | free space | `fstatvfs` | `fs4` (statvfs, `GetDiskFreeSpaceExW`) |
//! | the folder of parts is the server's own | owner and mode checked | checked on Unix; on Windows, what the folder's ACL allows |
//! | typed keys while bars are drawn | not echoed (termios) | not echoed (termios; Windows: the console mode, not compiled here) |
//! | `ftx check`'s program and what it starts | one process group, killed whole | the same on Unix; on Windows, the program only |
//! | unacknowledged bytes (a classic receipt's proof) | `SIOCOUTQ` | macOS `SO_NWRITE` (not compiled here); elsewhere unknown |

#[cfg(unix)]
mod unix;
#[cfg(windows)]
mod windows;

#[cfg(all(target_os = "linux", not(feature = "portable")))]
mod linux;
#[cfg(all(target_os = "linux", not(feature = "portable")))]
use linux as imp;

#[cfg(any(not(target_os = "linux"), feature = "portable"))]
mod portable;
#[cfg(any(not(target_os = "linux"), feature = "portable"))]
use portable as imp;

#[cfg(test)]
pub use imp::FILE_IDENTITY;
pub use imp::{copy, fs, net, process, term, LONG_VERSION, UNNAMED_PARTIALS};

/// How `fs::Dir::open_in` opens a file.
#[derive(Debug, Clone, Copy)]
pub enum Access {
    ReadWrite,
    Append,
}

/// What opening something that is not a regular file, where one was wanted, says.
pub const NOT_A_FILE: &str = "not a regular file";

/// What a file is, as seen without following a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Link,
    /// A named pipe, a device, a socket.
    Other,
}

/// Which file a file is, as far as the layer can tell: two stats with the
/// same identity are the same file. `None` where the layer cannot tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

/// What [`fs`] says of a file, in one shape on every system.
#[derive(Debug, Clone)]
pub struct Stat {
    pub kind: Kind,
    pub size: u64,
    /// Names the file has; 1 where the system cannot tell.
    pub links: u64,
    /// Owned by the user ftx runs as, and writable by no one else (true where
    /// the system has no such notion ftx can read).
    pub private: bool,
    /// Owned by the user ftx runs as (true where the system cannot tell).
    pub ours: bool,
    pub id: Option<FileId>,
}

impl Stat {
    /// Whether `self` and `other` are the same file: where either identity
    /// is unknown, they are taken to be ([`FILE_IDENTITY`] says whether it can be known).
    pub fn same_file(&self, other: Option<FileId>) -> bool {
        match (self.id, other) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        }
    }
}

/// Test helpers for what only Unix has: named pipes, links, modes, owners.
#[cfg(all(test, unix))]
pub mod testing {
    use std::path::Path;

    /// Makes a named pipe at `path`.
    pub fn make_fifo(path: &Path) {
        let path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: `path` is a NUL-terminated string that outlives the call.
        assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    }

    pub fn symlink(target: &Path, link: &Path) {
        std::os::unix::fs::symlink(target, link).unwrap();
    }

    pub fn set_mode(path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    pub fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode()
    }

    pub fn chown(path: &Path, uid: u32, gid: u32) {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
    }
}

/// The numbers that tell a folder from any other on this machine, as far as
/// the layer can ([`fs::id_of`]: device and inode, or creation time); none
/// where it cannot.
pub fn identity_numbers(meta: &std::fs::Metadata) -> Vec<u64> {
    fs::id_of(meta).map_or_else(Vec::new, |id| vec![id.dev, id.ino])
}

/// Fills `buf` with random bytes from the system.
pub fn random(buf: &mut [u8]) -> std::io::Result<()> {
    getrandom::fill(buf).map_err(|e| std::io::Error::other(e.to_string()))
}

/// The layer this build uses, checked the same way in both builds
/// (`cargo test` and `cargo test --features portable`).
#[cfg(test)]
mod tests {
    use super::fs::Dir;
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    #[test]
    fn a_listening_port_is_seen() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        assert_eq!(net::listening_on(addr), Some(true));
        drop(listener);
        assert_eq!(net::listening_on(addr), Some(false));
    }

    /// Nothing already there is replaced, whichever way a name is given.
    #[test]
    fn names_given_never_replace_what_is_there() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::open(tmp.path()).unwrap();
        std::fs::write(tmp.path().join("kept"), b"precious").unwrap();
        dir.create_new("new", 0o644)
            .unwrap()
            .write_all(b"new")
            .unwrap();
        let taken = |e: std::io::Error| e.kind() == std::io::ErrorKind::AlreadyExists;
        assert!(dir.create_new("kept", 0o644).is_err_and(taken));
        assert!(dir.link_to("new", &dir, "kept").is_err_and(taken));
        assert!(dir.rename_to("new", &dir, "kept").is_err_and(taken));
        assert!(dir.make_dir("kept", 0o755).is_err_and(taken));
        assert_eq!(std::fs::read(tmp.path().join("kept")).unwrap(), b"precious");
        dir.rename_to("new", &dir, "moved").unwrap();
        assert_eq!(std::fs::read(tmp.path().join("moved")).unwrap(), b"new");
        assert!(!tmp.path().join("new").exists());
    }

    /// Links are never followed, named pipes never waited on.
    #[test]
    #[cfg(unix)]
    fn links_and_pipes_are_refused_without_waiting() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"x").unwrap();
        testing::symlink(outside.path(), &tmp.path().join("folder"));
        testing::symlink(&outside.path().join("secret"), &tmp.path().join("file"));
        testing::symlink(&outside.path().join("none"), &tmp.path().join("dangling"));
        testing::make_fifo(&tmp.path().join("pipe"));
        let dir = Dir::open(tmp.path()).unwrap();
        assert!(dir.open_below("folder").is_err());
        assert!(dir.open_to_read("file").is_err());
        assert!(dir.open_in("file", Access::ReadWrite, 0o644).is_err());
        assert!(dir.create_new("dangling", 0o644).is_err());
        assert!(!outside.path().join("none").exists());
        assert_eq!(dir.stat_at("file").unwrap().kind, Kind::Link);
        // Opened or refused at once, and never taken for a file.
        let pipe = dir.open_to_read("pipe");
        assert!(pipe.map_or(true, |f| fs::stat_of(&f).unwrap().kind == Kind::Other));
        assert!(dir.open_in("pipe", Access::Append, 0o644).is_err());
    }

    #[test]
    fn files_are_told_apart_and_read_at_offsets() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::open(tmp.path()).unwrap();
        let mut file = dir.open_in("a", Access::ReadWrite, 0o644).unwrap();
        file.write_all(b"hello world").unwrap();
        let mut buf = [0u8; 5];
        assert_eq!(fs::read_at(&file, &mut buf, 6).unwrap(), 5);
        assert_eq!(&buf, b"world");
        // The position is where the write left it: appending goes on after.
        file.write_all(b"!").unwrap();
        assert_eq!(
            std::fs::read(tmp.path().join("a")).unwrap(),
            b"hello world!"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
        dir.make_dir("b", 0o755).unwrap();
        let (a, b) = (dir.stat_at("a").unwrap(), dir.stat_at("b").unwrap());
        assert_eq!((a.kind, a.size, a.links), (Kind::File, 12, 1));
        assert!(a.ours && b.kind == Kind::Dir);
        if FILE_IDENTITY {
            assert!(a.id.is_some() && a.id != b.id);
        }
        assert!(a.same_file(fs::stat_of(&file).unwrap().id));
        assert!(dir.free_space().unwrap() > 0);
        let mut back = String::new();
        dir.open_to_read("a")
            .unwrap()
            .read_to_string(&mut back)
            .unwrap();
        assert_eq!(back, "hello world!");
    }

    /// Unnamed files where the layer has them: nothing shows until named.
    #[test]
    fn unnamed_files_show_only_once_named() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::open(tmp.path()).unwrap();
        let unnamed = dir.unnamed_file().unwrap();
        assert_eq!(
            unnamed.is_some(),
            UNNAMED_PARTIALS,
            "O_TMPFILE in the temporary folder"
        );
        if let Some(mut file) = unnamed {
            file.write_all(b"abc").unwrap();
            assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
            dir.link_unnamed(&file, "named").unwrap();
            assert_eq!(std::fs::read(tmp.path().join("named")).unwrap(), b"abc");
        }
    }
}
