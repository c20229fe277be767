//! `ExtentGuest`: the simulated source guest of the extent mode. Each
//! RAMBlock is one uniform extent (every page in the state the initial
//! fill left it in) plus a map of exceptions for the pages written since;
//! dirty pages are [`DirtySet`]s. Memory grows with what the guest wrote,
//! not with its size, so a guest of more than 2^32 pages fits in a few
//! megabytes. It makes the same writes from the same workload seed as the
//! byte-level [`Guest`](crate::sim::guest::Guest) ([`GuestMemory`]), and
//! names its pages' contents to the writer by run ([`RunSource`]).

use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};

use migsim_format::writer::{RamBlockDesc, RunContent, RunSource};

use super::dirty::DirtySet;
use crate::sim::content::PageState;
use crate::sim::guest_base::GuestBase;
use crate::sim::page_index::PageIndex;
use crate::sim::workload::GuestMemory;

/// A guest whose memory is extents with exceptions; its seed, blocks,
/// dirty log and run state are its [`GuestBase`], which it derefs to.
#[derive(Clone, Debug)]
pub struct ExtentGuest {
    base: GuestBase<DirtySet>,
    /// Each block's pages' state unless the page is an exception.
    uniform: Vec<PageState>,
    /// Pages written since the initial fill.
    changed: Vec<BTreeMap<u64, PageState>>,
    /// Entries of `changed`, over all blocks.
    exceptions: u64,
}

impl Deref for ExtentGuest {
    type Target = GuestBase<DirtySet>;
    fn deref(&self) -> &GuestBase<DirtySet> {
        &self.base
    }
}

impl DerefMut for ExtentGuest {
    fn deref_mut(&mut self) -> &mut GuestBase<DirtySet> {
        &mut self.base
    }
}

/// The content of a page in `state`, as the writer is told it.
pub fn content_of(state: PageState) -> RunContent {
    if state.zero || state.version == 0 {
        RunContent::Zero
    } else {
        RunContent::Ref(u64::from(state.version))
    }
}

impl ExtentGuest {
    /// A guest after its initial fill, every page dirty (the bulk stage).
    /// The fill must leave each block uniform: `initial_fill` 1 (every page
    /// written once, as the byte-level guest's prefill does) or 0.
    pub fn new(seed: u64, blocks: Vec<RamBlockDesc>, initial_fill: f64) -> Result<Self, String> {
        let base = if initial_fill >= 1.0 {
            PageState {
                version: 1,
                zero: false,
            }
        } else if initial_fill <= 0.0 {
            PageState::FRESH
        } else {
            return Err(format!(
                "guest.initial_fill = {initial_fill}: the extent mode needs 0 or 1 (a partly \
                 filled guest is not one extent a block)"
            ));
        };
        let mut guest = Self {
            uniform: vec![base; blocks.len()],
            changed: vec![BTreeMap::new(); blocks.len()],
            exceptions: 0,
            base: GuestBase::new(seed, blocks),
        };
        // The prefill's writes count, as in the byte-level guest.
        if base.version > 0 {
            let pages = guest.base.page_index().total_pages();
            guest.base.count_writes(pages);
        }
        Ok(guest)
    }

    /// The same guest with x-ignore-shared on
    /// ([`GuestBase::ignore_shared`]).
    pub fn ignoring_shared(mut self) -> Self {
        self.base.ignore_shared();
        self
    }

    /// Pages written since the initial fill (the exceptions kept).
    pub fn exceptions(&self) -> u64 {
        self.exceptions
    }

    /// State of one page.
    pub fn state(&self, block: usize, page: u64) -> PageState {
        self.changed[block]
            .get(&page)
            .copied()
            .unwrap_or(self.uniform[block])
    }

