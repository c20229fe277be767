//! `migsim report --qemu-run FILE`: the report of a `migsim qemu run`
//! (its `qemu-run.json`, or `--json` output): real QEMU's file size over
//! the live save for both layouts, and the same scenario's simulation
//! beside it, with the differences named.
//!
//! Files written: `qemu-run.html` (self-contained, inline SVG),
//! `qemu-run.md`, and per run `<scenario>-over-time.svg` and
//! `<scenario>-vs-simulation.svg`. The report reads the JSON as
//! data: a field it needs and does not find is an error naming it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};
use serde_json::Value;

use super::charts::{
    BOUND, FIXED, FONT, H, RAM, SEQ, W, draw_err, legend_box, style_mesh, text_style,
};
use super::document::{CSS, esc, inline_svg, md_inline_to_html};

const SIM: f64 = 0.55;

fn mib(b: f64) -> f64 {
    b / (1u64 << 20) as f64
}

fn num(v: &Value, path: &str) -> Result<f64, String> {
    let mut x = v;
    for k in path.split('.') {
        x = &x[k];
    }
    x.as_f64()
        .ok_or_else(|| format!("qemu run report: no number at `{path}`"))
}

fn color(layout: &str) -> RGBColor {
    if layout == "sequential" { SEQ } else { FIXED }
}

fn lighter(c: RGBColor) -> RGBColor {
    let m = |x: u8| (f64::from(x) + (255.0 - f64::from(x)) * SIM) as u8;
    RGBColor(m(c.0), m(c.1), m(c.2))
}

/// Chart A: each layout's file size against seconds since `migrate`, the
/// dirty syncs marked, guest RAM and the mapped-ram page-area end dashed.
fn over_time(r: &Value) -> Result<String, String> {
    let runs = r["runs"].as_array().ok_or("qemu run report: no `runs`")?;
    let ram = mib(num(r, "ram")?);
    let mut tmax: f64 = 1.0;
    let mut ymax: f64 = ram;
    for x in runs {
        for s in x["samples"].as_array().into_iter().flatten() {
            tmax = tmax.max(num(s, "ms")? / 1000.0);
            ymax = ymax.max(mib(num(s, "file_len")?));
        }
    }
    let ymax = ymax * 1.15;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let caption = format!(
            "{}: QEMU's live save, file size over time ({})",
            r["scenario"].as_str().unwrap_or("?"),
            r["qemu"]
                .as_str()
                .and_then(|q| q.split(" (").next())
                .unwrap_or("QEMU")
        );
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, (FONT, 21))
            .margin(18)
            .margin_right(30)
            .x_label_area_size(62)
            .y_label_area_size(78)
            .build_cartesian_2d(0f64..tmax * 1.02, 0f64..ymax)
            .map_err(draw_err)?;
        style_mesh(
            &mut chart,
            "seconds since migrate (dots: dirty syncs)",
            "file size (MiB)",
            &|x| format!("{x:.0}"),
            10,
        )?;
        for x in runs {
            let layout = x["layout"].as_str().unwrap_or("?");
            let c = color(layout);
            let pts: Vec<(f64, f64)> = x["samples"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| Ok((num(s, "ms")? / 1000.0, mib(num(s, "file_len")?))))
                .collect::<Result<_, String>>()?;
            let name = if layout == "fixed-ram" {
                "QEMU mapped-ram file"
            } else {
                "QEMU sequential file"
            };
            chart
                .draw_series(LineSeries::new(pts.clone(), c.stroke_width(4)))
                .map_err(draw_err)?
                .label(name)
                .legend(line_legend!(c, 4));
            let syncs: Vec<(f64, f64)> = x["at_sync"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|a| a["sync"].as_u64().unwrap_or(0) > 0)
                .map(|a| Ok((num(a, "ms")? / 1000.0, mib(num(a, "file_len")?))))
                .collect::<Result<_, String>>()?;
            chart
                .draw_series(syncs.iter().map(|&p| Circle::new(p, 6, c.filled())))
                .map_err(draw_err)?;
            if let Some(&(lx, ly)) = pts.last() {
                chart
                    .draw_series(std::iter::once(Text::new(
                        format!("{:.1} MiB = {:.2}x RAM", ly, ly / ram),
                        (lx, ly + ymax * 0.02),
                        text_style(c, 18, HPos::Right, VPos::Bottom),
                    )))
                    .map_err(draw_err)?;
            }
            if let Some(end) = x["bound"]["ram_end"].as_f64() {
                let end = mib(end);
                chart
                    .draw_series(DashedLineSeries::new(
                        [(0.0, end), (tmax, end)],
                        9,
                        6,
                        BOUND.stroke_width(2),
                    ))
                    .map_err(draw_err)?
                    .label("mapped-ram page areas end (migsim's layout)")
                    .legend(dashed_legend!(BOUND, 2));
            }
        }
        chart
            .draw_series(DashedLineSeries::new(
                [(0.0, ram), (tmax, ram)],
                3,
                5,
                RAM.stroke_width(2),
            ))
            .map_err(draw_err)?
            .label("guest RAM (pc.ram)")
            .legend(dotted_legend!(RAM, 2));
        legend_box(&mut chart, SeriesLabelPosition::UpperLeft)?;
        root.present().map_err(draw_err)?;
    }
    Ok(svg)
}

