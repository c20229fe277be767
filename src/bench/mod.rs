//! `migsim bench`: measures, in one run on one machine, migsim against the
//! physical limits and against QEMU, and reports medians and ratios.
//!
//! * **sim**: a whole simulated migration (guest, fixed-ram writer, reader,
//!   oracle, digest) of the `big-guest` scenario resized to `size`, files
//!   in memory, in guest GiB/s, against memcpy of the same number of bytes:
//!   a first, cold run (files in fresh memory) against memcpy into fresh
//!   memory, then `reps` runs whose files reuse the previous run's memory
//!   (`sim::pool`) against memcpy into memory already touched.
//! * **save**: the fixed-ram writer saving `size` bytes of prepared
//!   non-zero guest RAM to a real file (buffered, and O_DIRECT), fsync
//!   included, against a plain sequential write of the same number of
//!   bytes with the same flags.
//! * **restore**: the reader loading that file into destination memory
//!   (touched beforehand, as a VMM's RAM would be), buffered and O_DIRECT,
//!   against a plain sequential read of the same bytes with the same
//!   flags; the page cache is dropped first when this process may (root).
//! * **qemu** (when QEMU >= 9 is found): QEMU's own mapped-ram save and
//!   restore of a paused guest with the same RAM size, plain and with 4
//!   multifd channels, against migsim's.
//! * **qemu-fuzz** (when QEMU is found): `migsim qemu fuzz`'s loads per
//!   second, with one QEMU at a time and with one per CPU.
//!
//! Every ratio is migsim's throughput over the reference's: above 1 means
//! migsim is faster. Fields holding ratios have `ratio` in their names.

mod durability;
mod machine;
pub mod qemu;
pub mod qemu_fuzz;
mod report;
mod save_restore;
pub mod sched;
mod sim;

use durability::*;
pub use machine::*;
pub use report::*;
use save_restore::*;
pub use sim::sim_scenario;
use sim::*;

use std::path::PathBuf;

use migsim_format::io::AlignedBuf;

const GIB: f64 = (1u64 << 30) as f64;
const MIB: usize = 1 << 20;
const MACHINE: &str = "pc-i440fx-10.0";

/// `--read-channels` when not given. Measured on a 2-CPU VM (4 GiB,
/// O_DIRECT into fresh memory, reads dealt out 1 MiB at a time): 2
/// threads 1.97-3.30 s, 8 threads 1.40-1.96 s, 16 threads 1.06-1.57 s,
/// against 1.16-1.23 s for a plain read into touched memory.
pub const DEFAULT_READ_CHANNELS: usize = 16;

/// migsim's fixed-ram file of the save part, which the restores read.
fn fixed_ram_path(o: &BenchOptions) -> PathBuf {
    o.dir.join("bench-fixed-ram.mig")
}

/// The scenario the `sim` measurement resizes.
pub const BIG_GUEST: &str = include_str!("../../scenarios/big-guest.toml");

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Guest RAM bytes (a multiple of 1 MiB).
    pub size: u64,
    /// Repetitions of each measurement; medians are reported.
    pub reps: usize,
    /// Directory for the files (must be on a filesystem with O_DIRECT).
    pub dir: PathBuf,
    /// Writer channels for migsim's saves, and its simulation's channels.
    pub channels: usize,
    /// Reader threads for migsim's restores.
    pub read_channels: usize,
    /// Measure QEMU too, when it is found.
    pub qemu: bool,
    /// Which parts to run (empty: all): sim, save, durable, restore, qemu.
    pub only: Vec<String>,
}

/// The parts `--only` names.
pub const PARTS: [&str; 7] = [
    "sim",
    "save",
    "durable",
    "restore",
    "qemu",
    "qemu-fuzz",
    "sched",
];

fn wants(o: &BenchOptions, part: &str) -> bool {
    o.only.is_empty() || o.only.iter().any(|p| p == part)
}

