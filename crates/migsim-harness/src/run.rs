//! Running a scenario end to end, and what the run's expectations say of
//! it. [`run`] picks the mode: the extent mode ([`crate::sim::extent`]),
//! QEMU's iteration under the scheduler ([`crate::sched::run`]) or the
//! byte-level simulation here; each goes set-up, drive, judge, report
//! through the shared stages of [`crate::pipeline`].
//! [`check_expectations`] compares the report with the scenario's
//! `[expect]` table.

use serde::Serialize;

use crate::oracle::{Invariant, InvariantResult, WrittenFile};
use crate::pipeline::report::{digest_with, file_hashes, refused};
use crate::pipeline::setup::{
    Driven, Writers, destination_blocks, destination_layout_refusal, devices, disk_failed,
    guest_and_workload, oracle_input, start_writers,
};
use crate::scenario::{Scenario, Verdict};
use crate::sim::dest::VerifyingDestination;
use crate::sim::precopy::run_precopy;
use crate::sim::simfile::SimFile;
use migsim_format::reader::{LoadOptions, load};
use migsim_format::{Layout, SaveError};

pub use crate::pipeline::options::{Progress, RunOptions};
pub use crate::pipeline::report::{ConcurrencyFigures, FileReport, RunReport};
pub use crate::pipeline::setup::writer_caps;

/// Run a scenario, with a bug variant, files and channels as `o` says
/// (`RunOptions::default()`: correct code, files in memory, one channel).
pub fn run(s: &Scenario, o: &RunOptions) -> RunReport {
    if s.guest.extents {
        crate::sim::extent::run(s, o)
    } else if let Some(spec) = &s.concurrency {
        crate::sched::run::run(s, o, spec)
    } else {
        run_bytes(s, o)
    }
}

/// The byte-level mode: every page's bytes generated, written by every
/// writer, read back and judged.
fn run_bytes(s: &Scenario, o: &RunOptions) -> RunReport {
    let mut report = RunReport::new(s);
    let Writers { writers, caps } = match start_writers(s, o) {
        Ok(w) => w,
        Err(end) => return report.ended(end),
    };
    let channels = o.channels.max(1);
    let blocks = s.blocks();
    let (mut guest, mut workload) = guest_and_workload(s, "workload");
    let result = run_precopy(
        &mut guest,
        &mut workload,
        &s.parameters,
        writers,
        |g| devices(s, g),
        o.bug,
        channels,
        &o.progress_fn(),
    );
    let (outcome, mut files) = match result {
        Ok(x) => x,
        Err(SaveError::Io(e)) if o.file_dir.is_some() => {
            return report.environment(disk_failed(o, &e));
        }
        Err(e @ SaveError::Io(_)) if o.io_fault.is_some() => return report.error(e.to_string()),
        Err(e) => return refused(report, e.to_string(), &SimFile::new()),
    };
    // Complete: the files on disk replace what was at their paths (a run
    // that failed above dropped them, leaving the previous files).
    for f in files.iter_mut() {
        if let Err(e) = f.commit() {
            return report.environment(disk_failed(o, &e));
        }
    }
    let devs = devices(s, &guest);
    report.record_drive(&outcome);
    let oracle = oracle_input(
        s,
        o,
        &blocks,
        &devs,
        Driven {
            states: guest.states(),
            sends: &outcome.sends,
            passes: outcome.passes,
            part_sections: u64::from(outcome.passes),
            max_part_sections: u64::from(s.parameters.max_passes),
            channels,
        },
    );
    report.fixed_ram_bound = oracle.fixed_ram_bound();

    // The destination's own fixed-ram setting, when the scenario gives one
    // (only validated capabilities matter to the load).
    if let Some(e) = files.iter().find_map(|f| destination_layout_refusal(s, f)) {
        report.verdict = Verdict::Error;
        report.error = Some(e);
    }

    // The destination's own RAMBlocks, when the scenario gives them: each
    // file is loaded against them (block names and used_length checked for
    // both layouts; QEMU 10.0.2 skips the used_length check for mapped-ram).
    if let (Verdict::Pass, Some(local)) = (report.verdict, destination_blocks(s)) {
        for ((_, caps), f) in caps.iter().zip(&files) {
            let opts = LoadOptions {
                machine: Some(s.guest.machine.clone()),
                caps: Some(*caps),
                skip_page_data: true,
                ..LoadOptions::default()
            };
            let mut dest = VerifyingDestination::new(report.content_seed, &local, false);
            if let Err(e) = load(f, &opts, &mut dest) {
                report.verdict = Verdict::Error;
                report.error = Some(e.to_string());
                break;
            }
        }
    }

    // The files' content hashes, the digest's costly part, on a thread of
    // their own while the oracle judges (whose serial parts leave a CPU
    // idle); they depend on the bytes only.
    let hashes = std::thread::scope(|sc| {
        let hashing = std::thread::Builder::new()
            .spawn_scoped(sc, || file_hashes(files.iter()))
            .ok();
        if report.verdict != Verdict::Error {
            let written: Vec<_> = caps
                .iter()
                .zip(&files)
                .map(|(&(layout, caps), file)| WrittenFile { layout, caps, file })
                .collect();
            report.record_judgement(oracle.judge(&written));
        }
        match hashing.map(|t| t.join()) {
            Some(Ok(hashes)) => hashes,
            _ => file_hashes(files.iter()),
        }
    });

    for ((kind, _), file) in caps.iter().zip(files) {
        report.add_file(FileReport::of(*kind, file));
    }
    report.digest = digest_with(&report, caps.iter().map(|&(layout, _)| layout).zip(hashes));
    report.switchover = guest.states().to_vec();
    report
}

