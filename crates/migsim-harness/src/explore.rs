//! Exploration: random scenarios from seeds, run and judged; failures are
//! shrunk to a minimal scenario and written as regression files.
//!
//! A seed fully determines its scenario ([`generate`]), and the scenario's
//! expected outcome comes from an independent model of the capability and
//! transport rules ([`model_expect`]). A seed fails when its run differs
//! from that expectation (a broken oracle invariant, a wrong refusal, or a
//! missing one); with [`ExploreOptions::faults`], also when a power loss
//! during a durable save of the scenario restores wrong memory
//! ([`crate::faults`]). Seeds run in parallel, results are ordered by seed, and
//! shrinking is serial, so the same seeds give the same results whatever
//! the number of jobs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use rand::Rng;
use rand::seq::SliceRandom;
use serde::Serialize;

use crate::bugs::Bug;
use crate::replay_command::{ReplayCommand, RunFlags};
use crate::run::{Difference, DifferenceKind, RunOptions, check_expectations, run};
use crate::scenario::{
    BlockSpec, DestinationSpec, Expect, GuestSpec, MigrationSpec, Scenario, Size, Verdict,
};
use crate::sched::{ConcurrencySpec, ZeroPageDetection};
use crate::sim::precopy::PrecopyParams;
use crate::sim::rng;
use crate::sim::workload::{WorkloadKind, WorkloadSpec};
use migsim_format::Layout;
use migsim_format::caps::{Capability, MultifdCompression, Profile, Transport};

const PAGE: u64 = 4096;

/// The scenario a seed stands for.
pub fn generate(seed: u64) -> Scenario {
    let mut r = rng::stream(seed, "explore");
    let mut names = [
        "vga.vram",
        "pc.bios",
        "/rom@etc/acpi/tables",
        "/rom@etc/acpi/rsdp",
        "pc.rom",
    ];
    names.shuffle(&mut r);
    let nblocks = r.gen_range(1..=4);
    let mut blocks = vec![BlockSpec {
        name: "pc.ram".into(),
        size: Size(r.gen_range(16..=1024) * PAGE),
        shared: false,
    }];
    for name in names.iter().take(nblocks - 1) {
        let pages = if r.gen_bool(0.3) {
            1
        } else {
            r.gen_range(1..=256)
        };
        blocks.push(BlockSpec {
            name: (*name).into(),
            size: Size(pages * PAGE),
            shared: false,
        });
    }
    let bandwidth = r.gen_range(16..=512);
    let kind = *[
        WorkloadKind::Idle,
        WorkloadKind::Uniform,
        WorkloadKind::Uniform,
        WorkloadKind::HotSet,
        WorkloadKind::HotSet,
        WorkloadKind::Sweep,
    ]
    .choose(&mut r)
    .expect("non-empty");
    let workload = WorkloadSpec {
        kind,
        writes_per_tick: if kind == WorkloadKind::Idle {
            0
        } else {
            r.gen_range(1..=2 * bandwidth)
        },
        hot_fraction: f64::from(r.gen_range(5..=50u32)) / 100.0,
        hot_share: f64::from(r.gen_range(50..=100u32)) / 100.0,
        zero_share: *[0.0, 0.1, 0.3, 0.6].choose(&mut r).expect("non-empty"),
    };
    let writers = match r.gen_range(0..10) {
        0 => vec![Layout::FixedRam],
        1 => vec![Layout::Sequential],
        _ => vec![Layout::Sequential, Layout::FixedRam],
    };
    let profile = if r.gen_bool(0.3) {
        Profile::MappedRam
    } else {
        Profile::FixedRam
    };
    let offered: &[Capability] = match profile {
        Profile::FixedRam => &[
            Capability::Multifd,
            Capability::Xbzrle,
            Capability::Compress,
            Capability::PostcopyRam,
        ],
        Profile::MappedRam => &[
            Capability::Multifd,
            Capability::Xbzrle,
            Capability::PostcopyRam,
        ],
    };
    let mut capabilities: Vec<Capability> = Vec::new();
    if r.gen_bool(0.2) {
        for _ in 0..r.gen_range(1..=2) {
            let c = *offered.choose(&mut r).expect("non-empty");
            if !capabilities.contains(&c) {
                capabilities.push(c);
            }
        }
    }
    let multifd_compression = if r.gen_bool(0.1) {
        MultifdCompression::Zlib
    } else {
        MultifdCompression::None
    };
    let direct_io = r.gen_bool(0.2);
    let transport = if r.gen_bool(0.1) {
        *[
            Transport::Tcp,
            Transport::Unix,
            Transport::Exec,
            Transport::Fd,
        ]
        .choose(&mut r)
        .expect("non-empty")
    } else {
        Transport::File
    };
    let mut s = Scenario {
        name: format!("explore-{seed}"),
        description: String::new(),
        seed,
        guest: GuestSpec {
            machine: "pc-i440fx-10.0".into(),
            blocks,
            initial_fill: *[0.0, 0.3, 0.7, 1.0].choose(&mut r).expect("non-empty"),
            devices: true,
            extents: false,
        },
        workload,
        migration: MigrationSpec {
            writers,
            capabilities,
            transport,
            profile,
            multifd_compression,
            direct_io,
        },
        parameters: PrecopyParams {
            bandwidth,
            downtime_ticks: r.gen_range(0..=3),
            max_passes: r.gen_range(1..=8),
        },
        destination: DestinationSpec {
            fixed_ram: if r.gen_bool(0.1) {
                Some(r.gen_bool(0.5))
            } else {
                None
            },
            dirty_memory: r.gen_bool(0.5),
            blocks: None,
        },
        concurrency: None,
        expect: Expect::default(),
    };
    add_concurrency(&mut s, seed);
    add_ignore_shared(&mut s, seed);
    s.expect = model_expect(&s);
    s
}

