//! `migsim qemu run`: a scenario's workload inside a real QEMU guest
//! ([`super::guest`]), saved live by QEMU itself once per layout of the
//! scenario, and judged by migsim's oracle.
//!
//! For each layout (sequential; fixed-ram = QEMU's `mapped-ram`):
//! 1. a QEMU with the scenario's shape (machine type, pc.ram size) boots
//!    the guest program, which fills and then dirties pc.ram at the
//!    scenario's pace (`writes_per_tick` per tick of `tick_ms`);
//! 2. capabilities and parameters are set: `mapped-ram` (+ `multifd` and
//!    `direct-io` as the scenario says), `max-bandwidth` = the scenario's
//!    `bandwidth` pages per tick, `downtime-limit` = `downtime_ticks`
//!    ticks, so the guest out-dirties the link and QEMU syncs again and
//!    again; after `max_passes` dirty syncs the downtime limit is raised
//!    (a forced switchover, as the simulator forces one);
//! 3. `migrate file:` while `query-migrate` and the file's size are
//!    sampled every [`SAMPLE_MS`];
//! 4. at completion the stopped source's RAM (`pmemsave`) is the truth:
//!    migsim's restore of the file, and a fresh QEMU's own load of it
//!    (`migrate-incoming`), must equal it page for page (from 1 MiB:
//!    below it BIOS and VGA shadow pc.ram); a page that differs is named
//!    by its content header (`pc.ram page 0x1234: restored v7, source
//!    v9`). The mapped-ram file's page areas must sit where migsim's
//!    layout puts them (`BlockLayout::plan`), and what follows them
//!    (QEMU's PART sections, 18 bytes each, device state, vmdesc) must be
//!    small: the file is at its bound however long the save ran.
//!
//! The same scenario also runs through migsim's simulator, so the report
//! sets file sizes per pass (simulation) beside sizes per dirty sync (QEMU).
//!
//! The guest's choice of pages, versions and contents follows from the
//! seed; QEMU's timing does not: syncs, PART sections, bytes sent and file
//! sizes vary from run to run, and the report says which is which.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;

use super::guest::{GUEST_ELF, GuestParams, GuestStatus, LOW_RAM_MAX, PARAMS_GPA, tsc_hz};
use super::{QemuBinary, QemuProcess};
use crate::scenario::Scenario;
use crate::sim::content::{Identified, identify};
use crate::sim::dest::Destination;
use migsim_format::fixed_ram::BlockLayout;
use migsim_format::io::DiskFile;
use migsim_format::reader::{LoadOptions, inspect, load};
use migsim_format::{Capabilities, Capability, Layout, SectionKind};

/// Interval between two samples of the save.
pub const SAMPLE_MS: u64 = 50;
/// Guest-physical RAM compared from here (below it BIOS, VGA and option
/// ROMs shadow pc.ram).
const COMPARE_FROM: u64 = 1 << 20;
/// Bytes after the last page area a mapped-ram file may hold beyond
/// 18 bytes per PART section: QEMU's device state and vmdesc for a
/// `-nodefaults` machine are well under this.
pub const TAIL_ALLOWANCE: u64 = 1 << 20;
/// Differing pages named in a report.
const NAMED: usize = 8;

/// How `migsim qemu run` runs.
#[derive(Clone, Debug)]
pub struct LiveOptions {
    /// `-accel` of the source (the guest runs code: tcg by default).
    pub accel: String,
    /// Milliseconds of one scenario tick.
    pub tick_ms: u64,
    /// Longest one save (or load) may take.
    pub timeout: Duration,
    /// Keep the files here, and the report as `qemu-run.json` (`None`: a
    /// scratch directory, removed).
    pub out: Option<PathBuf>,
    /// Break the expectation on purpose, to show the judgement fails: after
    /// each save, the last copy of one page in the file is rewritten as
    /// that page's next version ([`sabotage`]).
    pub sabotage: bool,
}

/// One sample of a live save.
#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    /// Milliseconds since `migrate`.
    pub ms: u64,
    /// `query-migrate` status.
    pub status: String,
    /// `ram.dirty-sync-count`.
    pub dirty_syncs: u64,
    /// `ram.transferred`.
    pub transferred: u64,
    /// `ram.remaining`.
    pub remaining: u64,
    /// `ram.normal`: pages sent with data.
    pub normal_pages: u64,
    /// `ram.duplicate`: zero pages sent.
    pub zero_pages: u64,
    /// The file's length.
    pub file_len: u64,
}

