//! Running a scenario end to end: set capabilities, drive the pre-copy
//! simulation through every writer, judge the files with the oracle,
//! compute the digest, and compare against the scenario's expectations.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::bugs::{Bug, BugHooks};
use crate::oracle::{Invariant, InvariantResult, Judged, OracleInput, WrittenFile};
use crate::scenario::{Scenario, Verdict};
use crate::sim::content::PageState;
use crate::sim::dest::VerifyingDestination;
use crate::sim::guest::Guest;
use crate::sim::precopy::{PassStats, run_precopy};
use crate::sim::rng;
use crate::sim::simfile::{IoFault, SimFile, WriteRecord};
use crate::sim::workload::Workload;
use migsim_format::Layout;
use migsim_format::SaveError;
use migsim_format::caps::{Capabilities, MigrationConfig, Parameters};
use migsim_format::durable::Durability;
use migsim_format::io::MigFile;
use migsim_format::reader::{LoadOptions, NullSink, load};
use migsim_format::writer::RamBlockDesc;
use migsim_format::writer::{DeviceState, MigrationWriter};

/// One writer's file after a run.
#[derive(Debug, Serialize)]
pub struct FileReport {
    /// The writer's layout.
    pub writer: Layout,
    /// Final size in bytes.
    pub size: u64,
    /// Bytes written, overwrites counted.
    pub bytes_written: u64,
    /// Bytes allocated (4 KiB granules).
    pub allocated: u64,
    /// File size at the end of setup (index 0) and of each pass after it,
    /// the final pass (with device state and trailer) last.
    pub size_after_pass: Vec<u64>,
    /// File size after each write.
    #[serde(skip)]
    pub log: Vec<WriteRecord>,
    /// The file.
    #[serde(skip)]
    pub file: SimFile,
}

/// Everything a run produced.
#[derive(Debug, Serialize)]
pub struct RunReport {
    /// Scenario name.
    pub scenario: String,
    /// Seed.
    pub seed: u64,
    /// Verdict.
    pub verdict: Verdict,
    /// Refusal message (verdict error).
    pub error: Option<String>,
    /// Live passes.
    pub passes: u32,
    /// Switchover by downtime budget (not max_passes).
    pub converged: bool,
    /// Pages sent, final pass included.
    pub pages_sent: u64,
    /// Guest writes during the run.
    pub guest_writes: u64,
    /// Guest RAM bytes.
    pub ram_bytes: u64,
    /// Sequential file size, if written.
    pub sequential_size: Option<u64>,
    /// Fixed-ram file size, if written.
    pub fixed_ram_size: Option<u64>,
    /// The fixed-ram size bound for this layout and parameters.
    pub fixed_ram_bound: u64,
    /// Per pass.
    pub per_pass: Vec<PassStats>,
    /// Oracle results.
    pub invariants: Vec<InvariantResult>,
    /// Per file.
    pub files: Vec<FileReport>,
    /// Digest over verdict, figures and every file's bytes.
    pub digest: String,
    /// Seed of the page contents (see [`crate::sim::content`]).
    #[serde(skip)]
    pub content_seed: u64,
    /// Every page's state at switchover: what the destination must hold.
    #[serde(skip)]
    pub switchover: Vec<Vec<PageState>>,
    /// The run could not finish because its files on disk could not be
    /// created or written (`--file-dir` unwritable or full): not a
    /// verdict, and the other fields mean nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment_error: Option<String>,
    /// With `[concurrency]`: each writer's run of the model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<Vec<crate::sched::run::ConcurrencyFigures>>,
}

/// Called with the pages sent so far, after every batch.
pub type Progress = std::sync::Arc<dyn Fn(u64) + Send + Sync>;