/// Run the benchmark.
pub fn run_bench(o: &BenchOptions, progress: &mut dyn FnMut(&str)) -> Result<BenchReport, String> {
    if o.size == 0 || !o.size.is_multiple_of(MIB as u64) {
        return Err(format!(
            "--size {}: must be a positive multiple of 1 MiB",
            o.size
        ));
    }
    if o.reps == 0 {
        return Err("--reps must be at least 1".into());
    }
    for p in &o.only {
        if !PARTS.contains(&p.as_str()) {
            return Err(format!(
                "--only: unknown part {p:?} (use sim, save, durable, restore, qemu, qemu-fuzz, sched)"
            ));
        }
    }
    std::fs::create_dir_all(&o.dir).map_err(|e| format!("{}: {e}", o.dir.display()))?;
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    progress(&format!(
        "files go to {} (up to about {} MiB there, removed at the end); {}",
        o.dir.display(),
        2 * o.size / MIB as u64,
        if root {
            "the page cache is dropped (sync; echo 3 > /proc/sys/vm/drop_caches) before every read, for the whole machine"
        } else {
            "not root: the page cache cannot be dropped, reads may come from memory"
        }
    ));
    let mut r = BenchReport {
        version: env!("CARGO_PKG_VERSION"),
        machine: machine_info(&o.dir),
        size: o.size,
        reps: o.reps,
        channels: o.channels,
        read_channels: o.read_channels,
        memcpy_hot: None,
        memcpy_fresh: None,
        sim: None,
        sim_vs_memcpy_ratio: None,
        sim_vs_fresh_memcpy_ratio: None,
        save: Vec::new(),
        durability: None,
        restore: Vec::new(),
        qemu: Vec::new(),
        qemu_skipped: None,
        qemu_fuzz: None,
        sched: None,
        targets: Vec::new(),
    };
    if wants(o, "sim") {
        let hot = memcpy_hot(o.size, o.reps)?;
        let fresh = memcpy_fresh(o.size, o.reps)?;
        progress(&format!(
            "memcpy: {:.2} GiB/s into touched memory, {:.2} GiB/s into fresh memory",
            hot.gib_s, fresh.gib_s
        ));
        let s = sim(o, progress)?;
        r.sim_vs_memcpy_ratio = Some(s.run.gib_s / hot.gib_s);
        r.sim_vs_fresh_memcpy_ratio = Some(s.cold.gib_s / fresh.gib_s);
        r.memcpy_hot = Some(hot);
        r.memcpy_fresh = Some(fresh);
        r.sim = Some(s);
    }
    if wants(o, "durable") {
        let mut ram = AlignedBuf::zeroed(o.size as usize);
        fill_ram(&mut ram);
        r.durability = Some(durability(o, &ram, progress)?);
    }
    let need_file = wants(o, "save") || wants(o, "restore") || wants(o, "qemu");
    if need_file {
        let mut ram = AlignedBuf::zeroed(o.size as usize);
        fill_ram(&mut ram);
        // Restore and QEMU need the file; without "save" one mode will do.
        let modes: &[bool] = if wants(o, "save") {
            &[false, true]
        } else {
            &[false]
        };
        for &direct in modes {
            r.save.push(save(o, &ram, direct, progress)?);
        }
        drop(ram);
        if wants(o, "restore") || wants(o, "qemu") {
            let mut dropped = false;
            for direct in [false, true] {
                r.restore.push(restore(o, direct, progress, &mut dropped)?);
            }
            r.machine.page_cache_dropped = dropped;
        }
    }
    if wants(o, "qemu") {
        qemu_part(o, &mut r, progress);
    }
    if wants(o, "qemu-fuzz") && o.qemu {
        match migsim_harness::qemu::find() {
            Ok(q) => {
                r.qemu_fuzz = Some(qemu_fuzz::measure(&q, r.machine.cpus, o.reps, progress)?);
            }
            Err(e) => r.qemu_skipped = Some(e),
        }
    }
    if wants(o, "sched") {
        r.sched = Some(sched::measure(o.reps, progress)?);
    }
    let _ = std::fs::remove_file(fixed_ram_path(o));
    r.targets = targets(&r);
    Ok(r)
}

fn qemu_part(o: &BenchOptions, r: &mut BenchReport, progress: &mut dyn FnMut(&str)) {
    if !o.qemu {
        r.qemu_skipped = Some("--no-qemu".into());
        return;
    }
    let q = match migsim_harness::qemu::find() {
        Ok(q) => q,
        Err(e) => {
            r.qemu_skipped = Some(e);
            return;
        }
    };
    // Same flags on both sides: QEMU's direct-io case against migsim's
    // O_DIRECT save and restore, the others against buffered ones.
    // migsim's saves are timed until the file is closed, without fsync,
    // as QEMU's (it never fsyncs; its monitor answers once the file is
    // closed). Its restores into fresh memory are measured again here,
    // one beside each of QEMU's: on a VM whose balloon reports free
    // memory to the host, first touch of fresh memory costs 10x more
    // once the host has taken it back, so restores minutes apart do not
    // compare.
    let saved = |direct: bool| {
        let mode = if direct { "O_DIRECT" } else { "buffered" };
        r.save
            .iter()
            .find(|s| s.mode == mode)
            .map(|s| s.fixed_ram_closed.median_s)
    };
    if saved(false).is_none() {
        r.qemu_skipped = Some("migsim's save was not measured".into());
        return;
    }
    for case in [
        qemu::QemuCase {
            multifd_channels: None,
            direct_io: false,
        },
        qemu::QemuCase {
            multifd_channels: Some(4),
            direct_io: false,
        },
        qemu::QemuCase {
            multifd_channels: Some(4),
            direct_io: true,
        },
    ]
    .into_iter()
    .chain(
        // QEMU with as many channels as migsim has reader threads: the
        // same reads in flight on both sides.
        [false, true]
            .into_iter()
            .filter(|_| o.read_channels != 4)
            .map(|direct_io| qemu::QemuCase {
                multifd_channels: Some(o.read_channels as u32),
                direct_io,
            }),
    ) {
        // Without an O_DIRECT save (`--only qemu`) the buffered one stands
        // in for the save; the restore always has the case's flags (the
        // file's bytes are the same however it was written).
        let Some(migsim_save) = saved(case.direct_io).or(saved(false)) else {
            continue;
        };
        let restorer = match Restorer::new(o, case.direct_io) {
            Ok(x) => x,
            Err(e) => {
                r.qemu_skipped = Some(format!("migsim's restore: {e}"));
                return;
            }
        };
        let mut paired = Vec::with_capacity(o.reps);
        let mut beside = || -> Result<f64, String> {
            let (secs, _) = restorer.load_fresh_memory()?;
            paired.push(secs);
            Ok(secs)
        };
        let measured = qemu::measure(
            &q,
            o.size,
            &o.dir,
            &case,
            o.reps,
            Some(&mut beside),
            progress,
        );
        match measured {
            Ok(f) => {
                let migsim_restore = Timing::new(o.size, paired);
                r.qemu.push(QemuComparison {
                    migsim_vs_qemu_save_ratio: f.save_median_s / migsim_save,
                    migsim_vs_qemu_restore_ratio: f.restore_median_s / migsim_restore.median_s,
                    migsim_restore_paired: migsim_restore,
                    qemu: f,
                })
            }
            Err(e) => {
                r.qemu_skipped = Some(format!("QEMU {}: {e}", q.version));
                return;
            }
        }
    }
}
