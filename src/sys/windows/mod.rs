//! What the portable layer needs on Windows that std does not offer: the console mode, and no process groups.

pub mod process;
pub mod term;