/// Where a run keeps its files and how many channels write and read them.
/// None of it but `bug` changes the verdict, the files' bytes or the
/// digest.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// A deliberately wrong variant to inject.
    pub bug: Option<Bug>,
    /// Write seekable files into this directory (`<scenario>.<writer>.mig`)
    /// instead of memory: for guests larger than memory.
    pub file_dir: Option<PathBuf>,
    /// Open files with O_DIRECT for page writes (with `file_dir`).
    pub direct_io: bool,
    /// Writer and reader channels (multifd-like); 0 and 1 mean one.
    pub channels: usize,
    /// Told of the pages sent as the migration goes (a progress bar).
    pub progress: Option<Progress>,
    /// How the writers order writes and syncs (QEMU's by default; the
    /// durable mode changes the files' bytes: the completion mark).
    pub durability: Durability,
    /// Append the integrity trailer to every file (changes the files'
    /// bytes), which the restore then verifies.
    pub integrity: bool,
    /// Keep every file's journal (writes with their bytes, syncs) for the
    /// fault model ([`crate::faults`]); files in memory only.
    pub journal: bool,
    /// Fail one write of one writer's file ([`IoFault`]).
    pub io_fault: Option<(Layout, usize, IoFault)>,
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("bug", &self.bug)
            .field("file_dir", &self.file_dir)
            .field("direct_io", &self.direct_io)
            .field("channels", &self.channels)
            .field("progress", &self.progress.is_some())
            .field("durability", &self.durability)
            .field("integrity", &self.integrity)
            .field("journal", &self.journal)
            .field("io_fault", &self.io_fault)
            .finish()
    }
}

impl RunOptions {
    /// Correct code except for `bug`; files in memory, one channel.
    pub fn with_bug(bug: Bug) -> Self {
        RunOptions {
            bug: Some(bug),
            ..RunOptions::default()
        }
    }
}

/// Simulated devices written after RAM: contents are a pure function of
/// the seed and the guest's write count at switchover.
pub(crate) fn devices(s: &Scenario, guest: &Guest) -> Vec<DeviceState> {
    devices_after(s, guest.writes())
}

/// The simulated devices of a guest that made `writes` writes.
pub(crate) fn devices_after(s: &Scenario, writes: u64) -> Vec<DeviceState> {
    if !s.guest.devices {
        return Vec::new();
    }
    let seed = s.seed;
    let key = rng::derive(seed, "devices") ^ writes;
    [
        ("timer", 2u32, 24usize),
        ("cpu", 12, 128),
        ("serial", 3, 32),
    ]
    .iter()
    .map(|&(name, version, len)| {
        let mut s = rng::derive(key, name);
        let payload = (0..len)
            .map(|_| {
                s = rng::derive(s, "b");
                s as u8
            })
            .collect();
        DeviceState {
            idstr: name.to_string(),
            instance_id: 0,
            version_id: version,
            payload,
        }
    })
    .collect()
}

/// The scenario's guest after its prefill, and a workload on it drawing
/// from the seed's stream `label` (`"workload"`: the simple driver's, and
/// vCPU 0's in the concurrency model).
pub(crate) fn guest_and_workload(s: &Scenario, label: &str) -> (Guest, Workload) {
    let mut guest = Guest::new(rng::derive(s.seed, "content"), s.blocks());
    if s.migration
        .has(migsim_format::caps::Capability::XIgnoreShared)
    {
        guest = guest.ignoring_shared();
    }
    let mut prefill_rng = rng::stream(s.seed, "prefill");
    Workload::prefill(&mut guest, s.guest.initial_fill, &mut prefill_rng);
    let workload = Workload::new(s.workload.clone(), &guest, rng::stream(s.seed, label));
    (guest, workload)
}

/// Capabilities a writer runs with, or the exact refusal: capabilities are
/// set, then parameters, then `migrate` is checked against the transport.
pub fn writer_caps(s: &Scenario, kind: Layout) -> Result<Capabilities, String> {
    let m = &s.migration;
    let mut cfg = MigrationConfig::new(m.profile);
    let mut settings: Vec<_> = m.capabilities.iter().map(|&c| (c, true)).collect();
    if kind == Layout::FixedRam {
        settings.push((m.profile.layout_capability(), true));
    }
    cfg.set_capabilities(&settings).map_err(|e| e.to_string())?;
    cfg.set_parameters(Parameters {
        multifd_compression: m.multifd_compression,
        direct_io: m.direct_io,
        tls_creds: String::new(),
    })
    .map_err(|e| e.to_string())?;
    cfg.check_migrate(m.transport).map_err(|e| e.to_string())?;
    Ok(cfg.caps)
}

