//! The command line as clap describes it, for the generator
//! ([`super::argv`]) and the confinement ([`super::confine`]): every
//! command path of [`Args::command`] (subcommands walked recursively,
//! clap's `help` ones included), each one's flags in every spelling, and
//! what each flag's value is ([`Kind`]), decided from clap's metadata:
//! whether the action takes a value, the value hint, the value parser's
//! type, the value names and the delimiter. The names a value may take
//! come from the value types' own lists ([`Bug`], [`Layout`],
//! [`Durability`], [`Points::NAMED`], [`IoFault`]). Nothing here lists a
//! subcommand or a flag.

use std::any::TypeId;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::LazyLock;

use clap::{Arg, CommandFactory, ValueHint};

use migsim_format::{Durability, Layout};
use migsim_harness::bugs::Bug;
use migsim_harness::faults::Points;
use migsim_harness::sim::simfile::IoFault;

use crate::cli::Args;

/// What a flag's value is, to the generator and to the confinement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// No value (`--json`, `--help`).
    Switch,
    /// A path (`PathBuf`, `OsString`, or a value hint naming a path or a
    /// command), or a `String` clap was not told is something else
    /// (`ValueHint::Other`): the program may open it. Confined.
    Path,
    /// An integer; `size` when its value name says SIZE (`--ram 4G`).
    Int {
        /// Mostly sizes, not plain numbers.
        size: bool,
    },
    /// Two integers (`--seeds A..B`, `--shard K/N`).
    Pair,
    /// One of these names, or a list of them with the flag's delimiter.
    Names(&'static [&'static str]),
    /// A name of [`Points::NAMED`] or a number.
    Points,
    /// `WRITER:INDEX:KIND` ([`Layout`], a number, [`IoFault`]).
    FailWrite,
    /// Text that is not a path (`ValueHint::Other`: a block name, QEMU's
    /// accelerator, bench parts): hostile names with `/`, `..` and control
    /// characters go to clap as they are.
    Text,
    /// A value type [`kind`] does not know: confined as a path, and the
    /// test `every_flag_value_has_a_known_kind` fails until it is known.
    Unknown,
}

impl Kind {
    /// Whether clap could hand the value to the program as a path (then
    /// its word is confined to the fuzz directory).
    pub fn is_path(self) -> bool {
        matches!(self, Kind::Path | Kind::Unknown)
    }
}

/// What an argument's value is, from clap's metadata. When in doubt, a
/// path.
pub fn kind(arg: &Arg) -> Kind {
    if !arg.get_action().takes_values() {
        return Kind::Switch;
    }
    let t = arg.get_value_parser().type_id();
    let is = |id: TypeId| t == id;
    if is(TypeId::of::<PathBuf>()) || is(TypeId::of::<OsString>()) {
        return Kind::Path;
    }
    let hint = arg.get_value_hint();
    if !matches!(hint, ValueHint::Unknown | ValueHint::Other) {
        // A path, a command, a URL...: anything else clap may hint at.
        return Kind::Path;
    }
    let ints = [
        TypeId::of::<u8>(),
        TypeId::of::<u16>(),
        TypeId::of::<u32>(),
        TypeId::of::<u64>(),
        TypeId::of::<usize>(),
        TypeId::of::<i8>(),
        TypeId::of::<i16>(),
        TypeId::of::<i32>(),
        TypeId::of::<i64>(),
        TypeId::of::<isize>(),
    ];
    if ints.into_iter().any(is) {
        let size = arg
            .get_value_names()
            .is_some_and(|n| n.iter().any(|n| n.as_str().contains("SIZE")));
        return Kind::Int { size };
    }
    if is(TypeId::of::<(u64, u64)>()) {
        Kind::Pair
    } else if is(TypeId::of::<Bug>()) {
        Kind::Names(bug_names())
    } else if is(TypeId::of::<Layout>()) {
        Kind::Names(layout_names())
    } else if is(TypeId::of::<Durability>()) {
        Kind::Names(durability_names())
    } else if is(TypeId::of::<Points>()) {
        Kind::Points
    } else if is(TypeId::of::<(Layout, usize, IoFault)>()) {
        Kind::FailWrite
    } else if is(TypeId::of::<String>()) {
        if hint == ValueHint::Other {
            Kind::Text
        } else {
            Kind::Path
        }
    } else {
        Kind::Unknown
    }
}

/// Plausible words: block and machine names, a scenario name, an error.
pub const WORDS: &[&str] = &[
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

/// Every bug variant's name, as `--bug` takes it.
pub fn bug_names() -> &'static [&'static str] {
    static N: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
        Bug::ALL
            .into_iter()
            .chain(Bug::CONCURRENCY)
            .chain(Bug::FAULTS)
            .chain(Bug::HUGE)
            .map(Bug::name)
            .collect()
    });
    N.as_slice()
}

/// The layouts' names (`--writers`).
pub fn layout_names() -> &'static [&'static str] {
    static N: LazyLock<Vec<&'static str>> =
        LazyLock::new(|| Layout::ALL.into_iter().map(Layout::name).collect());
    N.as_slice()
}

