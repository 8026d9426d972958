//! The Linux layer: the fast paths and strongest guarantees ftx has, on rustix and libc.

pub mod copy;
pub mod fs;
pub mod net;

pub use super::unix::{process, term};

/// What `ftx --version` says: the version, and this layer.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    "\nOS layer: linux (splice, sendfile, O_TMPFILE, openat)"
);

/// Files being received have no name until they are complete (`O_TMPFILE`, where the file system has it).
pub const UNNAMED_PARTIALS: bool = true;

/// Files are told apart by device and inode.
#[cfg(test)]
pub const FILE_IDENTITY: bool = true;