/// Run a scenario, with a bug variant, files and channels as `o` says
/// (`RunOptions::default()`: correct code, files in memory, one channel).
pub fn run(s: &Scenario, o: &RunOptions) -> RunReport {
    if s.guest.extents {
        return crate::sim::extent::run(s, o);
    }
    let bug = o.bug;
    let channels = o.channels.max(1);
    let blocks = s.blocks();
    let (mut guest, mut workload) = guest_and_workload(s, "workload");
    let ram_bytes = guest.ram_bytes();

    let mut report = RunReport {
        scenario: s.name.clone(),
        seed: s.seed,
        verdict: Verdict::Pass,
        error: None,
        passes: 0,
        converged: false,
        pages_sent: 0,
        guest_writes: 0,
        ram_bytes,
        sequential_size: None,
        fixed_ram_size: None,
        fixed_ram_bound: 0,
        per_pass: Vec::new(),
        invariants: Vec::new(),
        files: Vec::new(),
        digest: String::new(),
        content_seed: guest.seed(),
        switchover: Vec::new(),
        environment_error: None,
        concurrency: None,
    };

    // Set up every writer; a refusal must leave its file untouched.
    let mut writers = Vec::new();
    let mut caps_of = Vec::new();
    // Writers in one canonical order, so the digest does not depend on
    // the order a scenario or `--writers` lists them in.
    let kinds = Layout::ALL
        .into_iter()
        .filter(|l| s.migration.writers.contains(l));
    for kind in kinds {
        let file = match &o.file_dir {
            _ if !s.migration.transport.seekable() => SimFile::non_seekable(),
            Some(dir) => {
                let path = dir.join(format!("{}.{}.mig", s.name, kind.name()));
                match SimFile::on_disk(&path, o.direct_io) {
                    Ok(f) => f,
                    Err(e) => {
                        report.environment_error =
                            Some(format!("cannot create {}: {e}", path.display()));
                        return report;
                    }
                }
            }
            None => SimFile::new(),
        };
        let file = if o.journal { file.with_journal() } else { file };
        let file = match o.io_fault {
            Some((layout, at, fault)) if layout == kind => file.fail_write(at, fault),
            _ => file,
        };
        let caps = match writer_caps(s, kind) {
            Ok(c) => c,
            Err(e) => return refused(report, e, &file),
        };
        match MigrationWriter::start(file, &s.guest.machine, &caps, blocks.clone()) {
            Ok(w) => writers.push(
                w.with_durability(o.durability)
                    .with_integrity(o.integrity)
                    .with_hooks(BugHooks(bug)),
            ),
            // The header could not be written (a full or failing disk):
            // the environment, not a verdict, as for the writes later.
            Err(SaveError::Io(e)) if o.file_dir.is_some() => {
                report.environment_error = Some(format!(
                    "writing the migration files in {}: {e}",
                    o.file_dir.as_deref().unwrap_or(Path::new("")).display()
                ));
                return report;
            }
            Err(e) => return refused(report, e.to_string(), &SimFile::new()),
        }
        caps_of.push((kind, caps));
    }

    if let Some(spec) = &s.concurrency {
        return crate::sched::run::run_concurrent(s, o, spec, writers, caps_of, report);
    }
    let content_seed = guest.seed();
    let progress = |sent: u64| {
        if let Some(p) = &o.progress {
            p(sent)
        }
    };
    let result = run_precopy(
        &mut guest,
        &mut workload,
        &s.parameters,
        writers,
        |g| devices(s, g),
        bug,
        channels,
        &progress,
    );
    let (outcome, mut files) = match result {
        Ok(x) => x,
        Err(SaveError::Io(e)) if o.file_dir.is_some() => {
            report.environment_error = Some(format!(
                "writing the migration files in {}: {e}",
                o.file_dir.as_deref().unwrap_or(Path::new("")).display()
            ));
            return report;
        }
        Err(e @ SaveError::Io(_)) if o.io_fault.is_some() => {
            report.verdict = Verdict::Error;
            report.error = Some(e.to_string());
            report.digest = digest(&report);
            return report;
        }
        Err(e) => return refused(report, e.to_string(), &SimFile::new()),
    };
    // Complete: the files on disk replace what was at their paths (a run
    // that failed above dropped them, leaving the previous files).
    for f in files.iter_mut() {
        if let Err(e) = f.commit() {
            report.environment_error = Some(format!(
                "writing the migration files in {}: {e}",
                o.file_dir.as_deref().unwrap_or(Path::new("")).display()
            ));
            return report;
        }
    }
    let devs = devices(s, &guest);
    report.passes = outcome.passes;
    report.converged = outcome.converged;
    report.pages_sent = outcome.pages_sent;
    report.guest_writes = outcome.guest_writes;
    report.per_pass = outcome.per_pass.clone();

    let oracle = OracleInput {
        seed: content_seed,
        machine: &s.guest.machine,
        blocks: &blocks,
        states: guest.states(),
        sends: &outcome.sends,
        passes: outcome.passes,
        max_passes: s.parameters.max_passes,
        part_sections: u64::from(outcome.passes),
        max_part_sections: u64::from(s.parameters.max_passes),
        devices: &devs,
        dirty_destination: s.destination.dirty_memory,
        profile: s.migration.profile,
        bug,
        channels,
        durability: o.durability,
        integrity: o.integrity,
        ignore_shared: s
            .migration
            .has(migsim_format::caps::Capability::XIgnoreShared),
    };
    report.fixed_ram_bound = oracle.fixed_ram_bound();

    // The destination's own fixed-ram setting, when the scenario gives one
    // (only validated capabilities matter to the load).
    if let Some(e) = files.iter().find_map(|f| destination_layout_refusal(s, f)) {
        report.verdict = Verdict::Error;
        report.error = Some(e);
    }

    // The destination's own RAMBlocks, when the scenario gives them: each
    // file is loaded against them (block names and used_length checked for
    // both layouts; QEMU 10.0.2 skips the used_length check for mapped-ram).
    if let (Verdict::Pass, Some(local)) = (report.verdict, destination_blocks(s)) {
        for ((_, caps), f) in caps_of.iter().zip(&files) {
            let opts = LoadOptions {
                machine: Some(s.guest.machine.clone()),
                caps: Some(*caps),
                skip_page_data: true,
                ..LoadOptions::default()
            };
            let mut dest = VerifyingDestination::new(content_seed, &local, false);
            if let Err(e) = load(f, &opts, &mut dest) {
                report.verdict = Verdict::Error;
                report.error = Some(e.to_string());
                break;
            }
        }
    }

    // The files' content hashes, the digest's costly part, on a thread of
    // their own while the oracle judges (whose serial parts leave a CPU
    // idle); they depend on the bytes only.
    let hashes = std::thread::scope(|sc| {
        let hashing = std::thread::Builder::new()
            .spawn_scoped(sc, || file_hashes(files.iter()))
            .ok();
        if report.verdict != Verdict::Error {
            let written: Vec<_> = caps_of
                .iter()
                .zip(&files)
                .map(|(&(layout, caps), file)| WrittenFile { layout, caps, file })
                .collect();
            report.invariants = oracle.judge(&written);
            if report.invariants.iter().any(|i| !i.ok) {
                report.verdict = Verdict::Fail;
            }
        }
        match hashing.map(|t| t.join()) {
            Some(Ok(hashes)) => hashes,
            _ => file_hashes(files.iter()),
        }
    });

    for ((kind, _), file) in caps_of.iter().zip(files) {
        match kind {
            Layout::Sequential => report.sequential_size = Some(file.len()),
            Layout::FixedRam => report.fixed_ram_size = Some(file.len()),
        }
        report.files.push(FileReport {
            writer: *kind,
            size: file.len(),
            bytes_written: file.bytes_written(),
            allocated: file.allocated(),
            size_after_pass: size_after_pass(file.log()),
            log: file.log().to_vec(),
            file,
        });
    }
    report.digest = digest_with(
        &report,
        caps_of.iter().map(|&(layout, _)| layout).zip(hashes),
    );
    report.switchover = guest.states().to_vec();
    report
}

