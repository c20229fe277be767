//! Deterministic concurrency: QEMU 10's pre-copy iteration structure with
//! multifd channels, vCPUs writing while pages are copied, and a
//! destination loading with receive channels, all interleaved step by step
//! by a seeded [`Scheduler`].
//!
//! A scenario with a `[concurrency]` table runs here instead of the simple
//! driver ([`crate::sim::precopy`]). Each writer gets its own run of the
//! model (same seeds): the fixed-ram writer through `channels` multifd
//! send channels when `multifd` is among the capabilities, the sequential
//! writer inline on the migration thread (QEMU needs mapped-ram for
//! multifd on a file). The model follows QEMU 10.0's functions, named in
//! [`source`] and [`dest`]; what it records ([`Events`]) is judged by the
//! invariants in [`judge`].

pub mod dest;
pub mod judge;
pub mod run;
pub mod scheduler;
pub mod source;

use serde::{Deserialize, Serialize};

pub use scheduler::{Actor, Scheduler};

/// Where all-zero pages are found (QEMU's `zero-page-detection`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ZeroPageDetection {
    /// Not at all: every page is written as data.
    None,
    /// By the migration thread, before a page is queued (`save_zero_page`).
    Legacy,
    /// By the send channels (`multifd_send_zero_page_detect`), QEMU's
    /// default; without multifd it acts as `legacy`.
    #[default]
    Multifd,
}

impl ZeroPageDetection {
    /// The name, as in a scenario.
    pub fn name(self) -> &'static str {
        match self {
            ZeroPageDetection::None => "none",
            ZeroPageDetection::Legacy => "legacy",
            ZeroPageDetection::Multifd => "multifd",
        }
    }
}

/// QEMU's multifd packet: 512 KiB of 4 KiB pages (`multifd_ram_page_count`).
pub const QEMU_PACKET_PAGES: u32 = 128;

/// The `[concurrency]` table of a scenario.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConcurrencySpec {
    /// vCPUs sharing the workload's writes (each with its own stream).
    #[serde(default = "one")]
    pub vcpus: u32,
    /// Source multifd send channels (`multifd-channels`); needs `multifd`
    /// in `migration.capabilities`, and 0 without it.
    #[serde(default)]
    pub channels: u32,
    /// Destination receive channels; absent = `channels`.
    #[serde(default)]
    pub dest_channels: Option<u32>,
    /// Where zero pages are found.
    #[serde(default)]
    pub zero_page_detection: ZeroPageDetection,
    /// Pages per multifd packet (QEMU: 128).
    #[serde(default = "packet_pages")]
    pub packet_pages: u32,
    /// The vCPUs write only during the first this many ticks (absent: all
    /// the time until switchover).
    #[serde(default)]
    pub guest_ticks: Option<u64>,
    /// The interleaving: the scheduler's seed (absent: derived from the
    /// scenario seed). Changing it changes the order of steps, not the
    /// workload.
    #[serde(default)]
    pub schedule_seed: Option<u64>,
}

fn one() -> u32 {
    1
}
fn packet_pages() -> u32 {
    QEMU_PACKET_PAGES
}

/// Most channels or vCPUs a scenario may ask for.
pub const MAX_ACTORS: u32 = 16;

impl ConcurrencySpec {
    /// Check ranges; `multifd` says whether the capability is on.
    pub fn validate(&self, multifd: bool) -> Result<(), String> {
        if self.vcpus == 0 || self.vcpus > MAX_ACTORS {
            return Err(format!(
                "concurrency.vcpus = {} must be 1..={MAX_ACTORS}",
                self.vcpus
            ));
        }
        if self.channels > MAX_ACTORS || self.dest_channels.unwrap_or(0) > MAX_ACTORS {
            return Err(format!(
                "concurrency.channels and dest_channels must be at most {MAX_ACTORS}"
            ));
        }
        if self.packet_pages == 0 || self.packet_pages > 1024 {
            return Err(format!(
                "concurrency.packet_pages = {} must be 1..=1024",
                self.packet_pages
            ));
        }
        match (multifd, self.channels) {
            (true, 0) => Err(
                "migration.capabilities has \"multifd\": concurrency.channels must be at least 1"
                    .into(),
            ),
            (false, n) if n > 0 => Err(format!(
                "concurrency.channels = {n} needs \"multifd\" in migration.capabilities"
            )),
            _ => Ok(()),
        }
    }

    /// Receive channels on the destination.
    pub fn dest_channels(&self) -> u32 {
        self.dest_channels.unwrap_or(self.channels)
    }

    /// The scheduler's seed for scenario seed `seed`.
    pub fn schedule_seed(&self, seed: u64) -> u64 {
        self.schedule_seed
            .unwrap_or_else(|| crate::sim::rng::derive(seed, "interleaving"))
    }
}

/// A page write that landed in the file: which pages, when each was read
/// (a page is read in two halves, so a vCPU write between them tears it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageWrite {
    /// Block.
    pub block: u32,
    /// First page of the run.
    pub first: u64,
    /// Per page: (step its first half was read, version of the first half,
    /// version of the second half).
    pub reads: Vec<(u64, u32, u32)>,
    /// Step the write landed.
    pub landed: u64,
    /// Who wrote it.
    pub by: Actor,
}

/// A bitmap bit set or cleared for one send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BitOp {
    /// Block.
    pub block: u32,
    /// Page.
    pub page: u64,
    /// Set (data) or cleared (zero).
    pub set: bool,
    /// Step.
    pub at: u64,
}

/// A page the migration thread took from the dirty bitmap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Queued {
    /// Order of queuing (the send's sequence number).
    pub seq: u64,
    /// Block.
    pub block: u32,
    /// Page.
    pub page: u64,
    /// Step.
    pub at: u64,
    /// Whether it was found zero (by the migration thread or a channel).
    pub zero: bool,
}

/// What one model run recorded, for the invariants.
#[derive(Clone, Debug, Default)]
pub struct Events {
    /// Page writes, in landing order.
    pub writes: Vec<PageWrite>,
    /// Bitmap operations, in order.
    pub bit_ops: Vec<BitOp>,
    /// Pages taken from the dirty bitmap, in order.
    pub queued: Vec<Queued>,
    /// Step the file bitmaps were written (`ram_save_file_bmap`).
    pub bitmap_written: Option<u64>,
    /// The bitmap bytes written, per block, as bits.
    pub bitmap: Vec<migsim_format::bitmap::PageBitmap>,
    /// Bit operations on the freed file bitmap (a NULL dereference in
    /// QEMU): (block, page, step, who).
    pub freed_bitmap_ops: Vec<(u32, u64, u64, Actor)>,
    /// Dirty syncs, with the step of each.
    pub syncs: Vec<u64>,
    /// Whether the model used multifd channels.
    pub multifd: bool,
}
