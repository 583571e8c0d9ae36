//! Time is passed in, so a test can stand at any instant; nothing below calls `now()` itself.

use std::ops::{Add, Sub};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// An instant, to the millisecond, as the flows compare and store it. Arithmetic saturates: a
/// lifetime of "forever" ends at the last representable instant instead of wrapping.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// Before anything: "at or after `MIN`" is "ever".
    pub const MIN: Timestamp = Timestamp(i64::MIN);

    /// Milliseconds since the Unix epoch, the unit of the store's columns and the wire.
    pub const fn from_millis(ms: i64) -> Self {
        Timestamp(ms)
    }

    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// An instant before 1970 counts as the epoch.
    pub fn from_system_time(t: SystemTime) -> Self {
        let since = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        Timestamp(i64::try_from(since.as_millis()).unwrap_or(i64::MAX))
    }

    /// For the crates that want one (TOTP, mail dates); an instant before 1970 is the epoch.
    pub fn to_system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(u64::try_from(self.0).unwrap_or(0))
    }

    /// Whole seconds since the Unix epoch, zero before it.
    pub fn as_unix_secs(self) -> u64 {
        u64::try_from(self.0 / 1000).unwrap_or(0)
    }

    /// How long after `earlier` this is; zero when it is not after it.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;

    fn add(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(millis(d)))
    }
}

impl Sub<Duration> for Timestamp {
    type Output = Timestamp;

    fn sub(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_sub(millis(d)))
    }
}

pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_system_time(SystemTime::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_and_elapsed_is_never_negative() {
        let t = Timestamp::from_millis(10_000);
        assert_eq!((t + Duration::from_secs(2)).as_millis(), 12_000);
        assert_eq!((t - Duration::from_secs(2)).as_millis(), 8_000);
        assert_eq!((t + Duration::MAX).as_millis(), i64::MAX);
        assert_eq!(Timestamp::MIN - Duration::from_secs(1), Timestamp::MIN);
        assert_eq!(
            t.since(Timestamp::from_millis(7_500)),
            Duration::from_millis(2_500)
        );
        assert_eq!(Timestamp::from_millis(7_500).since(t), Duration::ZERO);
    }

    #[test]
    fn system_times_convert_both_ways() {
        let at = UNIX_EPOCH + Duration::from_millis(1_793_491_200_123);
        let t = Timestamp::from_system_time(at);
        assert_eq!(t.as_millis(), 1_793_491_200_123);
        assert_eq!(t.to_system_time(), at);
        assert_eq!(t.as_unix_secs(), 1_793_491_200);
        assert_eq!(
            Timestamp::from_system_time(UNIX_EPOCH - Duration::from_secs(1)),
            Timestamp::from_millis(0)
        );
    }
}
