//! The body of the `cli` fuzz target (`fuzz/fuzz_targets/cli.rs`): any
//! scenario text and any command line must end the way `migsim` promises,
//! exit 0, 1 or 2, in bounded time and memory; never a panic or an abort.
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
//!   command line for one subcommand built from every flag with good and
//!   hostile values.
//!
//! Every path on the command line is confined to one temporary directory
//! per thread ([`confine`]), emptied before each input: a word that clap
//! could read as a path (a positional, a path flag's value, anything after
//! `--`, a short flag with a value attached) is replaced by a path inside
//! it, `@scenario` by the scenario file and `@dir` by the directory.
//!
//! Then: the scenario text alone through [`Scenario::from_toml`]: when it
//! is accepted, what validation promises must hold (a file-name-safe name,
//! block sizes and counts within [`limits`], the limits' own check, a
//! 64-hex digest, a finite non-negative ratio, every fraction in 0..=1,
//! and `to_toml` reads back as the same scenario). And the command line
//! through clap ([`Args::parse_from_args`]; an error is exit 2) and
//! [`Args::resolve`] (an error is exit 2). A resolved `run` whose
//! [`limits::bounds`] are small enough for one fuzz iteration
//! ([`RUN_MAX_SENDS`], [`RUN_MAX_PAGES`], [`RUN_MAX_GUEST_WRITES`],
//! [`RUN_MAX_BLOCKS`], [`RUN_MAX_CHANNELS`]) is run
//! in-process without printing, as `migsim run` would: an environment
//! error is exit 2; otherwise the verdict must agree with the report
//! (a message with verdict error, none with pass; `fail` exactly when an invariant
//! failed, never `fail` without `--bug`), the digest is 64 hex digits, and
//! the expectations are checked (exit 0 or 1). Other commands are only
//! resolved: explore, replay, report and bench bodies are too slow for a
//! fuzz iteration, and inspect and extract have targets of their own.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use arbitrary::{Arbitrary, Unstructured};

use migsim_harness::limits;
use migsim_harness::run::{check_expectations, run};
use migsim_harness::scenario::{Scenario, Verdict};

use crate::cli::{Args, Command};

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
    /// Resolved, but not executed here (too slow, or not small enough).
    NotRun,
}

/// The raw-bytes entry point (what `cargo test` replays).
pub fn cli_bytes(data: &[u8]) {
    let _ = cli_exit(data);
}

/// [`cli_bytes`], returning the exit status.
pub fn cli_exit(data: &[u8]) -> Exit {
    match data.split_first() {
        Some((0, rest)) => {
            let Ok(input) = CliInput::arbitrary_take_rest(Unstructured::new(rest)) else {
                return Exit::NotRun;
            };
            cli(&input)
        }
        _ => raw(data),
    }
}

/// A structured input.
pub fn cli(input: &CliInput) -> Exit {
    let mut text = input.scenario.render().into_bytes();
    for m in input.mutations.0.iter().flatten().take(8) {
        m.apply(&mut text);
    }
    let words = input.argv.words();
    drive(&text, &words)
}

/// A raw input: a scenario file, maybe with a `#!argv` line.
fn raw(data: &[u8]) -> Exit {
    let text = String::from_utf8_lossy(data);
    let words: Vec<String> = match text.lines().rev().find_map(|l| l.strip_prefix("#!argv")) {
        Some(line) => line.split_whitespace().map(str::to_string).collect(),
        None => vec!["run".into(), "@scenario".into()],
    };
    drive(data, &words)
}

fn drive(text: &[u8], words: &[String]) -> Exit {
    let dir = work_dir();
    let scenario_file = dir.join("scenario.toml");
    std::fs::write(&scenario_file, text).expect("write the scenario into the fuzz directory");
    if let Ok(t) = std::str::from_utf8(text) {
        check_scenario_text(t);
    }
    let argv = confine(words, &dir, &scenario_file);
    let args = match Args::parse_from_args(argv) {
        Ok(a) => a,
        Err(_) => return Exit::Usage,
    };
    let cmd = match args.resolve() {
        Ok(c) => c,
        Err(_) => return Exit::Usage,
    };
    let Command::Run(c) = cmd else {
        return Exit::NotRun;
    };
    check_run_config_inside(&c, &dir);
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
    if check_expectations(s, &report).is_empty() {
        Exit::Ok
    } else {
        Exit::Differed
    }
}

