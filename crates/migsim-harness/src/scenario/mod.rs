//! Scenario files (TOML): one seed and everything a run needs, plus what
//! the run must produce. The schema is documented in
//! docs/reference/scenario-format.md; unknown keys are errors so a typo
//! cannot silently change a test. Reading and checking a file is [`load`].

use serde::{Deserialize, Serialize};

use crate::sim::precopy::PrecopyParams;
use crate::sim::workload::WorkloadSpec;
use migsim_format::Layout;
use migsim_format::caps::{Capability, MultifdCompression, Profile, Transport};
use migsim_format::writer::RamBlockDesc;

/// The embedded default scenario (`migsim run` with no argument).
pub const DEFAULT_SCENARIO: &str = include_str!("../../../../scenarios/heavy-redirty.toml");

mod load;

pub use load::scenario_files;

/// A complete scenario.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name, used in reports.
    pub name: String,
    /// What the scenario shows.
    #[serde(default)]
    pub description: String,
    /// The one seed everything derives from.
    pub seed: u64,
    /// Guest shape.
    pub guest: GuestSpec,
    /// Guest access pattern.
    pub workload: WorkloadSpec,
    /// Writers, capabilities, transport.
    #[serde(default)]
    pub migration: MigrationSpec,
    /// Pre-copy parameters.
    pub parameters: PrecopyParams,
    /// The destination's settings.
    #[serde(default)]
    pub destination: DestinationSpec,
    /// QEMU's iteration structure under the seeded scheduler: vCPUs,
    /// multifd channels, a concurrent destination ([`crate::sched`]).
    /// Absent: the simple driver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<crate::sched::ConcurrencySpec>,
    /// What the run must produce.
    #[serde(default)]
    pub expect: Expect,
}

/// `[guest]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestSpec {
    /// Machine type written in the configuration section.
    #[serde(default = "default_machine")]
    pub machine: String,
    /// RAMBlocks in stream order.
    pub blocks: Vec<BlockSpec>,
    /// Share of pages written once before migration starts (0..=1).
    #[serde(default = "default_fill")]
    pub initial_fill: f64,
    /// Write migsim's simulated device sections (timer, cpu, serial).
    /// Off for files a real QEMU should load: it would parse them as its
    /// own devices' state.
    #[serde(default = "default_true")]
    pub devices: bool,
    /// Simulate in the extent mode ([`crate::sim::extent`]): page
    /// identities by range instead of bytes, for guests far larger than
    /// memory (fixed-ram writer only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub extents: bool,
}

fn default_true() -> bool {
    true
}

fn default_machine() -> String {
    "pc-i440fx-10.0".into()
}
fn default_fill() -> f64 {
    1.0
}

/// One RAMBlock: name and size (bytes, or a string like "64M", "4K"),
/// and whether shared memory backs it (`shared = true`: with
/// x-ignore-shared the migration skips it and the destination keeps the
/// same memory; see [`RamBlockDesc::shared`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockSpec {
    /// idstr.
    pub name: String,
    /// Size.
    pub size: Size,
    /// Backed by shared memory.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared: bool,
}

impl BlockSpec {
    /// The block as the writer and reader declare it.
    pub fn desc(&self) -> RamBlockDesc {
        RamBlockDesc {
            name: self.name.clone(),
            used_length: self.size.0,
            shared: self.shared,
        }
    }
}

/// A byte size: an integer, or a string with a K/M/G suffix (powers of 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "SizeRepr", into = "SizeRepr")]
pub struct Size(pub u64);

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum SizeRepr {
    Bytes(u64),
    Text(String),
}

impl TryFrom<SizeRepr> for Size {
    type Error = String;
    fn try_from(r: SizeRepr) -> Result<Self, String> {
        match r {
            SizeRepr::Bytes(b) => Ok(Size(b)),
            SizeRepr::Text(t) => parse_size(&t).map(Size),
        }
    }
}

impl From<Size> for SizeRepr {
    fn from(s: Size) -> Self {
        SizeRepr::Bytes(s.0)
    }
}

