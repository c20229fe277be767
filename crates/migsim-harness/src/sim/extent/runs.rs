//! `RunMap`: a map from disjoint ranges of `u64` (file offsets, page
//! indices) to values, where a later insert replaces whatever it overlaps
//! and splits the pieces at its edges. A value knows how to describe its
//! own tail ([`Piece::skip`]), so splitting never copies data: memory
//! grows with the number of distinct runs, not with their length.

use std::collections::BTreeMap;

/// A value of a [`RunMap`] entry, describing a run from its start.
pub trait Piece: Clone {
    /// The same run seen from `by` units after its start.
    fn skip(&self, by: u64) -> Self;
}

/// Disjoint runs `start..start + len`, each holding a [`Piece`].
#[derive(Clone, Debug, Default)]
pub struct RunMap<V> {
    map: BTreeMap<u64, (u64, V)>,
}

impl<V: Piece> RunMap<V> {
    /// An empty map.
    pub fn new() -> Self {
        Self {
            map: BTreeMap::new(),
        }
    }

    /// Put `v` over `start..start + len`, trimming or splitting what it
    /// overlaps. Empty runs are ignored.
    pub fn insert(&mut self, start: u64, len: u64, v: V) {
        if len == 0 {
            return;
        }
        let end = start.saturating_add(len);
        // A run that begins before `start` and reaches into it.
        if let Some((&s, (l, val))) = self.map.range(..start).next_back()
            && s + *l > start
        {
            let (l, val) = (*l, val.clone());
            self.map.insert(s, (start - s, val.clone()));
            if s + l > end {
                self.map.insert(end, (s + l - end, val.skip(end - s)));
            }
        }
        // Runs that begin inside: dropped, keeping a tail past `end`.
        let inside: Vec<u64> = self.map.range(start..end).map(|(&k, _)| k).collect();
        for k in inside {
            let (l, val) = self.map.remove(&k).expect("key just listed");
            if k + l > end {
                self.map.insert(end, (k + l - end, val.skip(end - k)));
            }
        }
        self.map.insert(start, (end - start, v));
    }

    /// Walk `start..start + len` in order: `f(at, n, piece)` for each part,
    /// `None` where no run lies (a gap), pieces skipped to `at`.
    pub fn for_each_in(&self, start: u64, len: u64, mut f: impl FnMut(u64, u64, Option<V>)) {
        let end = start.saturating_add(len);
        let mut at = start;
        let first = self
            .map
            .range(..=start)
            .next_back()
            .filter(|(s, (l, _))| **s + *l > start)
            .map(|(&s, _)| s)
            .unwrap_or(start);
        for (&s, (l, v)) in self.map.range(first..end) {
            if s > at {
                f(at, s - at, None);
                at = s;
            }
            let stop = (s + l).min(end);
            if stop > at {
                f(at, stop - at, Some(v.skip(at - s)));
                at = stop;
            }
        }
        if at < end {
            f(at, end - at, None);
        }
    }

    /// Every run, in order: `(start, len, value)`.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64, &V)> {
        self.map.iter().map(|(&s, (l, v))| (s, *l, v))
    }

    /// Number of runs.
    pub fn runs(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    //! Inserts split and trim exactly; walks report gaps.

    use super::*;

    /// A run of consecutive numbers starting at the value.
    #[derive(Clone, Debug, PartialEq)]
    struct From(u64);
    impl Piece for From {
        fn skip(&self, by: u64) -> Self {
            From(self.0 + by)
        }
    }

    fn walk(m: &RunMap<From>, s: u64, n: u64) -> Vec<(u64, u64, Option<u64>)> {
        let mut v = Vec::new();
        m.for_each_in(s, n, |a, k, p| v.push((a, k, p.map(|p| p.0))));
        v
    }

    #[test]
    fn an_insert_inside_a_run_splits_it_in_three() {
        let mut m = RunMap::new();
        m.insert(0, 100, From(1000));
        m.insert(10, 5, From(7));
        assert_eq!(
            walk(&m, 0, 120),
            vec![
                (0, 10, Some(1000)),
                (10, 5, Some(7)),
                (15, 85, Some(1015)),
                (100, 20, None)
            ]
        );
        assert_eq!(m.runs(), 3);
    }

    #[test]
    fn an_insert_over_several_runs_replaces_them_and_keeps_the_edges() {
        let mut m = RunMap::new();
        m.insert(0, 10, From(0));
        m.insert(10, 10, From(100));
        m.insert(20, 10, From(200));
        m.insert(5, 20, From(9));
        assert_eq!(
            walk(&m, 0, 30),
            vec![(0, 5, Some(0)), (5, 20, Some(9)), (25, 5, Some(205))]
        );
        assert_eq!(walk(&m, 7, 2), vec![(7, 2, Some(11))]);
        assert_eq!(walk(&m, 40, 2), vec![(40, 2, None)]);
    }
}
