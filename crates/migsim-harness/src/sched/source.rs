//! The source side of the concurrency model: vCPUs, the migration thread
//! and the multifd send channels of QEMU 10.0, one step at a time.
//!
//! What each step models (QEMU 10.0 `migration/`):
//!
//! * **Setup** (`ram_save_setup`, `ram_init_bitmaps`): every page is in the
//!   migration bitmap; the guest's dirty log is cleared.
//! * **A time slice** (`ram_save_iterate`): one RAM PART section per tick.
//!   The migration thread takes up to `bandwidth` pages (the rate limit)
//!   while the vCPUs make the tick's writes, then writes EOS.
//! * **The walk** (`ram_find_and_save_block`, `find_dirty_block`): each
//!   page is found from the last position (kept across syncs), its bit is
//!   cleared in the migration bitmap *before* it is copied
//!   (`migration_bitmap_clear_dirty`); reaching the end of the block list
//!   wraps to the first block, and with multifd flushes the queued packet
//!   and waits for every channel (`multifd_ram_flush_and_sync`,
//!   `multifd_send_sync_main`, per round for mapped-ram).
//! * **Queuing** (`ram_save_target_page`, `multifd_queue_page`,
//!   `multifd_send`): legacy zero-page detection on the migration thread
//!   (`save_zero_page`: a zero page only clears its file bitmap bit), then
//!   the page joins the packet; a packet that is full or meets another
//!   block is handed to the next idle channel, round-robin, the thread
//!   waiting when none is idle. Without multifd the thread writes the page
//!   itself (`ram_save_page`).
//! * **After a slice** (`migration_iteration_run`,
//!   `migration_update_counters`, `ram_state_pending_estimate`/`_exact`):
//!   the threshold is the bandwidth measured over the slice (pages that
//!   landed) times the downtime limit in ticks; when the pending estimate
//!   (bits left in the migration bitmap) falls below it, the dirty log is
//!   synced into the bitmap, mid-walk, and if the exact count is still
//!   below, the migration completes. `max_passes` syncs force completion.
//! * **Completion** (`migration_completion`, `ram_save_complete`): the
//!   vCPUs stop, a final sync, the walk until nothing is dirty (its wrap
//!   flushes the channels), the file bitmaps (`ram_save_file_bmap`, which
//!   frees them: a later bit operation is a NULL dereference in QEMU),
//!   device state and EOF.
//! * **A send channel** (`multifd_send_thread`,
//!   `multifd_nocomp_send_prepare`, `multifd_send_zero_page_detect`,
//!   `multifd_set_file_bitmap`, `file_write_ramblock_iov`): zero-page
//!   detection page by page, the bitmap bits of the packet, then each run
//!   of consecutive data pages read from guest memory (in two halves: a
//!   vCPU write between them tears the copy) and written with one
//!   positioned write.

use migsim_format::SaveError;
use migsim_format::bitmap::PageBitmap;
use migsim_format::fixed_ram::BlockLayout;
use migsim_format::io::MigFile;
use migsim_format::ram::PAGE_SIZE;
use migsim_format::writer::{DeviceState, MigrationWriter};

use super::{
    Actor, BitOp, ConcurrencySpec, Events, PageWrite, Queued, Scheduler, ZeroPageDetection,
};
use crate::bugs::{self, Bug, BugHooks};
use crate::sim::content::fill_page;
use crate::sim::guest::Guest;
use crate::sim::precopy::{PageSend, PassStats, PrecopyOutcome, PrecopyParams};
use crate::sim::simfile::SimFile;
use crate::sim::workload::Workload;

const PAGE: usize = PAGE_SIZE as usize;
const HALF: usize = PAGE / 2;

/// Steps one model run may take before it is called a hang.
pub const MAX_STEPS: u64 = 200_000_000;

/// What the source model produced.
pub struct SourceRun {
    /// Passes, pages, per-pass figures and every send (in landing order).
    pub outcome: PrecopyOutcome,
    /// The finished file.
    pub file: SimFile,
    /// What the invariants judge.
    pub events: Events,
    /// RAM PART sections written (one per tick).
    pub sections: u64,
    /// The guest at switchover.
    pub guest: Guest,
}