/// A fifth of the seeds turn x-ignore-shared on (every block record then
/// carries its address), from their own stream so the other fields stay
/// what they were; not with a destination layout setting of its own
/// (that check is about the layout capability alone). Then each block is
/// on shared memory with probability one half, so ignored: not sent, and
/// under mapped-ram a header with both offsets 0 and no page area.
fn add_ignore_shared(s: &mut Scenario, seed: u64) {
    let mut r = rng::stream(seed, "explore-ignore-shared");
    if r.gen_bool(0.2) && s.destination.fixed_ram.is_none() {
        s.migration.capabilities.push(Capability::XIgnoreShared);
        for b in &mut s.guest.blocks {
            b.shared = r.gen_bool(0.5);
        }
    }
}

/// Half the seeds run QEMU's iteration structure under the scheduler
/// ([`crate::sched`]), drawn from their own stream so the other fields of
/// every seed stay what they were: mapped-ram, multifd channels (or the
/// migration thread alone), vCPUs, zero-page detection, packet size, and
/// the interleaving named by its seed.
fn add_concurrency(s: &mut Scenario, seed: u64) {
    let mut r = rng::stream(seed, "explore-concurrency");
    if !r.gen_bool(0.5) {
        return;
    }
    let channels = *[0u32, 1, 2, 3, 4, 4].choose(&mut r).expect("non-empty");
    let spec = ConcurrencySpec {
        vcpus: r.gen_range(1..=3),
        channels,
        dest_channels: Some(r.gen_range(0..=4)),
        zero_page_detection: *[
            ZeroPageDetection::None,
            ZeroPageDetection::Legacy,
            ZeroPageDetection::Multifd,
            ZeroPageDetection::Multifd,
        ]
        .choose(&mut r)
        .expect("non-empty"),
        packet_pages: *[2u32, 4, 8, 16, 128].choose(&mut r).expect("non-empty"),
        guest_ticks: None,
        schedule_seed: Some(rng::derive(seed, "interleaving")),
    };
    let m = &mut s.migration;
    m.profile = Profile::MappedRam;
    m.transport = Transport::File;
    m.multifd_compression = MultifdCompression::None;
    m.direct_io = false;
    if channels > 0 {
        m.capabilities = vec![Capability::Multifd];
        m.writers = vec![Layout::FixedRam];
    } else {
        m.capabilities.clear();
    }
    s.destination.fixed_ram = None;
    s.destination.blocks = None;
    s.concurrency = Some(spec);
}

