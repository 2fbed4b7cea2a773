//! How fast bytes arrive lately: the rate of the last whole second, for telling whether a rate
//! limit is what bounds a transfer (`downloads` says so). Plain value, time passed in.

use std::time::{Duration, Instant};

/// The window a rate is measured over.
const WINDOW: Duration = Duration::from_secs(1);

/// Bytes counted per window of [`WINDOW`]; the rate is that of the last full window, and 0 once
/// a whole window passed with nothing.
#[derive(Debug, Clone)]
pub struct RateMeter {
    window_start: Instant,
    in_window: u64,
    /// Bytes a second over the last full window.
    last: f64,
}

impl RateMeter {
    pub fn new(now: Instant) -> RateMeter {
        RateMeter {
            window_start: now,
            in_window: 0,
            last: 0.0,
        }
    }

    /// `n` bytes arrived at `now`.
    pub fn add(&mut self, n: u64, now: Instant) {
        self.roll(now);
        self.in_window += n;
    }

    /// Bytes a second lately (the last full window, or the window that just ended).
    pub fn rate(&self, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed < WINDOW {
            self.last
        } else if elapsed < 2 * WINDOW {
            // Anything added after the window ended would have rolled it: what it holds
            // arrived within its one window.
            self.in_window as f64 / WINDOW.as_secs_f64()
        } else {
            0.0
        }
    }

    fn roll(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed < WINDOW {
            return;
        }
        // A window that ended more than one window ago saw nothing since: the rate is 0.
        self.last = if elapsed < 2 * WINDOW {
            self.in_window as f64 / elapsed.as_secs_f64()
        } else {
            0.0
        };
        self.window_start = now;
        self.in_window = 0;
    }
}

/// Which download limit bounds a transfer, if one does: a rate within this share of the limit
/// counts as held at it (a token bucket lets the long-run rate reach the limit, not pass it).
pub const AT_LIMIT: f64 = 0.85;

/// Whether `rate` (bytes a second) is held at `limit`.
pub fn at_limit(rate: f64, limit: Option<u64>) -> bool {
    limit.is_some_and(|l| l > 0 && rate >= AT_LIMIT * l as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_is_the_last_full_second_and_falls_to_zero_when_idle() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut m = RateMeter::new(t0);
        m.add(500_000, ms(100));
        assert_eq!(m.rate(ms(900)), 0.0, "no full window yet");
        m.add(500_000, ms(950));
        let r = m.rate(ms(1000));
        assert!((r - 1_000_000.0).abs() < 1.0, "{r}");
        assert_eq!(m.rate(ms(1500)), r, "until the next window ends");
        assert_eq!(m.rate(ms(2100)), 0.0, "a second with nothing");
        m.add(10, ms(2200));
        assert_eq!(m.rate(ms(5000)), 0.0, "long idle");
    }

    #[test]
    fn at_limit_means_close_to_it() {
        assert!(at_limit(19_000_000.0, Some(20_000_000)));
        assert!(!at_limit(10_000_000.0, Some(20_000_000)));
        assert!(!at_limit(1e12, None));
        assert!(!at_limit(1.0, Some(0)));
    }
}
