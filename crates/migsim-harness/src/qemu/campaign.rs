//! `migsim qemu fuzz`: QEMU's incoming side as the system under test. A
//! deterministic, structure-aware campaign: each seed picks a base file
//! (one of the QEMU-shaped scenarios of `scenarios/qemu/`, saved
//! sequentially or with mapped-ram, exactly as QEMU would load it) and a
//! list of mutations (the `fixed_ram_mutate` fuzz target's: header fields,
//! block list lengths, bitmap bits, page areas, the tail, truncation), and
//! the same seed always gives the same bytes. A fresh QEMU (`-S -incoming
//! defer`, capabilities set to match the file, multifd with 1 to 4
//! channels for mapped-ram) loads it under a watchdog; the outcome is
//! *loaded*, *refused* (QEMU's error), *crashed* (a signal), *hung* or a
//! *memory blow-up*. Where QEMU loaded, its memory (`pmemsave`) is
//! compared with migsim's strict reader on the same file; the
//! [`Verdict`] sets the two side by side, and behaviours of QEMU 10.0.2
//! already documented are named divergences ([`KNOWN_DIVERGENCES`]).

use std::path::Path;
use std::time::{Duration, Instant};

use rand::RngCore;
use serde::Serialize;
use serde_json::{Value, json};

use super::{QemuBinary, QemuProcess};
use crate::mutate::decode::Bytes;
use crate::mutate::sparse_file::SparseFile;
use crate::mutate::{Mutation, apply_mutations};
use crate::replay_command::ReplayCommand;
use crate::run::{RunOptions, run};
use crate::scenario::Scenario;
use crate::sim::dest::Destination;
use crate::sim::rng;
use migsim_format::io::MigFile;
use migsim_format::reader::{LoadOptions, inspect, load};
use migsim_format::{Capabilities, Layout, LoadError, Profile};

/// The QEMU-shaped scenarios the bases come from: (scenario, machine alias,
/// guest MiB).
const BASES: [(&str, &str, u64); 3] = [
    (
        include_str!("../../../../scenarios/qemu/pc-16m-redirty.toml"),
        "pc",
        16,
    ),
    (
        include_str!("../../../../scenarios/qemu/pc-16m-zero-after-data.toml"),
        "pc",
        16,
    ),
    (
        include_str!("../../../../scenarios/qemu/q35-32m-redirty.toml"),
        "q35",
        32,
    ),
];

/// Behaviours of QEMU 10.0.2 that are known and documented (docs/qemu-findings.md, the
/// interop tier): a verdict explained by one is not a finding.
pub const KNOWN_DIVERGENCES: [(&str, &str); 1] = [(
    "qemu-skips-used-length-check",
    "QEMU 10.0.2 does not compare a mapped-ram block's used_length with its own block (migsim refuses: Size mismatch)",
)];

