//! Exit codes, and how the outcome of a run turns into one.

/// What the process tells its caller when it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// Every upload succeeded, or the server stopped cleanly.
    Success,
    /// At least one upload failed, or ftx could not run at all.
    Failure,
    /// The command line could not be understood (clap uses the same code).
    Usage,
}

impl ExitCode {
    /// The outcome of a run in which `failed` uploads failed.
    pub fn from_failures(failed: u64) -> ExitCode {
        if failed == 0 {
            ExitCode::Success
        } else {
            ExitCode::Failure
        }
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        match code {
            ExitCode::Success => 0.into(),
            ExitCode::Failure => 1.into(),
            ExitCode::Usage => 2.into(),
        }
    }
}
