//! The oracle: judges a finished run by invariants, each reported by name
//! with a readable story when it fails.
//!
//! 1. `restored-equals-switchover`: the reader, loading the file into a
//!    destination (zeroed, or dirty when the scenario says so), yields the
//!    guest's memory at switchover, page for page (each page identified as
//!    it arrives, so memory use stays small for big guests).
//! 2. `fixed-ram-size-within-bound`: the fixed-ram file is no larger than a
//!    bound computed from the layout alone (headers, bitmaps, 1 MiB-aligned
//!    page areas, one empty section per allowed pass, device state,
//!    trailer), whatever the dirty rate.
//! 3. `sequential-size-equals-records`: the sequential file's size is the
//!    sum of the records the sends imply, and it only ever appended.
//! 4. `fixed-ram-writes-in-place`: the headers hold the layout computed
//!    here; every page write lands at `pages_offset + page*4096` of the
//!    page it sends, in send order (a write of k pages carries k
//!    consecutive sends), inside its own block's area; bitmaps are written
//!    once, at completion.
//! 5. `capability-validated-on-load`: a destination whose fixed-ram setting
//!    differs from the stream's refuses it with the exact message.
//!
//! Everything here is computed from the scenario and the send log, not
//! from the writer's own layout code.

use std::fmt;

use serde::{Serialize, Serializer};

use crate::sim::content::{Identified, PageState, describe};
use crate::sim::dest::VerifyingDestination;
use crate::sim::precopy::PageSend;
use crate::sim::simfile::SimFile;
use migsim_format::Layout;
use migsim_format::caps::{Capabilities, Capability, Profile};
use migsim_format::io::MigFile;
use migsim_format::reader::{LoadOptions, load};
use migsim_format::vmdesc;
use migsim_format::writer::{DeviceState, RamBlockDesc};

const PAGE: u64 = 4096;
const MIB: u64 = 1 << 20;

/// A named invariant (its `Display` and JSON form are the names above).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Invariant {
    /// 1. The restore equals the guest at switchover.
    RestoredEqualsSwitchover,
    /// 2. The fixed-ram file stays within its layout bound.
    FixedRamSizeWithinBound,
    /// 3. The sequential file is exactly its records, appended.
    SequentialSizeEqualsRecords,
    /// 4. Fixed-ram pages land in place, bitmaps once at completion.
    FixedRamWritesInPlace,
    /// 5. A destination with the other layout setting refuses the stream.
    CapabilityValidatedOnLoad,
    /// A migration refused at setup wrote nothing (judged by the run).
    RefusalWritesNothing,
    /// Concurrency: no page write lands after a newer copy of the same page.
    NoStalePageWrite,
    /// Concurrency: each page's bitmap bit is what its last send found.
    BitmapReflectsLastSend,
    /// Concurrency: nothing is written to the file after the bitmaps.
    NothingAfterBitmap,
    /// Concurrency: the destination's channels are done before the load
    /// reports success.
    DestinationDoneBeforeSuccess,
    /// Concurrency: a torn copy is always sent again.
    TornCopyResent,
}

impl Invariant {
    /// The kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            Invariant::RestoredEqualsSwitchover => "restored-equals-switchover",
            Invariant::FixedRamSizeWithinBound => "fixed-ram-size-within-bound",
            Invariant::SequentialSizeEqualsRecords => "sequential-size-equals-records",
            Invariant::FixedRamWritesInPlace => "fixed-ram-writes-in-place",
            Invariant::CapabilityValidatedOnLoad => "capability-validated-on-load",
            Invariant::RefusalWritesNothing => "refusal-writes-nothing",
            Invariant::NoStalePageWrite => "no-stale-page-write",
            Invariant::BitmapReflectsLastSend => "bitmap-reflects-last-send",
            Invariant::NothingAfterBitmap => "nothing-after-bitmap",
            Invariant::DestinationDoneBeforeSuccess => "destination-done-before-success",
            Invariant::TornCopyResent => "torn-copy-resent",
        }
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which writer's file an invariant judged: a layout, or `-` for the run
/// as a whole (as in JSON and the digest).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Judged(pub Option<Layout>);

impl fmt::Display for Judged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(l) => f.write_str(l.name()),
            None => f.write_str("-"),
        }
    }
}