    /// Block `block`'s pages `first..first + count` as maximal runs of one
    /// state: `each(first, count, state)`, in order.
    pub fn state_runs(
        &self,
        block: usize,
        first: u64,
        count: u64,
        each: &mut dyn FnMut(u64, u64, PageState),
    ) {
        let end = first + count;
        let base = self.uniform[block];
        let mut run: Option<(u64, u64, PageState)> = None;
        let mut push = |f: u64, n: u64, s: PageState, run: &mut Option<(u64, u64, PageState)>| {
            if n == 0 {
                return;
            }
            match run {
                Some((rf, rn, rs)) if *rs == s && *rf + *rn == f => *rn += n,
                _ => {
                    if let Some((rf, rn, rs)) = run.take() {
                        each(rf, rn, rs);
                    }
                    *run = Some((f, n, s));
                }
            }
        };
        let mut at = first;
        for (&p, &s) in self.changed[block].range(first..end) {
            push(at, p - at, base, &mut run);
            push(p, 1, s, &mut run);
            at = p + 1;
        }
        push(at, end - at, base, &mut run);
        if let Some((rf, rn, rs)) = run {
            each(rf, rn, rs);
        }
    }
}

impl GuestMemory for ExtentGuest {
    fn page_index(&self) -> &PageIndex {
        self.base.page_index()
    }

    fn write(&mut self, block: usize, page: u64, zero: bool) {
        if !self.base.wrote(block, page) {
            return;
        }
        // One walk of the map (this is the hot path of a huge run).
        let uniform = self.uniform[block];
        let s = self.changed[block].entry(page).or_insert_with(|| {
            self.exceptions += 1;
            uniform
        });
        s.version += 1;
        s.zero = zero;
    }
}

impl RunSource for ExtentGuest {
    fn runs(
        &self,
        block: usize,
        first: u64,
        count: u64,
        each: &mut dyn FnMut(u64, u64, RunContent),
    ) {
        // Runs of one state, merged further where the contents agree (a
        // zero write and a never-written page are both zero).
        let mut run: Option<(u64, u64, RunContent)> = None;
        self.state_runs(block, first, count, &mut |f, n, s| {
            let c = content_of(s);
            match &mut run {
                Some((_, rn, rc)) if *rc == c && c == RunContent::Zero => *rn += n,
                _ => {
                    if let Some((rf, rn, rc)) = run.take() {
                        each(rf, rn, rc);
                    }
                    run = Some((f, n, c));
                }
            }
        });
        if let Some((rf, rn, rc)) = run {
            each(rf, rn, rc);
        }
    }
}

#[cfg(test)]
mod tests {
    //! The guest's state runs and content runs follow its writes.

    use super::*;

    fn guest() -> ExtentGuest {
        let blocks = vec![RamBlockDesc {
            name: "pc.ram".into(),
            used_length: 16 * 4096,
            shared: false,
        }];
        ExtentGuest::new(1, blocks, 1.0).unwrap()
    }

    #[test]
    fn writes_become_exceptions_and_runs() {
        let mut g = guest();
        assert_eq!(g.writes(), 16);
        g.write(0, 3, false);
        g.write(0, 4, false);
        g.write(0, 9, true);
        let mut v = Vec::new();
        g.runs(0, 0, 16, &mut |f, n, c| v.push((f, n, c)));
        assert_eq!(
            v,
            vec![
                (0, 3, RunContent::Ref(1)),
                (3, 2, RunContent::Ref(2)),
                (5, 4, RunContent::Ref(1)),
                (9, 1, RunContent::Zero),
                (10, 6, RunContent::Ref(1)),
            ]
        );
        assert_eq!(
            g.dirty().pending(),
            16,
            "the bulk stage's dirty set is full"
        );
        g.dirty_mut().sync();
        g.write(0, 3, false);
        assert_eq!(g.dirty().pending(), 1);
        assert_eq!(g.state(0, 3).version, 3);
    }

    #[test]
    fn a_partial_fill_is_refused() {
        let err = ExtentGuest::new(1, guest().blocks().to_vec(), 0.5).unwrap_err();
        assert!(err.contains("initial_fill = 0.5"), "{err}");
    }
}