/// The most ticks a run may take: `max_passes + 1` walks over all of RAM,
/// each at least `bandwidth` pages a tick. Completion is forced there, so
/// the fixed-ram file's PART sections are bounded by the layout.
pub fn max_ticks(params: &PrecopyParams, total_pages: u64) -> u64 {
    (u64::from(params.max_passes) + 1) * (total_pages.div_ceil(params.bandwidth) + 1)
}

enum Sink {
    Writer(Box<MigrationWriter<SimFile, BugHooks>>),
    Finished {
        file: SimFile,
        layout: Vec<BlockLayout>,
    },
    Gone,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    Live,
    Final,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    SectionStart,
    Walk,
    Flush { wait: bool },
    SectionEnd,
    Bitmap,
    Done,
}

/// `find_dirty_block`'s search, resumable across a flush.
#[derive(Clone, Copy)]
struct Search {
    block: usize,
    page: u64,
    complete_round: bool,
    start: (usize, u64),
}

enum Found {
    Page(usize, u64),
    Wrap,
    AllClean,
}

struct Packet {
    block: usize,
    pages: Vec<u64>,
    seqs: Vec<u64>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ChanStage {
    Detect,
    Bitmap,
    Read,
    Land,
}

struct Job {
    packet: Packet,
    stage: ChanStage,
    zero: Vec<bool>,
    cursor: usize,
    runs: Vec<(u64, usize)>,
    run: usize,
    page: usize,
    half: usize,
    buf: Vec<u8>,
    reads: Vec<(u64, u32, u32)>,
}

#[derive(Default)]
struct Channel {
    job: Option<Job>,
    /// The last packet's data pages (its iov list), kept between packets.
    prev: Option<(usize, Vec<u64>)>,
}

struct Vcpu {
    workload: Workload,
    allowance: u64,
}

struct Source<'a> {
    spec: &'a ConcurrencySpec,
    params: &'a PrecopyParams,
    bug: Option<Bug>,
    multifd: bool,
    guest: Guest,
    vcpus: Vec<Vcpu>,
    bmap: Vec<PageBitmap>,
    last: (usize, u64),
    search: Option<Search>,
    pending: Option<Packet>,
    hold: Option<(usize, u64, u64)>,
    next_channel: usize,
    channels: Vec<Channel>,
    phase: Phase,
    stage: Stage,
    sink: Sink,
    tick: u64,
    max_ticks: u64,
    budget: u64,
    syncs: u32,
    seq: u64,
    landed: u64,
    pass: PassStats,
    out: PrecopyOutcome,
    events: Events,
    now: u64,
    buf: Vec<u8>,
}

