//! Replaying scenario files against their recorded expectations (verdict,
//! refusal text, digest, size ratio), and blessing: recording a run's
//! digest in its file's `[expect]` table after a deliberate change.

use std::path::{Path, PathBuf};

use crate::run::{Difference, DifferenceKind, RunOptions, check_expectations, run};
use crate::scenario::{Scenario, Verdict};

/// One scenario file replayed.
#[derive(Debug)]
pub struct Replayed {
    /// The file.
    pub path: PathBuf,
    /// What came of it.
    pub outcome: ReplayOutcome,
}

/// What replaying one file gave.
#[derive(Debug)]
pub enum ReplayOutcome {
    /// The file does not parse or validate.
    Unreadable(String),
    /// It ran.
    Ran {
        /// Its seed.
        seed: u64,
        /// The run's verdict.
        verdict: Verdict,
        /// How the run differed from the file's expectations; empty when
        /// it met them. With `bless`, a digest difference is not listed
        /// when the digest was recorded.
        differences: Vec<Difference>,
        /// The digest was written into the file (`bless`).
        blessed: bool,
    },
}

impl Replayed {
    /// Whether the file met its expectations.
    pub fn ok(&self) -> bool {
        matches!(&self.outcome, ReplayOutcome::Ran { differences, .. } if differences.is_empty())
    }
}

/// Run `path` and compare with its expectations. With `bless`, a run whose
/// only difference is its digest gets that digest recorded in the file;
/// a run that differs otherwise is reported and its file left alone (a
/// failing scenario's digest must not become the expectation).
pub fn replay_file(path: &Path, bless: bool) -> Result<Replayed, String> {
    let s = match Scenario::load(path) {
        Ok(s) => s,
        Err(e) => {
            return Ok(Replayed {
                path: path.to_path_buf(),
                outcome: ReplayOutcome::Unreadable(e),
            });
        }
    };
    let report = run(&s, &RunOptions::default());
    let mut differences = check_expectations(&s, &report);
    let mut blessed = false;
    if bless
        && differences
            .iter()
            .all(|d| d.kind() == DifferenceKind::Digest)
    {
        if !differences.is_empty() || s.expect.digest.is_none() {
            bless_digest(path, &report.digest)?;
            blessed = true;
        }
        differences.clear();
    }
    Ok(Replayed {
        path: path.to_path_buf(),
        outcome: ReplayOutcome::Ran {
            seed: s.seed,
            verdict: report.verdict,
            differences,
            blessed,
        },
    })
}

/// Set `digest = "..."` in the file's `[expect]` table, keeping every
/// other line as it is.
pub fn bless_digest(path: &Path, digest: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let line = format!("digest = \"{digest}\"");
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    if let Some(l) = lines
        .iter_mut()
        .find(|l| l.trim_start().starts_with("digest"))
    {
        *l = line;
    } else if let Some(i) = lines.iter().position(|l| l.trim() == "[expect]") {
        lines.insert(i + 1, line);
    } else {
        lines.push(String::new());
        lines.push("[expect]".into());
        lines.push(line);
    }
    std::fs::write(path, lines.join("\n") + "\n")
        .map_err(|e| format!("cannot record the digest in {}: {e}", path.display()))
}