/// The file at one dirty sync: the first sample that saw it.
#[derive(Clone, Debug, Serialize)]
pub struct AtSync {
    /// Sync count.
    pub sync: u64,
    /// Milliseconds since `migrate`.
    pub ms: u64,
    /// File length then.
    pub file_len: u64,
    /// Bytes QEMU had sent.
    pub transferred: u64,
}

/// A restore compared with the stopped source.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    /// Who restored (`migsim`, `qemu`).
    pub by: String,
    /// The restore failed: its error (then nothing was compared).
    pub error: Option<String>,
    /// Pages compared.
    pub pages: u64,
    /// Pages that differ.
    pub differing: u64,
    /// The first few, named.
    pub named: Vec<String>,
}

impl Comparison {
    /// Equal, page for page.
    pub fn equal(&self) -> bool {
        self.error.is_none() && self.differing == 0
    }
}

/// The mapped-ram file against migsim's layout.
#[derive(Clone, Debug, Serialize)]
pub struct Bound {
    /// Every block's bitmap and page area sit where migsim's layout
    /// puts them.
    pub offsets_match: bool,
    /// End of the last page area (migsim's layout).
    pub ram_end: u64,
    /// File bytes after it.
    pub tail: u64,
    /// RAM PART sections in the file.
    pub parts: u64,
    /// `tail <= 18 * parts + TAIL_ALLOWANCE` and the offsets match.
    pub within: bool,
}

/// The stopped source's work region, page by page: what the guest wrote
/// there must be migsim's page contents (checked with
/// [`crate::sim::content::identify`], filler included), except for the
/// one page being written when the vCPU stopped.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Census {
    /// All-zero pages.
    pub zero: u64,
    /// Pages holding their own content at some version.
    pub data: u64,
    /// Pages holding anything else. One is expected at most: the page the
    /// one vCPU was writing when the source stopped (torn between two
    /// versions, or half zeroed); more mean the guest wrote wrong bytes.
    pub foreign: u64,
    /// The highest version seen.
    pub max_version: u32,
}

/// One layout's live save.
#[derive(Clone, Debug, Serialize)]
pub struct LayoutRun {
    /// The layout.
    pub layout: Layout,
    /// The file, when kept.
    pub file: Option<PathBuf>,
    /// Its final length.
    pub file_len: u64,
    /// Final length over pc.ram.
    pub file_over_ram: f64,
    /// `ram.dirty-sync-count` at completion.
    pub dirty_syncs: u64,
    /// The downtime limit was raised at this sync (forced switchover).
    pub forced_at_sync: Option<u64>,
    /// `total-time` and `downtime`, ms.
    pub total_time_ms: u64,
    /// Downtime, ms.
    pub downtime_ms: u64,
    /// `ram.transferred`.
    pub transferred: u64,
    /// `ram.normal` and `ram.duplicate` at completion: pages sent with
    /// data, and zero pages.
    pub pages_sent: (u64, u64),
    /// The file at each sync.
    pub at_sync: Vec<AtSync>,
    /// Every sample.
    pub samples: Vec<Sample>,
    /// The guest when the source stopped.
    pub guest: GuestStatus,
    /// Guest writes per second during the save.
    pub guest_writes_per_second: f64,
    /// The source's work region at switchover.
    pub source_pages: Census,
    /// migsim's restore, and QEMU's own load.
    pub restores: Vec<Comparison>,
    /// RAM PART sections in QEMU's file (one per iteration slice).
    pub parts: u64,
    /// mapped-ram: the bound.
    pub bound: Option<Bound>,
    /// `--sabotage`: what was changed in the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sabotaged: Option<String>,
    /// Every check held.
    pub pass: bool,
}

/// The same scenario through migsim's simulator, for the side-by-side.
#[derive(Clone, Debug, Serialize)]
pub struct Simulated {
    /// Its verdict (`pass`, ...).
    pub verdict: String,
    /// Live passes (each starts with a dirty sync).
    pub passes: u32,
    /// Converged before max_passes.
    pub converged: bool,
    /// Pages sent.
    pub pages_sent: u64,
    /// Per layout: file size after setup and after each pass.
    pub size_after_pass: Vec<(Layout, Vec<u64>)>,
}