/// What a correct implementation does with this scenario, from a model of
/// the rules written here (not the checker's code): refused capability
/// sets and parameters, refused transports, destination mismatches; else a
/// pass.
pub fn model_expect(s: &Scenario) -> Expect {
    let error = |msg: &str| Expect {
        verdict: Verdict::Error,
        error: Some(msg.to_string()),
        ..Expect::default()
    };
    let m = &s.migration;
    let has = |caps: &[Capability], c: Capability| caps.contains(&c);
    for w in &m.writers {
        let mut caps = m.capabilities.clone();
        let fixed = *w == Layout::FixedRam;
        let refused = match m.profile {
            Profile::FixedRam => {
                // The proposal: conflicts with fixed-ram, in this order.
                let table = [
                    (
                        Capability::Multifd,
                        "Fixed-ram migration is incompatible with multifd",
                    ),
                    (
                        Capability::Xbzrle,
                        "Fixed-ram migration is incompatible with xbzrle",
                    ),
                    (
                        Capability::Compress,
                        "Fixed-ram migration is incompatible with compression",
                    ),
                    (
                        Capability::PostcopyRam,
                        "Fixed-ram migration is incompatible with postcopy ram",
                    ),
                ];
                let conflict = table
                    .iter()
                    .find(|(c, _)| fixed && has(&caps, *c))
                    .map(|(_, msg)| *msg);
                conflict.or((fixed && m.transport != Transport::File)
                    .then_some("Migration requires seekable transport (e.g. file)"))
            }
            Profile::MappedRam => {
                if fixed {
                    caps.push(Capability::MappedRam);
                }
                use Capability::*;
                // QEMU 10.0.2, tests/data/qemu/caps: set-capabilities, then
                // set-parameters, then migrate.
                let pairs = [
                    (
                        PostcopyRam,
                        Multifd,
                        "Postcopy is not yet compatible with multifd",
                    ),
                    (Multifd, Xbzrle, "Multifd is not compatible with xbzrle"),
                    (
                        MappedRam,
                        Xbzrle,
                        "Mapped-ram migration is incompatible with xbzrle",
                    ),
                    (
                        MappedRam,
                        PostcopyRam,
                        "Mapped-ram migration is incompatible with postcopy",
                    ),
                ];
                let mapped = has(&caps, MappedRam);
                let multi_channel = matches!(m.transport, Transport::Tcp | Transport::Unix);
                pairs
                    .iter()
                    .find(|(a, b, _)| has(&caps, *a) && has(&caps, *b))
                    .map(|(_, _, msg)| *msg)
                    .or((mapped && m.multifd_compression != MultifdCompression::None)
                        .then_some("Mapped-ram only available for non-compressed non-TLS multifd migration"))
                    .or((mapped && m.transport != Transport::File)
                        .then_some("Migration requires seekable transport (e.g. file)"))
                    .or((has(&caps, Multifd) && !mapped && !multi_channel)
                        .then_some("Migration requires multi-channel URIs (e.g. tcp)"))
            }
        };
        if let Some(msg) = refused {
            return error(msg);
        }
    }
    if let Some(dest) = s.destination.fixed_ram {
        let on = |b: bool| if b { "on" } else { "off" };
        if let Some(w) = m.writers.iter().find(|w| (**w == Layout::FixedRam) != dest) {
            let stream = *w == Layout::FixedRam;
            let cap = match m.profile {
                Profile::FixedRam => "fixed-ram",
                Profile::MappedRam => "mapped-ram",
            };
            return error(&format!(
                "Capability {cap} is {}, but received capability is {}",
                on(dest),
                on(stream)
            ));
        }
    }
    Expect::default()
}

/// How a run differed from its expectation (digest not compared); empty
/// when it met it.
pub fn differences(s: &Scenario, bug: Option<Bug>) -> Vec<Difference> {
    let mut s = s.clone();
    s.expect.digest = None;
    let r = run(
        &s,
        &RunOptions {
            bug,
            ..RunOptions::default()
        },
    );
    check_expectations(&s, &r)
}

