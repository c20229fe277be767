//! Merging the JSON reports of a sweep split with `explore --shard K/N`
//! (one per machine or batch job) into the report the unsplit sweep
//! gives: the same seeds, counts, bug, settings and failures, in the same
//! JSON shape (`jobs` is the sum over the shards).
//!
//! Every shard `1..=N` of one range must be there exactly once, and the
//! reports must agree on the range, the bug variant, shrinking and
//! `--max-failures`; anything else is refused with a message naming the
//! report. A report's failures are kept as JSON, unchanged: a failure
//! depends only on its seed, so the merged failures are the union of the
//! shards', smallest seeds first, cut to the same bound as an unsplit run
//! (each shard kept its own smallest failing seeds, so the union holds
//! the smallest of the whole range).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::bugs::Bug;
use crate::explore::{MAX_FAILURES_KEPT, SeedRange, SeedSet};

/// An `explore --json` report, as read back (failures as opaque JSON).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportFile {
    /// The seeds asked for.
    pub seeds: SeedRange,
    /// Seeds run.
    pub seeds_run: u64,
    /// Seeds that met their expectation.
    pub passed: u64,
    /// Bug variant injected.
    pub bug: Option<Bug>,
    /// Worker threads (summed when merged).
    pub jobs: usize,
    /// Whether failures were shrunk.
    pub shrink: bool,
    /// `--max-failures`.
    pub max_failures: usize,
    /// The failures, by seed, as written.
    pub failures: Vec<serde_json::Value>,
}

impl ReportFile {
    /// Seeds that failed (kept or not).
    pub fn failed(&self) -> u64 {
        self.seeds_run - self.passed
    }
}

/// Parse one report; `name` (its file) prefixes every error.
pub fn parse_report(name: &str, text: &str) -> Result<ReportFile, String> {
    let r: ReportFile = serde_json::from_str(text).map_err(|e| {
        format!("{name}: not a `migsim explore --json` report of this version ({e})")
    })?;
    let s = r.seeds;
    if s.end <= s.start || s.shards == 0 || !(1..=s.shards).contains(&s.shard) {
        return Err(format!(
            "{name}: seeds {}..{} shard {}/{} is not a valid range and shard",
            s.start, s.end, s.shard, s.shards
        ));
    }
    let set = SeedSet::new(s.start, s.end, Some((s.shard, s.shards)));
    if r.seeds_run != set.len() || r.passed > r.seeds_run {
        return Err(format!(
            "{name}: {} seeds run, {} passed, but shard {}/{} of {}..{} has {} seeds \
             (an interrupted or edited report)",
            r.seeds_run,
            r.passed,
            s.shard,
            s.shards,
            s.start,
            s.end,
            set.len()
        ));
    }
    let mut last = None;
    for f in &r.failures {
        let seed = f.get("seed").and_then(serde_json::Value::as_u64);
        let Some(seed) = seed.filter(|&x| set.contains(x) && last < Some(x)) else {
            return Err(format!(
                "{name}: failure {} is not a seed of shard {}/{} of {}..{} in increasing order",
                f.get("seed")
                    .map_or("without a seed".into(), |v| v.to_string()),
                s.shard,
                s.shards,
                s.start,
                s.end
            ));
        };
        last = Some(seed);
    }
    if r.failures.len() as u64 > r.failed() || r.failures.len() > kept(r.max_failures) {
        return Err(format!(
            "{name}: {} failures listed, but {} seeds failed and at most {} are kept",
            r.failures.len(),
            r.failed(),
            kept(r.max_failures)
        ));
    }
    Ok(r)
}

/// Failures a report keeps for `--max-failures m`.
fn kept(max_failures: usize) -> usize {
    if max_failures > 0 {
        max_failures
    } else {
        MAX_FAILURES_KEPT
    }
}