/// `migsim qemu run`'s result.
#[derive(Clone, Debug, Serialize)]
pub struct LiveReport {
    /// Scenario name.
    pub scenario: String,
    /// The seed.
    pub seed: u64,
    /// QEMU's version line.
    pub qemu: String,
    /// Source accelerator.
    pub accel: String,
    /// Tick, ms.
    pub tick_ms: u64,
    /// pc.ram bytes.
    pub ram: u64,
    /// What the guest was told.
    pub guest: GuestParams,
    /// `max-bandwidth`, bytes/s.
    pub max_bandwidth: u64,
    /// `downtime-limit`, ms.
    pub downtime_limit_ms: u64,
    /// Syncs before the switchover is forced.
    pub force_after_syncs: u64,
    /// One per layout.
    pub runs: Vec<LayoutRun>,
    /// The simulation of the same scenario.
    pub simulation: Option<Simulated>,
    /// Why there is no simulation (its limits, `--file-dir` needed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub simulation_skipped: Option<String>,
    /// Every layout passed.
    pub pass: bool,
    /// Which figures follow from the seed and which from QEMU's timing.
    pub deterministic: &'static str,
}

const DETERMINISTIC: &str = "from the seed: the guest's pages, versions and contents, the work region, QEMU's parameters; from QEMU's timing: syncs, PART sections, bytes sent, file sizes, guest writes done, the pages' versions at switchover";

/// A scratch or kept directory (scratch removed when dropped).
struct Dir {
    path: PathBuf,
    scratch: bool,
}