/// One line of chart B: label, colour, dashed (simulated), points.
type Line = (String, RGBColor, bool, Vec<(f64, f64)>);

/// Chart B: file size at QEMU's sync k+1 beside the simulation's after
/// pass k (a QEMU sync starts a pass; sync 1 is setup), both layouts.
fn vs_simulation(r: &Value) -> Result<Option<String>, String> {
    let Some(sim) = r["simulation"].as_object() else {
        return Ok(None);
    };
    let runs = r["runs"].as_array().ok_or("qemu run report: no `runs`")?;
    let sims = sim["size_after_pass"]
        .as_array()
        .ok_or("qemu run report: no `simulation.size_after_pass`")?;
    let mut lines: Vec<Line> = Vec::new();
    for pair in sims {
        let layout = pair[0].as_str().unwrap_or("?").to_string();
        let pts: Vec<(f64, f64)> = pair[1]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
            .map(|(i, b)| (i as f64, mib(b.as_f64().unwrap_or(0.0))))
            .collect();
        lines.push((
            format!("simulated {layout} file, after pass k"),
            lighter(color(&layout)),
            true,
            pts,
        ));
    }
    for x in runs {
        let layout = x["layout"].as_str().unwrap_or("?").to_string();
        let pts: Vec<(f64, f64)> = x["at_sync"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| {
                let k = a["sync"].as_u64()?.checked_sub(1)?;
                Some((k as f64, mib(a["file_len"].as_f64()?)))
            })
            .collect();
        lines.push((
            format!("QEMU {layout} file, at sync k+1"),
            color(&layout),
            false,
            pts,
        ));
    }
    let xmax = lines
        .iter()
        .flat_map(|l| l.3.iter().map(|p| p.0))
        .fold(1.0f64, f64::max);
    let ymax = lines
        .iter()
        .flat_map(|l| l.3.iter().map(|p| p.1))
        .fold(mib(num(r, "ram")?), f64::max)
        * 1.15;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!(
                    "{}: the simulation beside QEMU",
                    r["scenario"].as_str().unwrap_or("?")
                ),
                (FONT, 21),
            )
            .margin(18)
            .margin_right(30)
            .x_label_area_size(62)
            .y_label_area_size(78)
            .build_cartesian_2d(-0.3f64..xmax + 0.3, 0f64..ymax)
            .map_err(draw_err)?;
        style_mesh(
            &mut chart,
            "k: passes done (simulation) = QEMU dirty syncs - 1",
            "file size (MiB)",
            &|x| {
                if (x - x.round()).abs() < 1e-6 && *x >= 0.0 {
                    format!("{x:.0}")
                } else {
                    String::new()
                }
            },
            (xmax as usize + 2).min(30),
        )?;
        for (label, c, dashed, pts) in lines {
            if dashed {
                chart
                    .draw_series(DashedLineSeries::new(pts.clone(), 10, 6, c.stroke_width(4)))
                    .map_err(draw_err)?
                    .label(label)
                    .legend(dashed_legend!(c, 4));
            } else {
                chart
                    .draw_series(LineSeries::new(pts.clone(), c.stroke_width(4)))
                    .map_err(draw_err)?
                    .label(label)
                    .legend(line_legend!(c, 4));
            }
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 4, c.filled())))
                .map_err(draw_err)?;
        }
        legend_box(&mut chart, SeriesLabelPosition::UpperLeft)?;
        root.present().map_err(draw_err)?;
    }
    Ok(Some(svg))
}

