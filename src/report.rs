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

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use migsim_format::Layout;
use migsim_harness::oracle::Judged;
use migsim_harness::replay_command::ReplayCommand;
use migsim_harness::run::{Difference, RunOptions, check_expectations, run};
use migsim_harness::scenario::{Expect, Scenario, Verdict};
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

/// The built-in sweep: the embedded default scenario with every
/// combination of [`SWEEP_MAX_PASSES`] and [`SWEEP_WRITES_PER_TICK`]
/// (0 = idle guest), everything else kept. The point with the default's
/// own values runs exactly the default scenario (same digest).
pub fn sweep() -> Vec<ReportInput> {
    let base = Scenario::default_scenario();
    let mut out = Vec::new();
    for &p in &SWEEP_MAX_PASSES {
        for &w in &SWEEP_WRITES_PER_TICK {
            let mut s = base.clone();
            s.name = format!("{}-w{w}-p{p}", base.name);
            s.description = format!(
                "The embedded {} scenario with the guest writing {w} pages per tick{} \
                 and at most {p} live passes; everything else unchanged. \
                 Written by `migsim report`.",
                base.name,
                if w == 0 { " (idle)" } else { "" }
            );
            s.workload.writes_per_tick = w;
            if w == 0 {
                s.workload.kind = WorkloadKind::Idle;
            }
            s.parameters.max_passes = p;
            s.expect = Expect::default();
            out.push(ReportInput {
                scenario: s,
                path: None,
            });
        }
    }
    out
}

