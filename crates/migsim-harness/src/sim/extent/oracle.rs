//! The extent mode's oracle: the invariants of [`crate::oracle`] that
//! apply to a fixed-ram file, judged range by range. The bound, the
//! layout, the story of a wrong page and the capability check are the
//! byte-level oracle's own ([`OracleInput`]); what changes is that the
//! guest's pages at switchover, the restored destination and the sends
//! are runs, so each check is linear in the runs, not the pages.
//!
//! * `restored-equals-switchover`: the destination ([`super::restore`])
//!   against the guest's state runs, walked together.
//! * `fixed-ram-size-within-bound`: [`OracleInput::fixed_ram_bound`].
//! * `fixed-ram-writes-in-place`: the headers hold the layout computed by
//!   the oracle; the page run writes, in order, carry the non-zero run
//!   sends page for page, each at `pages_offset + page*4096` of the page
//!   sent; no byte write touches a page area; every bitmap is written
//!   once, at completion.
//! * `capability-validated-on-load`: the byte-level check, on this file.

use crate::sim::content::Identified;
use migsim_format::io::MigFile;
use migsim_format::reader::LoadOptions;
use migsim_format::writer::RamBlockDesc;
use migsim_format::{Capabilities, PAGE_SIZE};

use super::file::ExtentFile;
use super::guest::ExtentGuest;
use super::precopy::RunSend;
use super::restore::{HeldRuns, advance, restore};
use crate::oracle::{
    Invariant, InvariantResult, Judged, OracleInput, expected, restored_story, validated_on_load,
};

/// Judge the fixed-ram file of an extent run. `base` carries the run's
/// figures (its `states` and `sends` unused: they are `guest` and `sends`).
pub fn judge(
    base: &OracleInput<'_>,
    guest: &ExtentGuest,
    sends: &[RunSend],
    caps: Capabilities,
    file: &ExtentFile,
) -> Vec<InvariantResult> {
    let w = Judged(Some(migsim_format::Layout::FixedRam));
    let result = |name, r: Result<String, String>| {
        let (ok, detail) = match r {
            Ok(d) => (true, d),
            Err(d) => (false, d),
        };
        InvariantResult {
            name,
            writer: w,
            ok,
            detail,
        }
    };
    vec![
        result(
            Invariant::RestoredEqualsSwitchover,
            restored(base, guest, caps, file),
        ),
        result(Invariant::FixedRamSizeWithinBound, within_bound(base, file)),
        result(
            Invariant::FixedRamWritesInPlace,
            writes_in_place(base, sends, file),
        ),
        result(
            Invariant::CapabilityValidatedOnLoad,
            validated_on_load(caps, file),
        ),
    ]
}

fn restored(
    base: &OracleInput<'_>,
    guest: &ExtentGuest,
    caps: Capabilities,
    file: &ExtentFile,
) -> Result<String, String> {
    let opts = LoadOptions {
        machine: Some(base.machine.to_string()),
        caps: Some(caps),
        clear_bit_pages: crate::bugs::clear_bit_pages(base.bug),
        ..LoadOptions::default()
    };
    let held = restore(file, &opts, base.blocks, base.dirty_destination)
        .map_err(|e| format!("the reader refused the file: {e}"))?;
    let initial = Identified::before_load(base.dirty_destination);
    let ignored = |b: usize| base.blocks[b].ignored(base.ignore_shared);
    let (bad, total, stories) = compare_runs(base.blocks, guest, &held, 5, &|b| {
        ignored(b).then_some(initial)
    });
    base.restored_verdict(bad, total, &stories)
}

/// Compare what the destination holds with the guest's pages, run by
/// run: (pages that differ, pages in all, the first `max_stories`
/// differences, told as the byte-level oracle tells them). `kept(b)` is
/// what every page of a block the load must leave alone holds (an
/// ignored block: the destination's own shared memory).
pub fn compare_runs(
    blocks: &[RamBlockDesc],
    guest: &ExtentGuest,
    held: &[HeldRuns],
    max_stories: usize,
    kept: &dyn Fn(usize) -> Option<Identified>,
) -> (u64, u64, Vec<String>) {
    let (mut bad, mut total, mut stories) = (0u64, 0u64, Vec::new());
    for (b, blk) in blocks.iter().enumerate() {
        total += blk.pages();
        let held = &held[b];
        if let Some(initial) = kept(b) {
            for &(f, n, id) in held {
                if id != initial {
                    bad += n;
                    if stories.len() < max_stories {
                        stories.push(format!(
                            "{} pages {f:#x}+{n:#x}: the load wrote them, but the block is on \
                             shared memory and x-ignore-shared is on",
                            blk.name
                        ));
                    }
                }
            }
            continue;
        }
        let mut h = 0usize;
        guest.state_runs(b, 0, blk.pages(), &mut |first, count, st| {
            let want = expected(b, first, st);
            let mut at = first;
            while at < first + count {
                while held[h].0 + held[h].1 <= at {
                    h += 1;
                }
                let (hf, hn, hid) = held[h];
                let n = (hf + hn).min(first + count) - at;
                let got = advance(hid, at - hf);
                if got != advance(want, at - first) {
                    bad += n;
                    // Page by page, as the byte-level oracle tells them.
                    for k in 0..n.min((max_stories - stories.len()) as u64) {
                        stories.push(restored_story(blocks, b, at + k, advance(got, k), st));
                    }
                }
                at += n;
            }
        });
    }
    (bad, total, stories)
}

