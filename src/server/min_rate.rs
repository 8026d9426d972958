//! The minimum rate for content (`--min-rate`): a client that trickles bytes loses its worker within a bounded time, like Apache's `RequestReadTimeout ... MinRate`.
//!
//! The idle timeout alone cannot do it: one byte every few seconds restarts it
//! for ever. Here the time since `go ahead` is cut into windows, and each
//! window must bring at least `rate × window` bytes. The check runs whenever
//! bytes arrive; a client that sends nothing at all meets the idle timeout.

use std::time::{Duration, Instant};

/// One upload's check.
#[derive(Debug)]
pub struct MinRate {
    rate: u64,
    window: Duration,
    window_start: Instant,
    bytes_at_start: u64,
}

/// A window brought too few bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct TooSlow {
    pub got: u64,
    pub window: Duration,
}

impl MinRate {
    /// At least `rate` bytes per second, over windows of `window`, starting now.
    pub fn new(rate: u64, window: Duration) -> MinRate {
        MinRate {
            rate,
            window,
            window_start: Instant::now(),
            bytes_at_start: 0,
        }
    }

    /// `total` bytes have arrived so far: fails if a window ended with too few.
    pub fn check(&mut self, total: u64) -> Result<(), TooSlow> {
        let elapsed = self.window_start.elapsed();
        if elapsed < self.window {
            return Ok(());
        }
        let got = total - self.bytes_at_start;
        let due = u128::from(self.rate) * self.window.as_millis() / 1000;
        if u128::from(got) < due {
            return Err(TooSlow {
                got,
                window: elapsed,
            });
        }
        self.window_start = Instant::now();
        self.bytes_at_start = total;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_must_bring_rate_times_window() {
        let mut fast = MinRate::new(1000, Duration::from_millis(50));
        assert_eq!(
            fast.check(10),
            Ok(()),
            "inside the first window anything goes"
        );
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(
            fast.check(60),
            Ok(()),
            "60 bytes in 60 ms is over 50 bytes per 50 ms"
        );
        std::thread::sleep(Duration::from_millis(60));
        let slow = fast.check(61).unwrap_err();
        assert_eq!(slow.got, 1);
        assert!(slow.window >= Duration::from_millis(50));
    }
}
