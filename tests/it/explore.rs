//! Exploration finds real bug classes: every deliberately wrong variant
//! (crates/migsim-harness/src/bugs.rs) is caught within a bounded number of seeds, shrunk, and
//! its regression scenario replays; without a bug, a sweep passes, and the
//! results do not depend on the number of jobs.

use std::path::Path;
use std::time::Instant;

use migsim_harness::bugs::Bug;
use migsim_harness::explore::{ExploreOptions, SeedSet, explore};
use migsim_harness::run::{RunOptions, check_expectations, run};
use migsim_harness::scenario::{Scenario, Verdict};

/// Seeds explore may take to find each variant.
const SEED_BUDGET: u64 = 50;

fn opts(seeds: SeedSet, jobs: usize, bug: Option<Bug>) -> ExploreOptions {
    ExploreOptions {
        seeds,
        jobs,
        bug,
        shrink: true,
        max_failures: 1,
        faults: false,
        regressions: None,
    }
}

#[test]
fn explore_catches_every_bug_variant_within_the_seed_budget() {
    for bug in Bug::ALL.into_iter().chain(Bug::CONCURRENCY) {
        let start = Instant::now();
        let report = explore(
            &opts(SeedSet::new(0, SEED_BUDGET, None), 2, Some(bug)),
            &|_, _| {},
        )
        .unwrap();
        let f = report
            .failures
            .first()
            .unwrap_or_else(|| panic!("{} not found in {SEED_BUDGET} seeds", bug.name()));
        println!(
            "{}: first failing seed {} ({} of {SEED_BUDGET} seeds fail), shrunk in {} steps, {:.2} s:\n{}",
            bug.name(),
            f.seed,
            report.seeds_run - report.passed,
            f.shrink_steps,
            start.elapsed().as_secs_f64(),
            f.scenario_toml
        );
        // The shrunk scenario fails with the bug and passes without it.
        let s = Scenario::from_toml(&f.scenario_toml).unwrap();
        assert_eq!(
            run(&s, &RunOptions::default()).verdict,
            Verdict::Pass,
            "{}",
            bug.name()
        );
        assert_ne!(
            run(&s, &RunOptions::with_bug(bug)).verdict,
            Verdict::Pass,
            "{}",
            bug.name()
        );
        // Shrinking made it small: one block, few pages.
        assert!(
            s.guest.blocks.len() <= 2,
            "{}: {} blocks after shrinking",
            bug.name(),
            s.guest.blocks.len()
        );
    }
}

#[test]
fn regression_scenarios_fail_with_their_bug_and_pass_without() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/regressions");
    let mut seen = 0;
    for bug in Bug::ALL.into_iter().chain(Bug::CONCURRENCY) {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if !name.ends_with(&format!("-{}.toml", bug.name())) {
                continue;
            }
            seen += 1;
            let s = Scenario::load(&p).unwrap();
            let good = run(&s, &RunOptions::default());
            assert!(
                check_expectations(&s, &good).is_empty(),
                "{name} without its bug"
            );
            assert_eq!(
                run(&s, &RunOptions::with_bug(bug)).verdict,
                Verdict::Fail,
                "{name} with its bug"
            );
        }
    }
    assert!(
        seen >= 1,
        "no regression scenario for any bug variant in {}",
        dir.display()
    );
}

#[test]
fn a_clean_sweep_passes_and_does_not_depend_on_jobs_or_shards() {
    let seeds = SeedSet::new(0, 120, None);
    let one = explore(&opts(seeds, 1, None), &|_, _| {}).unwrap();
    assert_eq!(one.passed, 120, "{:#?}", one.failures);
    // With a bug, failures (and their shrunk scenarios) are identical for 1
    // and 3 jobs.
    let bug = Some(Bug::ZeroPageKeepsBit);
    let mut a = opts(seeds, 1, bug);
    a.max_failures = 3;
    let mut b = a.clone();
    b.jobs = 3;
    let ra = explore(&a, &|_, _| {}).unwrap();
    let rb = explore(&b, &|_, _| {}).unwrap();
    assert_eq!(ra.passed, rb.passed);
    let key = |r: &migsim_harness::explore::ExploreReport| {
        r.failures
            .iter()
            .map(|f| (f.seed, f.scenario_toml.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(key(&ra), key(&rb));
    // Shards partition the range.
    let mut all: Vec<u64> = (1..=4)
        .flat_map(|k| {
            SeedSet::new(0, 120, Some((k, 4)))
                .iter()
                .collect::<Vec<_>>()
        })
        .collect();
    all.sort();
    assert_eq!(all, (0..120).collect::<Vec<u64>>());
    for (a, b) in [(0, 0), (5, 6), (0, 7), (3, 200)] {
        let counted: u64 = (1..=4)
            .map(|k| SeedSet::new(a, b, Some((k, 4))).len())
            .sum();
        assert_eq!(counted, b - a, "shard sizes of {a}..{b}");
    }
}

/// `explore --seeds 0..10^12` allocated 8 bytes a seed before starting.
#[test]
fn explore_seeds_of_a_huge_range_cost_nothing_up_front() {
    let s = SeedSet::new(0, 1_000_000_000_000, Some((3, 7)));
    assert_eq!(s.len(), 142_857_142_857);
    assert_eq!(s.nth(0), 2);
    assert_eq!(s.nth(s.len() - 1), 999_999_999_994);
    assert_eq!(s.iter().take(3).collect::<Vec<_>>(), [2, 9, 16]);
}

#[test]
fn explore_with_faults_catches_the_durable_bug_variant_and_passes_correct_code() {
    use migsim_harness::faults::{FaultsOptions, faults};
    let bug = Bug::DurableMarkUnsynced;
    let mut o = opts(SeedSet::new(0, SEED_BUDGET, None), 2, Some(bug));
    o.faults = true;
    let report = explore(&o, &|_, _| {}).unwrap();
    let f = report
        .failures
        .first()
        .unwrap_or_else(|| panic!("{} not found in {SEED_BUDGET} seeds", bug.name()));
    assert!(f.replay.starts_with("migsim faults "), "{}", f.replay);
    assert!(
        f.shrunk_differences[0]
            .to_string()
            .contains("restores wrong memory"),
        "{:?}",
        f.shrunk_differences
    );
    // Without faults the variant is invisible: a plain run passes.
    let s = Scenario::from_toml(&f.scenario_toml).unwrap();
    assert_eq!(run(&s, &RunOptions::with_bug(bug)).verdict, Verdict::Pass);
    // The replay command's fault run finds it; correct code does not.
    let durable = FaultsOptions {
        mode: migsim_format::Durability::Durable,
        io_points: 0,
        ..FaultsOptions::default()
    };
    let with_bug = FaultsOptions {
        bug: Some(bug),
        ..durable.clone()
    };
    assert!(faults(&s, &with_bug).wrong() > 0);
    assert_eq!(faults(&s, &durable).wrong(), 0);
    // A sweep of correct code with faults passes.
    let mut o = opts(SeedSet::new(0, 30, None), 2, None);
    o.faults = true;
    let report = explore(&o, &|_, _| {}).unwrap();
    assert_eq!(report.passed, 30, "{:?}", report.failures.first());
}
