//! `migsim merge`: the reports of `explore --shard K/N --json` merged
//! into the report of the unsplit sweep, and the shard sets it refuses.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{migsim, stderr, stdout};

/// `explore --seeds 0..60 --dry-run --json` with `extra` flags, written to
/// `dir/name`; the exit code and the report.
fn explore(dir: &Path, name: &str, extra: &[&str]) -> (i32, PathBuf, Value) {
    let mut args = vec!["explore", "--seeds", "0..60", "--dry-run", "--json"];
    args.extend_from_slice(extra);
    let o = migsim(&args);
    let path = dir.join(name);
    std::fs::write(&path, &o.stdout).unwrap();
    let v: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", stderr(&o)));
    (o.status.code().unwrap(), path, v)
}

/// Everything but `jobs` (threads per machine, summed by merge).
fn summary(mut v: Value) -> Value {
    v.as_object_mut().unwrap().remove("jobs");
    v
}

/// The sweep unsplit, and split in 3 shards merged (given out of order):
/// the same report, field for field, and the same exit code.
fn merged_equals_unsharded(extra: &[&str], want_code: i32) {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, whole) = explore(dir.path(), "whole.json", extra);
    assert_eq!(code, want_code, "explore unsharded {extra:?}");
    let mut shards = Vec::new();
    for k in [3, 1, 2] {
        let mut flags = extra.to_vec();
        let shard = format!("{k}/3");
        flags.extend(["--shard", shard.as_str()]);
        let (_, path, v) = explore(dir.path(), &format!("shard{k}.json"), &flags);
        assert_eq!(v["seeds"]["shard"], k);
        assert!(v["seeds_run"].as_u64().unwrap() == 20, "{v}");
        shards.push(path.to_str().unwrap().to_string());
    }
    let mut args = vec!["merge", "--json"];
    args.extend(shards.iter().map(String::as_str));
    let o = migsim(&args);
    assert_eq!(o.status.code(), Some(want_code), "{}", stderr(&o));
    let merged: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary(merged.clone()), summary(whole.clone()));
    assert_eq!(merged["seeds_run"], 60);

    // The summary for people says the same.
    let o = migsim(&["merge", &shards[0], &shards[1], &shards[2]]);
    let failed = 60 - whole["passed"].as_u64().unwrap();
    let line = format!(
        "60 seeds, {} passed, {failed} failed",
        whole["passed"].as_u64().unwrap()
    );
    assert!(stdout(&o).contains(&line), "{}", stdout(&o));
}

#[test]
fn merged_shards_equal_the_unsharded_sweep() {
    merged_equals_unsharded(&[], 0);
}

#[test]
fn merged_shards_keep_the_smallest_failures_of_the_unsharded_sweep() {
    // Fails about half the seeds: each shard keeps its 4 smallest, the
    // merge the 4 smallest of all, shrunk the same way.
    let flags = ["--bug", "skip-final-sync", "--max-failures", "4"];
    merged_equals_unsharded(&flags, 1);
}

#[test]
fn merge_refuses_missing_overlapping_and_mismatched_shards() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let p = |v: &(i32, PathBuf, Value)| v.1.to_str().unwrap().to_string();
    let s1 = p(&explore(d, "1.json", &["--shard", "1/2"]));
    let s2 = p(&explore(d, "2.json", &["--shard", "2/2"]));
    let s3 = p(&explore(d, "3of3.json", &["--shard", "3/3"]));
    let bug = p(&explore(
        d,
        "bug.json",
        &["--shard", "2/2", "--bug", "skip-final-sync"],
    ));
    let o = migsim(&[
        "explore",
        "--seeds",
        "0..61",
        "--dry-run",
        "--json",
        "--shard",
        "2/2",
    ]);
    let other_range = d.join("range.json");
    std::fs::write(&other_range, &o.stdout).unwrap();
    let other_range = other_range.to_str().unwrap().to_string();
    let not_json = d.join("notes.txt");
    std::fs::write(&not_json, "explore: 60 seeds\n").unwrap();
    let not_json = not_json.to_str().unwrap().to_string();
    let mut edited: Value = serde_json::from_str(&std::fs::read_to_string(&s2).unwrap()).unwrap();
    edited["seeds_run"] = 29.into();
    let edited_path = d.join("edited.json");
    std::fs::write(&edited_path, edited.to_string()).unwrap();
    let edited_path = edited_path.to_str().unwrap().to_string();
    let [s1, s2, s3, bug, other_range, not_json, edited_path] =
        [&s1, &s2, &s3, &bug, &other_range, &not_json, &edited_path].map(String::as_str);

    for (args, phrase) in [
        (vec![s1], "missing shard(s) 2/2 of seeds 0..60"),
        (vec![s1, s2, s1], "are both shard 1/2: overlapping shards"),
        (vec![s1, s3], "in 3 shards, but"),
        (vec![s1, other_range], "seeds 0..61 in 2 shards, but"),
        (vec![s1, bug], "has bug none"),
        (vec![s1, not_json], "not a `migsim explore --json` report"),
        (vec![s1, edited_path], "29 seeds run"),
        (vec![s1, d.to_str().unwrap()], "is a directory"),
    ] {
        let mut argv = vec!["merge"];
        argv.extend(args);
        let o = migsim(&argv);
        assert_eq!(o.status.code(), Some(2), "{argv:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(phrase), "{argv:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
        assert!(o.stdout.is_empty(), "{argv:?} printed {}", stdout(&o));
    }
}
