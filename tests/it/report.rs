//! `migsim report`: the CSV agrees with the simulation, the HTML is
//! self-contained with labelled charts, the output is byte-for-byte
//! deterministic, and (when Debian's chromium is installed) the HTML
//! renders.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use migsim::report::{
    CHART_FILES, REPORT_CSV_HEADER, SIZES_CSV_HEADER, load_inputs, sweep, write_report,
};
use migsim_harness::run::{RunOptions, check_expectations, run};
use migsim_harness::scenario::{Scenario, Verdict};

use crate::support::migsim_command;

/// RFC 4180 rows (quoted fields may hold commas and doubled quotes).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    assert!(
        field.is_empty() && row.is_empty(),
        "CSV ends with a newline"
    );
    rows
}

/// CSV rows as header-keyed maps.
fn csv_records(path: &Path, header: &str) -> Vec<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut rows = parse_csv(&text).into_iter();
    let head = rows.next().expect("a header row");
    assert_eq!(head.join(","), header, "{}", path.display());
    rows.map(|r| {
        assert_eq!(r.len(), head.len(), "{r:?}");
        head.iter().cloned().zip(r).collect()
    })
    .collect()
}

/// Every file under `dir`, by relative path.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, d: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.insert(
                    p.strip_prefix(root).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn jobs() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

#[test]
fn sweep_report_matches_the_simulation_and_is_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    let start = Instant::now();
    let report = write_report(&sweep(), &dir, jobs(), &|_, _| {}).unwrap();
    println!(
        "default sweep report: {:.1} s",
        start.elapsed().as_secs_f64()
    );
    assert_eq!(report.runs.len(), 24);
    assert!(report.all_expected(), "a sweep point did not pass");
    for f in [
        "report.html",
        "report.md",
        "report.csv",
        "sizes.csv",
        "scenarios/heavy-redirty-w1200-p12.toml",
    ]
    .iter()
    .chain(&CHART_FILES)
    {
        assert!(report.files.contains(&PathBuf::from(f)), "{f} not reported");
        assert!(dir.join(f).is_file(), "{f} not written");
    }

    // CSV numbers against fresh simulations of two sweep points, one of
    // them the embedded default (whose blessed digest it must reproduce).
    let rows = csv_records(&dir.join("report.csv"), REPORT_CSV_HEADER);
    assert_eq!(rows.len(), 48, "one row per run and writer");
    let sizes = csv_records(&dir.join("sizes.csv"), SIZES_CSV_HEADER);
    let default = Scenario::default_scenario();
    for name in ["heavy-redirty-w1200-p12", "heavy-redirty-w300-p8"] {
        let input = sweep()
            .into_iter()
            .find(|i| i.scenario.name == name)
            .unwrap();
        let r = run(&input.scenario, &RunOptions::default());
        if name == "heavy-redirty-w1200-p12" {
            assert_eq!(Some(&r.digest), default.expect.digest.as_ref());
        }
        let mine: Vec<_> = rows.iter().filter(|row| row["scenario"] == name).collect();
        assert_eq!(mine.len(), r.files.len());
        for (row, f) in mine.iter().zip(&r.files) {
            let num = |k: &str| -> u64 { row[k].parse().unwrap_or_else(|_| panic!("{k}")) };
            assert_eq!(row["writer"], f.writer.name());
            assert_eq!(row["seed"], input.scenario.seed.to_string());
            assert_eq!(
                num("max_passes"),
                input.scenario.parameters.max_passes as u64
            );
            assert_eq!(
                num("writes_per_tick"),
                input.scenario.workload.writes_per_tick
            );
            assert_eq!(num("passes"), r.passes as u64);
            assert_eq!(num("pages_sent"), r.pages_sent);
            assert_eq!(num("ram_bytes"), r.ram_bytes);
            assert_eq!(num("final_size"), f.size, "{name} {}", f.writer);
            assert_eq!(num("bytes_written"), f.bytes_written);
            assert_eq!(num("allocated"), f.allocated);
            assert_eq!(row["verdict"], r.verdict.name());
            assert_eq!(row["digest"], r.digest);
            if f.writer == migsim_format::Layout::FixedRam {
                assert_eq!(num("bound"), r.fixed_ram_bound);
                assert!(f.size <= r.fixed_ram_bound);
            } else {
                assert_eq!(row["bound"], "");
            }
            let replay = format!(
                "migsim run {}",
                dir.join("scenarios").join(format!("{name}.toml")).display()
            );
            assert_eq!(row["replay"], replay);
            let per_pass: Vec<u64> = sizes
                .iter()
                .filter(|s| s["scenario"] == name && s["writer"] == f.writer.name())
                .map(|s| s["size"].parse().unwrap())
                .collect();
            assert_eq!(per_pass, f.size_after_pass, "{name} {}", f.writer);
        }
        // The written scenario replays: same digest, expectations met.
        let s = Scenario::load(&dir.join("scenarios").join(format!("{name}.toml"))).unwrap();
        assert_eq!(s.expect.digest.as_ref(), Some(&r.digest));
        let again = run(&s, &RunOptions::default());
        assert_eq!(check_expectations(&s, &again), Vec::new());
    }
    // The sequential file grows with the dirty rate; fixed-ram stays bounded.
    let final_size = |name: &str, writer: &str| -> u64 {
        rows.iter()
            .find(|r| r["scenario"] == name && r["writer"] == writer)
            .unwrap()["final_size"]
            .parse()
            .unwrap()
    };
    assert!(
        final_size("heavy-redirty-w2000-p20", "sequential")
            > 3 * final_size("heavy-redirty-w100-p20", "sequential")
    );
    for r in rows.iter().filter(|r| r["writer"] == "fixed-ram") {
        let size: u64 = r["final_size"].parse().unwrap();
        let bound: u64 = r["bound"].parse().unwrap();
        assert!(size <= bound, "{r:?}");
    }

    // HTML: self-contained, three inline charts with labelled axes.
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert_eq!(html.matches("<svg ").count(), 3);
    assert_eq!(html.matches("</svg>").count(), 3);
    for label in [
        "file size (MiB)",
        "pass (setup, live passes",
        "guest dirty rate (pages written per tick",
        "final file size (MiB)",
        "bytes written, overwrites counted (MiB)",
        "disk space allocated (MiB)",
        "sequential file",
        "fixed-ram bound",
        "guest RAM size",
        "Oracle verdicts and replay commands",
    ] {
        assert!(html.contains(label), "report.html lacks {label:?}");
    }
    // The sweep point with the default's own values reproduces the default
    // scenario's blessed digest.
    let default_digest = migsim_harness::scenario::Scenario::default_scenario()
        .expect
        .digest
        .unwrap();
    assert!(
        html.contains(&default_digest),
        "report.html lacks the default digest {default_digest}"
    );
    let lower = html.to_lowercase();
    for external in [
        "http", "<script", "<link", "<img", "<iframe", "src=", "url(", "@import", "//",
    ] {
        assert!(
            !lower.contains(external),
            "report.html has an external reference: {external:?}"
        );
    }
    // Markdown: charts referenced relatively, tables present.
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    for f in CHART_FILES {
        assert!(md.contains(&format!("]({f})")), "report.md lacks {f}");
        let svg = std::fs::read_to_string(dir.join(f)).unwrap();
        assert!(svg.starts_with("<svg ") && svg.trim_end().ends_with("</svg>"));
    }
    assert!(md.contains("| scenario | verdict |"));
    assert!(md.contains("`migsim run "));

    // Rendered by a browser, when one is installed.
    render_with_chromium(&dir.join("report.html"), &tmp.path().join("report.png"));

    // Same inputs, same bytes, whatever the number of threads.
    let first = snapshot(&dir);
    write_report(&sweep(), &dir, 1, &|_, _| {}).unwrap();
    let second = snapshot(&dir);
    assert_eq!(
        first.keys().collect::<Vec<_>>(),
        second.keys().collect::<Vec<_>>()
    );
    for (path, bytes) in &first {
        assert!(
            *bytes == second[path],
            "{} differs between two runs",
            path.display()
        );
    }
}