fn within_bound(base: &OracleInput<'_>, file: &ExtentFile) -> Result<String, String> {
    let bound = base.fixed_ram_bound();
    if file.len() <= bound {
        Ok(format!("{} <= bound {bound}", file.len()))
    } else {
        Err(format!(
            "fixed-ram file is {} bytes, bound is {bound}",
            file.len()
        ))
    }
}

fn writes_in_place(
    base: &OracleInput<'_>,
    sends: &[RunSend],
    file: &ExtentFile,
) -> Result<String, String> {
    let (layout, _) = base.fixed_layout();
    let blocks = base.blocks;
    let name = |b: usize| blocks.get(b).map_or("?", |x| x.name.as_str());
    base.check_headers(&layout, file)?;
    let (live, areas) = base.live_areas(&layout);
    let area = |b: usize| (layout[b].0, layout[b].0 + blocks[b].used_length);
    // Page areas and bitmaps lie at increasing offsets: binary searches.
    let in_area = |off: u64, end: u64| {
        areas
            .partition_point(|&(po, _)| po < end)
            .checked_sub(1)
            .is_some_and(|i| off < area(live[i]).1)
    };
    let bitmap = |b: usize| {
        let bm = layout[b].1 + 28;
        (bm, bm + blocks[b].pages().div_ceil(64) * 8)
    };
    // Byte writes: none in a page area; bitmaps once, at completion.
    let final_pass = base.passes + 1;
    let mut bitmap_writes = vec![0u32; blocks.len()];
    let mut area_bytes = 0u64;
    for w in file.log() {
        let end = w.offset + w.len;
        if in_area(w.offset, end) {
            area_bytes += w.len;
            continue;
        }
        let last = areas.partition_point(|&(_, header)| header + 28 < end);
        for &b in live[..last].iter().rev() {
            let (bm, bm_end) = bitmap(b);
            if bm_end <= w.offset {
                break;
            }
            if end > bm {
                if w.pass != final_pass {
                    return Err(format!(
                        "bitmap of {} written in pass {}, before completion",
                        name(b),
                        w.pass
                    ));
                }
                bitmap_writes[b] += 1;
            }
        }
    }
    // Page run writes carry the non-zero sends, page for page, in place.
    let runs = file.run_writes();
    let run_bytes: u64 = runs.iter().map(|r| r.run.count * PAGE_SIZE).sum();
    let mut sends = sends.iter().filter(|s| !s.zero).copied();
    let mut cur: Option<RunSend> = None;
    let mut pages = 0u64;
    for w in runs {
        let (mut off, mut left) = (w.offset, w.run.count);
        let mut page = w.run.first;
        while left > 0 {
            let s = match cur.take().or_else(|| sends.next()) {
                Some(s) => s,
                None => {
                    return Err(format!(
                        "{} page {page:#x}: written in pass {} but never sent",
                        name(w.run.block),
                        w.pass
                    ));
                }
            };
            let b = s.block as usize;
            let want = area(b).0 + s.first * PAGE_SIZE;
            if w.run.block != b || page != s.first || off != want {
                let landed = live
                    .iter()
                    .map(|&lb| (lb, layout[lb]))
                    .rev()
                    .find(|(_, (po, _))| *po <= off)
                    .map(|(lb, (po, _))| format!("{} page {:#x}", name(lb), (off - po) / PAGE_SIZE))
                    .unwrap_or_else(|| "before every page area".into());
                return Err(format!(
                    "pass {}: {} page {:#x} was sent but the write landed at {landed} (offset {off:#x})",
                    s.pass,
                    name(b),
                    s.first
                ));
            }
            let k = left.min(s.count);
            if k < s.count {
                cur = Some(RunSend {
                    first: s.first + k,
                    count: s.count - k,
                    ..s
                });
            }
            off += k * PAGE_SIZE;
            page += k;
            left -= k;
            pages += k;
        }
    }
    if let Some(s) = cur.or_else(|| sends.next()) {
        return Err(format!(
            "pass {}: {} page {:#x} was sent but never written",
            s.pass,
            name(s.block as usize),
            s.first
        ));
    }
    if area_bytes != run_bytes {
        return Err(format!(
            "{area_bytes} bytes were written into page areas, {run_bytes} of them as page runs"
        ));
    }
    base.check_bitmap_writes(&bitmap_writes)?;
    Ok(format!("{pages} page writes in place"))
}
