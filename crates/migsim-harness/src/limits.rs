//! Every resource a scenario or a flag can ask for, and its limit. Each is
//! checked before any work starts ([`Scenario::validate`] for what the
//! scenario alone decides, [`check_run`] for what also depends on where
//! the files go), and a refusal names the limit. The README's "Limits"
//! section lists them with the reasons.

use crate::run::RunOptions;
use crate::scenario::Scenario;
use migsim_format::Layout;

/// A scenario file's size.
pub const MAX_SCENARIO_BYTES: u64 = 4 << 20;
/// Guest RAM in all, and any one block (the guest and the oracle keep 8
/// bytes a page each: 256 GiB costs about 1 GiB), for the guest's and the
/// destination's blocks alike.
pub const MAX_GUEST_RAM: u64 = 256 << 30;
/// RAMBlocks in a guest or a destination (real guests have tens; 100,000
/// one-page blocks run in about 5 s).
pub const MAX_BLOCKS: usize = 65_536;
/// `parameters.max_passes`.
pub const MAX_PASSES: u32 = 1000;
/// Guest writes a run may make at most (`writes_per_tick` times the ticks
/// of `max_passes` passes): about 25 ns each here, so half a minute.
pub const MAX_GUEST_WRITES: u64 = 1 << 30;
/// Page sends the oracle may have to log (24 bytes each): every page in
/// every allowed pass plus the final one.
pub const MAX_SENDS: u64 = 1 << 29;
/// Bytes the files of a run may take in memory at most (without
/// `--file-dir`), counted from their largest possible size: the
/// sequential file grows with every pass, the fixed-ram one is bounded by
/// its layout.
pub const MAX_MEMORY_FILES: u64 = 8 << 30;
/// Writer and reader channels (`--channels`).
pub const MAX_CHANNELS: usize = 64;

const PAGE: u64 = 4096;
/// A sequential PAGE record at most: the 8-byte word, a 256-byte idstr,
/// the page.
const RECORD_MAX: u64 = 8 + 256 + PAGE;

/// Upper bounds of a run's work, computed from the scenario alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// Guest pages.
    pub pages: u64,
    /// Page sends, at most.
    pub sends: u64,
    /// Guest writes, at most.
    pub guest_writes: u64,
    /// Bytes of the sequential file, at most (0 without that writer).
    pub sequential_bytes: u64,
    /// Bytes of the fixed-ram file, at most (0 without that writer).
    pub fixed_ram_bytes: u64,
}

/// The bounds of `s` (its sizes already validated).
pub fn bounds(s: &Scenario) -> Bounds {
    let pages: u64 = s.guest.blocks.iter().map(|b| b.size.0 / PAGE).sum();
    let passes = u64::from(s.parameters.max_passes);
    let (sends, ticks) = if s.concurrency.is_some() {
        // The QEMU driver: at most `bandwidth` pages a tick, then a final
        // walk over every page; completion forced after max_ticks.
        let ticks = crate::sched::source::max_ticks(&s.parameters, pages.max(1));
        let sends = ticks
            .saturating_mul(s.parameters.bandwidth)
            .saturating_add(pages);
        (sends, ticks)
    } else {
        let ticks = passes.saturating_mul(pages.div_ceil(s.parameters.bandwidth.max(1)));
        (pages.saturating_mul(passes + 1), ticks)
    };
    let guest_writes = s.workload.writes_per_tick.saturating_mul(ticks);
    let has = |l| s.migration.writers.contains(&l);
    // Headers, sections and device state are a few KiB a block at most.
    let overhead = (s.guest.blocks.len() as u64 + passes + 16) * 4096;
    let sequential_bytes = if has(Layout::Sequential) {
        sends.saturating_mul(RECORD_MAX).saturating_add(overhead)
    } else {
        0
    };
    // Each block's page area is 1 MiB-aligned after its header and bitmap.
    let fixed_ram_bytes = if has(Layout::FixedRam) {
        s.guest
            .blocks
            .iter()
            .map(|b| b.size.0 + (2 << 20))
            .sum::<u64>()
            .saturating_add(overhead)
    } else {
        0
    };
    Bounds {
        pages,
        sends,
        guest_writes,
        sequential_bytes,
        fixed_ram_bytes,
    }
}