fn is_hex64(d: &str) -> bool {
    d.len() == 64 && d.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// The promises of [`Scenario::validate`], checked on whatever it accepted.
fn check_scenario_text(text: &str) {
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
fn check_run_config_inside(c: &crate::cli::RunConfig, dir: &Path) {
    for p in c.out.iter().chain(c.options.file_dir.iter()) {
        assert!(p.starts_with(dir), "run writes to {} outside", p.display());
    }
}

// ---------------------------------------------------------------------
// The directory and the confinement of paths.

thread_local! {
    static DIR: WorkDir = WorkDir::new();
}

struct WorkDir(PathBuf);

impl WorkDir {
    fn new() -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("migsim-fuzz-cli-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the fuzz directory");
        // Canonical, so a path inside it can be compared with starts_with.
        WorkDir(dir.canonicalize().expect("canonicalize the fuzz directory"))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// This thread's directory, emptied.
fn work_dir() -> PathBuf {
    DIR.with(|d| {
        if let Ok(entries) = std::fs::read_dir(&d.0) {
            for e in entries.flatten() {
                let p = e.path();
                // file_type does not follow links: a link is removed, not
                // what it points to.
                let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
                let _ = if is_dir {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
            }
        }
        d.0.clone()
    })
}

/// Subcommand names (kept as they are in the subcommand's place).
const SUBCOMMANDS: [&str; 9] = [
    "run", "replay", "explore", "merge", "inspect", "extract", "report", "bench", "help",
];
/// Flags whose value is a path.
const PATH_FLAGS: [&str; 6] = [
    "--out",
    "--file-dir",
    "--regressions",
    "--output",
    "-o",
    "--dir",
];
/// Flags with a value that is not a path.
const VALUE_FLAGS: [&str; 13] = [
    "--seed",
    "--bug",
    "--ram",
    "--writers",
    "--channels",
    "--seeds",
    "--jobs",
    "--shard",
    "--max-failures",
    "--block",
    "--size",
    "--reps",
    "--only",
];
/// Flags without a value.
const SWITCHES: [&str; 10] = [
    "--json",
    "--direct-io",
    "--no-shrink",
    "--dry-run",
    "--bless",
    "--no-qemu",
    "--help",
    "--version",
    "-h",
    "-V",
];

/// The argv clap gets for `words`: the program name, then each word,
/// where every word clap could take as a path is a path inside `dir`.
///
/// Kept as they are: the subcommand in its place; known flags; the value
/// after a flag whose value is not a path; `--flag=value` for such flags;
/// unknown `--long` flags (clap refuses them). Everything else (the
/// positionals, a path flag's value, anything after `--`, single-dash
/// words other than `-o`, `-h`, `-V`, which clap could read as `-o` with
/// a value attached) becomes `dir/<word>` with its empty, `.` and `..`
/// components dropped (so it cannot leave `dir`, and it starts with `/`,
/// so it is never a flag); `@scenario` is the scenario file and `@dir`
/// the directory itself.
pub fn confine(words: &[String], dir: &Path, scenario: &Path) -> Vec<OsString> {
    let inside = |w: &str| -> OsString {
        match w {
            "@scenario" => return scenario.into(),
            "@dir" => return dir.into(),
            _ => {}
        }
        let mut p = dir.to_path_buf();
        for c in w.split('/') {
            if !matches!(c, "" | "." | "..") {
                p.push(c);
            }
        }
        p.into()
    };
    let mut out: Vec<OsString> = vec!["migsim".into()];
    let mut sub_seen = false;
    let mut positional_only = false;
    let mut next_is_value = false;
    let mut next_is_path = false;
    for w in words {
        let w = w.as_str();
        if positional_only || next_is_path {
            out.push(inside(w));
            next_is_path = false;
            continue;
        }
        if next_is_value {
            out.push(w.into());
            next_is_value = false;
            continue;
        }
        if !sub_seen && SUBCOMMANDS.contains(&w) {
            sub_seen = true;
            out.push(w.into());
            continue;
        }
        if w == "--" {
            positional_only = true;
            out.push(w.into());
            continue;
        }
        if PATH_FLAGS.contains(&w) {
            next_is_path = true;
            out.push(w.into());
            continue;
        }
        if VALUE_FLAGS.contains(&w) {
            next_is_value = true;
            out.push(w.into());
            continue;
        }
        if SWITCHES.contains(&w) {
            out.push(w.into());
            continue;
        }
        if let Some(rest) = w.strip_prefix("--") {
            match rest.split_once('=') {
                Some((f, v)) if PATH_FLAGS.contains(&format!("--{f}").as_str()) => {
                    let mut o = OsString::from(format!("--{f}="));
                    o.push(inside(v));
                    out.push(o);
                }
                // A value flag's or a switch's value, or an unknown flag.
                _ => out.push(w.into()),
            }
            continue;
        }
        out.push(inside(w));
    }
    out
}

// ---------------------------------------------------------------------
// The structured input.

/// A structured input: a scenario, byte mutations of its text, a command
/// line. Decoding starts with a hostility level (0 to 63, from the first
/// byte): each weighted choice ([`F`], [`Rare`], [`Often`], [`Int`],
/// [`Text`], ...) takes its tame first variant unless a byte drawn for it
/// is below the level, so a quarter of the inputs or so are nearly valid
/// scenarios that run, and the rest are hostile to a degree.
#[derive(Debug)]
pub struct CliInput {
    /// The hostility level it was decoded with.
    pub level: u8,
    /// The scenario document.
    pub scenario: Doc,
    /// Applied in order to the rendered text (at most 8; one input in 8
    /// has any).
    pub mutations: Rare<Vec<TextMutation>>,
    /// The command line.
    pub argv: Argv,
}

/// A byte-level change of the rendered TOML.
#[derive(Arbitrary, Debug)]
pub enum TextMutation {
    /// Keep this many bytes (modulo the length + 1).
    Truncate(u16),
    /// Overwrite a byte.
    Set(u16, u8),
    /// Insert bytes.
    Insert(u16, Vec<u8>),
    /// Delete up to 16 bytes.
    Delete(u16, u8),
    /// Repeat a line (a duplicate key or table).
    DuplicateLine(u16),
}

impl TextMutation {
    fn apply(&self, t: &mut Vec<u8>) {
        let at = |p: u16, t: &Vec<u8>| usize::from(p) % (t.len() + 1);
        match self {
            TextMutation::Truncate(n) => {
                let n = at(*n, t);
                t.truncate(n);
            }
            TextMutation::Set(p, b) => {
                if !t.is_empty() {
                    let i = usize::from(*p) % t.len();
                    t[i] = *b;
                }
            }
            TextMutation::Insert(p, bytes) => {
                let i = at(*p, t);
                let bytes = &bytes[..bytes.len().min(64)];
                t.splice(i..i, bytes.iter().copied());
            }
            TextMutation::Delete(p, n) => {
                let i = at(*p, t);
                let j = (i + usize::from(*n % 16)).min(t.len());
                t.drain(i..j);
            }
            TextMutation::DuplicateLine(k) => {
                let lines: Vec<&[u8]> = t.split(|&b| b == b'\n').collect();
                let line = lines[usize::from(*k) % lines.len()].to_vec();
                t.push(b'\n');
                t.extend_from_slice(&line);
                t.push(b'\n');
            }
        }
    }
}

/// A key: a value of its type (7 in 8), absent, or any TOML value.
#[derive(Debug)]
pub enum F<T> {
    /// A value of the key's type.
    Good(T),
    /// Absent.
    Absent,
    /// Any value, likely of the wrong type.
    Other(Val),
}

/// The scenario document.
#[derive(Arbitrary, Debug)]
pub struct Doc {
    /// `name`.
    pub name: F<Name>,
    /// `description`.
    pub description: F<Text>,
    /// `seed`.
    pub seed: F<Int>,
    /// `[guest]`.
    pub guest: Often<Guest>,
    /// `[workload]`.
    pub workload: Often<Workload>,
    /// `[migration]`.
    pub migration: Often<Migration>,
    /// `[parameters]`.
    pub parameters: Often<Parameters>,
    /// `[destination]`.
    pub destination: Often<Destination>,
    /// `[expect]`.
    pub expect: Often<Expect>,
    /// Unknown keys, anywhere (one input in 8 has any).
    pub extra: Rare<Vec<Extra>>,
}

/// `[guest]`.
#[derive(Arbitrary, Debug)]
pub struct Guest {
    /// `machine`.
    pub machine: F<Text>,
    /// `blocks`.
    pub blocks: F<Blocks>,
    /// `initial_fill`.
    pub initial_fill: F<Float>,
    /// `devices`.
    pub devices: F<bool>,
}

/// `[workload]`.
#[derive(Arbitrary, Debug)]
pub struct Workload {
    /// `kind`.
    pub kind: F<Pick>,
    /// `writes_per_tick`.
    pub writes_per_tick: F<Int>,
    /// `hot_fraction`.
    pub hot_fraction: F<Float>,
    /// `hot_share`.
    pub hot_share: F<Float>,
    /// `zero_share`.
    pub zero_share: F<Float>,
}

/// `[migration]`.
#[derive(Arbitrary, Debug)]
pub struct Migration {
    /// `writers`.
    pub writers: F<Writers>,
    /// `capabilities`.
    pub capabilities: F<Vec<Pick>>,
    /// `transport`.
    pub transport: F<Pick>,
    /// `profile`.
    pub profile: F<Pick>,
    /// `multifd_compression`.
    pub multifd_compression: F<Pick>,
    /// `direct_io`.
    pub direct_io: F<bool>,
}

/// `[parameters]`.
#[derive(Arbitrary, Debug)]
pub struct Parameters {
    /// `bandwidth`.
    pub bandwidth: F<Int>,
    /// `downtime_ticks`.
    pub downtime_ticks: F<Int>,
    /// `max_passes`.
    pub max_passes: F<Int>,
}

/// `[destination]`.
#[derive(Arbitrary, Debug)]
pub struct Destination {
    /// `fixed_ram`.
    pub fixed_ram: F<bool>,
    /// `dirty_memory`.
    pub dirty_memory: F<bool>,
    /// `blocks` (one input in 8).
    pub blocks: Rare<F<Blocks>>,
}

/// `[expect]`.
#[derive(Arbitrary, Debug)]
pub struct Expect {
    /// `verdict`.
    pub verdict: F<Pick>,
    /// `error`: given when the verdict is "error", unless `error_mismatch`.
    pub error: F<Text>,
    /// `error` given with another verdict, or missing with "error".
    pub error_mismatch: Rare<()>,
    /// `digest` (one input in 8).
    pub digest: Rare<F<Digest>>,
    /// `min_sequential_ram_ratio` (one input in 8).
    pub ratio: Rare<F<Float>>,
    /// `converged` (one input in 8).
    pub converged: Rare<F<bool>>,
}

/// An unknown key or table.
#[derive(Arbitrary, Debug)]
pub struct Extra {
    /// Where: top level (0) or in the table of that number.
    pub table: u8,
    /// The key (a schema key in the wrong place, or anything).
    pub key: Text,
    /// Its value.
    pub value: Val,
}

/// A block list.
#[derive(Arbitrary, Debug)]
pub struct Blocks {
    /// The first block.
    pub first: Block,
    /// The others.
    pub more: Vec<Block>,
    /// The list again: none below 224, else (n - 223) * 60 times (at
    /// most 2000 blocks in all).
    pub repeat: u8,
    /// Append the index to every name (no duplicates from the repeats).
    pub unique: bool,
    /// `[[guest.blocks]]` tables instead of an inline array.
    pub tables: bool,
}

/// One block.
#[derive(Arbitrary, Debug)]
pub struct Block {
    /// `name`.
    pub name: F<Text>,
    /// `size`.
    pub size: F<SizeVal>,
    /// `shared` (one block in 8).
    pub shared: Rare<F<bool>>,
    /// An unknown key (one block in 8).
    pub extra: Rare<(Text, Val)>,
}

/// A name from the key's list of names (`Pick(n)`: the n-th, modulo), or
/// a near miss.
#[derive(Debug)]
pub enum Pick {
    /// The n-th name.
    Name(u8),
    /// The n-th name upper-cased.
    Upper(u8),
    /// The n-th name with `_` for `-`.
    Underscore(u8),
    /// The n-th name of the list of every name.
    AnyName(u8),
}

/// A scenario name: a valid one, or any text.
#[derive(Debug)]
pub enum Name {
    /// A valid name.
    Valid(u8),
    /// Any text.
    Text(Text),
}

/// `migration.writers`: one of the four valid lists, or any list.
#[derive(Debug)]
pub enum Writers {
    /// Both, or one, in either order.
    Valid(u8),
    /// Any list of names.
    Any(Vec<Pick>),
}

/// An integer.
#[derive(Debug)]
pub enum Int {
    /// 0..=255.
    Small(u8),
    /// 0..=65535.
    Medium(u16),
    /// 2^n (n modulo 63).
    Pow2(u8),
    /// 2^n - 1.
    Pow2Minus1(u8),
    /// 2^n + 1.
    Pow2Plus1(u8),
    /// A negative number.
    Negative(u8),
    /// Any i64.
    Any(i64),
    /// A limit, its neighbours and TOML's extremes.
    Edge(u8),
    /// Text that is not an i64: 2^63, 2^64 - 1, 2^64, 1e3, 0x1p3 ...
    TooBig(u8),
    /// Hex, octal, binary or with underscores.
    Spelled(u8, u16),
}

/// A float.
#[derive(Debug)]
pub enum Float {
    /// n / 255.
    Unit(u8),
    /// nan, inf, -inf, -0.0, 1.0000001, -0.1, 1e308, 5e-324, -nan, +inf.
    Special(u8),
    /// Any f64.
    Any(f64),
    /// An integer literal where a float is wanted.
    Integer(Int),
}

/// A size.
#[derive(Debug)]
pub enum SizeVal {
    /// n pages, as bytes.
    Pages(u8),
    /// An integer.
    Bytes(Int),
    /// A number with a suffix, as text.
    Text(Int, u8),
    /// "1048576G" and other huge or odd texts.
    Odd(u8),
}

/// A string.
#[derive(Debug)]
pub enum Text {
    /// A plausible word.
    Word(u8),
    /// Path-like: `/`, `..`, `.`, a leading dot.
    Path(u8),
    /// Control characters (and DEL), from these bytes.
    Control(Vec<u8>),
    /// Empty.
    Empty,
    /// n bytes of a character (e.g. 128, 129, 255, 256, 300).
    Long(u8, u16),
    /// Anything.
    Any(String),
}

/// An `expect.digest`.
#[derive(Debug)]
pub enum Digest {
    /// 64 lower-case hex digits.
    Hex([u8; 32]),
    /// Upper-case.
    Upper([u8; 32]),
    /// Too short or too long.
    Length(u8),
    /// Any string.
    Other(Text),
}

/// Any TOML value, for a key of another type.
#[derive(Arbitrary, Debug)]
pub enum Val {
    /// An integer.
    Int(Int),
    /// A float.
    Float(Float),
    /// A string.
    Str(Text),
    /// A boolean.
    Bool(bool),
    /// An array of integers.
    Ints(Vec<Int>),
    /// An array of strings.
    Strs(Vec<Text>),
    /// `{}` or `{ name = ..., size = ... }`.
    Table(Option<(Text, SizeVal)>),
    /// A date-time.
    Date,
    /// Nothing after the `=` (a syntax error).
    Nothing,
}

/// A command line.
#[derive(Arbitrary, Debug)]
pub struct Argv {
    /// The subcommand.
    pub sub: Sub,
    /// Its arguments.
    pub args: Vec<Arg>,
}

/// A subcommand.
#[derive(Debug)]
pub enum Sub {
    /// `run @scenario`.
    RunScenario,
    /// `run`.
    Run,
    /// `replay`.
    Replay,
    /// `explore`.
    Explore,
    /// `inspect`.
    Inspect,
    /// `extract`.
    Extract,
    /// `report`.
    Report,
    /// `bench`.
    Bench,
    /// `merge` (its reports are positional paths).
    Merge,
    /// None, or anything.
    Other(Text),
}

/// One argument.
#[derive(Arbitrary, Debug)]
pub enum Arg {
    /// A flag with the value of its kind.
    Flag(u8, Value),
    /// A flag with the value of its kind.
    Flag2(u8, Value),
    /// `--flag=value`.
    Joined(u8, Value),
    /// A flag alone.
    Bare(u8),
    /// A positional path.
    Path(PathArg),
    /// `--`.
    DoubleDash,
    /// Any word.
    Word(Text),
}

/// The values a flag's value is built from (its kind picks which).
#[derive(Arbitrary, Debug)]
pub struct Value {
    /// A number, or the start of a range or shard.
    pub a: Int,
    /// The end of a range or shard.
    pub b: Int,
    /// A separator variant.
    pub sep: u8,
    /// A size.
    pub size: SizeVal,
    /// A list of names.
    pub names: Vec<Pick>,
    /// A path.
    pub path: PathArg,
    /// Anything, used instead when `sep` says so.
    pub text: Text,
}

/// A path (inside the fuzz directory, see [`confine`]).
#[derive(Arbitrary, Debug)]
pub enum PathArg {
    /// The scenario file.
    Scenario,
    /// The directory.
    Dir,
    /// A path under the directory.
    Sub(Text),
    /// Under the scenario file, as if it were a directory.
    UnderScenario,
}

/// `Some` one time in 8.
#[derive(Debug)]
pub struct Rare<T>(pub Option<T>);

/// `Some` 15 times in 16.
#[derive(Debug)]
pub struct Often<T>(pub Option<T>);

thread_local! {
    /// The hostility level of the input being decoded (see [`CliInput`]).
    static LEVEL: std::cell::Cell<u8> = const { std::cell::Cell::new(0) };
}

impl<'a> Arbitrary<'a> for CliInput {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        // 0 (tame) for 3 inputs in 8, else 0 to 53.
        let level = u8::arbitrary(u)?.saturating_sub(96) / 3;
        LEVEL.with(|l| l.set(level));
        Ok(CliInput {
            level,
            scenario: u.arbitrary()?,
            mutations: u.arbitrary()?,
            argv: u.arbitrary()?,
        })
    }
}

/// Variant `i` with weight `weights[i]`, from one byte, if another byte
/// is below the input's hostility level; else the first, tamest (also
/// when the data has run out).
fn choose(u: &mut Unstructured<'_>, weights: &[u32]) -> arbitrary::Result<usize> {
    if u8::arbitrary(u)? >= LEVEL.with(std::cell::Cell::get) {
        return Ok(0);
    }
    let total: u32 = weights.iter().sum();
    let mut x = u32::from(u8::arbitrary(u)?) * total / 256;
    for (i, &w) in weights.iter().enumerate() {
        if x < w {
            return Ok(i);
        }
        x -= w;
    }
    Ok(weights.len() - 1)
}

impl<'a, T: Arbitrary<'a>> Arbitrary<'a> for Rare<T> {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(Rare(match choose(u, &[7, 1])? {
            0 => None,
            _ => Some(T::arbitrary(u)?),
        }))
    }
}

