//! Scenario files (TOML): one seed and everything a run needs, plus what
//! the run must produce. The schema is documented in the README; unknown
//! keys are errors so a typo cannot silently change a test.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::sim::precopy::PrecopyParams;
use crate::sim::workload::WorkloadSpec;
use migsim_format::Layout;
use migsim_format::caps::{Capability, MultifdCompression, Profile, Transport};
use migsim_format::writer::RamBlockDesc;

/// The embedded default scenario (`migsim run` with no argument).
pub const DEFAULT_SCENARIO: &str = include_str!("../../../scenarios/heavy-redirty.toml");

/// Largest guest a scenario may describe.
pub const MAX_GUEST_RAM: u64 = 256 << 30;

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

/// One RAMBlock: name and size (bytes, or a string like "64M", "4K").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockSpec {
    /// idstr.
    pub name: String,
    /// Size.
    pub size: Size,
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
        _ => (t, 1),
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mul))
        .ok_or_else(|| format!("bad size {t:?}: use bytes or a number with K, M or G"))
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
    /// Parse TOML text.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let s: Scenario = toml::from_str(text).map_err(|e| e.to_string())?;
        s.validate()?;
        Ok(s)
    }

    /// The scenario as TOML, as `from_toml` reads it back.
    pub fn to_toml(&self) -> Result<String, String> {
        toml::to_string(self).map_err(|e| e.to_string())
    }

    /// Read and parse a file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::from_toml(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The embedded default.
    pub fn default_scenario() -> Self {
        Self::from_toml(DEFAULT_SCENARIO).expect("the embedded default scenario parses")
    }

    /// The guest's blocks.
    pub fn blocks(&self) -> Vec<RamBlockDesc> {
        self.guest
            .blocks
            .iter()
            .map(|b| RamBlockDesc {
                name: b.name.clone(),
                used_length: b.size.0,
            })
            .collect()
    }

    /// Check everything a run relies on, with messages naming the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.guest.blocks.is_empty() {
            return Err("guest.blocks must list at least one block".into());
        }
        let total: u64 = self.guest.blocks.iter().map(|b| b.size.0).sum();
        // The guest keeps 8 bytes of state a page (plus as much for the
        // oracle's destination): 256 GiB needs about 1 GiB.
        if total > MAX_GUEST_RAM {
            return Err(format!(
                "guest RAM {total} bytes exceeds the simulator's 256 GiB limit"
            ));
        }
        for (i, b) in self.guest.blocks.iter().enumerate() {
            if self.guest.blocks[..i].iter().any(|o| o.name == b.name) {
                return Err(format!("guest block {} is listed twice", b.name));
            }
            if b.size.0 == 0 || b.size.0 % 4096 != 0 {
                return Err(format!(
                    "guest block {}: size {} must be a positive multiple of 4096",
                    b.name, b.size.0
                ));
            }
            if b.name.is_empty() || b.name.len() > 255 {
                return Err(format!(
                    "guest block name {:?} must be 1..=255 bytes",
                    b.name
                ));
            }
        }
        if !(0.0..=1.0).contains(&self.guest.initial_fill) {
            return Err("guest.initial_fill must be between 0 and 1".into());
        }
        if self.migration.writers.is_empty() {
            return Err("migration.writers must name at least one writer".into());
        }
        if self.expect.verdict == Verdict::Error && self.expect.error.is_none() {
            return Err("expect.verdict = \"error\" needs expect.error (the exact message)".into());
        }
        self.workload.validate()?;
        self.parameters.validate()
    }
}

/// Scenario files named by `paths`: files as given, directories searched
/// recursively for `*.toml` in sorted order.
pub fn scenario_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    fn walk(p: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
        if p.is_dir() {
            let mut entries: Vec<_> = std::fs::read_dir(p)
                .map_err(|e| format!("{}: {e}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            entries.sort();
            for e in entries {
                if e.is_dir() || e.extension().is_some_and(|x| x == "toml") {
                    walk(&e, out)?;
                }
            }
            Ok(())
        } else if p.exists() {
            out.push(p.to_path_buf());
            Ok(())
        } else {
            Err(format!("{}: no such file or directory", p.display()))
        }
    }
    let mut out = Vec::new();
    for p in paths {
        walk(p, &mut out)?;
    }
    Ok(out)
}
