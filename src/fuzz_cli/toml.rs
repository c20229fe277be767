//! The scenario document of a structured input rendered as TOML text
//! ([`Doc::render`]), and its values as command-line words: the names of
//! the schema's lists, hostile numbers, sizes, floats and strings spelled
//! out, blocks inline or as tables, unknown keys where they were drawn.

use std::fmt::Write as _;
use std::sync::LazyLock;

use super::input::*;
use super::model::{self, WORDS};

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
/// Every list of names: a [`Pick::AnyName`] is a name of another list.
/// The bug variants and the bench's parts are the command line's own.
pub fn all_names() -> &'static [&'static [&'static str]] {
    static ALL: LazyLock<Vec<&'static [&'static str]>> = LazyLock::new(|| {
        vec![
            WORKLOAD_KINDS,
            WRITERS,
            CAPABILITIES,
            LAYOUT_CAPABILITIES,
            TRANSPORTS,
            PROFILES,
            COMPRESSIONS,
            VERDICTS,
            model::bug_names(),
            &crate::bench::PARTS,
        ]
    });
    &ALL
}
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

/// The `n`-th name of `list`, modulo its length.
pub fn pick<'a>(list: &[&'a str], n: u8) -> &'a str {
    list[usize::from(n) % list.len()]
}

impl Pick {
    /// The name it picks from `list`.
    pub fn render(&self, list: &[&str]) -> String {
        match *self {
            Pick::Name(n) => pick(list, n).into(),
            Pick::Upper(n) => pick(list, n).to_uppercase(),
            Pick::Underscore(n) => pick(list, n).replace('-', "_"),
            Pick::AnyName(n) => {
                let all = all_names();
                pick(all[usize::from(n) % all.len()], n / 10).into()
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
    pub fn word(&self) -> String {
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
    pub fn word(&self) -> String {
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
    /// The string.
    pub fn string(&self) -> String {
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
