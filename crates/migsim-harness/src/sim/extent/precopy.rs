//! The extent mode's pre-copy driver: the rules of
//! [`crate::sim::precopy`] (ticks, passes, the downtime budget, the
//! forced switchover, the driver bug variants), with pages sent as runs.
//! A pass takes the dirty sets at its sync and sends them as runs of
//! consecutive pages, `bandwidth` pages a tick (the bulk stage: whole
//! blocks, split only at tick boundaries), each run through
//! [`MigrationWriter::save_run`]. The guest ticks before each batch, as
//! in the byte-level driver, so one seed gives the same passes, sends and
//! writes in both.

use migsim_format::SaveError;
use migsim_format::writer::{DeviceState, MigrationWriter, RunContent, RunSource};

use super::dirty::DirtySet;
use super::file::ExtentFile;
use super::guest::ExtentGuest;
use crate::bugs::{self, Bug, BugHooks};
use crate::sim::precopy::{PassStats, PrecopyOutcome, PrecopyParams};
use crate::sim::workload::Workload;

/// A run of pages sent, as the oracle sees it: one content (zero or not).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunSend {
    /// Pass (1-based; the final pass is `passes + 1`).
    pub pass: u32,
    /// Block index.
    pub block: u32,
    /// First page.
    pub first: u64,
    /// Pages.
    pub count: u64,
    /// Whether the pages were all zero when sent.
    pub zero: bool,
}

/// Migrate `guest` through `writer` (fixed-ram). Returns what the driver
/// did (its `sends` empty: see the run sends), the run sends and the file.
pub fn run_precopy(
    guest: &mut ExtentGuest,
    workload: &mut Workload,
    params: &PrecopyParams,
    mut writer: MigrationWriter<ExtentFile, BugHooks>,
    devices: impl Fn(&ExtentGuest) -> Vec<DeviceState>,
    bug: Option<Bug>,
    progress: &dyn Fn(u64),
) -> Result<(PrecopyOutcome, Vec<RunSend>, ExtentFile), SaveError> {
    let late_clear = bugs::active(bug, Bug::DirtyClearedAfterPass);
    let threshold = params.bandwidth.saturating_mul(params.downtime_ticks);
    let mut out = PrecopyOutcome {
        passes: 0,
        converged: false,
        pages_sent: 0,
        ticks: 0,
        guest_writes: 0,
        per_pass: Vec::new(),
        sends: Vec::new(),
    };
    let mut sends = Vec::new();
    loop {
        let pending = guest.dirty_pages();
        if out.passes >= 1 && (pending <= threshold || out.passes >= params.max_passes) {
            out.converged = pending <= threshold;
            break;
        }
        out.passes += 1;
        let pass = out.passes;
        let to_send = if late_clear {
            guest.peek_dirty()
        } else {
            guest.sync_dirty()
        };
        writer.file_mut().pass = pass;
        writer.begin_iteration()?;
        let mut ticks = 0;
        let sent = send_pass(
            guest,
            &mut writer,
            &mut sends,
            pass,
            &to_send,
            params.bandwidth,
            &mut out.pages_sent,
            progress,
            |g| {
                workload.tick(g);
                ticks += 1;
            },
        )?;
        out.ticks += ticks;
        out.per_pass.push(PassStats {
            pass,
            pages: sent,
            ticks,
            final_pass: false,
        });
        if late_clear {
            guest.clear_dirty();
        }
        writer.end_iteration()?;
    }
    guest.stop();
    let pass = out.passes + 1;
    let to_send = if bugs::active(bug, Bug::SkipFinalSync) {
        Vec::new()
    } else {
        guest.sync_dirty()
    };
    writer.file_mut().pass = pass;
    writer.begin_completion()?;
    let final_pages = send_pass(
        guest,
        &mut writer,
        &mut sends,
        pass,
        &to_send,
        params.bandwidth,
        &mut out.pages_sent,
        progress,
        |_| {},
    )?;
    out.per_pass.push(PassStats {
        pass,
        pages: final_pages,
        ticks: 0,
        final_pass: true,
    });
    out.guest_writes = guest.writes();
    let (file, _) = writer.finish(&devices(guest))?;
    Ok((out, sends, file))
}

/// Send the runs of `to_send`, `bandwidth` pages a batch, calling
/// `before_batch` first each time. Returns the pages sent.
#[allow(clippy::too_many_arguments)]
fn send_pass(
    guest: &mut ExtentGuest,
    writer: &mut MigrationWriter<ExtentFile, BugHooks>,
    sends: &mut Vec<RunSend>,
    pass: u32,
    to_send: &[DirtySet],
    bandwidth: u64,
    total_sent: &mut u64,
    progress: &dyn Fn(u64),
    mut before_batch: impl FnMut(&mut ExtentGuest),
) -> Result<u64, SaveError> {
    let runs: Vec<(usize, u64, u64)> = to_send
        .iter()
        .enumerate()
        .flat_map(|(b, d)| d.runs().into_iter().map(move |(f, n)| (b, f, n)))
        .collect();
    // The next run, and how much of it was sent already.
    let (mut next, mut done) = (0usize, 0u64);
    let mut sent = 0;
    while next < runs.len() {
        before_batch(guest);
        let mut room = bandwidth;
        while room > 0 && next < runs.len() {
            let (b, f, n) = runs[next];
            let take = (n - done).min(room);
            send_run(guest, writer, sends, pass, b, f + done, take)?;
            room -= take;
            done += take;
            if done == n {
                (next, done) = (next + 1, 0);
            }
        }
        sent += bandwidth - room;
        *total_sent += bandwidth - room;
        progress(*total_sent);
    }
    Ok(sent)
}

fn send_run(
    guest: &ExtentGuest,
    writer: &mut MigrationWriter<ExtentFile, BugHooks>,
    sends: &mut Vec<RunSend>,
    pass: u32,
    block: usize,
    first: u64,
    count: u64,
) -> Result<(), SaveError> {
    guest.runs(block, first, count, &mut |f, n, c| {
        sends.push(RunSend {
            pass,
            block: block as u32,
            first: f,
            count: n,
            zero: c == RunContent::Zero,
        })
    });
    writer.save_run(block, first, count, guest)
}
