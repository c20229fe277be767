//! The simulated source guest: RAMBlocks, each page's `(version, zero)`
//! state, and the dirty bitmaps the migration syncs. Page bytes are never
//! stored; they are generated from the state (see [`super::content`]).

use std::ops::{Deref, DerefMut};

use migsim_format::bitmap::PageBitmap;
use migsim_format::writer::RamBlockDesc;

use super::content::{PageState, fill_page};
use super::guest_base::GuestBase;

/// A guest whose memory is described by page states; its seed, blocks,
/// dirty log and run state are its [`GuestBase`], which it derefs to.
#[derive(Clone, Debug)]
pub struct Guest {
    base: GuestBase<PageBitmap>,
    states: Vec<Vec<PageState>>,
}

impl Deref for Guest {
    type Target = GuestBase<PageBitmap>;
    fn deref(&self) -> &GuestBase<PageBitmap> {
        &self.base
    }
}

impl DerefMut for Guest {
    fn deref_mut(&mut self) -> &mut GuestBase<PageBitmap> {
        &mut self.base
    }
}

impl Guest {
    /// A fresh guest: every page zero and (as at the start of a
    /// migration's bulk stage) dirty.
    pub fn new(seed: u64, blocks: Vec<RamBlockDesc>) -> Self {
        Self {
            states: blocks
                .iter()
                .map(|b| vec![PageState::FRESH; b.pages() as usize])
                .collect(),
            base: GuestBase::new(seed, blocks),
        }
    }

    /// The same guest with x-ignore-shared on
    /// ([`GuestBase::ignore_shared`]).
    pub fn ignoring_shared(mut self) -> Self {
        self.base.ignore_shared();
        self
    }

    /// The guest writes a page: new data, or zeros when `zero`. Marks the
    /// page dirty. Ignored once the guest is stopped.
    pub fn write(&mut self, block: usize, page: u64, zero: bool) {
        if self.base.wrote(block, page) {
            let s = &mut self.states[block][page as usize];
            s.version += 1;
            s.zero = zero;
        }
    }

    /// State of one page.
    pub fn state(&self, block: usize, page: u64) -> PageState {
        self.states[block][page as usize]
    }

    /// All page states (the oracle's expectation at switchover).
    pub fn states(&self) -> &[Vec<PageState>] {
        &self.states
    }

    /// Current bytes of one page.
    pub fn read_page(&self, block: usize, page: u64, buf: &mut [u8]) {
        fill_page(
            self.seed(),
            block as u32,
            page,
            self.state(block, page),
            buf,
        );
    }

    /// Whether the dirty log has this page.
    pub fn is_dirty(&self, block: usize, page: u64) -> bool {
        self.dirty().block(block).get(page)
    }

    /// Clear one page's dirty-log bit (QEMU re-arms dirty logging of a page
    /// when the migration clears its bit: `migration_clear_memory_region_dirty_bitmap`).
    pub fn clear_dirty_page(&mut self, block: usize, page: u64) {
        self.dirty_mut().block_mut(block).set(page, false);
    }
}
