//! `migsim report`: run a sweep of the default scenario (or given
//! scenario files) and write what it shows for people who never saw
//! migsim: a self-contained HTML page with inline SVG charts, the same as
//! Markdown with the charts as SVG files beside it, and CSV tables.
//!
//! Files written to the output directory:
//!
//! * `report.html`: self-contained (inline CSS and SVG, no scripts, no
//!   external references), opens offline;
//! * `report.md` and `fig1-size-per-pass.svg`, `fig2-size-vs-dirty-rate.svg`,
//!   `fig3-written-vs-allocated.svg`, referenced relatively;
//! * `report.csv`: one row per run and writer; `sizes.csv`: file size after
//!   setup and each pass, per run and writer;
//! * `scenarios/<name>.toml` for each point of the built-in sweep, with its
//!   digest as the expectation, so `migsim run DIR/scenarios/<name>.toml`
//!   replays and checks it.
//!
//! Output is a pure function of the inputs (and of `DIR` as given, which
//! appears in the replay commands): no timestamps, no host names, runs
//! ordered as given whatever the number of worker threads.
//!
//! One job a file: [`sweep`] runs the inputs, [`csv`] writes the tables,
//! [`charts`] draws the SVG figures, [`document`] builds the Markdown and
//! HTML pages; [`qemu`] is the report of a `migsim qemu run`.

#[macro_use]
mod charts;
mod csv;
mod document;
pub mod qemu;
mod sweep;

use charts::*;
use csv::*;
pub use csv::{REPORT_CSV_HEADER, SIZES_CSV_HEADER};
use document::*;
pub use sweep::{load_inputs, sweep};
use sweep::{run_all, sweep_file};

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use migsim_format::Layout;
use migsim_harness::run::Difference;
use migsim_harness::scenario::{Scenario, Verdict};
use migsim_harness::sim::workload::WorkloadKind;

/// Dirty rates (pages the guest writes per tick) of the built-in sweep;
/// 0 makes the guest idle.
pub const SWEEP_WRITES_PER_TICK: [u64; 6] = [0, 100, 300, 600, 1200, 2000];
/// `max_passes` values of the built-in sweep.
pub const SWEEP_MAX_PASSES: [u32; 4] = [4, 8, 12, 20];

/// Chart file names, in figure order.
pub const CHART_FILES: [&str; 3] = [
    "fig1-size-per-pass.svg",
    "fig2-size-vs-dirty-rate.svg",
    "fig3-written-vs-allocated.svg",
];

/// One scenario to run.
#[derive(Clone, Debug)]
pub struct ReportInput {
    /// The scenario.
    pub scenario: Scenario,
    /// The file it was loaded from; `None` for a generated sweep point,
    /// whose TOML the report writes to `DIR/scenarios/<name>.toml`.
    pub path: Option<PathBuf>,
}

/// One writer's file in a run.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportFile {
    /// `sequential` or `fixed-ram`.
    pub writer: Layout,
    /// Final (logical) size in bytes.
    pub size: u64,
    /// Bytes written, overwrites counted.
    pub bytes_written: u64,
    /// Bytes allocated on disk (4 KiB granules).
    pub allocated: u64,
    /// Size after setup (index 0) and after each pass, the final pass last.
    pub size_after_pass: Vec<u64>,
}

/// What the report keeps of one run (the files' bytes are dropped).
#[derive(Clone, Debug)]
pub struct ReportRun {
    /// The scenario as run; a sweep point's carries its digest as expectation.
    pub scenario: Scenario,
    /// The scenario file: the given one, or `DIR/scenarios/<name>.toml`.
    pub scenario_file: PathBuf,
    /// The command that re-runs this scenario and checks its expectations.
    pub replay: String,
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
    /// Guest RAM bytes.
    pub ram_bytes: u64,
    /// The fixed-ram size bound.
    pub bound: u64,
    /// Invariants held, of `invariants`.
    pub invariants_held: usize,
    /// Invariants judged.
    pub invariants: usize,
    /// `name [writer]: detail` of each failed invariant.
    pub failed: Vec<String>,
    /// Differences from the scenario's `[expect]` table.
    pub expectation_differences: Vec<Difference>,
    /// Per writer.
    pub files: Vec<ReportFile>,
    /// Run digest.
    pub digest: String,
}

impl ReportRun {
    /// Pages the guest wrote per tick (0 for an idle guest).
    pub fn writes_per_tick(&self) -> u64 {
        effective_writes_per_tick(&self.scenario)
    }

    /// The file of a writer.
    pub fn file(&self, writer: Layout) -> Option<&ReportFile> {
        self.files.iter().find(|f| f.writer == writer)
    }
}

/// A written report.
#[derive(Debug)]
pub struct Report {
    /// Every run, in input order.
    pub runs: Vec<ReportRun>,
    /// Files written, relative to the output directory, sorted.
    pub files: Vec<PathBuf>,
}

impl Report {
    /// True when every run met its scenario's expectations.
    pub fn all_expected(&self) -> bool {
        self.runs
            .iter()
            .all(|r| r.expectation_differences.is_empty())
    }
}

fn effective_writes_per_tick(s: &Scenario) -> u64 {
    if s.workload.kind == WorkloadKind::Idle {
        0
    } else {
        s.workload.writes_per_tick
    }
}

/// Run every input (on up to `jobs` threads), then write the report into
/// `dir` (created if needed).
pub fn write_report(
    inputs: &[ReportInput],
    dir: &Path,
    jobs: usize,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Report, String> {
    let runs = run_all(inputs, dir, jobs.max(1), progress);
    let mut written: Vec<(PathBuf, Vec<u8>)> = Vec::new();

    for (input, r) in inputs.iter().zip(&runs) {
        if input.path.is_none() {
            let toml = r.scenario.to_toml()?;
            let text = format!(
                "# Written by `migsim report`. Replay and check the digest:\n# {}\n\n{toml}",
                r.replay
            );
            written.push((
                sweep_file(Path::new(""), &r.scenario.name),
                text.into_bytes(),
            ));
        }
    }

    let charts = charts(&runs)?;
    for (name, svg) in CHART_FILES.iter().zip(&charts) {
        written.push((PathBuf::from(name), svg.svg.clone().into_bytes()));
    }
    written.push(("report.csv".into(), report_csv(&runs).into_bytes()));
    written.push(("sizes.csv".into(), sizes_csv(&runs).into_bytes()));
    let sweep_mode = inputs.iter().all(|i| i.path.is_none());
    let doc = Doc::new(&runs, sweep_mode);
    written.push(("report.md".into(), doc.markdown(&charts).into_bytes()));
    written.push(("report.html".into(), doc.html(&charts).into_bytes()));

    for (rel, bytes) in &written {
        let p = dir.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        std::fs::write(&p, bytes).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    let mut files: Vec<PathBuf> = written.into_iter().map(|(p, _)| p).collect();
    files.sort();
    Ok(Report { runs, files })
}

/// Differences joined with `; `, as one table cell or line.
pub fn join_differences(d: &[Difference]) -> String {
    d.iter()
        .map(Difference::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
