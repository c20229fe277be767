//! The fault model: power loss at every write, with the unsynced writes
//! surviving in any subset, whole or torn; ENOSPC, EIO and short writes at
//! a chosen write; and the verdict on what a destination restores from
//! each resulting file.
//!
//! A scenario is run once with every file keeping its journal (each write
//! with its bytes, each sync: [`crate::sim::simfile::JournalEntry`]). The
//! disk is modelled as a page cache in front of a platter:
//!
//! * a write lands in the cache; a sync (fdatasync) makes every write
//!   before it durable;
//! * a **power loss at point `k`** happens after the first `k` writes (and
//!   before any sync that follows the `k`-th): the durable writes are on
//!   disk, and of the volatile ones (since the last sync) any subset may
//!   have been written back, each whole, not at all, or **torn** at
//!   sector granularity (512 B or 4 KiB, aligned to the file offset).
//!   Applying the surviving pieces in issue order covers every reordering
//!   a page cache can produce (it writes back the latest bytes of a page,
//!   never an older write over a newer one);
//! * the file's size is what the surviving writes reach.
//!
//! Which subset survives is the **sample** ([`Survival::of`]): 0 all lost,
//! 1 all kept (also what a *cancelled* migration leaves: the source
//! stopped after write `k`), 2 the newer half kept and the older lost
//! (writeback in reverse order), 3 all but one kept, 4 all kept but one
//! 512 B sector of one write lost, then random subsets (whole, lost or torn) from
//! the fault stream `faults/<layout>/<point>/<sample>` of the scenario
//! seed (each write kept with odds 6 in 8, lost 1 in 8, torn 1 in 8 with
//! each sector kept at even odds), torn at 512 B (even samples) or 4 KiB (odd). A crash is named by
//! (layout, point, sample) and replays exactly.
//!
//! Each image is loaded by migsim's strict reader into a destination (as
//! the scenario's: fresh or dirty) and judged against the guest's memory
//! at switchover: **exact** (equal), **refused** (the reader's error), or
//! **wrong** (loaded, memory differs: the failure). In durable mode the
//! reader requires the completion mark ([`migsim_format::durable`]); with
//! the integrity trailer ([`migsim_format::integrity`]) it verifies every
//! chunk first.
//!
//! I/O faults ([`IoFault`]): the scenario is run again with write `k` of
//! one file failing; the writer must return a clear error (no panic), and
//! the file it leaves (writes before `k`, and a short write's landed
//! part) must not restore wrong memory either.
//!
//! A **destination killed mid-load** ([`KillCase`]): the complete file is
//! loaded with the destination failing at its `k`-th page write (the VMM
//! killed, its memory left as far as it got), for [`KILL_POINTS`] points
//! spread over the load. The load must report the failure (never
//! success), and a restarted load of the same file into that half-written
//! memory must be exact.
//!
//! Not modelled: metadata other than the file size, and device write
//! caches that lie about fdatasync.

use serde::Serialize;

use crate::bugs::Bug;
use crate::run::{RunOptions, run, writer_caps};
use crate::scenario::{Scenario, Verdict as RunVerdict};
use crate::sim::content::PageState;
use crate::sim::dest::VerifyingDestination;
use crate::sim::rng;
use crate::sim::simfile::{IoFault, JournalEntry};
use migsim_format::Layout;
use migsim_format::LoadError;
use migsim_format::durable::Durability;
use migsim_format::reader::{LoadOptions, RamSink, load};
use migsim_format::writer::RamBlockDesc;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// What a crash image restored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Memory equals the guest's at switchover.
    Exact,
    /// The reader refused the file with an error.
    Refused,
    /// The file loaded and memory differs: the failure.
    Wrong,
}

