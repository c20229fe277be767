//! The simulated source guest: RAMBlocks, each page's `(version, zero)`
//! state, and the dirty bitmaps the migration syncs. Page bytes are never
//! stored; they are generated from the state (see [`super::content`]).

use migsim_format::bitmap::PageBitmap;
use migsim_format::writer::RamBlockDesc;

use super::content::{PageState, fill_page};

/// A guest whose memory is described by page states.
#[derive(Clone, Debug)]
pub struct Guest {
    seed: u64,
    blocks: Vec<RamBlockDesc>,
    states: Vec<Vec<PageState>>,
    dirty: Vec<PageBitmap>,
    /// Cumulative page count before each block, for global page indices.
    starts: Vec<u64>,
    writes: u64,
    running: bool,
    /// x-ignore-shared is on: blocks on shared memory are not dirty-logged.
    ignore_shared: bool,
}

impl Guest {
    /// A fresh guest: every page zero and (as at the start of a
    /// migration's bulk stage) dirty.
    pub fn new(seed: u64, blocks: Vec<RamBlockDesc>) -> Self {
        let mut starts = Vec::with_capacity(blocks.len());
        let mut acc = 0;
        for b in &blocks {
            starts.push(acc);
            acc += b.pages();
        }
        Self {
            seed,
            states: blocks
                .iter()
                .map(|b| vec![PageState::FRESH; b.pages() as usize])
                .collect(),
            dirty: blocks.iter().map(|b| PageBitmap::full(b.pages())).collect(),
            ignore_shared: false,
            blocks,
            starts,
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
        self.ignore_shared = true;
        for (d, b) in self.dirty.iter_mut().zip(&self.blocks) {
            if b.ignored(true) {
                d.take();
            }
        }
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
        self.starts.last().copied().unwrap_or(0) + self.blocks.last().map_or(0, RamBlockDesc::pages)
    }

    /// Total RAM bytes.
    pub fn ram_bytes(&self) -> u64 {
        self.blocks.iter().map(|b| b.used_length).sum()
    }

    /// Map a global page index to `(block, page)`.
    pub fn locate(&self, global: u64) -> (usize, u64) {
        let b = self.starts.partition_point(|&s| s <= global) - 1;
        (b, global - self.starts[b])
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
        if !self.blocks[block].ignored(self.ignore_shared) {
            self.dirty[block].set(page, true);
        }
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

    /// Sync: take the dirty bitmaps and clear them.
    pub fn sync_dirty(&mut self) -> Vec<PageBitmap> {
        self.dirty.iter_mut().map(PageBitmap::take).collect()
    }

    /// Read the dirty bitmaps without clearing them.
    pub fn peek_dirty(&self) -> Vec<PageBitmap> {
        self.dirty.clone()
    }

    /// Clear the dirty bitmaps.
    pub fn clear_dirty(&mut self) {
        self.dirty.iter_mut().for_each(|d| {
            d.take();
        });
    }

    /// Whether the dirty log has this page.
    pub fn is_dirty(&self, block: usize, page: u64) -> bool {
        self.dirty[block].get(page)
    }

    /// Clear one page's dirty-log bit (QEMU re-arms dirty logging of a page
    /// when the migration clears its bit: `migration_clear_memory_region_dirty_bitmap`).
    pub fn clear_dirty_page(&mut self, block: usize, page: u64) {
        self.dirty[block].set(page, false);
    }

    /// Whether the guest still runs (not stopped for switchover).
    pub fn running(&self) -> bool {
        self.running
    }

    /// Pages dirty right now.
    pub fn dirty_pages(&self) -> u64 {
        self.dirty.iter().map(PageBitmap::count_ones).sum()
    }

    /// Stop the guest (switchover); later writes are ignored.
    pub fn stop(&mut self) {
        self.running = false;
    }
}