/// Run the source model for one writer: `vcpus` share the workload,
/// `sched` interleaves them with the migration thread and `spec.channels`
/// send channels (when `multifd`).
#[allow(clippy::too_many_arguments)]
pub fn run_source(
    guest: Guest,
    vcpus: Vec<Workload>,
    writer: MigrationWriter<SimFile, BugHooks>,
    devices: &dyn Fn(&Guest) -> Vec<DeviceState>,
    spec: &ConcurrencySpec,
    params: &PrecopyParams,
    multifd: bool,
    bug: Option<Bug>,
    sched: &mut Scheduler,
    progress: &dyn Fn(u64),
) -> Result<SourceRun, SaveError> {
    let total = guest.total_pages();
    let mut guest = guest;
    // Setup: every page of every block not ignored in the migration
    // bitmap (the guest's dirty log starts full there), the log cleared.
    let bmap = guest.dirty_mut().sync();
    let channels = if multifd { spec.channels as usize } else { 0 };
    let mut s = Source {
        spec,
        params,
        bug,
        multifd,
        guest,
        vcpus: vcpus
            .into_iter()
            .map(|workload| Vcpu {
                workload,
                allowance: 0,
            })
            .collect(),
        bmap,
        last: (0, 0),
        search: None,
        pending: None,
        hold: None,
        next_channel: 0,
        channels: (0..channels).map(|_| Channel::default()).collect(),
        phase: Phase::SectionStart,
        stage: Stage::Live,
        sink: Sink::Writer(Box::new(writer)),
        tick: 0,
        max_ticks: max_ticks(params, total),
        budget: 0,
        syncs: 0,
        seq: 0,
        landed: 0,
        pass: PassStats {
            pass: 1,
            pages: 0,
            ticks: 0,
            final_pass: false,
        },
        out: PrecopyOutcome::default(),
        events: Events {
            multifd,
            ..Events::default()
        },
        now: 0,
        buf: vec![0; PAGE],
    };
    s.set_pass(1);
    let mut runnable = Vec::new();
    loop {
        runnable.clear();
        s.runnable(&mut runnable);
        if runnable.is_empty() {
            if s.phase == Phase::Done {
                break;
            }
            return Err(SaveError::Setup(format!(
                "concurrency model deadlocked at step {} (a model bug)",
                sched.steps()
            )));
        }
        if sched.steps() >= MAX_STEPS {
            return Err(SaveError::Setup(format!(
                "concurrency model took more than {MAX_STEPS} steps"
            )));
        }
        let a = sched.pick(&runnable);
        s.now = sched.steps();
        match a {
            Actor::Vcpu(i) => s.vcpu_step(i as usize),
            Actor::Migration => s.migration_step(devices)?,
            Actor::SendChannel(i) => s.channel_step(i as usize)?,
            Actor::Loader | Actor::RecvChannel(_) => unreachable!("not a source actor"),
        }
        if s.now.is_multiple_of(4096) {
            progress(s.out.pages_sent);
        }
    }
    progress(s.out.pages_sent);
    let file = match std::mem::replace(&mut s.sink, Sink::Gone) {
        Sink::Finished { file, .. } => file,
        _ => unreachable!("Done only after the bitmap step finished the writer"),
    };
    s.out.guest_writes = s.guest.writes();
    Ok(SourceRun {
        outcome: s.out,
        file,
        events: s.events,
        sections: s.tick,
        guest: s.guest,
    })
}

