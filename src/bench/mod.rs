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

pub mod qemu;
pub mod qemu_fuzz;
pub mod sched;

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use migsim_format::caps::{Capabilities, Capability};
use migsim_format::io::{AlignedBuf, DIRECT_ALIGN, DiskFile};
use migsim_format::reader::{LoadOptions, load};
use migsim_format::writer::{MigrationWriter, PageSource, RamBlockDesc};
use migsim_harness::replay_command::{ReplayCommand, RunFlags};
use migsim_harness::run::{RunOptions, run};
use migsim_harness::scenario::{Scenario, Size, Verdict};
use migsim_harness::sim::dest::Destination;
use migsim_harness::sim::stages::{Clock, StageTimes};

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
    fn new(bytes: u64, mut seconds: Vec<f64>) -> Self {
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

/// The machine the figures come from.
#[derive(Clone, Debug, Serialize)]
pub struct MachineInfo {
    /// CPUs available to this process.
    pub cpus: usize,
    /// CPU model name.
    pub cpu_model: String,
    /// Total memory, bytes.
    pub mem_total: u64,
    /// Kernel release.
    pub kernel: String,
    /// Directory holding the files.
    pub dir: String,
    /// Whether the page cache could be dropped before reads.
    pub page_cache_dropped: bool,
    /// The machine is a VM whose virtio balloon reports free memory to
    /// the host (free page reporting): memory freed a while ago comes
    /// back through a host fault at first touch, 10x slower or more than
    /// memory freed just now, so fresh-memory figures depend on timing.
    pub free_page_reporting: bool,
}

/// Whether a virtio balloon with free page reporting (feature bit 5,
/// VIRTIO_BALLOON_F_REPORTING) is bound.
fn free_page_reporting() -> bool {
    let Ok(devices) = std::fs::read_dir("/sys/bus/virtio/devices") else {
        return false;
    };
    devices.flatten().any(|d| {
        let read = |f: &str| std::fs::read_to_string(d.path().join(f)).unwrap_or_default();
        read("device").trim() == "0x0005" && read("features").as_bytes().get(5) == Some(&b'1')
    })
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

fn median_of(
    reps: usize,
    mut f: impl FnMut(usize) -> Result<f64, String>,
) -> Result<Vec<f64>, String> {
    (0..reps).map(&mut f).collect()
}

fn machine_info(dir: &Path) -> MachineInfo {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpu_model = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_default();
    let mem_total = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024);
    MachineInfo {
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu_model,
        mem_total,
        kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
        dir: dir.display().to_string(),
        page_cache_dropped: false,
        free_page_reporting: free_page_reporting(),
    }
}

/// Write back and drop the page cache (root only); whether it worked.
pub fn drop_page_cache() -> bool {
    // SAFETY: sync(2) has no preconditions.
    unsafe { libc::sync() };
    std::fs::write("/proc/sys/vm/drop_caches", "3\n").is_ok()
}

/// Fill `buf` with non-zero, page-distinct guest RAM (every page starts
/// with its index, the rest is a cheap keyed stream).
fn fill_ram(buf: &mut [u8]) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let share = buf.len().div_ceil(cores).next_multiple_of(4096).max(4096);
    std::thread::scope(|s| {
        for (i, part) in buf.chunks_mut(share).enumerate() {
            s.spawn(move || {
                let first_page = (i * share / 4096) as u64;
                for (k, page) in part.chunks_mut(4096).enumerate() {
                    ram_page(first_page + k as u64, page);
                }
            });
        }
    });
}

fn ram_page(index: u64, page: &mut [u8]) {
    let mut x = index.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for w in page.chunks_exact_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        w.copy_from_slice(&(x | 1).to_le_bytes());
    }
    page[..8].copy_from_slice(&(index + 1).to_le_bytes());
}

fn memcpy_hot(size: u64, reps: usize) -> Result<Timing, String> {
    let chunk = (size as usize).min(256 * MIB);
    let src = vec![0x5Au8; chunk];
    let mut dst = vec![0u8; chunk];
    dst.copy_from_slice(&src); // touch
    let secs = median_of(reps, |_| {
        let t = Instant::now();
        let mut left = size as usize;
        while left > 0 {
            let n = left.min(chunk);
            dst[..n].copy_from_slice(&src[..n]);
            std::hint::black_box(&dst);
            left -= n;
        }
        Ok(t.elapsed().as_secs_f64())
    })?;
    Ok(Timing::new(size, secs))
}

