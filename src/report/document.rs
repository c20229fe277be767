//! The report's documents: `report.md` and the self-contained
//! `report.html`, built from the same sections (tables, notes, the
//! charts inline).

use std::fmt::Write as _;

use migsim_format::Layout;
use migsim_harness::scenario::{Scenario, Verdict};

use super::*;

/// A table: header and rows of plain-text cells (one cell may be marked
/// as code).
pub(super) struct Table {
    header: Vec<String>,
    code_cols: Vec<usize>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(super) fn markdown(&self) -> String {
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

    pub(super) fn html(&self) -> String {
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

pub(super) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Minimal inline Markdown for the prose: `code` and **bold**.
pub(super) fn md_inline_to_html(s: &str) -> String {
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

pub(super) fn f1(b: u64) -> String {
    format!("{:.1}", mib(b))
}

pub(super) struct Doc {
    title: String,
    /// Paragraphs (inline Markdown).
    intro: Vec<String>,
    findings: Vec<String>,
    verdicts: Table,
    sizes: Table,
    pivot: Option<(String, Table)>,
}

impl Doc {
    pub(super) fn new(runs: &[ReportRun], sweep_mode: bool) -> Self {
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

    pub(super) fn markdown(&self, charts: &[Chart]) -> String {
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

    pub(super) fn html(&self, charts: &[Chart]) -> String {
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

pub(super) fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

pub(super) fn join_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [a] => a.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// Sweep only: sequential size at switchover, rows max_passes, columns
/// dirty rate.
pub(super) fn pivot_table(runs: &[ReportRun]) -> (String, Table) {
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

pub(super) const VERDICTS_NOTE: &str = "`pass`: every oracle invariant held (both files restore the guest's memory at \
switchover; the sequential file is exactly the records sent; the fixed-ram file writes each page \
in place and stays within its bound). `error`: the migration was refused (e.g. a capability \
incompatible with fixed-ram); such runs are left out of the charts. The digest covers the \
verdict, the figures and every file's bytes; the replay command re-runs the scenario and exits \
1 if its verdict or digest differs.";

pub(super) const SIZES_NOTE: &str = "Sizes in MiB (2^20 bytes). File sizes are logical sizes (what `ls -l` \
shows); the fixed-ram file is sparse, so its allocated disk space can be smaller. `written` \
counts every byte written, overwrites included.";

pub(super) const FILES_NOTE: &str = "`report.csv`: one row per run and writer, sizes in bytes. `sizes.csv`: \
each file's size after setup (pass 0) and after each pass. `fig*.svg`: the charts. \
`scenarios/*.toml`: the scenario of each sweep point, with its digest as expectation.";

pub(super) const CSS: &str = "<style>\n\
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
pub(super) fn inline_svg(svg: &str, label: &str) -> String {
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

pub(super) fn svg_height(svg: &str) -> u32 {
    svg.split_once("height=\"")
        .and_then(|(_, r)| r.split_once('"'))
        .and_then(|(h, _)| h.parse().ok())
        .unwrap_or(H)
}
