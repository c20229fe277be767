//! The destination side of the concurrency model: QEMU 10.0's loader
//! thread and its multifd receive channels loading a fixed-ram file, one
//! step at a time under the same [`Scheduler`].
//!
//! * **The loader** (`parse_ramblock_mapped_ram`,
//!   `read_ramblock_mapped_ram`): reads each block's header and bitmap
//!   (here with the product's reader, [`migsim_format::reader::inspect`]),
//!   makes pages whose bit is clear zero (migsim's load option; QEMU
//!   leaves them untouched), and hands each run of set bits, a packet at
//!   most, to the next idle receive channel (`multifd_file_recv_data`),
//!   waiting when none is idle. Without channels it reads them itself.
//! * **The end of the load** (`multifd_recv_sync_main`, then
//!   `qemu_loadvm_state` returning): the loader waits until every receive
//!   channel is idle, then reports success.
//! * **A receive channel**: one page read from the file into guest memory
//!   per step.
//!
//! The model records, at the step the load reports success, which
//! channels were still busy and how the memory then compares with the
//! source at switchover; a channel's writes after success are counted.

use migsim_format::bitmap::PageBitmap;
use migsim_format::io::MigFile;
use migsim_format::ram::PAGE_SIZE;
use migsim_format::reader;
use migsim_format::writer::RamBlockDesc;

use super::{Actor, Scheduler};
use crate::bugs::{self, Bug};
use crate::sim::content::{Identified, PageState, identify};
use crate::sim::simfile::SimFile;

/// What the destination model saw.
#[derive(Clone, Debug, Default)]
pub struct DestRun {
    /// Step the load reported success.
    pub success_at: u64,
    /// Channels busy at that step, with the pages each still had to read.
    pub busy_at_success: Vec<(Actor, u64)>,
    /// Pages that differed from the switchover state at success, and the
    /// first few told.
    pub wrong_at_success: (u64, Vec<String>),
    /// Page writes into guest memory after success.
    pub writes_after_success: u64,
}

struct Job {
    block: usize,
    first: u64,
    count: u64,
    done: u64,
}