/// A file QEMU would load as it is.
pub struct Base {
    /// `<scenario>/<layout>`.
    pub name: String,
    /// `pc` or `q35`.
    pub machine_alias: &'static str,
    /// Guest RAM, MiB.
    pub mib: u64,
    /// Its layout.
    pub layout: Layout,
    /// The scenario it comes from.
    pub scenario: Scenario,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// Every base, in a fixed order.
pub fn bases() -> Vec<Base> {
    let mut out = Vec::new();
    for (text, alias, mib) in BASES {
        let s = Scenario::from_toml(text).expect("the embedded QEMU scenarios parse");
        let r = run(&s, &RunOptions::default());
        for f in &r.files {
            out.push(Base {
                name: format!("{}/{}", s.name, f.writer),
                machine_alias: alias,
                mib,
                layout: f.writer,
                scenario: s.clone(),
                bytes: f.file.to_vec(),
            });
        }
    }
    out
}

/// One input: a base, mutations, and how QEMU is set up to load it.
#[derive(Clone, Debug, Serialize)]
pub struct Input {
    /// The seed it came from.
    pub seed: u64,
    /// Index into [`bases`].
    pub base: usize,
    /// The base's name.
    pub base_name: String,
    /// Mutations applied, in order (`Debug` text).
    pub mutations: Vec<String>,
    /// mapped-ram files: multifd with this many channels, or none.
    pub multifd_channels: Option<u32>,
    /// Bytes of the file QEMU loads.
    pub file_len: u64,
    /// SHA-256 of those bytes (hex): the same seed gives the same one.
    pub sha256: String,
    /// The mutations themselves.
    #[serde(skip)]
    pub applied: Vec<Mutation>,
    /// The bytes QEMU loads.
    #[serde(skip)]
    pub bytes: Vec<u8>,
}

/// The input made of base `base` with `mutations` (as [`input`] does).
pub fn build(
    bases: &[Base],
    seed: u64,
    base: usize,
    mut mutations: Vec<Mutation>,
    multifd_channels: Option<u32>,
) -> Input {
    let b = &bases[base];
    let mut file = SparseFile::default();
    file.write_at(0, &b.bytes).expect("in memory");
    let info = inspect(&b.bytes).expect("a base file inspects");
    if b.layout == Layout::Sequential {
        // Header and bitmap mutations need a fixed-ram block.
        mutations.retain(|m| {
            matches!(
                m,
                Mutation::Anywhere { .. } | Mutation::Truncate { .. } | Mutation::Extend { .. }
            )
        });
    }
    apply_mutations(&mut file, &info, &mutations);
    let bytes = file.to_vec();
    Input {
        seed,
        base,
        base_name: b.name.clone(),
        mutations: mutations.iter().map(|m| format!("{m:?}")).collect(),
        multifd_channels,
        file_len: bytes.len() as u64,
        sha256: sha256_hex(&bytes),
        applied: mutations,
        bytes,
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The input of `seed`: always the same bytes.
pub fn input(bases: &[Base], seed: u64) -> Input {
    let mut r = rng::stream(seed, "qemu-fuzz");
    let base = (r.next_u64() % bases.len() as u64) as usize;
    let b = &bases[base];
    let mut raw = vec![0u8; 512];
    r.fill_bytes(&mut raw);
    // Read as arbitrary's derived impl reads them (`mutate::decode`), so
    // the seeds give the inputs they gave when this used arbitrary.
    let mut bytes = Bytes::new(&raw);
    let n = 1 + (r.next_u32() % 3) as usize;
    let mutations: Vec<Mutation> = (0..n).map(|_| bytes.mutation()).collect();
    let multifd_channels = (b.layout == Layout::FixedRam && r.next_u32().is_multiple_of(2))
        .then(|| 1 + r.next_u32() % 4);
    build(bases, seed, base, mutations, multifd_channels)
}

/// The smallest input, by dropping mutations and multifd one at a time,
/// that still gives the same [`finding_key`] outcome (the same kind of
/// failure or verdict). Each try is a fresh QEMU.
pub fn minimise(
    q: &QemuBinary,
    bases: &[Base],
    t: Trial,
    dir: &Path,
    limits: &Limits,
) -> Result<Trial, String> {
    let what = |t: &Trial| finding_key(t).split(" [").next().unwrap_or("").to_string();
    let want = what(&t);
    let mut best = t;
    loop {
        let cur = &best.input;
        let mut tries: Vec<(Vec<Mutation>, Option<u32>)> = (0..cur.applied.len())
            .map(|i| {
                let mut m = cur.applied.clone();
                m.remove(i);
                (m, cur.multifd_channels)
            })
            .collect();
        if cur.multifd_channels.is_some() {
            tries.push((cur.applied.clone(), None));
        }
        let mut improved = false;
        for (m, mf) in tries {
            let i = build(bases, cur.seed, cur.base, m, mf);
            let t = trial(q, bases, i, dir, limits)?;
            if what(&t) == want && t.is_finding() {
                best = t;
                improved = true;
                break;
            }
        }
        if !improved {
            let i = &best.input;
            best.input = build(bases, i.seed, i.base, i.applied.clone(), i.multifd_channels);
            return Ok(best);
        }
    }
}

/// What QEMU did with an input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "outcome")]
pub enum Outcome {
    /// `migrate-incoming` completed.
    Loaded,
    /// QEMU refused the file.
    Refused {
        /// QEMU's `error-desc`, or its last stderr line.
        error: String,
    },
    /// QEMU was killed by a signal.
    Crashed {
        /// The signal's name.
        signal: String,
        /// QEMU's last stderr line.
        last_stderr: String,
    },
    /// No answer within the timeout.
    Hung,
    /// Resident memory over the limit.
    MemoryBlowup {
        /// Bytes seen.
        rss: u64,
    },
}

/// QEMU's outcome beside migsim's strict reader's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Both loaded, and QEMU's memory equals migsim's restore.
    BothLoadEqual,
    /// Both refused.
    BothRefuse,
    /// QEMU loaded what migsim refuses.
    QemuLoadsMigsimRefuses,
    /// QEMU refused what migsim loads.
    QemuRefusesMigsimLoads,
    /// Both loaded, with different memory.
    MemoryDiffers,
    /// QEMU crashed, hung or blew up.
    QemuFailed,
}

/// One input's result.
#[derive(Clone, Debug, Serialize)]
pub struct Trial {
    /// The input.
    pub input: Input,
    /// QEMU's outcome.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// migsim's reader: `None` loaded, else its error.
    pub migsim_error: Option<String>,
    /// The two side by side.
    pub verdict: Verdict,
    /// A named divergence that explains the verdict, if any.
    pub divergence: Option<&'static str>,
    /// Seconds QEMU took, start to answer.
    pub seconds: f64,
}

impl Trial {
    /// Whether this is a finding: QEMU failed, or the two disagree for no
    /// named reason.
    pub fn is_finding(&self) -> bool {
        match self.verdict {
            Verdict::BothLoadEqual | Verdict::BothRefuse => false,
            _ => self.divergence.is_none(),
        }
    }
}

/// How a campaign loads each input.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Watchdog for one load.
    pub timeout: Duration,
    /// RSS over which QEMU counts as a memory blow-up.
    pub rss_limit: u64,
    /// `-accel` value.
    pub accel: String,
}

/// Guest-physical RAM compared: from 1 MiB (below it the BIOS, VGA and
/// option ROMs shadow pc.ram) to the end of the guest's RAM.
const COMPARE_FROM: u64 = 1 << 20;

/// migsim's strict reader on `bytes` into the base's blocks: the loaded
/// destination and pc.ram's index, or the error.
fn migsim_load(
    base: &Base,
    bytes: &[u8],
    caps: &Capabilities,
) -> Result<(Destination, usize), LoadError> {
    let blocks = base.scenario.blocks();
    let mut dest = Destination::new(&blocks, false);
    let opts = LoadOptions {
        machine: Some(base.scenario.guest.machine.clone()),
        caps: Some(*caps),
        ..LoadOptions::default()
    };
    load(&migsim_format::io::Bytes(bytes), &opts, &mut dest)?;
    let pc = blocks
        .iter()
        .position(|b| b.name == "pc.ram")
        .expect("a pc.ram");
    Ok((dest, pc))
}

/// Write `bytes` to `path` as a sparse file: all-zero 4 KiB chunks are
/// left as holes (a reproducer of a 16 MiB guest is mostly holes, and
/// the campaign writes one file per input).
pub fn write_sparse(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::create(path)?;
    f.set_len(bytes.len() as u64)?;
    let mut at = 0usize;
    while at < bytes.len() {
        // The next run of chunks that are not all zero.
        let chunk = |i: usize| &bytes[i..(i + 4096).min(bytes.len())];
        if chunk(at).iter().all(|&b| b == 0) {
            at += 4096;
            continue;
        }
        let mut end = at;
        while end < bytes.len() && !chunk(end).iter().all(|&b| b == 0) {
            end += 4096;
        }
        let end = end.min(bytes.len());
        f.write_all_at(&bytes[at..end], at as u64)?;
        at = end;
    }
    Ok(())
}

fn signal_name(sig: i32) -> String {
    match sig {
        4 => "SIGILL".into(),
        5 => "SIGTRAP".into(),
        6 => "SIGABRT".into(),
        7 => "SIGBUS".into(),
        8 => "SIGFPE".into(),
        9 => "SIGKILL".into(),
        11 => "SIGSEGV".into(),
        n => format!("signal {n}"),
    }
}

/// Load `input` into a fresh QEMU and judge it.
pub fn trial(
    q: &QemuBinary,
    bases: &[Base],
    input: Input,
    dir: &Path,
    limits: &Limits,
) -> Result<Trial, String> {
    let base = &bases[input.base];
    let path = dir.join(format!("input-{}.mig", input.seed));
    write_sparse(&path, &input.bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut mcaps = Capabilities::for_profile(Profile::MappedRam);
    if base.layout == Layout::FixedRam {
        mcaps
            .set(&[(migsim_format::Capability::MappedRam, true)])
            .map_err(|e| e.to_string())?;
    }
    // migsim's reader works on its own thread while QEMU loads.
    let (qemu, ours) = std::thread::scope(|s| {
        let ours = s.spawn(|| migsim_load(base, &input.bytes, &mcaps));
        let qemu = qemu_load(q, base, &input, &path, dir, limits);
        (qemu, ours.join())
    });
    let _ = std::fs::remove_file(&path);
    let (outcome, qemu_memory, seconds) = qemu?;
    let ours = ours.map_err(|_| format!("seed {}: migsim's reader panicked", input.seed))?;
    let first = (COMPARE_FROM / 4096) as usize * 4096;
    let verdict = match (&outcome, &ours, &qemu_memory) {
        (Outcome::Loaded, Ok((d, pc)), Some(q)) if &d.block(*pc)[first..] == q.as_slice() => {
            Verdict::BothLoadEqual
        }
        (Outcome::Loaded, Ok(_), _) => Verdict::MemoryDiffers,
        (Outcome::Loaded, Err(_), _) => Verdict::QemuLoadsMigsimRefuses,
        (Outcome::Refused { .. }, Err(_), _) => Verdict::BothRefuse,
        (Outcome::Refused { .. }, Ok(_), _) => Verdict::QemuRefusesMigsimLoads,
        _ => Verdict::QemuFailed,
    };
    let divergence = match (&verdict, &ours) {
        (Verdict::QemuLoadsMigsimRefuses, Err(LoadError::SizeMismatch { .. }))
            if base.layout == Layout::FixedRam =>
        {
            Some(KNOWN_DIVERGENCES[0].0)
        }
        _ => None,
    };
    Ok(Trial {
        input,
        outcome,
        migsim_error: ours.err().map(|e| e.to_string()),
        verdict,
        divergence,
        seconds,
    })
}

/// A fresh QEMU loads the file at `path`: its outcome, its memory from
/// [`COMPARE_FROM`] where it loaded, and the seconds it took.
fn qemu_load(
    q: &QemuBinary,
    base: &Base,
    input: &Input,
    path: &Path,
    dir: &Path,
    limits: &Limits,
) -> Result<(Outcome, Option<Vec<u8>>, f64), String> {
    use std::os::unix::process::ExitStatusExt;
    let log = dir.join(format!("qemu-{}.log", input.seed));
    let t0 = Instant::now();
    let mut p = QemuProcess::start_incoming(
        q,
        &format!("qemu fuzz seed {}", input.seed),
        base.machine_alias,
        base.mib,
        &limits.accel,
        &log,
    )?;
    p.set_reply_timeout(limits.timeout)?;
    let mut caps = vec![];
    if base.layout == Layout::FixedRam {
        caps.push("mapped-ram");
    }
    if input.multifd_channels.is_some() {
        caps.push("multifd");
    }
    p.enable_caps(&caps)?;
    if let Some(n) = input.multifd_channels {
        p.cmd("migrate-set-parameters", json!({ "multifd-channels": n }))?;
    }
    let mut args = json!({ "uri": format!("file:{}", path.display()) });
    if (q.major, q.minor) >= (9, 1) {
        args["exit-on-error"] = json!(false);
    }
    let mut blown = None;
    let outcome = match p.cmd("migrate-incoming", args).and_then(|_| {
        p.wait_migration(limits.timeout, Duration::from_millis(10), |p, _| {
            if let Some(r) = p.rss_bytes().filter(|&r| r > limits.rss_limit) {
                blown = Some(r);
            }
        })
    }) {
        _ if blown.is_some() => Outcome::MemoryBlowup {
            rss: blown.unwrap_or(0),
        },
        Ok(st) if st["status"] == "completed" => Outcome::Loaded,
        Ok(st) => Outcome::Refused {
            error: st["error-desc"]
                .as_str()
                .map_or_else(|| p.last_stderr_line(), str::to_string),
        },
        Err(_) => {
            // Dead, or no answer: give it a moment to be reaped.
            std::thread::sleep(Duration::from_millis(100));
            match p.exited() {
                Some(st) if st.signal().is_some() => Outcome::Crashed {
                    signal: signal_name(st.signal().unwrap_or(0)),
                    last_stderr: p.last_stderr_line(),
                },
                Some(_) => Outcome::Refused {
                    error: p.last_stderr_line(),
                },
                None if p.rss_bytes().is_some_and(|r| r > limits.rss_limit) => {
                    Outcome::MemoryBlowup {
                        rss: p.rss_bytes().unwrap_or(0),
                    }
                }
                None => Outcome::Hung,
            }
        }
    };
    let qemu_memory = if outcome == Outcome::Loaded {
        let scratch = dir.join(format!("pmem-{}.bin", input.seed));
        let ram = base.mib << 20;
        Some(p.pmemsave(COMPARE_FROM, ram - COMPARE_FROM, &scratch)?)
    } else {
        None
    };
    Ok((outcome, qemu_memory, t0.elapsed().as_secs_f64()))
}

/// What a finding is, for deduplication: the outcome's kind, signal and
/// QEMU's last line, or the verdict; the mutated fields; and whether
/// multifd channels loaded the pages.
pub fn finding_key(t: &Trial) -> String {
    let fields: Vec<&str> = t
        .input
        .mutations
        .iter()
        .map(|m| m.split([' ', '{', '(']).next().unwrap_or(m))
        .collect();
    let what = match &t.outcome {
        Outcome::Crashed {
            signal,
            last_stderr,
        } => {
            // Numbers (sizes, offsets) vary between inputs of one bug: a
            // run of digits becomes one `#`. A host CPUID warning is not
            // QEMU's last word on the crash.
            let line = if last_stderr.contains("host doesn't support requested feature") {
                String::new()
            } else {
                let mut line = String::new();
                for c in last_stderr.chars() {
                    match c {
                        '0'..='9' if line.ends_with('#') => {}
                        '0'..='9' => line.push('#'),
                        c => line.push(c),
                    }
                }
                line
            };
            format!("crashed {signal}: {line}")
        }
        Outcome::Hung => "hung".into(),
        Outcome::MemoryBlowup { .. } => "memory-blowup".into(),
        _ => format!("{:?}", t.verdict),
    };
    // The base is not part of it: one bug shows on every base; whether
    // multifd loaded the pages is (another code path in QEMU).
    let path = if t.input.multifd_channels.is_some() {
        " multifd"
    } else {
        ""
    };
    format!("{what} [{}]{path}", fields.join(","))
}

/// The reproducer of a finding: a TOML saying what the input is (base,
/// seed, the exact mutations as JSON in `applied`, their readable form in
/// `mutations`, the input's SHA-256), how QEMU was set up and what it
/// did. [`replay`] rebuilds the input from it; the `.mig` beside it holds
/// the same bytes.
pub fn reproducer_toml(t: &Trial, q: &QemuBinary) -> String {
    let applied = serde_json::to_string(&t.input.applied).unwrap_or_default();
    let v: Value = json!({
        "seed": t.input.seed,
        "base": t.input.base_name,
        "mutations": t.input.mutations,
        "applied": applied,
        "multifd_channels": t.input.multifd_channels,
        "file_len": t.input.file_len,
        "sha256": t.input.sha256,
        "qemu": q.version_line,
        "outcome": serde_json::to_value(&t.outcome).unwrap_or(Value::Null),
        "verdict": serde_json::to_value(&t.verdict).unwrap_or(Value::Null),
        "migsim_error": t.migsim_error,
        "replay": "migsim qemu replay <this file>",
    });
    // TOML has no null: absent fields are left out.
    fn strip(v: Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.into_iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k, strip(v)))
                    .collect(),
            ),
            other => other,
        }
    }
    toml::to_string(&strip(v)).unwrap_or_else(|e| format!("# {e}\n"))
}