/// Merge the reports of every shard of one sweep, `(name, report)` in any
/// order, into the report of the whole sweep.
pub fn merge(reports: &[(String, ReportFile)]) -> Result<ReportFile, String> {
    let Some((first_name, first)) = reports.first() else {
        return Err("no reports to merge".into());
    };
    let want = first.seeds;
    let mut by_shard: BTreeMap<u64, &str> = BTreeMap::new();
    for (name, r) in reports {
        let s = r.seeds;
        if (s.start, s.end, s.shards) != (want.start, want.end, want.shards) {
            return Err(format!(
                "{name}: seeds {}..{} in {} shards, but {first_name} has {}..{} in {} shards: \
                 only shards of one sweep merge",
                s.start, s.end, s.shards, want.start, want.end, want.shards
            ));
        }
        let settings = |r: &ReportFile| (r.bug, r.shrink, r.max_failures);
        if settings(r) != settings(first) {
            return Err(format!(
                "{name}: bug {}, shrink {}, max-failures {}, but {first_name} has bug {}, \
                 shrink {}, max-failures {}: only shards of one sweep merge",
                r.bug.map_or("none", Bug::name),
                r.shrink,
                r.max_failures,
                first.bug.map_or("none", Bug::name),
                first.shrink,
                first.max_failures
            ));
        }
        if let Some(other) = by_shard.insert(s.shard, name) {
            return Err(format!(
                "{name} and {other} are both shard {}/{}: overlapping shards",
                s.shard, s.shards
            ));
        }
    }
    let missing: Vec<String> = (1..=want.shards)
        .filter(|k| !by_shard.contains_key(k))
        .map(|k| format!("{k}/{}", want.shards))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "missing shard(s) {} of seeds {}..{}",
            missing.join(", "),
            want.start,
            want.end
        ));
    }
    let mut failures: BTreeMap<u64, serde_json::Value> = BTreeMap::new();
    for (_, r) in reports {
        for f in &r.failures {
            let seed = f["seed"].as_u64().expect("checked by parse_report");
            failures.insert(seed, f.clone());
        }
    }
    Ok(ReportFile {
        seeds: SeedRange {
            shard: 1,
            shards: 1,
            ..want
        },
        seeds_run: reports.iter().map(|(_, r)| r.seeds_run).sum(),
        passed: reports.iter().map(|(_, r)| r.passed).sum(),
        bug: first.bug,
        jobs: reports.iter().map(|(_, r)| r.jobs).sum(),
        shrink: first.shrink,
        max_failures: first.max_failures,
        failures: failures
            .into_values()
            .take(kept(first.max_failures))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(shard: u64, shards: u64, passed: u64, failing: &[u64]) -> (String, ReportFile) {
        let set = SeedSet::new(0, 10, Some((shard, shards)));
        (
            format!("shard{shard}.json"),
            ReportFile {
                seeds: set.range(),
                seeds_run: set.len(),
                passed,
                bug: None,
                jobs: 2,
                shrink: true,
                max_failures: 2,
                failures: failing
                    .iter()
                    .map(|s| serde_json::json!({ "seed": s }))
                    .collect(),
            },
        )
    }

    #[test]
    fn merges_counts_and_keeps_the_smallest_failing_seeds() {
        // 0..10 in 2 shards: 0 2 4 6 8 and 1 3 5 7 9.
        let m = merge(&[report(2, 2, 3, &[3, 5]), report(1, 2, 4, &[8])]).unwrap();
        assert_eq!((m.seeds_run, m.passed, m.jobs), (10, 7, 4));
        assert_eq!((m.seeds.shard, m.seeds.shards), (1, 1));
        let seeds: Vec<u64> = m
            .failures
            .iter()
            .map(|f| f["seed"].as_u64().unwrap())
            .collect();
        assert_eq!(seeds, [3, 5], "max_failures 2 keeps the two smallest");
    }

    #[test]
    fn refuses_missing_overlapping_and_mismatched_shards() {
        let e = merge(&[report(1, 3, 4, &[])]).unwrap_err();
        assert!(e.contains("missing shard(s) 2/3, 3/3"), "{e}");
        let e = merge(&[report(1, 2, 5, &[]), report(1, 2, 5, &[])]).unwrap_err();
        assert!(e.contains("both shard 1/2"), "{e}");
        let e = merge(&[report(1, 2, 5, &[]), report(2, 3, 3, &[])]).unwrap_err();
        assert!(e.contains("only shards of one sweep"), "{e}");
        let mut other = report(2, 2, 5, &[]);
        other.1.bug = Some(Bug::SkipFinalSync);
        let e = merge(&[report(1, 2, 5, &[]), other]).unwrap_err();
        assert!(
            e.contains(
                "bug skip-final-sync, shrink true, max-failures 2, but shard1.json has bug none"
            ),
            "{e}"
        );
    }

    #[test]
    fn parse_refuses_reports_that_do_not_add_up() {
        let (_, r) = report(1, 2, 5, &[]);
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(parse_report("a", &text).unwrap(), r);
        let short = text.replace("\"seeds_run\":5", "\"seeds_run\":4");
        assert!(
            parse_report("a", &short)
                .unwrap_err()
                .contains("has 5 seeds")
        );
        let (_, mut f) = report(1, 2, 4, &[3]);
        f.passed = 4;
        let text = serde_json::to_string(&f).unwrap();
        let e = parse_report("a", &text).unwrap_err();
        assert!(e.contains("failure 3 is not a seed of shard 1/2"), "{e}");
        let e = parse_report("b.json", "{\"seeds_run\": 3}").unwrap_err();
        assert!(
            e.starts_with("b.json: not a `migsim explore --json` report"),
            "{e}"
        );
    }
}