/// How the volatile writes of a crash survive: see the module doc.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Survival {
    /// None reached the disk.
    AllLost,
    /// All did (a clean cut; a cancelled migration).
    AllKept,
    /// The newer half did, the older half did not: writeback in reverse
    /// order (a trailer on disk before what it describes).
    NewerHalf,
    /// All but one (chosen by the fault stream).
    OneLost,
    /// All, but one 512 B sector of them (each sector as likely) is lost:
    /// one write torn.
    OneTorn,
    /// Each kept (6 in 8), lost (1 in 8) or torn at the given sector size
    /// (1 in 8), at random.
    Random(u64),
}

impl Survival {
    /// The survival of sample `n`.
    pub fn of(n: u32) -> Survival {
        match n {
            0 => Survival::AllLost,
            1 => Survival::AllKept,
            2 => Survival::NewerHalf,
            3 => Survival::OneLost,
            4 => Survival::OneTorn,
            n if n % 2 == 1 => Survival::Random(512),
            _ => Survival::Random(4096),
        }
    }

    /// One line for reports.
    pub fn describe(self) -> String {
        match self {
            Survival::AllLost => "every unsynced write lost".into(),
            Survival::AllKept => "every write kept (a clean cut, or a cancelled save)".into(),
            Survival::NewerHalf => {
                "the newer half of the unsynced writes kept, the older lost".into()
            }
            Survival::OneLost => "every unsynced write kept but one".into(),
            Survival::OneTorn => {
                "every unsynced write kept, one sector of one lost (torn at 512 B)".into()
            }
            Survival::Random(s) => format!("a random subset of unsynced writes, torn at {s} B"),
        }
    }
}

/// Which crash points to try.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Points {
    /// Every write index, 0 to the number of writes.
    All,
    /// This many, drawn from the fault stream (always with the first and
    /// the last).
    Sampled(usize),
    /// Only the point after the last write: the save is complete as far
    /// as the writer knows, and a power loss comes before writeback (with
    /// many samples: the page cache's states after a save).
    Last,
}

