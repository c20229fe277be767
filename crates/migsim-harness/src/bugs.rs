//! Deliberately wrong variants of the writer, the reader's options and the
//! driver, to prove the harness catches real bug classes (`explore` must
//! find each one within a bounded number of seeds).
//!
//! Writer variants reach the product through its
//! [`SaveHooks`](migsim_format::SaveHooks) seam ([`BugHooks`]); the reader
//! variant is the product's documented QEMU 10 load option
//! ([`ClearBitPages::Untouched`]), wrong on a destination that is not
//! zeroed; driver variants live in [`crate::sim::precopy`].

use std::fmt;
use std::str::FromStr;

use migsim_format::SaveHooks;
use migsim_format::reader::ClearBitPages;
use serde::{Deserialize, Serialize};

/// A known-wrong behaviour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bug {
    /// Fixed-ram writer: pages of every block after the first land one page
    /// too far.
    OffByOneLaterBlock,
    /// Driver: the dirty bitmap is cleared after the pass rather than at
    /// sync, so writes during the pass are lost.
    DirtyClearedAfterPass,
    /// Fixed-ram writer: a page that became zero keeps its bit set.
    ZeroPageKeepsBit,
    /// Fixed-ram writer: bitmap bytes written MSB-first.
    BitmapWrongBitOrder,
    /// Reader: pages whose bit is clear are left untouched (QEMU 10's
    /// behaviour), wrong on a destination that is not zeroed.
    ReaderSkipsClearBits,
    /// Driver: no final dirty sync at switchover.
    SkipFinalSync,
    /// Durable writer: no sync between the vmdesc trailer and the
    /// completion mark, so the mark can reach the disk before the pages
    /// and bitmaps it vouches for. Only a power loss shows it (`migsim
    /// faults --mode durable`), so it is not in [`Bug::ALL`] (what
    /// `explore` must find).
    DurableMarkUnsynced,
    /// Concurrency model: the migration thread does not wait for the send
    /// channels when the walk wraps (QEMU 9d01778af8 keeps that sync for
    /// mapped-ram), so an older copy of a page can land after a newer one.
    NoChannelFlushAtRound,
    /// Concurrency model: the file bitmaps are written while send channels
    /// still hold pages (no flush at the final walk's wrap).
    BitmapBeforeChannelsDrain,
    /// Concurrency model: multifd zero-page detection clears the bits of
    /// the wrong range of the packet, i.e. none (QEMU 8fa1a21c6e): a page
    /// that went from data to zero keeps its bit.
    MultifdZeroClearsWrongRange,
    /// Concurrency model: a page's dirty-log bit is cleared after its copy
    /// instead of before, so a vCPU write during the copy (a torn page) is
    /// never resent.
    DirtyClearedAfterCopy,
    /// Concurrency model: an all-zero packet leaves the channel's previous
    /// page list in place (QEMU cdc3970f85): the previous pages go out
    /// again and the zero pages are never applied.
    AllZeroBatchKeepsPageList,
    /// Concurrency model: the destination reports the load complete
    /// without waiting for its receive channels (QEMU 4ce5622908 is the
    /// same race at cleanup).
    RecvChannelAfterCompletion,
    /// Fixed-ram writer: the page index is truncated to 32 bits when the
    /// page's offset is computed (`pages_offset + (page as u32) * 4096`),
    /// so page `2^32 + i` overwrites page `i`. Only a guest of more than
    /// 2^32 pages (16 TiB) shows it (the extent mode,
    /// `scenarios/huge-24t.toml`), so it is not in [`Bug::ALL`].
    PageIndex32Bit,
}

impl Bug {
    /// Every variant.
    pub const ALL: [Bug; 6] = [
        Bug::OffByOneLaterBlock,
        Bug::DirtyClearedAfterPass,
        Bug::ZeroPageKeepsBit,
        Bug::BitmapWrongBitOrder,
        Bug::ReaderSkipsClearBits,
        Bug::SkipFinalSync,
    ];

