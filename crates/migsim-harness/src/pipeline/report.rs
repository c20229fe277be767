//! `RunReport`: everything a run produced (verdict, passes, sends, the
//! oracle's invariants, each file's figures) and its digest, the one hash
//! that pins a run. Every mode of a run (byte-level, extent, concurrency
//! model) fills the same report.

use serde::Serialize;

use crate::oracle::{Invariant, InvariantResult, Judged};
use crate::scenario::{Scenario, Verdict};
use crate::sim::content::PageState;
use crate::sim::precopy::{PassStats, PrecopyOutcome};
use crate::sim::simfile::{SimFile, WriteRecord};
use migsim_format::Layout;
use migsim_format::io::MigFile;

/// One writer's run of the concurrency model, as reported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConcurrencyFigures {
    /// The writer.
    pub writer: Layout,
    /// Whether its pages went through multifd send channels.
    pub multifd: bool,
    /// Dirty syncs after setup (the final one included).
    pub syncs: u32,
    /// RAM PART sections (one per tick).
    pub sections: u64,
    /// Scheduler steps.
    pub steps: u64,
    /// Digest of the interleaving (which actor took each step).
    pub interleaving: String,
    /// Live passes (sync to sync).
    pub passes: u32,
    /// Pages sent, final pass included.
    pub pages_sent: u64,
    /// Per pass.
    pub per_pass: Vec<PassStats>,
    /// Whether switchover came from the threshold.
    pub converged: bool,
}

/// One writer's file after a run.
#[derive(Debug, Serialize)]
pub struct FileReport {
    /// The writer's layout.
    pub writer: Layout,
    /// Final size in bytes.
    pub size: u64,
    /// Bytes written, overwrites counted.
    pub bytes_written: u64,
    /// Bytes allocated (4 KiB granules).
    pub allocated: u64,
    /// File size at the end of setup (index 0) and of each pass after it,
    /// the final pass (with device state and trailer) last.
    pub size_after_pass: Vec<u64>,
    /// File size after each write.
    #[serde(skip)]
    pub log: Vec<WriteRecord>,
    /// The file.
    #[serde(skip)]
    pub file: SimFile,
}

/// Everything a run produced.
#[derive(Debug, Serialize)]
pub struct RunReport {
    /// Scenario name.
    pub scenario: String,
    /// Seed.
    pub seed: u64,
    /// Verdict.
    pub verdict: Verdict,
    /// Refusal message (verdict error).
    pub error: Option<String>,
    /// Live passes.
    pub passes: u32,
    /// Switchover by downtime budget (not max_passes).
    pub converged: bool,
    /// Pages sent, final pass included.
    pub pages_sent: u64,
    /// Guest writes during the run.
    pub guest_writes: u64,
    /// Guest RAM bytes.
    pub ram_bytes: u64,
    /// Sequential file size, if written.
    pub sequential_size: Option<u64>,
    /// Fixed-ram file size, if written.
    pub fixed_ram_size: Option<u64>,
    /// The fixed-ram size bound for this layout and parameters.
    pub fixed_ram_bound: u64,
    /// Per pass.
    pub per_pass: Vec<PassStats>,
    /// Oracle results.
    pub invariants: Vec<InvariantResult>,
    /// Per file.
    pub files: Vec<FileReport>,
    /// Digest over verdict, figures and every file's bytes.
    pub digest: String,
    /// Seed of the page contents (see [`crate::sim::content`]).
    #[serde(skip)]
    pub content_seed: u64,
    /// Every page's state at switchover: what the destination must hold.
    #[serde(skip)]
    pub switchover: Vec<Vec<PageState>>,
    /// The run could not finish because its files on disk could not be
    /// created or written (`--file-dir` unwritable or full): not a
    /// verdict, and the other fields mean nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment_error: Option<String>,
    /// With `[concurrency]`: each writer's run of the model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<Vec<ConcurrencyFigures>>,
}

impl FileReport {
    /// A file's figures, its bytes kept in the report (the byte-level
    /// modes).
    pub fn of(writer: Layout, file: SimFile) -> Self {
        let mut r = FileReport::figures(
            writer,
            file.len(),
            file.bytes_written(),
            file.allocated(),
            file.log(),
        );
        r.log = file.log().to_vec();
        r.file = file;
        r
    }