impl Source<'_> {
    fn set_pass(&mut self, pass: u32) {
        if let Sink::Writer(w) = &mut self.sink {
            w.file_mut().pass = pass;
        }
    }

    fn idle_channel(&self) -> Option<usize> {
        let n = self.channels.len();
        (0..n)
            .map(|k| (self.next_channel + k) % n)
            .find(|&i| self.channels[i].job.is_none())
    }

    fn all_idle(&self) -> bool {
        self.channels.iter().all(|c| c.job.is_none())
    }

    fn runnable(&self, out: &mut Vec<Actor>) {
        if self.guest.running() {
            for (i, v) in self.vcpus.iter().enumerate() {
                if v.allowance > 0 {
                    out.push(Actor::Vcpu(i as u32));
                }
            }
        }
        let mt = match self.phase {
            Phase::SectionStart => self.vcpus.iter().all(|v| v.allowance == 0),
            Phase::Walk => self.hold.is_none() || self.idle_channel().is_some(),
            Phase::Flush { wait } => {
                if self.pending.is_some() {
                    self.idle_channel().is_some()
                } else {
                    !wait || self.all_idle()
                }
            }
            Phase::SectionEnd | Phase::Bitmap => true,
            Phase::Done => false,
        };
        if mt {
            out.push(Actor::Migration);
        }
        for (i, c) in self.channels.iter().enumerate() {
            if c.job.is_some() {
                out.push(Actor::SendChannel(i as u32));
            }
        }
    }

    fn vcpu_step(&mut self, i: usize) {
        let v = &mut self.vcpus[i];
        let (b, p, zero) = v.workload.next_write(&self.guest);
        v.allowance -= 1;
        self.guest.write(b, p, zero);
    }

    fn page_now(&mut self, b: usize, p: u64) {
        let st = self.guest.state(b, p);
        fill_page(self.guest.seed(), b as u32, p, st, &mut self.buf);
    }

    fn is_zero_now(&self, b: usize, p: u64) -> bool {
        let st = self.guest.state(b, p);
        st.zero || st.version == 0
    }

    fn pass_number(&self) -> u32 {
        self.pass.pass
    }

    fn migration_step(
        &mut self,
        devices: &dyn Fn(&Guest) -> Vec<DeviceState>,
    ) -> Result<(), SaveError> {
        match self.phase {
            Phase::SectionStart => {
                self.writer()?.begin_iteration()?;
                self.tick += 1;
                self.pass.ticks += 1;
                self.out.ticks += 1;
                self.budget = self.params.bandwidth;
                let writing = self.spec.guest_ticks.is_none_or(|n| self.tick <= n);
                let n = self.vcpus.len() as u64;
                let per_tick = self
                    .vcpus
                    .first()
                    .map_or(0, |v| v.workload.writes_per_tick());
                for (i, v) in self.vcpus.iter_mut().enumerate() {
                    v.allowance = if writing {
                        per_tick / n + u64::from((i as u64) < per_tick % n)
                    } else {
                        0
                    };
                }
                self.phase = Phase::Walk;
            }
            Phase::Walk => self.walk_step()?,
            Phase::Flush { .. } => {
                if self.pending.is_some() {
                    self.hand_over();
                } else {
                    self.phase = Phase::Walk;
                }
            }
            Phase::SectionEnd => self.section_end()?,
            Phase::Bitmap => {
                let Sink::Writer(w) = std::mem::replace(&mut self.sink, Sink::Gone) else {
                    unreachable!("the bitmap is written once")
                };
                let layout = w.fixed_ram_layout().map(<[_]>::to_vec);
                let devs = devices(&self.guest);
                let (file, _) = w.finish(&devs)?;
                self.events.bitmap_written = Some(self.now);
                let final_pass = self.pass.clone();
                self.out.per_pass.push(final_pass);
                if let Some(layout) = &layout {
                    for (b, l) in layout.iter().enumerate() {
                        let pages = self.bmap[b].len();
                        if l.is_ignored() {
                            // No bitmap in the file: nothing of it was sent.
                            self.events.bitmap.push(PageBitmap::new(pages));
                            continue;
                        }
                        let mut bytes = vec![0u8; l.bitmap_len as usize];
                        file.read_at(l.header.bitmap_offset, &mut bytes)?;
                        self.events
                            .bitmap
                            .push(PageBitmap::from_le_bytes(&bytes, pages));
                    }
                }
                self.sink = Sink::Finished {
                    file,
                    layout: layout.unwrap_or_default(),
                };
                self.phase = Phase::Done;
            }
            Phase::Done => unreachable!("not runnable"),
        }
        Ok(())
    }

    fn writer(&mut self) -> Result<&mut MigrationWriter<SimFile, BugHooks>, SaveError> {
        match &mut self.sink {
            Sink::Writer(w) => Ok(w),
            _ => Err(SaveError::Setup("the writer already finished".into())),
        }
    }

    /// One `find_dirty_block` + save of the page found.
    fn walk_step(&mut self) -> Result<(), SaveError> {
        if let Some((b, p, seq)) = self.hold.take() {
            self.hand_over();
            self.enqueue(b, p, seq);
            return self.after_page();
        }
        let mut search = self.search.take().unwrap_or(Search {
            block: self.last.0,
            page: self.last.1,
            complete_round: false,
            start: self.last,
        });
        loop {
            match self.find(&mut search) {
                Found::Page(b, p) => {
                    // `ram_save_host_page` leaves the search just past the
                    // page (the end of its host page).
                    self.last = (b, p + 1);
                    return self.save_page(b, p);
                }
                Found::AllClean => {
                    self.phase = match self.stage {
                        Stage::Live => Phase::SectionEnd,
                        Stage::Final => Phase::Bitmap,
                    };
                    return Ok(());
                }
                Found::Wrap => {
                    if self.multifd {
                        let wait = match self.stage {
                            Stage::Live => !bugs::active(self.bug, Bug::NoChannelFlushAtRound),
                            Stage::Final => !bugs::active(self.bug, Bug::BitmapBeforeChannelsDrain),
                        };
                        self.search = Some(search);
                        self.phase = Phase::Flush { wait };
                        return Ok(());
                    }
                }
            }
        }
    }

    /// `pss_find_next_dirty` and the checks of `find_dirty_block`.
    fn find(&self, s: &mut Search) -> Found {
        loop {
            let next = self.bmap[s.block].next_one(s.page);
            let back_at_start = s.complete_round && s.block == s.start.0;
            match next {
                Some(p) if back_at_start && p >= s.start.1 => return Found::AllClean,
                Some(p) => return Found::Page(s.block, p),
                None if back_at_start => return Found::AllClean,
                None => {}
            }
            s.page = 0;
            s.block += 1;
            if s.block == self.bmap.len() {
                s.block = 0;
                s.complete_round = true;
                return Found::Wrap;
            }
        }
    }

    fn save_page(&mut self, b: usize, p: u64) -> Result<(), SaveError> {
        self.bmap[b].set(p, false);
        let seq = self.seq;
        self.seq += 1;
        self.pass.pages += 1;
        self.out.pages_sent += 1;
        let zpd = self.spec.zero_page_detection;
        let mt_detects = match zpd {
            ZeroPageDetection::None => false,
            ZeroPageDetection::Legacy => true,
            ZeroPageDetection::Multifd => !self.multifd,
        };
        let zero = mt_detects && self.is_zero_now(b, p);
        self.events.queued.push(Queued {
            seq,
            block: b as u32,
            page: p,
            at: self.now,
            zero,
        });
        let pass = self.pass_number();
        let fixed = self.writer()?.fixed_ram_layout().is_some();
        if zero {
            if fixed {
                self.writer()?.set_page_bit(b, p, false)?;
                self.bit_op(b, p, false);
            } else {
                self.buf.fill(0);
                let buf = std::mem::take(&mut self.buf);
                let r = self.writer()?.save_page(b, p, &buf);
                self.buf = buf;
                r?;
            }
            self.out.sends.push(PageSend {
                pass,
                block: b as u32,
                page: p,
                zero: true,
            });
        } else if !self.multifd {
            // ram_save_page: the migration thread copies and writes it.
            self.page_now(b, p);
            let v = self.guest.state(b, p).version;
            let buf = std::mem::take(&mut self.buf);
            let r = self.writer()?.save_page(b, p, &buf);
            self.buf = buf;
            r?;
            if fixed {
                self.bit_op(b, p, true);
                self.events.writes.push(PageWrite {
                    block: b as u32,
                    first: p,
                    reads: vec![(self.now, v, v)],
                    landed: self.now,
                    by: Actor::Migration,
                });
            }
            self.landed += 1;
            self.out.sends.push(PageSend {
                pass,
                block: b as u32,
                page: p,
                zero: false,
            });
        } else if self.needs_hand_over(b) {
            if self.idle_channel().is_some() {
                self.hand_over();
                self.enqueue(b, p, seq);
            } else {
                self.hold = Some((b, p, seq));
                return Ok(());
            }
        } else {
            self.enqueue(b, p, seq);
        }
        self.after_page()
    }

    fn after_page(&mut self) -> Result<(), SaveError> {
        if self.stage == Stage::Live {
            self.budget = self.budget.saturating_sub(1);
            if self.budget == 0 {
                self.phase = Phase::SectionEnd;
            }
        }
        Ok(())
    }

    fn needs_hand_over(&self, b: usize) -> bool {
        self.pending
            .as_ref()
            .is_some_and(|pk| pk.block != b || pk.pages.len() >= self.spec.packet_pages as usize)
    }

    fn enqueue(&mut self, b: usize, p: u64, seq: u64) {
        let pk = self.pending.get_or_insert_with(|| Packet {
            block: b,
            pages: Vec::new(),
            seqs: Vec::new(),
        });
        pk.pages.push(p);
        pk.seqs.push(seq);
    }

    /// `multifd_send`: the packet goes to the next idle channel.
    fn hand_over(&mut self) {
        let Some(i) = self.idle_channel() else {
            return;
        };
        let Some(packet) = self.pending.take() else {
            return;
        };
        let n = packet.pages.len();
        let stage = if self.spec.zero_page_detection == ZeroPageDetection::Multifd {
            ChanStage::Detect
        } else {
            ChanStage::Bitmap
        };
        self.channels[i].job = Some(Job {
            packet,
            stage,
            zero: vec![false; n],
            cursor: 0,
            runs: Vec::new(),
            run: 0,
            page: 0,
            half: 0,
            buf: Vec::new(),
            reads: Vec::new(),
        });
        self.next_channel = (i + 1) % self.channels.len();
    }

    fn bit_op(&mut self, b: usize, p: u64, set: bool) {
        self.events.bit_ops.push(BitOp {
            block: b as u32,
            page: p,
            set,
            at: self.now,
        });
    }

    fn sync(&mut self) {
        self.syncs += 1;
        self.events.syncs.push(self.now);
        let log = self.guest.dirty_mut().sync();
        for (bm, l) in self.bmap.iter_mut().zip(&log) {
            bm.or_assign(l);
        }
    }

    fn section_end(&mut self) -> Result<(), SaveError> {
        self.writer()?.end_iteration()?;
        let bandwidth = std::mem::take(&mut self.landed);
        let threshold = bandwidth.saturating_mul(self.params.downtime_ticks);
        let pending = |s: &Self| s.bmap.iter().map(PageBitmap::count_ones).sum::<u64>();
        let mut left = pending(self);
        let mut forced = self.tick >= self.max_ticks;
        let mut synced = false;
        if !forced && left < threshold {
            if self.syncs >= self.params.max_passes {
                forced = true;
            } else {
                self.end_pass();
                self.sync();
                synced = true;
                left = pending(self);
            }
        }
        if forced || left == 0 || left < threshold {
            self.out.converged = !forced;
            self.complete(synced)
        } else {
            self.phase = Phase::SectionStart;
            Ok(())
        }
    }

    fn end_pass(&mut self) {
        let next = self.pass.pass + 1;
        let done = std::mem::replace(
            &mut self.pass,
            PassStats {
                pass: next,
                pages: 0,
                ticks: 0,
                final_pass: false,
            },
        );
        self.out.per_pass.push(done);
        self.out.passes += 1;
        self.set_pass(next);
    }

    /// `migration_completion` → `ram_save_complete`. `synced`: the slice
    /// just ended a pass with a sync, so no live pass is open.
    fn complete(&mut self, synced: bool) -> Result<(), SaveError> {
        self.guest.stop();
        self.vcpus.iter_mut().for_each(|v| v.allowance = 0);
        if !synced {
            self.end_pass();
        }
        self.pass.final_pass = true;
        if !bugs::active(self.bug, Bug::SkipFinalSync) {
            self.sync();
        }
        self.writer()?.begin_completion()?;
        self.stage = Stage::Final;
        self.phase = Phase::Walk;
        Ok(())
    }

    fn channel_step(&mut self, i: usize) -> Result<(), SaveError> {
        let mut job = self.channels[i]
            .job
            .take()
            .expect("runnable only with a job");
        let b = job.packet.block;
        match job.stage {
            ChanStage::Detect => {
                let p = job.packet.pages[job.cursor];
                let z = self.is_zero_now(b, p);
                job.zero[job.cursor] = z;
                let seq = job.packet.seqs[job.cursor] as usize;
                self.events.queued[seq].zero = z;
                job.cursor += 1;
                if job.cursor == job.packet.pages.len() {
                    job.stage = ChanStage::Bitmap;
                }
            }
            ChanStage::Bitmap => {
                let mut normal: Vec<u64> = job
                    .packet
                    .pages
                    .iter()
                    .zip(&job.zero)
                    .filter(|(_, z)| !**z)
                    .map(|(p, _)| *p)
                    .collect();
                let zeros: Vec<u64> = job
                    .packet
                    .pages
                    .iter()
                    .zip(&job.zero)
                    .filter(|(_, z)| **z)
                    .map(|(p, _)| *p)
                    .collect();
                let mut block = b;
                let mut apply_zeros = !bugs::active(self.bug, Bug::MultifdZeroClearsWrongRange);
                if normal.is_empty()
                    && bugs::active(self.bug, Bug::AllZeroBatchKeepsPageList)
                    && let Some((pb, prev)) = &self.channels[i].prev
                {
                    // The page list is not rebuilt for an all-zero packet:
                    // the previous packet's pages go out again, and the
                    // zero pages are never applied.
                    block = *pb;
                    normal = prev.clone();
                    apply_zeros = false;
                }
                for &p in &normal {
                    self.channel_bit(block, p, true, i)?;
                }
                if apply_zeros {
                    for &p in &zeros {
                        self.channel_bit(b, p, false, i)?;
                        self.out.sends.push(PageSend {
                            pass: self.pass_number(),
                            block: b as u32,
                            page: p,
                            zero: true,
                        });
                    }
                }
                job.packet.block = block;
                job.runs = runs(&normal);
                self.channels[i].prev = Some((block, normal));
                job.stage = ChanStage::Read;
                if job.runs.is_empty() {
                    self.channels[i].job = None;
                    return Ok(());
                }
            }
            ChanStage::Read => {
                let (first, n) = job.runs[job.run];
                let p = first + job.page as u64;
                if job.page == 0 && job.half == 0 {
                    job.buf.clear();
                    job.buf.resize(n * PAGE, 0);
                    job.reads.clear();
                }
                let bb = job.packet.block;
                self.page_now(bb, p);
                let v = self.guest.state(bb, p).version;
                let at = job.page * PAGE + job.half * HALF;
                job.buf[at..at + HALF]
                    .copy_from_slice(&self.buf[job.half * HALF..(job.half + 1) * HALF]);
                if job.half == 0 {
                    job.reads.push((self.now, v, v));
                    job.half = 1;
                } else {
                    job.reads.last_mut().expect("first half read").2 = v;
                    job.half = 0;
                    job.page += 1;
                    if job.page == n {
                        job.stage = ChanStage::Land;
                    }
                }
            }
            ChanStage::Land => {
                let (first, n) = job.runs[job.run];
                let bb = job.packet.block;
                self.channel_write(bb, first, &job.buf)?;
                self.events.writes.push(PageWrite {
                    block: bb as u32,
                    first,
                    reads: std::mem::take(&mut job.reads),
                    landed: self.now,
                    by: Actor::SendChannel(i as u32),
                });
                self.landed += n as u64;
                let pass = self.pass_number();
                for k in 0..n as u64 {
                    self.out.sends.push(PageSend {
                        pass,
                        block: bb as u32,
                        page: first + k,
                        zero: false,
                    });
                    if bugs::active(self.bug, Bug::DirtyClearedAfterCopy) {
                        self.guest.clear_dirty_page(bb, first + k);
                    }
                }
                job.run += 1;
                job.page = 0;
                job.half = 0;
                if job.run == job.runs.len() {
                    return Ok(());
                }
                job.stage = ChanStage::Read;
            }
        }
        self.channels[i].job = Some(job);
        Ok(())
    }

    fn channel_bit(&mut self, b: usize, p: u64, set: bool, i: usize) -> Result<(), SaveError> {
        match &mut self.sink {
            Sink::Writer(w) => {
                w.set_page_bit(b, p, set)?;
                self.bit_op(b, p, set);
            }
            _ => self.events.freed_bitmap_ops.push((
                b as u32,
                p,
                self.now,
                Actor::SendChannel(i as u32),
            )),
        }
        Ok(())
    }

    fn channel_write(&mut self, b: usize, first: u64, data: &[u8]) -> Result<(), SaveError> {
        match &mut self.sink {
            Sink::Writer(w) => w.write_page_run(b, first, data),
            Sink::Finished { file, layout } => {
                let off = layout[b].page_offset(first);
                file.write_at(off, data)?;
                Ok(())
            }
            Sink::Gone => Err(SaveError::Setup("the file is gone".into())),
        }
    }
}

/// Runs of consecutive pages in `pages` (in order), at most a packet each.
fn runs(pages: &[u64]) -> Vec<(u64, usize)> {
    let mut out: Vec<(u64, usize)> = Vec::new();
    for &p in pages {
        match out.last_mut() {
            Some((first, n)) if *first + *n as u64 == p => *n += 1,
            _ => out.push((p, 1)),
        }
    }
    out
}
