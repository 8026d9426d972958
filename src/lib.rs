//! ftx: send files over TCP with the classroom protocol, from a bounded-pool server with live bars and a concurrent sender.
//!
//! The binary is a thin shell around this library, so tests run the server
//! and the client in-process on port 0 as well as end to end.

pub mod cli;
pub mod client;
pub mod config;
pub mod drop_folder;
pub mod exit_codes;
pub mod names;
pub mod pace;
pub mod progress;
pub mod protocol;
pub mod server;