/// Load scenario files; directories are searched recursively for `*.toml`
/// (sorted), like `migsim replay`.
pub fn load_inputs(paths: &[PathBuf]) -> Result<Vec<ReportInput>, String> {
    let files = migsim_harness::scenario::scenario_files(paths)?;
    if files.is_empty() {
        return Err("no scenario files (*.toml) found".into());
    }
    files
        .into_iter()
        .map(|f| {
            Ok(ReportInput {
                scenario: Scenario::load(&f)?,
                path: Some(f),
            })
        })
        .collect()
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

/// Run all inputs on `jobs` threads, the costliest first; results in input
/// order.
fn run_all(
    inputs: &[ReportInput],
    dir: &Path,
    jobs: usize,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Vec<ReportRun> {
    let mut order: Vec<usize> = (0..inputs.len()).collect();
    let cost = |s: &Scenario| {
        (effective_writes_per_tick(s) + s.parameters.bandwidth) * u64::from(s.parameters.max_passes)
    };
    order.sort_by_key(|&i| std::cmp::Reverse(cost(&inputs[i].scenario)));
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<ReportRun>>> = Mutex::new(vec![None; inputs.len()]);
    let work = || {
        loop {
            let k = next.fetch_add(1, Ordering::Relaxed);
            let Some(&i) = order.get(k) else { break };
            let r = run_one(&inputs[i], dir);
            results.lock().expect("no worker panicked")[i] = Some(r);
            progress(done.fetch_add(1, Ordering::Relaxed) + 1, inputs.len());
        }
    };
    // Up to `jobs` threads, this one included; if the system refuses a
    // thread, the ones running do the rest.
    std::thread::scope(|scope| {
        for _ in 1..jobs.min(inputs.len()) {
            if std::thread::Builder::new()
                .spawn_scoped(scope, work)
                .is_err()
            {
                break;
            }
        }
        work();
    });
    results
        .into_inner()
        .expect("no worker panicked")
        .into_iter()
        .map(|r| r.expect("every input ran"))
        .collect()
}

fn run_one(input: &ReportInput, dir: &Path) -> ReportRun {
    let mut s = input.scenario.clone();
    let r = run(&s, &RunOptions::default());
    let scenario_file = match &input.path {
        Some(p) => p.clone(),
        None => {
            // A sweep point expects what correct code does: pass, and
            // (once it did) this digest.
            s.expect = Expect {
                verdict: Verdict::Pass,
                digest: (r.verdict == Verdict::Pass).then(|| r.digest.clone()),
                ..Expect::default()
            };
            sweep_file(dir, &s.name)
        }
    };
    let expectation_differences = check_expectations(&s, &r);
    ReportRun {
        replay: ReplayCommand::run(&scenario_file).to_string(),
        scenario_file,
        verdict: r.verdict,
        error: r.error.clone(),
        passes: r.passes,
        converged: r.converged,
        pages_sent: r.pages_sent,
        ram_bytes: r.ram_bytes,
        bound: r.fixed_ram_bound,
        invariants_held: r.invariants.iter().filter(|i| i.ok).count(),
        invariants: r.invariants.len(),
        failed: r
            .invariants
            .iter()
            .filter(|i| !i.ok)
            .map(|i| format!("{} [{}]: {}", i.name, i.writer, i.detail))
            .collect(),
        expectation_differences,
        files: r
            .files
            .iter()
            .map(|f| ReportFile {
                writer: f.writer,
                size: f.size,
                bytes_written: f.bytes_written,
                allocated: f.allocated,
                size_after_pass: f.size_after_pass.clone(),
            })
            .collect(),
        digest: r.digest.clone(),
        scenario: s,
    }
}

/// `DIR/scenarios/<name>.toml`, the name reduced to a safe file name.
fn sweep_file(dir: &Path, name: &str) -> PathBuf {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    dir.join("scenarios")
        .join(format!("{}.toml", safe.trim_start_matches('.')))
}

// ---------------------------------------------------------------- CSV

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn csv_line(fields: &[String]) -> String {
    let mut l = fields
        .iter()
        .map(|f| csv_field(f))
        .collect::<Vec<_>>()
        .join(",");
    l.push('\n');
    l
}

/// `report.csv`: one row per run and writer (one row with writer `-` for a
/// run refused before any file was written). Sizes in bytes; `bound` only
/// on fixed-ram rows.
pub const REPORT_CSV_HEADER: &str = "scenario,seed,writer,max_passes,writes_per_tick,passes,\
pages_sent,ram_bytes,final_size,bound,bytes_written,allocated,verdict,digest,converged,error,replay";

fn report_csv(runs: &[ReportRun]) -> String {
    let mut out = format!("{REPORT_CSV_HEADER}\n");
    for r in runs {
        let common = |writer: Judged, file: Option<&ReportFile>| {
            let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
            csv_line(&[
                r.scenario.name.clone(),
                r.scenario.seed.to_string(),
                writer.to_string(),
                r.scenario.parameters.max_passes.to_string(),
                r.writes_per_tick().to_string(),
                r.passes.to_string(),
                r.pages_sent.to_string(),
                r.ram_bytes.to_string(),
                opt(file.map(|f| f.size)),
                if writer == Judged(Some(Layout::FixedRam)) {
                    r.bound.to_string()
                } else {
                    String::new()
                },
                opt(file.map(|f| f.bytes_written)),
                opt(file.map(|f| f.allocated)),
                r.verdict.name().to_string(),
                r.digest.clone(),
                r.converged.to_string(),
                r.error.clone().unwrap_or_default(),
                r.replay.clone(),
            ])
        };
        if r.files.is_empty() {
            out.push_str(&common(Judged(None), None));
        }
        for f in &r.files {
            out.push_str(&common(Judged(Some(f.writer)), Some(f)));
        }
    }
    out
}

/// `sizes.csv`: the file size after setup (pass 0) and each pass.
pub const SIZES_CSV_HEADER: &str = "scenario,writer,pass,size";

fn sizes_csv(runs: &[ReportRun]) -> String {
    let mut out = format!("{SIZES_CSV_HEADER}\n");
    for r in runs {
        for f in &r.files {
            for (pass, size) in f.size_after_pass.iter().enumerate() {
                out.push_str(&csv_line(&[
                    r.scenario.name.clone(),
                    f.writer.to_string(),
                    pass.to_string(),
                    size.to_string(),
                ]));
            }
        }
    }
    out
}

// ---------------------------------------------------------------- charts

const W: u32 = 960;
const H: u32 = 540;
const FONT: &str = "sans-serif";
const SEQ: RGBColor = RGBColor(217, 95, 2);
const FIXED: RGBColor = RGBColor(31, 119, 180);
const BOUND: RGBColor = RGBColor(25, 25, 25);
const RAM: RGBColor = RGBColor(130, 130, 130);
const GRID: RGBColor = RGBColor(232, 232, 232);

/// A rendered chart.
#[derive(Clone, Debug)]
pub struct Chart {
    /// Figure title.
    pub title: String,
    /// One line saying what to look at.
    pub caption: String,
    /// Standalone SVG document.
    pub svg: String,
}

fn mib(b: u64) -> f64 {
    b as f64 / (1u64 << 20) as f64
}

fn draw_err<E: std::fmt::Display>(e: E) -> String {
    format!("drawing a chart: {e}")
}

/// Whether the run is the embedded default scenario (name and
/// expectations aside).
fn is_default(s: &Scenario) -> bool {
    let d = Scenario::default_scenario();
    s.seed == d.seed
        && s.guest == d.guest
        && s.workload == d.workload
        && s.migration == d.migration
        && s.parameters == d.parameters
        && s.destination == d.destination
}

/// The run chart 1 shows: the default scenario when it is among the runs,
/// else the first run that migrated, preferring one with both writers.
fn featured(runs: &[ReportRun]) -> Option<&ReportRun> {
    let ok: Vec<&ReportRun> = runs
        .iter()
        .filter(|r| r.verdict != Verdict::Error && !r.files.is_empty())
        .collect();
    ok.iter()
        .find(|r| is_default(&r.scenario))
        .or_else(|| ok.iter().find(|r| r.files.len() >= 2))
        .or_else(|| ok.first())
        .copied()
}

type Plot<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

fn style_mesh<'a>(
    chart: &mut Plot<'a, 'a>,
    x_desc: &str,
    y_desc: &str,
    x_fmt: &dyn Fn(&f64) -> String,
    x_labels: usize,
) -> Result<(), String> {
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .axis_desc_style((FONT, 20))
        .label_style((FONT, 17))
        .x_labels(x_labels)
        .y_labels(8)
        .x_label_formatter(x_fmt)
        .y_label_formatter(&|y| format!("{y:.0}"))
        .bold_line_style(GRID)
        .light_line_style(TRANSPARENT)
        .axis_style(RGBColor(90, 90, 90))
        .draw()
        .map_err(draw_err)
}

// Legend samples. Macros, not functions: plotters needs the concrete
// element type of a legend closure (a boxed element would have to be
// 'static).

/// A dashed line sample.
macro_rules! dashed_legend {
    ($color:expr, $width:expr) => {{
        let (c, w): (RGBColor, u32) = ($color, $width);
        move |(x, y): (i32, i32)| {
            EmptyElement::at((x, y))
                + PathElement::new(vec![(0, 0), (7, 0)], c.stroke_width(w))
                + PathElement::new(vec![(12, 0), (20, 0)], c.stroke_width(w))
        }
    }};
}

/// A dotted line sample.
macro_rules! dotted_legend {
    ($color:expr, $width:expr) => {{
        let (c, w): (RGBColor, u32) = ($color, $width);
        move |(x, y): (i32, i32)| {
            EmptyElement::at((x, y))
                + PathElement::new(vec![(0, 0), (3, 0)], c.stroke_width(w))
                + PathElement::new(vec![(8, 0), (11, 0)], c.stroke_width(w))
                + PathElement::new(vec![(16, 0), (19, 0)], c.stroke_width(w))
        }
    }};
}

/// A line sample with a dot.
macro_rules! line_legend {
    ($color:expr, $width:expr) => {{
        let (c, w): (RGBColor, u32) = ($color, $width);
        move |(x, y): (i32, i32)| {
            EmptyElement::at((x, y))
                + PathElement::new(vec![(0, 0), (20, 0)], c.stroke_width(w))
                + Circle::new((10, 0), 4, c.filled())
        }
    }};
}

/// A legend entry without a series of its own.
macro_rules! legend_only {
    ($chart:expr, $label:expr, $legend:expr) => {
        $chart
            .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
            .map_err(draw_err)?
            .label($label)
            .legend($legend)
    };
}

fn text_style(color: RGBColor, size: u32, h: HPos, v: VPos) -> TextStyle<'static> {
    (FONT, size).into_font().color(&color).pos(Pos::new(h, v))
}

fn legend_box<'a>(chart: &mut Plot<'a, 'a>, pos: SeriesLabelPosition) -> Result<(), String> {
    chart
        .configure_series_labels()
        .position(pos)
        .margin(14)
        .legend_area_size(30)
        .label_font((FONT, 17))
        .background_style(WHITE.mix(0.92))
        .border_style(RGBColor(180, 180, 180))
        .draw()
        .map_err(draw_err)
}

