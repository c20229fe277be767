//! The guest program migsim boots in QEMU (`guest/`, built for
//! `x86_64-unknown-none`; the binary is committed as
//! `guest/migsim-guest.elf` and embedded here) and the parameter page that
//! tells it what to do, made from a scenario.
//!
//! The guest writes pc.ram pages with exactly the bytes
//! [`crate::sim::content::fill_page`] gives, so any page of a restore can
//! be named with [`crate::sim::content::identify`]. It works on one
//! region of pc.ram, the *work region*: from [`WORK_FROM`] (its program,
//! stack, page tables, parameter page, version counters and hot set lie
//! below) to the end of RAM below 4 GiB, capped at [`LOW_RAM_MAX`]; its
//! GPA is its pc.ram offset there. The parameter page's byte layout is in
//! `guest/src/main.rs`; [`GuestParams::encode`] writes it.

use crate::scenario::Scenario;
use crate::sim::workload::{WorkloadKind, WorkloadSpec};

/// The guest program (a PVH ELF for `-kernel`).
pub const GUEST_ELF: &[u8] = include_bytes!("../../../../guest/migsim-guest.elf");

/// Where the parameter page is loaded (`-device loader`).
pub const PARAMS_GPA: u64 = 0x1F_0000;
/// Where the guest keeps its per-page version counters.
const VERSIONS_GPA: u64 = 0x20_0000;
/// The work region never starts below this.
pub const WORK_FROM: u64 = 0x40_0000;
/// RAM below 4 GiB the guest uses at most (q35 maps only 2 GiB low).
pub const LOW_RAM_MAX: u64 = 2 << 30;

/// What the guest does, as the parameter page says it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct GuestParams {
    /// Workload kind.
    pub kind: WorkloadKind,
    /// Content seed (the scenario's seed).
    pub seed: u64,
    /// The guest's own stream (derived from the seed).
    pub workload_seed: u64,
    /// Block index written in page headers (pc.ram's in the scenario).
    pub block: u32,
    /// First pc.ram page of the work region.
    pub first_page: u64,
    /// Pages in the work region.
    pub pages: u64,
    /// Writes per tick.
    pub writes_per_tick: u64,
    /// Hot-set pages (hot-set only).
    pub hot_pages: u64,
    /// Shares, from the scenario.
    pub hot_share: f64,
    /// Share of zero writes.
    pub zero_share: f64,
    /// Share of pages written once before the workload starts.
    pub initial_fill: f64,
    /// TSC cycles per tick (0: as fast as the vCPU runs).
    pub tsc_per_tick: u64,
}

/// A share as the guest compares it: a draw below `share × 2^64`.
fn threshold(share: f64) -> u64 {
    if share >= 1.0 {
        u64::MAX
    } else {
        (share.max(0.0) * 18_446_744_073_709_551_616.0) as u64
    }
}