/// How a run differed from its scenario's expectations. `Display` gives
/// the line `replay` prints; JSON carries the same text.
#[derive(Clone, Debug, PartialEq)]
pub enum Difference {
    /// Another verdict (with the run's refusal, if any).
    Verdict {
        /// The run's verdict.
        got: Verdict,
        /// The expected one.
        want: Verdict,
        /// The run's refusal message.
        error: Option<String>,
    },
    /// An invariant that failed, listed under a verdict difference.
    Invariant(InvariantResult),
    /// Another refusal message.
    Error {
        /// The run's message.
        got: Option<String>,
        /// The expected one.
        want: String,
    },
    /// The sequential file is smaller than the expected multiple of RAM.
    SequentialRatio {
        /// The run's sequential size over guest RAM.
        got: f64,
        /// The expected minimum.
        want: f64,
    },
    /// Converged or not, unlike expected.
    Converged {
        /// The run's.
        got: bool,
        /// Expected.
        want: bool,
    },
    /// Another digest.
    Digest {
        /// The run's digest.
        got: String,
        /// The recorded one.
        want: String,
    },
    /// A power loss during a durable save restores wrong memory (the
    /// fault model, [`crate::faults`]: `explore --faults`).
    Crash {
        /// The file's layout.
        layout: Layout,
        /// Writes issued before the power loss.
        point: usize,
        /// Survival sample.
        sample: u32,
        /// Which pages, and why.
        detail: String,
    },
}

/// What a difference is about, ignoring figures and stories: shrinking
/// keeps a simplification only while the same kind of failure remains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DifferenceKind {
    /// A verdict difference, by (got, want).
    Verdict(Verdict, Verdict),
    /// A failed invariant.
    Invariant(Invariant),
    /// Another refusal message.
    Error,
    /// The sequential size ratio.
    SequentialRatio,
    /// Convergence.
    Converged,
    /// The digest.
    Digest,
    /// A durable save's crash restoring wrong memory.
    Crash,
}

impl Difference {
    /// What the difference is about.
    pub fn kind(&self) -> DifferenceKind {
        match self {
            Difference::Verdict { got, want, .. } => DifferenceKind::Verdict(*got, *want),
            Difference::Invariant(i) => DifferenceKind::Invariant(i.name),
            Difference::Error { .. } => DifferenceKind::Error,
            Difference::SequentialRatio { .. } => DifferenceKind::SequentialRatio,
            Difference::Converged { .. } => DifferenceKind::Converged,
            Difference::Digest { .. } => DifferenceKind::Digest,
            Difference::Crash { .. } => DifferenceKind::Crash,
        }
    }
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Difference::Verdict { got, want, error } => {
                write!(f, "verdict {}, expected {}", got.name(), want.name())?;
                if let Some(e) = error {
                    write!(f, ": {e}")?;
                }
                Ok(())
            }
            Difference::Invariant(i) => {
                write!(
                    f,
                    "invariant {} [{}] failed: {}",
                    i.name, i.writer, i.detail
                )
            }
            Difference::Error { got, want } => write!(
                f,
                "error {:?}, expected {want:?}",
                got.as_deref().unwrap_or("(none)")
            ),
            Difference::SequentialRatio { got, want } => write!(
                f,
                "sequential file is {got:.2}x guest RAM, expected at least {want}x"
            ),
            Difference::Converged { got, want } => {
                write!(f, "converged = {got}, expected {want}")
            }
            Difference::Digest { got, want } => write!(f, "digest {got}, expected {want}"),
            Difference::Crash {
                layout,
                point,
                sample,
                detail,
            } => write!(
                f,
                "durable save: a power loss after write {point} of the {layout} file \
                 (sample {sample}) restores wrong memory: {detail}"
            ),
        }
    }
}

impl Serialize for Difference {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Differences between a run and its scenario's expectations.
pub fn check_expectations(s: &Scenario, r: &RunReport) -> Vec<Difference> {
    let mut diffs = Vec::new();
    let e = &s.expect;
    if r.verdict != e.verdict {
        diffs.push(Difference::Verdict {
            got: r.verdict,
            want: e.verdict,
            error: r.error.clone(),
        });
        for i in r.invariants.iter().filter(|i| !i.ok) {
            diffs.push(Difference::Invariant(i.clone()));
        }
    }
    if let Some(want) = &e.error
        && r.error.as_deref() != Some(want.as_str())
    {
        diffs.push(Difference::Error {
            got: r.error.clone(),
            want: want.clone(),
        });
    }
    if let Some(ratio) = e.min_sequential_ram_ratio {
        let got = r.sequential_size.unwrap_or(0) as f64 / r.ram_bytes as f64;
        if got < ratio {
            diffs.push(Difference::SequentialRatio { got, want: ratio });
        }
    }
    if let Some(c) = e.converged
        && r.converged != c
    {
        diffs.push(Difference::Converged {
            got: r.converged,
            want: c,
        });
    }
    if let Some(d) = &e.digest
        && *d != r.digest
    {
        diffs.push(Difference::Digest {
            got: r.digest.clone(),
            want: d.clone(),
        });
    }
    diffs
}
