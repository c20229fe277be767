//! What `migsim bench` reports: timings with their samples, the figures
//! of each part, the targets and whether this run met them.

use serde::Serialize;

use migsim_harness::sim::stages::StageTimes;

use super::*;

/// Samples of one measurement and their median.
#[derive(Clone, Debug, Serialize)]
pub struct Timing {
    /// Bytes moved per sample.
    pub bytes: u64,
    /// Seconds per sample.
    pub seconds: Vec<f64>,
    /// Median seconds.
    pub median_s: f64,
    /// bytes / median, in GiB/s.
    pub gib_s: f64,
}

impl Timing {
    pub(super) fn new(bytes: u64, mut seconds: Vec<f64>) -> Self {
        let mut sorted = seconds.clone();
        sorted.sort_by(f64::total_cmp);
        let median_s = sorted[sorted.len() / 2];
        seconds.shrink_to_fit();
        Self {
            bytes,
            seconds,
            median_s,
            gib_s: bytes as f64 / GIB / median_s,
        }
    }
}

/// The simulation measurement.
#[derive(Clone, Debug, Serialize)]
pub struct SimFigures {
    /// Guest RAM bytes simulated (pc.ram resized, plus the other blocks).
    pub guest_bytes: u64,
    /// Whole runs after a first one (`reps` of them): their in-memory
    /// files reuse the memory the previous run's files gave back
    /// (`migsim_harness::sim::pool`), already touched, so they compare
    /// with memcpy into touched memory.
    pub run: Timing,
    /// The first run, alone (one sample): the pool emptied before it, so
    /// its files are fresh memory, as for a single `migsim run`; it
    /// compares with memcpy into fresh memory.
    pub cold: Timing,
    /// Where the time went in the median run: thread seconds generating
    /// page contents, writing the in-memory file, reading it back,
    /// identifying restored pages, hashing for the digest
    /// (`migsim_harness::sim::stages`); the rest is the driver, the
    /// oracle and allocation.
    pub stages: StageTimes,
    /// The same for the cold run.
    pub cold_stages: StageTimes,
    /// The digest of every repetition (the cold one too) was the same.
    pub digest_stable: bool,
    /// The digest.
    pub digest: String,
}

/// One save measurement (migsim fixed-ram vs a plain write, same flags).
#[derive(Clone, Debug, Serialize)]
pub struct SaveFigures {
    /// "buffered" or "O_DIRECT".
    pub mode: &'static str,
    /// migsim's fixed-ram save until the data is on the device (fsync).
    pub fixed_ram: Timing,
    /// The same save until the file is closed, without fsync: what QEMU's
    /// monitor waits for (QEMU never fsyncs), so what the QEMU comparison
    /// uses.
    pub fixed_ram_closed: Timing,
    /// A plain sequential write of as many bytes (1 MiB writes), fsync
    /// included.
    pub sequential_write: Timing,
    /// The same plain write into a file first sized to its final length
    /// (sparse), as fixed-ram page areas are: on ext4 writing into holes
    /// inside the file costs more than appending, for any writer.
    pub sequential_write_presized: Timing,
    /// fixed_ram throughput / sequential_write throughput.
    pub fixed_ram_vs_sequential_write_ratio: f64,
    /// fixed_ram throughput / sequential_write_presized throughput.
    pub fixed_ram_vs_presized_write_ratio: f64,
}

/// One restore measurement (migsim's reader vs a plain read, same flags).
#[derive(Clone, Debug, Serialize)]
pub struct RestoreFigures {
    /// "buffered" or "O_DIRECT".
    pub mode: &'static str,
    /// migsim's reader restoring the fixed-ram file into touched memory.
    pub fixed_ram: Timing,
    /// The same into freshly allocated memory (first touch included, as
    /// QEMU's destination pays it): what the QEMU comparison uses.
    pub fixed_ram_fresh_memory: Timing,
    /// A plain sequential read of the same file (1 MiB reads).
    pub sequential_read: Timing,
    /// fixed_ram throughput / sequential_read throughput.
    pub restore_vs_sequential_read_ratio: f64,
    /// The restored memory equalled the saved guest RAM.
    pub verified: bool,
}

/// The durable save's cost: migsim's fixed-ram save of the same RAM to a
/// real file (buffered, as QEMU saves by default) in each finishing mode,
/// interleaved in one run.
#[derive(Clone, Debug, Serialize)]
pub struct DurabilityFigures {
    /// QEMU-compatible (no fsync, as QEMU 10), until the file is closed.
    pub qemu_compatible: Timing,
    /// QEMU-compatible, then one fsync of the closed file (what a
    /// management layer must add to make QEMU's file durable).
    pub qemu_compatible_fsync: Timing,
    /// `Durability::Durable` (three fdatasyncs in `finish`), until closed.
    pub durable: Timing,
    /// Durable with the integrity trailer (the file read back for its
    /// CRC-32s), until closed.
    pub durable_integrity: Timing,
    /// durable throughput / qemu_compatible throughput.
    pub durable_vs_qemu_compatible_ratio: f64,
    /// durable throughput / qemu_compatible_fsync throughput.
    pub durable_vs_qemu_compatible_fsync_ratio: f64,
    /// durable_integrity throughput / durable throughput.
    pub integrity_vs_durable_ratio: f64,
}

