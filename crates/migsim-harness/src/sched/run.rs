//! Running a scenario with a `[concurrency]` table: each writer through
//! its own run of the source model (same seeds), the fixed-ram file
//! through the destination model, then the oracle's invariants and the
//! concurrency invariants ([`super::judge`]), into the same
//! [`RunReport`] the simple driver gives.

use serde::Serialize;

use super::dest::run_dest;
use super::source::{max_ticks, run_source};
use super::{ConcurrencySpec, Scheduler, ZeroPageDetection, judge};
use crate::bugs::BugHooks;
use crate::oracle::{Invariant, InvariantResult, Judged, OracleInput, WrittenFile};
use crate::run::{
    FileReport, RunOptions, RunReport, devices, digest, guest_and_workload, size_after_pass,
};
use crate::scenario::{Scenario, Verdict};
use crate::sim::guest::Guest;
use crate::sim::precopy::PassStats;
use crate::sim::rng;
use crate::sim::simfile::SimFile;
use crate::sim::workload::Workload;
use migsim_format::Layout;
use migsim_format::caps::{Capabilities, Capability};
use migsim_format::io::MigFile;
use migsim_format::writer::MigrationWriter;

/// One writer's run of the model, as reported.
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

/// The guest and its vCPUs' workloads for one model run: the same prefill
/// as the simple driver; vCPU 0 draws from the workload stream the simple
/// driver uses, vCPU i from its own.
fn guest_and_vcpus(s: &Scenario, spec: &ConcurrencySpec) -> (Guest, Vec<Workload>) {
    let (guest, first) = guest_and_workload(s, "workload");
    let mut vcpus = vec![first];
    for i in 1..spec.vcpus {
        let label = format!("workload-vcpu-{i}");
        vcpus.push(Workload::new(
            s.workload.clone(),
            &guest,
            rng::stream(s.seed, &label),
        ));
    }
    (guest, vcpus)
}

fn result(name: Invariant, writer: Layout, r: Result<String, String>) -> InvariantResult {
    let (ok, detail) = match r {
        Ok(d) => (true, d),
        Err(d) => (false, d),
    };
    InvariantResult {
        name,
        writer: Judged(Some(writer)),
        ok,
        detail,
    }
}

/// Finish `report` for a scenario with `[concurrency]`, given its started
/// writers and their capabilities.
pub fn run_concurrent(
    s: &Scenario,
    o: &RunOptions,
    spec: &ConcurrencySpec,
    writers: Vec<MigrationWriter<SimFile, BugHooks>>,
    caps_of: Vec<(Layout, Capabilities)>,
    mut report: RunReport,
) -> RunReport {
    let bug = o.bug;
    let blocks = s.blocks();
    let multifd_cap = s.migration.capabilities.contains(&Capability::Multifd);
    let progress = |sent: u64| {
        if let Some(p) = &o.progress {
            p(sent)
        }
    };
    let mut figures = Vec::new();
    let mut files = Vec::new();
    let mut invariants = Vec::new();
    for (w, &(kind, caps)) in writers.into_iter().zip(&caps_of) {
        let multifd = multifd_cap && kind == Layout::FixedRam;
        let w = w.with_zero_page_detection(spec.zero_page_detection != ZeroPageDetection::None);
        let (guest, vcpus) = guest_and_vcpus(s, spec);
        let content_seed = guest.seed();
        let total = guest.total_pages();
        let mut sched = Scheduler::new(spec.schedule_seed(s.seed));
        let src = match run_source(
            guest,
            vcpus,
            w,
            &|g| devices(s, g),
            spec,
            &s.parameters,
            multifd,
            bug,
            &mut sched,
            &progress,
        ) {
            Ok(r) => r,
            Err(e) => {
                report.verdict = Verdict::Error;
                report.error = Some(e.to_string());
                report.digest = digest(&report);
                return report;
            }
        };
        let devs = devices(s, &src.guest);
        let oracle = OracleInput {
            seed: content_seed,
            machine: &s.guest.machine,
            blocks: &blocks,
            states: src.guest.states(),
            sends: &src.outcome.sends,
            passes: src.outcome.passes,
            max_passes: s.parameters.max_passes,
            part_sections: src.sections,
            max_part_sections: max_ticks(&s.parameters, total),
            devices: &devs,
            dirty_destination: s.destination.dirty_memory,
            profile: s.migration.profile,
            bug,
            channels: o.channels.max(1),
            durability: o.durability,
            integrity: o.integrity,
            ignore_shared: s
                .migration
                .has(migsim_format::caps::Capability::XIgnoreShared),
        };
        if kind == Layout::FixedRam {
            report.fixed_ram_bound = oracle.fixed_ram_bound();
        }
        let written = [WrittenFile {
            layout: kind,
            caps,
            file: &src.file,
        }];
        invariants.extend(oracle.judge(&written));
        if kind == Layout::FixedRam {
            let e = &src.events;
            invariants.push(result(
                Invariant::NoStalePageWrite,
                kind,
                judge::no_stale_page_write(e, &blocks),
            ));
            invariants.push(result(
                Invariant::BitmapReflectsLastSend,
                kind,
                judge::bitmap_reflects_last_send(e, &blocks),
            ));
            invariants.push(result(
                Invariant::NothingAfterBitmap,
                kind,
                judge::nothing_after_bitmap(e, &blocks),
            ));
            invariants.push(result(
                Invariant::TornCopyResent,
                kind,
                judge::torn_copy_resent(e, &blocks),
            ));
            let dest = run_dest(
                &src.file,
                content_seed,
                &blocks,
                src.guest.states(),
                s.destination.dirty_memory,
                spec.dest_channels(),
                spec.packet_pages,
                bug,
                &mut sched,
            );
            invariants.push(result(
                Invariant::DestinationDoneBeforeSuccess,
                kind,
                dest.and_then(|d| judge::destination_done_before_success(&d)),
            ));
        }
        let out = &src.outcome;
        figures.push(ConcurrencyFigures {
            writer: kind,
            multifd,
            syncs: src.events.syncs.len() as u32,
            sections: src.sections,
            steps: sched.steps(),
            interleaving: sched.trace_digest(),
            passes: out.passes,
            pages_sent: out.pages_sent,
            per_pass: out.per_pass.clone(),
            converged: out.converged,
        });
        // The run's figures are the last writer's (fixed-ram when there).
        report.passes = out.passes;
        report.converged = out.converged;
        report.pages_sent = out.pages_sent;
        report.guest_writes = out.guest_writes;
        report.per_pass = out.per_pass.clone();
        report.switchover = src.guest.states().to_vec();
        files.push((kind, src.file));
    }
    report.invariants = invariants;
    if report.invariants.iter().any(|i| !i.ok) {
        report.verdict = Verdict::Fail;
    }
    for (kind, file) in files {
        match kind {
            Layout::Sequential => report.sequential_size = Some(file.len()),
            Layout::FixedRam => report.fixed_ram_size = Some(file.len()),
        }
        report.files.push(FileReport {
            writer: kind,
            size: file.len(),
            bytes_written: file.bytes_written(),
            allocated: file.allocated(),
            size_after_pass: size_after_pass(file.log()),
            log: file.log().to_vec(),
            file,
        });
    }
    report.concurrency = Some(figures);
    report.digest = digest(&report);
    report
}