/// [`differences`], and when there are none and `faults` is set, the
/// fault model on a durable save of the same scenario
/// ([`crate::faults`]: 8 crash points drawn from the fault stream, 5
/// survival samples each): the first wrong crash of each layout.
pub fn differences_with(s: &Scenario, bug: Option<Bug>, faults: bool) -> Vec<Difference> {
    let d = differences(s, bug);
    if !d.is_empty() || !faults {
        return d;
    }
    let mut s = s.clone();
    s.expect.digest = None;
    let r = crate::faults::faults(
        &s,
        &crate::faults::FaultsOptions {
            mode: migsim_format::Durability::Durable,
            points: crate::faults::Points::Sampled(8),
            samples: 5,
            io_points: 0,
            bug,
            max_wrong: 1,
            ..crate::faults::FaultsOptions::default()
        },
    );
    r.layouts
        .iter()
        .filter_map(|l| l.first_wrong.first())
        .map(|c| Difference::Crash {
            layout: c.layout,
            point: c.point,
            sample: c.sample,
            detail: c.detail.clone(),
        })
        .collect()
}

/// What a failure is about, to keep shrinking on the same failure: the
/// failed invariants, or else what the first difference is about.
fn signature(diffs: &[Difference]) -> BTreeSet<DifferenceKind> {
    let inv: BTreeSet<DifferenceKind> = diffs
        .iter()
        .map(Difference::kind)
        .filter(|k| matches!(k, DifferenceKind::Invariant(_)))
        .collect();
    if inv.is_empty() {
        diffs.iter().take(1).map(Difference::kind).collect()
    } else {
        inv
    }
}

/// How complicated a scenario is; shrinking only takes steps that lower
/// it, so it cannot cycle.
fn complexity(s: &Scenario) -> u64 {
    let pages: u64 = s.guest.blocks.iter().map(|b| b.size.0 / PAGE).sum();
    let kind = match s.workload.kind {
        WorkloadKind::Idle => 0,
        WorkloadKind::Uniform => 1,
        WorkloadKind::Sweep => 2,
        WorkloadKind::HotSet => 3,
    };
    s.guest.blocks.len() as u64 * 100_000
        + pages * 10
        + u64::from(s.parameters.max_passes) * 100
        + s.workload.writes_per_tick
        + kind * 50
        + s.migration.capabilities.len() as u64 * 1000
        + s.migration.writers.len() as u64 * 500
        + u64::from(s.migration.transport != Transport::File) * 1000
        + u64::from(s.destination.fixed_ram.is_some()) * 1000
        + u64::from(s.destination.dirty_memory) * 200
        + u64::from(s.workload.zero_share > 0.0) * 100
        + u64::from(s.guest.initial_fill != 1.0) * 50
        + u64::from(s.migration.multifd_compression != MultifdCompression::None) * 300
        + u64::from(s.migration.direct_io) * 20
        + s.concurrency.as_ref().map_or(0, |c| {
            u64::from(c.vcpus) * 40
                + u64::from(c.channels) * 40
                + u64::from(c.dest_channels()) * 30
                + u64::from(c.packet_pages)
                + u64::from(c.zero_page_detection != ZeroPageDetection::Multifd) * 10
        })
}

/// Hot-set knobs are unused by other workloads: reset them so a shrunk
/// scenario shows only what matters (the run is unchanged).
fn tidy(s: &mut Scenario) {
    if s.workload.kind != WorkloadKind::HotSet {
        let d: WorkloadSpec = toml::from_str("kind = \"idle\"").expect("default workload");
        s.workload.hot_fraction = d.hot_fraction;
        s.workload.hot_share = d.hot_share;
    }
}