fn memcpy_fresh(size: u64, reps: usize) -> Result<Timing, String> {
    let chunk = (size as usize).min(256 * MIB);
    let src = vec![0x5Au8; chunk];
    let secs = median_of(reps, |_| {
        let t = Instant::now();
        let mut left = size as usize;
        while left > 0 {
            let n = left.min(chunk);
            let mut dst = Vec::<u8>::with_capacity(n);
            dst.extend_from_slice(&src[..n]);
            std::hint::black_box(&dst);
            left -= n;
        }
        Ok(t.elapsed().as_secs_f64())
    })?;
    Ok(Timing::new(size, secs))
}

/// The big-guest scenario with pc.ram resized to `size`.
pub fn sim_scenario(size: u64) -> Result<Scenario, String> {
    let mut s = Scenario::from_toml(BIG_GUEST)?;
    s.guest.blocks[0].size = Size(size);
    s.expect.digest = None;
    s.validate()?;
    Ok(s)
}

fn sim(o: &BenchOptions, progress: &mut dyn FnMut(&str)) -> Result<SimFigures, String> {
    use migsim_harness::sim::pool;
    let s = sim_scenario(o.size)?;
    let opts = RunOptions {
        channels: o.channels,
        ..RunOptions::default()
    };
    // Room in the pool for a run's files (the fixed-ram file is a little
    // over the guest's size), so the repetitions after the first reuse
    // them; emptied first so the first run is cold, and afterwards so the
    // other parts have the memory.
    let limit = pool::limit();
    pool::clear();
    pool::set_limit(limit.max(2 * o.size + (64 << 20)));
    let mut digests = Vec::new();
    let mut stages = Vec::new();
    let mut guest_bytes = 0;
    let mut one = |label: &str| -> Result<f64, String> {
        let t = Instant::now();
        let clock = Clock::start();
        let r = run(&s, &opts);
        stages.push(clock.stop());
        let dt = t.elapsed().as_secs_f64();
        if r.verdict != Verdict::Pass {
            return Err(format!(
                "sim: the run did not pass ({}); replay: {}",
                r.error
                    .unwrap_or_else(|| format!("{:?}", r.invariants.iter().find(|i| !i.ok))),
                ReplayCommand::Run {
                    scenario: Some("scenarios/big-guest.toml".into()),
                    seed: None,
                    flags: RunFlags {
                        ram: Some(o.size),
                        channels: o.channels,
                        ..RunFlags::default()
                    },
                }
            ));
        }
        guest_bytes = r.ram_bytes;
        digests.push(r.digest);
        progress(&format!("sim {label}: {dt:.2} s"));
        Ok(dt)
    };
    let measured = one("cold (fresh memory)").and_then(|cold| {
        let warm = median_of(o.reps, |i| {
            one(&format!("{}/{} (recycled memory)", i + 1, o.reps))
        })?;
        Ok((cold, warm))
    });
    pool::clear();
    pool::set_limit(limit);
    let (cold, secs) = measured?;
    let run = Timing::new(guest_bytes, secs);
    let median_rep = run
        .seconds
        .iter()
        .position(|&s| s == run.median_s)
        .unwrap_or(0);
    Ok(SimFigures {
        guest_bytes,
        cold: Timing::new(guest_bytes, vec![cold]),
        cold_stages: stages[0],
        stages: stages.get(1 + median_rep).copied().unwrap_or_default(),
        run,
        digest_stable: digests.windows(2).all(|w| w[0] == w[1]),
        digest: digests.pop().unwrap_or_default(),
    })
}

/// Every page of `ram` through `w` in the completion phase, in batches
/// of 64 Ki pages, then the file finished and closed.
fn save_all_pages(
    mut w: MigrationWriter<DiskFile>,
    ram: &[u8],
    channels: usize,
) -> Result<(), String> {
    w.begin_completion().map_err(|e| e.to_string())?;
    let source = RamSource(ram);
    let pages = ram.len() as u64 / 4096;
    let mut batch = Vec::with_capacity(1 << 16);
    let mut p = 0;
    while p < pages {
        batch.clear();
        batch.extend((p..pages.min(p + (1 << 16))).map(|q| (0usize, q)));
        w.save_pages(&batch, &source, channels)
            .map_err(|e| e.to_string())?;
        p += batch.len() as u64;
    }
    let (file, _) = w.finish(&[]).map_err(|e| e.to_string())?;
    drop(file);
    Ok(())
}

