//! Holding a transfer to a set rate (`--rate`), so that a class can watch it happen.

use std::thread;
use std::time::{Duration, Instant};

/// Most bytes moved between two checks of the pace: a tenth of a second's worth, within bounds.
const MIN_CHUNK: u64 = 1024;
const MAX_CHUNK: u64 = 8 * 1024 * 1024;

/// A transfer's budget: `rate` bytes per second since it started.
#[derive(Debug, Clone)]
pub struct Pace {
    rate: u64,
    start: Instant,
    moved: u64,
}

impl Pace {
    /// A pace of `rate` bytes per second (at least 1), starting now.
    pub fn new(rate: u64) -> Pace {
        Pace {
            rate: rate.max(1),
            start: Instant::now(),
            moved: 0,
        }
    }

    /// How many bytes to move next, at most.
    pub fn chunk(&self) -> usize {
        usize::try_from((self.rate / 10).clamp(MIN_CHUNK, MAX_CHUNK)).unwrap_or(usize::MAX)
    }

    /// Counts `n` bytes moved, then sleeps until they are due at this rate.
    pub fn moved(&mut self, n: u64) {
        self.moved += n;
        let nanos = u128::from(self.moved) * 1_000_000_000 / u128::from(self.rate);
        let due = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
        if let Some(wait) = due.checked_sub(self.start.elapsed()) {
            thread::sleep(wait);
        }
    }
}

/// The chunk size for an optional pace: `unpaced` without one.
pub fn chunk(pace: Option<&Pace>, unpaced: usize) -> usize {
    pace.map_or(unpaced, |p| p.chunk().min(unpaced))
}

/// The next chunk of a transfer with `left` bytes to go.
pub fn next_chunk(pace: Option<&Pace>, unpaced: usize, left: u64) -> usize {
    let most = chunk(pace, unpaced);
    usize::try_from(left).map_or(most, |left| left.min(most))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_a_tenth_of_a_second_within_bounds() {
        assert_eq!(Pace::new(200 * 1024).chunk(), 20 * 1024);
        assert_eq!(Pace::new(10).chunk(), 1024);
        assert_eq!(Pace::new(u64::MAX).chunk(), 8 * 1024 * 1024);
        assert_eq!(chunk(None, 4096), 4096);
        assert_eq!(chunk(Some(&Pace::new(10_000)), 4096), 1024);
        assert_eq!(next_chunk(None, 4096, 10), 10);
        assert_eq!(next_chunk(Some(&Pace::new(10_000)), 4096, u64::MAX), 1024);
    }

    #[test]
    fn moving_ahead_of_the_rate_waits() {
        let mut pace = Pace::new(100_000);
        let start = Instant::now();
        pace.moved(20_000);
        assert!(
            start.elapsed() >= Duration::from_millis(190),
            "{:?}",
            start.elapsed()
        );
    }
}
