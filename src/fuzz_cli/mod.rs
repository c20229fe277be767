//! The body of the `cli` fuzz target (`fuzz/fuzz_targets/cli.rs`, feature
//! `fuzz-cli`): any scenario text and any command line must end the way
//! `migsim` promises, exit 0, 1 or 2, in bounded time and memory; never a
//! panic or an abort. This file holds the entry points and the order of
//! things; the parts, one job each:
//!
//! * [`model`]: the command line as clap describes it (every command
//!   path, flag spelling and value kind, from [`Args::command`]);
//! * [`input`], [`toml`] and [`argv`]: the structured input, its scenario
//!   document rendered as TOML, its command line as words;
//! * [`confine`]: the per-thread directory and the confinement of paths;
//! * [`oracle`]: what is checked.
//!
//! An input is either
//!
//! * raw (first byte anything but 0): the whole input is a scenario file,
//!   and a last line `#!argv WORD...` (a TOML comment, so the file stays a
//!   scenario file) gives the command line; without it, `run SCENARIO`;
//! * structured (first byte 0): a [`CliInput`] decoded from the rest as
//!   libfuzzer-sys would: a scenario built from typed fields, every key of
//!   the schema with good and hostile values (huge, zero, negative, NaN,
//!   sizes like `"1048576G"`, names with `/`, `..`, control characters,
//!   empty or 300 bytes, duplicate blocks, unknown keys, wrong types),
//!   rendered to TOML and then optionally byte-mutated or truncated; and a
//!   command line for one command path of the model (`run @scenario` for
//!   the tame inputs) built from its flags (now and then any command's,
//!   or an unknown one) with good and hostile values of each flag's kind.
//!
//! Every path on the command line is confined to one temporary directory
//! per thread ([`confine::confine`]), emptied before each input: a word
//! that clap could read as a path is replaced by a path inside it,
//! `@scenario` by the scenario file and `@dir` by the directory; the
//! oracle checks clap's reading ([`oracle::check_paths_inside`]).
//!
//! Then: the scenario text alone through [`Scenario::from_toml`]: when it
//! is accepted, what validation promises must hold
//! ([`oracle::check_scenario_text`]). And the command line through clap
//! (an error is exit 2) and [`Args::resolve`] (an error is exit 2). A
//! resolved `run` whose [`limits::bounds`] are small enough for one fuzz
//! iteration ([`RUN_MAX_SENDS`], [`RUN_MAX_PAGES`],
//! [`RUN_MAX_GUEST_WRITES`], [`RUN_MAX_BLOCKS`], [`RUN_MAX_CHANNELS`]) is
//! run in-process without printing, as `migsim run` would: an environment
//! error is exit 2; otherwise the report must agree with itself
//! ([`oracle::check_report`]) and the expectations are checked (exit 0 or
//! 1). Every other command is only parsed and resolved, never executed:
//! `qemu run`, `qemu replay`, `qemu fuzz` and `report --qemu-run` start
//! QEMU; explore, faults, replay, report and bench are too slow for a
//! fuzz iteration; inspect and extract have targets of their own; merge
//! reads reports. (Resolving creates and probes output directories, all
//! confined, and loads scenario files.)

pub mod argv;
pub mod cli_input;
pub mod confine;
pub mod input;
pub mod model;
pub mod oracle;
pub mod toml;

use std::ffi::OsString;
use std::path::Path;

use arbitrary::{Arbitrary, Unstructured};
use clap::{CommandFactory, FromArgMatches};

use migsim_harness::limits;
use migsim_harness::run::{check_expectations, run};
#[cfg(doc)]
use migsim_harness::scenario::Scenario;

use crate::cli::{Args, Command};

pub use self::cli_input::CliInput;
pub use self::confine::confine;

/// A `run` is executed only if it sends at most this many pages (the
/// sequential file then takes at most about 140 MiB)...
pub const RUN_MAX_SENDS: u64 = 1 << 15;
/// ... has at most this many guest pages (32 MiB)...
pub const RUN_MAX_PAGES: u64 = 1 << 13;
/// ... makes at most this many guest writes.
pub const RUN_MAX_GUEST_WRITES: u64 = 1 << 18;
/// ... has at most this many blocks (guest and destination each).
pub const RUN_MAX_BLOCKS: usize = 64;
/// ... uses at most this many channels (threads).
pub const RUN_MAX_CHANNELS: usize = 8;