fn render_with_chromium(html: &Path, png: &Path) {
    let chromium = Path::new("/usr/bin/chromium");
    if !chromium.exists() {
        println!("chromium not installed (/usr/bin/chromium): skipping the rendering check");
        return;
    }
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            &format!("--user-data-dir={}", profile.path().display()),
            &format!("--screenshot={}", png.display()),
            "--window-size=1200,2000",
            &format!("file://{}", html.display()),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("chromium did not finish rendering within 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "chromium exited with {status}");
    let bytes = std::fs::read(png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    // A page of text and three charts, not a blank page (which is ~10 KB).
    assert!(
        bytes.len() > 60_000,
        "screenshot is only {} bytes",
        bytes.len()
    );
    println!("rendered {} ({} bytes)", png.display(), bytes.len());
}

#[test]
fn scenario_files_report_lists_refusals_and_meets_expectations() {
    let tmp = tempfile::tempdir().unwrap();
    let scenarios = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let inputs = load_inputs(std::slice::from_ref(&scenarios)).unwrap();
    assert!(inputs.len() >= 12);
    let report = write_report(&inputs, tmp.path(), jobs(), &|_, _| {}).unwrap();
    assert!(report.all_expected(), "a curated scenario differed");
    // No sweep files for given scenarios.
    assert!(!report.files.iter().any(|f| f.starts_with("scenarios")));

    let rows = csv_records(&tmp.path().join("report.csv"), REPORT_CSV_HEADER);
    let md = std::fs::read_to_string(tmp.path().join("report.md")).unwrap();
    for (input, r) in inputs.iter().zip(&report.runs) {
        let name = &input.scenario.name;
        assert!(md.contains(&format!("| {name} |")), "{name} not in tables");
        let replay = format!("migsim run {}", input.path.as_ref().unwrap().display());
        assert_eq!(r.replay, replay);
        let mine: Vec<_> = rows.iter().filter(|row| &row["scenario"] == name).collect();
        assert!(!mine.is_empty(), "{name} not in report.csv");
        for row in &mine {
            assert_eq!(row["verdict"], r.verdict.name());
            assert_eq!(
                row["digest"],
                *input.scenario.expect.digest.as_ref().unwrap()
            );
            assert_eq!(row["replay"], replay);
        }
        if r.verdict == Verdict::Error {
            assert_eq!(mine[0]["error"], *r.error.as_ref().unwrap());
            if r.files.is_empty() {
                assert_eq!(mine.len(), 1);
                assert_eq!(mine[0]["writer"], "-");
                assert_eq!(mine[0]["final_size"], "");
            }
        }
    }
    assert!(
        report.runs.iter().any(|r| r.verdict == Verdict::Error),
        "the curated set has refusals"
    );
    let html = std::fs::read_to_string(tmp.path().join("report.html")).unwrap();
    assert!(html.contains("error: Fixed-ram migration is incompatible with multifd"));
    assert!(!html.to_lowercase().contains("http"));
}

#[test]
fn command_line_report() {
    let tmp = tempfile::tempdir().unwrap();
    let idle = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/idle.toml");
    let out = migsim_command()
        .args(["report", idle.to_str().unwrap(), "-o"])
        .arg(tmp.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("report: 1 runs"), "{stdout}");
    assert!(tmp.path().join("report.html").is_file());

    let bad = migsim_command()
        .args(["report", "no/such/scenario.toml", "-o"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no such file"));
}
