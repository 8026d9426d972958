//! Processes on Windows, for the portable layer: what std offers, nothing more; not compiled on the machines ftx is tested on.

use std::process::Command;

/// Windows has no file-size signal.
pub fn ignore_file_size_signal() {}

/// Windows' limit on open handles is not raised by a program: `None`, unknown.
pub fn raise_open_files_limit() -> Option<u64> {
    None
}

/// No process groups here: a program's own children outlive it.
pub fn own_group(_command: &mut Command) {}

/// Without a `Child`, std cannot kill a process: the caller kills what it holds.
pub fn kill(_pid: u32) {}

/// No process groups here.
pub fn kill_group(_pid: u32) {}

/// Whether a process runs cannot be told with std: `None`.
pub fn alive(_pid: u32) -> Option<bool> {
    None
}
