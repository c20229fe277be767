//! What the `cli` target checks, besides "no panic, no hang": the
//! promises of scenario validation on any text it accepts
//! ([`check_scenario_text`]); that clap's reading of a confined command
//! line holds no path outside the fuzz directory
//! ([`check_paths_inside`]); that a resolved `run` writes only there
//! ([`check_run_config_inside`]); and that an executed run's report is
//! consistent ([`check_report`]).

use std::path::{Component, Path};

use clap::ArgMatches;
use clap::parser::ValueSource;

use migsim_harness::limits;
use migsim_harness::run::RunReport;
use migsim_harness::scenario::{Scenario, Verdict};

use super::model;
use crate::cli::RunConfig;

/// Every value clap read from the command line for an argument that is a
/// path to [`model::kind`] (positionals, path flags, and anything not
/// known to be something else) lies inside `dir`: under it, no `..`.
/// `cmd` is the command `m` was matched with (recursively, its
/// subcommands). Defaults are not checked: no command the target
/// executes has a path default.
pub fn check_paths_inside(cmd: &clap::Command, m: &ArgMatches, dir: &Path) {
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        if !model::kind(arg).is_path() || m.value_source(id) != Some(ValueSource::CommandLine) {
            continue;
        }
        for v in m.get_raw(id).into_iter().flatten() {
            let p = Path::new(v);
            assert!(
                p.starts_with(dir) && p.components().all(|c| c != Component::ParentDir),
                "`migsim {}` reads {} from the command line as {id}: outside the fuzz directory {}",
                cmd.get_name(),
                p.display(),
                dir.display()
            );
        }
    }
    if let Some((name, sub)) = m.subcommand()
        && let Some(c) = cmd.find_subcommand(name)
    {
        check_paths_inside(c, sub, dir);
    }
}

/// An executed run's report agrees with itself: `pass` exactly without a
/// failed invariant or an error, `fail` only with a failed invariant and
/// a `--bug` injected, `error` with a message; a 64-hex digest.
pub fn check_report(c: &RunConfig, report: &RunReport) {
    let s = &c.scenario;
    let failed: Vec<String> = report
        .invariants
        .iter()
        .filter(|i| !i.ok)
        .map(|i| format!("{:?} ({:?}): {}", i.name, i.writer, i.detail))
        .collect();
    let story = || {
        format!(
            "scenario:\n{}\nfailed invariants: {failed:?}\nerror: {:?}",
            s.to_toml().unwrap_or_else(|e| format!("(to_toml: {e})")),
            report.error
        )
    };
    match report.verdict {
        Verdict::Pass => assert!(
            failed.is_empty() && report.error.is_none(),
            "verdict pass with a failed invariant or an error; {}",
            story()
        ),
        Verdict::Fail => {
            assert!(
                !failed.is_empty(),
                "verdict fail without a failed invariant; {}",
                story()
            );
            assert!(
                c.options.bug.is_some(),
                "verdict fail with no --bug injected; {}",
                story()
            );
        }
        Verdict::Error => assert!(
            report.error.is_some(),
            "verdict error without a message; {}",
            story()
        ),
    }
    assert!(
        is_hex64(&report.digest),
        "run digest {:?} is not 64 hex digits",
        report.digest
    );
}

/// Whether `d` is 64 lower-case hex digits.
pub fn is_hex64(d: &str) -> bool {
    d.len() == 64 && d.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// The promises of [`Scenario::validate`], checked on whatever it accepted.
pub fn check_scenario_text(text: &str) {
    let Ok(s) = Scenario::from_toml(text) else {
        return;
    };
    let name_ok = !s.name.is_empty()
        && s.name.len() <= 128
        && !s.name.starts_with('.')
        && s.name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'));
    assert!(
        name_ok,
        "accepted name {:?} is not a safe file name",
        s.name
    );
    let lists = std::iter::once(("guest.blocks", &s.guest.blocks)).chain(
        s.destination
            .blocks
            .as_ref()
            .map(|d| ("destination.blocks", d)),
    );
    let max_ram = limits::max_guest_ram(&s);
    for (field, blocks) in lists {
        assert!(
            !blocks.is_empty() && blocks.len() <= limits::MAX_BLOCKS,
            "accepted {field} with {} blocks",
            blocks.len()
        );
        let mut total = 0u64;
        let mut names = std::collections::HashSet::new();
        for b in blocks {
            assert!(
                b.size.0 > 0 && b.size.0.is_multiple_of(4096) && b.size.0 <= max_ram,
                "accepted {field} block {:?} of size {}",
                b.name,
                b.size.0
            );
            assert!(
                !b.name.is_empty() && b.name.len() <= 255 && names.insert(b.name.as_str()),
                "accepted {field} block name {:?} (empty, too long or twice)",
                b.name
            );
            total = total.checked_add(b.size.0).expect("block sizes overflow");
        }
        assert!(total <= max_ram, "accepted {field} of {total} bytes in all");
    }
    if let Err(e) = limits::check_scenario(&s) {
        panic!("accepted scenario fails limits::check_scenario: {e}");
    }
    assert!(
        s.parameters.max_passes >= 1 && s.parameters.max_passes <= limits::MAX_PASSES,
        "accepted max_passes {}",
        s.parameters.max_passes
    );
    assert!(s.parameters.bandwidth > 0, "accepted bandwidth 0");
    if let Some(d) = &s.expect.digest {
        assert!(is_hex64(d), "accepted digest {d:?}");
    }
    if let Some(r) = s.expect.min_sequential_ram_ratio {
        assert!(r.is_finite() && r >= 0.0, "accepted ratio {r}");
    }
    let w = &s.workload;
    for (what, v) in [
        ("initial_fill", s.guest.initial_fill),
        ("hot_fraction", w.hot_fraction),
        ("hot_share", w.hot_share),
        ("zero_share", w.zero_share),
    ] {
        assert!((0.0..=1.0).contains(&v), "accepted {what} = {v}");
    }
    assert!(
        !s.migration.writers.is_empty(),
        "accepted a scenario without writers"
    );
    assert_eq!(
        matches!(s.expect.verdict, Verdict::Error),
        s.expect.error.is_some(),
        "accepted expect.error {:?} with verdict {}",
        s.expect.error,
        s.expect.verdict.name()
    );
    let again = s
        .to_toml()
        .unwrap_or_else(|e| panic!("accepted scenario does not serialize: {e}"));
    match Scenario::from_toml(&again) {
        Ok(back) => assert_eq!(back, s, "to_toml does not read back the same:\n{again}"),
        Err(e) => panic!("to_toml's text is refused: {e}\n{again}"),
    }
}

/// Every path a resolved `run` writes to is inside the fuzz directory.
pub fn check_run_config_inside(c: &RunConfig, dir: &Path) {
    for p in c.out.iter().chain(c.options.file_dir.iter()) {
        assert!(p.starts_with(dir), "run writes to {} outside", p.display());
    }
}
