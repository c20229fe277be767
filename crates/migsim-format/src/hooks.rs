//! Seams in the writer for a harness that makes it deliberately wrong.
//!
//! [`MigrationWriter`](crate::writer::MigrationWriter) asks its hooks
//! where a page goes, which bitmap bit a sent page gets, what the
//! bitmap bytes are just before they are written and (durable saves)
//! whether it syncs before the completion mark. The `()` implementation
//! gives the correct answers and compiles away (the hooks are a type
//! parameter, as `vm-memory` does with its dirty bitmaps); a test harness
//! implements the trait to inject a known bug class and prove its oracle
//! catches it. The product itself never implements it.

/// What a writer consults on the way to the file. Every method's default
/// is the correct behaviour.
pub trait SaveHooks: Sync {
    /// The slot in block `block`'s page area where page `page` is written.
    /// Correct: `page`.
    #[inline]
    fn page_slot(&self, block: usize, page: u64) -> u64 {
        let _ = block;
        page
    }

    /// Where a run of pages `first..first + count` of block `block` goes:
    /// `(slot of page first, n)`, the first `n >= 1` pages of the run
    /// landing at consecutive slots from there. Used by
    /// [`MigrationWriter::save_run`](crate::writer::MigrationWriter::save_run).
    /// Must agree with [`SaveHooks::page_slot`]; the default asks it page
    /// by page. Correct: `(first, count)`.
    #[inline]
    fn slot_run(&self, block: usize, first: u64, count: u64) -> (u64, u64) {
        let slot = self.page_slot(block, first);
        let mut n = 1;
        while n < count && self.page_slot(block, first + n) == slot + n {
            n += 1;
        }
        (slot, n)
    }

    /// The bit every page of a sent run gets, when it does not depend on
    /// the page or its previous bit (`None`: ask [`SaveHooks::bitmap_bit`]
    /// page by page). Must agree with it. Correct: `Some(!zero)`.
    #[inline]
    fn bitmap_run(&self, block: usize, zero: bool) -> Option<bool> {
        let _ = (block, zero);
        None
    }

    /// The fixed-ram bitmap bit recorded for a sent page: `zero` says the
    /// page is all zeros, `was_set` what the bit held before. Correct:
    /// `!zero`.
    #[inline]
    fn bitmap_bit(&self, block: usize, page: u64, zero: bool, was_set: bool) -> bool {
        let _ = (block, page, was_set);
        !zero
    }

    /// Block `block`'s bitmap as it is about to be written
    /// (little-endian bit order). Correct: leave it.
    #[inline]
    fn bitmap_bytes(&self, block: usize, bytes: &mut [u8]) {
        let _ = (block, bytes);
    }

    /// A durable save ([`crate::Durability::Durable`]): whether the file is
    /// synced after the vmdesc trailer, before the completion mark is
    /// written. Correct: `true` (else the mark can reach the disk before
    /// the pages and bitmaps it vouches for).
    #[inline]
    fn sync_before_mark(&self) -> bool {
        true
    }
}

/// The correct writer.
impl SaveHooks for () {
    #[inline]
    fn slot_run(&self, _block: usize, first: u64, count: u64) -> (u64, u64) {
        (first, count)
    }

    #[inline]
    fn bitmap_run(&self, _block: usize, zero: bool) -> Option<bool> {
        Some(!zero)
    }
}