impl Drop for Dir {
    fn drop(&mut self) {
        if self.scratch {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

/// Run `s` in a real QEMU, once per layout of its writers.
pub fn run_live(
    q: &QemuBinary,
    s: &Scenario,
    opts: &LiveOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<LiveReport, String> {
    s.validate()?;
    if opts.tick_ms == 0 {
        return Err("--tick-ms must be at least 1".into());
    }
    let blocks = s.blocks();
    let pc = blocks
        .iter()
        .find(|b| b.name == "pc.ram")
        .ok_or_else(|| format!("scenario {}: no pc.ram block", s.name))?;
    let ram = pc.used_length;
    if ram > LOW_RAM_MAX || !ram.is_multiple_of(1 << 20) {
        return Err(format!(
            "scenario {}: pc.ram of {ram} bytes: migsim qemu run takes whole MiB up to {} MiB \
             (RAM below 4 GiB on pc and q35)",
            s.name,
            LOW_RAM_MAX >> 20
        ));
    }
    for c in &s.migration.capabilities {
        if !matches!(c, Capability::Multifd) {
            return Err(format!(
                "scenario {}: capability {} is not one migsim qemu run sets (it sets mapped-ram \
                 for the fixed-ram layout, and multifd)",
                s.name,
                c.name()
            ));
        }
    }
    let hz = tsc_hz(100);
    let guest = GuestParams::for_scenario(s, hz / 1000 * opts.tick_ms)?;
    let max_bandwidth = s.parameters.bandwidth * 4096 * 1000 / opts.tick_ms;
    let downtime_limit_ms = (s.parameters.downtime_ticks * opts.tick_ms).max(1);
    let force_after = u64::from(s.parameters.max_passes);
    let dir = match &opts.out {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
            Dir {
                path: d.clone(),
                scratch: false,
            }
        }
        None => {
            let d = super::scratch_root().join(format!("migsim-qemu-run-{}", std::process::id()));
            std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
            Dir {
                path: d,
                scratch: true,
            }
        }
    };
    let elf = dir.path.join("migsim-guest.elf");
    std::fs::write(&elf, GUEST_ELF).map_err(|e| format!("{}: {e}", elf.display()))?;
    let params = dir.path.join("guest-params.bin");
    std::fs::write(&params, guest.encode()).map_err(|e| format!("{}: {e}", params.display()))?;
    let mut runs = Vec::new();
    for &layout in &s.migration.writers {
        progress(&format!("{}: booting the guest", layout.name()));
        let plan = Plan {
            guest: &guest,
            elf: &elf,
            params: &params,
            ram,
            max_bandwidth,
            downtime_ms: downtime_limit_ms,
            force_after,
        };
        runs.push(save_once(q, s, opts, &plan, layout, &dir, progress)?);
    }
    progress("simulating the same scenario");
    let (simulation, simulation_skipped) = match simulate(s) {
        Ok(x) => (Some(x), None),
        Err(e) => (None, Some(e)),
    };
    let report = LiveReport {
        scenario: s.name.clone(),
        seed: s.seed,
        qemu: q.version_line.clone(),
        accel: opts.accel.clone(),
        tick_ms: opts.tick_ms,
        ram,
        pass: runs.iter().all(|r| r.pass),
        guest,
        max_bandwidth,
        downtime_limit_ms,
        force_after_syncs: force_after,
        runs,
        simulation,
        simulation_skipped,
        deterministic: DETERMINISTIC,
    };
    if let Some(d) = &opts.out {
        let p = d.join("qemu-run.json");
        let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    Ok(report)
}

/// `migsim run` of the scenario in memory (when its limits allow).
fn simulate(s: &Scenario) -> Result<Simulated, String> {
    let opts = crate::run::RunOptions::default();
    crate::limits::check_run(s, &opts)?;
    let r = crate::run::run(s, &opts);
    if let Some(e) = r.environment_error {
        return Err(e);
    }
    Ok(Simulated {
        verdict: serde_json::to_value(r.verdict)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        passes: r.passes,
        converged: r.converged,
        pages_sent: r.pages_sent,
        size_after_pass: r
            .files
            .iter()
            .map(|f| (f.writer, f.size_after_pass.clone()))
            .collect(),
    })
}

/// The capabilities QEMU gets for `layout` of `s`.
fn caps(layout: Layout, s: &Scenario) -> Vec<&'static str> {
    let mut caps = Vec::new();
    if layout == Layout::FixedRam {
        caps.push("mapped-ram");
    }
    if s.migration.capabilities.contains(&Capability::Multifd) {
        caps.push("multifd");
    }
    caps
}

/// Multifd channels QEMU uses when the scenario asks for multifd.
const MULTIFD_CHANNELS: u64 = 4;

fn set_up(p: &mut QemuProcess, layout: Layout, s: &Scenario) -> Result<(), String> {
    p.enable_caps(&caps(layout, s))?;
    if s.migration.capabilities.contains(&Capability::Multifd) {
        p.cmd(
            "migrate-set-parameters",
            json!({ "multifd-channels": MULTIFD_CHANNELS }),
        )?;
        if s.migration.direct_io && layout == Layout::FixedRam {
            p.cmd("migrate-set-parameters", json!({ "direct-io": true }))?;
        }
    }
    Ok(())
}

/// What every layout's save of one run shares.
struct Plan<'a> {
    guest: &'a GuestParams,
    /// The guest program and its parameter page, as files.
    elf: &'a Path,
    params: &'a Path,
    /// pc.ram bytes.
    ram: u64,
    max_bandwidth: u64,
    downtime_ms: u64,
    /// Syncs before the switchover is forced.
    force_after: u64,
}

fn save_once(
    q: &QemuBinary,
    s: &Scenario,
    opts: &LiveOptions,
    plan: &Plan<'_>,
    layout: Layout,
    dir: &Dir,
    progress: &mut dyn FnMut(&str),
) -> Result<LayoutRun, String> {
    let &Plan {
        guest,
        elf,
        params,
        ram,
        max_bandwidth,
        downtime_ms,
        force_after,
    } = plan;
    let mib = (ram >> 20).to_string();
    let loader = format!(
        "loader,file={},addr={PARAMS_GPA:#x},force-raw=on",
        super::qemu_opt_escape(&params.display().to_string())
    );
    let kernel = elf.display().to_string();
    let args = [
        "-M",
        &s.guest.machine,
        "-m",
        &mib,
        "-nodefaults",
        "-display",
        "none",
        "-accel",
        &opts.accel,
        "-kernel",
        &kernel,
        "-device",
        &loader,
    ];
    let log = dir.path.join(format!("qemu-{}-source.log", layout.name()));
    let mut src = QemuProcess::start(
        q,
        &format!("qemu run {} source", layout.name()),
        &args,
        &log,
    )?;
    let scratch = dir.path.join("status.bin");
    // The guest filled its region and runs the workload.
    let t0 = Instant::now();
    loop {
        let st = GuestStatus::parse(&src.pmemsave(PARAMS_GPA, 4096, &scratch)?);
        if st.status == 0xBAD {
            return Err("the guest program refused its parameter page".into());
        }
        if st.status == 2 && st.ticks > 0 {
            break;
        }
        if t0.elapsed() > opts.timeout {
            return Err(format!(
                "the guest program did not start its workload within {:?} (accel {}; status {st:?}){}",
                opts.timeout,
                opts.accel,
                src.stderr_tail()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    set_up(&mut src, layout, s)?;
    src.cmd(
        "migrate-set-parameters",
        json!({ "max-bandwidth": max_bandwidth, "downtime-limit": downtime_ms }),
    )?;
    let file = dir.path.join(format!("{}.mig", layout.name()));
    let _ = std::fs::remove_file(&file);
    let before = GuestStatus::parse(&src.pmemsave(PARAMS_GPA, 4096, &scratch)?);
    let m0 = Instant::now();
    src.cmd(
        "migrate",
        json!({ "uri": format!("file:{}", file.display()) }),
    )?;
    progress(&format!("{}: saving live", layout.name()));
    let mut samples: Vec<Sample> = Vec::new();
    let mut forced = None;
    let mut failed = None;
    let st = src.wait_migration(opts.timeout, Duration::from_millis(SAMPLE_MS), |p, st| {
        let syncs = st["ram"]["dirty-sync-count"].as_u64().unwrap_or(0);
        samples.push(Sample {
            ms: m0.elapsed().as_millis() as u64,
            status: st["status"].as_str().unwrap_or("").to_string(),
            dirty_syncs: syncs,
            transferred: st["ram"]["transferred"].as_u64().unwrap_or(0),
            remaining: st["ram"]["remaining"].as_u64().unwrap_or(0),
            normal_pages: st["ram"]["normal"].as_u64().unwrap_or(0),
            zero_pages: st["ram"]["duplicate"].as_u64().unwrap_or(0),
            file_len: file_len(&file),
        });
        if forced.is_none() && syncs >= force_after {
            // As the simulator forces a switchover after max_passes.
            if let Err(e) = p.cmd(
                "migrate-set-parameters",
                json!({ "downtime-limit": 100_000 }),
            ) {
                failed = Some(e);
            }
            forced = Some(syncs);
        }
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    let save_s = m0.elapsed().as_secs_f64();
    if st["status"] != "completed" {
        return Err(format!(
            "QEMU's live {} save ended {}: {}{}",
            layout.name(),
            st["status"],
            st["error-desc"].as_str().unwrap_or(""),
            src.stderr_tail()
        ));
    }
    let flen = file_len(&file);
    samples.push(Sample {
        ms: m0.elapsed().as_millis() as u64,
        status: "completed".into(),
        dirty_syncs: st["ram"]["dirty-sync-count"].as_u64().unwrap_or(0),
        transferred: st["ram"]["transferred"].as_u64().unwrap_or(0),
        remaining: 0,
        normal_pages: st["ram"]["normal"].as_u64().unwrap_or(0),
        zero_pages: st["ram"]["duplicate"].as_u64().unwrap_or(0),
        file_len: flen,
    });
    progress(&format!("{}: reading the stopped source", layout.name()));
    let after = GuestStatus::parse(&src.pmemsave(PARAMS_GPA, 4096, &scratch)?);
    let low = ram.min(LOW_RAM_MAX);
    let truth = src.pmemsave(
        COMPARE_FROM,
        low - COMPARE_FROM,
        &dir.path.join("source.pmem"),
    )?;
    drop(src);

    let mut caps = Capabilities::for_profile(s.migration.profile);
    if layout == Layout::FixedRam {
        caps.set(&[(Capability::MappedRam, true)])
            .map_err(|e| e.to_string())?;
    }
    if s.migration.capabilities.contains(&Capability::Multifd) {
        caps.set(&[(Capability::Multifd, true)])
            .map_err(|e| e.to_string())?;
    }
    let sabotaged = if opts.sabotage {
        Some(sabotage(&file, &truth, guest)?)
    } else {
        None
    };
    progress(&format!("{}: migsim restores the file", layout.name()));
    let disk = DiskFile::open(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    let info = inspect(&disk).map_err(|e| format!("{}: {e}", file.display()))?;
    let ours = migsim_restore(&disk, &info, s, &caps, &truth, guest.seed);
    progress(&format!("{}: a fresh QEMU loads the file", layout.name()));
    let theirs = qemu_restore(q, s, layout, &file, dir, opts, &truth, guest.seed)?;
    let parts = info
        .sections
        .iter()
        .filter(|x| x.kind == SectionKind::Part && x.idstr == "ram")
        .count() as u64;
    let bound = (layout == Layout::FixedRam).then(|| bound(&info, flen, parts));
    let mut at_sync: Vec<AtSync> = Vec::new();
    for x in &samples {
        if at_sync.last().is_none_or(|a| a.sync < x.dirty_syncs) {
            at_sync.push(AtSync {
                sync: x.dirty_syncs,
                ms: x.ms,
                file_len: x.file_len,
                transferred: x.transferred,
            });
        }
    }
    let source_pages = census(&truth, guest);
    let restores = vec![ours, theirs];
    let pass = restores.iter().all(Comparison::equal)
        && bound.as_ref().is_none_or(|b| b.within)
        && source_pages.foreign <= 1;
    let kept = opts.out.as_ref().map(|_| file.clone());
    if kept.is_none() {
        let _ = std::fs::remove_file(&file);
    }
    Ok(LayoutRun {
        layout,
        file: kept,
        file_len: flen,
        file_over_ram: flen as f64 / ram as f64,
        dirty_syncs: st["ram"]["dirty-sync-count"].as_u64().unwrap_or(0),
        forced_at_sync: forced,
        total_time_ms: st["total-time"].as_u64().unwrap_or(0),
        downtime_ms: st["downtime"].as_u64().unwrap_or(0),
        transferred: st["ram"]["transferred"].as_u64().unwrap_or(0),
        pages_sent: (
            st["ram"]["normal"].as_u64().unwrap_or(0),
            st["ram"]["duplicate"].as_u64().unwrap_or(0),
        ),
        at_sync,
        samples,
        guest_writes_per_second: after.writes.saturating_sub(before.writes) as f64
            / save_s.max(1e-9),
        guest: after,
        source_pages,
        restores,
        parts,
        bound,
        sabotaged,
        pass,
    })
}

/// Rewrite the last copy of the first data page of the work region in the
/// saved file as that page's next version (the file then no longer holds
/// what the source had at switchover): returns what was done.
pub fn sabotage(file: &Path, truth: &[u8], g: &GuestParams) -> Result<String, String> {
    use crate::sim::content::{PageState, fill_page};
    let from = (g.first_page * 4096 - COMPARE_FROM) as usize;
    let (i, version) = truth[from.min(truth.len())..]
        .chunks(4096)
        .enumerate()
        .find_map(|(i, p)| match identify(g.seed, p) {
            Identified::Data { version, .. } => Some((i, version)),
            _ => None,
        })
        .ok_or("--sabotage: the source has no data page to change")?;
    let page = g.first_page + i as u64;
    let want = &truth[from + i * 4096..from + (i + 1) * 4096];
    let mut bytes = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let at = bytes
        .windows(4096)
        .rposition(|w| w == want)
        .ok_or_else(|| format!("--sabotage: page {page:#x} v{version} is not in the file"))?;
    let next = PageState {
        version: version + 1,
        zero: false,
    };
    fill_page(g.seed, g.block, page, next, &mut bytes[at..at + 4096]);
    std::fs::write(file, &bytes).map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(format!(
        "pc.ram page {page:#x}: its last copy in the file (at {at:#x}) rewritten from v{version} to v{}",
        version + 1
    ))
}

/// Count the work region's pages in `truth` (RAM from [`COMPARE_FROM`]).
fn census(truth: &[u8], g: &GuestParams) -> Census {
    let mut c = Census::default();
    let from = (g.first_page * 4096 - COMPARE_FROM) as usize;
    for (i, page) in truth[from.min(truth.len())..].chunks(4096).enumerate() {
        match identify(g.seed, page) {
            Identified::Zero => c.zero += 1,
            Identified::Data {
                block,
                page: p,
                version,
            } if block == g.block && p == g.first_page + i as u64 => {
                c.data += 1;
                c.max_version = c.max_version.max(version);
            }
            _ => c.foreign += 1,
        }
    }
    c
}

/// Name the first pages where `got` differs from `want` (both from
/// [`COMPARE_FROM`]).
fn compare(by: &str, got: &[u8], want: &[u8], seed: u64) -> Comparison {
    let mut differing = 0;
    let mut named = Vec::new();
    for (i, (g, w)) in got.chunks(4096).zip(want.chunks(4096)).enumerate() {
        if g == w {
            continue;
        }
        differing += 1;
        if named.len() < NAMED {
            let page = COMPARE_FROM / 4096 + i as u64;
            let say = |b: &[u8]| match identify(seed, b) {
                Identified::Zero => "zero".to_string(),
                Identified::Data {
                    version, page: p, ..
                } if p == page => format!("v{version}"),
                Identified::Data {
                    version, page: p, ..
                } => {
                    format!("v{version} of page {p:#x}")
                }
                Identified::Garbage => "unrecognised bytes".to_string(),
            };
            named.push(format!(
                "pc.ram page {page:#x}: restored {}, source {}",
                say(g),
                say(w)
            ));
        }
    }
    if got.len() != want.len() {
        differing += 1;
        named.push(format!(
            "restored {} bytes of pc.ram, the source has {}",
            got.len(),
            want.len()
        ));
    }
    Comparison {
        by: by.into(),
        error: None,
        pages: want.len() as u64 / 4096,
        differing,
        named,
    }
}

fn migsim_restore(
    disk: &DiskFile,
    info: &migsim_format::reader::StreamInfo,
    s: &Scenario,
    caps: &Capabilities,
    truth: &[u8],
    seed: u64,
) -> Comparison {
    let blocks: Vec<_> = info
        .blocks
        .iter()
        .map(|b| migsim_format::RamBlockDesc {
            name: b.name.clone(),
            used_length: b.used_length,
            shared: false,
        })
        .collect();
    let mut dest = Destination::new(&blocks, true);
    let opts = LoadOptions {
        machine: Some(s.guest.machine.clone()),
        caps: Some(*caps),
        ..LoadOptions::default()
    };
    let failed = |e: String| Comparison {
        by: "migsim".into(),
        error: Some(e),
        pages: 0,
        differing: 0,
        named: Vec::new(),
    };
    if let Err(e) = load(disk, &opts, &mut dest) {
        return failed(e.to_string());
    }
    let Some(pc) = blocks.iter().position(|b| b.name == "pc.ram") else {
        return failed("QEMU's file has no pc.ram".into());
    };
    let end = (COMPARE_FROM as usize + truth.len()).min(dest.block(pc).len());
    compare(
        "migsim",
        &dest.block(pc)[COMPARE_FROM as usize..end],
        truth,
        seed,
    )
}

#[allow(clippy::too_many_arguments)]
fn qemu_restore(
    q: &QemuBinary,
    s: &Scenario,
    layout: Layout,
    file: &Path,
    dir: &Dir,
    opts: &LiveOptions,
    truth: &[u8],
    seed: u64,
) -> Result<Comparison, String> {
    let ram = truth.len() as u64 + COMPARE_FROM;
    let log = dir.path.join(format!("qemu-{}-dest.log", layout.name()));
    let mut d = QemuProcess::start_incoming(
        q,
        &format!("qemu run {} destination", layout.name()),
        &s.guest.machine,
        ram >> 20,
        &super::stopped_guest_accel(),
        &log,
    )?;
    set_up(&mut d, layout, s)?;
    d.cmd(
        "migrate-incoming",
        json!({ "uri": format!("file:{}", file.display()) }),
    )?;
    let st = d.wait_migration(opts.timeout, Duration::from_millis(20), |_, _| {})?;
    if st["status"] != "completed" {
        return Ok(Comparison {
            by: "qemu".into(),
            error: Some(format!(
                "QEMU's load {}: {}{}",
                st["status"],
                st["error-desc"].as_str().unwrap_or(""),
                d.stderr_tail()
            )),
            pages: 0,
            differing: 0,
            named: Vec::new(),
        });
    }
    let got = d.pmemsave(
        COMPARE_FROM,
        ram - COMPARE_FROM,
        &dir.path.join("dest.pmem"),
    )?;
    Ok(compare("qemu", &got, truth, seed))
}

fn bound(info: &migsim_format::reader::StreamInfo, flen: u64, parts: u64) -> Bound {
    let mut offsets_match = true;
    let mut ram_end = 0;
    for b in &info.blocks {
        let Some(f) = &b.fixed_ram else {
            offsets_match = false;
            continue;
        };
        let plan = if b.ignored {
            BlockLayout::ignored(f.header_offset)
        } else {
            BlockLayout::plan(f.header_offset, b.used_length)
        };
        offsets_match &= plan.header.bitmap_offset == f.bitmap_offset
            && plan.header.pages_offset == f.pages_offset;
        ram_end = ram_end.max(plan.end());
    }
    let tail = flen.saturating_sub(ram_end);
    Bound {
        offsets_match,
        ram_end,
        tail,
        parts,
        within: offsets_match && tail <= 18 * parts + TAIL_ALLOWANCE,
    }
}
