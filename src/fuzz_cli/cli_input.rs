//! The whole structured input of the `cli` target: the scenario document,
//! byte mutations of its text, and the command line, decoded with one
//! hostility level.

use arbitrary::{Arbitrary, Unstructured};

use super::argv::Argv;
use super::input::{Doc, Rare, TextMutation, set_level};

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

impl<'a> Arbitrary<'a> for CliInput {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        // 0 (tame) for 3 inputs in 8, else 0 to 53.
        let level = u8::arbitrary(u)?.saturating_sub(96) / 3;
        set_level(level);
        Ok(CliInput {
            level,
            scenario: u.arbitrary()?,
            mutations: u.arbitrary()?,
            argv: u.arbitrary()?,
        })
    }
}
