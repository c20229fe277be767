//! The command line: flags as clap parses them ([`Args`]), resolved once
//! into one configuration per command ([`Command`]): defaults filled in,
//! sizes and lists checked, the scenario loaded and adjusted. Nothing
//! here runs a migration or prints (that is `main.rs` and `render.rs`).

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand, ValueHint};

use crate::bench::{BenchOptions, DEFAULT_READ_CHANNELS};
use migsim_format::Layout;
use migsim_harness::bugs::Bug;
use migsim_harness::explore::{ExploreOptions, SeedSet};
use migsim_harness::replay_command::{ReplayCommand, RunFlags};
use migsim_harness::run::RunOptions;
use migsim_harness::scenario::{self, Scenario};

/// The flags.
#[derive(Parser)]
#[command(
    name = "migsim",
    version,
    about = "Deterministic simulator and fuzzing harness for VM live migration with fixed-ram (QEMU: mapped-ram)",
    long_about = "Deterministic simulator and fuzzing harness for VM live migration with the \
fixed-ram capability (QEMU: mapped-ram). One seed reproduces everything.\n\n\
Examples:\n  migsim run                          run the embedded heavy re-dirtying scenario\n  \
migsim run scenarios/idle.toml --json\n  migsim replay scenarios/             check every scenario's expectations\n  \
migsim inspect vm.mig                show the layout of any QEMU or migsim migration file\n  \
migsim extract vm.mig --block pc.ram -o ram.bin"
)]
pub struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

/// Flags for big guests and real files (`migsim run`).
#[derive(clap::Args, Clone, Default)]
struct BigArgs {
    /// Resize the first RAMBlock (pc.ram) to SIZE, e.g. 4G or 16G. Page
    /// contents are generated, and the oracle keeps 8 bytes a page, so
    /// with --file-dir a guest may be larger than this machine's memory.
    #[arg(long, value_name = "SIZE", value_parser = scenario::parse_size)]
    ram: Option<u64>,
    /// Keep page identities by range instead of bytes (the extent mode, as
    /// `[guest] extents = true`): guests up to 32 TiB in a few GiB,
    /// fixed-ram writer only, files in memory. The digest differs from
    /// the byte-level run's; the verdict does not.
    #[arg(long)]
    extents: bool,
    /// Run only these writers: sequential, fixed-ram (comma-separated).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    writers: Option<Vec<Layout>>,
    /// Write the migration files into DIR on disk (DIR/<scenario>.<writer>.mig)
    /// instead of keeping them in memory. They are left there.
    #[arg(long, value_name = "DIR")]
    file_dir: Option<PathBuf>,
    /// Open on-disk files with O_DIRECT: page writes bypass the page cache
    /// (needs --file-dir and a filesystem that supports it).
    #[arg(long, requires = "file_dir")]
    direct_io: bool,
    /// Channels (threads) writing and reading fixed-ram pages at once, as
    /// QEMU's multifd channels do. Files, verdict and digest do not change.
    #[arg(long, default_value_t = 1, value_name = "N")]
    channels: usize,
    /// Save durably: pages, fdatasync, bitmaps + EOF + vmdesc, fdatasync,
    /// a completion mark after the vmdesc trailer (QEMU ignores it),
    /// fdatasync; the restore requires the mark. Changes the files' bytes.
    #[arg(long)]
    durable: bool,
    /// Append the integrity trailer (a CRC-32 per 1 MiB after the vmdesc
    /// trailer; QEMU ignores it), verified by the restore.
    #[arg(long)]
    integrity: bool,
    /// Fail one write, as a full or broken disk does: WRITER:INDEX:KIND,
    /// e.g. fixed-ram:20:eio (KIND: enospc, eio, short-write; INDEX: the
    /// write's number in that file, from 0).
    #[arg(long, value_name = "WRITER:INDEX:KIND", value_parser = parse_fail_write)]
    fail_write: Option<(Layout, usize, migsim_harness::sim::simfile::IoFault)>,
}

fn parse_fail_write(
    s: &str,
) -> Result<(Layout, usize, migsim_harness::sim::simfile::IoFault), String> {
    use migsim_harness::sim::simfile::IoFault;
    let bad = || format!("{s:?}: expected WRITER:INDEX:KIND, e.g. fixed-ram:20:eio");
    let mut it = s.split(':');
    let (Some(w), Some(i), Some(k), None) = (it.next(), it.next(), it.next(), it.next()) else {
        return Err(bad());
    };
    let layout: Layout = w.parse().map_err(|e| format!("{s:?}: {e}"))?;
    let index: usize = i.parse().map_err(|_| bad())?;
    let kind = IoFault::ALL
        .into_iter()
        .find(|f| f.name() == k)
        .ok_or_else(|| format!("{s:?}: KIND is one of enospc, eio, short-write"))?;
    Ok((layout, index, kind))
}