impl<'a, T: Arbitrary<'a>> Arbitrary<'a> for Often<T> {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(Often(match choose(u, &[15, 1])? {
            0 => Some(T::arbitrary(u)?),
            _ => None,
        }))
    }
}

impl<'a, T: Arbitrary<'a>> Arbitrary<'a> for F<T> {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(match choose(u, &[28, 2, 2])? {
            0 => F::Good(T::arbitrary(u)?),
            1 => F::Absent,
            _ => F::Other(Val::arbitrary(u)?),
        })
    }
}

impl<'a> Arbitrary<'a> for Pick {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let n = u8::arbitrary(u)?;
        Ok(match choose(u, &[12, 1, 1, 2])? {
            0 => Pick::Name(n),
            1 => Pick::Upper(n),
            2 => Pick::Underscore(n),
            _ => Pick::AnyName(n),
        })
    }
}

impl<'a> Arbitrary<'a> for Name {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(match choose(u, &[1, 1])? {
            0 => Name::Valid(u.arbitrary()?),
            _ => Name::Text(u.arbitrary()?),
        })
    }
}

impl Name {
    fn string(&self) -> String {
        match self {
            Name::Valid(n) => {
                pick(&["a", "idle", "t.1", "x_y-z", "heavy-redirty", "A9"], *n).into()
            }
            Name::Text(t) => t.string(),
        }
    }
}

