//! Scenario files (TOML): one seed and everything a run needs, plus what
//! the run must produce. The schema is documented in docs/reference/scenario-format.md; unknown
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

pub use crate::limits::MAX_GUEST_RAM;
use crate::limits::{MAX_BLOCKS, MAX_PASSES, MAX_SCENARIO_BYTES};

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

    /// Read and parse a file: at most [`MAX_SCENARIO_BYTES`] of it are
    /// read (a device or FIFO given by mistake is not read without end),
    /// and a directory is refused.
    pub fn load(path: &Path) -> Result<Self, String> {
        use std::io::Read;
        let p = path.display();
        if path.is_dir() {
            return Err(format!("{p}: is a directory, not a scenario file"));
        }
        let f = std::fs::File::open(path).map_err(|e| format!("{p}: {e}"))?;
        let mut text = String::new();
        f.take(MAX_SCENARIO_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(|e| format!("{p}: {e}"))?;
        if text.len() as u64 > MAX_SCENARIO_BYTES {
            return Err(format!(
                "{p}: a scenario file is at most {MAX_SCENARIO_BYTES} bytes"
            ));
        }
        Self::from_toml(&text).map_err(|e| format!("{p}: {e}"))
    }

    /// The embedded default.
    pub fn default_scenario() -> Self {
        Self::from_toml(DEFAULT_SCENARIO).expect("the embedded default scenario parses")
    }

    /// The guest's blocks.
    pub fn blocks(&self) -> Vec<RamBlockDesc> {
        self.guest.blocks.iter().map(BlockSpec::desc).collect()
    }

    /// Check everything a run relies on, with messages naming the field,
    /// and the limits of [`crate::limits`].
    pub fn validate(&self) -> Result<(), String> {
        check_name(&self.name)?;
        check_blocks(
            "guest.blocks",
            &self.guest.blocks,
            crate::limits::max_guest_ram(self),
        )?;
        if let Some(d) = &self.destination.blocks {
            check_blocks("destination.blocks", d, crate::limits::max_guest_ram(self))?;
        }
        if !(0.0..=1.0).contains(&self.guest.initial_fill) {
            return Err("guest.initial_fill must be between 0 and 1".into());
        }
        let m = &self.migration;
        if m.writers.is_empty() {
            return Err("migration.writers must name at least one writer".into());
        }
        for (i, w) in m.writers.iter().enumerate() {
            if m.writers[..i].contains(w) {
                return Err(format!("migration.writers lists {w} twice"));
            }
        }
        if let Some(c) = m
            .capabilities
            .iter()
            .find(|c| matches!(c, Capability::FixedRam | Capability::MappedRam))
        {
            return Err(format!(
                "migration.capabilities: {} is the layout capability, which the fixed-ram writer \
                 sets itself; choose the layout with migration.writers (and the name with \
                 migration.profile)",
                c.name()
            ));
        }
        if let Some(c) = &self.concurrency {
            c.validate(m.capabilities.contains(&Capability::Multifd))?;
            if self.guest.extents {
                return Err(
                    "guest.extents and [concurrency] do not go together: the concurrency \
                     model copies page bytes"
                        .into(),
                );
            }
            if self.destination.blocks.is_some() || self.destination.fixed_ram.is_some() {
                return Err(
                    "destination.blocks and destination.fixed_ram are not modelled with \
                            [concurrency]: drop one of them"
                        .into(),
                );
            }
        }
        let e = &self.expect;
        match (e.verdict, &e.error) {
            (Verdict::Error, None) => {
                return Err(
                    "expect.verdict = \"error\" needs expect.error (the exact message)".into(),
                );
            }
            (Verdict::Pass | Verdict::Fail, Some(_)) => {
                return Err(format!(
                    "expect.error is only meaningful with expect.verdict = \"error\", not \"{}\"",
                    e.verdict.name()
                ));
            }
            _ => {}
        }
        if let Some(d) = &e.digest
            && (d.len() != 64 || !d.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')))
        {
            return Err(format!(
                "expect.digest {d:?} must be 64 lower-case hex digits (as `migsim run` prints it)"
            ));
        }
        if let Some(r) = e.min_sequential_ram_ratio
            && !(r.is_finite() && r >= 0.0)
        {
            return Err(format!(
                "expect.min_sequential_ram_ratio = {r} must be a finite number >= 0"
            ));
        }
        self.workload.validate()?;
        self.parameters.validate()?;
        if self.parameters.max_passes > MAX_PASSES {
            return Err(format!(
                "parameters.max_passes = {} exceeds the limit of {MAX_PASSES}",
                self.parameters.max_passes
            ));
        }
        crate::limits::check_scenario(self)
    }
}

/// A scenario name becomes part of file names (`--file-dir`, regressions):
/// 1 to 128 of `A-Z a-z 0-9 . _ -`, not starting with a dot.
fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "name {name:?} must be 1 to 128 of A-Z a-z 0-9 . _ - and not start with a dot \
             (it names files)"
        ))
    }
}

/// Block lists: 1 to [`MAX_BLOCKS`] blocks, distinct names of 1..=255
/// bytes, sizes positive multiples of 4 KiB, `max_ram` in all
/// ([`crate::limits::max_guest_ram`]).
fn check_blocks(field: &str, blocks: &[BlockSpec], max_ram: u64) -> Result<(), String> {
    if blocks.is_empty() {
        return Err(format!("{field} must list at least one block"));
    }
    if blocks.len() > MAX_BLOCKS {
        return Err(format!(
            "{field} lists {} blocks; the limit is {MAX_BLOCKS}",
            blocks.len()
        ));
    }
    let mut seen = std::collections::HashSet::with_capacity(blocks.len());
    let mut total = 0u64;
    for b in blocks {
        if !seen.insert(b.name.as_str()) {
            return Err(format!("{field}: block {} is listed twice", b.name));
        }
        if b.name.is_empty() || b.name.len() > 255 {
            return Err(format!(
                "{field}: block name {:?} must be 1..=255 bytes",
                b.name
            ));
        }
        if b.size.0 == 0 || b.size.0 % 4096 != 0 {
            return Err(format!(
                "{field}: block {}: size {} must be a positive multiple of 4096",
                b.name, b.size.0
            ));
        }
        total = total.saturating_add(b.size.0);
        if total > max_ram {
            return Err(crate::limits::guest_ram_refusal(field, total, max_ram));
        }
    }
    Ok(())
}

/// Scenario files named by `paths`: files as given, directories searched
/// recursively for `*.toml` in sorted order. A directory reached twice
/// (a symlink cycle, or two links to one directory) is walked once.
pub fn scenario_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    use std::os::unix::fs::MetadataExt;
    fn walk(
        p: &Path,
        out: &mut Vec<PathBuf>,
        seen: &mut std::collections::HashSet<(u64, u64)>,
    ) -> Result<(), String> {
        let meta = std::fs::metadata(p).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => format!("{}: no such file or directory", p.display()),
            _ => format!("{}: {e}", p.display()),
        })?;
        if meta.is_dir() {
            if !seen.insert((meta.dev(), meta.ino())) {
                return Ok(());
            }
            let mut entries: Vec<_> = std::fs::read_dir(p)
                .map_err(|e| format!("{}: {e}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            entries.sort();
            for e in entries {
                if e.is_dir() || e.extension().is_some_and(|x| x == "toml") {
                    walk(&e, out, seen)?;
                }
            }
        } else {
            out.push(p.to_path_buf());
        }
        Ok(())
    }
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for p in paths {
        walk(p, &mut out, &mut seen)?;
    }
    Ok(out)
}