/// The exit status `migsim` would end with (never a panic).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Success.
    Ok,
    /// A verdict or expectation differed.
    Differed,
    /// Bad input, usage or environment.
    Usage,
    /// Resolved, but not executed here (another command, or not small
    /// enough).
    NotRun,
}

/// The raw-bytes entry point (what the fuzz target and `cargo test` call).
pub fn cli_bytes(data: &[u8]) {
    let _ = cli_exit(data);
}

/// [`cli_bytes`], returning the exit status.
pub fn cli_exit(data: &[u8]) -> Exit {
    match request(data) {
        Some((text, words)) => drive(&text, &words),
        None => Exit::NotRun,
    }
}

/// What an input asks for: the scenario file's bytes and the command
/// line's words (before [`confine()`]); `None` for a structured input that
/// does not decode.
pub fn request(data: &[u8]) -> Option<(Vec<u8>, Vec<String>)> {
    match data.split_first() {
        Some((0, rest)) => {
            let input = CliInput::arbitrary_take_rest(Unstructured::new(rest)).ok()?;
            Some(structured(&input))
        }
        _ => Some(raw(data)),
    }
}

/// A structured input.
pub fn cli(input: &CliInput) -> Exit {
    let (text, words) = structured(input);
    drive(&text, &words)
}

fn structured(input: &CliInput) -> (Vec<u8>, Vec<String>) {
    let mut text = input.scenario.render().into_bytes();
    for m in input.mutations.0.iter().flatten().take(8) {
        m.apply(&mut text);
    }
    (text, input.argv.words())
}

/// A raw input: a scenario file, maybe with a `#!argv` line.
fn raw(data: &[u8]) -> (Vec<u8>, Vec<String>) {
    let text = String::from_utf8_lossy(data);
    let words: Vec<String> = match text.lines().rev().find_map(|l| l.strip_prefix("#!argv")) {
        Some(line) => line.split_whitespace().map(str::to_string).collect(),
        None => vec!["run".into(), "@scenario".into()],
    };
    (data.to_vec(), words)
}

/// `argv` through clap as `migsim` parses it; its paths checked.
fn parse(argv: Vec<OsString>, dir: &Path) -> Option<Args> {
    let mut cmd = Args::command();
    let mut matches = cmd.try_get_matches_from_mut(argv).ok()?;
    oracle::check_paths_inside(&cmd, &matches, dir);
    Args::from_arg_matches_mut(&mut matches).ok()
}

