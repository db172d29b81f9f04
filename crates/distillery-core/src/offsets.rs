//! In-order offset commits under out-of-order completion: inputs of one partition are processed
//! concurrently, but the committed position only moves past an offset once it and every offset before it
//! are done (everything they produced acknowledged). A crash therefore replays, never skips.

use std::collections::BTreeMap;

/// Completion tracking for one partition.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    /// offset -> done
    pending: BTreeMap<i64, bool>,
    /// The next offset to consume after a restart (what to commit).
    committed: Option<i64>,
}

impl OffsetTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers an offset as in flight. Offsets must begin in increasing order.
    pub fn begin(&mut self, offset: i64) {
        self.pending.insert(offset, false);
    }

    /// Marks an offset done; returns the new commit position if it advanced.
    pub fn complete(&mut self, offset: i64) -> Option<i64> {
        if let Some(done) = self.pending.get_mut(&offset) {
            *done = true;
        } else {
            return None;
        }
        let mut advanced = None;
        while let Some((&first, &done)) = self.pending.first_key_value() {
            if !done {
                break;
            }
            self.pending.pop_first();
            advanced = Some(first + 1);
        }
        if let Some(next) = advanced {
            self.committed = Some(next);
        }
        advanced
    }

    /// The position to commit: the next offset to read.
    pub fn committed(&self) -> Option<i64> {
        self.committed
    }

    /// How many offsets are begun but not committed.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_only_contiguous_completions() {
        let mut t = OffsetTracker::new();
        for o in 10..15 {
            t.begin(o);
        }
        assert_eq!(t.complete(12), None);
        assert_eq!(t.complete(11), None);
        assert_eq!(t.committed(), None);
        assert_eq!(t.complete(10), Some(13));
        assert_eq!(t.committed(), Some(13));
        assert_eq!(t.in_flight(), 2);
        assert_eq!(t.complete(14), None);
        assert_eq!(t.complete(13), Some(15));
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn unknown_or_repeated_completions_are_ignored() {
        let mut t = OffsetTracker::new();
        t.begin(0);
        assert_eq!(t.complete(7), None);
        assert_eq!(t.complete(0), Some(1));
        assert_eq!(t.complete(0), None);
        assert_eq!(t.committed(), Some(1));
    }

    #[test]
    fn random_completion_orders_commit_everything_exactly_once() {
        // A tiny deterministic shuffle: every permutation-like order must end committed at the end.
        for seed in 1..50u64 {
            let mut t = OffsetTracker::new();
            let n = 20;
            for o in 0..n {
                t.begin(o);
            }
            let mut order: Vec<i64> = (0..n).collect();
            let mut x = seed;
            for i in (1..order.len()).rev() {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                order.swap(i, (x >> 33) as usize % (i + 1));
            }
            let mut last = 0;
            for o in order {
                if let Some(c) = t.complete(o) {
                    assert!(c > last, "commit position went backwards");
                    last = c;
                }
            }
            assert_eq!(t.committed(), Some(n));
        }
    }
}
