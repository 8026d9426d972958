//! What both layers do the same way on every Unix (Linux, macOS): termios, signals, rlimits, process groups.

pub mod process;
pub mod term;
