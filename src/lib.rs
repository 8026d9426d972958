//! ftx: send files over TCP with the classroom protocol, from a bounded-pool server with live bars and a concurrent sender.
//!
//! The binary is a thin shell around this library. Modules are private to the
//! crate; unit tests live beside the code (the server among them runs
//! in-process on port 0), and `tests/` drives the real binary end to end.
//!
//! ```text
//! intake (mio) ──bounded channel──▶ workers ──events──▶ render thread ──▶ bars | plain | JSON
//! (server/intake.rs:               (server/worker.rs,   (progress/mod.rs)  (progress/{bars,plain,json}.rs)
//!  accept, headers)                 server/batch/)
//!        └──────────── Tally returned by Server::run (outcomes belong to the work) ────────────┘
//! ```
//!
//! The sender: `client/` (classic uploads, `client/batch/` between two ftx
//! ends); what is kept on disk: `drop_folder/`. README's Architecture
//! section follows a folder from the sender's plan to its final name.

mod address;
mod check;
mod cli_run;
mod client;
mod commands;
mod config;
mod drop_folder;
mod file_hash;
mod names;
mod outcome;
mod pace;
mod progress;
mod protocol;
mod server;
mod sys;

pub mod cli;
pub mod exit_codes;
pub mod noise;
pub mod term;

pub use cli_run::{run, Failure};
