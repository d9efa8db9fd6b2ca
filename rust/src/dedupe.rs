//! Idempotency memory: which `event_id`s a partition has counted, bounded by
//! an event-time horizon behind the partition's watermark.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use hashbrown::HashMap;

/// Remembers `event_id → ts` of accepted events. An id counts as seen while
/// its ts is `>= watermark - horizon`; older entries are forgotten (logically
/// at once, physically on [`Dedupe::evict`]).
#[derive(Debug, Default)]
pub struct Dedupe {
    seen: HashMap<Arc<str>, i64>,
    by_ts: BinaryHeap<Reverse<(i64, Arc<str>)>>,
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
        self.by_ts.push(Reverse((ts, key)));
    }

    /// Frees the entries below `floor`.
    pub fn evict(&mut self, floor: i64) {
        while let Some(Reverse((ts, _))) = self.by_ts.peek() {
            if *ts >= floor {
                break;
            }
            if let Some(Reverse((ts, id))) = self.by_ts.pop() {
                if self.seen.get(&id).is_some_and(|t| *t == ts) {
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

    #[test]
    fn remembers_within_horizon_and_frees_memory() {
        let mut d = Dedupe::default();
        d.insert("a", 100);
        d.insert("b", 200);
        assert!(d.contains("a", 50));
        assert!(!d.contains("a", 101), "logically forgotten below the floor");
        d.evict(150);
        assert_eq!(d.len(), 1);
        assert!(d.contains("b", 150));
        // A forgotten id seen again is remembered again.
        d.insert("a", 100);
        d.evict(150);
        assert!(d.is_empty() || !d.contains("a", 150));
    }
}