/// What a campaign runs.
#[derive(Clone, Debug)]
pub struct CampaignOptions {
    /// Seeds (after sharding).
    pub seeds: crate::explore::SeedSet,
    /// Stop starting new seeds after this long (`None`: run every seed).
    pub time_limit: Option<Duration>,
    /// QEMU processes at once.
    pub jobs: usize,
    /// How each load is run.
    pub limits: Limits,
    /// Where reproducers go (`None`: not written).
    pub out: Option<std::path::PathBuf>,
}

/// One unique finding.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    /// What it is ([`finding_key`]).
    pub key: String,
    /// The first trial that showed it.
    pub trial: Trial,
    /// How many seeds showed it.
    pub count: u64,
    /// The saved input and TOML, if written.
    pub reproducer: Option<std::path::PathBuf>,
    /// The command that runs it again.
    pub replay: String,
}

/// A campaign's result.
#[derive(Clone, Debug, Serialize)]
pub struct CampaignReport {
    /// The QEMU that was loaded.
    pub qemu: String,
    /// Seeds run.
    pub seeds_run: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Loads per second.
    pub loads_per_second: f64,
    /// Count of each QEMU outcome (`loaded`, `refused`, `crashed`, `hung`,
    /// `memory-blowup`).
    pub outcomes: std::collections::BTreeMap<String, u64>,
    /// Count of each verdict.
    pub verdicts: std::collections::BTreeMap<String, u64>,
    /// Count of each named divergence seen.
    pub divergences: std::collections::BTreeMap<String, u64>,
    /// Unique findings, by first seed.
    pub findings: Vec<Finding>,
}

