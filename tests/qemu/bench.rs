//! `migsim bench --only qemu` on a small guest against the installed
//! QEMU: every QEMU restore has one of migsim's beside it, the restore
//! ratios are computed from those pairs, QEMU is also measured at
//! migsim's reader depth, and the two restore targets are reported.

use serde_json::Value;

use crate::support::migsim_command;
use crate::support::qemu_or_skip;

#[test]
fn bench_pairs_each_qemu_restore_with_one_of_migsims() {
    if qemu_or_skip().is_none() {
        return;
    }
    // On disk (not a tmpfs), so the direct-io cases can open O_DIRECT.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let out = migsim_command()
        .args(["bench", "--size", "64M", "--reps", "3", "--only", "qemu"])
        .args(["--read-channels", "2", "--json", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["read_channels"], 2);
    assert!(v["qemu_skipped"].is_null(), "{}", v["qemu_skipped"]);
    let cases: Vec<&str> = v["qemu"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["qemu"]["case"].as_str().unwrap())
        .collect();
    assert_eq!(
        cases,
        [
            "mapped-ram",
            "mapped-ram+4 multifd",
            "mapped-ram+4 multifd+direct-io",
            "mapped-ram+2 multifd",
            "mapped-ram+2 multifd+direct-io"
        ]
    );
    for c in v["qemu"].as_array().unwrap() {
        let paired = &c["migsim_restore_paired"];
        let secs: Vec<f64> = paired["seconds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_f64().unwrap())
            .collect();
        assert_eq!(secs.len(), 3, "{c}");
        assert!(secs.iter().all(|&s| s > 0.0), "{c}");
        let ratio = c["migsim_vs_qemu_restore_ratio"].as_f64().unwrap();
        let want =
            c["qemu"]["restore_median_s"].as_f64().unwrap() / paired["median_s"].as_f64().unwrap();
        assert!((ratio - want).abs() < 1e-9, "{c}");
    }
    // Each QEMU restore's progress line names migsim's beside it,
    // before and after in turn.
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("qemu mapped-ram+4 multifd+direct-io: restore "))
        .collect();
    assert_eq!(lines.len(), 3, "{err}");
    for (l, when) in lines.iter().zip(["before", "after", "before"]) {
        assert!(l.ends_with(&format!(" s, {when} it)")), "{l}");
    }
    let targets = v["targets"].as_array().unwrap();
    for name in [
        "restore vs QEMU mapped-ram + 4 multifd (fresh memory)",
        "O_DIRECT restore vs QEMU + 4 multifd + direct-io",
    ] {
        let t = targets
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("no target {name}: {targets:?}"));
        assert_eq!(t["goal"], 1.0);
        let met = t["ratio"].as_f64().unwrap() >= 1.0;
        assert_eq!(t["met"], met, "{t}");
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
