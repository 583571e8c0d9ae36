//! What is the same for every user of a domain (its password policy, a PSO by DN), kept for a
//! few seconds so that a flow's steps do not each read it again. Invalidated by time only: a
//! policy changed in AD shows once its entry has aged out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Where a cache reads the time: the monotonic clock, or one a test moves.
pub type Now = Arc<dyn Fn() -> Instant + Send + Sync>;

pub fn monotonic() -> Now {
    Arc::new(Instant::now)
}

/// Values by key, each used for `ttl` after it was read.
pub struct TtlCache<V> {
    ttl: Duration,
    now: Now,
    entries: Mutex<HashMap<String, (Instant, V)>>,
}

impl<V: Clone> TtlCache<V> {
    pub fn new(ttl: Duration, now: Now) -> Self {
        Self {
            ttl,
            now,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The value read for `key` less than `ttl` ago.
    pub fn get(&self, key: &str) -> Option<V> {
        let now = (self.now)();
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(key)
            .filter(|(read, _)| now.duration_since(*read) < self.ttl)
            .map(|(_, value)| value.clone())
    }

    /// Keeps `value` for `key` from now, and drops what has aged out (a domain has few
    /// policies, so this stays small).
    pub fn put(&self, key: String, value: V) {
        let now = (self.now)();
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.retain(|_, (read, _)| now.duration_since(*read) < self.ttl);
        entries.insert(key, (now, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A clock that stands still until the test moves it.
    fn clock() -> (Now, Arc<Mutex<Instant>>) {
        let at = Arc::new(Mutex::new(Instant::now()));
        let read = at.clone();
        (Arc::new(move || *read.lock().unwrap()), at)
    }

    fn advance(at: &Mutex<Instant>, by: Duration) {
        *at.lock().unwrap() += by;
    }

    #[test]
    fn a_value_is_used_until_it_has_aged_out() {
        let (now, at) = clock();
        let cache = TtlCache::new(Duration::from_secs(5), now);
        cache.put("domain".into(), 7);
        assert_eq!(cache.get("domain"), Some(7));
        advance(&at, Duration::from_millis(4999));
        assert_eq!(cache.get("domain"), Some(7));
        advance(&at, Duration::from_millis(1));
        assert_eq!(cache.get("domain"), None, "read again after five seconds");
        cache.put("domain".into(), 8);
        assert_eq!(cache.get("domain"), Some(8));
    }

    #[test]
    fn each_key_ages_on_its_own() {
        let (now, at) = clock();
        let cache = TtlCache::new(Duration::from_secs(5), now);
        cache.put("cn=pso a".into(), 1);
        advance(&at, Duration::from_secs(3));
        cache.put("cn=pso b".into(), 2);
        assert_eq!(cache.get("cn=pso c"), None);
        advance(&at, Duration::from_secs(3));
        assert_eq!(cache.get("cn=pso a"), None);
        assert_eq!(cache.get("cn=pso b"), Some(2));
        // Writing drops what has aged out.
        cache.put("cn=pso c".into(), 3);
        assert_eq!(cache.entries.lock().unwrap().len(), 2);
    }

    #[test]
    fn a_zero_ttl_keeps_nothing() {
        let (now, _) = clock();
        let cache = TtlCache::new(Duration::ZERO, now);
        cache.put("domain".into(), 1);
        assert_eq!(cache.get("domain"), None);
    }
}
