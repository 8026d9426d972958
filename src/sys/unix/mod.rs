//! What both layers do the same way on every Unix (Linux, macOS): termios, signals, rlimits, process groups, interface indices.

pub mod interfaces;
pub mod process;
pub mod term;