fn drive(text: &[u8], words: &[String]) -> Exit {
    let dir = confine::work_dir();
    let scenario_file = dir.join("scenario.toml");
    std::fs::write(&scenario_file, text).expect("write the scenario into the fuzz directory");
    if let Ok(t) = std::str::from_utf8(text) {
        oracle::check_scenario_text(t);
    }
    let argv = confine(words, &dir, &scenario_file);
    let Some(args) = parse(argv, &dir) else {
        return Exit::Usage;
    };
    let c = match args.resolve() {
        Ok(Command::Run(c)) => c,
        // Never executed here (see the module docs).
        Ok(
            Command::QemuRun { .. }
            | Command::QemuReplay { .. }
            | Command::QemuFuzz { .. }
            | Command::QemuReport { .. }
            | Command::Explore { .. }
            | Command::Faults { .. }
            | Command::Replay { .. }
            | Command::Report { .. }
            | Command::Bench { .. }
            | Command::Inspect { .. }
            | Command::Extract { .. }
            | Command::Merge { .. },
        ) => return Exit::NotRun,
        Err(_) => return Exit::Usage,
    };
    oracle::check_run_config_inside(&c, &dir);
    let s = &c.scenario;
    let b = limits::bounds(s);
    let blocks = s
        .guest
        .blocks
        .len()
        .max(s.destination.blocks.as_ref().map_or(0, Vec::len));
    if b.sends > RUN_MAX_SENDS
        || b.pages > RUN_MAX_PAGES
        || b.guest_writes > RUN_MAX_GUEST_WRITES
        || blocks > RUN_MAX_BLOCKS
        || c.options.channels > RUN_MAX_CHANNELS
    {
        return Exit::NotRun;
    }
    let report = run(s, &c.options);
    if report.environment_error.is_some() {
        return Exit::Usage;
    }
    oracle::check_report(&c, &report);
    if check_expectations(s, &report).is_empty() {
        Exit::Ok
    } else {
        Exit::Differed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `fuzz/cli.dict` holds every subcommand name, flag spelling and bug
    /// name of the command line: raw inputs spell their `#!argv` out.
    #[test]
    fn the_dictionary_names_every_command_flag_and_bug() {
        let dict =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/cli.dict"))
                .expect("fuzz/cli.dict");
        let entries: std::collections::BTreeSet<&str> = dict.lines().collect();
        let m = model::model();
        let words = m
            .commands
            .iter()
            .flat_map(|c| c.path.iter().chain(c.flags.iter().map(|f| &f.word)))
            .map(String::as_str)
            .chain(model::bug_names().iter().copied());
        let mut missing: Vec<String> = words
            .map(|w| format!("\"{w}\""))
            .filter(|e| !entries.contains(e.as_str()))
            .collect();
        missing.sort();
        missing.dedup();
        assert!(
            missing.is_empty(),
            "fuzz/cli.dict lacks (one a line):\n{}",
            missing.join("\n")
        );
    }

    #[test]
    fn checked_in_scenarios_replay_in_raw_mode() {
        // Every checked-in scenario either runs and meets its expectations
        // or is too big to run here.
        for f in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")).unwrap()
        {
            let p = f.unwrap().path();
            if p.extension().is_some_and(|e| e == "toml") {
                let got = cli_exit(&std::fs::read(&p).unwrap());
                assert!(
                    matches!(got, Exit::Ok | Exit::NotRun),
                    "{}: {got:?}",
                    p.display()
                );
            }
        }
    }

    /// Every command (but clap's `help` ones and those that only group
    /// others) parses with what it requires, as a picked command gets it:
    /// the tame inputs reach `resolve` for every command.
    #[test]
    fn every_command_parses_with_what_it_requires() {
        let m = model::model();
        let dir = confine::work_dir();
        let scenario = dir.join("scenario.toml");
        let mut n = 0;
        for c in m.commands[..m.user]
            .iter()
            .filter(|c| c.children.is_empty())
        {
            let mut words = c.path.clone();
            words.extend(c.required.iter().cloned());
            let argv = confine(&words, &dir, &scenario);
            assert!(parse(argv, &dir).is_some(), "migsim {}", words.join(" "));
            n += 1;
        }
        assert!(n >= 12, "{n} commands");
        let required = |p: &str| {
            let path: Vec<String> = p.split_whitespace().map(str::to_string).collect();
            m.command(&path).unwrap().required.join(" ")
        };
        assert_eq!(required("explore"), "--seeds 0..1");
        assert_eq!(required("faults"), "@scenario");
        assert_eq!(
            required("extract"),
            "@scenario --block pc.ram --output @dir"
        );
        assert_eq!(required("run"), "");
    }

    /// The run flags the hand-kept tables lacked are executed: a durable
    /// save with the integrity trailer passes, an injected write error
    /// ends in verdict error (the scenario expected pass), the extent
    /// mode passes.
    #[test]
    fn the_durable_integrity_fault_and_extent_flags_run() {
        let text = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/zero-after-data.toml"),
        )
        .unwrap();
        for (argv, want) in [
            ("--durable --integrity", Exit::Ok),
            ("--fail-write fixed-ram:3:eio", Exit::Differed),
            (
                "--fail-write sequential:0:enospc --channels 2",
                Exit::Differed,
            ),
            ("--extents --writers fixed-ram", Exit::Ok),
        ] {
            let mut t = text.clone();
            t.extend_from_slice(format!("\n#!argv run @scenario {argv}\n").as_bytes());
            assert_eq!(cli_exit(&t), want, "{argv}");
        }
    }

    #[test]
    fn a_checked_in_scenario_runs_in_raw_mode() {
        let text = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/destination-fixed-ram-on.toml"),
        )
        .unwrap();
        assert_eq!(cli_exit(&text), Exit::Ok);
        let mut t = text.clone();
        t.extend_from_slice(b"\n#!argv run @scenario --seed 5 --writers sequential\n");
        assert_eq!(cli_exit(&t), Exit::Ok);
        let mut t = text.clone();
        t.extend_from_slice(b"\n#!argv run @scenario --writers fixed-ram\n");
        assert_eq!(cli_exit(&t), Exit::Differed, "another error message");
        let mut t = text;
        t.extend_from_slice(b"\n#!argv run @scenario --channels 65\n");
        assert_eq!(cli_exit(&t), Exit::Usage);
    }
}