/// Guest RAM in memory, lent to the writer without a copy (as QEMU
/// writes from guest RAM).
struct RamSource<'a>(&'a [u8]);

impl PageSource for RamSource<'_> {
    fn fill(&self, _: usize, page: u64, buf: &mut [u8]) {
        let s = (page * 4096) as usize;
        buf.copy_from_slice(&self.0[s..s + 4096]);
    }
    fn pages(&self, _: usize, first: u64, count: usize) -> Option<&[u8]> {
        let s = (first * 4096) as usize;
        Some(&self.0[s..s + count * 4096])
    }
}

fn bench_blocks(size: u64) -> Vec<RamBlockDesc> {
    vec![RamBlockDesc {
        name: "pc.ram".into(),
        used_length: size,
        shared: false,
    }]
}

/// migsim's fixed-ram save of `ram`: seconds until closed, until durable,
/// and the file length.
fn fixed_ram_save(
    ram: &[u8],
    path: &Path,
    direct: bool,
    channels: usize,
) -> Result<SaveTimes, String> {
    let caps = Capabilities::from_enabled(&[Capability::FixedRam]).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(path);
    let t = Instant::now();
    let file = if direct {
        DiskFile::create_direct(path)
    } else {
        DiskFile::create(path)
    }
    .map_err(|e| format!("{}: {e}", path.display()))?;
    let w = MigrationWriter::start(file, MACHINE, &caps, bench_blocks(ram.len() as u64))
        .map_err(|e| e.to_string())?;
    save_all_pages(w, ram, channels)?;
    let closed = t.elapsed().as_secs_f64();
    // fsync flushes the file's data whichever descriptor wrote it.
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let durable = t.elapsed().as_secs_f64();
    let len = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    Ok(SaveTimes {
        closed,
        durable,
        len,
    })
}

struct SaveTimes {
    closed: f64,
    durable: f64,
    len: u64,
}

/// A plain sequential write of `len` bytes from `ram` (repeated as
/// needed) in 1 MiB writes, with or without O_DIRECT, fsync included;
/// `presized`: into a file first set (sparse) to `len`.
fn sequential_write(
    ram: &[u8],
    len: u64,
    path: &Path,
    direct: bool,
    presized: bool,
) -> Result<f64, String> {
    let _ = std::fs::remove_file(path);
    let t = Instant::now();
    let mut oo = std::fs::OpenOptions::new();
    oo.write(true).create(true).truncate(true);
    if direct {
        oo.custom_flags(libc::O_DIRECT);
    }
    let mut f = oo
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if presized {
        f.set_len(len).map_err(|e| e.to_string())?;
    }
    let mut left = len;
    let mut at = 0usize;
    while left > 0 {
        // O_DIRECT needs whole aligned blocks; round the tail up.
        let want = (left as usize).min(MIB);
        let n = if direct {
            want.next_multiple_of(DIRECT_ALIGN)
        } else {
            want
        };
        if at + n > ram.len() {
            at = 0;
        }
        f.write_all(&ram[at..at + n])
            .map_err(|e| format!("{}: {e}", path.display()))?;
        at += n;
        left -= want as u64;
    }
    f.sync_all().map_err(|e| e.to_string())?;
    Ok(t.elapsed().as_secs_f64())
}

fn sequential_read(path: &Path, direct: bool) -> Result<(f64, u64), String> {
    let mut buf = AlignedBuf::zeroed(MIB);
    let t = Instant::now();
    let mut oo = std::fs::OpenOptions::new();
    oo.read(true);
    if direct {
        oo.custom_flags(libc::O_DIRECT);
    }
    let mut f = oo
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    Ok((t.elapsed().as_secs_f64(), total))
}