impl Serialize for Judged {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One invariant's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InvariantResult {
    /// The invariant.
    pub name: Invariant,
    /// Which writer's file it judged.
    pub writer: Judged,
    /// Held?
    pub ok: bool,
    /// The story (empty when it held, or a short figure).
    pub detail: String,
}

/// One writer's file, for judging.
pub struct WrittenFile<'a> {
    /// Its layout.
    pub layout: Layout,
    /// Its capabilities.
    pub caps: Capabilities,
    /// The file.
    pub file: &'a SimFile,
}

/// What the oracle needs to know about the run.
pub struct OracleInput<'a> {
    /// Content seed.
    pub seed: u64,
    /// Machine type.
    pub machine: &'a str,
    /// Guest blocks.
    pub blocks: &'a [RamBlockDesc],
    /// Page states at switchover.
    pub states: &'a [Vec<PageState>],
    /// Every send.
    pub sends: &'a [PageSend],
    /// Live passes.
    pub passes: u32,
    /// The max_passes parameter.
    pub max_passes: u32,
    /// RAM PART sections written: one per live pass with the simple
    /// driver, one per tick with the QEMU driver ([`crate::sched`]).
    pub part_sections: u64,
    /// The most PART sections the driver may write (the bound's share).
    pub max_part_sections: u64,
    /// Device state written.
    pub devices: &'a [DeviceState],
    /// Destination starts dirty.
    pub dirty_destination: bool,
    /// Rule set; names the layout capability in the stream.
    pub profile: Profile,
    /// The reader variant to judge with.
    pub bug: Option<crate::bugs::Bug>,
    /// Reader channels for the restore (the verdict does not depend on it).
    pub channels: usize,
    /// How the files were finished: a durable save ends with the
    /// completion mark, which the restore then requires.
    pub durability: migsim_format::Durability,
    /// The files carry the integrity trailer, which the restore then
    /// verifies.
    pub integrity: bool,
    /// x-ignore-shared is on: listed, and a `mr_addr` in every block record.
    pub ignore_shared: bool,
}