impl Points {
    /// The points a word names on the command line (`--points all`,
    /// `--points last`); any other word is a number of points.
    pub const NAMED: [(&'static str, Points); 2] = [("all", Points::All), ("last", Points::Last)];
}

/// What `faults` does.
#[derive(Clone, Debug)]
pub struct FaultsOptions {
    /// How the writers order writes and syncs.
    pub mode: Durability,
    /// Files carry the integrity trailer, which the reader verifies.
    pub integrity: bool,
    /// Judge durable files as a reader that ignores the completion mark
    /// does (QEMU): the mark is not required.
    pub ignore_mark: bool,
    /// Which crash points.
    pub points: Points,
    /// Survival samples per point ([`Survival::of`] 0..samples; 8 by
    /// default).
    pub samples: u32,
    /// Only this crash (point, sample), for replay.
    pub only: Option<(usize, u32)>,
    /// A deliberately wrong variant to inject.
    pub bug: Option<Bug>,
    /// I/O fault points per kind and layout (0: none).
    pub io_points: usize,
    /// Stories kept for the first wrong cases.
    pub max_wrong: usize,
}

impl Default for FaultsOptions {
    fn default() -> Self {
        FaultsOptions {
            mode: Durability::QemuCompatible,
            integrity: false,
            ignore_mark: false,
            points: Points::All,
            samples: 8,
            only: None,
            bug: None,
            io_points: 4,
            max_wrong: 5,
        }
    }
}

/// One judged crash.
#[derive(Clone, Debug, Serialize)]
pub struct Case {
    /// The file's layout.
    pub layout: Layout,
    /// Writes issued before the power loss.
    pub point: usize,
    /// Survival sample.
    pub sample: u32,
    /// What the sample means.
    pub survival: String,
    /// Unsynced writes at that point.
    pub volatile: usize,
    /// The verdict.
    pub outcome: Outcome,
    /// Pages that differ (wrong), of all pages.
    pub bad_pages: u64,
    /// The reader's error (refused) or the differing pages (wrong).
    pub detail: String,
    /// The command that replays this crash (filled in by the caller,
    /// which knows the scenario's path).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub replay: String,
}

/// Counts for one layout.
#[derive(Clone, Debug, Serialize)]
pub struct LayoutFaults {
    /// The layout.
    pub layout: Layout,
    /// Writes in the journal.
    pub writes: usize,
    /// Syncs in the journal.
    pub syncs: usize,
    /// Crash points tried.
    pub points: usize,
    /// Crashes judged (points × samples).
    pub cases: usize,
    /// Exact restores.
    pub exact: usize,
    /// Refused files.
    pub refused: usize,
    /// Wrong restores.
    pub wrong: usize,
    /// Crash points with at least one wrong sample.
    pub wrong_points: usize,
    /// The first wrong cases.
    pub first_wrong: Vec<Case>,
    /// With [`FaultsOptions::only`]: that case.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub case: Option<Case>,
}

/// One I/O fault tried.
#[derive(Clone, Debug, Serialize)]
pub struct IoCase {
    /// The failing file's layout.
    pub layout: Layout,
    /// Index of the failing write.
    pub write: usize,
    /// The fault.
    pub fault: IoFault,
    /// The writer's error, as the run reported it (None: it did not fail,
    /// which is a failure of the harness or writer).
    pub error: Option<String>,
    /// What the file left behind restores.
    pub outcome: Outcome,
    /// The reader's error or the differing pages.
    pub detail: String,
    /// The command that shows the writer's error (filled in by the
    /// caller).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub replay: String,
}

/// Points at which a destination is killed mid-load, per layout.
pub const KILL_POINTS: u64 = 8;

/// A destination killed mid-load, then the load restarted.
#[derive(Clone, Debug, Serialize)]
pub struct KillCase {
    /// The file's layout.
    pub layout: Layout,
    /// The destination failed at this page write (1-based) ...
    pub at_write: u64,
    /// ... of this many in a whole load.
    pub of_writes: u64,
    /// What the killed load returned: its error, or `None` when it
    /// reported success (the failure).
    pub killed_load: Option<String>,
    /// The restarted load into the same memory.
    pub restart: Outcome,
    /// Its error or differing pages.
    pub detail: String,
}

/// A destination that dies at its `kill_at`-th page write (1-based; 0:
/// never), counting them. Pages go through `write_pages` and
/// `zero_pages` one call at a time (no direct buffers, no channel
/// split), so every call is a point.
struct Killing<'a, S: RamSink> {
    inner: &'a mut S,
    calls: u64,
    kill_at: u64,
}

impl<S: RamSink> Killing<'_, S> {
    fn tick(&mut self) -> Result<(), LoadError> {
        self.calls += 1;
        if self.calls == self.kill_at {
            return Err(LoadError::Io(std::io::Error::other(
                "destination killed mid-load",
            )));
        }
        Ok(())
    }
}

impl<S: RamSink> RamSink for Killing<'_, S> {
    fn declare_block(&mut self, name: &str, used_length: u64) -> Result<(), LoadError> {
        self.inner.declare_block(name, used_length)
    }
    fn write_pages(&mut self, block: usize, first: u64, data: &[u8]) -> Result<(), LoadError> {
        self.tick()?;
        self.inner.write_pages(block, first, data)
    }
    fn zero_pages(&mut self, block: usize, first: u64, count: u64) -> Result<(), LoadError> {
        self.tick()?;
        self.inner.zero_pages(block, first, count)
    }
}