impl<'a> Arbitrary<'a> for Writers {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(match choose(u, &[1, 1])? {
            0 => Writers::Valid(u.arbitrary()?),
            _ => Writers::Any(u.arbitrary()?),
        })
    }
}

impl Writers {
    fn render(&self) -> String {
        match self {
            Writers::Valid(n) => pick(
                &[
                    r#"["sequential", "fixed-ram"]"#,
                    r#"["fixed-ram"]"#,
                    r#"["sequential"]"#,
                    r#"["fixed-ram", "sequential"]"#,
                ],
                *n,
            )
            .into(),
            Writers::Any(v) => names(v, WRITERS),
        }
    }
}

impl<'a> Arbitrary<'a> for Int {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(match choose(u, &[8, 3, 1, 1, 1, 1, 1, 2, 1, 1])? {
            0 => Int::Small(u.arbitrary()?),
            1 => Int::Medium(u.arbitrary()?),
            2 => Int::Pow2(u.arbitrary()?),
            3 => Int::Pow2Minus1(u.arbitrary()?),
            4 => Int::Pow2Plus1(u.arbitrary()?),
            5 => Int::Negative(u.arbitrary()?),
            6 => Int::Any(u.arbitrary()?),
            7 => Int::Edge(u.arbitrary()?),
            8 => Int::TooBig(u.arbitrary()?),
            _ => Int::Spelled(u.arbitrary()?, u.arbitrary()?),
        })
    }
}