impl GuestParams {
    /// The guest for `s`: its workload on pc.ram's work region, paced at
    /// `tsc_per_tick`.
    pub fn for_scenario(s: &Scenario, tsc_per_tick: u64) -> Result<GuestParams, String> {
        let blocks = s.blocks();
        let block = blocks
            .iter()
            .position(|b| b.name == "pc.ram")
            .ok_or_else(|| {
                format!(
                    "scenario {}: no pc.ram block for the guest to dirty",
                    s.name
                )
            })?;
        let low = blocks[block].used_length.min(LOW_RAM_MAX);
        let total = low / 4096;
        // Versions (u32 a page) and hot set (u64 a page) below the region.
        let w: &WorkloadSpec = &s.workload;
        let layout = |first: u64| {
            let pages = total.saturating_sub(first);
            let hot = if w.kind == WorkloadKind::HotSet {
                ((pages as f64 * w.hot_fraction).ceil() as u64).clamp(1, pages.max(1))
            } else {
                0
            };
            (pages, hot, VERSIONS_GPA + pages * 4 + hot * 8)
        };
        // The region starts at the first 2 MiB boundary past its own
        // bookkeeping (which shrinks as the region does: iterate).
        let mut first = WORK_FROM / 4096;
        loop {
            let (_, _, end) = layout(first);
            let need = end.div_ceil(2 << 20) * (2 << 20) / 4096;
            if need <= first {
                break;
            }
            first = need;
        }
        let (pages, hot_pages, _) = layout(first);
        if pages < 16 {
            return Err(format!(
                "scenario {}: pc.ram of {} bytes leaves the guest {pages} pages to dirty \
                 (it needs pc.ram above {:#x}; give it at least 8 MiB)",
                s.name, blocks[block].used_length, WORK_FROM
            ));
        }
        Ok(GuestParams {
            kind: w.kind,
            seed: s.seed,
            workload_seed: crate::sim::rng::derive(s.seed, "qemu-guest"),
            block: block as u32,
            first_page: first,
            pages,
            writes_per_tick: w.writes_per_tick,
            hot_pages,
            hot_share: w.hot_share,
            zero_share: w.zero_share,
            initial_fill: s.guest.initial_fill,
            tsc_per_tick,
        })
    }

    /// The parameter page (layout: `guest/src/main.rs`).
    pub fn encode(&self) -> Vec<u8> {
        let mut p = vec![0u8; 4096];
        let kind: u32 = match self.kind {
            WorkloadKind::Idle => 0,
            WorkloadKind::Uniform => 1,
            WorkloadKind::HotSet => 2,
            WorkloadKind::Sweep => 3,
        };
        let mut put = |off: usize, v: u64| p[off..off + 8].copy_from_slice(&v.to_le_bytes());
        put(0, u64::from_le_bytes(*b"MIGSIMGP"));
        put(8, 1 | (u64::from(kind) << 32));
        put(16, self.seed);
        put(24, self.workload_seed);
        put(32, u64::from(self.block));
        put(40, self.first_page);
        put(48, self.pages);
        put(56, self.writes_per_tick);
        put(64, self.hot_pages);
        put(72, threshold(self.hot_share));
        put(80, threshold(self.zero_share));
        put(88, threshold(self.initial_fill));
        put(96, self.tsc_per_tick);
        put(104, VERSIONS_GPA);
        put(112, VERSIONS_GPA + self.pages * 4);
        p
    }
}

/// What the guest reports in its parameter page.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct GuestStatus {
    /// 0 not started, 1 initial fill, 2 workload running, 0xBAD refused.
    pub status: u64,
    /// Ticks done.
    pub ticks: u64,
    /// Workload writes done.
    pub writes: u64,
    /// Zero writes among them.
    pub zero_writes: u64,
    /// TSC when the workload started, and at the last tick.
    pub tsc_start: u64,
    /// TSC at the last tick.
    pub tsc_now: u64,
}

impl GuestStatus {
    /// Read it from the parameter page's bytes.
    pub fn parse(page: &[u8]) -> GuestStatus {
        let at = |off: usize| {
            page.get(off..off + 8)
                .map_or(0, |b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
        };
        GuestStatus {
            status: at(512),
            ticks: at(520),
            writes: at(528),
            zero_writes: at(536),
            tsc_start: at(544),
            tsc_now: at(552),
        }
    }
}

/// Cycles of this host's TSC per second, measured over `ms` milliseconds
/// (the guest's TSC runs at the host's under TCG and KVM).
pub fn tsc_hz(ms: u64) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: rdtsc has no preconditions.
        let t0 = unsafe { core::arch::x86_64::_rdtsc() };
        let w0 = std::time::Instant::now();
        std::thread::sleep(std::time::Duration::from_millis(ms));
        // SAFETY: as above.
        let t1 = unsafe { core::arch::x86_64::_rdtsc() };
        (t1.wrapping_sub(t0) as f64 / w0.elapsed().as_secs_f64()) as u64
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = ms;
        0
    }
}