/// Kill the destination at [`KILL_POINTS`] points of a load of `file`,
/// then restart the load into the same memory.
fn kills(judge: &Judge<'_>, layout: Layout, file: &crate::sim::simfile::SimFile) -> Vec<KillCase> {
    // How many page writes a whole load makes.
    let mut dest = VerifyingDestination::new(judge.seed, &judge.blocks, judge.dirty);
    let mut count = Killing {
        inner: &mut dest,
        calls: 0,
        kill_at: 0,
    };
    if load(file, &judge.opts, &mut count).is_err() {
        return Vec::new();
    }
    let total = count.calls;
    let mut at: Vec<u64> = (1..=KILL_POINTS)
        .map(|i| (total * i / KILL_POINTS).max(1))
        .collect();
    at.dedup();
    at.into_iter()
        .map(|k| {
            let mut dest = VerifyingDestination::new(judge.seed, &judge.blocks, judge.dirty);
            let mut sink = Killing {
                inner: &mut dest,
                calls: 0,
                kill_at: k,
            };
            let killed_load = match load(file, &judge.opts, &mut sink) {
                Ok(_) => None,
                Err(e) => Some(e.to_string()),
            };
            let (restart, detail) = match load(file, &judge.opts, &mut dest) {
                Err(e) => (Outcome::Refused, e.to_string()),
                Ok(_) => {
                    let (outcome, _, detail) = judge.compare(&dest);
                    (outcome, detail)
                }
            };
            KillCase {
                layout,
                at_write: k,
                of_writes: total,
                killed_load,
                restart,
                detail,
            }
        })
        .collect()
}

/// Everything `faults` found.
#[derive(Clone, Debug, Serialize)]
pub struct FaultsReport {
    /// Scenario name.
    pub scenario: String,
    /// Seed.
    pub seed: u64,
    /// The writers' mode.
    pub mode: Durability,
    /// With the integrity trailer.
    pub integrity: bool,
    /// The completion mark was not required.
    pub ignore_mark: bool,
    /// Samples per point.
    pub samples: u32,
    /// Per layout.
    pub layouts: Vec<LayoutFaults>,
    /// I/O faults.
    pub io: Vec<IoCase>,
    /// Destinations killed mid-load, then restarted.
    pub kills: Vec<KillCase>,
    /// The run itself did not migrate (a refusal or failure): nothing to
    /// crash.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_error: Option<String>,
}

impl FaultsReport {
    /// Wrong restores over every layout and I/O fault.
    pub fn wrong(&self) -> usize {
        self.layouts.iter().map(|l| l.wrong).sum::<usize>()
            + self
                .io
                .iter()
                .filter(|c| c.outcome == Outcome::Wrong || c.error.is_none())
                .count()
            + self
                .kills
                .iter()
                .filter(|k| k.killed_load.is_none() || k.restart != Outcome::Exact)
                .count()
    }
}

/// What a crash image is judged against.
struct Judge<'a> {
    blocks: Vec<RamBlockDesc>,
    states: &'a [Vec<PageState>],
    seed: u64,
    opts: LoadOptions,
    dirty: bool,
}

impl Judge<'_> {
    fn ignore_shared(&self) -> bool {
        self.opts
            .caps
            .is_some_and(|c| c.has(migsim_format::caps::Capability::XIgnoreShared))
    }

    fn judge(&self, image: &Vec<u8>) -> (Outcome, u64, String) {
        let mut dest = VerifyingDestination::new(self.seed, &self.blocks, self.dirty);
        if let Err(e) = load(image, &self.opts, &mut dest) {
            return (Outcome::Refused, 0, e.to_string());
        }
        self.compare(&dest)
    }

    /// A destination that loaded, against the guest at switchover.
    fn compare(&self, dest: &VerifyingDestination) -> (Outcome, u64, String) {
        let (bad, total, stories) = crate::oracle::compare_restored(
            &self.blocks,
            self.states,
            dest,
            3,
            self.ignore_shared(),
        );
        if bad == 0 {
            (Outcome::Exact, 0, format!("{total} pages equal"))
        } else {
            (
                Outcome::Wrong,
                bad,
                format!("{bad} of {total} pages differ: {}", stories.join("; ")),
            )
        }
    }
}

/// A file's journal split into writes, with where the syncs fall.
struct Journal<'a> {
    writes: Vec<(u64, &'a [u8])>,
    /// `durable[k]`: writes made durable by the syncs issued before write
    /// `k` (so at crash point `k`, writes `durable[k-1]..k` are volatile).
    durable_before: Vec<usize>,
    syncs: usize,
}

