//! Pagination by modification time over data that keeps changing.
//!
//! Updates move a record to the end of an append-only log ordered by modification time; a
//! Fenwick tree counts the live entries, so `modified_after` + `orderby=modified` pages are
//! O(log n) at a million orders. Hand-written: a growable Fenwick tree with k-th search is ~40
//! lines and no maintained crate offers the push + find-kth pair.

/// Live-count Fenwick tree that can grow.
#[derive(Debug, Default, Clone)]
struct Fenwick {
    tree: Vec<i64>, // 1-based; tree[0] unused
}

impl Fenwick {
    fn len(&self) -> usize {
        self.tree.len().saturating_sub(1)
    }
    fn prefix(&self, mut i: usize) -> i64 {
        let mut s = 0;
        while i > 0 {
            s += self.tree[i];
            i &= i - 1;
        }
        s
    }
    fn add(&mut self, pos0: usize, v: i64) {
        let mut i = pos0 + 1;
        while i < self.tree.len() {
            self.tree[i] += v;
            i += i & i.wrapping_neg();
        }
    }
    fn push(&mut self, v: i64) {
        if self.tree.is_empty() {
            self.tree.push(0);
        }
        let i = self.tree.len();
        let low = i & i.wrapping_neg();
        let node = v + self.prefix(i - 1) - self.prefix(i - low);
        self.tree.push(node);
    }
    /// 0-based position of the k-th (1-based) live entry.
    fn find_kth(&self, mut k: i64) -> Option<usize> {
        let n = self.len();
        let mut pos = 0;
        let mut step = n.next_power_of_two();
        while step > 0 {
            let next = pos + step;
            if next <= n && self.tree[next] < k {
                pos = next;
                k -= self.tree[next];
            }
            step >>= 1;
        }
        (pos < n).then_some(pos)
    }
}

/// Records ordered by modification time, tolerant of updates.
#[derive(Debug, Default, Clone)]
pub struct ModIndex {
    log: Vec<(i64, u32)>,
    pos: Vec<u32>,
    live: Fenwick,
}

impl ModIndex {
    /// Builds the index from (modified, id) pairs; ids are 1..=n.
    pub fn new(mut entries: Vec<(i64, u32)>) -> Self {
        entries.sort_unstable();
        let mut idx = ModIndex { pos: vec![0; entries.len()], ..Default::default() };
        for e in entries {
            idx.append(e.0, e.1);
        }
        idx
    }

    fn append(&mut self, modified: i64, id: u32) {
        let slot = id as usize - 1;
        if slot >= self.pos.len() {
            self.pos.resize(slot + 1, u32::MAX);
        }
        self.pos[slot] = self.log.len() as u32;
        self.log.push((modified, id));
        self.live.push(1);
    }

    /// Records that `id` (new or existing) was modified at `modified`, which must not be earlier
    /// than any time already in the index.
    pub fn touch(&mut self, id: u32, modified: i64) {
        if let Some(&p) = self.pos.get(id as usize - 1).filter(|p| **p != u32::MAX) {
            self.live.add(p as usize, -1);
        }
        self.append(modified, id);
    }

    /// Latest modification time in the index.
    pub fn max_time(&self) -> i64 {
        self.log.last().map(|e| e.0).unwrap_or(i64::MIN)
    }

    /// Ids modified strictly after `after` and strictly before `before`, in modification order
    /// (descending when `desc`), skipping `offset` and taking `limit`; plus the total count.
    pub fn page(&self, after: Option<i64>, before: Option<i64>, desc: bool, offset: usize, limit: usize) -> (usize, Vec<u32>) {
        let lo = after.map(|a| self.log.partition_point(|e| e.0 <= a)).unwrap_or(0);
        let hi = before.map(|b| self.log.partition_point(|e| e.0 < b)).unwrap_or(self.log.len());
        if lo >= hi {
            return (0, Vec::new());
        }
        let (base, top) = (self.live.prefix(lo), self.live.prefix(hi));
        let total = (top - base) as usize;
        let ids = (offset..total.min(offset + limit))
            .filter_map(|k| {
                let rank = if desc { top - k as i64 } else { base + k as i64 + 1 };
                self.live.find_kth(rank).map(|p| self.log[p].1)
            })
            .collect();
        (total, ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_updates() {
        let mut idx = ModIndex::new(vec![(10, 1), (30, 2), (20, 3), (40, 4)]);
        assert_eq!(idx.page(None, None, false, 0, 10), (4, vec![1, 3, 2, 4]));
        idx.touch(3, 50);
        idx.touch(5, 50);
        assert_eq!(idx.page(None, None, false, 0, 10), (5, vec![1, 2, 4, 3, 5]));
        assert_eq!(idx.page(Some(30), None, false, 0, 10), (3, vec![4, 3, 5]));
        assert_eq!(idx.page(Some(30), None, true, 1, 1), (3, vec![3]));
        assert_eq!(idx.page(Some(10), Some(50), false, 0, 10), (2, vec![2, 4]));
        assert_eq!(idx.page(Some(99), None, false, 0, 10), (0, vec![]));
    }

    #[test]
    fn matches_a_naive_model_under_random_updates() {
        use rand::{Rng, SeedableRng};
        let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let n = 300u32;
        let mut model: Vec<i64> = (0..n).map(|_| r.random_range(0..1000)).collect();
        let mut idx = ModIndex::new(model.iter().enumerate().map(|(i, m)| (*m, i as u32 + 1)).collect());
        let mut clock = 1000;
        for _ in 0..500 {
            clock += r.random_range(0..3);
            let id = r.random_range(1..=n);
            model[id as usize - 1] = clock;
            idx.touch(id, clock);
            let after = r.random_range(0..clock);
            let mut want: Vec<(i64, u32)> = model.iter().enumerate().filter(|(_, m)| **m > after).map(|(i, m)| (*m, i as u32 + 1)).collect();
            want.sort();
            let (total, ids) = idx.page(Some(after), None, false, 0, usize::MAX / 2);
            assert_eq!(total, want.len());
            // Same multiset of ids, ordered by time (ties by update order).
            let mut got_sorted = ids.clone();
            got_sorted.sort();
            let mut want_ids: Vec<u32> = want.iter().map(|w| w.1).collect();
            want_ids.sort();
            assert_eq!(got_sorted, want_ids);
            assert!(ids.windows(2).all(|w| model[w[0] as usize - 1] <= model[w[1] as usize - 1]));
        }
    }
}