/// The durability modes' names (`faults --mode`).
pub fn durability_names() -> &'static [&'static str] {
    static N: LazyLock<Vec<&'static str>> =
        LazyLock::new(|| Durability::ALL.into_iter().map(Durability::name).collect());
    N.as_slice()
}

/// The named crash points (`faults --points`).
pub fn point_names() -> &'static [&'static str] {
    static N: LazyLock<Vec<&'static str>> =
        LazyLock::new(|| Points::NAMED.into_iter().map(|(n, _)| n).collect());
    N.as_slice()
}

/// The I/O faults' names (`--fail-write`).
pub fn io_fault_names() -> &'static [&'static str] {
    static N: LazyLock<Vec<&'static str>> =
        LazyLock::new(|| IoFault::ALL.into_iter().map(IoFault::name).collect());
    N.as_slice()
}

/// A plain value of `kind` (none for a switch): the first name of its
/// list, a small number, the directory for a path.
pub fn tame_value(kind: Kind) -> Option<String> {
    Some(match kind {
        Kind::Switch => return None,
        Kind::Path | Kind::Unknown => "@dir".into(),
        Kind::Int { .. } => "1".into(),
        Kind::Pair => "0..1".into(),
        Kind::Names(list) => list.first()?.to_string(),
        Kind::Points => point_names().first()?.to_string(),
        Kind::FailWrite => format!("{}:0:{}", layout_names()[0], io_fault_names()[0]),
        Kind::Text => WORDS[0].into(),
    })
}

/// One spelling of a flag (`--output` and `-o` are two).
#[derive(Clone, Debug)]
pub struct Flag {
    /// `--long` or `-s`.
    pub word: String,
    /// Its value.
    pub kind: Kind,
    /// The delimiter of a list value.
    pub delimiter: Option<char>,
}

/// One command path: `[]` (migsim itself), `["run"]`, `["qemu", "run"]`...
#[derive(Debug)]
pub struct Command {
    /// The subcommand names from the root.
    pub path: Vec<String>,
    /// Every spelling of every flag it takes (positionals are not flags).
    pub flags: Vec<Flag>,
    /// Its subcommands' names and aliases.
    pub children: Vec<String>,
    /// What it requires, tamely: `@scenario` for each required
    /// positional, each required flag with a plain value of its kind.
    pub required: Vec<String>,
}

/// What the confinement does with the word after a flag spelling, over
/// every command that has the spelling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum After {
    /// A switch everywhere: the next word is a word of its own.
    Nothing,
    /// Takes a value that is not a path, everywhere: the next word is
    /// kept (`--seed 5`).
    Value,
    /// A path somewhere, or a switch here and a value there: the next
    /// word is confined, whatever clap makes of it.
    Confined,
}

/// The whole command line.
#[derive(Debug)]
pub struct Model {
    /// Every command path: the user's first ([`Model::user`] of them),
    /// then clap's `help` ones.
    pub commands: Vec<Command>,
    /// How many of `commands` are not clap's `help` commands.
    pub user: usize,
    /// Every flag spelling of any command, once, and one no command has
    /// (`--bogus`, last).
    pub any_flags: Vec<Flag>,
    /// Command paths to their index in `commands`.
    index: BTreeMap<Vec<String>, usize>,
    /// Flag spellings to what follows them.
    after: BTreeMap<String, After>,
}

/// The model, built once.
pub fn model() -> &'static Model {
    static M: LazyLock<Model> = LazyLock::new(Model::build);
    &M
}

/// Every spelling of `arg`: `--long`, `-s` and their aliases.
pub fn spellings(arg: &Arg) -> Vec<String> {
    let mut w = Vec::new();
    w.extend(arg.get_long().map(|l| format!("--{l}")));
    w.extend(arg.get_short().map(|s| format!("-{s}")));
    for a in arg.get_all_aliases().unwrap_or_default() {
        w.push(format!("--{a}"));
    }
    for s in arg.get_all_short_aliases().unwrap_or_default() {
        w.push(format!("-{s}"));
    }
    w
}

fn walk(c: &clap::Command, path: Vec<String>, out: &mut Vec<Command>) {
    let mut flags = Vec::new();
    for a in c.get_arguments().filter(|a| !a.is_positional()) {
        for word in spellings(a) {
            flags.push(Flag {
                word,
                kind: kind(a),
                delimiter: a.get_value_delimiter(),
            });
        }
    }
    let mut required = Vec::new();
    for a in c.get_arguments().filter(|a| a.is_required_set()) {
        if a.is_positional() {
            required.push("@scenario".into());
        } else if let Some(w) = spellings(a).into_iter().next() {
            required.push(w);
            required.extend(tame_value(kind(a)));
        }
    }
    let mut children = Vec::new();
    for s in c.get_subcommands() {
        children.push(s.get_name().to_string());
        children.extend(s.get_all_aliases().map(str::to_string));
    }
    out.push(Command {
        path: path.clone(),
        flags,
        children,
        required,
    });
    for s in c.get_subcommands() {
        let mut p = path.clone();
        p.push(s.get_name().to_string());
        walk(s, p, out);
        // An alias reaches the same command.
        for a in s.get_all_aliases() {
            let mut p = path.clone();
            p.push(a.to_string());
            walk(s, p, out);
        }
    }
}