impl<'a> Journal<'a> {
    fn new(entries: &'a [JournalEntry]) -> Self {
        let mut writes = Vec::new();
        let mut durable_before = Vec::new();
        let mut synced = 0;
        let mut syncs = 0;
        for e in entries {
            match e {
                JournalEntry::Write { offset, data } => {
                    durable_before.push(synced);
                    writes.push((*offset, data.as_slice()));
                }
                JournalEntry::Sync => {
                    synced = writes.len();
                    syncs += 1;
                }
            }
        }
        Journal {
            writes,
            durable_before,
            syncs,
        }
    }

    /// Writes durable at crash point `k` (after `k` writes, before the
    /// syncs that follow the `k`-th).
    fn durable_at(&self, k: usize) -> usize {
        if k == 0 {
            0
        } else {
            self.durable_before[k - 1]
        }
    }
}

fn apply(image: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let (start, end) = (offset as usize, offset as usize + data.len());
    if image.len() < end {
        image.resize(end, 0);
    }
    image[start..end].copy_from_slice(data);
}

/// How a torn write loses sectors.
#[derive(Clone, Copy)]
enum Tear {
    /// Each sector survives with probability one half.
    Half,
    /// Exactly this sector (index among the write's pieces) is lost.
    OneSector(u64),
}

/// Sector pieces (`sector`-aligned in the file) of a write.
fn pieces(offset: u64, len: usize, sector: u64) -> u64 {
    (offset + len as u64).div_ceil(sector) - offset / sector
}

/// Apply the sector pieces (`sector`-aligned in the file) of a torn write
/// that survive.
fn apply_torn(
    image: &mut Vec<u8>,
    offset: u64,
    data: &[u8],
    sector: u64,
    tear: Tear,
    r: &mut ChaCha8Rng,
) {
    let mut done = 0usize;
    let mut piece = 0;
    while done < data.len() {
        let pos = offset + done as u64;
        let n = ((sector - pos % sector) as usize).min(data.len() - done);
        let keep = match tear {
            Tear::Half => r.gen_bool(0.5),
            Tear::OneSector(lost) => piece != lost,
        };
        if keep {
            apply(image, pos, &data[done..done + n]);
        }
        done += n;
        piece += 1;
    }
}

/// The disk image after a power loss at point `k` with `survival`:
/// `base` holds the durable writes.
#[cfg(test)]
fn crash_image(
    base: &[u8],
    volatile: &[(u64, &[u8])],
    survival: Survival,
    r: &mut ChaCha8Rng,
) -> Vec<u8> {
    let mut image = Vec::new();
    crash_image_into(&mut image, base, volatile, survival, r);
    image
}

/// [`crash_image`] into `image` (its allocation reused).
fn crash_image_into(
    image: &mut Vec<u8>,
    base: &[u8],
    volatile: &[(u64, &[u8])],
    survival: Survival,
    r: &mut ChaCha8Rng,
) {
    image.clear();
    image.extend_from_slice(base);
    let mut chosen = None;
    let mut lost_piece = 0;
    match survival {
        _ if volatile.is_empty() => {}
        Survival::OneLost => chosen = Some(r.gen_range(0..volatile.len())),
        Survival::OneTorn => {
            // One 512 B sector of all the unsynced ones, each as likely.
            let total: u64 = volatile.iter().map(|(o, d)| pieces(*o, d.len(), 512)).sum();
            let mut at = r.gen_range(0..total.max(1));
            for (i, (o, d)) in volatile.iter().enumerate() {
                let n = pieces(*o, d.len(), 512);
                if at < n {
                    chosen = Some(i);
                    lost_piece = at;
                    break;
                }
                at -= n;
            }
        }
        _ => {}
    }
    for (i, &(off, data)) in volatile.iter().enumerate() {
        match survival {
            Survival::AllLost => {}
            Survival::AllKept => apply(image, off, data),
            Survival::NewerHalf if i >= volatile.len() / 2 => apply(image, off, data),
            Survival::NewerHalf => {}
            Survival::OneLost if chosen == Some(i) => {}
            Survival::OneTorn if chosen == Some(i) => {
                apply_torn(image, off, data, 512, Tear::OneSector(lost_piece), r)
            }
            Survival::OneLost | Survival::OneTorn => apply(image, off, data),
            Survival::Random(sector) => match r.gen_range(0..8u8) {
                0 => {}
                1 => apply_torn(image, off, data, sector, Tear::Half, r),
                _ => apply(image, off, data),
            },
        }
    }
}

