//! The minimum rate for content (`--min-rate`): a client that trickles bytes loses its worker within a bounded time, like Apache's `RequestReadTimeout ... MinRate`.
//!
//! The idle timeout alone cannot do it: one byte every few seconds restarts it
//! for ever. Here time is cut into windows, and each window must bring at
//! least `rate × window` bytes. The check runs whenever bytes arrive; a client
//! that sends nothing at all meets the idle timeout. A classic upload's clock
//! is the time since `go ahead`; a batch's is the time the server spent
//! waiting for it (`server/batch/wire.rs`), so that its own work never counts
//! against the client.

use std::time::{Duration, Instant};

/// One upload's check.
#[derive(Debug)]
pub struct MinRate {
    rate: u64,
    window: Duration,
    /// Where the wall clock starts, for [`MinRate::check`].
    origin: Instant,
    /// When the current window started, on the check's clock.
    window_start: Duration,
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
            origin: Instant::now(),
            window_start: Duration::ZERO,
            bytes_at_start: 0,
        }
    }

    /// The bytes per second it asks for.
    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// `total` bytes have arrived so far: fails if a window ended with too few.
    pub fn check(&mut self, total: u64) -> Result<(), TooSlow> {
        self.check_at(total, self.origin.elapsed())
    }

    /// As [`MinRate::check`], at `now` on a clock of the caller's (starting at zero).
    pub fn check_at(&mut self, total: u64, now: Duration) -> Result<(), TooSlow> {
        let elapsed = now.saturating_sub(self.window_start);
        if elapsed < self.window {
            return Ok(());
        }
        let got = total.saturating_sub(self.bytes_at_start);
        let due = u128::from(self.rate) * self.window.as_millis() / 1000;
        if u128::from(got) < due {
            return Err(TooSlow {
                got,
                window: elapsed,
            });
        }
        self.window_start = now;
        self.bytes_at_start = total;
        Ok(())
    }

    /// How long, at `now` on the caller's clock, until the current window ends.
    pub fn window_left(&self, now: Duration) -> Duration {
        (self.window_start + self.window).saturating_sub(now)
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

    #[test]
    fn on_a_given_clock_only_that_clock_counts() {
        let mut waited = MinRate::new(1000, Duration::from_secs(2));
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(
            waited.check_at(1, Duration::from_secs(1)),
            Ok(()),
            "one second waited of a two-second window"
        );
        assert_eq!(
            waited.window_left(Duration::from_secs(1)),
            Duration::from_secs(1)
        );
        assert_eq!(
            waited.check_at(2500, Duration::from_millis(2100)),
            Ok(()),
            "2500 bytes in 2.1 s is over 2000 per 2 s"
        );
        assert_eq!(
            waited.window_left(Duration::from_millis(2100)),
            Duration::from_secs(2)
        );
        let slow = waited
            .check_at(2600, Duration::from_millis(4200))
            .unwrap_err();
        assert_eq!(slow.got, 100);
        assert_eq!(slow.window, Duration::from_millis(2100));
    }
}