impl<'a> Arbitrary<'a> for Float {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(match choose(u, &[8, 2, 1, 1])? {
            0 => Float::Unit(u.arbitrary()?),
            1 => Float::Special(u.arbitrary()?),
            2 => Float::Any(u.arbitrary()?),
            _ => Float::Integer(u.arbitrary()?),
        })
    }
}

impl<'a> Arbitrary<'a> for SizeVal {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(match choose(u, &[6, 1, 3, 1])? {
            0 => SizeVal::Pages(u.arbitrary()?),
            1 => SizeVal::Bytes(u.arbitrary()?),
            2 => SizeVal::Text(u.arbitrary()?, u.arbitrary()?),
            _ => SizeVal::Odd(u.arbitrary()?),
        })
    }
}

impl<'a> Arbitrary<'a> for Text {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(match choose(u, &[10, 1, 1, 1, 1, 1])? {
            0 => Text::Word(u.arbitrary()?),
            1 => Text::Path(u.arbitrary()?),
            2 => Text::Control(u.arbitrary()?),
            3 => Text::Empty,
            4 => Text::Long(u.arbitrary()?, u.arbitrary()?),
            _ => Text::Any(u.arbitrary()?),
        })
    }
}

impl<'a> Arbitrary<'a> for Digest {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(match choose(u, &[4, 1, 1, 1])? {
            0 => Digest::Hex(u.arbitrary()?),
            1 => Digest::Upper(u.arbitrary()?),
            2 => Digest::Length(u.arbitrary()?),
            _ => Digest::Other(u.arbitrary()?),
        })
    }
}

impl<'a> Arbitrary<'a> for Sub {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(match choose(u, &[8, 1, 1, 1, 1, 1, 1, 1, 1, 1])? {
            0 => Sub::RunScenario,
            1 => Sub::Run,
            2 => Sub::Replay,
            3 => Sub::Explore,
            4 => Sub::Inspect,
            5 => Sub::Extract,
            6 => Sub::Report,
            7 => Sub::Bench,
            8 => Sub::Merge,
            _ => Sub::Other(u.arbitrary()?),
        })
    }
}

// ---------------------------------------------------------------------
// Rendering.

const WORKLOAD_KINDS: &[&str] = &["idle", "uniform", "hot-set", "sweep"];
const WRITERS: &[&str] = &["sequential", "fixed-ram"];
const CAPABILITIES: &[&str] = &["multifd", "xbzrle", "compress", "postcopy-ram"];
/// The layout capabilities, which `migration.capabilities` refuses (named
/// through [`Pick::AnyName`]).
const LAYOUT_CAPABILITIES: &[&str] = &["fixed-ram", "mapped-ram"];
const TRANSPORTS: &[&str] = &["file", "tcp", "unix", "exec", "fd"];
const PROFILES: &[&str] = &["fixed-ram", "mapped-ram"];
const COMPRESSIONS: &[&str] = &["none", "zlib", "zstd"];
const VERDICTS: &[&str] = &["pass", "fail", "error"];
const BUGS: &[&str] = &[
    "off-by-one-later-block",
    "dirty-cleared-after-pass",
    "zero-page-keeps-bit",
    "bitmap-wrong-bit-order",
    "reader-skips-clear-bits",
    "skip-final-sync",
];
const BENCH_PARTS: &[&str] = &["sim", "save", "restore", "qemu"];
const ALL_NAMES: &[&[&str]] = &[
    WORKLOAD_KINDS,
    WRITERS,
    CAPABILITIES,
    LAYOUT_CAPABILITIES,
    TRANSPORTS,
    PROFILES,
    COMPRESSIONS,
    VERDICTS,
    BUGS,
    BENCH_PARTS,
];
const WORDS: &[&str] = &[
    "pc.ram",
    "vga.vram",
    "pc.bios",
    "heavy-redirty",
    "a",
    "pc-i440fx-10.0",
    "pc-q35-10.0",
    "/rom@etc/acpi/tables",
    "0000:00:02.0/vga.vram",
    "scenario",
    "Size mismatch",
];
const PATHS: &[&str] = &[
    "../x",
    "a/b",
    "/etc/passwd",
    "..",
    ".",
    ".hidden",
    "x/../..",
    "a\\b",
    "~",
    "-",
    "--out",
    "a b",
    "..name",
    "name.",
];

fn pick<'a>(list: &[&'a str], n: u8) -> &'a str {
    list[usize::from(n) % list.len()]
}

impl Pick {
    fn render(&self, list: &[&str]) -> String {
        match *self {
            Pick::Name(n) => pick(list, n).into(),
            Pick::Upper(n) => pick(list, n).to_uppercase(),
            Pick::Underscore(n) => pick(list, n).replace('-', "_"),
            Pick::AnyName(n) => {
                let l = ALL_NAMES[usize::from(n) % ALL_NAMES.len()];
                pick(l, n / 10).into()
            }
        }
    }
}

