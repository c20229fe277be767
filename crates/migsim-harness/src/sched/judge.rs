//! The concurrency model's invariants, judged from what the model
//! recorded ([`Events`], [`DestRun`]); each failure tells its story with
//! the steps involved, so the interleaving can be followed.
//!
//! 1. `no-stale-page-write`: for each page, writes land in the order
//!    their copies were read: an older copy never lands after a newer one.
//! 2. `bitmap-reflects-last-send`: the bitmap written holds, for each
//!    page, what the page's last send (in queue order) found: data or zero.
//! 3. `nothing-after-bitmap`: no page write and no bitmap bit after the
//!    bitmaps were written (QEMU frees them then).
//! 4. `destination-done-before-success`: every receive channel is idle
//!    when the load reports success (the story says how memory then
//!    compared with the source; a wrong file is `restored-equals-switchover`'s).
//! 5. `torn-copy-resent`: a page copied while a vCPU wrote it (its two
//!    halves read at different versions) is queued again after that copy.

use std::collections::HashMap;

use super::dest::DestRun;
use super::{Actor, Events};
use migsim_format::writer::RamBlockDesc;

type Verdict = Result<String, String>;

fn name(blocks: &[RamBlockDesc], b: u32) -> &str {
    blocks.get(b as usize).map_or("?", |x| x.name.as_str())
}

/// 1. Writes of each page land in the order their copies were read.
pub fn no_stale_page_write(e: &Events, blocks: &[RamBlockDesc]) -> Verdict {
    // Per page: (read step, landed step, by) of the last landed write.
    let mut last: HashMap<(u32, u64), (u64, u64, Actor)> = HashMap::new();
    let mut n = 0u64;
    for w in &e.writes {
        for (k, &(read, v0, _)) in w.reads.iter().enumerate() {
            let p = w.first + k as u64;
            n += 1;
            if let Some(&(prev_read, prev_landed, prev_by)) = last.get(&(w.block, p))
                && read < prev_read
            {
                return Err(format!(
                    "{} page {p:#x}: a copy read at step {read} (v{v0}) by {} landed at step {}, \
                     after a newer copy read at step {prev_read} by {prev_by} had landed at step {prev_landed}",
                    name(blocks, w.block),
                    w.by,
                    w.landed
                ));
            }
            last.insert((w.block, p), (read, w.landed, w.by));
        }
    }
    Ok(format!("{n} page writes in copy order"))
}

/// 2. The bitmap written holds each page's last send.
pub fn bitmap_reflects_last_send(e: &Events, blocks: &[RamBlockDesc]) -> Verdict {
    let mut want: HashMap<(u32, u64), (bool, u64)> = HashMap::new();
    for q in &e.queued {
        want.insert((q.block, q.page), (!q.zero, q.seq));
    }
    let mut checked = 0u64;
    for (b, bm) in e.bitmap.iter().enumerate() {
        for p in 0..bm.len() {
            let got = bm.get(p);
            let Some(&(data, seq)) = want.get(&(b as u32, p)) else {
                if got {
                    return Err(format!(
                        "{} page {p:#x}: bit set but the page was never sent",
                        name(blocks, b as u32)
                    ));
                }
                continue;
            };
            checked += 1;
            if got != data {
                return Err(format!(
                    "{} page {p:#x}: bit {} in the file, but its last send (#{seq}) found {}",
                    name(blocks, b as u32),
                    if got { "set" } else { "clear" },
                    if data { "data" } else { "a zero page" }
                ));
            }
        }
    }
    Ok(format!("{checked} bits equal their last send"))
}

/// 3. Nothing reaches the file after the bitmaps.
pub fn nothing_after_bitmap(e: &Events, blocks: &[RamBlockDesc]) -> Verdict {
    let Some(at) = e.bitmap_written else {
        return Err("the bitmaps were never written".into());
    };
    if let Some(w) = e.writes.iter().find(|w| w.landed > at) {
        return Err(format!(
            "{} wrote {} page(s) of {} from page {:#x} at step {}, after the bitmaps (step {at})",
            w.by,
            w.reads.len(),
            name(blocks, w.block),
            w.first,
            w.landed
        ));
    }
    if let Some(&(b, p, step, by)) = e.freed_bitmap_ops.first() {
        return Err(format!(
            "{by} changed the bit of {} page {p:#x} at step {step}, after the bitmaps were written \
             and freed (step {at}): a NULL dereference in QEMU",
            name(blocks, b)
        ));
    }
    Ok(format!("bitmaps at step {at}, nothing after"))
}

/// 4. The destination's channels are done when the load succeeds.
pub fn destination_done_before_success(d: &DestRun) -> Verdict {
    if let Some((a, left)) = d.busy_at_success.first() {
        let (bad, stories) = &d.wrong_at_success;
        return Err(format!(
            "the load reported success at step {} while {a} still had {left} page(s) to read \
             ({} more after success); memory then differed in {bad} page(s){}{}",
            d.success_at,
            d.writes_after_success,
            if stories.is_empty() { "" } else { ": " },
            stories.join("; ")
        ));
    }
    Ok(format!("channels idle at success (step {})", d.success_at))
}

/// 5. A torn copy is queued again after it was read.
pub fn torn_copy_resent(e: &Events, blocks: &[RamBlockDesc]) -> Verdict {
    // Per page, the steps it was queued at.
    let mut queued: HashMap<(u32, u64), Vec<u64>> = HashMap::new();
    for q in &e.queued {
        queued.entry((q.block, q.page)).or_default().push(q.at);
    }
    let mut torn = 0u64;
    for w in &e.writes {
        for (k, &(read, v0, v1)) in w.reads.iter().enumerate() {
            if v0 == v1 {
                continue;
            }
            torn += 1;
            let p = w.first + k as u64;
            let again = queued
                .get(&(w.block, p))
                .is_some_and(|at| at.iter().any(|&t| t > read));
            if !again {
                return Err(format!(
                    "{} page {p:#x}: {} copied it torn (first half v{v0}, second half v{v1}) \
                     from step {read} and it was never sent again",
                    name(blocks, w.block),
                    w.by
                ));
            }
        }
    }
    Ok(format!("{torn} torn copies, each sent again"))
}