impl OracleInput<'_> {
    /// Judge every file.
    pub fn judge(&self, files: &[WrittenFile<'_>]) -> Vec<InvariantResult> {
        let mut out = Vec::new();
        for f in files {
            let w = Judged(Some(f.layout));
            let mut push = |name, r: Result<String, String>| {
                out.push(match r {
                    Ok(detail) => InvariantResult {
                        name,
                        writer: w,
                        ok: true,
                        detail,
                    },
                    Err(detail) => InvariantResult {
                        name,
                        writer: w,
                        ok: false,
                        detail,
                    },
                })
            };
            push(Invariant::RestoredEqualsSwitchover, self.restored(f));
            match f.layout {
                Layout::FixedRam => {
                    push(
                        Invariant::FixedRamSizeWithinBound,
                        self.within_bound(f.file),
                    );
                    push(
                        Invariant::FixedRamWritesInPlace,
                        self.writes_in_place(f.file),
                    );
                }
                Layout::Sequential => {
                    push(
                        Invariant::SequentialSizeEqualsRecords,
                        self.sequential_size(f.file),
                    );
                }
            }
            push(
                Invariant::CapabilityValidatedOnLoad,
                self.validated_on_load(f),
            );
        }
        out
    }

    fn restored(&self, f: &WrittenFile<'_>) -> Result<String, String> {
        let mut dest = VerifyingDestination::new(self.seed, self.blocks, self.dirty_destination);
        let opts = LoadOptions {
            machine: Some(self.machine.to_string()),
            caps: Some(f.caps),
            skip_page_data: false,
            clear_bit_pages: crate::bugs::clear_bit_pages(self.bug),
            channels: self.channels,
            require_durable: self.durability == migsim_format::Durability::Durable,
            require_integrity: self.integrity,
            ..LoadOptions::default()
        };
        load(f.file, &opts, &mut dest).map_err(|e| format!("the reader refused the file: {e}"))?;
        let (bad, total, stories) =
            compare_restored(self.blocks, self.states, &dest, 5, self.ignore_shared);
        self.restored_verdict(bad, total, &stories)
    }

    /// The restore invariant's result from a comparison's figures.
    pub(crate) fn restored_verdict(
        &self,
        bad: u64,
        total: u64,
        stories: &[String],
    ) -> Result<String, String> {
        let kept: u64 = self
            .blocks
            .iter()
            .filter(|b| b.ignored(self.ignore_shared))
            .map(RamBlockDesc::pages)
            .sum();
        if bad == 0 && kept > 0 {
            Ok(format!(
                "{total} pages equal ({kept} of them in blocks ignored under x-ignore-shared, untouched by the load)"
            ))
        } else if bad == 0 {
            Ok(format!("{total} pages equal"))
        } else {
            Err(format!(
                "{bad} of {total} pages differ; {}",
                stories.join("; ")
            ))
        }
    }

    fn block_name(&self, b: u32) -> &str {
        self.blocks.get(b as usize).map_or("?", |x| x.name.as_str())
    }

    /// Bytes of header + configuration section.
    /// The validated capabilities the stream lists, in QAPI order:
    /// x-ignore-shared, then the layout capability when `layout`.
    fn listed(&self, layout: bool) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.ignore_shared {
            v.push(Capability::XIgnoreShared.name());
        }
        if layout {
            v.push(self.profile.name());
        }
        v
    }

    /// Bytes of `mr_addr` in each block record (x-ignore-shared).
    fn mr_addr_len(&self) -> u64 {
        if self.ignore_shared { 8 } else { 0 }
    }

    fn preamble_len(&self, caps: &[&str]) -> u64 {
        let mut n = 4 + 4 + 1 + 4 + self.machine.len() as u64;
        if !caps.is_empty() {
            n += 1 + 1 + "configuration/capabilities".len() as u64 + 4 + 4;
            n += caps.iter().map(|c| 1 + c.len() as u64).sum::<u64>();
        }
        n
    }

    /// START header: type, id, "ram", instance, version; then MEM_SIZE.
    const START_HEADER: u64 = 1 + 4 + 1 + 3 + 4 + 4 + 8;
    /// EOS + footer.
    const SECTION_TAIL: u64 = 8 + 5;
    /// An empty PART/END: type + id + EOS + footer.
    const EMPTY_SECTION: u64 = 1 + 4 + Self::SECTION_TAIL;
    /// SWITCHOVER_START command.
    const SWITCHOVER: u64 = 5;

    /// Device sections, EOF and the vmdesc trailer of a stream listing the
    /// validated capabilities `caps`.
    fn devices_len(&self, caps: &[&str]) -> u64 {
        let secs: u64 = self
            .devices
            .iter()
            .map(|d| 1 + 4 + 1 + d.idstr.len() as u64 + 4 + 4 + d.payload.len() as u64 + 5)
            .sum();
        secs + 1 + 1 + 4 + vmdesc::encode(self.machine, caps, self.devices).len() as u64
    }

    /// migsim's trailers after a stream of `stream_len` bytes: the
    /// integrity trailer, a durable save's completion mark.
    fn trailers_len(&self, stream_len: u64) -> u64 {
        let mark = match self.durability {
            migsim_format::Durability::Durable => migsim_format::durable::MARK_LEN,
            migsim_format::Durability::QemuCompatible => 0,
        };
        let integrity = if self.integrity {
            migsim_format::integrity::trailer_len(stream_len)
        } else {
            0
        };
        mark + integrity
    }

    /// Whether block `b` is ignored (x-ignore-shared on, shared memory).
    fn ignored(&self, b: usize) -> bool {
        self.blocks[b].ignored(self.ignore_shared)
    }

    /// (pages_offset, header_offset) of each block, laid out here; an
    /// ignored block has no bitmap and no page area, and the next record
    /// follows its header (its pages_offset here is that point).
    pub(crate) fn fixed_layout(&self) -> (Vec<(u64, u64)>, u64) {
        let mut pos = self.preamble_len(&self.listed(true)) + Self::START_HEADER;
        let mut v = Vec::new();
        for (i, b) in self.blocks.iter().enumerate() {
            let header = pos + 1 + b.name.len() as u64 + 8 + self.mr_addr_len();
            if self.ignored(i) {
                v.push((header + 28, header));
                pos = header + 28;
                continue;
            }
            let bitmap_end = header + 28 + b.pages().div_ceil(64) * 8;
            let pages_offset = bitmap_end.div_ceil(MIB) * MIB;
            v.push((pages_offset, header));
            pos = pages_offset + b.used_length;
        }
        (v, pos)
    }

    fn within_bound(&self, file: &SimFile) -> Result<String, String> {
        let bound = self.fixed_ram_bound();
        if file.len_bytes() <= bound {
            Ok(format!("{} <= bound {bound}", file.len_bytes()))
        } else {
            Err(format!(
                "fixed-ram file is {} bytes, bound is {bound}",
                file.len_bytes()
            ))
        }
    }

    /// Bound on the fixed-ram file for this run's layout and parameters.
    pub fn fixed_ram_bound(&self) -> u64 {
        let (_, ram_end) = self.fixed_layout();
        let stream = ram_end
            + Self::SECTION_TAIL
            + self.max_part_sections * Self::EMPTY_SECTION
            + Self::SWITCHOVER
            + Self::EMPTY_SECTION
            + self.devices_len(&self.listed(true));
        stream + self.trailers_len(stream)
    }

    fn sequential_size(&self, file: &SimFile) -> Result<String, String> {
        let mut expect = self.preamble_len(&self.listed(false)) + Self::START_HEADER;
        expect += self
            .blocks
            .iter()
            .map(|b| 1 + b.name.len() as u64 + 8 + self.mr_addr_len())
            .sum::<u64>();
        expect += Self::SECTION_TAIL;
        // One PART per live pass plus the END with its command.
        expect += (self.part_sections + 1) * Self::EMPTY_SECTION + Self::SWITCHOVER;
        let mut last = None;
        for s in self.sends {
            expect += 8;
            if last != Some(s.block) {
                expect += 1 + self.block_name(s.block).len() as u64;
            }
            last = Some(s.block);
            expect += if s.zero { 1 } else { PAGE };
        }
        expect += self.devices_len(&self.listed(false));
        expect += self.trailers_len(expect);
        let mut end = 0;
        for w in file.log() {
            if w.offset != end {
                return Err(format!(
                    "write at {:#x} is not an append (stream end was {end:#x})",
                    w.offset
                ));
            }
            end += w.len;
        }
        if file.len_bytes() == expect {
            Ok(format!("{expect} bytes"))
        } else {
            Err(format!(
                "sequential file is {} bytes; its {} sends imply {expect}",
                file.len_bytes(),
                self.sends.len()
            ))
        }
    }

    /// The headers of `file` hold the layout computed here (an ignored
    /// block's: both offsets 0).
    pub(crate) fn check_headers<F: MigFile + ?Sized>(
        &self,
        layout: &[(u64, u64)],
        file: &F,
    ) -> Result<(), String> {
        for (b, &(pages_offset, header)) in layout.iter().enumerate() {
            let mut h = [0u8; 28];
            file.read_at(header, &mut h).map_err(|e| e.to_string())?;
            let bitmap_offset = u64::from_be_bytes(h[12..20].try_into().expect("8"));
            let got_pages = u64::from_be_bytes(h[20..28].try_into().expect("8"));
            let (want_bitmap, want_pages) = if self.ignored(b) {
                (0, 0)
            } else {
                (header + 28, pages_offset)
            };
            if bitmap_offset != want_bitmap || got_pages != want_pages || want_pages % MIB != 0 {
                return Err(format!(
                    "{}: header says bitmap {bitmap_offset:#x}, pages {got_pages:#x}; layout says {want_bitmap:#x}, {want_pages:#x}",
                    self.blocks[b].name,
                ));
            }
        }
        Ok(())
    }

    /// The blocks not ignored, and their (pages_offset, header_offset):
    /// page areas and bitmaps in stream order at increasing offsets, for
    /// binary searches.
    pub(crate) fn live_areas(&self, layout: &[(u64, u64)]) -> (Vec<usize>, Vec<(u64, u64)>) {
        let live: Vec<usize> = (0..self.blocks.len())
            .filter(|&b| !self.ignored(b))
            .collect();
        let areas = live.iter().map(|&b| layout[b]).collect();
        (live, areas)
    }

    /// Each block's bitmap written exactly once (an ignored block's: none).
    pub(crate) fn check_bitmap_writes(&self, writes: &[u32]) -> Result<(), String> {
        match (0..self.blocks.len()).find(|&b| writes[b] != u32::from(!self.ignored(b))) {
            Some(b) => Err(format!(
                "bitmap of {} written {} times (expected {})",
                self.blocks[b].name,
                writes[b],
                if self.ignored(b) {
                    "never: the block is ignored"
                } else {
                    "once"
                }
            )),
            None => Ok(()),
        }
    }

    fn writes_in_place(&self, file: &SimFile) -> Result<String, String> {
        let (layout, _) = self.fixed_layout();
        self.check_headers(&layout, file)?;
        // Binary searches over the areas keep the check linear in the
        // writes however many blocks there are.
        let (live, areas) = self.live_areas(&layout);
        let area_end = |i: usize| areas[i].0 + self.blocks[live[i]].used_length;
        // The last area starting before `end`.
        let area_before = |end: u64| areas.partition_point(|&(po, _)| po < end).checked_sub(1);
        let area = |off: u64| {
            area_before(off + 1)
                .filter(|&i| off < area_end(i))
                .map(|i| (live[i], areas[i].0))
        };
        let bitmap = |i: usize| {
            let bm = areas[i].1 + 28;
            (bm, bm + self.blocks[live[i]].pages().div_ceil(64) * 8)
        };
        let final_pass = self.passes + 1;
        let mut sends = self.sends.iter().filter(|s| !s.zero);
        let mut page_writes = 0u64;
        let mut bitmap_writes = vec![0u32; self.blocks.len()];
        for w in file.log() {
            let end = w.offset + w.len;
            // Which page area does the write touch, if any?
            let touched = area_before(end)
                .filter(|&i| w.offset < area_end(i))
                .map(|i| (live[i], areas[i].0));
            if let Some((b, po)) = touched {
                let name = &self.blocks[b].name;
                match area(w.offset) {
                    Some((b2, _)) if b2 == b && end <= po + self.blocks[b].used_length => {}
                    _ => {
                        return Err(format!(
                            "write {:#x}+{:#x} crosses the page area of {name}",
                            w.offset, w.len
                        ));
                    }
                }
                if (w.offset - po) % PAGE != 0 || w.len % PAGE != 0 || w.len == 0 {
                    return Err(format!(
                        "write {:#x}+{:#x} in {name} is not whole pages at a page boundary",
                        w.offset, w.len
                    ));
                }
                // A write of k pages carries the next k non-zero sends.
                for k in 0..w.len / PAGE {
                    let page = (w.offset - po) / PAGE + k;
                    let at = w.offset + k * PAGE;
                    let Some(s) = sends.next() else {
                        return Err(format!(
                            "{name} page {page:#x}: written in pass {} but never sent",
                            w.pass
                        ));
                    };
                    if s.block as usize != b || s.page != page {
                        return Err(format!(
                            "pass {}: {} page {:#x} was sent but the write landed at {name} page {page:#x} (offset {at:#x})",
                            s.pass,
                            self.block_name(s.block),
                            s.page,
                        ));
                    }
                    page_writes += 1;
                }
            } else {
                // Every bitmap the write overlaps: those starting before
                // its end, back to the first that ends before its start.
                let last = areas.partition_point(|&(_, header)| header + 28 < end);
                for i in (0..last).rev() {
                    let (bm, bm_end) = bitmap(i);
                    if bm_end <= w.offset {
                        break;
                    }
                    let b = live[i];
                    if w.offset < bm_end && end > bm {
                        if w.pass != final_pass {
                            return Err(format!(
                                "bitmap of {} written in pass {}, before completion",
                                self.blocks[b].name, w.pass
                            ));
                        }
                        bitmap_writes[b] += 1;
                    }
                }
            }
        }
        if let Some(s) = sends.next() {
            return Err(format!(
                "pass {}: {} page {:#x} was sent but never written",
                s.pass,
                self.block_name(s.block),
                s.page
            ));
        }
        self.check_bitmap_writes(&bitmap_writes)?;
        Ok(format!("{page_writes} page writes in place"))
    }

    fn validated_on_load(&self, f: &WrittenFile<'_>) -> Result<String, String> {
        validated_on_load(f.caps, f.file)
    }
}