fn save(
    o: &BenchOptions,
    ram: &[u8],
    direct: bool,
    progress: &mut dyn FnMut(&str),
) -> Result<SaveFigures, String> {
    let mode = if direct { "O_DIRECT" } else { "buffered" };
    let fixed_path = fixed_ram_path(o);
    let plain_path = o.dir.join("bench-sequential.bin");
    let mut file_len = 0;
    let (mut fixed, mut closed, mut plain, mut presized) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // Interleaved, so a slow phase of a shared machine hits all three.
    for i in 0..o.reps {
        let t = fixed_ram_save(ram, &fixed_path, direct, o.channels)?;
        file_len = t.len;
        fixed.push(t.durable);
        closed.push(t.closed);
        let dt2 = sequential_write(ram, t.len, &plain_path, direct, false)?;
        plain.push(dt2);
        let dt3 = sequential_write(ram, t.len, &plain_path, direct, true)?;
        presized.push(dt3);
        progress(&format!(
            "save {mode} {}/{}: fixed-ram {:.2} s ({:.2} s until closed), sequential write {dt2:.2} s, into a presized file {dt3:.2} s",
            i + 1,
            o.reps,
            t.durable,
            t.closed,
        ));
    }
    let _ = std::fs::remove_file(&plain_path);
    let fixed_ram = Timing::new(file_len, fixed);
    let sequential_write = Timing::new(file_len, plain);
    let sequential_write_presized = Timing::new(file_len, presized);
    Ok(SaveFigures {
        mode,
        fixed_ram_vs_sequential_write_ratio: fixed_ram.gib_s / sequential_write.gib_s,
        fixed_ram_vs_presized_write_ratio: fixed_ram.gib_s / sequential_write_presized.gib_s,
        fixed_ram,
        fixed_ram_closed: Timing::new(file_len, closed),
        sequential_write,
        sequential_write_presized,
    })
}

/// migsim's reader set up to restore the bench's fixed-ram file
/// ([`fixed_ram_path`], left by the save part) with one set of flags.
struct Restorer {
    path: PathBuf,
    file: DiskFile,
    opts: LoadOptions,
    blocks: Vec<RamBlockDesc>,
}

impl Restorer {
    fn new(o: &BenchOptions, direct: bool) -> Result<Self, String> {
        let path = fixed_ram_path(o);
        let file = if direct {
            DiskFile::open_direct(&path)
        } else {
            DiskFile::open(&path)
        }
        .map_err(|e| format!("{}: {e}", path.display()))?;
        let caps =
            Capabilities::from_enabled(&[Capability::FixedRam]).map_err(|e| e.to_string())?;
        let opts = LoadOptions {
            machine: Some(MACHINE.into()),
            caps: Some(caps),
            channels: o.read_channels,
            ..LoadOptions::default()
        };
        Ok(Self {
            path,
            file,
            opts,
            blocks: bench_blocks(o.size),
        })
    }

    /// Seconds to load the file into `dest`.
    fn load_into(&self, dest: &mut Destination) -> Result<f64, String> {
        let t = Instant::now();
        load(&self.file, &self.opts, dest).map_err(|e| e.to_string())?;
        Ok(t.elapsed().as_secs_f64())
    }

    /// Into fresh memory, the page cache dropped first: the memory is
    /// allocated (lazily, as a VMM maps guest RAM before
    /// `migrate-incoming`) and then the load is timed from its start to
    /// its end, as QEMU's restore is; giving the memory back afterwards
    /// is not timed (QEMU's exit is not either). Seconds to load and
    /// seconds to free.
    fn load_fresh_memory(&self) -> Result<(f64, f64), String> {
        drop_page_cache();
        let mut dest = Destination::new(&self.blocks, false);
        let secs = self.load_into(&mut dest)?;
        let t = Instant::now();
        drop(dest);
        Ok((secs, t.elapsed().as_secs_f64()))
    }
}

