//! The pre-copy driver.
//!
//! Time advances in ticks. Each tick the guest performs its workload's
//! writes, then the migration sends up to `bandwidth` pages of the current
//! pass. A pass starts with a dirty-bitmap sync (read and clear) and sends
//! every page that was dirty at that sync; the first pass (bulk stage) sends
//! every page. Before each pass the driver checks the pages left dirty: if
//! they fit the downtime budget (`bandwidth * downtime_ticks`), or
//! `max_passes` passes were run, it switches over: the guest stops, a final
//! sync and pass send what is left, then device state, then EOF.
//!
//! All writers passed in see exactly the same page sends, so a sequential
//! and a fixed-ram file of one run can be compared. A tick's pages go to
//! the writers as one batch (`save_pages`), written by `channels`
//! concurrent channels where the file allows it; the guest does not run
//! while a batch is written, so the bytes do not depend on `channels`.

use serde::{Deserialize, Serialize};

use super::guest::Guest;
use super::simfile::SimFile;
use super::workload::Workload;
use crate::bugs::{self, Bug, BugHooks};
use migsim_format::SaveError;
use migsim_format::bitmap::PageBitmap;
use migsim_format::writer::{DeviceState, MigrationWriter};

/// Migration parameters (the `[parameters]` table of a scenario).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrecopyParams {
    /// Pages sent per tick.
    pub bandwidth: u64,
    /// Downtime budget in ticks: switch over once the dirty pages could be
    /// sent within it.
    pub downtime_ticks: u64,
    /// Upper bound on passes before a forced switchover.
    pub max_passes: u32,
}

impl PrecopyParams {
    /// Check ranges.
    pub fn validate(&self) -> Result<(), String> {
        if self.bandwidth == 0 {
            return Err("parameters.bandwidth must be > 0 pages per tick".into());
        }
        if self.max_passes == 0 {
            return Err("parameters.max_passes must be >= 1".into());
        }
        Ok(())
    }
}

/// One page send, as the oracle sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageSend {
    /// Pass (1-based; the final pass is `passes + 1`).
    pub pass: u32,
    /// Block index.
    pub block: u32,
    /// Page index.
    pub page: u64,
    /// Whether the page was all zero when sent.
    pub zero: bool,
}

/// What one pass did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PassStats {
    /// Pass number (the final pass included).
    pub pass: u32,
    /// Pages sent in it.
    pub pages: u64,
    /// Ticks it took.
    pub ticks: u64,
    /// Whether this was the final (stopped-guest) pass.
    pub final_pass: bool,
}

/// What the driver did (`default()`: nothing yet).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PrecopyOutcome {
    /// Live passes (RAM PART sections).
    pub passes: u32,
    /// Whether switchover came from the downtime budget (not max_passes).
    pub converged: bool,
    /// Pages sent over all passes, final pass included.
    pub pages_sent: u64,
    /// Ticks the guest ran.
    pub ticks: u64,
    /// Guest writes.
    pub guest_writes: u64,
    /// Per pass.
    pub per_pass: Vec<PassStats>,
    /// Every send, in order.
    #[serde(skip)]
    pub sends: Vec<PageSend>,
}

/// Migrate `guest` through every writer, `channels` concurrent writers per
/// batch; `progress(pages sent so far)` is called after every batch.
/// Returns the outcome and the files.
#[allow(clippy::too_many_arguments)]
pub fn run_precopy(
    guest: &mut Guest,
    workload: &mut Workload,
    params: &PrecopyParams,
    mut writers: Vec<MigrationWriter<SimFile, BugHooks>>,
    devices: impl Fn(&Guest) -> Vec<DeviceState>,
    bug: Option<Bug>,
    channels: usize,
    progress: &dyn Fn(u64),
) -> Result<(PrecopyOutcome, Vec<SimFile>), SaveError> {
    let late_clear = bugs::active(bug, Bug::DirtyClearedAfterPass);
    let threshold = params.bandwidth.saturating_mul(params.downtime_ticks);
    let mut out = PrecopyOutcome::default();
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
        for w in writers.iter_mut() {
            w.file_mut().pass = pass;
            w.begin_iteration()?;
        }
        let mut stats = PassStats {
            pass,
            pages: 0,
            ticks: 0,
            final_pass: false,
        };
        let sent = send_pass(
            guest,
            &mut writers,
            &mut out.sends,
            pass,
            &to_send,
            params.bandwidth,
            channels,
            progress,
            |g| {
                workload.tick(g);
                stats.ticks += 1;
            },
        )?;
        stats.pages = sent;
        out.ticks += stats.ticks;
        out.pages_sent += stats.pages;
        out.per_pass.push(stats);
        if late_clear {
            guest.clear_dirty();
        }
        for w in writers.iter_mut() {
            w.end_iteration()?;
        }
    }
    // Switchover: stop, final sync, final pass, devices, EOF.
    guest.stop();
    let pass = out.passes + 1;
    let to_send = if bugs::active(bug, Bug::SkipFinalSync) {
        Vec::new()
    } else {
        guest.sync_dirty()
    };
    for w in writers.iter_mut() {
        w.file_mut().pass = pass;
        w.begin_completion()?;
    }
    // The guest is stopped: no ticks between the final pass's batches.
    let final_pages = send_pass(
        guest,
        &mut writers,
        &mut out.sends,
        pass,
        &to_send,
        params.bandwidth,
        channels,
        progress,
        |_| {},
    )?;
    out.pages_sent += final_pages;
    out.per_pass.push(PassStats {
        pass,
        pages: final_pages,
        ticks: 0,
        final_pass: true,
    });
    out.guest_writes = guest.writes();
    let devs = devices(guest);
    let files = writers
        .into_iter()
        .map(|w| w.finish(&devs).map(|(f, _)| f))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((out, files))
}

/// Send every page set in `to_send`, `bandwidth` pages a batch, calling
/// `before_batch` first each time (the guest's tick in a live pass).
/// Returns the pages sent.
#[allow(clippy::too_many_arguments)]
fn send_pass(
    guest: &mut Guest,
    writers: &mut [MigrationWriter<SimFile, BugHooks>],
    sends: &mut Vec<PageSend>,
    pass: u32,
    to_send: &[PageBitmap],
    bandwidth: u64,
    channels: usize,
    progress: &dyn Fn(u64),
    mut before_batch: impl FnMut(&mut Guest),
) -> Result<u64, SaveError> {
    let mut queue = to_send
        .iter()
        .enumerate()
        .flat_map(|(b, bm)| bm.iter_ones().map(move |p| (b, p)))
        .peekable();
    let mut batch = Vec::new();
    let mut sent = 0;
    while queue.peek().is_some() {
        before_batch(guest);
        batch.clear();
        batch.extend(queue.by_ref().take(bandwidth as usize));
        send_batch(guest, writers, sends, pass, &batch, channels)?;
        sent += batch.len() as u64;
        progress(sends.len() as u64);
    }
    Ok(sent)
}

fn send_batch(
    guest: &Guest,
    writers: &mut [MigrationWriter<SimFile, BugHooks>],
    sends: &mut Vec<PageSend>,
    pass: u32,
    batch: &[(usize, u64)],
    channels: usize,
) -> Result<(), SaveError> {
    sends.extend(batch.iter().map(|&(block, page)| PageSend {
        pass,
        block: block as u32,
        page,
        zero: guest.state(block, page).zero,
    }));
    let source = |b: usize, p: u64, buf: &mut [u8]| guest.read_page(b, p, buf);
    for w in writers.iter_mut() {
        w.save_pages(batch, &source, channels)?;
    }
    Ok(())
}