    /// Variants of the concurrency model (scenarios with `[concurrency]`);
    /// `explore` generates such scenarios and must find each.
    pub const CONCURRENCY: [Bug; 6] = [
        Bug::NoChannelFlushAtRound,
        Bug::BitmapBeforeChannelsDrain,
        Bug::MultifdZeroClearsWrongRange,
        Bug::DirtyClearedAfterCopy,
        Bug::AllZeroBatchKeepsPageList,
        Bug::RecvChannelAfterCompletion,
    ];

    /// Variants only the fault model finds (`migsim faults`).
    pub const FAULTS: [Bug; 1] = [Bug::DurableMarkUnsynced];

    /// Variants only a guest larger than 2^32 pages finds (the extent
    /// mode, `scenarios/huge-24t.toml`).
    pub const HUGE: [Bug; 1] = [Bug::PageIndex32Bit];

    /// Kebab-case name, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Bug::OffByOneLaterBlock => "off-by-one-later-block",
            Bug::DirtyClearedAfterPass => "dirty-cleared-after-pass",
            Bug::ZeroPageKeepsBit => "zero-page-keeps-bit",
            Bug::BitmapWrongBitOrder => "bitmap-wrong-bit-order",
            Bug::ReaderSkipsClearBits => "reader-skips-clear-bits",
            Bug::SkipFinalSync => "skip-final-sync",
            Bug::DurableMarkUnsynced => "durable-mark-unsynced",
            Bug::NoChannelFlushAtRound => "no-channel-flush-at-round",
            Bug::BitmapBeforeChannelsDrain => "bitmap-before-channels-drain",
            Bug::MultifdZeroClearsWrongRange => "multifd-zero-clears-wrong-range",
            Bug::DirtyClearedAfterCopy => "dirty-cleared-after-copy",
            Bug::AllZeroBatchKeepsPageList => "all-zero-batch-keeps-page-list",
            Bug::RecvChannelAfterCompletion => "recv-channel-after-completion",
            Bug::PageIndex32Bit => "page-index-32-bit",
        }
    }

    /// What the variant does wrong, one line (for `--help`).
    pub fn about(self) -> &'static str {
        match self {
            Bug::OffByOneLaterBlock => {
                "fixed-ram pages of blocks after the first land a page too far"
            }
            Bug::DirtyClearedAfterPass => {
                "dirty bits cleared after the pass, losing writes during it"
            }
            Bug::ZeroPageKeepsBit => "a page that became zero keeps its fixed-ram bitmap bit",
            Bug::BitmapWrongBitOrder => "fixed-ram bitmap bytes written MSB-first",
            Bug::ReaderSkipsClearBits => {
                "load leaves clear-bit pages untouched (QEMU 10), wrong on dirty memory"
            }
            Bug::SkipFinalSync => "no final dirty sync at switchover",
            Bug::DurableMarkUnsynced => {
                "durable save: completion mark written without a sync before it"
            }
            Bug::NoChannelFlushAtRound => {
                "multifd: no wait for the send channels when the walk wraps"
            }
            Bug::BitmapBeforeChannelsDrain => {
                "multifd: file bitmaps written while channels still hold pages"
            }
            Bug::MultifdZeroClearsWrongRange => {
                "multifd zero-page detection never clears a zero page's bit"
            }
            Bug::DirtyClearedAfterCopy => {
                "dirty bit cleared after the copy: a torn page not resent"
            }
            Bug::AllZeroBatchKeepsPageList => {
                "an all-zero packet reuses the previous page list; zero pages not applied"
            }
            Bug::RecvChannelAfterCompletion => {
                "destination reports success before its receive channels finish"
            }
            Bug::PageIndex32Bit => {
                "fixed-ram page offsets from a 32-bit page index (only guests over 16 TiB)"
            }
        }
    }
}

impl fmt::Display for Bug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Bug {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let all = Bug::ALL
            .into_iter()
            .chain(Bug::FAULTS)
            .chain(Bug::CONCURRENCY)
            .chain(Bug::HUGE);
        all.clone().find(|b| b.name() == s).ok_or_else(|| {
            let names: Vec<&str> = all.map(|b| b.name()).collect();
            format!("unknown bug variant {s:?} (one of: {})", names.join(", "))
        })
    }
}

/// Whether `bug` is the injected one.
#[inline]
pub fn active(injected: Option<Bug>, bug: Bug) -> bool {
    injected == Some(bug)
}

