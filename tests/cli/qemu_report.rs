//! `migsim report --qemu-run`: the report of a recorded `migsim qemu run`
//! (`tests/data/qemu/qemu-run-pc-16m-redirty.json`, QEMU 10.0.2, TCG), no
//! QEMU needed.

use std::path::Path;

use super::{migsim, stdout};

fn recorded() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/qemu/qemu-run-pc-16m-redirty.json")
        .display()
        .to_string()
}

/// Both figures, the Markdown and the self-contained HTML are written;
/// the table carries the recorded figures of both layouts and the
/// simulation's, and the HTML references nothing outside itself.
#[test]
fn report_of_a_qemu_run_draws_both_layouts_beside_the_simulation() {
    let out = tempfile::tempdir().unwrap();
    let o = migsim(&[
        "report",
        "--qemu-run",
        &recorded(),
        "-o",
        out.path().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stdout(&o));
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(recorded()).unwrap()).unwrap();
    for f in [
        "qemu-pc-16m-redirty-over-time.svg",
        "qemu-pc-16m-redirty-vs-simulation.svg",
        "qemu-run.md",
        "qemu-run.html",
    ] {
        let p = out.path().join(f);
        assert!(p.is_file(), "{f} not written: {}", stdout(&o));
        assert!(stdout(&o).contains(f));
    }
    let svg =
        std::fs::read_to_string(out.path().join("qemu-pc-16m-redirty-over-time.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("QEMU mapped-ram file"));
    assert!(svg.contains("QEMU sequential file"));
    let md = std::fs::read_to_string(out.path().join("qemu-run.md")).unwrap();
    for x in run["runs"].as_array().unwrap() {
        let layout = x["layout"].as_str().unwrap();
        let row = md
            .lines()
            .find(|l| l.starts_with(&format!("| {layout} |")))
            .unwrap_or_else(|| panic!("no {layout} row in\n{md}"));
        assert!(row.contains("PASS"), "{row}");
        assert!(row.contains(&format!("| {} (", x["dirty_syncs"])), "{row}");
        let last = x["file_len"].as_f64().unwrap() / (1u64 << 20) as f64;
        let at = x["at_sync"].as_array().unwrap().last().unwrap();
        assert_eq!(at["file_len"], x["file_len"]);
        assert!(
            row.contains(&format!("{last:.1}")),
            "{last:.1} not in {row}"
        );
        assert!(row.contains("equal (3840 pages)"), "{row}");
    }
    let html = std::fs::read_to_string(out.path().join("qemu-run.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("<table>"));
    assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("src="));
}

/// A JSON that is not a `migsim qemu run` report, and scenarios given
/// with --qemu-run, are refused with exit 2 and a reason.
#[test]
fn report_qemu_run_refuses_other_json_and_scenarios() {
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("run.json");
    std::fs::write(&other, r#"{"verdict": "pass"}"#).unwrap();
    let out = dir.path().join("out");
    let o = migsim(&[
        "report",
        "--qemu-run",
        other.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not the report of `migsim qemu run`"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = migsim(&[
        "report",
        "scenarios/idle.toml",
        "--qemu-run",
        &recorded(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--qemu-run reports QEMU runs only"));
}
