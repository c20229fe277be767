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

    /// Kebab-case name, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Bug::OffByOneLaterBlock => "off-by-one-later-block",
            Bug::DirtyClearedAfterPass => "dirty-cleared-after-pass",
            Bug::ZeroPageKeepsBit => "zero-page-keeps-bit",
            Bug::BitmapWrongBitOrder => "bitmap-wrong-bit-order",
            Bug::ReaderSkipsClearBits => "reader-skips-clear-bits",
            Bug::SkipFinalSync => "skip-final-sync",
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
        Bug::ALL.into_iter().find(|b| b.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Bug::ALL.iter().map(|b| b.name()).collect();
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
        } else {
            page
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
}

/// The load option an injected variant selects.
pub fn clear_bit_pages(bug: Option<Bug>) -> ClearBitPages {
    if active(bug, Bug::ReaderSkipsClearBits) {
        ClearBitPages::Untouched
    } else {
        ClearBitPages::Zero
    }
}