/// The writer hooks of an injected variant (`BugHooks(None)`: correct).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BugHooks(pub Option<Bug>);

impl SaveHooks for BugHooks {
    fn page_slot(&self, block: usize, page: u64) -> u64 {
        if active(self.0, Bug::OffByOneLaterBlock) && block > 0 {
            page + 1
        } else if active(self.0, Bug::PageIndex32Bit) {
            u64::from(page as u32)
        } else {
            page
        }
    }

    fn slot_run(&self, block: usize, first: u64, count: u64) -> (u64, u64) {
        if active(self.0, Bug::PageIndex32Bit) {
            // Consecutive up to the next multiple of 2^32, where it wraps.
            let to_wrap = (1u64 << 32) - (first & 0xffff_ffff);
            return (self.page_slot(block, first), count.min(to_wrap));
        }
        (self.page_slot(block, first), count)
    }

    fn bitmap_run(&self, _block: usize, zero: bool) -> Option<bool> {
        if zero && active(self.0, Bug::ZeroPageKeepsBit) {
            None
        } else {
            Some(!zero)
        }
    }

    fn bitmap_bit(&self, _block: usize, _page: u64, zero: bool, was_set: bool) -> bool {
        !zero || (active(self.0, Bug::ZeroPageKeepsBit) && was_set)
    }

    fn bitmap_bytes(&self, _block: usize, bytes: &mut [u8]) {
        if active(self.0, Bug::BitmapWrongBitOrder) {
            bytes.iter_mut().for_each(|b| *b = b.reverse_bits());
        }
    }

    fn sync_before_mark(&self) -> bool {
        !active(self.0, Bug::DurableMarkUnsynced)
    }
}

/// The load option an injected variant selects.
pub fn clear_bit_pages(bug: Option<Bug>) -> ClearBitPages {
    if active(bug, Bug::ReaderSkipsClearBits) {
        ClearBitPages::Untouched
    } else {
        ClearBitPages::Zero
    }
}

#[cfg(test)]
mod tests {
    //! Each deliberately wrong hook does exactly its documented wrong thing,
    //! and only when injected.

    use super::*;
    use crate::sim::dest::{Destination, GARBAGE};
    use migsim_format::caps::{Capabilities, Capability};
    use migsim_format::reader::{self, LoadOptions, StreamInfo};
    use migsim_format::writer::{MigrationWriter, RamBlockDesc};

    const MACHINE: &str = "pc-i440fx-10.0";
    const PAGE: usize = 4096;

    fn fixed() -> Capabilities {
        Capabilities::from_enabled(&[Capability::FixedRam]).unwrap()
    }

    fn block(name: &str, pages: u64) -> RamBlockDesc {
        RamBlockDesc {
            name: name.into(),
            used_length: pages * PAGE as u64,
            shared: false,
        }
    }

    /// A recognisable non-zero page.
    fn page(tag: u8) -> Vec<u8> {
        (0..PAGE)
            .map(|i| (i as u8).wrapping_mul(13) ^ tag)
            .collect()
    }

    fn start(
        caps: &Capabilities,
        blocks: Vec<RamBlockDesc>,
    ) -> Result<MigrationWriter<Vec<u8>>, migsim_format::SaveError> {
        MigrationWriter::start(Vec::new(), MACHINE, caps, blocks)
    }

    fn load_opts(caps: Capabilities) -> LoadOptions {
        LoadOptions {
            machine: Some(MACHINE.into()),
            caps: Some(caps),
            ..LoadOptions::default()
        }
    }

    fn page_at(file: &[u8], off: u64) -> &[u8] {
        &file[off as usize..off as usize + PAGE]
    }

    /// Write pc.ram p1 (0x11) and p2 (then zeroed), vga p0 (0x22), with `bug`.
    fn fixed_file_with(bug: Option<Bug>) -> Vec<u8> {
        let mut w = start(&fixed(), vec![block("pc.ram", 4), block("vga", 2)])
            .unwrap()
            .with_hooks(BugHooks(bug));
        w.begin_iteration().unwrap();
        w.save_page(0, 1, &page(0x11)).unwrap();
        w.save_page(0, 2, &page(0x33)).unwrap();
        w.save_page(1, 0, &page(0x22)).unwrap();
        w.end_iteration().unwrap();
        w.begin_completion().unwrap();
        w.save_page(0, 2, &vec![0; PAGE]).unwrap();
        w.finish(&[]).unwrap().0
    }