/// Invariant 5 for a file written with `caps`: a destination with the
/// other layout setting refuses it with the exact message.
pub(crate) fn validated_on_load<F: MigFile>(
    caps: Capabilities,
    file: &F,
) -> Result<String, String> {
    let layout = caps.profile().layout_capability();
    let stream_on = caps.has(layout);
    // The same destination but for the layout: x-ignore-shared, also
    // validated, as the stream has it.
    let mut flipped = Capabilities::for_profile(caps.profile());
    let shared = caps.has(Capability::XIgnoreShared);
    flipped
        .set(&[(layout, !stream_on), (Capability::XIgnoreShared, shared)])
        .map_err(|e| e.to_string())?;
    let opts = LoadOptions {
        machine: None,
        caps: Some(flipped),
        skip_page_data: true,
        ..LoadOptions::default()
    };
    let on_off = |b: bool| if b { "on" } else { "off" };
    let want = format!(
        "Capability {layout} is {}, but received capability is {}",
        on_off(!stream_on),
        on_off(stream_on)
    );
    match load(file, &opts, &mut migsim_format::reader::NullSink) {
        Ok(_) => Err(format!(
            "a destination with fixed-ram {} accepted the stream",
            on_off(!stream_on)
        )),
        Err(e) if e.to_string() == want => Ok(want),
        Err(e) => Err(format!("expected \"{want}\", got \"{e}\"")),
    }
}