impl Int {
    fn render(&self) -> String {
        match *self {
            Int::Small(n) => n.to_string(),
            Int::Medium(n) => n.to_string(),
            Int::Pow2(n) => (1u64 << (n % 63)).to_string(),
            Int::Pow2Minus1(n) => ((1u64 << (n % 63)) - 1).to_string(),
            Int::Pow2Plus1(n) => ((1u64 << (n % 63)) + 1).to_string(),
            Int::Negative(n) => format!("-{}", u64::from(n) + 1),
            Int::Any(n) => n.to_string(),
            Int::Edge(n) => {
                const EDGES: [i64; 14] = [
                    0,
                    1,
                    4095,
                    4096,
                    1000,
                    1001,
                    65_536,
                    65_537,
                    1 << 29,
                    (1 << 30) + 1,
                    i64::MAX,
                    i64::MIN,
                    u32::MAX as i64,
                    u32::MAX as i64 + 1,
                ];
                EDGES[usize::from(n) % EDGES.len()].to_string()
            }
            Int::TooBig(n) => pick(
                &[
                    "9223372036854775808",
                    "18446744073709551615",
                    "18446744073709551616",
                    "-9223372036854775809",
                    "1e3",
                    "0x1p3",
                    "+1",
                    "01",
                    "1_",
                ],
                n,
            )
            .into(),
            Int::Spelled(k, v) => match k % 4 {
                0 => format!("0x{v:x}"),
                1 => format!("0o{v:o}"),
                2 => format!("0b{v:b}"),
                _ => {
                    let s = v.to_string();
                    let mut o = String::new();
                    for (i, c) in s.chars().enumerate() {
                        if i > 0 {
                            o.push('_');
                        }
                        o.push(c);
                    }
                    o
                }
            },
        }
    }

    /// The value as a command-line word.
    fn word(&self) -> String {
        match *self {
            Int::Spelled(_, v) => v.to_string(),
            _ => self.render(),
        }
    }
}

impl Float {
    fn render(&self) -> String {
        match self {
            Float::Unit(n) => float(f64::from(*n) / 255.0),
            Float::Special(n) => pick(
                &[
                    "nan",
                    "inf",
                    "-inf",
                    "-0.0",
                    "1.0000001",
                    "-0.1",
                    "1e308",
                    "5e-324",
                    "-nan",
                    "+inf",
                    "1.0",
                    "0.0",
                    "1e-400",
                    "1e400",
                ],
                *n,
            )
            .into(),
            Float::Any(f) => float(*f),
            Float::Integer(i) => i.render(),
        }
    }
}

/// A TOML float.
fn float(f: f64) -> String {
    if f.is_nan() {
        "nan".into()
    } else if f.is_infinite() {
        if f > 0.0 { "inf".into() } else { "-inf".into() }
    } else {
        let s = format!("{f:?}");
        if s.contains(['.', 'e', 'E']) {
            s
        } else {
            s + ".0"
        }
    }
}

const SUFFIXES: &[&str] = &[
    "", "K", "k", "M", "m", "G", "g", "T", "KB", " K", "K ", "KiB", "é",
];

impl SizeVal {
    fn render(&self) -> String {
        match self {
            SizeVal::Pages(n) => (u64::from(*n) * 4096).to_string(),
            SizeVal::Bytes(i) => i.render(),
            SizeVal::Text(i, s) => quote(&self.word_of(i, *s)),
            SizeVal::Odd(_) => quote(&self.word()),
        }
    }

    fn word_of(&self, i: &Int, s: u8) -> String {
        let n = match i {
            Int::Small(n) => u64::from(*n).to_string(),
            _ => i.word(),
        };
        format!("{n}{}", pick(SUFFIXES, s))
    }

    /// The size as a command-line word.
    fn word(&self) -> String {
        match self {
            SizeVal::Pages(n) => (u64::from(*n) * 4096).to_string(),
            SizeVal::Bytes(i) => i.word(),
            SizeVal::Text(i, s) => self.word_of(i, *s),
            SizeVal::Odd(n) => pick(
                &[
                    "1048576G",
                    "17179869184G",
                    "18446744073709551615K",
                    "256G",
                    "257G",
                    "4095",
                    "0",
                    "0K",
                    "",
                    " ",
                    "G",
                    "-1M",
                    "+4K",
                    "4 K",
                    "1.5G",
                    "4k\u{0}",
                ],
                *n,
            )
            .into(),
        }
    }
}

