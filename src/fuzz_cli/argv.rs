//! The command line of a structured input ([`Argv`]): a command path and
//! up to 24 arguments, each a flag of that command (or of any command, or
//! one none has) with a value of the flag's [`Kind`], a positional path,
//! `--` or any word; [`Argv::words`] spells them out (before
//! [`super::confine`]). Which commands and flags there are, and what
//! their values are, is [`super::model`]'s.

use arbitrary::{Arbitrary, Unstructured};
use std::sync::LazyLock;

use super::input::{Int, Pick, SizeVal, Text, choose};
use super::model::{self, Flag, Kind, WORDS, model};
use super::toml::{all_names, pick};

/// A command line.
#[derive(Arbitrary, Debug)]
pub struct Argv {
    /// The command.
    pub sub: SubPick,
    /// Its arguments.
    pub args: Vec<Arg>,
}

/// The command.
#[derive(Debug)]
pub enum SubPick {
    /// `run @scenario`, the tame choice: a run of the scenario.
    RunScenario,
    /// Command `n` of the model ([`model::Model::pick`]), with what it
    /// requires ([`model::Command::required`]) unless `n`'s top bit is set.
    Command(u16),
    /// None, or any word.
    Other(Text),
}

impl<'a> Arbitrary<'a> for SubPick {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(match choose(u, &[8, 8, 1])? {
            0 => SubPick::RunScenario,
            1 => SubPick::Command(u.arbitrary()?),
            _ => SubPick::Other(u.arbitrary()?),
        })
    }
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

/// A path (inside the fuzz directory, see [`super::confine`]).
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

/// Separators of two numbers (`A..B`, `K/N`), good and bad.
const PAIR_SEPS: &[&str] = &[
    "..", "/", "..", "/", "...", "..=", " .. ", "-", " / ", "//", ":",
];

/// Every name of every list, and the plausible words: a text value's
/// names.
fn text_names() -> &'static [&'static str] {
    static N: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
        WORDS
            .iter()
            .chain(all_names().iter().flat_map(|l| l.iter()))
            .copied()
            .collect()
    });
    N.as_slice()
}

impl Value {
    /// The value for `flag` (none for a switch).
    fn word(&self, flag: &Flag) -> Option<String> {
        let kind = flag.kind;
        // One value in eight is any text instead (a path stays a path).
        if self.sep % 8 == 7 && kind != Kind::Switch && !kind.is_path() {
            return Some(self.text.string());
        }
        let sep = self.sep % 8;
        Some(match kind {
            Kind::Switch => return None,
            Kind::Path | Kind::Unknown => self.path.word(),
            Kind::Int { size } => {
                // A size now and then where a number is wanted, and the
                // other way round.
                if size == (sep != 6) {
                    self.size.word()
                } else {
                    self.a.word()
                }
            }
            Kind::Pair => format!(
                "{}{}{}",
                self.a.word(),
                pick(PAIR_SEPS, self.sep / 8),
                self.b.word()
            ),
            Kind::Names(list) => self.names_word(list, flag.delimiter),
            Kind::Points => {
                if sep.is_multiple_of(3) {
                    self.a.word()
                } else {
                    self.names_word(model::point_names(), None)
                }
            }
            Kind::FailWrite => {
                let one = |i: usize, list: &[&str], n: u8| {
                    self.names
                        .get(i)
                        .map_or_else(|| pick(list, n).to_string(), |p| p.render(list))
                };
                let s = if sep == 5 { "::" } else { ":" };
                format!(
                    "{}{s}{}{s}{}",
                    one(0, model::layout_names(), sep),
                    self.a.word(),
                    one(1, model::io_fault_names(), self.sep / 8)
                )
            }
            Kind::Text => {
                if sep < 4 && !self.names.is_empty() {
                    self.names_word(text_names(), flag.delimiter)
                } else {
                    self.text.string()
                }
            }
        })
    }

    /// Names of `list`: one (a list, with the flag's delimiter or a wrong
    /// one, when it takes a list or now and then).
    fn names_word(&self, list: &[&str], delimiter: Option<char>) -> String {
        let sep = self.sep % 8;
        let d = delimiter.map_or_else(|| ",".to_string(), String::from);
        let s = match sep % 5 {
            0 | 1 => d.clone(),
            2 => format!("{d} "),
            3 => format!("{d}{d}"),
            _ => ";".into(),
        };
        let n = if delimiter.is_some() || sep == 6 {
            8
        } else {
            1
        };
        let v: Vec<String> = self.names.iter().take(n).map(|p| p.render(list)).collect();
        v.join(&s)
    }
}

/// Flag `n` of `flags` (7 in 8), or of any command.
fn flag_of(flags: &[Flag], n: u8) -> &Flag {
    if n < 224 && !flags.is_empty() {
        &flags[usize::from(n) % flags.len()]
    } else {
        let any = &model().any_flags;
        &any[usize::from(n) % any.len()]
    }
}

