//! Reading scenario files and checking them: the bounded read of a file,
//! the TOML parse, every field's validation with messages naming it, and
//! the resource limits of [`crate::limits`]. Every way a scenario enters
//! migsim (a file, the embedded default, explore's generator, the `cli`
//! fuzz target) goes through [`Scenario::from_toml`] or
//! [`Scenario::validate`].

use std::path::{Path, PathBuf};

use migsim_format::caps::Capability;

use super::{BlockSpec, DEFAULT_SCENARIO, Scenario, Verdict};
use crate::limits::{MAX_BLOCKS, MAX_PASSES, MAX_SCENARIO_BYTES};

impl Scenario {
    /// Parse TOML text.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let s: Scenario = toml::from_str(text).map_err(|e| e.to_string())?;
        s.validate()?;
        Ok(s)
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