/// The crash points to try for `n` writes.
fn points(n: usize, which: Points, r: &mut ChaCha8Rng) -> Vec<usize> {
    match which {
        Points::All => (0..=n).collect(),
        Points::Last => vec![n],
        Points::Sampled(m) if m > n => (0..=n).collect(),
        Points::Sampled(m) => {
            let mut v: Vec<usize> = vec![0, n];
            while v.len() < m.max(2) {
                let k = r.gen_range(1..n);
                if !v.contains(&k) {
                    v.push(k);
                }
            }
            v.sort_unstable();
            v.dedup();
            v
        }
    }
}

fn case_rng(seed: u64, layout: Layout, point: usize, sample: u32) -> ChaCha8Rng {
    rng::stream(
        rng::derive(seed, "faults"),
        &format!("{}/{point}/{sample}", layout.name()),
    )
}

/// Run `s` once, then crash it at every point `o` asks for and judge each
/// crash image; then the I/O faults.
pub fn faults(s: &Scenario, o: &FaultsOptions) -> FaultsReport {
    let mut out = FaultsReport {
        scenario: s.name.clone(),
        seed: s.seed,
        mode: o.mode,
        integrity: o.integrity,
        ignore_mark: o.ignore_mark,
        samples: o.samples,
        layouts: Vec::new(),
        io: Vec::new(),
        kills: Vec::new(),
        run_error: None,
    };
    let r = journal_run(s, o);
    if r.verdict != RunVerdict::Pass {
        let failed: Vec<String> = r
            .invariants
            .iter()
            .filter(|i| !i.ok)
            .map(|i| format!("{} [{}]: {}", i.name, i.writer, i.detail))
            .collect();
        out.run_error = Some(match &r.error {
            Some(e) => format!("the run did not migrate: {e}"),
            None => format!("the run failed before any crash: {}", failed.join("; ")),
        });
        return out;
    }
    let blocks = s.blocks();
    for f in &r.files {
        let Some(entries) = f.file.journal() else {
            continue;
        };
        let caps = writer_caps(s, f.writer).expect("the run accepted these capabilities");
        let judge = Judge {
            blocks: blocks.clone(),
            states: &r.switchover,
            seed: r.content_seed,
            opts: LoadOptions {
                machine: Some(s.guest.machine.clone()),
                caps: Some(caps),
                require_durable: o.mode == Durability::Durable && !o.ignore_mark,
                require_integrity: o.integrity,
                ..LoadOptions::default()
            },
            dirty: s.destination.dirty_memory,
        };
        let journal = Journal::new(entries);
        let n = journal.writes.len();
        let mut lf = LayoutFaults {
            layout: f.writer,
            writes: n,
            syncs: journal.syncs,
            points: 0,
            cases: 0,
            exact: 0,
            refused: 0,
            wrong: 0,
            wrong_points: 0,
            first_wrong: Vec::new(),
            case: None,
        };
        let mut pr = rng::stream(
            rng::derive(s.seed, "faults"),
            &format!("{}/points", f.writer.name()),
        );
        let pts = match o.only {
            Some((k, _)) => vec![k.min(n)],
            None => points(n, o.points, &mut pr),
        };
        let samples: Vec<u32> = match o.only {
            Some((_, s)) => vec![s],
            None => (0..o.samples).collect(),
        };
        // The durable image, advanced as the points increase.
        let mut base: Vec<u8> = Vec::new();
        let mut image: Vec<u8> = Vec::new();
        let mut applied = 0usize;
        for &k in &pts {
            let d = journal.durable_at(k);
            for &(off, data) in &journal.writes[applied..d] {
                apply(&mut base, off, data);
            }
            applied = applied.max(d);
            let volatile = &journal.writes[d..k];
            lf.points += 1;
            let mut point_wrong = false;
            for &sample in &samples {
                let survival = Survival::of(sample);
                let mut cr = case_rng(s.seed, f.writer, k, sample);
                crash_image_into(&mut image, &base, volatile, survival, &mut cr);
                let (outcome, bad_pages, detail) = judge.judge(&image);
                lf.cases += 1;
                let case = Case {
                    layout: f.writer,
                    point: k,
                    sample,
                    survival: survival.describe(),
                    volatile: volatile.len(),
                    outcome,
                    bad_pages,
                    detail,
                    replay: String::new(),
                };
                match outcome {
                    Outcome::Exact => lf.exact += 1,
                    Outcome::Refused => lf.refused += 1,
                    Outcome::Wrong => {
                        lf.wrong += 1;
                        point_wrong = true;
                        if lf.first_wrong.len() < o.max_wrong {
                            lf.first_wrong.push(case.clone());
                        }
                    }
                }
                if o.only.is_some() {
                    lf.case = Some(case);
                }
            }
            lf.wrong_points += usize::from(point_wrong);
        }
        if o.only.is_none() && o.io_points > 0 {
            out.io.extend(io_faults(s, o, f.writer, &journal, &judge));
        }
        if o.only.is_none() {
            out.kills.extend(kills(&judge, f.writer, &f.file));
        }
        out.layouts.push(lf);
    }
    out
}

