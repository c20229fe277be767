//! Deliberately wrong variants of the writers, the reader and the driver,
//! to prove the harness catches real bug classes (`explore` must find each
//! one within a bounded number of seeds).
//!
//! The switches only exist in builds with the `bug-variants` feature (the
//! test builds enable it through a dev-dependency on this crate); in a
//! normal build [`active`] is constant `false` and the hooks vanish.

use serde::{Deserialize, Serialize};

/// A known-wrong behaviour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
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
}

/// Whether this build can inject bugs.
pub const ENABLED: bool = cfg!(feature = "bug-variants");

/// Whether `bug` is the injected one. Constant `false` without the feature.
#[inline]
pub fn active(injected: Option<Bug>, bug: Bug) -> bool {
    ENABLED && injected == Some(bug)
}