fn charts(runs: &[ReportRun]) -> Result<Vec<Chart>, String> {
    Ok(vec![
        chart_size_per_pass(featured(runs))?,
        chart_size_vs_dirty_rate(runs)?,
        chart_written_vs_allocated(runs)?,
    ])
}

fn empty_chart(title: &str, message: &str) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (W, 120)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        root.draw(&Text::new(
            format!("{title}: {message}"),
            (20, 60),
            text_style(BOUND, 18, HPos::Left, VPos::Center),
        ))
        .map_err(draw_err)?;
        root.present().map_err(draw_err)?;
    }
    Ok(svg)
}

/// "fixed-ram: 40.0 MiB at every pass, bound 40.0 MiB".
fn fixed_label(f: &ReportFile, bound: u64) -> String {
    let lo = f.size_after_pass.iter().min().copied().unwrap_or(f.size);
    let hi = f.size_after_pass.iter().max().copied().unwrap_or(f.size);
    let sizes = if f1(lo) == f1(hi) {
        format!("{} MiB at every pass", f1(hi))
    } else {
        format!("{} to {} MiB", f1(lo), f1(hi))
    };
    let verdict = if hi <= bound {
        "bound"
    } else {
        "EXCEEDS bound"
    };
    format!("fixed-ram: {sizes} ({verdict} {} MiB)", f1(bound))
}

/// Figure 1: file size after setup and each pass, one run.
fn chart_size_per_pass(run: Option<&ReportRun>) -> Result<Chart, String> {
    let title = "Figure 1. Migration file size after each pass".to_string();
    let caption = "Look at the two solid lines: the sequential file (orange) climbs with every \
        pass because it appends each re-sent page, while the fixed-ram file (blue) stays flat on \
        its bound (black dashes) from setup to switchover."
        .to_string();
    let Some(run) = run else {
        let svg = empty_chart(&title, "no run migrated")?;
        return Ok(Chart {
            title,
            caption,
            svg,
        });
    };
    let seq = run.file(Layout::Sequential);
    let fixed = run.file(Layout::FixedRam);
    let n = run
        .files
        .iter()
        .map(|f| f.size_after_pass.len())
        .max()
        .unwrap_or(1)
        .max(2);
    let last = (n - 1) as f64;
    let ram = mib(run.ram_bytes);
    let bound = mib(run.bound);
    let top = run
        .files
        .iter()
        .flat_map(|f| f.size_after_pass.iter().copied())
        .map(mib)
        .chain([ram, if fixed.is_some() { bound } else { 0.0 }])
        .fold(1.0f64, f64::max);
    let ymax = top * 1.16;
    let (x0, x1) = (-0.4, last + 0.4);
    let s = &run.scenario;
    let subtitle = format!(
        "{}: guest writes {} pages/tick; {} live passes + final pass",
        s.name,
        run.writes_per_tick(),
        run.passes,
    );

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(&subtitle, (FONT, 21))
            .margin(18)
            .margin_right(30)
            .x_label_area_size(62)
            .y_label_area_size(78)
            .build_cartesian_2d(x0..x1, 0f64..ymax)
            .map_err(draw_err)?;
        let last_pass = n - 1;
        let x_fmt = move |x: &f64| {
            let r = x.round();
            if (x - r).abs() > 1e-6 || r < 0.0 {
                String::new()
            } else if r as usize == 0 {
                "setup".into()
            } else if r as usize == last_pass {
                "final".into()
            } else {
                format!("{r:.0}")
            }
        };
        style_mesh(
            &mut chart,
            "pass (setup, live passes 1, 2, ..., final pass at switchover)",
            "file size (MiB)",
            &x_fmt,
            n + 2,
        )?;
        let dy = ymax * 0.018;
        let points = |f: &ReportFile| -> Vec<(f64, f64)> {
            f.size_after_pass
                .iter()
                .enumerate()
                .map(|(i, &b)| (i as f64, mib(b)))
                .collect()
        };
        if let Some(f) = seq {
            let pts = points(f);
            chart
                .draw_series(LineSeries::new(pts.clone(), SEQ.stroke_width(4)))
                .map_err(draw_err)?
                .label("sequential file (appends every page sent)")
                .legend(line_legend!(SEQ, 4));
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 5, SEQ.filled())))
                .map_err(draw_err)?;
            let &(lx, ly) = pts.last().expect("at least one size");
            chart
                .draw_series(std::iter::once(Text::new(
                    format!("sequential: {:.1} MiB = {:.1}x RAM", ly, ly / ram),
                    (lx, ly + dy * 1.3),
                    text_style(SEQ, 19, HPos::Right, VPos::Bottom),
                )))
                .map_err(draw_err)?;
        }
        if let Some(f) = fixed {
            let pts = points(f);
            chart
                .draw_series(LineSeries::new(pts.clone(), FIXED.stroke_width(6)))
                .map_err(draw_err)?
                .label("fixed-ram file (each page at a fixed offset)")
                .legend(line_legend!(FIXED, 6));
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 5, FIXED.filled())))
                .map_err(draw_err)?;
            chart
                .draw_series(DashedLineSeries::new(
                    [(x0, bound), (x1, bound)],
                    9,
                    6,
                    BOUND.stroke_width(2),
                ))
                .map_err(draw_err)?;
            legend_only!(
                chart,
                "fixed-ram bound (computed from the RAM layout)",
                dashed_legend!(BOUND, 2)
            );
            let &(_, ly) = pts.last().expect("at least one size");
            chart
                .draw_series(std::iter::once(Text::new(
                    fixed_label(f, run.bound),
                    (last, bound.max(ly) + dy),
                    text_style(FIXED, 18, HPos::Right, VPos::Bottom),
                )))
                .map_err(draw_err)?;
        }
        chart
            .draw_series(DashedLineSeries::new(
                [(x0, ram), (x1, ram)],
                3,
                5,
                RAM.stroke_width(2),
            ))
            .map_err(draw_err)?;
        legend_only!(chart, "guest RAM size", dotted_legend!(RAM, 2));
        chart
            .draw_series(std::iter::once(Text::new(
                format!("guest RAM {ram:.1} MiB"),
                (last, ram - dy),
                text_style(RAM, 17, HPos::Right, VPos::Top),
            )))
            .map_err(draw_err)?;
        legend_box(&mut chart, SeriesLabelPosition::UpperLeft)?;
        root.present().map_err(draw_err)?;
    }
    Ok(Chart {
        title,
        caption,
        svg,
    })
}