/// The table of one run: per layout, QEMU's figures and the simulation's.
fn table(r: &Value) -> Result<String, String> {
    let mut t = String::from(
        "| layout | verdict | dirty syncs (forced at) | file / RAM | file at each sync (MiB) | simulated after each pass (MiB) | RAM PART sections (QEMU / simulated) | pages sent (QEMU data + zero / simulated) | migsim restore | QEMU load |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let sims: Vec<(String, Vec<f64>)> = r["simulation"]["size_after_pass"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p[0].as_str().unwrap_or("").to_string(),
                p[1].as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_f64)
                    .collect(),
            )
        })
        .collect();
    let sim_passes = r["simulation"]["passes"].as_u64();
    for x in r["runs"].as_array().ok_or("qemu run report: no `runs`")? {
        let layout = x["layout"].as_str().unwrap_or("?");
        let sizes: Vec<String> = x["at_sync"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["sync"].as_u64().unwrap_or(0) > 0)
            .map(|a| {
                format!(
                    "{}: {:.1}",
                    a["sync"],
                    mib(a["file_len"].as_f64().unwrap_or(0.0))
                )
            })
            .collect();
        let sim: String = sims
            .iter()
            .find(|(l, _)| l == layout)
            .map(|(_, v)| {
                v.iter()
                    .map(|b| format!("{:.1}", mib(*b)))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_else(|| "not simulated".into());
        let restore = |by: &str| {
            x["restores"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["by"] == by)
                .map_or("?".to_string(), |c| {
                    if let Some(e) = c["error"].as_str() {
                        format!("failed: {e}")
                    } else if c["differing"] == 0 {
                        format!("equal ({} pages)", c["pages"])
                    } else {
                        format!("**{} of {} pages differ**", c["differing"], c["pages"])
                    }
                })
        };
        let _ = writeln!(
            t,
            "| {layout} | {} | {} ({}) | {:.2}x | {} | {sim} | {} / {} | {} + {} / {} | {} | {} |",
            if x["pass"] == true {
                "PASS"
            } else {
                "**FAIL**"
            },
            x["dirty_syncs"],
            x["forced_at_sync"]
                .as_u64()
                .map_or("not forced".into(), |s| s.to_string()),
            num(x, "file_over_ram")?,
            sizes.join(", "),
            x["parts"],
            sim_passes.map_or("-".into(), |p| (p + 1).to_string()),
            x["pages_sent"][0],
            x["pages_sent"][1],
            r["simulation"]["pages_sent"]
                .as_u64()
                .map_or("-".into(), |p| p.to_string()),
            restore("migsim"),
            restore("qemu"),
        );
    }
    Ok(t)
}

/// Write the report of the `migsim qemu run` reports `paths` into `dir`;
/// returns the files written.
pub fn write_qemu_report(paths: &[PathBuf], dir: &Path) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut md = String::from("# migsim: real QEMU runs the scenario\n\n");
    let mut html = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>migsim: real QEMU runs the scenario</title>{CSS}</head><body>\n<h1>migsim: real QEMU runs the scenario</h1>\n"
    );
    let mut written = Vec::new();
    for p in paths {
        let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
        let r: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))?;
        if r["runs"].is_null() || r["guest"].is_null() {
            return Err(format!(
                "{}: not the report of `migsim qemu run` (no `runs`, `guest`)",
                p.display()
            ));
        }
        let name = r["scenario"].as_str().unwrap_or("run").to_string();
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let a = over_time(&r)?;
        let b = vs_simulation(&r)?;
        let fa = format!("{safe}-over-time.svg");
        std::fs::write(dir.join(&fa), &a).map_err(|e| format!("{fa}: {e}"))?;
        written.push(dir.join(&fa));
        let t = table(&r)?;
        let intro = format!(
            "Scenario `{name}` (seed {}), {} with `-accel {}`: pc.ram {:.0} MiB, the guest's work region {} pages; \
             `max-bandwidth` {:.1} MiB/s, `downtime-limit` {} ms, switchover forced after {} syncs. \
             {}.",
            r["seed"],
            r["qemu"].as_str().unwrap_or("QEMU"),
            r["accel"].as_str().unwrap_or("?"),
            mib(num(&r, "ram")?),
            r["guest"]["pages"],
            mib(num(&r, "max_bandwidth")?),
            r["downtime_limit_ms"],
            r["force_after_syncs"],
            if r["pass"] == true {
                "Every check held"
            } else {
                "**A check failed**"
            }
        );
        let differs = "Where simulation and QEMU differ: QEMU syncs at setup and then whenever its \
            estimate of pending pages falls under the threshold, and at completion (the simulation \
            once per pass); QEMU writes a RAM PART section per iteration slice (the simulation one \
            per pass); QEMU's pages sent count pc.ram and the ROM blocks as QEMU sees them, the \
            simulation's every block's pages as it sends them; the real guest writes only pc.ram \
            from its work region, the simulated one every block.";
        let note = format!(
            "Deterministic {}.",
            r["deterministic"].as_str().unwrap_or("")
        );
        let _ = write!(
            md,
            "## {name}\n\n{intro}\n\n![QEMU's file size over the live save]({fa})\n\n"
        );
        let _ = write!(
            html,
            "<h2>{}</h2>\n<p>{}</p>\n{}\n",
            esc(&name),
            md_inline_to_html(&intro),
            inline_svg(&a, "QEMU's file size over the live save")
        );
        if let Some(b) = b {
            let fb = format!("{safe}-vs-simulation.svg");
            std::fs::write(dir.join(&fb), &b).map_err(|e| format!("{fb}: {e}"))?;
            written.push(dir.join(&fb));
            let _ = write!(md, "![The simulation beside QEMU]({fb})\n\n");
            let _ = writeln!(html, "{}", inline_svg(&b, "The simulation beside QEMU"));
        }
        let _ = write!(md, "{t}\n{differs}\n\n{note}\n\n");
        let _ = write!(
            html,
            "{}\n<p>{}</p>\n<p>{}</p>\n",
            md_table_to_html(&t),
            esc(differs),
            esc(&note)
        );
    }
    html.push_str("</body></html>\n");
    for (f, body) in [("qemu-run.md", &md), ("qemu-run.html", &html)] {
        std::fs::write(dir.join(f), body).map_err(|e| format!("{f}: {e}"))?;
        written.push(dir.join(f));
    }
    Ok(written)
}

/// A Markdown table (as [`table`] writes it) in HTML.
fn md_table_to_html(t: &str) -> String {
    let mut out = String::from("<table>\n");
    for (i, line) in t.lines().enumerate() {
        if i == 1 {
            continue;
        }
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").collect();
        let tag = if i == 0 { "th" } else { "td" };
        out.push_str("<tr>");
        for c in cells {
            let _ = write!(out, "<{tag}>{}</{tag}>", md_inline_to_html(c.trim()));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>");
    out
}