impl Model {
    fn build() -> Model {
        let mut root = Args::command();
        // Adds what clap adds when it parses: --help, --version, `help`.
        root.build();
        let mut all = Vec::new();
        walk(&root, Vec::new(), &mut all);
        let (mut commands, help): (Vec<Command>, Vec<Command>) = all
            .into_iter()
            .partition(|c| !c.path.iter().any(|p| p == "help"));
        let user = commands.len();
        commands.extend(help);
        let index = commands
            .iter()
            .enumerate()
            .map(|(i, c)| (c.path.clone(), i))
            .collect();
        let mut kinds: BTreeMap<String, Vec<Kind>> = BTreeMap::new();
        let mut any_flags: Vec<Flag> = Vec::new();
        for f in commands.iter().flat_map(|c| &c.flags) {
            kinds.entry(f.word.clone()).or_default().push(f.kind);
            if !any_flags.iter().any(|g| g.word == f.word) {
                any_flags.push(f.clone());
            }
        }
        any_flags.push(Flag {
            word: "--bogus".into(),
            kind: Kind::Int { size: false },
            delimiter: None,
        });
        let after = kinds
            .into_iter()
            .map(|(w, ks)| {
                let a = if ks.iter().all(|k| *k == Kind::Switch) {
                    After::Nothing
                } else if ks.iter().all(|k| *k != Kind::Switch && !k.is_path()) {
                    After::Value
                } else {
                    After::Confined
                };
                (w, a)
            })
            .collect();
        Model {
            commands,
            user,
            any_flags,
            index,
            after,
        }
    }

    /// The command at `path`.
    pub fn command(&self, path: &[String]) -> Option<&Command> {
        self.index.get(path).map(|&i| &self.commands[i])
    }

    /// `migsim run`, what most inputs run.
    pub fn run(&self) -> &Command {
        self.command(&["run".to_string()])
            .expect("migsim has a `run` subcommand")
    }

    /// Command `n`: three in four of the user's commands, else any.
    pub fn pick(&self, n: u16) -> &Command {
        let k = usize::from(n / 4);
        if n % 4 < 3 {
            &self.commands[k % self.user]
        } else {
            &self.commands[k % self.commands.len()]
        }
    }

    /// What follows `word` if it is a known flag spelling.
    pub fn after(&self, word: &str) -> Option<After> {
        self.after.get(word).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every flag's value has a kind the generator knows; a new value
    /// type must be added to [`kind`] (it is confined until then).
    #[test]
    fn every_flag_value_has_a_known_kind() {
        let m = model();
        let unknown: Vec<String> = m
            .commands
            .iter()
            .flat_map(|c| {
                c.flags
                    .iter()
                    .filter(|f| f.kind == Kind::Unknown)
                    .map(move |f| format!("migsim {} {}", c.path.join(" "), f.word))
            })
            .collect();
        assert!(
            unknown.is_empty(),
            "flags whose value type src/fuzz_cli/model.rs's kind() does not know \
             (confined as paths meanwhile): {unknown:?}"
        );
    }

    /// The model sees the command line as it is: the subcommands, the
    /// flags that take paths and the names from the value types.
    #[test]
    fn the_model_is_the_command_line() {
        let m = model();
        let path = |s: &str| s.split_whitespace().map(str::to_string).collect::<Vec<_>>();
        for p in ["", "run", "qemu fuzz", "faults", "bench", "help qemu run"] {
            assert!(m.command(&path(p)).is_some(), "{p:?}");
        }
        let flag = |p: &str, w: &str| {
            m.command(&path(p))
                .unwrap()
                .flags
                .iter()
                .find(|f| f.word == w)
                .unwrap_or_else(|| panic!("{p} {w}"))
                .clone()
        };
        assert_eq!(flag("run", "--out").kind, Kind::Path);
        assert_eq!(flag("report", "-o").kind, Kind::Path);
        assert_eq!(flag("run", "--json").kind, Kind::Switch);
        assert_eq!(flag("run", "--ram").kind, Kind::Int { size: true });
        assert_eq!(flag("run", "--seed").kind, Kind::Int { size: false });
        assert_eq!(flag("run", "--bug").kind, Kind::Names(bug_names()));
        assert_eq!(flag("run", "--writers").delimiter, Some(','));
        assert_eq!(flag("faults", "--points").kind, Kind::Points);
        assert_eq!(flag("extract", "--block").kind, Kind::Text);
        assert!(bug_names().contains(&"page-index-32-bit"));
        for b in bug_names() {
            assert!(b.parse::<Bug>().is_ok(), "{b}");
        }
        assert_eq!(m.after("--out"), Some(After::Confined));
        assert_eq!(m.after("-o"), Some(After::Confined));
        assert_eq!(m.after("--seed"), Some(After::Value));
        assert_eq!(m.after("--json"), Some(After::Nothing));
        assert_eq!(m.after("--nope"), None);
        assert!(
            m.commands[..m.user]
                .iter()
                .all(|c| !c.path.contains(&"help".into()))
        );
    }
}
