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

use std::ops::DerefMut;

use super::dirty_log::PageSet;
use super::guest::Guest;
use super::guest_base::GuestBase;
use super::simfile::SimFile;
use super::workload::{GuestMemory, Workload};
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

/// What the pass loop needs of a guest: its workload's writes
/// ([`GuestMemory`]), and its [`GuestBase`] (dirty log, write count, a way
/// to stop it), which a guest derefs to.
pub trait PrecopyGuest: GuestMemory + DerefMut<Target = GuestBase<Self::Set>> {
    /// How the guest keeps a block's dirty pages.
    type Set: PageSet;
}

impl PrecopyGuest for Guest {
    type Set = PageBitmap;
}

/// Where a pass's pages go: the byte-level writers, a batch of pages a
/// tick ([`PageBatches`]), or the extent mode's writer, runs of pages
/// ([`crate::sim::extent::precopy::RunBatches`]).
pub trait PassSink<G: PrecopyGuest> {
    /// A live pass begins (`completion`: the final pass, guest stopped).
    fn begin_pass(&mut self, pass: u32, completion: bool) -> Result<(), SaveError>;
    /// Send the pages of `to_send`, `bandwidth` pages a batch, calling
    /// `before_batch` first each time (the guest's tick in a live pass; it
    /// returns `false` to cut the pass short there), and
    /// `progress(sent_before + pages sent so far)` after each batch.
    /// Returns the pages sent.
    #[allow(clippy::too_many_arguments)]
    fn send_pass(
        &mut self,
        guest: &mut G,
        pass: u32,
        to_send: &[G::Set],
        bandwidth: u64,
        sent_before: u64,
        progress: &dyn Fn(u64),
        before_batch: &mut dyn FnMut(&mut G) -> bool,
    ) -> Result<u64, SaveError>;
    /// A live pass ends.
    fn end_pass(&mut self) -> Result<(), SaveError>;
}

/// How [`drive`] ended: the outcome, and the pass a guest tick cut short
/// (`keep_going` said no), if one did.
#[derive(Debug)]
pub struct Driven {
    /// What the driver did (`sends` left empty: the sink keeps them).
    pub outcome: PrecopyOutcome,
    /// The live pass that was cut short; the run stopped there.
    pub cut_short: Option<u32>,
}

/// The pre-copy pass loop, one for every guest and sink: passes until the
/// dirty pages fit the downtime budget or `max_passes` were run, then the
/// switchover (guest stopped, final sync, final pass). `keep_going` is
/// asked after every tick of the guest; `false` stops the run at once
/// (the extent mode's bound on re-dirtied pages). The driver's bug
/// variants (`dirty-cleared-after-pass`, `skip-final-sync`) are switched
/// here and nowhere else.
#[allow(clippy::too_many_arguments)]
pub fn drive<G: PrecopyGuest, S: PassSink<G>>(
    guest: &mut G,
    workload: &mut Workload,
    params: &PrecopyParams,
    sink: &mut S,
    bug: Option<Bug>,
    mut keep_going: impl FnMut(&G) -> bool,
    progress: &dyn Fn(u64),
) -> Result<Driven, SaveError> {
    let late_clear = bugs::active(bug, Bug::DirtyClearedAfterPass);
    let threshold = params.bandwidth.saturating_mul(params.downtime_ticks);
    let mut out = PrecopyOutcome::default();
    loop {
        let pending = guest.dirty_mut().pending();
        if out.passes >= 1 && (pending <= threshold || out.passes >= params.max_passes) {
            out.converged = pending <= threshold;
            break;
        }
        out.passes += 1;
        let pass = out.passes;
        let to_send = if late_clear {
            guest.dirty_mut().peek()
        } else {
            guest.dirty_mut().sync()
        };
        sink.begin_pass(pass, false)?;
        let mut ticks = 0;
        let mut cut = false;
        let sent = sink.send_pass(
            guest,
            pass,
            &to_send,
            params.bandwidth,
            out.pages_sent,
            progress,
            &mut |g| {
                workload.tick(g);
                ticks += 1;
                cut = !keep_going(g);
                !cut
            },
        )?;
        if cut {
            return Ok(Driven {
                outcome: out,
                cut_short: Some(pass),
            });
        }
        out.ticks += ticks;
        out.pages_sent += sent;
        out.per_pass.push(PassStats {
            pass,
            pages: sent,
            ticks,
            final_pass: false,
        });
        if late_clear {
            guest.dirty_mut().clear();
        }
        sink.end_pass()?;
    }
    // Switchover: stop, final sync, final pass; the caller finishes the
    // files with the devices and EOF.
    guest.stop();
    let pass = out.passes + 1;
    let to_send = if bugs::active(bug, Bug::SkipFinalSync) {
        Vec::new()
    } else {
        guest.dirty_mut().sync()
    };
    sink.begin_pass(pass, true)?;
    // The guest is stopped: no ticks between the final pass's batches.
    let final_pages = sink.send_pass(
        guest,
        pass,
        &to_send,
        params.bandwidth,
        out.pages_sent,
        progress,
        &mut |_| true,
    )?;
    out.pages_sent += final_pages;
    out.per_pass.push(PassStats {
        pass,
        pages: final_pages,
        ticks: 0,
        final_pass: true,
    });
    out.guest_writes = guest.writes();
    Ok(Driven {
        outcome: out,
        cut_short: None,
    })
}