fn candidates(s: &Scenario) -> Vec<Scenario> {
    let mut out = Vec::new();
    let mut push = |f: &dyn Fn(&mut Scenario)| {
        let mut c = s.clone();
        f(&mut c);
        if complexity(&c) < complexity(s) {
            c.expect = model_expect(&c);
            out.push(c);
        }
    };
    for i in 0..s.guest.blocks.len() {
        if s.guest.blocks.len() > 1 {
            push(&|c| {
                c.guest.blocks.remove(i);
            });
        }
        push(&|c| {
            let pages = c.guest.blocks[i].size.0 / PAGE;
            c.guest.blocks[i].size = Size((pages / 2).max(1) * PAGE);
        });
    }
    push(&|c| c.parameters.max_passes = 1);
    push(&|c| c.parameters.max_passes = (c.parameters.max_passes / 2).max(1));
    if s.migration.writers.len() > 1 {
        push(&|c| c.migration.writers.truncate(1));
        push(&|c| {
            c.migration.writers.remove(0);
        });
    }
    push(&|c| c.migration.capabilities.clear());
    push(&|c| c.migration.transport = Transport::File);
    push(&|c| c.migration.multifd_compression = MultifdCompression::None);
    push(&|c| c.migration.direct_io = false);
    push(&|c| c.destination.fixed_ram = None);
    push(&|c| c.destination.dirty_memory = false);
    push(&|c| {
        c.workload.kind = WorkloadKind::Idle;
        c.workload.writes_per_tick = 0;
        c.workload.zero_share = 0.0;
    });
    push(&|c| {
        if c.workload.kind != WorkloadKind::Idle {
            c.workload.kind = WorkloadKind::Uniform;
        }
    });
    push(&|c| c.workload.writes_per_tick = (c.workload.writes_per_tick / 2).max(1));
    push(&|c| c.workload.zero_share = 0.0);
    push(&|c| c.guest.initial_fill = 1.0);
    push(&|c| c.guest.initial_fill = 0.0);
    if let Some(k) = &s.concurrency {
        let with = |f: &dyn Fn(&mut ConcurrencySpec)| {
            let mut c = s.clone();
            if let Some(k) = c.concurrency.as_mut() {
                f(k);
            }
            c
        };
        let mut simpler = vec![
            with(&|k| k.vcpus = (k.vcpus - 1).max(1)),
            with(&|k| k.dest_channels = Some(k.dest_channels().saturating_sub(1))),
            with(&|k| k.packet_pages = (k.packet_pages / 2).max(1)),
            with(&|k| k.zero_page_detection = ZeroPageDetection::Multifd),
        ];
        if k.channels > 1 {
            simpler.push(with(&|k| k.channels -= 1));
        }
        for mut c in simpler {
            if complexity(&c) < complexity(s) {
                c.expect = model_expect(&c);
                out.push(c);
            }
        }
    }
    out
}

/// Shrink a failing scenario: apply simplifications (fewer and smaller
/// blocks, fewer passes, a simpler workload, fewer capabilities) while the
/// same failure remains. Returns the minimal scenario, its differences and
/// the number of simplifications taken.
pub fn shrink(s: &Scenario, bug: Option<Bug>) -> (Scenario, Vec<Difference>, usize) {
    shrink_with(s, bug, false)
}

/// [`shrink`], judging with [`differences_with`] (`faults`: crashes of a
/// durable save count).
pub fn shrink_with(
    s: &Scenario,
    bug: Option<Bug>,
    faults: bool,
) -> (Scenario, Vec<Difference>, usize) {
    let mut cur = s.clone();
    let mut diffs = differences_with(&cur, bug, faults);
    let sig = signature(&diffs);
    let mut steps = 0;
    'outer: while steps < 200 {
        for c in candidates(&cur) {
            if c.validate().is_err() {
                continue;
            }
            let d = differences_with(&c, bug, faults);
            if !d.is_empty() && !signature(&d).is_disjoint(&sig) {
                cur = c;
                diffs = d;
                steps += 1;
                continue 'outer;
            }
        }
        break;
    }
    (cur, diffs, steps)
}

/// One failing seed, shrunk.
#[derive(Debug, Serialize)]
pub struct Failure {
    /// The seed.
    pub seed: u64,
    /// How the generated scenario differed.
    pub differences: Vec<Difference>,
    /// How the shrunk scenario differs.
    pub shrunk_differences: Vec<Difference>,
    /// Simplifications applied.
    pub shrink_steps: usize,
    /// The shrunk scenario, as TOML.
    pub scenario_toml: String,
    /// Where it was written.
    pub written_to: Option<PathBuf>,
    /// The exact command that replays the shrunk scenario.
    pub replay: String,
    /// The exact command that reruns the seed as generated.
    pub rerun_seed: String,
}