fn restore(
    o: &BenchOptions,
    direct: bool,
    progress: &mut dyn FnMut(&str),
    dropped: &mut bool,
) -> Result<RestoreFigures, String> {
    let mode = if direct { "O_DIRECT" } else { "buffered" };
    let restorer = Restorer::new(o, direct)?;
    let (mut fixed, mut fresh, mut plain) = (Vec::new(), Vec::new(), Vec::new());
    let mut file_len = 0;
    for i in 0..o.reps {
        // Destination RAM touched beforehand (filled with garbage), as a
        // VMM's guest RAM would be mapped and ready.
        let mut dest = Destination::new(&restorer.blocks, true);
        *dropped = drop_page_cache();
        let dt = restorer.load_into(&mut dest)?;
        fixed.push(dt);
        if i == 0 {
            let mut want = vec![0u8; 4096];
            let same = (0..o.size / 4096).all(|p| {
                ram_page(p, &mut want);
                dest.page(0, p) == want.as_slice()
            });
            if !same {
                return Err(format!(
                    "restore ({mode}): the restored memory differs from the saved RAM"
                ));
            }
        }
        drop(dest);
        *dropped = drop_page_cache();
        let (dt2, len) = sequential_read(&restorer.path, direct)?;
        file_len = len;
        plain.push(dt2);
        let (dt3, freed) = restorer.load_fresh_memory()?;
        fresh.push(dt3);
        progress(&format!(
            "restore {mode} {}/{}: fixed-ram {dt:.2} s ({dt3:.2} s into fresh memory, {freed:.2} s to free it), sequential read {dt2:.2} s",
            i + 1,
            o.reps
        ));
    }
    let fixed_ram = Timing::new(o.size, fixed);
    let sequential_read = Timing::new(file_len, plain);
    Ok(RestoreFigures {
        mode,
        restore_vs_sequential_read_ratio: fixed_ram.gib_s / sequential_read.gib_s,
        fixed_ram,
        fixed_ram_fresh_memory: Timing::new(o.size, fresh),
        sequential_read,
        verified: true,
    })
}

/// migsim's fixed-ram save of `ram` (buffered) finishing as `mode`, with
/// or without the integrity trailer: seconds until the writer is done and
/// the file closed, plus one fsync after that when `fsync`.
fn save_finishing(
    ram: &[u8],
    path: &Path,
    mode: migsim_format::Durability,
    integrity: bool,
    fsync: bool,
    channels: usize,
) -> Result<(f64, u64), String> {
    let caps = Capabilities::from_enabled(&[Capability::FixedRam]).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(path);
    let t = Instant::now();
    let file = DiskFile::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let w = MigrationWriter::start(file, MACHINE, &caps, bench_blocks(ram.len() as u64))
        .map_err(|e| e.to_string())?
        .with_durability(mode)
        .with_integrity(integrity);
    save_all_pages(w, ram, channels)?;
    if fsync {
        std::fs::File::open(path)
            .and_then(|f| f.sync_all())
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let secs = t.elapsed().as_secs_f64();
    let len = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    Ok((secs, len))
}

/// The durable save against the QEMU-compatible one, same RAM, same
/// file, the four modes interleaved `o.reps` times.
fn durability(
    o: &BenchOptions,
    ram: &[u8],
    progress: &mut dyn FnMut(&str),
) -> Result<DurabilityFigures, String> {
    use migsim_format::Durability::{Durable, QemuCompatible};
    let path = o.dir.join("bench-durable.mig");
    let cases = [
        (QemuCompatible, false, false),
        (QemuCompatible, false, true),
        (Durable, false, false),
        (Durable, true, false),
    ];
    let mut secs: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    let mut lens = [0u64; 4];
    for i in 0..o.reps {
        for (k, &(mode, integrity, fsync)) in cases.iter().enumerate() {
            let (t, len) = save_finishing(ram, &path, mode, integrity, fsync, o.channels)?;
            secs[k].push(t);
            lens[k] = len;
        }
        progress(&format!(
            "durable {}/{}: qemu-compatible {:.2} s (+fsync {:.2} s), durable {:.2} s, durable+integrity {:.2} s",
            i + 1,
            o.reps,
            secs[0][i],
            secs[1][i],
            secs[2][i],
            secs[3][i]
        ));
    }
    let _ = std::fs::remove_file(&path);
    let mut t = secs.into_iter().zip(lens).map(|(s, l)| Timing::new(l, s));
    let (q, qf, d, di) = (
        t.next().expect("4"),
        t.next().expect("4"),
        t.next().expect("4"),
        t.next().expect("4"),
    );
    Ok(DurabilityFigures {
        durable_vs_qemu_compatible_ratio: d.gib_s / q.gib_s,
        durable_vs_qemu_compatible_fsync_ratio: d.gib_s / qf.gib_s,
        integrity_vs_durable_ratio: di.gib_s / d.gib_s,
        qemu_compatible: q,
        qemu_compatible_fsync: qf,
        durable: d,
        durable_integrity: di,
    })
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

fn targets(r: &BenchReport) -> Vec<Target> {
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
