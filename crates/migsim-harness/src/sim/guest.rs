//! The simulated source guest: RAMBlocks, each page's `(version, zero)`
//! state, and the dirty bitmaps the migration syncs. Page bytes are never
//! stored; they are generated from the state (see [`super::content`]).

use migsim_format::bitmap::PageBitmap;
use migsim_format::writer::RamBlockDesc;

use super::content::{PageState, fill_page};
use super::dirty_log::DirtyLog;
use super::page_index::PageIndex;

/// A guest whose memory is described by page states.
#[derive(Clone, Debug)]
pub struct Guest {
    seed: u64,
    blocks: Vec<RamBlockDesc>,
    states: Vec<Vec<PageState>>,
    dirty: DirtyLog<PageBitmap>,
    index: PageIndex,
    writes: u64,
    running: bool,
}

impl Guest {
    /// A fresh guest: every page zero and (as at the start of a
    /// migration's bulk stage) dirty.
    pub fn new(seed: u64, blocks: Vec<RamBlockDesc>) -> Self {
        Self {
            seed,
            states: blocks
                .iter()
                .map(|b| vec![PageState::FRESH; b.pages() as usize])
                .collect(),
            dirty: DirtyLog::bulk(&blocks),
            index: PageIndex::new(&blocks),
            blocks,
            writes: 0,
            running: true,
        }
    }

    /// The same guest with x-ignore-shared on: blocks on shared memory
    /// are outside the migration's dirty bitmap and dirty log (QEMU's
    /// `ram_list_init_bitmaps` and dirty sync walk only the blocks
    /// `migrate_ram_is_ignored` keeps), so no driver ever sends them. The
    /// guest still writes them.
    pub fn ignoring_shared(mut self) -> Self {
        self.dirty.ignore_shared(&self.blocks);
        self
    }

    /// The blocks.
    pub fn blocks(&self) -> &[RamBlockDesc] {
        &self.blocks
    }

    /// The content seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Total pages over all blocks.
    pub fn total_pages(&self) -> u64 {
        self.index.total_pages()
    }

    /// Total RAM bytes.
    pub fn ram_bytes(&self) -> u64 {
        self.blocks.iter().map(|b| b.used_length).sum()
    }

    /// Map a global page index to `(block, page)`.
    pub fn locate(&self, global: u64) -> (usize, u64) {
        self.index.locate(global)
    }

    /// The guest writes a page: new data, or zeros when `zero`. Marks the
    /// page dirty. Ignored once the guest is stopped.
    pub fn write(&mut self, block: usize, page: u64, zero: bool) {
        if !self.running {
            return;
        }
        let s = &mut self.states[block][page as usize];
        s.version += 1;
        s.zero = zero;
        self.dirty.mark(block, page);
        self.writes += 1;
    }

    /// Writes so far.
    pub fn writes(&self) -> u64 {
        self.writes
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
        fill_page(self.seed, block as u32, page, self.state(block, page), buf);
    }

    /// The dirty log.
    pub fn dirty(&self) -> &DirtyLog<PageBitmap> {
        &self.dirty
    }

    /// The dirty log, to sync or clear.
    pub fn dirty_mut(&mut self) -> &mut DirtyLog<PageBitmap> {
        &mut self.dirty
    }

    /// Whether the dirty log has this page.
    pub fn is_dirty(&self, block: usize, page: u64) -> bool {
        self.dirty.block(block).get(page)
    }

    /// Clear one page's dirty-log bit (QEMU re-arms dirty logging of a page
    /// when the migration clears its bit: `migration_clear_memory_region_dirty_bitmap`).
    pub fn clear_dirty_page(&mut self, block: usize, page: u64) {
        self.dirty.block_mut(block).set(page, false);
    }

    /// Whether the guest still runs (not stopped for switchover).
    pub fn running(&self) -> bool {
        self.running
    }

    /// Stop the guest (switchover); later writes are ignored.
    pub fn stop(&mut self) {
        self.running = false;
    }
}
