//! The parts of the `cli` target's structured input and how bytes decode
//! into them (`Arbitrary`, as libfuzzer-sys decodes it): the scenario
//! document from typed fields with good and hostile values ([`Doc`]),
//! byte mutations of its text, and the typed values the command line
//! ([`super::argv`]) is built from. Decoding is weighted by a per-input
//! hostility level ([`choose`], set by [`set_level`]); the whole input is
//! [`super::cli_input::CliInput`]. Rendering the document to TOML is
//! [`super::toml`].

use arbitrary::{Arbitrary, Unstructured};

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
    /// Apply it to the text `t`.
    pub fn apply(&self, t: &mut Vec<u8>) {
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

/// `Some` one time in 8.
#[derive(Debug)]
pub struct Rare<T>(pub Option<T>);

/// `Some` 15 times in 16.
#[derive(Debug)]
pub struct Often<T>(pub Option<T>);

thread_local! {
    /// The hostility level of the input being decoded (see
    /// [`super::cli_input::CliInput`]).
    static LEVEL: std::cell::Cell<u8> = const { std::cell::Cell::new(0) };
}

/// Decode what follows with hostility `level` (on this thread).
pub fn set_level(level: u8) {
    LEVEL.with(|l| l.set(level));
}

/// Variant `i` with weight `weights[i]`, from one byte, if another byte
/// is below the input's hostility level; else the first, tamest (also
/// when the data has run out).
pub fn choose(u: &mut Unstructured<'_>, weights: &[u32]) -> arbitrary::Result<usize> {
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

impl<'a> Arbitrary<'a> for Writers {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(match choose(u, &[1, 1])? {
            0 => Writers::Valid(u.arbitrary()?),
            _ => Writers::Any(u.arbitrary()?),
        })
    }
}
