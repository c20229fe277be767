//! The extent mode: guests larger than anyone runs (`[guest] extents =
//! true`, or `migsim run --extents`).
//!
//! The byte-level path keeps 8 bytes a page in the guest and the oracle
//! and the files' bytes; at 24 TiB (more than 2^32 pages) that is
//! hundreds of GiB. Here nothing is kept per page:
//!
//! * [`guest::ExtentGuest`]: each block one extent of a uniform state plus
//!   the pages written since ([`dirty::DirtySet`] for dirty pages); the
//!   workload is the byte-level one, from the same seed.
//! * [`precopy`]: the byte-level driver's rules, sending runs of pages
//!   through the product writer's range API
//!   ([`MigrationWriter::save_run`]): whole blocks in the bulk stage, the
//!   dirty runs after.
//! * [`file::ExtentFile`]: the file keeps the writer's bytes (headers,
//!   real bitmaps, device state) as bytes and page runs as identities.
//! * [`restore`]: the product's reader loads the file; what each page
//!   holds is resolved range by range. [`oracle`] judges it with the
//!   byte-level oracle's bound, layout and stories.
//!
//! Memory grows with what the guest re-dirtied (plus the fixed-ram bitmaps,
//! 1 bit a page, which are real bytes). The fixed-ram writer only: a
//! sequential file of such a guest would hold every page's bytes. On a
//! small guest the mode gives the byte-level path's verdict, passes, sends
//! and writes (`tests/it/extents.rs`); the digests differ, since this one
//! hashes identities rather than bytes.

pub mod dirty;
pub mod file;
pub mod guest;
pub mod oracle;
pub mod precopy;
pub mod restore;
pub mod runs;

use migsim_format::caps::Capabilities;
use migsim_format::io::MigFile;
use migsim_format::reader::LoadOptions;
use migsim_format::writer::MigrationWriter;
use migsim_format::{Layout, SaveError};

use crate::bugs::BugHooks;
use crate::pipeline::options::RunOptions;
use crate::pipeline::report::{FileReport, RunReport, digest_with, refused};
use crate::pipeline::setup::{
    Driven, destination_blocks, destination_layout_refusal, devices_after, oracle_input,
    writer_caps,
};
use crate::scenario::{Scenario, Verdict};
use crate::sim::rng;
use crate::sim::simfile::SimFile;
use crate::sim::workload::Workload;
use file::ExtentFile;
use guest::ExtentGuest;

/// Run `s` in the extent mode (its limits checked by
/// [`crate::limits::check_extents`]): the fixed-ram writer, judged by
/// [`oracle::judge`]. The report is the byte-level run's, its one file
/// report without bytes (the file keeps identities).
pub fn run(s: &Scenario, o: &RunOptions) -> RunReport {
    let bug = o.bug;
    let blocks = s.blocks();
    let mut report = RunReport::new(s);
    let content_seed = report.content_seed;
    let ignore_shared = s
        .migration
        .has(migsim_format::caps::Capability::XIgnoreShared);
    let mut guest = match ExtentGuest::new(content_seed, blocks.clone(), s.guest.initial_fill) {
        Ok(g) if ignore_shared => g.ignoring_shared(),
        Ok(g) => g,
        Err(e) => return refused(report, e, &SimFile::new()),
    };
    let mut workload = Workload::new(s.workload.clone(), &guest, rng::stream(s.seed, "workload"));
    let caps = match writer_caps(s, Layout::FixedRam) {
        Ok(c) => c,
        Err(e) => return refused(report, e, &SimFile::new()),
    };
    let writer = match MigrationWriter::start(
        ExtentFile::new(content_seed),
        &s.guest.machine,
        &caps,
        blocks.clone(),
    ) {
        Ok(w) => w.with_hooks(BugHooks(bug)),
        Err(e) => return refused(report, e.to_string(), &SimFile::new()),
    };
    let result = precopy::run_precopy(
        &mut guest,
        &mut workload,
        &s.parameters,
        writer,
        |g| devices_after(s, g.writes()),
        bug,
        crate::limits::MAX_EXTENT_EXCEPTIONS,
        &o.progress_fn(),
    );
    let (outcome, sends, file) = match result {
        Ok(x) => x,
        // A limit, as those checked before the run: not a verdict.
        Err(precopy::DriveError::Exceptions(e)) => return report.environment(e),
        Err(precopy::DriveError::Save(e @ SaveError::Io(_))) => return report.error(e.to_string()),
        Err(precopy::DriveError::Save(e)) => {
            return refused(report, e.to_string(), &SimFile::new());
        }
    };
    let devs = devices_after(s, guest.writes());
    report.record_drive(&outcome);
    let base = oracle_input(
        s,
        o,
        &blocks,
        &devs,
        Driven {
            states: &[],
            sends: &[],
            passes: outcome.passes,
            part_sections: u64::from(outcome.passes),
            max_part_sections: u64::from(s.parameters.max_passes),
            channels: 1,
        },
    );
    report.fixed_ram_bound = base.fixed_ram_bound();
    if let Some(e) = destination_refusal(s, caps, &file) {
        report.verdict = Verdict::Error;
        report.error = Some(e);
    } else {
        report.record_judgement(oracle::judge(&base, &guest, &sends, caps, &file));
    }
    report.add_file(FileReport::figures(
        Layout::FixedRam,
        file.len(),
        file.bytes_written(),
        file.allocated(),
        file.log(),
    ));
    report.digest = digest_with(&report, [(Layout::FixedRam, file.content_hash())]);
    report
}

/// The scenario's own destination, when it differs from the guest's
/// (`destination.fixed_ram`, `destination.blocks`): the load's refusal,
/// as the byte-level run reports it.
fn destination_refusal(s: &Scenario, caps: Capabilities, file: &ExtentFile) -> Option<String> {
    if let Some(e) = destination_layout_refusal(s, file) {
        return Some(e);
    }
    if let Some(local) = destination_blocks(s) {
        let opts = LoadOptions {
            machine: Some(s.guest.machine.clone()),
            caps: Some(caps),
            ..LoadOptions::default()
        };
        if let Err(e) = restore::restore(file, &opts, &local, false) {
            return Some(e.to_string());
        }
    }
    None
}