/// Runs that migrated, grouped by max_passes (ascending), each sorted by
/// dirty rate; and whether each group is a sweep (runs differ only in the
/// dirty rate), so its points may be joined by lines.
fn groups(runs: &[ReportRun]) -> Vec<(u32, bool, Vec<&ReportRun>)> {
    let mut passes: Vec<u32> = runs
        .iter()
        .filter(|r| r.verdict != Verdict::Error)
        .map(|r| r.scenario.parameters.max_passes)
        .collect();
    passes.sort_unstable();
    passes.dedup();
    let key = |r: &ReportRun| {
        let mut s = r.scenario.clone();
        s.name.clear();
        s.description.clear();
        s.expect = Expect::default();
        s.workload.writes_per_tick = 0;
        s.workload.kind = WorkloadKind::Idle;
        s
    };
    passes
        .into_iter()
        .map(|p| {
            let mut g: Vec<&ReportRun> = runs
                .iter()
                .filter(|r| r.verdict != Verdict::Error && r.scenario.parameters.max_passes == p)
                .collect();
            g.sort_by_key(|r| r.writes_per_tick());
            let k0 = key(g[0]);
            let mut rates: Vec<u64> = g.iter().map(|r| r.writes_per_tick()).collect();
            rates.dedup();
            let sweep = g.len() >= 2 && rates.len() == g.len() && g.iter().all(|r| key(r) == k0);
            (p, sweep, g)
        })
        .collect()
}

/// Sequential line colours from light (few passes) to dark (many).
fn shade(i: usize, n: usize) -> RGBColor {
    let light = (253.0, 174.0, 107.0);
    let dark = (140.0, 45.0, 4.0);
    let t = if n <= 1 {
        1.0
    } else {
        i as f64 / (n - 1) as f64
    };
    let mix = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
    RGBColor(
        mix(light.0, dark.0),
        mix(light.1, dark.1),
        mix(light.2, dark.2),
    )
}

/// Figure 2: final file size against the guest's dirty rate.
fn chart_size_vs_dirty_rate(runs: &[ReportRun]) -> Result<Chart, String> {
    let title = "Figure 2. Final file size against the guest's dirty rate".to_string();
    let gs = groups(runs);
    // Lines and one shade per max_passes only when some runs form a sweep;
    // unrelated scenarios get one point per run and writer.
    let any_sweep = gs.iter().any(|g| g.1);
    let caption = if any_sweep {
        "Look at how the orange lines rise with the dirty rate and with the number of passes, \
         while the fixed-ram file (blue) stays on its bound whatever the guest does (an idle \
         guest's sequential file is smaller: fixed-ram reserves room for every page)."
    } else {
        "Each run's sequential file (orange) grows with the guest's dirty rate and with the \
         passes the migration takes; its fixed-ram file (blue) stays at or under its bound \
         (black dash), which depends only on the guest's RAM layout."
    }
    .to_string();
    if gs.is_empty() {
        let svg = empty_chart(&title, "no run migrated")?;
        return Ok(Chart {
            title,
            caption,
            svg,
        });
    }
    let all: Vec<&ReportRun> = gs.iter().flat_map(|g| g.2.iter().copied()).collect();
    let wmax = all
        .iter()
        .map(|r| r.writes_per_tick())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let top = all
        .iter()
        .flat_map(|r| {
            r.files
                .iter()
                .map(|f| mib(f.size))
                .chain([mib(r.ram_bytes), mib(r.bound)])
        })
        .fold(1.0f64, f64::max);
    let ymax = top * 1.12;
    let (x0, x1) = (-wmax * 0.03, wmax * 1.04);
    // The fixed-ram line and bound are drawn for one max_passes (the
    // featured run's): they do not depend on it beyond a few bytes.
    let ref_passes = featured(runs)
        .map(|r| r.scenario.parameters.max_passes)
        .unwrap_or(gs[0].0);
    let rams: Vec<u64> = all.iter().map(|r| r.ram_bytes).collect();
    let one_ram = rams.iter().all(|&b| b == rams[0]);

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let subtitle = if one_ram && any_sweep {
            format!(
                "File size at switchover, {:.1} MiB guest; one orange line per max_passes",
                mib(rams[0])
            )
        } else {
            "File size at switchover, one point per run and writer".to_string()
        };
        let mut chart = ChartBuilder::on(&root)
            .caption(&subtitle, (FONT, 21))
            .margin(18)
            .margin_right(30)
            .x_label_area_size(62)
            .y_label_area_size(78)
            .build_cartesian_2d(x0..x1, 0f64..ymax)
            .map_err(draw_err)?;
        let x_fmt = |x: &f64| {
            if *x < 0.0 {
                String::new()
            } else {
                format!("{x:.0}")
            }
        };
        style_mesh(
            &mut chart,
            "guest dirty rate (pages written per tick; 0 = idle guest)",
            "final file size (MiB)",
            &x_fmt,
            10,
        )?;
        let n = gs.len();
        if !any_sweep {
            let pts: Vec<(f64, f64)> = all
                .iter()
                .filter_map(|r| {
                    r.file(Layout::Sequential)
                        .map(|f| (r.writes_per_tick() as f64, mib(f.size)))
                })
                .collect();
            if !pts.is_empty() {
                chart
                    .draw_series(pts.iter().map(|&q| Circle::new(q, 6, SEQ.filled())))
                    .map_err(draw_err)?
                    .label("sequential file")
                    .legend(|(x, y)| Circle::new((x + 10, y), 6, SEQ.filled()));
            }
        }
        for (i, (p, sweep, g)) in gs.iter().enumerate().rev() {
            if !any_sweep {
                break;
            }
            let color = shade(i, n);
            let pts: Vec<(f64, f64)> = g
                .iter()
                .filter_map(|r| {
                    r.file(Layout::Sequential)
                        .map(|f| (r.writes_per_tick() as f64, mib(f.size)))
                })
                .collect();
            if pts.is_empty() {
                continue;
            }
            let label = format!("sequential, max_passes = {p}");
            if *sweep {
                chart
                    .draw_series(LineSeries::new(pts.clone(), color.stroke_width(3)))
                    .map_err(draw_err)?;
            }
            chart
                .draw_series(pts.iter().map(|&q| Circle::new(q, 5, color.filled())))
                .map_err(draw_err)?
                .label(label)
                .legend(line_legend!(color, 3));
            if *sweep {
                let &(lx, ly) = pts.last().expect("non-empty");
                chart
                    .draw_series(std::iter::once(Text::new(
                        format!("{p} passes"),
                        (lx - wmax * 0.012, ly),
                        text_style(color, 16, HPos::Right, VPos::Bottom),
                    )))
                    .map_err(draw_err)?;
            }
        }
        // Fixed-ram: every run's point; the reference group joined by a line.
        let ref_group = gs.iter().find(|g| g.0 == ref_passes);
        let fixed_pts = |g: &[&ReportRun]| -> Vec<(f64, f64)> {
            g.iter()
                .filter_map(|r| {
                    r.file(Layout::FixedRam)
                        .map(|f| (r.writes_per_tick() as f64, mib(f.size)))
                })
                .collect()
        };
        if let Some((_, true, g)) = ref_group {
            chart
                .draw_series(LineSeries::new(fixed_pts(g), FIXED.stroke_width(6)))
                .map_err(draw_err)?;
        }
        let all_fixed = fixed_pts(&all);
        if !all_fixed.is_empty() {
            chart
                .draw_series(all_fixed.iter().map(|&q| Circle::new(q, 5, FIXED.filled())))
                .map_err(draw_err)?
                .label(if any_sweep {
                    "fixed-ram file (any max_passes)"
                } else {
                    "fixed-ram file"
                })
                .legend(line_legend!(FIXED, 6));
            match ref_group {
                Some((_, true, g)) => {
                    let b: Vec<(f64, f64)> = g
                        .iter()
                        .map(|r| (r.writes_per_tick() as f64, mib(r.bound)))
                        .collect();
                    chart
                        .draw_series(DashedLineSeries::new(b, 9, 6, BOUND.stroke_width(2)))
                        .map_err(draw_err)?;
                    legend_only!(chart, "fixed-ram bound", dashed_legend!(BOUND, 2));
                }
                _ => {
                    let dx = wmax * 0.015;
                    chart
                        .draw_series(
                            all.iter()
                                .filter(|r| r.file(Layout::FixedRam).is_some())
                                .map(|r| {
                                    let (x, y) = (r.writes_per_tick() as f64, mib(r.bound));
                                    PathElement::new(
                                        vec![(x - dx, y), (x + dx, y)],
                                        BOUND.stroke_width(2),
                                    )
                                }),
                        )
                        .map_err(draw_err)?
                        .label("fixed-ram bound (per run)")
                        .legend(|(x, y)| {
                            PathElement::new(vec![(x, y), (x + 20, y)], BOUND.stroke_width(2))
                        });
                }
            }
        }
        if one_ram {
            let ram = mib(rams[0]);
            chart
                .draw_series(DashedLineSeries::new(
                    [(x0, ram), (x1, ram)],
                    3,
                    5,
                    RAM.stroke_width(2),
                ))
                .map_err(draw_err)?;
            legend_only!(chart, "guest RAM size", dotted_legend!(RAM, 2));
        }
        legend_box(&mut chart, SeriesLabelPosition::UpperLeft)?;
        root.present().map_err(draw_err)?;
    }
    Ok(Chart {
        title,
        caption,
        svg,
    })
}

