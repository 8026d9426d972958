//! What an upload came to, as the work found it: saved, delivered or failed; the tally of a run. Never decided by what is drawn.

use std::time::Duration;

/// How an upload ended well.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kept {
    /// The server has it under its final name: said by an ftx server's receipt
    /// (send), or done by this server (serve). `saved_as` is set when the name
    /// differs from the one sent.
    Saved { saved_as: Option<String> },
    /// Every byte was sent and taken, and the server closed cleanly without a
    /// receipt: a classroom server, which says nothing more. `said` is whatever
    /// else it sent (escaped), if anything.
    Delivered { said: Option<String> },
}

impl Kept {
    /// True when the other end confirmed the file is saved.
    pub fn confirmed(&self) -> bool {
        matches!(self, Kept::Saved { .. })
    }
}

/// A finished upload: how it was kept, its size, how long its content took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    pub kept: Kept,
    pub bytes: u64,
    /// From `go ahead` to the outcome: time spent queued is not in it.
    pub elapsed: Duration,
    /// The BLAKE3 of the content (hex), when both ends computed it and they agree.
    pub verified: Option<String>,
    /// Bytes the server already held from an earlier, interrupted batch (PROTOCOL.md B8).
    pub resumed_from: u64,
}

/// The counts of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub saved: u64,
    pub delivered: u64,
    pub failed: u64,
    /// Content bytes of the uploads that were saved or delivered.
    pub bytes: u64,
}

impl Tally {
    /// Counts one upload's outcome.
    pub fn count<E>(&mut self, result: &Result<Done, E>) {
        match result {
            Ok(done) => {
                match done.kept {
                    Kept::Saved { .. } => self.saved += 1,
                    Kept::Delivered { .. } => self.delivered += 1,
                }
                self.bytes += done.bytes;
            }
            Err(_) => self.failed += 1,
        }
    }

    /// The tally of a run's reports.
    pub fn of(reports: &[FileReport]) -> Tally {
        let mut tally = Tally::default();
        for report in reports {
            tally.count(&report.result);
        }
        tally
    }

    /// Adds another tally (from another worker).
    pub fn add(&mut self, other: Tally) {
        self.saved += other.saved;
        self.delivered += other.delivered;
        self.failed += other.failed;
        self.bytes += other.bytes;
    }

    /// Uploads that ended well.
    pub fn done(&self) -> u64 {
        self.saved + self.delivered
    }
}

/// One file of `ftx send`, in the order given, for the final table and the exit code.
#[derive(Debug, Clone)]
pub struct FileReport {
    /// The name sent, escaped for the terminal.
    pub name: String,
    /// Set when the name sent differs from the file's own (another file of the run has that name).
    pub renamed_from: Option<String>,
    pub result: Result<Done, String>,
    /// The folder given that holds it (its top folder as sent, escaped), if any.
    pub folder: Option<String>,
    /// Whether its time says how fast it went: not for a small file of a
    /// batch, whose time is mostly its wait behind the files before it.
    pub timed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_counts_each_outcome_and_only_kept_bytes() {
        let mut tally = Tally::default();
        let done = |kept| Done {
            kept,
            bytes: 10,
            elapsed: Duration::from_secs(1),
            verified: None,
            resumed_from: 0,
        };
        tally.count::<String>(&Ok(done(Kept::Saved { saved_as: None })));
        tally.count::<String>(&Ok(done(Kept::Delivered { said: None })));
        tally.count::<String>(&Err("reset".into()));
        assert_eq!(
            tally,
            Tally {
                saved: 1,
                delivered: 1,
                failed: 1,
                bytes: 20
            }
        );
        assert_eq!(tally.done(), 2);
    }
}