/// Compare a restored destination with the guest's pages at switchover
/// (`states`): (pages that differ, pages in all, the first `max_stories`
/// differences told as `pc.ram page 0x12: restored v3, expected v5`).
/// With `ignore_shared`, a block on shared memory is the destination's
/// own (the same memory the source wrote): the load must leave it as it
/// was, `pc.ram page 0x12: restored v3, expected untouched (garbage): ...`.
pub fn compare_restored(
    blocks: &[RamBlockDesc],
    states: &[Vec<PageState>],
    dest: &VerifyingDestination,
    max_stories: usize,
    ignore_shared: bool,
) -> (u64, u64, Vec<String>) {
    let mut stories = Vec::new();
    let mut bad = 0u64;
    let mut total = 0u64;
    for (b, blk) in blocks.iter().enumerate() {
        let ignored = blk.ignored(ignore_shared);
        for p in 0..blk.pages() {
            total += 1;
            let st = states[b][p as usize];
            let want = if ignored {
                dest.initial()
            } else {
                expected(b, p, st)
            };
            let held = dest.held(b, p);
            if held == want {
                continue;
            }
            bad += 1;
            if stories.len() < max_stories {
                stories.push(if ignored {
                    format!(
                        "{} page {p:#x}: restored {}, expected untouched ({}): the block is on \
                         shared memory and x-ignore-shared is on",
                        blk.name,
                        held_text(blocks, b, p, held),
                        held_text(blocks, b, p, want)
                    )
                } else {
                    restored_story(blocks, b, p, held, st)
                });
            }
        }
    }
    (bad, total, stories)
}