/// `s` run as `o` says, every file keeping its journal.
fn journal_run(s: &Scenario, o: &FaultsOptions) -> crate::run::RunReport {
    run(
        s,
        &RunOptions {
            bug: o.bug,
            durability: o.mode,
            integrity: o.integrity,
            journal: true,
            ..RunOptions::default()
        },
    )
}

/// The disk image of one crash, for loading elsewhere (into QEMU): `s`
/// run as `o` says, the `layout` file, a power loss at `point` (clamped to
/// the number of writes) with survival `sample`. The same bytes `faults`
/// judges for that crash.
pub fn crash_image_of(
    s: &Scenario,
    o: &FaultsOptions,
    layout: Layout,
    point: usize,
    sample: u32,
) -> Result<Vec<u8>, String> {
    let r = journal_run(s, o);
    if r.verdict != RunVerdict::Pass {
        return Err(format!("the run did not pass: {:?}", r.error));
    }
    let f = r
        .files
        .iter()
        .find(|f| f.writer == layout)
        .ok_or_else(|| format!("the scenario has no {layout} writer"))?;
    let journal = Journal::new(f.file.journal().expect("journal kept"));
    let k = point.min(journal.writes.len());
    let d = journal.durable_at(k);
    let mut base = Vec::new();
    for &(off, data) in &journal.writes[..d] {
        apply(&mut base, off, data);
    }
    let mut image = Vec::new();
    let mut cr = case_rng(s.seed, layout, k, sample);
    crash_image_into(
        &mut image,
        &base,
        &journal.writes[d..k],
        Survival::of(sample),
        &mut cr,
    );
    Ok(image)
}