/// The byte-level sink: every writer sees the same batches of pages, a
/// batch a tick, written by `channels` concurrent channels where the file
/// allows it; every send is logged for the oracle.
pub struct PageBatches {
    /// The writers, in the scenario's order.
    pub writers: Vec<MigrationWriter<SimFile, BugHooks>>,
    /// Every send, in order.
    pub sends: Vec<PageSend>,
    /// Channels per batch.
    pub channels: usize,
}

impl PassSink<Guest> for PageBatches {
    fn begin_pass(&mut self, pass: u32, completion: bool) -> Result<(), SaveError> {
        for w in self.writers.iter_mut() {
            w.file_mut().pass = pass;
            if completion {
                w.begin_completion()?;
            } else {
                w.begin_iteration()?;
            }
        }
        Ok(())
    }

    fn send_pass(
        &mut self,
        guest: &mut Guest,
        pass: u32,
        to_send: &[PageBitmap],
        bandwidth: u64,
        sent_before: u64,
        progress: &dyn Fn(u64),
        before_batch: &mut dyn FnMut(&mut Guest) -> bool,
    ) -> Result<u64, SaveError> {
        let mut queue = to_send
            .iter()
            .enumerate()
            .flat_map(|(b, bm)| bm.iter_ones().map(move |p| (b, p)))
            .peekable();
        let mut batch = Vec::new();
        let mut sent = 0;
        while queue.peek().is_some() {
            if !before_batch(guest) {
                break;
            }
            batch.clear();
            batch.extend(queue.by_ref().take(bandwidth as usize));
            self.send_batch(guest, pass, &batch)?;
            sent += batch.len() as u64;
            progress(sent_before + sent);
        }
        Ok(sent)
    }

    fn end_pass(&mut self) -> Result<(), SaveError> {
        for w in self.writers.iter_mut() {
            w.end_iteration()?;
        }
        Ok(())
    }
}

impl PageBatches {
    fn send_batch(
        &mut self,
        guest: &Guest,
        pass: u32,
        batch: &[(usize, u64)],
    ) -> Result<(), SaveError> {
        self.sends
            .extend(batch.iter().map(|&(block, page)| PageSend {
                pass,
                block: block as u32,
                page,
                zero: guest.state(block, page).zero,
            }));
        let source = |b: usize, p: u64, buf: &mut [u8]| guest.read_page(b, p, buf);
        for w in self.writers.iter_mut() {
            w.save_pages(batch, &source, self.channels)?;
        }
        Ok(())
    }
}

/// Migrate `guest` through every writer, `channels` concurrent writers per
/// batch; `progress(pages sent so far)` is called after every batch.
/// Returns the outcome (with every send) and the files.
#[allow(clippy::too_many_arguments)]
pub fn run_precopy(
    guest: &mut Guest,
    workload: &mut Workload,
    params: &PrecopyParams,
    writers: Vec<MigrationWriter<SimFile, BugHooks>>,
    devices: impl Fn(&Guest) -> Vec<DeviceState>,
    bug: Option<Bug>,
    channels: usize,
    progress: &dyn Fn(u64),
) -> Result<(PrecopyOutcome, Vec<SimFile>), SaveError> {
    let mut sink = PageBatches {
        writers,
        sends: Vec::new(),
        channels,
    };
    // The byte-level guest keeps no bound on its writes: never cut short.
    let Driven { mut outcome, .. } =
        drive(guest, workload, params, &mut sink, bug, |_| true, progress)?;
    outcome.sends = sink.sends;
    let devs = devices(guest);
    let files = sink
        .writers
        .into_iter()
        .map(|w| w.finish(&devs).map(|(f, _)| f))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((outcome, files))
}