/// What page `page` of block `block` must hold in state `st`.
pub(crate) fn expected(block: usize, page: u64, st: PageState) -> Identified {
    if st.zero || st.version == 0 {
        Identified::Zero
    } else {
        Identified::Data {
            block: block as u32,
            page,
            version: st.version,
        }
    }
}

/// `pc.ram page 0x12: restored v3, expected v5`: page `p` of block `b`
/// held `held` where the guest's state was `st`.
pub(crate) fn restored_story(
    blocks: &[RamBlockDesc],
    b: usize,
    p: u64,
    held: Identified,
    st: PageState,
) -> String {
    format!(
        "{} page {p:#x}: restored {}, expected {}",
        blocks[b].name,
        held_text(blocks, b, p, held),
        describe(st)
    )
}

/// What page `p` of block `b` holds, as a story tells it: `v3`, `zero`,
/// `garbage`, or `v3 of vga.vram page 0x2` for another page's data.
fn held_text(blocks: &[RamBlockDesc], b: usize, p: u64, held: Identified) -> String {
    let block_name = |b: u32| blocks.get(b as usize).map_or("?", |x| x.name.as_str());
    match held {
        Identified::Zero => "zero".to_string(),
        Identified::Data {
            block,
            page,
            version,
        } if block == b as u32 && page == p => format!("v{version}"),
        Identified::Data {
            block,
            page,
            version,
        } => format!("v{version} of {} page {page:#x}", block_name(block)),
        Identified::Garbage => "garbage".to_string(),
    }
}