    fn bitmap_byte(file: &[u8], info: &StreamInfo, b: usize) -> u8 {
        file[info.blocks[b].fixed_ram.as_ref().unwrap().bitmap_offset as usize]
    }

    #[test]
    fn writer_without_injected_bug_writes_the_documented_layout() {
        let file = fixed_file_with(None);
        let info = reader::inspect(&file).unwrap();
        let fr = |b: usize| info.blocks[b].fixed_ram.clone().unwrap();
        assert_eq!(page_at(&file, fr(0).pages_offset + 4096), page(0x11));
        assert_eq!(page_at(&file, fr(1).pages_offset), page(0x22));
        assert_eq!(
            bitmap_byte(&file, &info, 0),
            0b0000_0010,
            "p1 set, p2 cleared"
        );
        assert_eq!(bitmap_byte(&file, &info, 1), 0b0000_0001);
    }

    #[test]
    fn bug_off_by_one_later_block_shifts_only_later_blocks() {
        let file = fixed_file_with(Some(Bug::OffByOneLaterBlock));
        let info = reader::inspect(&file).unwrap();
        let fr = |b: usize| info.blocks[b].fixed_ram.clone().unwrap();
        assert_eq!(
            page_at(&file, fr(0).pages_offset + 4096),
            page(0x11),
            "block 0 is not shifted"
        );
        assert_eq!(
            page_at(&file, fr(1).pages_offset + 4096),
            page(0x22),
            "block 1 page 0 lands in slot 1"
        );
        assert_ne!(page_at(&file, fr(1).pages_offset), page(0x22));
    }

    #[test]
    fn bug_zero_page_keeps_bit_keeps_only_bits_already_set() {
        let file = fixed_file_with(Some(Bug::ZeroPageKeepsBit));
        let info = reader::inspect(&file).unwrap();
        assert_eq!(
            bitmap_byte(&file, &info, 0),
            0b0000_0110,
            "zeroed p2 keeps its bit"
        );
        // A page that is zero the first time it is sent gets no bit.
        let mut w = start(&fixed(), vec![block("pc.ram", 4)])
            .unwrap()
            .with_hooks(BugHooks(Some(Bug::ZeroPageKeepsBit)));
        w.begin_completion().unwrap();
        w.save_page(0, 3, &vec![0; PAGE]).unwrap();
        let file = w.finish(&[]).unwrap().0;
        let info = reader::inspect(&file).unwrap();
        assert_eq!(bitmap_byte(&file, &info, 0), 0);
    }

    #[test]
    fn bug_bitmap_wrong_bit_order_writes_msb_first() {
        let file = fixed_file_with(Some(Bug::BitmapWrongBitOrder));
        let info = reader::inspect(&file).unwrap();
        assert_eq!(bitmap_byte(&file, &info, 0), 0b0100_0000);
        assert_eq!(bitmap_byte(&file, &info, 1), 0b1000_0000);
    }

    #[test]
    fn bug_reader_skips_clear_bits_leaves_stale_destination_pages() {
        let file = fixed_file_with(None);
        let blocks = vec![block("pc.ram", 4), block("vga", 2)];
        for (bug, stale) in [(None, false), (Some(Bug::ReaderSkipsClearBits), true)] {
            let mut dest = Destination::new(&blocks, true);
            let opts = LoadOptions {
                clear_bit_pages: clear_bit_pages(bug),
                ..load_opts(fixed())
            };
            reader::load(&file, &opts, &mut dest).unwrap();
            assert_eq!(dest.page(0, 1), page(0x11));
            let garbage = vec![GARBAGE; PAGE];
            let zero = vec![0; PAGE];
            for (b, p) in [(0, 0), (0, 2), (0, 3), (1, 1)] {
                let want = if stale { &garbage } else { &zero };
                assert_eq!(
                    dest.page(b, p),
                    want.as_slice(),
                    "{bug:?} block {b} page {p}"
                );
            }
        }
    }
}
