//! Exit codes, and how the outcome of a run turns into one.

/// What the process tells its caller when it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Every upload succeeded, or the server stopped cleanly.
    Success,
    /// At least one upload failed, or ftx could not run at all.
    Failure,
    /// The command line could not be understood (clap uses the same code).
    Usage,
    /// Stopped at once by a second Ctrl-C (128 + SIGINT, as shells report it).
    Interrupted,
}

impl Exit {
    /// The outcome of a run in which `failed` uploads failed.
    pub fn from_failures(failed: u64) -> Exit {
        if failed == 0 {
            Exit::Success
        } else {
            Exit::Failure
        }
    }

    /// The number the process exits with.
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Usage => 2,
            Exit::Interrupted => 130,
        }
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> Self {
        exit.code().into()
    }
}
