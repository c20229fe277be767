//! `GuestBase`: what every simulated guest keeps besides its pages'
//! states: the content seed, the RAMBlocks and their page numbering, the
//! dirty log, the write count, and whether it still runs. The byte-level
//! [`Guest`](super::guest::Guest) and the extent mode's
//! [`ExtentGuest`](super::extent::guest::ExtentGuest) each hold one and
//! deref to it, so the pass loop ([`super::precopy::drive`]) and the
//! workload see both alike.

use migsim_format::writer::RamBlockDesc;

use super::dirty_log::{DirtyLog, PageSet};
use super::page_index::PageIndex;

/// A guest's seed, blocks, dirty log, write count and run state.
#[derive(Clone, Debug)]
pub struct GuestBase<S> {
    seed: u64,
    blocks: Vec<RamBlockDesc>,
    index: PageIndex,
    dirty: DirtyLog<S>,
    writes: u64,
    running: bool,
}

impl<S: PageSet> GuestBase<S> {
    /// A running guest that wrote nothing yet, every page dirty (as at
    /// the start of a migration's bulk stage).
    pub fn new(seed: u64, blocks: Vec<RamBlockDesc>) -> Self {
        Self {
            seed,
            index: PageIndex::new(&blocks),
            dirty: DirtyLog::bulk(&blocks),
            blocks,
            writes: 0,
            running: true,
        }
    }

    /// x-ignore-shared is on: blocks on shared memory leave the dirty log
    /// (QEMU's `ram_list_init_bitmaps` and dirty sync walk only the blocks
    /// `migrate_ram_is_ignored` keeps), so no driver ever sends them. The
    /// guest still writes them.
    pub fn ignore_shared(&mut self) {
        self.dirty.ignore_shared(&self.blocks);
    }

    /// Count `n` writes made before the migration (a prefill).
    pub fn count_writes(&mut self, n: u64) {
        self.writes += n;
    }

    /// The guest wrote `page` of `block`: the page is marked dirty and the
    /// write counted. `false`, and nothing done, once the guest is stopped
    /// (the caller then leaves the page as it was).
    pub fn wrote(&mut self, block: usize, page: u64) -> bool {
        if !self.running {
            return false;
        }
        self.dirty.mark(block, page);
        self.writes += 1;
        true
    }

    /// The blocks.
    pub fn blocks(&self) -> &[RamBlockDesc] {
        &self.blocks
    }

    /// The content seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The pages numbered across the blocks.
    pub fn page_index(&self) -> &PageIndex {
        &self.index
    }

    /// Pages over all blocks.
    pub fn total_pages(&self) -> u64 {
        self.index.total_pages()
    }

    /// Total RAM bytes.
    pub fn ram_bytes(&self) -> u64 {
        self.blocks.iter().map(|b| b.used_length).sum()
    }

    /// Writes so far.
    pub fn writes(&self) -> u64 {
        self.writes
    }

    /// The dirty log.
    pub fn dirty(&self) -> &DirtyLog<S> {
        &self.dirty
    }

    /// The dirty log, to sync or clear.
    pub fn dirty_mut(&mut self) -> &mut DirtyLog<S> {
        &mut self.dirty
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
