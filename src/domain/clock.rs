//! Time is passed in, so a test can stand at any instant; nothing below calls `now()` itself.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub trait Clock: Send + Sync {
    fn now(&self) -> SystemTime;

    /// Milliseconds since the Unix epoch, the unit timestamps are stored in.
    fn now_ms(&self) -> i64 {
        unix_ms(self.now())
    }
}

pub fn unix_ms(t: SystemTime) -> i64 {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A duration in the milliseconds timestamps are stored in, saturating.
pub fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