/// `migsim qemu …`.
#[derive(Subcommand)]
enum QemuCmd {
    /// Run a scenario's workload inside a real QEMU guest and judge QEMU's
    /// own live save of it, once per layout of the scenario.
    ///
    /// migsim's guest program (no OS; PVH boot) dirties pc.ram the way
    /// the scenario's workload does, writing migsim's page contents, while
    /// QEMU saves it live to a file (mapped-ram for the fixed-ram layout)
    /// with max-bandwidth and downtime-limit from the scenario's bandwidth
    /// and downtime (in ticks of --tick-ms), forcing the switchover after
    /// max_passes dirty syncs. Then migsim's restore of the file, and a
    /// fresh QEMU's load of it, must equal the stopped source's RAM page
    /// for page, and the mapped-ram file must sit at migsim's layout
    /// bound. The guest's pages and contents follow from the seed; QEMU's
    /// timing (syncs, sizes) does not. Exit 1 when a check fails.
    /// QEMU=path picks the binary.
    Run {
        /// The scenario (pc.ram of whole MiB up to 2 GiB; workload,
        /// bandwidth, downtime_ticks, max_passes; capabilities multifd at
        /// most).
        scenario: PathBuf,
        /// Milliseconds of one scenario tick: sets QEMU's max-bandwidth
        /// (bandwidth pages per tick) and downtime-limit, and the guest's
        /// pace (writes_per_tick per tick).
        #[arg(long, default_value_t = 10, value_name = "MS")]
        tick_ms: u64,
        /// `-accel` of the source: the guest runs code, so TCG by default
        /// (KVM on these machines runs it slowly).
        #[arg(long, default_value = "tcg", value_hint = ValueHint::Other)]
        accel: String,
        /// Seconds one save or load may take.
        #[arg(long, default_value_t = 600, value_name = "SECS")]
        timeout: u64,
        /// Keep the files (both layouts' saves, QEMU logs) here.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Show that the judgement can fail: after each save, rewrite the
        /// last copy of one page in the file as its next version; both
        /// restores must then differ from the source on that page.
        #[arg(long)]
        sabotage: bool,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Run a reproducer written by `migsim qemu fuzz --out DIR` again and
    /// exit 1 when the recorded outcome reproduces, printing it.
    ///
    /// DIR/seed-N.toml records the base, the exact mutations (`applied`)
    /// and the input's SHA-256: the input is rebuilt from them, checked
    /// against the SHA-256 (a mismatch is said: migsim's bases changed),
    /// and loaded by a fresh QEMU set up as the campaign did. Exit 0 when
    /// the outcome or verdict is not the recorded one (fixed, or another
    /// QEMU).
    Replay {
        /// The reproducer's TOML.
        file: PathBuf,
        /// Seconds the load may take before it counts as hung.
        #[arg(long, default_value_t = 20, value_name = "SECS")]
        timeout: u64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Feed QEMU's incoming side (`-S -incoming defer`) mutated migration
    /// files, one fresh QEMU per input, and judge each against migsim's
    /// strict reader.
    ///
    /// Each seed picks a base (the files of scenarios/qemu/, sequential or
    /// mapped-ram, which QEMU loads as they are) and mutations of its
    /// fields (fixed-ram headers, block list lengths, bitmap bits, page
    /// areas, the tail, truncation); the same seed always gives the same
    /// bytes. Outcomes: loaded, refused, crashed (signal), hung, memory
    /// blow-up. Where QEMU loaded, its memory (pmemsave) is compared with
    /// migsim's restore. Findings (QEMU failing, or disagreeing with
    /// migsim for no documented reason) are deduplicated and, with --out,
    /// saved as the input file and a TOML. QEMU=path picks the binary.
    Fuzz {
        /// Seed range A..B (end exclusive). The default, 2,000 loads, is a
        /// campaign of a few minutes on 2 cores.
        #[arg(long, value_parser = parse_range, default_value = "0..2000")]
        seeds: (u64, u64),
        /// Stop starting new inputs after SECS seconds.
        #[arg(long, value_name = "SECS")]
        time: Option<u64>,
        /// QEMU processes at once (default and maximum: the available cores).
        #[arg(long)]
        jobs: Option<usize>,
        /// Run only shard K of N (1-based) of the seeds.
        #[arg(long, value_parser = parse_shard)]
        shard: Option<(u64, u64)>,
        /// Save each unique finding here: seed-N.mig and seed-N.toml.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Seconds one load may take before it counts as hung.
        #[arg(long, default_value_t = 20, value_name = "SECS")]
        timeout: u64,
        /// Resident memory over which QEMU counts as a memory blow-up.
        #[arg(long, default_value = "2G", value_parser = scenario::parse_size, value_name = "SIZE")]
        rss_limit: u64,
        /// Print one JSON object (outcomes, verdicts, divergences, findings).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum Cmd {
    /// QEMU as the system under test.
    Qemu {
        #[command(subcommand)]
        cmd: QemuCmd,
    },
    /// Simulate a live migration through the sequential and fixed-ram
    /// writers, restore both files, and judge them with the oracle.
    ///
    /// With no SCENARIO, runs the embedded default: a guest that keeps
    /// re-dirtying memory, so the sequential file grows to several times
    /// guest RAM while the fixed-ram file stays within its bound.
    Run {
        /// Scenario file (TOML). Default: the embedded heavy-redirty scenario.
        scenario: Option<PathBuf>,
        /// Override the scenario's seed.
        #[arg(long)]
        seed: Option<u64>,
        /// Print one JSON object (with a top-level "digest") instead of the summary.
        #[arg(long)]
        json: bool,
        /// Keep the files written: DIR/sequential.mig and DIR/fixed-ram.mig.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Inject a deliberately wrong variant, e.g. to replay what explore
        /// found: off-by-one-later-block, dirty-cleared-after-pass,
        /// zero-page-keeps-bit, bitmap-wrong-bit-order,
        /// reader-skips-clear-bits, skip-final-sync; with a [concurrency]
        /// scenario also no-channel-flush-at-round,
        /// bitmap-before-channels-drain, multifd-zero-clears-wrong-range,
        /// dirty-cleared-after-copy, all-zero-batch-keeps-page-list,
        /// recv-channel-after-completion; durable-mark-unsynced (seen only
        /// by `faults --mode durable` and `explore --faults`);
        /// page-index-32-bit (seen only by guests over 16 TiB, with
        /// --extents).
        #[arg(long, value_name = "VARIANT")]
        bug: Option<Bug>,
        #[command(flatten)]
        big: BigArgs,
    },
    /// Generate random scenarios from seeds, run them, and shrink every
    /// failure to a minimal scenario written to scenarios/regressions/
    /// with its seed and the command that replays it.
    ///
    /// Same seeds give the same results whatever --jobs. A progress bar
    /// shows on a terminal; a summary follows.
    Explore {
        /// Seed range A..B (end exclusive), e.g. 0..200.
        #[arg(long, value_parser = parse_range)]
        seeds: (u64, u64),
        /// Worker threads (default and maximum: the available cores).
        #[arg(long)]
        jobs: Option<usize>,
        /// Run only shard K of N (1-based), e.g. 2/4, for splitting a sweep
        /// across machines.
        #[arg(long, value_parser = parse_shard)]
        shard: Option<(u64, u64)>,
        /// Print one JSON object instead of the summary.
        #[arg(long)]
        json: bool,
        /// Inject a deliberately wrong variant (see `migsim run --help`).
        #[arg(long, value_name = "VARIANT")]
        bug: Option<Bug>,
        /// Report failures as found, without shrinking.
        #[arg(long)]
        no_shrink: bool,
        /// Where shrunk failures are written.
        #[arg(long, value_name = "DIR", default_value = "scenarios/regressions")]
        regressions: PathBuf,
        /// Do not write regression files.
        #[arg(long)]
        dry_run: bool,
        /// Stop shrinking after this many failures (0 = the first 1,000).
        #[arg(long, default_value_t = 5)]
        max_failures: usize,
        /// Also save each passing scenario durably and crash it at 8 write
        /// indices (5 survival samples each, `migsim faults`): a wrong
        /// restore is a failure (finds durable-mark-unsynced).
        #[arg(long)]
        faults: bool,
    },
    /// Power loss at every write: run SCENARIO once recording every write
    /// and sync, then for each crash point (writes issued before the power
    /// loss) and each survival sample of the unsynced writes (lost, kept,
    /// torn at 512 B or 4 KiB) build the disk image and load it with
    /// migsim's strict reader. Verdict per crash: exact (memory equals the
    /// guest's at switchover), refused (the reader's error) or wrong
    /// (loaded, memory differs). Then ENOSPC, EIO and short writes at a few
    /// writes: the writer must fail with a clear error and leave no file
    /// that restores wrong memory.
    ///
    /// --mode qemu writes as QEMU 10 does (no fsync, bitmaps last): wrong
    /// crashes are its documented behaviour and are reported, exit 0.
    /// --mode durable (pages, sync, bitmaps + EOF + vmdesc, sync, a
    /// completion mark, sync; the reader requires the mark): exit 1 on any
    /// wrong crash. Exit 1 also when an I/O fault is not reported or
    /// leaves a file that restores wrong memory.
    Faults {
        /// Scenario file (TOML); guest RAM up to 1 GiB.
        scenario: PathBuf,
        /// qemu (QEMU 10's protocol) or durable.
        #[arg(long, default_value = "qemu", value_parser = parse_mode)]
        mode: migsim_format::Durability,
        /// Files carry the integrity trailer (a CRC-32 per 1 MiB after the
        /// vmdesc trailer), which the reader verifies before loading.
        #[arg(long)]
        integrity: bool,
        /// With --mode durable: judge as a reader that ignores the
        /// completion mark (as QEMU does) would.
        #[arg(long)]
        ignore_mark: bool,
        /// Crash points: all (every write index), N drawn from the fault
        /// stream (the first and the last included), or last (after the
        /// last write: the save complete, nothing written back yet).
        #[arg(long, default_value = "all", value_parser = parse_points)]
        points: migsim_harness::faults::Points,
        /// Survival samples per crash point (0 all unsynced writes lost, 1
        /// all kept, 2 the newer half kept, 3 all but one kept, 4 one
        /// sector lost, then random subsets).
        #[arg(long, default_value_t = 8, value_name = "N")]
        samples: u32,
        /// Replay one crash: the point (with --sample).
        #[arg(long, value_name = "K", requires = "sample")]
        point: Option<usize>,
        /// Replay one crash: the sample (with --point).
        #[arg(long, value_name = "S", requires = "point")]
        sample: Option<u32>,
        /// I/O fault points per kind (ENOSPC, EIO, short write) and layout.
        #[arg(long, default_value_t = 4, value_name = "N")]
        io_points: usize,
        /// Inject a deliberately wrong variant, e.g. durable-mark-unsynced.
        #[arg(long, value_name = "VARIANT")]
        bug: Option<Bug>,
        /// Print one JSON object instead of the summary.
        #[arg(long)]
        json: bool,
    },
    /// Merge the `explore --shard K/N --json` reports of one sweep (every
    /// shard 1..N exactly once, same seed range, bug, shrinking and
    /// --max-failures) into the report of the whole sweep, as the unsplit
    /// run would give it. Exits 1 if any seed failed, 2 on a missing,
    /// overlapping or mismatched shard.
    Merge {
        /// The shards' JSON reports, in any order.
        #[arg(required = true, value_name = "REPORT")]
        reports: Vec<PathBuf>,
        /// Print the merged report as one JSON object instead of the summary.
        #[arg(long)]
        json: bool,
    },
    /// Run every scenario and check its expectations (verdict, error text,
    /// digest, size ratio). Exits 1 on any difference and says how to
    /// re-run the scenario that differed.
    Replay {
        /// Scenario files or directories (searched recursively for *.toml).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Write each run's digest into its scenario file's [expect] table
        /// (after a deliberate format change; say why in the commit). A
        /// scenario that differs in anything but its digest is not blessed.
        #[arg(long)]
        bless: bool,
    },
    /// Show the layout of a migration file (migsim's or a real QEMU save,
    /// sequential or fixed-ram/mapped-ram): header, configuration,
    /// capabilities, sections, RAM blocks with offsets and pages present.
    Inspect {
        /// The migration file (a regular file: pipes, FIFOs and devices are
        /// refused; save a stream to a file first).
        file: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write one RAMBlock's memory as raw bytes (absent or zero pages as
    /// zeros), e.g. to compare with QEMU's pmemsave.
    Extract {
        /// The migration file (a regular file, as for inspect).
        file: PathBuf,
        /// Block name, e.g. pc.ram.
        #[arg(long, value_hint = ValueHint::Other)]
        block: String,
        /// Output file: replaced only when the extract succeeded (never the
        /// input itself). May also be a pipe or device, e.g. /dev/stdout.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Run a sweep (or the given scenarios) and write a report with
    /// charts: DIR/report.html (self-contained), DIR/report.md with
    /// DIR/*.svg, DIR/report.csv and DIR/sizes.csv.
    ///
    /// With no SCENARIO, sweeps the embedded default scenario over the
    /// guest's dirty rate and max_passes, and writes each point's scenario
    /// to DIR/scenarios/ so `migsim run` can replay it.
    Report {
        /// Scenario files or directories (searched recursively for *.toml).
        scenarios: Vec<PathBuf>,
        /// Output directory.
        #[arg(short, long, value_name = "DIR")]
        output: PathBuf,
        /// Instead of running scenarios, report these `migsim qemu run`
        /// results (its `--json` output, or `qemu-run.json` in its
        /// `--out`): QEMU's file size over the live save for both layouts,
        /// beside the simulation of the same scenario (qemu-run.html,
        /// qemu-run.md, SVG figures).
        #[arg(long, value_name = "FILE")]
        qemu_run: Vec<PathBuf>,
        /// Worker threads (default and maximum: the available cores).
        #[arg(long)]
        jobs: Option<usize>,
    },
    /// Measure migsim against the machine's limits and against QEMU:
    /// simulation throughput vs memcpy, fixed-ram save to a real file vs a
    /// plain sequential write (buffered and O_DIRECT; timed until fsync'd,
    /// and until closed for the QEMU comparison), restore vs a plain
    /// sequential read (buffered and O_DIRECT), and QEMU's own mapped-ram save
    /// and restore (plain, 4 multifd channels, 4 channels + direct-io, and
    /// as many channels as --read-channels) of a paused guest of the same
    /// size when QEMU >= 9 is installed. Each QEMU restore has one of
    /// migsim's restores into fresh memory beside it (alternately before
    /// and after), so both meet the machine in the same state.
    ///
    /// Prints medians and ratios (migsim's throughput over the
    /// reference's: above 1 is faster), and the performance targets: the
    /// simulation at 0.3x memcpy or more, the save at 0.8x an O_DIRECT
    /// write or more, the restore at 0.8x a read or more, the save and the
    /// restore (buffered, and O_DIRECT against direct-io) faster than QEMU
    /// with 4 multifd channels. Needs
    /// about 2x SIZE of memory and 2x SIZE of disk in DIR. Run as root to
    /// drop the page cache before reads.
    Bench {
        /// Guest RAM size, e.g. 1G or 4G (a multiple of 1 MiB).
        #[arg(long, default_value = "1G", value_parser = scenario::parse_size)]
        size: u64,
        /// Repetitions of each measurement (medians are reported).
        #[arg(long, default_value_t = 3)]
        reps: usize,
        /// Directory for the files; it must support O_DIRECT (not tmpfs).
        #[arg(long, value_name = "DIR", default_value = "target/migsim-bench")]
        dir: PathBuf,
        /// Channels writing and reading fixed-ram pages (multifd-like).
        /// Default: one per CPU.
        #[arg(long)]
        channels: Option<usize>,
        /// Threads migsim's reader restores the file with (the restore
        /// part and the restores beside QEMU's; the simulation reads with
        /// --channels). A read into fresh memory waits on the disk and on
        /// first touch, not on a CPU, so more reads in flight than CPUs
        /// pay; the QEMU part also measures QEMU with this many multifd
        /// channels when it is not 4, to compare at equal depth.
        #[arg(long, default_value_t = DEFAULT_READ_CHANNELS)]
        read_channels: usize,
        /// Do not measure QEMU even if it is installed.
        #[arg(long)]
        no_qemu: bool,
        /// Run only these parts: sim, save, durable, restore, qemu,
        /// qemu-fuzz, sched (comma-separated). durable: the durable save
        /// mode against the QEMU-compatible one, same RAM and file;
        /// qemu-fuzz: `migsim qemu fuzz`'s loads per second; sched: the
        /// concurrency model's pages per second against the simple driver.
        #[arg(long, value_delimiter = ',', value_name = "PARTS", value_hint = ValueHint::Other)]
        only: Vec<String>,
        /// Print one JSON object instead of the summary (progress still
        /// goes to stderr).
        #[arg(long)]
        json: bool,
    },
}

/// One command, resolved: every default filled in, every input checked.
pub enum Command {
    /// `migsim qemu run`.
    QemuRun {
        /// The scenario.
        scenario: Box<Scenario>,
        /// How it runs.
        opts: migsim_harness::qemu::live::LiveOptions,
        /// Print JSON.
        json: bool,
    },
    /// `migsim qemu replay`.
    QemuReplay {
        /// The reproducer.
        file: PathBuf,
        /// How the load is run.
        limits: migsim_harness::qemu::campaign::Limits,
        /// Print JSON.
        json: bool,
    },
    /// `migsim qemu fuzz`.
    QemuFuzz {
        /// What to run.
        opts: migsim_harness::qemu::campaign::CampaignOptions,
        /// Print JSON.
        json: bool,
    },
    /// `migsim run`.
    Run(Box<RunConfig>),
    /// `migsim explore`.
    Explore {
        /// What to explore.
        opts: ExploreOptions,
        /// Print JSON.
        json: bool,
    },
    /// `migsim faults`.
    Faults {
        /// The scenario, loaded.
        scenario: Box<Scenario>,
        /// Its path, for the replay commands printed.
        path: PathBuf,
        /// What to try.
        opts: migsim_harness::faults::FaultsOptions,
        /// Print JSON.
        json: bool,
    },
    /// `migsim merge`.
    Merge {
        /// The shards' reports.
        reports: Vec<PathBuf>,
        /// Print JSON.
        json: bool,
    },
    /// `migsim replay`.
    Replay {
        /// Scenario files found under the paths given.
        files: Vec<PathBuf>,
        /// Record digests.
        bless: bool,
    },
    /// `migsim inspect`.
    Inspect {
        /// The migration file (a regular file: pipes, FIFOs and devices are
        /// refused; save a stream to a file first).
        file: PathBuf,
        /// Print JSON.
        json: bool,
    },
    /// `migsim extract`.
    Extract {
        /// The migration file.
        file: PathBuf,
        /// The block.
        block: String,
        /// Where its bytes go.
        output: PathBuf,
    },
    /// `migsim report`.
    /// `migsim report --qemu-run`.
    QemuReport {
        /// The `migsim qemu run` reports.
        files: Vec<PathBuf>,
        /// Output directory.
        output: PathBuf,
    },
    /// `migsim report`.
    Report {
        /// Scenario files (empty: the built-in sweep).
        scenarios: Vec<PathBuf>,
        /// Output directory.
        output: PathBuf,
        /// Worker threads.
        jobs: usize,
    },
    /// `migsim bench`.
    Bench {
        /// What to measure.
        opts: BenchOptions,
        /// Print JSON.
        json: bool,
    },
}

/// `migsim run`, resolved.
pub struct RunConfig {
    /// The scenario, with --seed, --ram and --writers applied.
    pub scenario: Scenario,
    /// Files, channels, bug variant.
    pub options: RunOptions,
    /// Print JSON.
    pub json: bool,
    /// Keep the files here.
    pub out: Option<PathBuf>,
    /// The command that replays this run exactly as asked.
    pub replay: ReplayCommand,
    /// The same, with the seed spelled out (printed on a failure).
    pub replay_with_seed: ReplayCommand,
}

/// Worker threads when `--jobs` is not given: one per available core.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `--jobs`: at least 1, at most the available cores (more threads would
/// only contend; a huge number would exhaust the system's threads).
fn resolve_jobs(jobs: Option<usize>) -> Result<usize, String> {
    match jobs {
        None => Ok(default_jobs()),
        Some(0) => Err("--jobs must be at least 1".into()),
        Some(n) => Ok(n.min(default_jobs())),
    }
}

impl Args {
    /// Parse the process's arguments (exits on a usage error, as clap does).
    pub fn from_env() -> Self {
        Args::parse()
    }

    /// Parse `args` (the first is the program name, as in `std::env::args`)
    /// without exiting: a usage error, `--help` or `--version` comes back
    /// as clap's error, which `migsim` would print and exit with 2 (0 for
    /// help and version).
    pub fn parse_from_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Args::try_parse_from(args)
    }

    /// Resolve the flags into one command's configuration.
    pub fn resolve(self) -> Result<Command, String> {
        use migsim_harness::qemu::stopped_guest_accel;
        Ok(match self.cmd {
            Cmd::Qemu {
                cmd:
                    QemuCmd::Run {
                        scenario,
                        tick_ms,
                        accel,
                        timeout,
                        out,
                        sabotage,
                        json,
                    },
            } => {
                if let Some(dir) = &out {
                    crate::files::check_output_dir(dir, "--out")?;
                }
                if tick_ms == 0 {
                    return Err("--tick-ms must be at least 1".into());
                }
                Command::QemuRun {
                    scenario: Box::new(Scenario::load(&scenario)?),
                    opts: migsim_harness::qemu::live::LiveOptions {
                        accel,
                        tick_ms,
                        timeout: std::time::Duration::from_secs(timeout.max(1)),
                        out,
                        sabotage,
                    },
                    json,
                }
            }
            Cmd::Qemu {
                cmd:
                    QemuCmd::Replay {
                        file,
                        timeout,
                        json,
                    },
            } => Command::QemuReplay {
                file,
                limits: migsim_harness::qemu::campaign::Limits {
                    timeout: std::time::Duration::from_secs(timeout.max(1)),
                    rss_limit: 2 << 30,
                    accel: stopped_guest_accel(),
                },
                json,
            },
            Cmd::Qemu {
                cmd:
                    QemuCmd::Fuzz {
                        seeds,
                        time,
                        jobs,
                        shard,
                        out,
                        timeout,
                        rss_limit,
                        json,
                    },
            } => {
                if let Some(dir) = &out {
                    crate::files::check_output_dir(dir, "--out")?;
                }
                Command::QemuFuzz {
                    opts: migsim_harness::qemu::campaign::CampaignOptions {
                        seeds: SeedSet::new(seeds.0, seeds.1, shard),
                        time_limit: time.map(std::time::Duration::from_secs),
                        jobs: resolve_jobs(jobs)?,
                        limits: migsim_harness::qemu::campaign::Limits {
                            timeout: std::time::Duration::from_secs(timeout.max(1)),
                            rss_limit,
                            accel: stopped_guest_accel(),
                        },
                        out,
                    },
                    json,
                }
            }
            Cmd::Run {
                scenario,
                seed,
                json,
                out,
                bug,
                big,
            } => Command::Run(Box::new(resolve_run(
                scenario.as_deref(),
                seed,
                json,
                out,
                bug,
                &big,
            )?)),
            Cmd::Explore {
                seeds,
                jobs,
                shard,
                json,
                bug,
                no_shrink,
                regressions,
                dry_run,
                max_failures,
                faults,
            } => Command::Explore {
                opts: ExploreOptions {
                    seeds: SeedSet::new(seeds.0, seeds.1, shard),
                    jobs: resolve_jobs(jobs)?,
                    bug,
                    shrink: !no_shrink,
                    max_failures,
                    faults,
                    regressions: (!dry_run).then_some(regressions),
                },
                json,
            },
            Cmd::Faults {
                scenario,
                mode,
                integrity,
                ignore_mark,
                points,
                samples,
                point,
                sample,
                io_points,
                bug,
                json,
            } => {
                let s = Scenario::load(&scenario)?;
                migsim_harness::limits::check_faults(&s)?;
                if samples == 0 {
                    return Err("--samples must be at least 1".into());
                }
                Command::Faults {
                    scenario: Box::new(s),
                    path: scenario,
                    opts: migsim_harness::faults::FaultsOptions {
                        mode,
                        integrity,
                        ignore_mark,
                        points,
                        samples,
                        only: point.zip(sample),
                        bug,
                        io_points,
                        ..migsim_harness::faults::FaultsOptions::default()
                    },
                    json,
                }
            }
            Cmd::Merge { reports, json } => Command::Merge { reports, json },
            Cmd::Replay { paths, bless } => {
                let files = scenario::scenario_files(&paths)?;
                if files.is_empty() {
                    return Err("no scenario files (*.toml) found".into());
                }
                Command::Replay { files, bless }
            }
            Cmd::Inspect { file, json } => Command::Inspect { file, json },
            Cmd::Extract {
                file,
                block,
                output,
            } => Command::Extract {
                file,
                block,
                output,
            },
            Cmd::Report {
                scenarios,
                output,
                jobs,
                qemu_run,
            } => {
                let jobs = resolve_jobs(jobs)?;
                crate::files::check_output_dir(&output, "--output")?;
                if !qemu_run.is_empty() {
                    if !scenarios.is_empty() {
                        return Err(
                            "--qemu-run reports QEMU runs only: give scenarios to `migsim qemu run` \
                             (or run `migsim report` without --qemu-run)"
                                .into(),
                        );
                    }
                    return Ok(Command::QemuReport {
                        files: qemu_run,
                        output,
                    });
                }
                Command::Report {
                    scenarios,
                    output,
                    jobs,
                }
            }
            Cmd::Bench {
                size,
                reps,
                dir,
                channels,
                read_channels,
                no_qemu,
                only,
                json,
            } => Command::Bench {
                opts: BenchOptions {
                    size,
                    reps,
                    dir,
                    channels: match channels {
                        Some(n) => bench_channels("--channels", n)?,
                        // One per CPU, within the bound on a large machine.
                        None => default_jobs().min(migsim_harness::limits::MAX_CHANNELS),
                    },
                    read_channels: bench_channels("--read-channels", read_channels)?,
                    qemu: !no_qemu,
                    only,
                },
                json,
            },
        })
    }
}

/// A bench thread count (`--channels`, `--read-channels`): 1 to
/// [`migsim_harness::limits::MAX_CHANNELS`], as a run's `--channels`.
fn bench_channels(flag: &str, n: usize) -> Result<usize, String> {
    let most = migsim_harness::limits::MAX_CHANNELS;
    match n {
        0 => Err(format!("{flag} must be at least 1")),
        n if n > most => Err(format!("{flag} {n}: at most {most}")),
        n => Ok(n),
    }
}

fn resolve_run(
    path: Option<&Path>,
    seed: Option<u64>,
    json: bool,
    out: Option<PathBuf>,
    bug: Option<Bug>,
    big: &BigArgs,
) -> Result<RunConfig, String> {
    let mut s = match path {
        Some(p) => Scenario::load(p)?,
        None => Scenario::default_scenario(),
    };
    if let Some(seed) = seed {
        s.seed = seed;
        s.expect.digest = None;
    }
    big.apply(&mut s)?;
    // A bug variant's failure is replayed with the variant.
    let flags = big.replay_flags(bug);
    let replay = |seed| ReplayCommand::Run {
        scenario: path.map(Path::to_path_buf),
        seed,
        flags: flags.clone(),
    };
    Ok(RunConfig {
        replay: replay(seed),
        replay_with_seed: replay(seed.or(Some(s.seed))),
        options: RunOptions {
            bug,
            file_dir: big.file_dir.clone(),
            direct_io: big.direct_io,
            channels: big.channels,
            progress: None,
            durability: if big.durable {
                migsim_format::Durability::Durable
            } else {
                migsim_format::Durability::QemuCompatible
            },
            integrity: big.integrity,
            io_fault: big.fail_write,
            ..RunOptions::default()
        },
        scenario: s,
        json,
        out,
    })
    .and_then(|c| {
        migsim_harness::limits::check_run(&c.scenario, &c.options)?;
        if let Some(dir) = &c.out {
            if c.scenario.guest.extents {
                return Err(
                    "--out needs the files' bytes; the extent mode keeps page identities".into(),
                );
            }
            crate::files::check_output_dir(dir, "--out")?;
        }
        Ok(c)
    })
}

impl BigArgs {
    /// The flags again, for a replay command.
    fn replay_flags(&self, bug: Option<Bug>) -> RunFlags {
        RunFlags {
            ram: self.ram,
            writers: self.writers.clone(),
            extents: self.extents,
            file_dir: self.file_dir.clone(),
            direct_io: self.direct_io,
            channels: self.channels,
            durable: self.durable,
            integrity: self.integrity,
            fail_write: self.fail_write,
            bug,
        }
    }

    /// Apply --ram and --writers; either makes the scenario's digest
    /// expectation meaningless, so it is dropped.
    fn apply(&self, s: &mut Scenario) -> Result<(), String> {
        if let Some(r) = self.ram {
            if r == 0 || !r.is_multiple_of(4096) {
                return Err(format!("--ram {r}: must be a positive multiple of 4 KiB"));
            }
            let first = s
                .guest
                .blocks
                .first_mut()
                .ok_or("the scenario has no RAMBlock to resize")?;
            first.size = scenario::Size(r);
            s.expect.digest = None;
        }
        if self.extents && !s.guest.extents {
            s.guest.extents = true;
            s.expect.digest = None;
        }
        if let Some(ws) = &self.writers {
            s.migration.writers = ws.clone();
            s.expect.digest = None;
            s.expect.min_sequential_ram_ratio = None;
        }
        if self.channels == 0 {
            return Err("--channels must be at least 1".into());
        }
        // Other bytes, or a run that fails: the recorded digest and
        // verdict no longer apply.
        if self.durable || self.integrity {
            s.expect.digest = None;
        }
        if self.fail_write.is_some() {
            s.expect.digest = None;
            s.expect.error = None;
            s.expect.verdict = scenario::Verdict::Pass;
        }
        if let Some(d) = &self.file_dir {
            crate::files::check_output_dir(d, "--file-dir")?;
        }
        s.validate()
    }
}

fn parse_range(s: &str) -> Result<(u64, u64), String> {
    let (a, b) = s.split_once("..").ok_or("expected A..B, e.g. 0..200")?;
    let a: u64 = a.trim().parse().map_err(|e| format!("{a}: {e}"))?;
    let b: u64 = b.trim().parse().map_err(|e| format!("{b}: {e}"))?;
    if b <= a {
        return Err(format!("empty range {a}..{b}"));
    }
    Ok((a, b))
}

fn parse_shard(s: &str) -> Result<(u64, u64), String> {
    let (k, n) = s.split_once('/').ok_or("expected K/N, e.g. 2/4")?;
    let k: u64 = k.trim().parse().map_err(|e| format!("{k}: {e}"))?;
    let n: u64 = n.trim().parse().map_err(|e| format!("{n}: {e}"))?;
    if n == 0 || k == 0 || k > n {
        return Err(format!("shard {k}/{n}: need 1 <= K <= N"));
    }
    Ok((k, n))
}

fn parse_mode(s: &str) -> Result<migsim_format::Durability, String> {
    use migsim_format::Durability;
    Durability::ALL
        .into_iter()
        .find(|d| d.name() == s)
        .ok_or_else(|| format!("{s:?}: one of qemu, durable"))
}

fn parse_points(s: &str) -> Result<migsim_harness::faults::Points, String> {
    use migsim_harness::faults::Points;
    if let Some((_, p)) = Points::NAMED.into_iter().find(|(name, _)| *name == s) {
        return Ok(p);
    }
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(Points::Sampled(n)),
        _ => Err(format!("{s:?}: `all`, `last` or a number of points >= 1")),
    }
}
