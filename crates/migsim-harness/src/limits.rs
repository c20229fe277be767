//! Every resource a scenario or a flag can ask for, and its limit. Each is
//! checked before any work starts ([`Scenario::validate`] for what the
//! scenario alone decides, [`check_run`] for what also depends on where
//! the files go), and a refusal names the limit.
//! `docs/reference/limits.md` lists them with the reasons.

use crate::pipeline::options::RunOptions;
use crate::scenario::Scenario;
use migsim_format::Layout;

/// A scenario file's size.
pub const MAX_SCENARIO_BYTES: u64 = 4 << 20;
/// Guest RAM in all, and any one block (the guest and the oracle keep 8
/// bytes a page each: 256 GiB costs about 1 GiB), for the guest's and the
/// destination's blocks alike.
pub const MAX_GUEST_RAM: u64 = 256 << 30;
/// Guest RAM in all in the extent mode ([`crate::sim::extent`]): nothing
/// is kept per page but the fixed-ram bitmaps (1 bit a page, real bytes,
/// up to three copies while they are written and read back: 3 GiB at the
/// limit).
pub const MAX_EXTENT_GUEST_RAM: u64 = 32 << 40;
/// Distinct pages the guest may re-dirty in the extent mode, checked as
/// the run goes (the workload decides, not the scenario alone): about 400
/// bytes each over the guest, the dirty set, the file and the logs, so
/// about 6.5 GiB at the limit. The 24 TiB scenario re-dirties 3.2 million.
pub const MAX_EXTENT_EXCEPTIONS: u64 = 1 << 24;
/// Hot-set pages in the extent mode (the workload lists them: 8 bytes
/// each, 128 MiB at the limit).
pub const MAX_EXTENT_HOT_PAGES: u64 = 1 << 24;

/// The guest RAM limit for `s`: [`MAX_EXTENT_GUEST_RAM`] in the extent
/// mode, [`MAX_GUEST_RAM`] otherwise.
pub fn max_guest_ram(s: &Scenario) -> u64 {
    if s.guest.extents {
        MAX_EXTENT_GUEST_RAM
    } else {
        MAX_GUEST_RAM
    }
}

/// The refusal of `total` bytes of RAM in `field` over `limit`.
pub fn guest_ram_refusal(field: &str, total: u64, limit: u64) -> String {
    if limit == MAX_GUEST_RAM {
        format!(
            "{field}: {total} bytes or more of RAM exceeds the simulator's limit of \
             {MAX_GUEST_RAM} bytes (256 GiB; the byte-level path keeps 8 bytes a page: \
             set [guest] extents = true or pass --extents for larger guests)"
        )
    } else {
        format!(
            "{field}: {total} bytes or more of RAM exceeds the extent mode's limit of \
             {limit} bytes ({} TiB)",
            limit >> 40
        )
    }
}

/// What the extent mode refuses: another writer than fixed-ram, a
/// partial initial fill, a hot set too large to list.
pub fn check_extents(s: &Scenario) -> Result<(), String> {
    if s.migration.writers != [Layout::FixedRam] {
        return Err(
            "guest.extents: the extent mode runs the fixed-ram writer only \
             (migration.writers = [\"fixed-ram\"]): a sequential file holds every page's bytes"
                .into(),
        );
    }
    let fill = s.guest.initial_fill;
    if fill != 0.0 && fill != 1.0 {
        return Err(format!(
            "guest.initial_fill = {fill}: the extent mode needs 0 or 1 (a partly filled guest \
             is not one extent a block)"
        ));
    }
    if s.workload.kind == crate::sim::workload::WorkloadKind::HotSet {
        let pages = bounds(s).pages;
        let hot = (pages as f64 * s.workload.hot_fraction).ceil() as u64;
        if hot > MAX_EXTENT_HOT_PAGES {
            return Err(format!(
                "workload.hot_fraction = {} makes a hot set of {hot} pages; the extent mode \
                 lists at most {MAX_EXTENT_HOT_PAGES} (lower hot_fraction)",
                s.workload.hot_fraction
            ));
        }
    }
    Ok(())
}

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
    if s.guest.extents {
        check_extents(s)?;
    }
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
    // The extent mode logs sends as runs, not pages.
    if b.sends > MAX_SENDS && !s.guest.extents {
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
    if s.guest.extents {
        let flag = [
            (o.file_dir.is_some(), "--file-dir"),
            (o.direct_io, "--direct-io"),
            (
                o.durability != migsim_format::Durability::QemuCompatible,
                "--durable",
            ),
            (o.integrity, "--integrity"),
            (o.io_fault.is_some(), "--fail-write"),
            (o.journal, "the fault model's journal"),
        ]
        .into_iter()
        .find_map(|(on, name)| on.then_some(name));
        if let Some(name) = flag {
            return Err(format!(
                "{name} needs the files' bytes; the extent mode keeps page identities \
                 (its file is in memory, its size grows with the pages re-dirtied)"
            ));
        }
        return Ok(());
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
    if s.guest.extents {
        return Err(
            "`faults` replays every write's bytes; the extent mode keeps page identities".into(),
        );
    }
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
