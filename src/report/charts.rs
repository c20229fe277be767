//! The report's SVG charts (plotters): file size after each pass, final
//! size against the dirty rate, bytes written against bytes allocated;
//! and the style the QEMU run report shares.

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use migsim_format::Layout;
use migsim_harness::scenario::{Expect, Scenario, Verdict};
use migsim_harness::sim::workload::WorkloadKind;

use super::*;

pub(super) const W: u32 = 960;
pub(super) const H: u32 = 540;
pub(super) const FONT: &str = "sans-serif";
pub(super) const SEQ: RGBColor = RGBColor(217, 95, 2);
pub(super) const FIXED: RGBColor = RGBColor(31, 119, 180);
pub(super) const BOUND: RGBColor = RGBColor(25, 25, 25);
pub(super) const RAM: RGBColor = RGBColor(130, 130, 130);
pub(super) const GRID: RGBColor = RGBColor(232, 232, 232);

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

pub(super) fn mib(b: u64) -> f64 {
    b as f64 / (1u64 << 20) as f64
}

pub(super) fn draw_err<E: std::fmt::Display>(e: E) -> String {
    format!("drawing a chart: {e}")
}

/// Whether the run is the embedded default scenario (name and
/// expectations aside).
pub(super) fn is_default(s: &Scenario) -> bool {
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
pub(super) fn featured(runs: &[ReportRun]) -> Option<&ReportRun> {
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

pub(super) fn style_mesh<'a>(
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

pub(super) fn text_style(color: RGBColor, size: u32, h: HPos, v: VPos) -> TextStyle<'static> {
    (FONT, size).into_font().color(&color).pos(Pos::new(h, v))
}

pub(super) fn legend_box<'a>(
    chart: &mut Plot<'a, 'a>,
    pos: SeriesLabelPosition,
) -> Result<(), String> {
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

pub(super) fn charts(runs: &[ReportRun]) -> Result<Vec<Chart>, String> {
    Ok(vec![
        chart_size_per_pass(featured(runs))?,
        chart_size_vs_dirty_rate(runs)?,
        chart_written_vs_allocated(runs)?,
    ])
}

pub(super) fn empty_chart(title: &str, message: &str) -> Result<String, String> {
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
pub(super) fn fixed_label(f: &ReportFile, bound: u64) -> String {
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
pub(super) fn chart_size_per_pass(run: Option<&ReportRun>) -> Result<Chart, String> {
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
pub(super) fn groups(runs: &[ReportRun]) -> Vec<(u32, bool, Vec<&ReportRun>)> {
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
pub(super) fn shade(i: usize, n: usize) -> RGBColor {
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
pub(super) fn chart_size_vs_dirty_rate(runs: &[ReportRun]) -> Result<Chart, String> {
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
pub(super) fn chart_written_vs_allocated(runs: &[ReportRun]) -> Result<Chart, String> {
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