impl Text {
    fn string(&self) -> String {
        match self {
            Text::Word(n) => pick(WORDS, *n).into(),
            Text::Path(n) => pick(PATHS, *n).into(),
            Text::Control(b) => b
                .iter()
                .take(32)
                .map(|&c| {
                    let c = c % 33;
                    char::from(if c == 32 { 0x7f } else { c })
                })
                .collect(),
            Text::Empty => String::new(),
            Text::Long(c, n) => {
                let c = char::from(b'a' + c % 26);
                std::iter::repeat_n(c, usize::from(*n % 400)).collect()
            }
            Text::Any(s) => s.chars().take(300).collect(),
        }
    }
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(o, "\\u{:04X}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

impl Digest {
    fn render(&self) -> String {
        let hex = |b: &[u8; 32]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        match self {
            Digest::Hex(b) => quote(&hex(b)),
            Digest::Upper(b) => quote(&hex(b).to_uppercase()),
            Digest::Length(n) => quote(&"a".repeat(usize::from(*n))),
            Digest::Other(t) => quote(&t.string()),
        }
    }
}

impl Val {
    fn render(&self) -> String {
        match self {
            Val::Int(i) => i.render(),
            Val::Float(f) => f.render(),
            Val::Str(t) => quote(&t.string()),
            Val::Bool(b) => b.to_string(),
            Val::Ints(v) => {
                let items: Vec<String> = v.iter().take(16).map(Int::render).collect();
                format!("[{}]", items.join(", "))
            }
            Val::Strs(v) => {
                let items: Vec<String> = v.iter().take(16).map(|t| quote(&t.string())).collect();
                format!("[{}]", items.join(", "))
            }
            Val::Table(None) => "{}".into(),
            Val::Table(Some((n, s))) => {
                format!("{{ name = {}, size = {} }}", quote(&n.string()), s.render())
            }
            Val::Date => "1979-05-27T07:32:00Z".into(),
            Val::Nothing => String::new(),
        }
    }
}

/// `key = value` lines of one table.
struct Lines(String);

impl Lines {
    fn put<T>(&mut self, key: &str, f: &F<T>, good: impl Fn(&T) -> String) {
        let v = match f {
            F::Good(t) => good(t),
            F::Absent => return,
            F::Other(v) => v.render(),
        };
        let _ = writeln!(self.0, "{key} = {v}");
    }
}

fn names(v: &[Pick], list: &[&str]) -> String {
    let items: Vec<String> = v.iter().take(16).map(|p| quote(&p.render(list))).collect();
    format!("[{}]", items.join(", "))
}

impl Blocks {
    /// The blocks as (name, size) value texts.
    fn entries(&self) -> Vec<String> {
        let repeat = usize::from(self.repeat.saturating_sub(223)) * 60;
        let blocks: Vec<&Block> = std::iter::once(&self.first).chain(&self.more).collect();
        let total = blocks.len() * (1 + repeat);
        let mut out = Vec::new();
        for i in 0..total.min(2000) {
            let b = blocks[i % blocks.len()];
            let mut l = Lines(String::new());
            l.put("name", &b.name, |t| {
                let mut s = t.string();
                if self.unique {
                    let _ = write!(s, "{i}");
                }
                quote(&s)
            });
            l.put("size", &b.size, SizeVal::render);
            if let Some(shared) = &b.shared.0 {
                l.put("shared", shared, bool::to_string);
            }
            if let Some((k, v)) = &b.extra.0 {
                let _ = writeln!(l.0, "{} = {}", quote(&k.string()), v.render());
            }
            out.push(l.0);
        }
        out
    }

    /// Inline: `key = [{ ... }, ...]`; tables: `[[table.key]]` sections
    /// (after every other key of the table).
    fn render(&self, table: &str, key: &str, lines: &mut Lines, sections: &mut String) {
        if self.tables {
            for e in self.entries() {
                let _ = write!(sections, "\n[[{table}.{key}]]\n{e}");
            }
        } else {
            let items: Vec<String> = self
                .entries()
                .iter()
                .map(|e| format!("{{ {} }}", e.trim_end().replace('\n', ", ")))
                .collect();
            let _ = writeln!(lines.0, "{key} = [{}]", items.join(", "));
        }
    }
}

impl Doc {
    /// The TOML text.
    pub fn render(&self) -> String {
        let extras = |t: u8| -> String {
            let mut o = String::new();
            for e in self
                .extra
                .0
                .iter()
                .flatten()
                .take(8)
                .filter(|e| e.table % 7 == t)
            {
                let _ = writeln!(o, "{} = {}", quote(&e.key.string()), e.value.render());
            }
            o
        };
        let mut doc = Lines(String::new());
        doc.put("name", &self.name, |n| quote(&n.string()));
        doc.put("description", &self.description, |t| quote(&t.string()));
        doc.put("seed", &self.seed, Int::render);
        doc.0.push_str(&extras(0));
        let mut table = |name: &str, n: u8, fill: &dyn Fn(&mut Lines, &mut String)| {
            let mut l = Lines(String::new());
            let mut sections = String::new();
            fill(&mut l, &mut sections);
            l.0.push_str(&extras(n));
            let _ = write!(doc.0, "\n[{name}]\n{}{sections}", l.0);
        };
        if let Some(g) = &self.guest.0 {
            table("guest", 1, &|l, s| {
                l.put("machine", &g.machine, |t| quote(&t.string()));
                l.put("initial_fill", &g.initial_fill, Float::render);
                l.put("devices", &g.devices, bool::to_string);
                match &g.blocks {
                    F::Good(b) => b.render("guest", "blocks", l, s),
                    f => l.put("blocks", f, |_| unreachable!()),
                }
            });
        }
        if let Some(w) = &self.workload.0 {
            table("workload", 2, &|l, _| {
                l.put("kind", &w.kind, |p| quote(&p.render(WORKLOAD_KINDS)));
                l.put("writes_per_tick", &w.writes_per_tick, Int::render);
                l.put("hot_fraction", &w.hot_fraction, Float::render);
                l.put("hot_share", &w.hot_share, Float::render);
                l.put("zero_share", &w.zero_share, Float::render);
            });
        }
        if let Some(m) = &self.migration.0 {
            table("migration", 3, &|l, _| {
                l.put("writers", &m.writers, Writers::render);
                l.put("capabilities", &m.capabilities, |v| names(v, CAPABILITIES));
                l.put("transport", &m.transport, |p| quote(&p.render(TRANSPORTS)));
                l.put("profile", &m.profile, |p| quote(&p.render(PROFILES)));
                l.put("multifd_compression", &m.multifd_compression, |p| {
                    quote(&p.render(COMPRESSIONS))
                });
                l.put("direct_io", &m.direct_io, bool::to_string);
            });
        }
        if let Some(p) = &self.parameters.0 {
            table("parameters", 4, &|l, _| {
                l.put("bandwidth", &p.bandwidth, Int::render);
                l.put("downtime_ticks", &p.downtime_ticks, Int::render);
                l.put("max_passes", &p.max_passes, Int::render);
            });
        }
        if let Some(d) = &self.destination.0 {
            table("destination", 5, &|l, s| {
                l.put("fixed_ram", &d.fixed_ram, bool::to_string);
                l.put("dirty_memory", &d.dirty_memory, bool::to_string);
                match &d.blocks.0 {
                    Some(F::Good(b)) => b.render("destination", "blocks", l, s),
                    Some(f) => l.put("blocks", f, |_| unreachable!()),
                    None => {}
                }
            });
        }
        if let Some(e) = &self.expect.0 {
            table("expect", 6, &|l, _| {
                l.put("verdict", &e.verdict, |p| quote(&p.render(VERDICTS)));
                let is_error = matches!(&e.verdict, F::Good(p) if p.render(VERDICTS) == "error");
                if is_error != e.error_mismatch.0.is_some() {
                    l.put("error", &e.error, |t| quote(&t.string()));
                }
                if let Some(d) = &e.digest.0 {
                    l.put("digest", d, Digest::render);
                }
                if let Some(r) = &e.ratio.0 {
                    l.put("min_sequential_ram_ratio", r, Float::render);
                }
                if let Some(c) = &e.converged.0 {
                    l.put("converged", c, bool::to_string);
                }
            });
        }
        doc.0
    }
}

/// Every flag, and the kind of its value.
const FLAGS: &[(&str, Kind)] = &[
    ("--seed", Kind::Int),
    ("--json", Kind::None),
    ("--out", Kind::Path),
    ("--bug", Kind::Names(BUGS)),
    ("--ram", Kind::Size),
    ("--writers", Kind::Names(WRITERS)),
    ("--file-dir", Kind::Path),
    ("--direct-io", Kind::None),
    ("--channels", Kind::Int),
    ("--seeds", Kind::Range),
    ("--jobs", Kind::Int),
    ("--shard", Kind::Shard),
    ("--no-shrink", Kind::None),
    ("--regressions", Kind::Path),
    ("--dry-run", Kind::None),
    ("--max-failures", Kind::Int),
    ("--bless", Kind::None),
    ("--block", Kind::Text),
    ("-o", Kind::Path),
    ("--output", Kind::Path),
    ("--size", Kind::Size),
    ("--reps", Kind::Int),
    ("--dir", Kind::Path),
    ("--no-qemu", Kind::None),
    ("--only", Kind::Names(BENCH_PARTS)),
    ("--help", Kind::None),
    ("-h", Kind::None),
    ("--version", Kind::None),
    ("--bogus", Kind::Int),
];

/// Flag `n`: one of the subcommand's `flags` (7 in 8), or any flag.
fn flag_of(flags: &[&str], n: u8) -> (&'static str, Kind) {
    if n < 224 && !flags.is_empty() {
        let f = flags[usize::from(n) % flags.len()];
        if let Some(&fk) = FLAGS.iter().find(|(name, _)| *name == f) {
            return fk;
        }
    }
    FLAGS[usize::from(n) % FLAGS.len()]
}

#[derive(Clone, Copy)]
enum Kind {
    None,
    Int,
    Path,
    Size,
    Range,
    Shard,
    Text,
    Names(&'static [&'static str]),
}

impl PathArg {
    fn word(&self) -> String {
        match self {
            PathArg::Scenario => "@scenario".into(),
            PathArg::Dir => "@dir".into(),
            PathArg::Sub(t) => t.string(),
            PathArg::UnderScenario => "scenario.toml/x".into(),
        }
    }
}

impl Value {
    fn word(&self, kind: Kind) -> Option<String> {
        // One value in eight is any text instead.
        if self.sep % 8 == 7 && !matches!(kind, Kind::Path | Kind::None) {
            return Some(self.text.string());
        }
        let sep = self.sep % 8;
        Some(match kind {
            Kind::None => return None,
            Kind::Int => self.a.word(),
            Kind::Path => self.path.word(),
            Kind::Size => self.size.word(),
            Kind::Range => {
                let s = pick(&["..", "...", "..=", " .. ", "-", ".."], sep);
                format!("{}{s}{}", self.a.word(), self.b.word())
            }
            Kind::Shard => {
                let s = pick(&["/", "/", " / ", "//", ":"], sep);
                format!("{}{s}{}", self.a.word(), self.b.word())
            }
            Kind::Text => self.text.string(),
            Kind::Names(list) => {
                let s = pick(&[",", ",", ", ", ",,", ";"], sep);
                let v: Vec<String> = self.names.iter().take(8).map(|p| p.render(list)).collect();
                v.join(s)
            }
        })
    }
}

impl Argv {
    /// The words after the program name (before [`confine`]).
    pub fn words(&self) -> Vec<String> {
        let mut w: Vec<String> = Vec::new();
        let sub_flags: &[&str] = match &self.sub {
            Sub::RunScenario | Sub::Run => &[
                "--seed",
                "--json",
                "--out",
                "--bug",
                "--ram",
                "--writers",
                "--file-dir",
                "--direct-io",
                "--channels",
            ],
            Sub::Explore => &[
                "--seeds",
                "--jobs",
                "--shard",
                "--json",
                "--bug",
                "--no-shrink",
                "--regressions",
                "--dry-run",
                "--max-failures",
            ],
            Sub::Replay => &["--bless"],
            Sub::Inspect => &["--json"],
            Sub::Extract => &["--block", "-o", "--output"],
            Sub::Report => &["-o", "--output", "--jobs"],
            Sub::Bench => &[
                "--size",
                "--reps",
                "--dir",
                "--channels",
                "--no-qemu",
                "--only",
                "--json",
            ],
            Sub::Merge => &["--json"],
            Sub::Other(_) => &[],
        };
        match &self.sub {
            Sub::RunScenario => w.extend(["run".into(), "@scenario".into()]),
            Sub::Run => w.push("run".into()),
            Sub::Replay => w.push("replay".into()),
            Sub::Explore => w.push("explore".into()),
            Sub::Inspect => w.push("inspect".into()),
            Sub::Extract => w.push("extract".into()),
            Sub::Report => w.push("report".into()),
            Sub::Bench => w.push("bench".into()),
            Sub::Merge => w.push("merge".into()),
            Sub::Other(t) => {
                let t = t.string();
                if !t.is_empty() {
                    w.push(t);
                }
            }
        }
        for a in self.args.iter().take(24) {
            let flag = |n: u8| flag_of(sub_flags, n);
            match a {
                Arg::Flag(n, v) | Arg::Flag2(n, v) => {
                    let (f, k) = flag(*n);
                    w.push(f.into());
                    w.extend(v.word(k));
                }
                Arg::Joined(n, v) => {
                    let (f, k) = flag(*n);
                    match v.word(k) {
                        Some(v) => w.push(format!("{f}={v}")),
                        None => w.push(format!("{f}=true")),
                    }
                }
                Arg::Bare(n) => w.push(flag(*n).0.into()),
                Arg::Path(p) => w.push(p.word()),
                Arg::DoubleDash => w.push("--".into()),
                Arg::Word(t) => w.push(t.string()),
            }
        }
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn confine_keeps_every_path_inside() {
        let dir = Path::new("/tmp/d");
        let sc = Path::new("/tmp/d/scenario.toml");
        let argv = confine(
            &words(
                "run ../../etc/x --out /etc --seed 5 --file-dir=../.. -o/etc --json -- --out \
                 -ofoo run --writers ../x --bogus=/x",
            ),
            dir,
            sc,
        );
        let got: Vec<String> = argv.iter().map(|a| a.to_string_lossy().into()).collect();
        assert_eq!(
            got,
            [
                "migsim",
                "run",
                "/tmp/d/etc/x",
                "--out",
                "/tmp/d/etc",
                "--seed",
                "5",
                "--file-dir=/tmp/d",
                "/tmp/d/-o/etc",
                "--json",
                "--",
                "/tmp/d/--out",
                "/tmp/d/-ofoo",
                "/tmp/d/run",
                "/tmp/d/--writers",
                "/tmp/d/x",
                "/tmp/d/--bogus=/x",
            ]
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