/// With `destination.fixed_ram`: the refusal of a destination with that
/// layout setting loading `file` (only validated capabilities matter to
/// the load); `None` when it loads or the scenario gives no setting.
pub(crate) fn destination_layout_refusal<F: MigFile>(s: &Scenario, file: &F) -> Option<String> {
    let dest_fixed = s.destination.fixed_ram?;
    // Otherwise like the source: x-ignore-shared, also validated, as the
    // scenario sets it.
    let shared = s
        .migration
        .has(migsim_format::caps::Capability::XIgnoreShared);
    let mut dest_caps = Capabilities::for_profile(s.migration.profile);
    dest_caps
        .set(&[
            (s.migration.profile.layout_capability(), dest_fixed),
            (migsim_format::caps::Capability::XIgnoreShared, shared),
        ])
        .expect("the layout capability and x-ignore-shared are always accepted");
    let opts = LoadOptions {
        machine: Some(s.guest.machine.clone()),
        caps: Some(dest_caps),
        skip_page_data: true,
        ..LoadOptions::default()
    };
    load(file, &opts, &mut NullSink)
        .err()
        .map(|e| e.to_string())
}

/// `destination.blocks`, as the destination declares them.
pub(crate) fn destination_blocks(s: &Scenario) -> Option<Vec<RamBlockDesc>> {
    s.destination
        .blocks
        .as_ref()
        .map(|d| d.iter().map(crate::scenario::BlockSpec::desc).collect())
}