/// What an exploration found.
#[derive(Debug, Serialize)]
pub struct ExploreReport {
    /// The seeds asked for: the range and the shard (1/1 when unsharded).
    pub seeds: SeedRange,
    /// Seeds run.
    pub seeds_run: u64,
    /// Seeds whose run met its expectation.
    pub passed: u64,
    /// Bug variant injected, if any.
    pub bug: Option<Bug>,
    /// Worker threads that ran (at most `jobs`; fewer if the system
    /// refused some).
    pub jobs: usize,
    /// Whether failures were shrunk.
    pub shrink: bool,
    /// `--max-failures`: failures kept (smallest seeds first); 0 keeps up
    /// to [`MAX_FAILURES_KEPT`].
    pub max_failures: usize,
    /// Failures, by seed.
    pub failures: Vec<Failure>,
}

/// The seeds of a report as given: `start..end`, shard `shard` of
/// `shards` (1-based; 1 of 1 when the sweep was not split).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SeedRange {
    /// First seed.
    pub start: u64,
    /// End of the range (exclusive).
    pub end: u64,
    /// This shard, `1..=shards`.
    pub shard: u64,
    /// Shards the range was split into.
    pub shards: u64,
}

/// Exploration settings.
#[derive(Clone, Debug)]
pub struct ExploreOptions {
    /// Seeds to run (after sharding).
    pub seeds: SeedSet,
    /// Worker threads.
    pub jobs: usize,
    /// Injected bug variant.
    pub bug: Option<Bug>,
    /// Shrink failures.
    pub shrink: bool,
    /// Stop after this many failures (0 = never).
    pub max_failures: usize,
    /// Also crash a durable save of every passing scenario at a few
    /// points ([`differences_with`]).
    pub faults: bool,
    /// Where regression scenarios go (None = not written).
    pub regressions: Option<PathBuf>,
}

/// Seeds `start..end` (end exclusive), restricted to shard `k` of `n`
/// (1-based): the seeds `s` with `(s - start) % n == k - 1`. Iterated
/// lazily, so a range of 10^12 seeds costs nothing up front.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeedSet {
    start: u64,
    end: u64,
    k: u64,
    n: u64,
}

impl SeedSet {
    /// `start..end`, shard `k` of `n` (`None`: every seed). `k` in `1..=n`.
    pub fn new(start: u64, end: u64, shard: Option<(u64, u64)>) -> SeedSet {
        let (k, n) = shard.unwrap_or((1, 1));
        assert!(n >= 1 && (1..=n).contains(&k), "shard {k}/{n}");
        SeedSet { start, end, k, n }
    }