    /// A file's figures only: its size, the bytes written and allocated,
    /// the size after each pass from its write log (the extent mode, whose
    /// file holds page identities, not bytes).
    pub fn figures(
        writer: Layout,
        size: u64,
        bytes_written: u64,
        allocated: u64,
        log: &[WriteRecord],
    ) -> Self {
        FileReport {
            writer,
            size,
            bytes_written,
            allocated,
            size_after_pass: size_after_pass(log),
            log: Vec::new(),
            file: SimFile::new(),
        }
    }
}

impl RunReport {
    /// The report of a run of `s` before anything ran: verdict pass,
    /// nothing sent, no file.
    pub fn new(s: &Scenario) -> Self {
        RunReport {
            scenario: s.name.clone(),
            seed: s.seed,
            verdict: Verdict::Pass,
            error: None,
            passes: 0,
            converged: false,
            pages_sent: 0,
            guest_writes: 0,
            ram_bytes: s.blocks().iter().map(|b| b.used_length).sum(),
            sequential_size: None,
            fixed_ram_size: None,
            fixed_ram_bound: 0,
            per_pass: Vec::new(),
            invariants: Vec::new(),
            files: Vec::new(),
            digest: String::new(),
            content_seed: s.content_seed(),
            switchover: Vec::new(),
            environment_error: None,
            concurrency: None,
        }
    }

    /// What the driver did: passes, convergence, sends, guest writes.
    pub fn record_drive(&mut self, outcome: &PrecopyOutcome) {
        self.passes = outcome.passes;
        self.converged = outcome.converged;
        self.pages_sent = outcome.pages_sent;
        self.guest_writes = outcome.guest_writes;
        self.per_pass = outcome.per_pass.clone();
    }

    /// The oracle's results; any failed invariant makes the verdict fail.
    pub fn record_judgement(&mut self, invariants: Vec<InvariantResult>) {
        self.invariants.extend(invariants);
        if self.invariants.iter().any(|i| !i.ok) {
            self.verdict = Verdict::Fail;
        }
    }

    /// A writer's file, in the order the files are hashed.
    pub fn add_file(&mut self, file: FileReport) {
        match file.writer {
            Layout::Sequential => self.sequential_size = Some(file.size),
            Layout::FixedRam => self.fixed_ram_size = Some(file.size),
        }
        self.files.push(file);
    }

    /// The run stopped on its environment (a disk that failed, a limit
    /// reached as it ran): not a verdict.
    pub fn environment(self, message: String) -> Self {
        self.ended(RunEnd::Environment(message))
    }

    /// The report of a run that ended as `end` says.
    pub fn ended(mut self, end: RunEnd) -> Self {
        match end {
            RunEnd::Environment(message) => {
                self.environment_error = Some(message);
                return self;
            }
            RunEnd::Refused { message, wrote } => {
                self.verdict = Verdict::Error;
                self.error = Some(message);
                if let Some(len) = wrote {
                    self.verdict = Verdict::Fail;
                    self.invariants.push(InvariantResult {
                        name: Invariant::RefusalWritesNothing,
                        writer: Judged(None),
                        ok: false,
                        detail: format!("a refused migration wrote {len} bytes"),
                    });
                }
            }
        }
        self.digest = digest(&self);
        self
    }

    /// The run ended with an error verdict (the writer's I/O error under
    /// an injected fault), digest computed.
    pub fn error(mut self, message: String) -> Self {
        self.verdict = Verdict::Error;
        self.error = Some(message);
        self.digest = digest(&self);
        self
    }
}

pub(crate) fn size_after_pass(log: &[WriteRecord]) -> Vec<u64> {
    let mut sizes: Vec<u64> = Vec::new();
    for w in log {
        let p = w.pass as usize;
        if sizes.len() <= p {
            let last = sizes.last().copied().unwrap_or(0);
            sizes.resize(p + 1, last);
        }
        sizes[p] = sizes[p].max(w.file_len);
    }
    sizes
}

/// How a run ended before its files could be judged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RunEnd {
    /// The migration was refused, with QEMU's or the writer's exact
    /// message: verdict error, unless the refused writer had written
    /// something, which fails `refusal-writes-nothing`.
    #[error("{message}")]
    Refused {
        /// The refusal.
        message: String,
        /// What the refused writer's file holds when it is not empty
        /// (bytes, or writes logged): a refusal must write nothing.
        wrote: Option<u64>,
    },
    /// The environment failed (a file on disk that cannot be created or
    /// written, a limit reached as the run went): not a verdict.
    #[error("{0}")]
    Environment(String),
}