fn outcome_name(o: &Outcome) -> &'static str {
    match o {
        Outcome::Loaded => "loaded",
        Outcome::Refused { .. } => "refused",
        Outcome::Crashed { .. } => "crashed",
        Outcome::Hung => "hung",
        Outcome::MemoryBlowup { .. } => "memory-blowup",
    }
}

/// Run the campaign: every seed's input through a fresh QEMU, `jobs` at a
/// time; `progress(done, total)` after each. The counts and findings do
/// not depend on `jobs` (results are gathered by seed).
pub fn run_campaign(
    q: &QemuBinary,
    opts: &CampaignOptions,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<CampaignReport, String> {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};
    let bases = bases();
    let t0 = Instant::now();
    let dir = tempfile_dir()?;
    let total = opts.seeds.len();
    let next = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let trials: Mutex<std::collections::BTreeMap<u64, Trial>> = Mutex::new(Default::default());
    let error: Mutex<Option<String>> = Mutex::new(None);
    let work = || {
        loop {
            if opts.time_limit.is_some_and(|t| t0.elapsed() > t) {
                break;
            }
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= total {
                break;
            }
            let seed = opts.seeds.nth(i);
            match trial(q, &bases, input(&bases, seed), &dir.0, &opts.limits) {
                Ok(mut t) => {
                    // Kept: the result, not the bytes (tens of MiB a file);
                    // `build` makes them again from the base and mutations.
                    t.input.bytes = Vec::new();
                    trials.lock().expect("trials lock").insert(seed, t);
                }
                Err(e) => {
                    *error.lock().expect("error lock") = Some(format!("seed {seed}: {e}"));
                    break;
                }
            }
            progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
        }
    };
    std::thread::scope(|s| {
        for _ in 1..opts.jobs.max(1) {
            if std::thread::Builder::new().spawn_scoped(s, work).is_err() {
                break;
            }
        }
        work();
    });
    if let Some(e) = error.into_inner().expect("error lock") {
        return Err(e);
    }
    let trials = trials.into_inner().expect("trials lock");
    let seconds = t0.elapsed().as_secs_f64();
    let mut report = CampaignReport {
        qemu: q.version_line.clone(),
        seeds_run: trials.len() as u64,
        seconds,
        loads_per_second: trials.len() as f64 / seconds.max(1e-9),
        outcomes: Default::default(),
        verdicts: Default::default(),
        divergences: Default::default(),
        findings: Vec::new(),
    };
    let mut minimised: std::collections::BTreeMap<String, usize> = Default::default();
    for t in trials.values() {
        *report
            .outcomes
            .entry(outcome_name(&t.outcome).into())
            .or_default() += 1;
        let v = serde_json::to_value(&t.verdict).unwrap_or(Value::Null);
        *report
            .verdicts
            .entry(v.as_str().unwrap_or("?").into())
            .or_default() += 1;
        if let Some(d) = t.divergence {
            *report.divergences.entry(d.into()).or_default() += 1;
        }
        if !t.is_finding() {
            continue;
        }
        // A trial whose unminimised key was seen before shrinks the same
        // way: count it there instead of minimising it again (each try is
        // a fresh QEMU).
        let raw = finding_key(t);
        if let Some(&i) = minimised.get(&raw) {
            report.findings[i].count += 1;
            continue;
        }
        let t = &minimise(q, &bases, t.clone(), &dir.0, &opts.limits)?;
        let key = finding_key(t);
        if let Some(i) = report.findings.iter().position(|f| f.key == key) {
            report.findings[i].count += 1;
            minimised.insert(raw, i);
            continue;
        }
        minimised.insert(raw, report.findings.len());
        let replay = match &opts.out {
            Some(out) => ReplayCommand::QemuReplay {
                reproducer: out.join(format!("seed-{}.toml", t.input.seed)),
            },
            None => ReplayCommand::QemuFuzzSeed { seed: t.input.seed },
        }
        .to_string();
        let reproducer = match &opts.out {
            Some(out) => {
                std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
                let stem = out.join(format!("seed-{}", t.input.seed));
                write_sparse(&stem.with_extension("mig"), &t.input.bytes)
                    .map_err(|e| format!("{}: {e}", stem.display()))?;
                std::fs::write(stem.with_extension("toml"), reproducer_toml(t, q))
                    .map_err(|e| format!("{}: {e}", stem.display()))?;
                Some(stem.with_extension("toml"))
            }
            None => None,
        };
        report.findings.push(Finding {
            key,
            trial: t.clone(),
            count: 1,
            reproducer,
            replay,
        });
    }
    Ok(report)
}