/// Load `file` with `channels` receive channels, interleaved by `sched`;
/// compare with `states` (the source at switchover) when the load reports
/// success. `Err` is the reader's refusal (the oracle reports it).
#[allow(clippy::too_many_arguments)]
pub fn run_dest(
    file: &SimFile,
    seed: u64,
    blocks: &[RamBlockDesc],
    states: &[Vec<PageState>],
    dirty_memory: bool,
    channels: u32,
    packet_pages: u32,
    bug: Option<Bug>,
    sched: &mut Scheduler,
) -> Result<DestRun, String> {
    let info = reader::inspect(file).map_err(|e| e.to_string())?;
    let start = Identified::before_load(dirty_memory);
    let mut mem: Vec<Vec<Identified>> = blocks
        .iter()
        .map(|b| vec![start; b.pages() as usize])
        .collect();
    // The loader's work: per block, the clear-bit pages, then the runs.
    let mut queue: Vec<Job> = Vec::new();
    let mut zero_fill: Vec<(usize, PageBitmap)> = Vec::new();
    let mut offsets = Vec::new();
    for (b, bi) in info.blocks.iter().enumerate() {
        let Some(fr) = &bi.fixed_ram else {
            return Err("the destination model loads fixed-ram files only".into());
        };
        if b >= blocks.len() {
            return Err(format!("the file has an extra block {}", bi.name));
        }
        if bi.ignored {
            // Shared memory: the destination keeps it, no channel reads.
            offsets.push(0);
            continue;
        }
        let mut bytes = vec![0u8; fr.bitmap_len as usize];
        file.read_at(fr.bitmap_offset, &mut bytes)
            .map_err(|e| e.to_string())?;
        let bm = PageBitmap::from_le_bytes(&bytes, bi.pages);
        let mut p = 0;
        while let Some(first) = bm.next_one(p) {
            let mut n = 1;
            while n < u64::from(packet_pages) && bm.get(first + n) {
                n += 1;
            }
            queue.push(Job {
                block: b,
                first,
                count: n,
                done: 0,
            });
            p = first + n;
        }
        zero_fill.push((b, bm));
        offsets.push(fr.pages_offset);
    }
    let mut chans: Vec<Option<Job>> = (0..channels).map(|_| None).collect();
    let mut next = 0usize;
    let mut zero_i = 0usize;
    let mut queue = queue.into_iter().peekable();
    let mut out = DestRun::default();
    let mut succeeded = false;
    let mut buf = vec![0u8; PAGE_SIZE as usize];
    let wait_channels = !bugs::active(bug, Bug::RecvChannelAfterCompletion);
    let mut runnable = Vec::new();
    let read_page = |mem: &mut Vec<Vec<Identified>>, buf: &mut [u8], b: usize, p: u64| {
        let ok = file.read_at(offsets[b] + p * PAGE_SIZE, buf).is_ok();
        mem[b][p as usize] = if ok {
            identify(seed, buf)
        } else {
            Identified::Garbage
        };
    };
    loop {
        runnable.clear();
        let idle = |c: &[Option<Job>]| c.iter().position(Option::is_none);
        let loader_can = !succeeded
            && (zero_i < zero_fill.len()
                || match queue.peek() {
                    Some(_) => chans.is_empty() || idle(&chans).is_some(),
                    None => !wait_channels || chans.iter().all(Option::is_none),
                });
        if loader_can {
            runnable.push(Actor::Loader);
        }
        for (i, c) in chans.iter().enumerate() {
            if c.is_some() {
                runnable.push(Actor::RecvChannel(i as u32));
            }
        }
        if runnable.is_empty() {
            break;
        }
        match sched.pick(&runnable) {
            Actor::Loader => {
                if zero_i < zero_fill.len() {
                    let (b, bm) = &zero_fill[zero_i];
                    for p in 0..bm.len() {
                        if !bm.get(p) {
                            mem[*b][p as usize] = Identified::Zero;
                        }
                    }
                    zero_i += 1;
                } else if let Some(job) = queue.next_if(|_| !chans.is_empty()) {
                    let n = chans.len();
                    let i = (0..n)
                        .map(|k| (next + k) % n)
                        .find(|&i| chans[i].is_none())
                        .expect("runnable only with an idle channel");
                    chans[i] = Some(job);
                    next = (i + 1) % n;
                } else if let Some(job) = queue.next() {
                    for p in job.first..job.first + job.count {
                        read_page(&mut mem, &mut buf, job.block, p);
                    }
                } else {
                    succeeded = true;
                    out.success_at = sched.steps();
                    out.busy_at_success = chans
                        .iter()
                        .enumerate()
                        .filter_map(|(i, c)| {
                            c.as_ref()
                                .map(|j| (Actor::RecvChannel(i as u32), j.count - j.done))
                        })
                        .collect();
                    out.wrong_at_success = compare(blocks, states, &mem, &info);
                }
            }
            Actor::RecvChannel(i) => {
                let slot = &mut chans[i as usize];
                let job = slot.as_mut().expect("runnable only with a job");
                let (b, p) = (job.block, job.first + job.done);
                job.done += 1;
                if job.done == job.count {
                    *slot = None;
                }
                read_page(&mut mem, &mut buf, b, p);
                if succeeded {
                    out.writes_after_success += 1;
                }
            }
            _ => unreachable!("not a destination actor"),
        }
    }
    Ok(out)
}

/// Memory at success against the switchover states (blocks ignored under
/// x-ignore-shared skipped: shared memory the destination keeps).
fn compare(
    blocks: &[RamBlockDesc],
    states: &[Vec<PageState>],
    mem: &[Vec<Identified>],
    info: &reader::StreamInfo,
) -> (u64, Vec<String>) {
    let mut bad = 0;
    let mut stories = Vec::new();
    for (b, blk) in blocks.iter().enumerate() {
        if info.blocks.get(b).is_some_and(|i| i.ignored) {
            continue;
        }
        for p in 0..blk.pages() {
            let st = states[b][p as usize];
            let got = mem[b][p as usize];
            if got != crate::oracle::expected(b, p, st) {
                bad += 1;
                if stories.len() < 3 {
                    stories.push(crate::oracle::restored_story(blocks, b, p, got, st));
                }
            }
        }
    }
    (bad, stories)
}