impl RunEnd {
    /// A refusal; `untouched` is the file the refused writer was given.
    pub fn refused(message: String, untouched: &SimFile) -> Self {
        let wrote = untouched.len() != 0 || !untouched.log().is_empty();
        RunEnd::Refused {
            message,
            wrote: wrote.then(|| untouched.len()),
        }
    }
}

pub(crate) fn refused(report: RunReport, message: String, untouched: &SimFile) -> RunReport {
    report.ended(RunEnd::refused(message, untouched))
}

pub(crate) fn digest(r: &RunReport) -> String {
    let hashes = file_hashes(r.files.iter().map(|f| &f.file));
    digest_with(r, r.files.iter().map(|f| f.writer).zip(hashes))
}

/// Each file's content hash, each on its own thread (the calling one if
/// none starts).
pub(crate) fn file_hashes<'a>(files: impl Iterator<Item = &'a SimFile>) -> Vec<blake3::Hash> {
    let files: Vec<&SimFile> = files.collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = files
            .iter()
            .map(|f| {
                std::thread::Builder::new()
                    .spawn_scoped(s, || f.content_hash())
                    .ok()
            })
            .collect();
        handles
            .into_iter()
            .zip(&files)
            .map(|(t, f)| match t.map(|t| t.join()) {
                Some(Ok(hash)) => hash,
                _ => f.content_hash(),
            })
            .collect()
    })
}

/// The digest of `r`'s figures and of its files' content hashes (`files`:
/// each writer's layout and hash, in the report's order).
pub(crate) fn digest_with(
    r: &RunReport,
    files: impl IntoIterator<Item = (Layout, blake3::Hash)>,
) -> String {
    #[derive(Serialize)]
    struct Figures<'a> {
        seed: u64,
        verdict: Verdict,
        error: &'a Option<String>,
        passes: u32,
        converged: bool,
        pages_sent: u64,
        guest_writes: u64,
        per_pass: &'a [PassStats],
        invariants: &'a [InvariantResult],
        #[serde(skip_serializing_if = "Option::is_none")]
        concurrency: Option<&'a [ConcurrencyFigures]>,
    }
    let mut h = blake3::Hasher::new();
    let figures = Figures {
        seed: r.seed,
        verdict: r.verdict,
        error: &r.error,
        passes: r.passes,
        converged: r.converged,
        pages_sent: r.pages_sent,
        guest_writes: r.guest_writes,
        per_pass: &r.per_pass,
        invariants: &r.invariants,
        concurrency: r.concurrency.as_deref(),
    };
    h.update(&serde_json::to_vec(&figures).expect("figures serialize"));
    for (writer, hash) in files {
        h.update(writer.name().as_bytes());
        h.update(hash.as_bytes());
    }
    h.finalize().to_hex().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_that_ended_early_says_how_in_its_report() {
        let s = Scenario::default_scenario();
        let refused = RunReport::new(&s).ended(RunEnd::refused("no".into(), &SimFile::new()));
        assert_eq!(refused.verdict, Verdict::Error);
        assert_eq!(refused.error.as_deref(), Some("no"));
        assert!(refused.invariants.is_empty());
        assert_eq!(refused.digest.len(), 64);

        let mut written = SimFile::new();
        written.write_at(0, b"QEVM").unwrap();
        let wrote = RunReport::new(&s).ended(RunEnd::refused("no".into(), &written));
        assert_eq!(wrote.verdict, Verdict::Fail, "a refusal must write nothing");
        assert_eq!(wrote.invariants[0].name, Invariant::RefusalWritesNothing);
        assert_eq!(
            wrote.invariants[0].detail,
            "a refused migration wrote 4 bytes"
        );
        assert_ne!(wrote.digest, refused.digest);

        let env = RunReport::new(&s).ended(RunEnd::Environment("disk full".into()));
        assert_eq!(env.environment_error.as_deref(), Some("disk full"));
        assert_eq!(env.verdict, Verdict::Pass, "not a verdict");
        assert!(env.digest.is_empty());
    }
}