/// A scratch directory removed when dropped.
struct ScratchDir(std::path::PathBuf);

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The campaign's scratch directory (each input and QEMU's `pmemsave`
/// pass through a file), under [`super::scratch_root`].
fn tempfile_dir() -> Result<ScratchDir, String> {
    let d = super::scratch_root().join(format!("migsim-qemu-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
    Ok(ScratchDir(d))
}

/// What `migsim qemu replay` found.
#[derive(Clone, Debug, Serialize)]
pub struct Replayed {
    /// The trial run again.
    pub trial: Trial,
    /// The outcome the reproducer records (`crashed SIGSEGV`, `loaded`, ...).
    pub recorded: String,
    /// The outcome now, in the same words.
    pub now: String,
    /// The rebuilt input has the SHA-256 the reproducer records (`false`:
    /// migsim's base files changed since it was written; the outcome is
    /// then of a different file).
    pub same_input: bool,
    /// Whether the same outcome (signal included) and verdict came back.
    pub reproduced: bool,
}

/// An outcome in a few words: its kind, and the signal of a crash.
fn outcome_words(kind: &str, signal: Option<&str>) -> String {
    match signal {
        Some(s) => format!("{kind} {s}"),
        None => kind.to_string(),
    }
}

/// Run a reproducer written by [`run_campaign`] again: the input is
/// rebuilt from its base and the exact mutations it records (`applied`),
/// checked against the recorded SHA-256, loaded by a fresh QEMU, and the
/// outcome and verdict compared with what the file records.
pub fn replay(q: &QemuBinary, toml_path: &Path, limits: &Limits) -> Result<Replayed, String> {
    let at = toml_path.display();
    let text = std::fs::read_to_string(toml_path).map_err(|e| format!("{at}: {e}"))?;
    let v: toml::Value = toml::from_str(&text).map_err(|e| format!("{at}: {e}"))?;
    let str_field = |k: &str| v.get(k).and_then(toml::Value::as_str);
    let not_one = "not a reproducer written by `migsim qemu fuzz --out`";
    // The seed only names the input (a reproducer made by hand has none):
    // the bytes come from the base and `applied`.
    let seed = v
        .get("seed")
        .and_then(toml::Value::as_integer)
        .map_or(0, |s| s as u64);
    let base_name = str_field("base").ok_or_else(|| format!("{at}: no `base`: {not_one}"))?;
    let applied: Vec<Mutation> = serde_json::from_str(
        str_field("applied").ok_or_else(|| format!("{at}: no `applied` mutations: {not_one}"))?,
    )
    .map_err(|e| format!("{at}: `applied`: {e}"))?;
    let multifd = v
        .get("multifd_channels")
        .and_then(toml::Value::as_integer)
        .map(|n| n as u32);
    let outcome = v.get("outcome");
    let recorded = outcome_words(
        outcome
            .and_then(|o| o.get("outcome"))
            .and_then(toml::Value::as_str)
            .unwrap_or("?"),
        outcome
            .and_then(|o| o.get("signal"))
            .and_then(toml::Value::as_str),
    );
    let verdict = str_field("verdict").unwrap_or("?");
    let bases = bases();
    let base = bases
        .iter()
        .position(|b| b.name == base_name)
        .ok_or_else(|| {
            let names: Vec<&str> = bases.iter().map(|b| b.name.as_str()).collect();
            format!("{at}: no base {base_name:?} (bases: {})", names.join(", "))
        })?;
    let input = build(&bases, seed, base, applied, multifd);
    let same_input = str_field("sha256") == Some(input.sha256.as_str());
    let dir = tempfile_dir()?;
    let t = trial(q, &bases, input, &dir.0, limits)?;
    let now = outcome_words(
        outcome_name(&t.outcome),
        match &t.outcome {
            Outcome::Crashed { signal, .. } => Some(signal.as_str()),
            _ => None,
        },
    );
    let got_verdict = serde_json::to_value(&t.verdict).unwrap_or(Value::Null);
    let reproduced = now == recorded && got_verdict == verdict;
    Ok(Replayed {
        trial: t,
        recorded,
        now,
        same_input,
        reproduced,
    })
}