/// Figure 3: bytes written against bytes allocated, per run and writer.
fn chart_written_vs_allocated(runs: &[ReportRun]) -> Result<Chart, String> {
    let title = "Figure 3. Bytes written against disk space allocated".to_string();
    let caption = "Points on the dashed diagonal allocate on disk every byte they write \
        (sequential, append-only); fixed-ram points fall below it as the guest re-dirties pages, \
        because a re-sent page overwrites its old copy in place."
        .to_string();
    let pts = |writer: Layout| -> Vec<(f64, f64)> {
        runs.iter()
            .filter(|r| r.verdict != Verdict::Error)
            .filter_map(|r| r.file(writer))
            .map(|f| (mib(f.bytes_written), mib(f.allocated)))
            .collect()
    };
    let (seq, fixed) = (pts(Layout::Sequential), pts(Layout::FixedRam));
    if seq.is_empty() && fixed.is_empty() {
        let svg = empty_chart(&title, "no run migrated")?;
        return Ok(Chart {
            title,
            caption,
            svg,
        });
    }
    let xmax = seq.iter().chain(&fixed).map(|p| p.0).fold(1.0f64, f64::max) * 1.06;
    let ymax = seq.iter().chain(&fixed).map(|p| p.1).fold(1.0f64, f64::max) * 1.12;

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Each point is one run's file: bytes the writer wrote vs bytes it occupies on disk",
                (FONT, 21),
            )
            .margin(18)
            .margin_right(30)
            .x_label_area_size(62)
            .y_label_area_size(78)
            .build_cartesian_2d(0f64..xmax, 0f64..ymax)
            .map_err(draw_err)?;
        style_mesh(
            &mut chart,
            "bytes written, overwrites counted (MiB)",
            "disk space allocated (MiB)",
            &|x| format!("{x:.0}"),
            10,
        )?;
        let d = xmax.min(ymax);
        chart
            .draw_series(DashedLineSeries::new(
                [(0.0, 0.0), (d, d)],
                6,
                6,
                RAM.stroke_width(2),
            ))
            .map_err(draw_err)?;
        legend_only!(
            chart,
            "allocated = written (nothing overwritten)",
            dashed_legend!(RAM, 2)
        );
        chart
            .draw_series(seq.iter().map(|&p| Circle::new(p, 6, SEQ.filled())))
            .map_err(draw_err)?
            .label("sequential file")
            .legend(|(x, y)| Circle::new((x + 10, y), 6, SEQ.filled()));
        chart
            .draw_series(
                fixed
                    .iter()
                    .map(|&p| TriangleMarker::new(p, 8, FIXED.filled())),
            )
            .map_err(draw_err)?
            .label("fixed-ram file")
            .legend(|(x, y)| TriangleMarker::new((x + 10, y), 8, FIXED.filled()));
        legend_box(&mut chart, SeriesLabelPosition::UpperLeft)?;
        root.present().map_err(draw_err)?;
    }
    Ok(Chart {
        title,
        caption,
        svg,
    })
}

// ---------------------------------------------------------------- documents