/// QEMU against migsim for one configuration.
#[derive(Clone, Debug, Serialize)]
pub struct QemuComparison {
    /// QEMU's figures.
    pub qemu: qemu::QemuFigures,
    /// migsim's restore into fresh memory with the same flags (O_DIRECT
    /// for direct-io, else buffered), one beside each of QEMU's restores
    /// (alternately before and after it), so that both meet the machine
    /// in the same state: what the restore ratio compares.
    pub migsim_restore_paired: Timing,
    /// migsim's save time / QEMU's: migsim save throughput over QEMU's.
    pub migsim_vs_qemu_save_ratio: f64,
    /// QEMU's median restore time / migsim's paired median: migsim's
    /// restore throughput over QEMU's.
    pub migsim_vs_qemu_restore_ratio: f64,
}

/// A target from the issue, and whether this run met it.
#[derive(Clone, Debug, Serialize)]
pub struct Target {
    /// What is compared.
    pub name: &'static str,
    /// The ratio field it reads.
    pub ratio: f64,
    /// The goal.
    pub goal: f64,
    /// ratio >= goal.
    pub met: bool,
}

/// Everything `migsim bench` measured.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    /// migsim version.
    pub version: &'static str,
    /// Machine.
    pub machine: MachineInfo,
    /// Guest RAM bytes.
    pub size: u64,
    /// Repetitions per measurement.
    pub reps: usize,
    /// migsim's writer (and simulation) channels.
    pub channels: usize,
    /// migsim's reader threads in the restores.
    pub read_channels: usize,
    /// memcpy of `size` bytes between buffers already touched.
    pub memcpy_hot: Option<Timing>,
    /// memcpy of `size` bytes into freshly allocated memory.
    pub memcpy_fresh: Option<Timing>,
    /// The simulation.
    pub sim: Option<SimFigures>,
    /// sim guest throughput (the runs after the first, memory recycled)
    /// / memcpy_hot throughput.
    pub sim_vs_memcpy_ratio: Option<f64>,
    /// The first, cold sim run's guest throughput (fresh memory) /
    /// memcpy_fresh throughput.
    pub sim_vs_fresh_memcpy_ratio: Option<f64>,
    /// Saves, buffered and O_DIRECT.
    pub save: Vec<SaveFigures>,
    /// The durable save against the QEMU-compatible one (part `durable`).
    pub durability: Option<DurabilityFigures>,
    /// Restores, buffered and O_DIRECT.
    pub restore: Vec<RestoreFigures>,
    /// QEMU comparisons, one per configuration.
    pub qemu: Vec<QemuComparison>,
    /// Why QEMU was not measured, if it was not.
    pub qemu_skipped: Option<String>,
    /// `migsim qemu fuzz`'s loads per second.
    pub qemu_fuzz: Option<qemu_fuzz::QemuFuzzFigures>,
    /// The concurrency model's speed against the simple driver.
    pub sched: Option<sched::SchedFigures>,
    /// The targets.
    pub targets: Vec<Target>,
}

pub(super) fn median_of(
    reps: usize,
    mut f: impl FnMut(usize) -> Result<f64, String>,
) -> Result<Vec<f64>, String> {
    (0..reps).map(&mut f).collect()
}

pub(super) fn targets(r: &BenchReport) -> Vec<Target> {
    let mut t = Vec::new();
    let mut push = |name, ratio: Option<f64>, goal| {
        if let Some(ratio) = ratio {
            t.push(Target {
                name,
                ratio,
                goal,
                met: ratio >= goal,
            });
        }
    };
    push(
        "simulation vs memcpy (touched memory)",
        r.sim_vs_memcpy_ratio,
        0.3,
    );
    push(
        "fixed-ram save vs O_DIRECT sequential write",
        r.save
            .iter()
            .find(|s| s.mode == "O_DIRECT")
            .map(|s| s.fixed_ram_vs_sequential_write_ratio),
        0.8,
    );
    for mode in ["buffered", "O_DIRECT"] {
        push(
            if mode == "buffered" {
                "restore vs sequential read (buffered)"
            } else {
                "restore vs sequential read (O_DIRECT)"
            },
            r.restore
                .iter()
                .find(|x| x.mode == mode)
                .map(|x| x.restore_vs_sequential_read_ratio),
            0.8,
        );
    }
    push(
        "fixed-ram save vs QEMU mapped-ram + 4 multifd channels",
        r.qemu
            .iter()
            .find(|c| c.qemu.case == "mapped-ram+4 multifd")
            .map(|c| c.migsim_vs_qemu_save_ratio),
        1.0,
    );
    for (name, case) in [
        (
            "restore vs QEMU mapped-ram + 4 multifd (fresh memory)",
            "mapped-ram+4 multifd",
        ),
        (
            "O_DIRECT restore vs QEMU + 4 multifd + direct-io",
            "mapped-ram+4 multifd+direct-io",
        ),
    ] {
        push(
            name,
            r.qemu
                .iter()
                .find(|c| c.qemu.case == case)
                .map(|c| c.migsim_vs_qemu_restore_ratio),
            1.0,
        );
    }
    t
}
