//! Idempotency memory: which `event_id`s a partition has counted, bounded by
//! an event-time horizon behind the partition's watermark.

use std::collections::BTreeMap;
use std::sync::Arc;

use hashbrown::HashMap;

/// Event time spanned by one eviction bucket.
const BUCKET_MS: i64 = 60_000;

/// Remembers `event_id → ts` of accepted events. An id counts as seen while
/// its ts is `>= watermark - horizon`; older entries are forgotten (logically
/// at once, physically on [`Dedupe::evict`], once their minute of event time
/// is wholly below the floor).
#[derive(Debug, Default)]
pub struct Dedupe {
    seen: HashMap<Arc<str>, i64>,
    /// The ids inserted per minute of their event time, for eviction: an
    /// append per insert and a walk per freed minute (a binary heap ordered by
    /// ts cost a sift per event: 12 % of the core's time, perf).
    by_minute: BTreeMap<i64, Vec<Arc<str>>>,
}

impl Dedupe {
    /// Whether `id` was counted and is still inside the horizon (`floor` =
    /// watermark − horizon).
    pub fn contains(&self, id: &str, floor: i64) -> bool {
        self.seen.get(id).is_some_and(|ts| *ts >= floor)
    }

    pub fn insert(&mut self, id: &str, ts: i64) {
        let key: Arc<str> = id.into();
        self.seen.insert(key.clone(), ts);
        self.by_minute
            .entry(ts.div_euclid(BUCKET_MS))
            .or_default()
            .push(key);
    }

    /// Frees the entries of every minute wholly below `floor`.
    pub fn evict(&mut self, floor: i64) {
        while let Some(entry) = self.by_minute.first_entry() {
            if (*entry.key() + 1).saturating_mul(BUCKET_MS) > floor {
                break;
            }
            for id in entry.remove() {
                // Unless it was counted again since, with a newer time.
                if self.seen.get(&id).is_some_and(|t| *t < floor) {
                    self.seen.remove(&id);
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = BUCKET_MS;

    #[test]
    fn remembers_within_horizon_and_frees_memory() {
        let mut d = Dedupe::default();
        d.insert("a", 10 * MIN);
        d.insert("b", 20 * MIN);
        assert!(d.contains("a", 5 * MIN));
        assert!(
            !d.contains("a", 10 * MIN + 1),
            "logically forgotten below the floor"
        );
        d.evict(15 * MIN);
        assert_eq!(d.len(), 1);
        assert!(d.contains("b", 15 * MIN));
        // A forgotten id seen again is remembered again.
        d.insert("a", 10 * MIN);
        d.evict(15 * MIN);
        assert!(d.is_empty() || !d.contains("a", 15 * MIN));
    }

    #[test]
    fn a_minute_is_freed_once_wholly_below_the_floor() {
        let mut d = Dedupe::default();
        d.insert("a", 10 * MIN + 5);
        d.insert("b", 10 * MIN + 50);
        d.evict(10 * MIN + 10);
        assert_eq!(d.len(), 2, "the minute still has an id inside the horizon");
        assert!(!d.contains("a", 10 * MIN + 10) && d.contains("b", 10 * MIN + 10));
        d.evict(11 * MIN);
        assert!(d.is_empty());
    }

    #[test]
    fn an_id_counted_again_later_survives_its_old_minute() {
        let mut d = Dedupe::default();
        d.insert("a", MIN);
        d.insert("a", 30 * MIN);
        d.evict(20 * MIN);
        assert!(d.contains("a", 20 * MIN));
        assert_eq!(d.len(), 1);
        d.evict(-5 * MIN); // a floor before everything frees nothing
        assert_eq!(d.len(), 1);
    }
}
