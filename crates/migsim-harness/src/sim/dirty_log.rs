//! `DirtyLog`: a guest's per-block dirty tracking, as the pre-copy driver
//! sees it (QEMU's migration bitmap, filled by the dirty log): every page
//! dirty at the start (the bulk stage), a page marked when the guest writes
//! it, the marks handed over and cleared at each sync. Blocks ignored
//! under x-ignore-shared are outside it, as QEMU's
//! `ram_list_init_bitmaps` and dirty sync leave the blocks
//! `migrate_ram_is_ignored` skips. Generic over the set a block's marks
//! are kept in: the byte-level guest's [`PageBitmap`] (a bit a page), the
//! extent mode's [`DirtySet`] (a flag or the pages written).

use migsim_format::bitmap::PageBitmap;
use migsim_format::writer::RamBlockDesc;

use super::extent::dirty::DirtySet;

/// The dirty pages of one block, in whatever form a guest keeps them.
pub trait PageSet: Clone {
    /// Every one of `pages` pages dirty.
    fn full(pages: u64) -> Self;
    /// Take the set and leave it empty (a dirty sync).
    fn take(&mut self) -> Self;
    /// Pages in the set.
    fn count(&self) -> u64;
    /// Mark `page` dirty.
    fn mark(&mut self, page: u64);
}

impl PageSet for PageBitmap {
    fn full(pages: u64) -> Self {
        PageBitmap::full(pages)
    }
    fn take(&mut self) -> Self {
        PageBitmap::take(self)
    }
    fn count(&self) -> u64 {
        self.count_ones()
    }
    fn mark(&mut self, page: u64) {
        self.set(page, true);
    }
}

impl PageSet for DirtySet {
    fn full(pages: u64) -> Self {
        DirtySet::full(pages)
    }
    fn take(&mut self) -> Self {
        DirtySet::take(self)
    }
    fn count(&self) -> u64 {
        DirtySet::count(self)
    }
    fn mark(&mut self, page: u64) {
        self.insert(page);
    }
}

/// One set a block, and which blocks are outside the log.
#[derive(Clone, Debug)]
pub struct DirtyLog<S> {
    sets: Vec<S>,
    ignored: Vec<bool>,
}

impl<S: PageSet> DirtyLog<S> {
    /// The log at the start of a migration: every page of every block
    /// dirty.
    pub fn bulk(blocks: &[RamBlockDesc]) -> Self {
        Self {
            sets: blocks.iter().map(|b| S::full(b.pages())).collect(),
            ignored: vec![false; blocks.len()],
        }
    }

    /// x-ignore-shared is on: blocks on shared memory leave the log (their
    /// sets emptied, later writes not marked).
    pub fn ignore_shared(&mut self, blocks: &[RamBlockDesc]) {
        for ((s, ignored), b) in self.sets.iter_mut().zip(&mut self.ignored).zip(blocks) {
            if b.ignored(true) {
                *ignored = true;
                s.take();
            }
        }
    }

    /// The guest wrote `page` of `block`: mark it, unless the block is
    /// outside the log.
    pub fn mark(&mut self, block: usize, page: u64) {
        if !self.ignored[block] {
            self.sets[block].mark(page);
        }
    }

    /// Sync: take every block's set and leave it empty.
    pub fn sync(&mut self) -> Vec<S> {
        self.sets.iter_mut().map(S::take).collect()
    }

    /// The sets, left as they are.
    pub fn peek(&self) -> Vec<S> {
        self.sets.clone()
    }

    /// Empty every set.
    pub fn clear(&mut self) {
        self.sets.iter_mut().for_each(|s| {
            s.take();
        });
    }

    /// Pages dirty right now, over all blocks.
    pub fn pending(&self) -> u64 {
        self.sets.iter().map(S::count).sum()
    }

    /// One block's set.
    pub fn block(&self, block: usize) -> &S {
        &self.sets[block]
    }

    /// One block's set, to change one page's mark.
    pub fn block_mut(&mut self, block: usize) -> &mut S {
        &mut self.sets[block]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks() -> Vec<RamBlockDesc> {
        vec![
            RamBlockDesc {
                name: "pc.ram".into(),
                used_length: 8 * 4096,
                shared: true,
            },
            RamBlockDesc {
                name: "vga.vram".into(),
                used_length: 4 * 4096,
                shared: false,
            },
        ]
    }

    /// The same life of a log, whatever the set: bulk, sync, marks, the
    /// shared block ignored.
    fn life<S: PageSet>() {
        let mut log = DirtyLog::<S>::bulk(&blocks());
        assert_eq!(log.pending(), 12);
        let taken = log.sync();
        assert_eq!(taken.iter().map(S::count).sum::<u64>(), 12);
        assert_eq!(log.pending(), 0);
        log.mark(0, 3);
        log.mark(1, 2);
        log.mark(1, 2);
        assert_eq!(log.pending(), 2);
        assert_eq!(log.peek().iter().map(S::count).sum::<u64>(), 2);
        assert_eq!(log.pending(), 2, "peek leaves the log as it was");
        log.clear();
        assert_eq!(log.pending(), 0);

        let mut log = DirtyLog::<S>::bulk(&blocks());
        log.ignore_shared(&blocks());
        assert_eq!(log.pending(), 4, "the shared block left the log");
        log.sync();
        log.mark(0, 1);
        log.mark(1, 1);
        assert_eq!(
            log.pending(),
            1,
            "a write to an ignored block is not marked"
        );
    }

    #[test]
    fn a_log_of_bitmaps_and_a_log_of_dirty_sets_behave_alike() {
        life::<PageBitmap>();
        life::<DirtySet>();
    }
}