pub(crate) fn size_after_pass(log: &[WriteRecord]) -> Vec<u64> {
    let mut sizes: Vec<u64> = Vec::new();
    for w in log {
        let p = w.pass as usize;
        if sizes.len() <= p {
            let last = sizes.last().copied().unwrap_or(0);
            sizes.resize(p + 1, last);
        }
        sizes[p] = sizes[p].max(w.file_len);
    }
    sizes
}

pub(crate) fn refused(mut report: RunReport, message: String, untouched: &SimFile) -> RunReport {
    report.verdict = Verdict::Error;
    report.error = Some(message);
    if untouched.len() != 0 || !untouched.log().is_empty() {
        report.verdict = Verdict::Fail;
        report.invariants.push(InvariantResult {
            name: Invariant::RefusalWritesNothing,
            writer: Judged(None),
            ok: false,
            detail: format!("a refused migration wrote {} bytes", untouched.len()),
        });
    }
    report.digest = digest(&report);
    report
}

pub(crate) fn digest(r: &RunReport) -> String {
    let hashes = file_hashes(r.files.iter().map(|f| &f.file));
    digest_with(r, r.files.iter().map(|f| f.writer).zip(hashes))
}

/// Each file's content hash, each on its own thread (the calling one if
/// none starts).
fn file_hashes<'a>(files: impl Iterator<Item = &'a SimFile>) -> Vec<blake3::Hash> {
    let files: Vec<&SimFile> = files.collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = files
            .iter()
            .map(|f| {
                std::thread::Builder::new()
                    .spawn_scoped(s, || f.content_hash())
                    .ok()
            })
            .collect();
        handles
            .into_iter()
            .zip(&files)
            .map(|(t, f)| match t.map(|t| t.join()) {
                Some(Ok(hash)) => hash,
                _ => f.content_hash(),
            })
            .collect()
    })
}

/// The digest of `r`'s figures and of its files' content hashes (`files`:
/// each writer's layout and hash, in the report's order).
pub(crate) fn digest_with(
    r: &RunReport,
    files: impl IntoIterator<Item = (Layout, blake3::Hash)>,
) -> String {
    #[derive(Serialize)]
    struct Figures<'a> {
        seed: u64,
        verdict: Verdict,
        error: &'a Option<String>,
        passes: u32,
        converged: bool,
        pages_sent: u64,
        guest_writes: u64,
        per_pass: &'a [PassStats],
        invariants: &'a [InvariantResult],
        #[serde(skip_serializing_if = "Option::is_none")]
        concurrency: Option<&'a [crate::sched::run::ConcurrencyFigures]>,
    }
    let mut h = blake3::Hasher::new();
    let figures = Figures {
        seed: r.seed,
        verdict: r.verdict,
        error: &r.error,
        passes: r.passes,
        converged: r.converged,
        pages_sent: r.pages_sent,
        guest_writes: r.guest_writes,
        per_pass: &r.per_pass,
        invariants: &r.invariants,
        concurrency: r.concurrency.as_deref(),
    };
    h.update(&serde_json::to_vec(&figures).expect("figures serialize"));
    for (writer, hash) in files {
        h.update(writer.name().as_bytes());
        h.update(hash.as_bytes());
    }
    h.finalize().to_hex().to_string()
}

/// How a run differed from its scenario's expectations. `Display` gives
/// the line `replay` prints; JSON carries the same text.
#[derive(Clone, Debug, PartialEq)]
pub enum Difference {
    /// Another verdict (with the run's refusal, if any).
    Verdict {
        /// The run's verdict.
        got: Verdict,
        /// The expected one.
        want: Verdict,
        /// The run's refusal message.
        error: Option<String>,
    },
    /// An invariant that failed, listed under a verdict difference.
    Invariant(InvariantResult),
    /// Another refusal message.
    Error {
        /// The run's message.
        got: Option<String>,
        /// The expected one.
        want: String,
    },
    /// The sequential file is smaller than the expected multiple of RAM.
    SequentialRatio {
        /// The run's sequential size over guest RAM.
        got: f64,
        /// The expected minimum.
        want: f64,
    },
    /// Converged or not, unlike expected.
    Converged {
        /// The run's.
        got: bool,
        /// Expected.
        want: bool,
    },
    /// Another digest.
    Digest {
        /// The run's digest.
        got: String,
        /// The recorded one.
        want: String,
    },
    /// A power loss during a durable save restores wrong memory (the
    /// fault model, [`crate::faults`]: `explore --faults`).
    Crash {
        /// The file's layout.
        layout: Layout,
        /// Writes issued before the power loss.
        point: usize,
        /// Survival sample.
        sample: u32,
        /// Which pages, and why.
        detail: String,
    },
}

