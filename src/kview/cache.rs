//! Two small lock-free caches for the translator: a direct-mapped `u64 -> u64` [`Cache`] (the
//! 4 KiB page cache and the region cache) and a [`TableCache`] of whole last-level tables. Both
//! are arrays of seqlock-protected slots: `Send + Sync`, no locks, no allocation after
//! construction.

use std::sync::atomic::{fence, AtomicU64, Ordering};

/// A direct-mapped cache of `u64 -> u64`, each slot behind its own sequence counter: readers
/// never block and never see a torn entry; a writer that finds its slot busy skips caching.
pub(super) struct Cache {
    slots: Box<[Slot]>,
}

struct Slot {
    seq: AtomicU64,
    key: AtomicU64,
    val: AtomicU64,
}

impl Cache {
    pub fn new(n: usize) -> Cache {
        debug_assert!(n.is_power_of_two());
        Cache {
            slots: (0..n)
                .map(|_| Slot { seq: AtomicU64::new(0), key: AtomicU64::new(u64::MAX), val: AtomicU64::new(0) })
                .collect(),
        }
    }
    fn slot(&self, key: u64) -> &Slot {
        // Fibonacci hashing spreads strided keys (page tables, per-CPU areas) over the slots.
        let h = key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - self.slots.len().trailing_zeros());
        &self.slots[h as usize]
    }
    pub fn get(&self, key: u64) -> Option<u64> {
        let s = self.slot(key);
        let s1 = s.seq.load(Ordering::Acquire);
        if s1 & 1 == 1 {
            return None;
        }
        let k = s.key.load(Ordering::Relaxed);
        let v = s.val.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        let s2 = s.seq.load(Ordering::Relaxed);
        (s1 == s2 && k == key).then_some(v)
    }
    pub fn put(&self, key: u64, val: u64) {
        let s = self.slot(key);
        let s0 = s.seq.load(Ordering::Relaxed);
        if s0 & 1 == 1 || s.seq.compare_exchange(s0, s0 + 1, Ordering::Relaxed, Ordering::Relaxed).is_err() {
            return;
        }
        fence(Ordering::Release);
        s.key.store(key, Ordering::Relaxed);
        s.val.store(val, Ordering::Relaxed);
        s.seq.store(s0 + 2, Ordering::Release);
    }
}

/// Whole last-level tables (4 KiB or smaller), so that pages under one table cost one read of the
/// table between them, not one per page (what makes random access over a 4 KiB-mapped linear map,
/// and reads through a compressed dump, cheap). Same seqlock scheme as [`Cache`].
pub(super) struct TableCache {
    slots: Box<[TableSlot]>,
    entries: usize,
}

struct TableSlot {
    seq: AtomicU64,
    key: AtomicU64,
    entries: Box<[AtomicU64]>,
}

impl TableCache {
    pub fn new(n: usize, entries: usize) -> TableCache {
        TableCache {
            slots: (0..n)
                .map(|_| TableSlot {
                    seq: AtomicU64::new(0),
                    key: AtomicU64::new(u64::MAX),
                    entries: (0..entries).map(|_| AtomicU64::new(0)).collect(),
                })
                .collect(),
            entries,
        }
    }
    fn slot(&self, table: u64) -> &TableSlot {
        let h = (table >> 12).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - self.slots.len().trailing_zeros());
        &self.slots[h as usize]
    }
    pub fn entry(&self, table: u64, index: u64) -> Option<u64> {
        let s = self.slot(table);
        let s1 = s.seq.load(Ordering::Acquire);
        if s1 & 1 == 1 || s.key.load(Ordering::Relaxed) != table {
            return None;
        }
        let v = s.entries.get(index as usize)?.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        (s.seq.load(Ordering::Relaxed) == s1).then_some(v)
    }
    pub fn put(&self, table: u64, entries: &[u64]) {
        if entries.len() != self.entries {
            return;
        }
        let s = self.slot(table);
        let s0 = s.seq.load(Ordering::Relaxed);
        if s0 & 1 == 1 || s.seq.compare_exchange(s0, s0 + 1, Ordering::Relaxed, Ordering::Relaxed).is_err() {
            return;
        }
        fence(Ordering::Release);
        s.key.store(table, Ordering::Relaxed);
        for (d, &e) in s.entries.iter().zip(entries) {
            d.store(e, Ordering::Relaxed);
        }
        s.seq.store(s0 + 2, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_hits_misses_and_collisions() {
        let c = Cache::new(4);
        assert_eq!(c.get(7), None);
        c.put(7, 70);
        assert_eq!(c.get(7), Some(70));
        for k in 100..200 {
            c.put(k, k * 10);
        }
        // Whatever survived the collisions must still be right.
        for k in 100..200 {
            if let Some(v) = c.get(k) {
                assert_eq!(v, k * 10);
            }
        }
        assert_eq!(c.get(u64::MAX - 1), None);
    }

    #[test]
    fn cache_is_consistent_under_concurrent_writers() {
        let c = std::sync::Arc::new(Cache::new(8));
        let hs: Vec<_> = (0..4)
            .map(|t| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for i in 0..20_000u64 {
                        let k = (i * 7 + t) % 64;
                        c.put(k, k ^ 0xdead_beef);
                        if let Some(v) = c.get((i + t) % 64) {
                            assert_eq!(v, ((i + t) % 64) ^ 0xdead_beef);
                        }
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
    }
}
