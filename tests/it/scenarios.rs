//! Replays every scenario file under `scenarios/` (curated and
//! regressions) and checks its expectations: verdict, exact error text,
//! digest, size ratio, convergence.

use std::path::{Path, PathBuf};

use migsim_format::Layout;
use migsim_harness::oracle::Invariant;
use migsim_harness::run::{RunOptions, check_expectations, run};
use migsim_harness::scenario::{Scenario, Verdict};

fn scenario_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            scenario_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "toml") {
            out.push(p);
        }
    }
}

#[test]
fn every_scenario_meets_its_expectations() {
    let mut files = Vec::new();
    scenario_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios"),
        &mut files,
    );
    assert!(
        files.len() >= 12,
        "expected at least 12 curated scenarios, found {}",
        files.len()
    );
    let mut failures = Vec::new();
    for f in &files {
        let s = Scenario::load(f).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            s.expect.digest.is_some(),
            "{}: scenario has no expected digest",
            f.display()
        );
        let r = run(&s, &RunOptions::default());
        for d in check_expectations(&s, &r) {
            failures.push(format!(
                "{} (seed {}): {d}\n  re-run: migsim run {}",
                f.display(),
                s.seed,
                f.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn same_seed_same_digest_and_bytes() {
    let s = Scenario::default_scenario();
    let a = run(&s, &RunOptions::default());
    let b = run(&s, &RunOptions::default());
    assert_eq!(a.digest, b.digest);
    for (fa, fb) in a.files.iter().zip(&b.files) {
        assert_eq!(
            fa.file.to_vec(),
            fb.file.to_vec(),
            "{} file differs between runs",
            fa.writer
        );
    }
}

#[test]
fn another_seed_changes_the_digest() {
    let mut s = Scenario::default_scenario();
    let a = run(&s, &RunOptions::default());
    s.seed += 1;
    let b = run(&s, &RunOptions::default());
    assert_ne!(a.digest, b.digest);
    assert_eq!(b.verdict, Verdict::Pass);
}

#[test]
fn heavy_redirty_sequential_grows_while_fixed_ram_stays_bounded() {
    let s = Scenario::default_scenario();
    let r = run(&s, &RunOptions::default());
    assert_eq!(r.verdict, Verdict::Pass, "{:?}", r.invariants);
    let seq = r.sequential_size.unwrap();
    let fixed = r.fixed_ram_size.unwrap();
    assert!(
        seq >= 3 * r.ram_bytes,
        "sequential {seq} < 3x RAM {}",
        r.ram_bytes
    );
    assert!(
        fixed <= r.fixed_ram_bound,
        "fixed-ram {fixed} > bound {}",
        r.fixed_ram_bound
    );
    for name in [
        Invariant::RestoredEqualsSwitchover,
        Invariant::FixedRamSizeWithinBound,
        Invariant::FixedRamWritesInPlace,
    ] {
        assert!(
            r.invariants.iter().any(|i| i.name == name && i.ok),
            "{name} missing or failed"
        );
    }
    // Over the course of the migration: the sequential file grows every
    // pass, the fixed-ram file by the 18-byte empty PART section at most.
    let series = |w: Layout| {
        r.files
            .iter()
            .find(|f| f.writer == w)
            .unwrap()
            .size_after_pass
            .clone()
    };
    let seq_series = series(Layout::Sequential);
    let fixed_series = series(Layout::FixedRam);
    assert_eq!(
        seq_series.len(),
        r.passes as usize + 2,
        "setup, each live pass, final"
    );
    assert!(seq_series.windows(2).all(|w| w[1] > w[0]), "{seq_series:?}");
    let live = &fixed_series[..fixed_series.len() - 1];
    assert!(
        live.windows(2).all(|w| w[1] - w[0] == 18),
        "{fixed_series:?}"
    );
    // More passes re-send more pages: the sequential file grows, the
    // fixed-ram file does not (beyond the empty PART sections, which the
    // bound already counts).
    let mut longer = s.clone();
    longer.parameters.max_passes *= 2;
    let r2 = run(&longer, &RunOptions::default());
    assert!(r2.passes > r.passes);
    assert!(r2.sequential_size.unwrap() > seq);
    let growth = r2.fixed_ram_size.unwrap() - fixed;
    assert_eq!(
        growth,
        u64::from(r2.passes - r.passes) * 18,
        "fixed-ram grew by more than empty sections"
    );
}

#[test]
fn zero_writes_leave_stale_bytes_but_clear_bits() {
    // zero-after-data: pages sent with data and later zeroed keep their old
    // bytes in the fixed-ram page area, with the bit clear; the restore is
    // still zero (checked by the oracle's restored-equals-switchover).
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/zero-after-data.toml");
    let s = Scenario::load(&path).unwrap();
    let r = run(&s, &RunOptions::default());
    assert_eq!(r.verdict, Verdict::Pass);
    let fixed = r
        .files
        .iter()
        .find(|f| f.writer == migsim_format::Layout::FixedRam)
        .unwrap();
    let info = migsim_format::reader::inspect(&fixed.file).unwrap();
    let bytes = fixed.file.to_vec();
    let mut stale = 0;
    for b in &info.blocks {
        let fr = b.fixed_ram.as_ref().unwrap();
        let bitmap = &bytes[fr.bitmap_offset as usize..(fr.bitmap_offset + fr.bitmap_len) as usize];
        for p in 0..b.pages {
            let set = bitmap[(p / 8) as usize] & (1 << (p % 8)) != 0;
            let at = (fr.pages_offset + p * 4096) as usize;
            if !set && bytes[at..at + 4096].iter().any(|&x| x != 0) {
                stale += 1;
            }
        }
    }
    assert!(
        stale > 0,
        "expected stale page slots with clear bits in zero-after-data"
    );
}
