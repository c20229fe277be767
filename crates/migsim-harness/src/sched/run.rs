//! Running a scenario with a `[concurrency]` table: each writer through
//! its own run of the source model (same seeds), the fixed-ram file
//! through the destination model, then the oracle's invariants and the
//! concurrency invariants ([`super::judge`]), into the same
//! [`RunReport`] the simple driver gives.

use super::dest::run_dest;
use super::source::{max_ticks, run_source};
use super::{ConcurrencySpec, Scheduler, ZeroPageDetection, judge};
use crate::oracle::{Invariant, InvariantResult, Judged, WrittenFile};
use crate::pipeline::options::RunOptions;
use crate::pipeline::report::{FileReport, RunReport, digest};
use crate::pipeline::setup::{
    Driven, Writers, devices, guest_and_workload, oracle_input, start_writers,
};
use crate::scenario::Scenario;
use crate::sim::guest::Guest;
use crate::sim::rng;
use crate::sim::workload::Workload;
use migsim_format::Layout;
use migsim_format::caps::Capability;

pub use crate::pipeline::report::ConcurrencyFigures;

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

/// Run a scenario with `[concurrency]`: each writer through its own run of
/// the model, judged, into one report.
pub fn run(s: &Scenario, o: &RunOptions, spec: &ConcurrencySpec) -> RunReport {
    let mut report = RunReport::new(s);
    let Writers {
        writers,
        caps: caps_of,
    } = match start_writers(s, o) {
        Ok(w) => w,
        Err(end) => return report.ended(end),
    };
    let bug = o.bug;
    let blocks = s.blocks();
    let multifd_cap = s.migration.capabilities.contains(&Capability::Multifd);
    let progress = o.progress_fn();
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
            Err(e) => return report.error(e.to_string()),
        };
        let devs = devices(s, &src.guest);
        let oracle = oracle_input(
            s,
            o,
            &blocks,
            &devs,
            Driven {
                states: src.guest.states(),
                sends: &src.outcome.sends,
                passes: src.outcome.passes,
                part_sections: src.sections,
                max_part_sections: max_ticks(&s.parameters, total),
                channels: o.channels.max(1),
            },
        );
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
        report.record_drive(out);
        report.switchover = src.guest.states().to_vec();
        files.push((kind, src.file));
    }
    report.record_judgement(invariants);
    for (kind, file) in files {
        report.add_file(FileReport::of(kind, file));
    }
    report.concurrency = Some(figures);
    report.digest = digest(&report);
    report
}