/// Parse "64M", "4K", "1G", "4096".
pub fn parse_size(t: &str) -> Result<u64, String> {
    let t = t.trim();
    let (num, mul) = match t.chars().last() {
        Some('K' | 'k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('M' | 'm') => (&t[..t.len() - 1], 1 << 20),
        Some('G' | 'g') => (&t[..t.len() - 1], 1 << 30),
        Some('T' | 't') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mul))
        .ok_or_else(|| format!("bad size {t:?}: use bytes or a number with K, M, G or T"))
}

/// `[migration]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrationSpec {
    /// Writers driven in lockstep from the same simulation.
    #[serde(default = "default_writers")]
    pub writers: Vec<Layout>,
    /// Capabilities set on every writer (the fixed-ram writer adds
    /// fixed-ram itself), in the order given.
    #[serde(default)]
    pub capabilities: Vec<Capability>,
    /// Transport.
    #[serde(default = "default_transport")]
    pub transport: Transport,
    /// Rule set and layout capability name: "fixed-ram" (the proposal) or
    /// "mapped-ram" (QEMU 10).
    #[serde(default)]
    pub profile: Profile,
    /// multifd-compression parameter.
    #[serde(default)]
    pub multifd_compression: MultifdCompression,
    /// direct-io parameter.
    #[serde(default)]
    pub direct_io: bool,
}

fn default_writers() -> Vec<Layout> {
    vec![Layout::Sequential, Layout::FixedRam]
}
fn default_transport() -> Transport {
    Transport::File
}

impl MigrationSpec {
    /// Whether `cap` is among the capabilities set on every writer.
    pub fn has(&self, cap: Capability) -> bool {
        self.capabilities.contains(&cap)
    }
}

impl Default for MigrationSpec {
    fn default() -> Self {
        Self {
            writers: default_writers(),
            capabilities: Vec::new(),
            transport: default_transport(),
            profile: Profile::default(),
            multifd_compression: MultifdCompression::default(),
            direct_io: false,
        }
    }
}

/// `[destination]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationSpec {
    /// The destination's layout capability (fixed-ram or mapped-ram, per
    /// the profile); absent = same as the source.
    #[serde(default)]
    pub fixed_ram: Option<bool>,
    /// Destination memory starts filled with garbage instead of zeros.
    #[serde(default)]
    pub dirty_memory: bool,
    /// The destination's RAMBlocks, when they differ from the guest's
    /// (e.g. a larger pc.ram): every file is loaded against them and must
    /// be refused with QEMU's `Size mismatch` (or unknown block) message.
    #[serde(default)]
    pub blocks: Option<Vec<BlockSpec>>,
}

/// The verdict of a run.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Migrated; every oracle invariant held.
    #[default]
    Pass,
    /// Migrated, but an invariant failed.
    Fail,
    /// Refused (capabilities, transport, destination).
    Error,
}

impl Verdict {
    /// Lower-case name, as in scenario files.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Error => "error",
        }
    }
}

/// `[expect]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Expected verdict.
    #[serde(default)]
    pub verdict: Verdict,
    /// With verdict "error": the exact message.
    #[serde(default)]
    pub error: Option<String>,
    /// The run's digest; absent = not checked.
    #[serde(default)]
    pub digest: Option<String>,
    /// Sequential file at least this many times guest RAM.
    #[serde(default)]
    pub min_sequential_ram_ratio: Option<f64>,
    /// Whether switchover came from the downtime budget (true) or from
    /// max_passes (false).
    #[serde(default)]
    pub converged: Option<bool>,
}

impl Scenario {
    /// The scenario as TOML, as `from_toml` reads it back.
    pub fn to_toml(&self) -> Result<String, String> {
        toml::to_string(self).map_err(|e| e.to_string())
    }

    /// The seed of the guest's page contents (see [`crate::sim::content`]),
    /// one stream of the scenario seed.
    pub fn content_seed(&self) -> u64 {
        crate::sim::rng::derive(self.seed, "content")
    }

    /// The guest's blocks.
    pub fn blocks(&self) -> Vec<RamBlockDesc> {
        self.guest.blocks.iter().map(BlockSpec::desc).collect()
    }
}