/// Refuse a scenario whose work exceeds the limits (`Err` names the limit
/// and what to change).
pub fn check_scenario(s: &Scenario) -> Result<(), String> {
    let b = bounds(s);
    if b.guest_writes > MAX_GUEST_WRITES {
        return Err(format!(
            "workload.writes_per_tick = {} over up to {} passes could make {} guest writes; \
             the limit is {MAX_GUEST_WRITES} (lower writes_per_tick or max_passes)",
            s.workload.writes_per_tick, s.parameters.max_passes, b.guest_writes
        ));
    }
    if s.concurrency.is_some() {
        // Each send takes a few steps (queue, detect, bitmap, two half
        // reads, the write), each guest write one.
        let steps = b.sends.saturating_mul(6).saturating_add(b.guest_writes);
        if steps > crate::sched::source::MAX_STEPS {
            return Err(format!(
                "[concurrency]: {} page sends and {} guest writes could take {steps} scheduler \
                 steps; the limit is {} (lower the guest's size, writes_per_tick or max_passes)",
                b.sends,
                b.guest_writes,
                crate::sched::source::MAX_STEPS
            ));
        }
    }
    if b.sends > MAX_SENDS {
        return Err(format!(
            "{} guest pages over up to {} passes could mean {} page sends; the oracle logs at \
             most {MAX_SENDS} (lower max_passes or the guest's size)",
            b.pages,
            s.parameters.max_passes + 1,
            b.sends
        ));
    }
    Ok(())
}

/// Refuse a run whose files would not fit the in-memory budget, and
/// channel counts past the limit.
pub fn check_run(s: &Scenario, o: &RunOptions) -> Result<(), String> {
    check_scenario(s)?;
    if o.channels > MAX_CHANNELS {
        return Err(format!("--channels {}: at most {MAX_CHANNELS}", o.channels));
    }
    if o.file_dir.is_none() {
        let b = bounds(s);
        let total = b.sequential_bytes.saturating_add(b.fixed_ram_bytes);
        if total > MAX_MEMORY_FILES {
            return Err(format!(
                "the files of this run could take {:.1} GiB (sequential up to {:.1} GiB over {} passes, \
                 fixed-ram up to {:.1} GiB); files in memory are limited to {} GiB: \
                 use --file-dir DIR, or lower max_passes or the guest's size",
                gib(total),
                gib(b.sequential_bytes),
                s.parameters.max_passes + 1,
                gib(b.fixed_ram_bytes),
                MAX_MEMORY_FILES >> 30
            ));
        }
    }
    Ok(())
}

/// Guest RAM `migsim faults` takes: it keeps every write's bytes (the
/// journal) and builds a disk image per crash in memory.
pub const MAX_FAULTS_RAM: u64 = 1 << 30;

/// Refuse a `faults` run whose journals would not fit: [`check_run`] for
/// files in memory, and guest RAM within [`MAX_FAULTS_RAM`].
pub fn check_faults(s: &Scenario) -> Result<(), String> {
    check_run(s, &RunOptions::default())?;
    let ram: u64 = s.blocks().iter().map(|b| b.used_length).sum();
    if ram > MAX_FAULTS_RAM {
        return Err(format!(
            "guest RAM is {:.2} GiB; `faults` keeps every write's bytes and one disk image per              crash in memory, so it takes at most {} GiB of guest RAM",
            gib(ram),
            MAX_FAULTS_RAM >> 30
        ));
    }
    Ok(())
}

fn gib(b: u64) -> f64 {
    b as f64 / (1u64 << 30) as f64
}