impl Argv {
    /// The words after the program name (before [`super::confine`]).
    pub fn words(&self) -> Vec<String> {
        let m = model();
        let (flags, mut w): (&[Flag], Vec<String>) = match &self.sub {
            SubPick::RunScenario => {
                let c = m.run();
                let mut w = c.path.clone();
                w.push("@scenario".into());
                (&c.flags, w)
            }
            SubPick::Command(n) => {
                let c = m.pick(*n);
                let mut w = c.path.clone();
                // What it requires, unless the top bit says not to.
                if n & 0x8000 == 0 {
                    w.extend(c.required.iter().cloned());
                }
                (&c.flags, w)
            }
            SubPick::Other(t) => {
                let t = t.string();
                (&[], if t.is_empty() { Vec::new() } else { vec![t] })
            }
        };
        for a in self.args.iter().take(24) {
            match a {
                Arg::Flag(n, v) | Arg::Flag2(n, v) => {
                    let f = flag_of(flags, *n);
                    w.push(f.word.clone());
                    w.extend(v.word(f));
                }
                Arg::Joined(n, v) => {
                    let f = flag_of(flags, *n);
                    let v = v.word(f).unwrap_or_else(|| "true".into());
                    // `--long=value`; `-svalue` (clap also reads `-s=value`).
                    w.push(if f.word.starts_with("--") {
                        format!("{}={v}", f.word)
                    } else {
                        format!("{}{v}", f.word)
                    });
                }
                Arg::Bare(n) => w.push(flag_of(flags, *n).word.clone()),
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
    use std::collections::BTreeSet;
    use std::ffi::OsString;
    use std::path::Path;

    use clap::CommandFactory;

    use super::super::{confine, oracle, request};
    use crate::cli::Args;

    type Pairs = BTreeSet<(Vec<String>, String)>;

    /// Every command path and every (command path, flag spelling) of the
    /// command line, walked here from clap apart from the model: `--long`
    /// and `-s` of every argument that is not positional.
    fn clap_command_line() -> (BTreeSet<Vec<String>>, Pairs) {
        fn walk(
            c: &clap::Command,
            path: Vec<String>,
            cmds: &mut BTreeSet<Vec<String>>,
            flags: &mut Pairs,
        ) {
            for a in c.get_arguments().filter(|a| !a.is_positional()) {
                if let Some(l) = a.get_long() {
                    flags.insert((path.clone(), format!("--{l}")));
                }
                if let Some(s) = a.get_short() {
                    flags.insert((path.clone(), format!("-{s}")));
                }
            }
            for s in c.get_subcommands() {
                let mut p = path.clone();
                p.push(s.get_name().to_string());
                walk(s, p, cmds, flags);
            }
            cmds.insert(path);
        }
        let mut root = Args::command();
        root.build();
        let (mut cmds, mut flags) = (BTreeSet::new(), BTreeSet::new());
        walk(&root, Vec::new(), &mut cmds, &mut flags);
        (cmds, flags)
    }

    /// The command paths an argv (as clap gets it) goes through, and the
    /// flags it gives each: a subcommand name descends, a flag counts for
    /// the command reached.
    fn seen_in(
        argv: &[OsString],
        root: &clap::Command,
        cmds: &mut BTreeSet<Vec<String>>,
        flags: &mut Pairs,
    ) {
        let mut c = root;
        let mut path: Vec<String> = Vec::new();
        cmds.insert(path.clone());
        for w in &argv[1..] {
            let w = w.to_string_lossy();
            if let Some(s) = c.find_subcommand(w.as_ref()) {
                c = s;
                path.push(s.get_name().to_string());
                cmds.insert(path.clone());
            } else if let Some(rest) = w.strip_prefix("--") {
                let name = rest.split('=').next().unwrap_or("");
                if c.get_arguments().any(|a| a.get_long() == Some(name)) {
                    flags.insert((path.clone(), format!("--{name}")));
                }
            } else if let Some(ch) = w.strip_prefix('-').and_then(|r| r.chars().next())
                && c.get_arguments().any(|a| a.get_short() == Some(ch))
            {
                flags.insert((path.clone(), format!("-{ch}")));
            }
        }
    }

    /// Deterministic bytes (SplitMix64).
    fn bytes(state: &mut u64, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = *state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
        }
        out.truncate(n);
        out
    }

    /// Every command path and every flag of every command (recursively,
    /// as clap lists them) is in the argv of some input the target
    /// decodes: structured inputs from deterministic bytes, through the
    /// target's own decoding ([`request`]) and [`confine`]. On the way,
    /// every argv clap accepts holds its paths inside the directory.
    #[test]
    fn every_flag_of_every_command_is_reachable() {
        let (want_cmds, want_flags) = clap_command_line();
        let mut root = Args::command();
        root.build();
        let dir = Path::new("/tmp/migsim-fuzz-cli-test");
        let scenario = dir.join("scenario.toml");
        let (mut cmds, mut flags) = (BTreeSet::new(), BTreeSet::new());
        let mut state = 29;
        let mut inputs = 0;
        let mut parsed = 0;
        while inputs < 100_000 && !(want_cmds.is_subset(&cmds) && want_flags.is_subset(&flags)) {
            inputs += 1;
            // Structured, at the highest hostility level (the first byte
            // of a `CliInput`): more choices go past the tame one.
            let mut data = vec![0u8, 255];
            data.extend(bytes(&mut state, 1024));
            let Some((_, words)) = request(&data) else {
                continue;
            };
            let argv = confine(&words, dir, &scenario);
            seen_in(&argv, &root, &mut cmds, &mut flags);
            let mut cmd = Args::command();
            if let Ok(m) = cmd.try_get_matches_from_mut(&argv) {
                oracle::check_paths_inside(&cmd, &m, dir);
                parsed += 1;
            }
        }
        let missing_cmds: Vec<_> = want_cmds.difference(&cmds).collect();
        let missing: Vec<_> = want_flags.difference(&flags).collect();
        assert!(
            missing_cmds.is_empty() && missing.is_empty(),
            "after {inputs} inputs, never in an argv: commands {missing_cmds:?}, flags {missing:?}"
        );
        eprintln!(
            "{} commands and {} flags reached in {inputs} inputs ({parsed} parsed)",
            want_cmds.len(),
            want_flags.len()
        );
    }
}