/// Fail write `k` of the `layout` file with each [`IoFault`], at
/// `o.io_points` points drawn from the fault stream: the run must fail
/// with a clear error, and the file left behind must not restore wrong.
fn io_faults(
    s: &Scenario,
    o: &FaultsOptions,
    layout: Layout,
    journal: &Journal<'_>,
    judge: &Judge<'_>,
) -> Vec<IoCase> {
    let n = journal.writes.len();
    if n == 0 {
        return Vec::new();
    }
    let mut pr = rng::stream(
        rng::derive(s.seed, "faults"),
        &format!("{}/io", layout.name()),
    );
    let mut at: Vec<usize> = vec![0, n - 1];
    while at.len() < o.io_points.min(n) {
        let k = pr.gen_range(0..n);
        if !at.contains(&k) {
            at.push(k);
        }
    }
    at.sort_unstable();
    at.dedup();
    at.truncate(o.io_points.max(1));
    let mut out = Vec::new();
    for fault in IoFault::ALL {
        for &k in &at {
            let r = run(
                s,
                &RunOptions {
                    bug: o.bug,
                    durability: o.mode,
                    integrity: o.integrity,
                    io_fault: Some((layout, k, fault)),
                    ..RunOptions::default()
                },
            );
            let error = match r.verdict {
                RunVerdict::Error => r.error.clone(),
                _ => None,
            };
            // What is left: the writes before k (the page cache writes
            // them back: no crash), and a short write's landed part.
            let mut image = Vec::new();
            for &(off, data) in &journal.writes[..k] {
                apply(&mut image, off, data);
            }
            let (off, data) = journal.writes[k];
            apply(&mut image, off, &data[..fault.landed(data.len())]);
            let (outcome, _, detail) = judge.judge(&image);
            out.push(IoCase {
                layout,
                write: k,
                fault,
                error,
                outcome,
                detail,
                replay: String::new(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn survival_samples_keep_lose_and_tear_as_named() {
        let a = [1u8; 1024];
        let b = [2u8; 1024];
        let vol: Vec<(u64, &[u8])> = vec![(0, &a), (512, &b)];
        let mut r = ChaCha8Rng::seed_from_u64(1);
        assert_eq!(
            crash_image(&[], &vol, Survival::AllLost, &mut r),
            Vec::<u8>::new()
        );
        let all = crash_image(&[], &vol, Survival::AllKept, &mut r);
        assert_eq!(all.len(), 1536);
        assert_eq!(all[..512], [1; 512]);
        assert_eq!(all[512..], [2; 1024]);
        // One lost: either the first write alone or the second over zeros.
        let one = crash_image(&[], &vol, Survival::OneLost, &mut r);
        assert!(one == vec![1u8; 1024] || (one[..512] == [0; 512] && one[512..] == [2; 1024]));
        // Torn pieces are whole sectors at sector offsets.
        for seed in 0..20 {
            let mut r = ChaCha8Rng::seed_from_u64(seed);
            let img = crash_image(&[9; 16], &vol, Survival::Random(512), &mut r);
            for sector in img.chunks(512) {
                let first = sector[0];
                assert!(sector.iter().all(|&x| x == first) || sector[..16] == [9; 16]);
            }
        }
    }

    #[test]
    fn a_journal_knows_what_each_point_has_made_durable() {
        let w = |o| JournalEntry::Write {
            offset: o,
            data: vec![1],
        };
        let j = [
            w(0),
            w(1),
            JournalEntry::Sync,
            w(2),
            JournalEntry::Sync,
            w(3),
        ];
        let j = Journal::new(&j);
        assert_eq!(j.syncs, 2);
        // point k: after k writes, before the syncs after the k-th.
        let durable: Vec<usize> = (0..=4).map(|k| j.durable_at(k)).collect();
        assert_eq!(durable, [0, 0, 0, 2, 3]);
    }

    #[test]
    fn sampled_points_include_both_ends_and_are_sorted() {
        let mut r = ChaCha8Rng::seed_from_u64(3);
        let p = points(100, Points::Sampled(10), &mut r);
        assert_eq!(p.len(), 10);
        assert_eq!((p[0], p[9]), (0, 100));
        assert!(p.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(points(3, Points::Sampled(10), &mut r), [0, 1, 2, 3]);
    }
}
