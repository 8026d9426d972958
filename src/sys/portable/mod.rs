//! The portable layer: std and cross-platform crates, with the few calls std lacks kept thin and named per system; what macOS and Windows run, and what `--features portable` runs on Linux.

pub mod copy;
pub mod fs;
pub mod net;

#[cfg(unix)]
pub use super::unix::{process, term};
#[cfg(windows)]
pub use super::windows::{process, term};

/// What `ftx --version` says: the version, and this layer.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    "\nOS layer: portable (std, by path; hidden partial files)"
);

/// Files being received have no name until they are complete: never here
/// (hidden `.ftx-partial-PID-N` files instead).
pub const UNNAMED_PARTIALS: bool = false;

/// Files are told apart by creation time, where the file system keeps one.
#[cfg(test)]
pub const FILE_IDENTITY: bool = false;