/// What a difference is about, ignoring figures and stories: shrinking
/// keeps a simplification only while the same kind of failure remains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DifferenceKind {
    /// A verdict difference, by (got, want).
    Verdict(Verdict, Verdict),
    /// A failed invariant.
    Invariant(Invariant),
    /// Another refusal message.
    Error,
    /// The sequential size ratio.
    SequentialRatio,
    /// Convergence.
    Converged,
    /// The digest.
    Digest,
    /// A durable save's crash restoring wrong memory.
    Crash,
}

impl Difference {
    /// What the difference is about.
    pub fn kind(&self) -> DifferenceKind {
        match self {
            Difference::Verdict { got, want, .. } => DifferenceKind::Verdict(*got, *want),
            Difference::Invariant(i) => DifferenceKind::Invariant(i.name),
            Difference::Error { .. } => DifferenceKind::Error,
            Difference::SequentialRatio { .. } => DifferenceKind::SequentialRatio,
            Difference::Converged { .. } => DifferenceKind::Converged,
            Difference::Digest { .. } => DifferenceKind::Digest,
            Difference::Crash { .. } => DifferenceKind::Crash,
        }
    }
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Difference::Verdict { got, want, error } => {
                write!(f, "verdict {}, expected {}", got.name(), want.name())?;
                if let Some(e) = error {
                    write!(f, ": {e}")?;
                }
                Ok(())
            }
            Difference::Invariant(i) => {
                write!(
                    f,
                    "invariant {} [{}] failed: {}",
                    i.name, i.writer, i.detail
                )
            }
            Difference::Error { got, want } => write!(
                f,
                "error {:?}, expected {want:?}",
                got.as_deref().unwrap_or("(none)")
            ),
            Difference::SequentialRatio { got, want } => write!(
                f,
                "sequential file is {got:.2}x guest RAM, expected at least {want}x"
            ),
            Difference::Converged { got, want } => {
                write!(f, "converged = {got}, expected {want}")
            }
            Difference::Digest { got, want } => write!(f, "digest {got}, expected {want}"),
            Difference::Crash {
                layout,
                point,
                sample,
                detail,
            } => write!(
                f,
                "durable save: a power loss after write {point} of the {layout} file \
                 (sample {sample}) restores wrong memory: {detail}"
            ),
        }
    }
}

impl Serialize for Difference {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Differences between a run and its scenario's expectations.
pub fn check_expectations(s: &Scenario, r: &RunReport) -> Vec<Difference> {
    let mut diffs = Vec::new();
    let e = &s.expect;
    if r.verdict != e.verdict {
        diffs.push(Difference::Verdict {
            got: r.verdict,
            want: e.verdict,
            error: r.error.clone(),
        });
        for i in r.invariants.iter().filter(|i| !i.ok) {
            diffs.push(Difference::Invariant(i.clone()));
        }
    }
    if let Some(want) = &e.error
        && r.error.as_deref() != Some(want.as_str())
    {
        diffs.push(Difference::Error {
            got: r.error.clone(),
            want: want.clone(),
        });
    }
    if let Some(ratio) = e.min_sequential_ram_ratio {
        let got = r.sequential_size.unwrap_or(0) as f64 / r.ram_bytes as f64;
        if got < ratio {
            diffs.push(Difference::SequentialRatio { got, want: ratio });
        }
    }
    if let Some(c) = e.converged
        && r.converged != c
    {
        diffs.push(Difference::Converged {
            got: r.converged,
            want: c,
        });
    }
    if let Some(d) = &e.digest
        && *d != r.digest
    {
        diffs.push(Difference::Digest {
            got: r.digest.clone(),
            want: d.clone(),
        });
    }
    diffs
}
