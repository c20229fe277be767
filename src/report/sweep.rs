//! The runs of a report: the built-in sweep over dirty rate and passes, or
//! scenario files; run on worker threads, results in input order.

use std::path::{Path, PathBuf};

use migsim_harness::replay_command::ReplayCommand;
use migsim_harness::run::{RunOptions, check_expectations, run};
use migsim_harness::scenario::{Expect, Scenario, Verdict};
use migsim_harness::sim::workload::WorkloadKind;

use super::*;

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

/// Run all inputs on `jobs` threads, the costliest first; results in input
/// order.
pub(super) fn run_all(
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

pub(super) fn run_one(input: &ReportInput, dir: &Path) -> ReportRun {
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
pub(super) fn sweep_file(dir: &Path, name: &str) -> PathBuf {
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
