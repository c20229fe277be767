//! `DirtySet`: a block's dirty pages, as the extent mode keeps them.
//!
//! At the start of a migration every page is dirty (the bulk stage), which
//! is one flag, not a bit per page; afterwards the set holds exactly the
//! pages the guest wrote since the last sync, so it stays as small as the
//! workload's writes. [`DirtySet::runs`] gives the pages as runs of
//! consecutive indices, ascending, for the driver to send as ranges. The
//! pages are hashed (a write is one cheap insert) and sorted when taken,
//! so no hash order reaches a send.

use std::collections::HashSet;

/// The dirty pages of one block of `len` pages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirtySet {
    len: u64,
    all: bool,
    pages: HashSet<u64>,
}

impl DirtySet {
    /// Every page dirty.
    pub fn full(len: u64) -> Self {
        Self {
            len,
            all: len > 0,
            pages: HashSet::new(),
        }
    }

    /// No page dirty.
    pub fn empty(len: u64) -> Self {
        Self {
            len,
            all: false,
            pages: HashSet::new(),
        }
    }

    /// Mark page `p` dirty.
    pub fn insert(&mut self, p: u64) {
        debug_assert!(p < self.len);
        if !self.all {
            self.pages.insert(p);
        }
    }

    /// Pages dirty.
    pub fn count(&self) -> u64 {
        if self.all {
            self.len
        } else {
            self.pages.len() as u64
        }
    }

    /// Take the set and leave it empty (a dirty sync).
    pub fn take(&mut self) -> DirtySet {
        std::mem::replace(self, DirtySet::empty(self.len))
    }

    /// The dirty pages as maximal runs `(first, count)`, ascending.
    pub fn runs(&self) -> Vec<(u64, u64)> {
        if self.all {
            return vec![(0, self.len)];
        }
        let mut pages: Vec<u64> = self.pages.iter().copied().collect();
        pages.sort_unstable();
        let mut out: Vec<(u64, u64)> = Vec::new();
        for p in pages {
            match out.last_mut() {
                Some((f, n)) if *f + *n == p => *n += 1,
                _ => out.push((p, 1)),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    //! Runs coalesce consecutive pages; a sync empties the set.

    use super::*;

    #[test]
    fn runs_coalesce_and_take_empties() {
        let mut d = DirtySet::full(10);
        assert_eq!(d.take().runs(), vec![(0, 10)]);
        assert_eq!(d.count(), 0);
        for p in [7, 2, 3, 4, 9] {
            d.insert(p);
        }
        assert_eq!(d.runs(), vec![(2, 3), (7, 1), (9, 1)]);
        assert_eq!(d.count(), 5);
    }
}