/// A table: header and rows of plain-text cells (one cell may be marked
/// as code).
struct Table {
    header: Vec<String>,
    code_cols: Vec<usize>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn markdown(&self) -> String {
        let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
        let mut out = format!("| {} |\n", self.header.join(" | "));
        out.push_str(&format!(
            "|{}|\n",
            self.header
                .iter()
                .map(|_| "---")
                .collect::<Vec<_>>()
                .join("|")
        ));
        for r in &self.rows {
            let cells: Vec<String> = r
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    if self.code_cols.contains(&i) && !c.is_empty() {
                        format!("`{}`", c.replace('`', "'"))
                    } else {
                        cell(c)
                    }
                })
                .collect();
            out.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
        out
    }

    fn html(&self) -> String {
        let mut out = String::from("<table>\n<thead><tr>");
        for h in &self.header {
            let _ = write!(out, "<th>{}</th>", esc(h));
        }
        out.push_str("</tr></thead>\n<tbody>\n");
        for r in &self.rows {
            out.push_str("<tr>");
            for (i, c) in r.iter().enumerate() {
                if self.code_cols.contains(&i) && !c.is_empty() {
                    let _ = write!(out, "<td><code>{}</code></td>", esc(c));
                } else {
                    let _ = write!(out, "<td>{}</td>", esc(c));
                }
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</tbody>\n</table>\n");
        out
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Minimal inline Markdown for the prose: `code` and **bold**.
fn md_inline_to_html(s: &str) -> String {
    let mut out = String::new();
    let mut code = false;
    let mut bold = false;
    let e = esc(s);
    let mut rest = e.as_str();
    while let Some(i) = rest.find(['`', '*']) {
        out.push_str(&rest[..i]);
        if rest[i..].starts_with('`') {
            out.push_str(if code { "</code>" } else { "<code>" });
            code = !code;
            rest = &rest[i + 1..];
        } else if rest[i..].starts_with("**") && !code {
            out.push_str(if bold { "</strong>" } else { "<strong>" });
            bold = !bold;
            rest = &rest[i + 2..];
        } else {
            out.push('*');
            rest = &rest[i + 1..];
        }
    }
    out.push_str(rest);
    out
}

fn f1(b: u64) -> String {
    format!("{:.1}", mib(b))
}

struct Doc {
    title: String,
    /// Paragraphs (inline Markdown).
    intro: Vec<String>,
    findings: Vec<String>,
    verdicts: Table,
    sizes: Table,
    pivot: Option<(String, Table)>,
}

impl Doc {
    fn new(runs: &[ReportRun], sweep_mode: bool) -> Self {
        let count = |v: Verdict| runs.iter().filter(|r| r.verdict == v).count();
        let mut intro = vec![
            "A live migration copies a running VM's memory (RAM) to a file while the guest keeps \
             writing to it. Pages the guest changes after they were copied are copied again in the \
             next **pass**; at switchover the VM pauses and a final pass sends what is left. A \
             **sequential** migration file appends every copy, so it grows with each re-sent \
             page. With **fixed-ram** (QEMU: mapped-ram) each page has a fixed place in the file \
             and a re-sent page overwrites its old copy, so the file never exceeds a **bound** \
             computed from the RAM layout alone (RAM plus headers, bitmaps, 1 MiB alignment and \
             device state)."
                .to_string(),
            "Every run below is simulated by migsim and judged by its oracle (both files must \
             restore exactly the guest's memory at switchover, and each file's size must follow \
             its rules). Runs are deterministic: the replay command of a run re-creates it bit \
             for bit and checks its digest."
                .to_string(),
        ];
        if sweep_mode {
            let d = Scenario::default_scenario();
            intro.push(format!(
                "What was run: the built-in sweep of the default scenario `{}` (a {:.1} MiB guest \
                 in {} RAM blocks, {} of its writes going to a hot {}% of memory; bandwidth {} \
                 pages per tick) with the guest's dirty rate set to {} pages per tick (0 = idle \
                 guest) and `max_passes` set to {}: {} runs, each with a sequential and a \
                 fixed-ram writer fed the same page sends.",
                d.name,
                mib(d.blocks().iter().map(|b| b.used_length).sum()),
                d.guest.blocks.len(),
                pct(d.workload.hot_share),
                pct(d.workload.hot_fraction).trim_end_matches('%'),
                d.parameters.bandwidth,
                join_list(&SWEEP_WRITES_PER_TICK.map(|w| w.to_string())),
                join_list(&SWEEP_MAX_PASSES.map(|p| p.to_string())),
                runs.len()
            ));
        } else {
            intro.push(format!(
                "What was run: {} scenario file{} given on the command line.",
                runs.len(),
                if runs.len() == 1 { "" } else { "s" }
            ));
        }
        intro.push(format!(
            "Verdicts: {} pass, {} fail, {} error (refused); {} of {} runs met their scenario's \
             expectations.",
            count(Verdict::Pass),
            count(Verdict::Fail),
            count(Verdict::Error),
            runs.iter()
                .filter(|r| r.expectation_differences.is_empty())
                .count(),
            runs.len()
        ));

        let mut findings = Vec::new();
        if let Some(r) = featured(runs) {
            let mut f = format!(
                "Figure 1 shows `{}`: {} live passes and a final pass",
                r.scenario.name, r.passes
            );
            if let Some(s) = r.file(Layout::Sequential) {
                let _ = write!(
                    f,
                    "; the sequential file ended at {} MiB ({:.2}x the {} MiB of guest RAM)",
                    f1(s.size),
                    s.size as f64 / r.ram_bytes as f64,
                    f1(r.ram_bytes)
                );
            }
            if let Some(x) = r.file(Layout::FixedRam) {
                let lo = x.size_after_pass.iter().min().copied().unwrap_or(0);
                let hi = x.size_after_pass.iter().max().copied().unwrap_or(0);
                let _ = write!(
                    f,
                    "; the fixed-ram file measured {} MiB from setup to the end, within its bound \
                     of {} MiB",
                    if f1(lo) == f1(hi) {
                        f1(hi)
                    } else {
                        format!("{} to {}", f1(lo), f1(hi))
                    },
                    f1(r.bound)
                );
            }
            f.push('.');
            findings.push(f);
        }
        let migrated: Vec<&ReportRun> = runs
            .iter()
            .filter(|r| r.verdict != Verdict::Error)
            .collect();
        let max_of = |w: Layout| {
            migrated
                .iter()
                .filter_map(|r| {
                    r.file(w)
                        .map(|f| (f.size, f.size as f64 / r.ram_bytes as f64, r))
                })
                .max_by(|a, b| a.1.total_cmp(&b.1))
        };
        if let Some((size, ratio, r)) = max_of(Layout::Sequential) {
            findings.push(format!(
                "Largest sequential file relative to RAM: {} MiB, {:.2}x RAM (`{}`).",
                f1(size),
                ratio,
                r.scenario.name
            ));
        }
        let fixed: Vec<(&ReportRun, &ReportFile)> = migrated
            .iter()
            .filter_map(|r| r.file(Layout::FixedRam).map(|f| (*r, f)))
            .collect();
        if let Some((r, f)) = fixed.iter().max_by_key(|(_, f)| f.size) {
            let over: Vec<&str> = fixed
                .iter()
                .filter(|(r, f)| {
                    f.size_after_pass
                        .iter()
                        .chain([&f.size])
                        .any(|&b| b > r.bound)
                })
                .map(|(r, _)| r.scenario.name.as_str())
                .collect();
            findings.push(format!(
                "{}; the largest fixed-ram file is {} MiB (`{}`, bound {} MiB).",
                if over.is_empty() {
                    "Every fixed-ram file stayed within its bound after every pass".to_string()
                } else {
                    format!("Fixed-ram files EXCEEDED their bound: {}", over.join(", "))
                },
                f1(f.size),
                r.scenario.name,
                f1(r.bound)
            ));
        }

        let verdicts = Table {
            header: [
                "scenario",
                "verdict",
                "oracle",
                "expectations",
                "digest",
                "replay",
            ]
            .map(String::from)
            .to_vec(),
            code_cols: vec![4, 5],
            rows: runs
                .iter()
                .map(|r| {
                    vec![
                        r.scenario.name.clone(),
                        match (&r.verdict, &r.error) {
                            (Verdict::Error, Some(e)) => format!("error: {e}"),
                            (v, _) => v.name().to_string(),
                        },
                        if r.invariants == 0 {
                            "-".to_string()
                        } else if r.failed.is_empty() {
                            format!("{}/{} held", r.invariants_held, r.invariants)
                        } else {
                            format!(
                                "{} of {} held; failed: {}",
                                r.invariants_held,
                                r.invariants,
                                r.failed.join("; ")
                            )
                        },
                        if r.expectation_differences.is_empty() {
                            "met".to_string()
                        } else {
                            format!("DIFFER: {}", join_differences(&r.expectation_differences))
                        },
                        r.digest.clone(),
                        r.replay.clone(),
                    ]
                })
                .collect(),
        };

        let opt = |f: Option<&ReportFile>, g: fn(&ReportFile) -> String| {
            f.map(g).unwrap_or_else(|| "-".into())
        };
        let sizes = Table {
            header: [
                "scenario",
                "writes/tick",
                "max_passes",
                "live passes",
                "pages sent",
                "RAM MiB",
                "sequential MiB",
                "fixed-ram MiB",
                "bound MiB",
                "sequential written / allocated MiB",
                "fixed-ram written / allocated MiB",
            ]
            .map(String::from)
            .to_vec(),
            code_cols: vec![],
            rows: runs
                .iter()
                .map(|r| {
                    let (seq, fixed) = (r.file(Layout::Sequential), r.file(Layout::FixedRam));
                    let migrated = r.verdict != Verdict::Error;
                    vec![
                        r.scenario.name.clone(),
                        r.writes_per_tick().to_string(),
                        r.scenario.parameters.max_passes.to_string(),
                        if migrated {
                            format!(
                                "{}{}",
                                r.passes,
                                if r.converged { " (converged)" } else { "" }
                            )
                        } else {
                            "-".into()
                        },
                        if migrated {
                            r.pages_sent.to_string()
                        } else {
                            "-".into()
                        },
                        f1(r.ram_bytes),
                        opt(seq, |f| f1(f.size)),
                        opt(fixed, |f| f1(f.size)),
                        if fixed.is_some() {
                            f1(r.bound)
                        } else {
                            "-".into()
                        },
                        opt(seq, |f| {
                            format!("{} / {}", f1(f.bytes_written), f1(f.allocated))
                        }),
                        opt(fixed, |f| {
                            format!("{} / {}", f1(f.bytes_written), f1(f.allocated))
                        }),
                    ]
                })
                .collect(),
        };

        let pivot = sweep_mode.then(|| pivot_table(runs));
        Doc {
            title: "Migration file size: sequential vs fixed-ram".into(),
            intro,
            findings,
            verdicts,
            sizes,
            pivot,
        }
    }

    fn markdown(&self, charts: &[Chart]) -> String {
        let chart = |c: &Chart, file: &str| {
            format!(
                "## {}\n\n![{}]({file})\n\n{}\n\n",
                c.title, c.title, c.caption
            )
        };
        let mut out = format!("# {}\n\n", self.title);
        // The first paragraph says what is compared; Figure 1 shows it.
        for (i, p) in self.intro.iter().enumerate() {
            out.push_str(&format!("{p}\n\n"));
            if i == 0 {
                out.push_str(&chart(&charts[0], CHART_FILES[0]));
            }
        }
        for f in &self.findings {
            out.push_str(&format!("- {f}\n"));
        }
        out.push('\n');
        for (c, file) in charts.iter().zip(CHART_FILES).skip(1) {
            out.push_str(&chart(c, file));
        }
        if let Some((caption, t)) = &self.pivot {
            out.push_str(&format!(
                "## Sequential file size by dirty rate and passes\n\n{caption}\n\n{}\n",
                t.markdown()
            ));
        }
        out.push_str(&format!(
            "## Oracle verdicts and replay commands\n\n{}\n\n{}\n",
            VERDICTS_NOTE,
            self.verdicts.markdown()
        ));
        out.push_str(&format!(
            "## Sizes\n\n{}\n\n{}\n",
            SIZES_NOTE,
            self.sizes.markdown()
        ));
        out.push_str(&format!("## Files\n\n{FILES_NOTE}\n"));
        out
    }

    fn html(&self, charts: &[Chart]) -> String {
        let mut out = String::new();
        out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
        let _ = writeln!(out, "<title>{}</title>", esc(&self.title));
        out.push_str(CSS);
        out.push_str("</head>\n<body>\n");
        let _ = writeln!(out, "<h1>{}</h1>", esc(&self.title));
        let figure = |c: &Chart| {
            format!(
                "<figure>\n<h2>{}</h2>\n{}<figcaption>{}</figcaption>\n</figure>\n",
                esc(&c.title),
                inline_svg(&c.svg, &c.title),
                esc(&c.caption)
            )
        };
        for (i, p) in self.intro.iter().enumerate() {
            let _ = writeln!(out, "<p>{}</p>", md_inline_to_html(p));
            if i == 0 {
                out.push_str(&figure(&charts[0]));
            }
        }
        out.push_str("<ul>\n");
        for f in &self.findings {
            let _ = writeln!(out, "<li>{}</li>", md_inline_to_html(f));
        }
        out.push_str("</ul>\n");
        for c in &charts[1..] {
            out.push_str(&figure(c));
        }
        if let Some((caption, t)) = &self.pivot {
            let _ = writeln!(
                out,
                "<h2>Sequential file size by dirty rate and passes</h2>\n<p>{}</p>\n{}",
                md_inline_to_html(caption),
                t.html()
            );
        }
        let _ = writeln!(
            out,
            "<h2>Oracle verdicts and replay commands</h2>\n<p>{}</p>\n{}",
            md_inline_to_html(VERDICTS_NOTE),
            self.verdicts.html()
        );
        let _ = writeln!(
            out,
            "<h2>Sizes</h2>\n<p>{}</p>\n{}",
            md_inline_to_html(SIZES_NOTE),
            self.sizes.html()
        );
        let _ = writeln!(
            out,
            "<h2>Files</h2>\n<p>{}</p>",
            md_inline_to_html(FILES_NOTE)
        );
        out.push_str("</body>\n</html>\n");
        out
    }
}

fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

fn join_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [a] => a.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// Sweep only: sequential size at switchover, rows max_passes, columns
/// dirty rate.
fn pivot_table(runs: &[ReportRun]) -> (String, Table) {
    let mut rates: Vec<u64> = runs.iter().map(|r| r.writes_per_tick()).collect();
    rates.sort_unstable();
    rates.dedup();
    let mut passes: Vec<u32> = runs
        .iter()
        .map(|r| r.scenario.parameters.max_passes)
        .collect();
    passes.sort_unstable();
    passes.dedup();
    let header: Vec<String> = std::iter::once("max_passes".to_string())
        .chain(rates.iter().map(|w| format!("{w} writes/tick")))
        .collect();
    let cell = |p: u32, w: u64| {
        runs.iter()
            .find(|r| r.scenario.parameters.max_passes == p && r.writes_per_tick() == w)
            .and_then(|r| {
                r.file(Layout::Sequential).map(|f| {
                    format!(
                        "{} ({:.1}x)",
                        f1(f.size),
                        f.size as f64 / r.ram_bytes as f64
                    )
                })
            })
            .unwrap_or_else(|| "-".into())
    };
    let rows = passes
        .iter()
        .map(|&p| {
            std::iter::once(p.to_string())
                .chain(rates.iter().map(|&w| cell(p, w)))
                .collect()
        })
        .collect();
    let fixed: Vec<u64> = runs
        .iter()
        .filter_map(|r| r.file(Layout::FixedRam).map(|f| f.size))
        .collect();
    let fmin = fixed.iter().min().copied().unwrap_or(0);
    let fmax = fixed.iter().max().copied().unwrap_or(0);
    let caption = format!(
        "MiB at switchover (and as a multiple of guest RAM). For comparison the fixed-ram file \
         measured {} MiB in every one of these runs.",
        if f1(fmin) == f1(fmax) {
            f1(fmax)
        } else {
            format!("{} to {}", f1(fmin), f1(fmax))
        }
    );
    (
        caption,
        Table {
            header,
            code_cols: vec![],
            rows,
        },
    )
}

const VERDICTS_NOTE: &str = "`pass`: every oracle invariant held (both files restore the guest's memory at \
switchover; the sequential file is exactly the records sent; the fixed-ram file writes each page \
in place and stays within its bound). `error`: the migration was refused (e.g. a capability \
incompatible with fixed-ram); such runs are left out of the charts. The digest covers the \
verdict, the figures and every file's bytes; the replay command re-runs the scenario and exits \
1 if its verdict or digest differs.";

const SIZES_NOTE: &str = "Sizes in MiB (2^20 bytes). File sizes are logical sizes (what `ls -l` \
shows); the fixed-ram file is sparse, so its allocated disk space can be smaller. `written` \
counts every byte written, overwrites included.";

const FILES_NOTE: &str = "`report.csv`: one row per run and writer, sizes in bytes. `sizes.csv`: \
each file's size after setup (pass 0) and after each pass. `fig*.svg`: the charts. \
`scenarios/*.toml`: the scenario of each sweep point, with its digest as expectation.";

const CSS: &str = "<style>\n\
body { font-family: sans-serif; color: #222; max-width: 1000px; margin: 2em auto; padding: 0 1em; line-height: 1.45; }\n\
h1 { font-size: 1.7em; }\n\
h2 { font-size: 1.25em; margin-top: 1.8em; }\n\
figure { margin: 1.5em 0; }\n\
figure h2 { margin-bottom: 0.4em; }\n\
figcaption { margin-top: 0.3em; font-size: 1.05em; background: #f4f6f8; padding: 0.5em 0.8em; border-left: 4px solid #1f77b4; }\n\
svg { max-width: 100%; height: auto; border: 1px solid #ddd; }\n\
table { border-collapse: collapse; font-size: 0.82em; margin: 0.8em 0; }\n\
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }\n\
th { background: #f0f0f0; }\n\
td:first-child { white-space: nowrap; }\n\
code { font-size: 0.92em; word-break: break-all; }\n\
</style>\n";

/// The SVG for inline use in HTML: no XML namespace attribute (the
/// document is HTML5), an accessible label, and scaling to the page width.
fn inline_svg(svg: &str, label: &str) -> String {
    let body = match svg.find('>') {
        Some(i) if svg.starts_with("<svg") => &svg[i + 1..],
        _ => svg,
    };
    format!(
        "<svg viewBox=\"0 0 {W} {H2}\" width=\"{W}\" height=\"{H2}\" role=\"img\" aria-label=\"{}\">{body}",
        esc(label),
        H2 = svg_height(svg)
    )
}

fn svg_height(svg: &str) -> u32 {
    svg.split_once("height=\"")
        .and_then(|(_, r)| r.split_once('"'))
        .and_then(|(h, _)| h.parse().ok())
        .unwrap_or(H)
}

/// Differences joined with `; `, as one table cell or line.
pub fn join_differences(d: &[Difference]) -> String {
    d.iter()
        .map(Difference::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

pub mod qemu;
