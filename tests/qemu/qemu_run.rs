//! Real QEMU runs the scenario (`migsim qemu run`): migsim's guest program
//! boots in QEMU and dirties pc.ram, QEMU saves it live with each layout,
//! and both migsim's restore and a fresh QEMU's load are judged against
//! the stopped source; `--sabotage` shows the judgement can fail.

use std::path::Path;
use std::time::Instant;

use serde_json::Value;

use crate::qemu_process::{QemuInfo, qemu};
use crate::support::migsim_command;

/// `migsim qemu run scenarios/qemu/NAME.toml --tick-ms 100 --json EXTRA`
/// with the installed QEMU: its exit code and its JSON.
fn migsim_qemu_run(info: &QemuInfo, name: &str, extra: &[&str]) -> (Option<i32>, Value) {
    let scenario =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("scenarios/qemu/{name}.toml"));
    let out = migsim_command()
        .args([
            "qemu",
            "run",
            "--tick-ms",
            "100",
            "--timeout",
            "120",
            "--json",
        ])
        .args(extra)
        .arg(&scenario)
        .env("QEMU", &info.bin)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "migsim qemu run {name} {extra:?}: {e}; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), v)
}

/// `migsim qemu run` on the smallest QEMU-shaped scenario, ticks of 100 ms
/// (10 MiB/s, 4,000 guest writes a second): migsim's guest program boots,
/// dirties pc.ram with migsim's page contents, QEMU saves it live with
/// each layout over several dirty syncs, and migsim's restore and a fresh
/// QEMU's load both equal the stopped source. QEMU's sequential file grows
/// from sync to sync; its mapped-ram file has the same size at every sync
/// after the first, its page areas where migsim's layout puts them.
#[test]
fn qemu_runs_the_scenario_live_and_both_restores_equal_the_source() {
    let Some(info) = qemu() else { return };
    let t0 = Instant::now();
    let (code, v) = migsim_qemu_run(info, "pc-16m-redirty", &[]);
    assert_eq!(code, Some(0), "{v:#}");
    assert_eq!(v["pass"], true);
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for r in runs {
        let layout = r["layout"].as_str().unwrap();
        for c in r["restores"].as_array().unwrap() {
            assert_eq!(c["differing"], 0, "{layout}: {c}");
            assert!(c["error"].is_null(), "{layout}: {c}");
            assert_eq!(c["pages"], 3840, "{layout}: {c}");
        }
        assert!(r["source_pages"]["data"].as_u64().unwrap() > 1000, "{r}");
        let sizes: Vec<u64> = r["at_sync"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["sync"].as_u64().unwrap() >= 1)
            .map(|a| a["file_len"].as_u64().unwrap())
            .collect();
        assert!(sizes.len() >= 3, "{layout}: {sizes:?}");
        let (first, last) = (sizes[0], *sizes.last().unwrap());
        if layout == "fixed-ram" {
            assert!(r["bound"]["within"] == true && r["bound"]["offsets_match"] == true);
            // Flat: only 18-byte PART sections and the final tail follow.
            assert!(last - first < 200_000, "{layout}: {sizes:?}");
        } else {
            assert!(last > first + (4 << 20), "{layout}: {sizes:?}");
        }
        println!(
            "{layout}: {} syncs, file at each sync {sizes:?}, guest {} writes/s",
            r["dirty_syncs"], r["guest_writes_per_second"]
        );
    }
    println!(
        "migsim qemu run pc-16m-redirty on QEMU {}: {:.1} s",
        info.short_version(),
        t0.elapsed().as_secs_f64()
    );
}

/// The judgement can fail: `migsim qemu run --sabotage` rewrites the last
/// copy of one page in each saved file as its next version, and both
/// migsim's restore and QEMU's load then differ from the stopped source on
/// exactly that page, named by its header (`restored v2, source v1`); the
/// run fails with exit 1.
#[test]
fn qemu_run_catches_a_page_changed_in_the_saved_file() {
    let Some(info) = qemu() else { return };
    let (code, v) = migsim_qemu_run(info, "pc-16m-zero-after-data", &["--sabotage"]);
    assert_eq!(code, Some(1), "{v:#}");
    assert_eq!(v["pass"], false);
    for r in v["runs"].as_array().unwrap() {
        let what = r["sabotaged"].as_str().unwrap();
        // "pc.ram page 0x401: its last copy ... rewritten from v1 to v2"
        let page = what.split(':').next().unwrap();
        let (from, to) = what.rsplit_once(" to ").unwrap();
        let from = from.rsplit(' ').next().unwrap();
        for c in r["restores"].as_array().unwrap() {
            assert_eq!(c["differing"], 1, "{what}: {c}");
            let named = c["named"][0].as_str().unwrap();
            assert_eq!(
                named,
                format!("{page}: restored {to}, source {from}"),
                "{}",
                c["by"]
            );
        }
        println!("{}: {what}; both restores name it", r["layout"]);
    }
}