    /// How many seeds.
    pub fn len(&self) -> u64 {
        let span = self.end.saturating_sub(self.start);
        let skip = self.k - 1;
        if span <= skip {
            0
        } else {
            (span - skip).div_ceil(self.n)
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `i`-th seed (`i < len()`).
    pub fn nth(&self, i: u64) -> u64 {
        self.start + self.k - 1 + i * self.n
    }

    /// Every seed, in order.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.len()).map(|i| self.nth(i))
    }

    /// Whether `seed` is one of these seeds.
    pub fn contains(&self, seed: u64) -> bool {
        (self.start..self.end).contains(&seed) && (seed - self.start) % self.n == self.k - 1
    }

    /// The range and shard, as a report records them.
    pub fn range(&self) -> SeedRange {
        SeedRange {
            start: self.start,
            end: self.end,
            shard: self.k,
            shards: self.n,
        }
    }
}

/// Failures kept (smallest seeds first) when `max_failures` is 0: the
/// report of a sweep where every seed fails stays bounded.
pub const MAX_FAILURES_KEPT: usize = 1000;

/// Run the exploration; `progress(done, total)` is called as seeds finish.
/// Up to `opts.jobs` worker threads; if the system refuses to start one,
/// the ones started do the work (at least this thread).
pub fn explore(
    opts: &ExploreOptions,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<ExploreReport, String> {
    let seeds = &opts.seeds;
    let total = seeds.len();
    let keep = if opts.max_failures > 0 {
        opts.max_failures
    } else {
        MAX_FAILURES_KEPT
    };
    let next = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let passed = AtomicU64::new(0);
    // The failures of the smallest seed indices, at most `keep` of them:
    // the same whatever the number of jobs.
    let failed: Mutex<BTreeMap<u64, Vec<Difference>>> = Mutex::new(BTreeMap::new());
    let work = || {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= total {
                break;
            }
            let d = differences_with(&generate(seeds.nth(i)), opts.bug, opts.faults);
            if d.is_empty() {
                passed.fetch_add(1, Ordering::Relaxed);
            } else {
                let mut f = failed.lock().expect("failures lock");
                f.insert(i, d);
                if f.len() > keep {
                    f.pop_last();
                }
            }
            progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
        }
    };
    let mut jobs = 1;
    std::thread::scope(|scope| {
        for _ in 1..opts.jobs.max(1) {
            if std::thread::Builder::new()
                .spawn_scoped(scope, work)
                .is_err()
            {
                break;
            }
            jobs += 1;
        }
        work();
    });
    let failed = failed.into_inner().expect("failures lock");
    let mut report = ExploreReport {
        seeds: seeds.range(),
        seeds_run: total,
        passed: passed.into_inner(),
        bug: opts.bug,
        jobs,
        shrink: opts.shrink,
        max_failures: opts.max_failures,
        failures: Vec::new(),
    };
    for (i, d) in failed {
        let seed = seeds.nth(i);
        let generated = generate(seed);
        let (mut shrunk, shrunk_diffs, steps) = if opts.shrink {
            shrink_with(&generated, opts.bug, opts.faults)
        } else {
            (generated.clone(), d.clone(), 0)
        };
        let file_name = match opts.bug {
            Some(b) => format!("seed-{seed}-{}.toml", b.name()),
            None => format!("seed-{seed}.toml"),
        };
        let path = opts.regressions.as_ref().map(|dir| dir.join(&file_name));
        let shown = path.clone().unwrap_or_else(|| PathBuf::from(&file_name));
        let crash = shrunk_diffs
            .iter()
            .any(|d| d.kind() == DifferenceKind::Crash);
        let replay = if crash {
            ReplayCommand::Faults {
                scenario: shown.clone(),
                mode: migsim_format::Durability::Durable,
                integrity: false,
                ignore_mark: false,
                bug: opts.bug,
                crash: None,
            }
        } else {
            ReplayCommand::Run {
                scenario: Some(shown.clone()),
                seed: None,
                flags: RunFlags {
                    bug: opts.bug,
                    ..RunFlags::default()
                },
            }
        }
        .to_string();
        tidy(&mut shrunk);
        shrunk.name = file_name.trim_end_matches(".toml").to_string();
        shrunk.description = format!(
            "Found by `migsim explore` at seed {seed}{}; shrunk in {steps} steps.\n\
             It failed with: {}\nReplay: {replay}",
            opts.bug
                .map(|b| format!(" with bug variant {}", b.name()))
                .unwrap_or_default(),
            shrunk_diffs
                .iter()
                .map(Difference::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        );
        // The regression expects what correct code does; for a bug variant
        // that is the bug-free run, whose digest is recorded.
        shrunk.expect = model_expect(&shrunk);
        if opts.bug.is_some() {
            shrunk.expect.digest = Some(run(&shrunk, &RunOptions::default()).digest);
        }
        let toml = toml::to_string(&shrunk).map_err(|e| e.to_string())?;
        if let Some(p) = &path {
            write_regression(p, &toml)?;
        }
        report.failures.push(Failure {
            seed,
            differences: d,
            shrunk_differences: shrunk_diffs,
            shrink_steps: steps,
            scenario_toml: toml,
            written_to: path,
            replay,
            rerun_seed: ReplayCommand::ExploreSeed {
                seed,
                faults: opts.faults,
                bug: opts.bug,
            }
            .to_string(),
        });
    }
    Ok(report)
}

fn write_regression(path: &Path, toml: &str) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(path, toml).map_err(|e| format!("{}: {e}", path.display()))
}
