//! The report's CSV tables: `report.csv` (one row per run and writer) and
//! `sizes.csv` (file size after setup and each pass).

use migsim_format::Layout;
use migsim_harness::oracle::Judged;

use super::*;

pub(super) fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

pub(super) fn csv_line(fields: &[String]) -> String {
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

pub(super) fn report_csv(runs: &[ReportRun]) -> String {
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

pub(super) fn sizes_csv(runs: &[ReportRun]) -> String {
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
