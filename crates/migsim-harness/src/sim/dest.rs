//! Simulated destination guests, filled from a migration file through the
//! reader's [`RamSink`]. Both start zeroed (fresh RAM, as QEMU assumes) or
//! dirty (garbage), to prove the reader zeroes what the file says is zero.
//!
//! * [`Destination`] keeps every byte, like real guest RAM.
//! * [`VerifyingDestination`] keeps only what each page was identified as
//!   when it arrived (8 bytes a page: its version, or zero, or garbage),
//!   so guests far larger than this machine's memory can be restored and
//!   judged. Identification regenerates the page's filler (see
//!   [`super::content`]), so it is as strict as a byte comparison.
//!
//! Both can be split into disjoint page ranges for reader channels.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::content::{Identified, identify};
use migsim_format::LoadError;
use migsim_format::io::AlignedBuf;
use migsim_format::ram::PAGE_SIZE;
use migsim_format::reader::{BlockPart, RamSink};
use migsim_format::writer::RamBlockDesc;

/// Byte the dirty destination starts filled with.
pub const GARBAGE: u8 = 0xA5;

/// The stream's blocks mapped onto the destination's, checked as QEMU
/// checks them (name known, same used_length).
#[derive(Debug, Default)]
pub(crate) struct BlockMap {
    /// stream block index -> local block index
    map: Vec<usize>,
    /// local block name -> index (the first of a name), built on the
    /// first declaration when there are more than [`SCAN_MAX`] blocks
    by_name: std::collections::HashMap<String, usize>,
}

/// Up to this many local blocks a declaration finds its block by a scan
/// (no map to build: a fuzz input's load declares a handful).
const SCAN_MAX: usize = 16;

impl BlockMap {
    pub(crate) fn declare(
        &mut self,
        local: &[RamBlockDesc],
        name: &str,
        used_length: u64,
    ) -> Result<(), LoadError> {
        let found = if local.len() <= SCAN_MAX {
            local.iter().position(|b| b.name == name)
        } else {
            if self.by_name.is_empty() {
                self.by_name = local
                    .iter()
                    .enumerate()
                    .rev()
                    .map(|(i, b)| (b.name.clone(), i))
                    .collect();
            }
            self.by_name.get(name).copied()
        };
        let i = found.ok_or_else(|| LoadError::UnknownBlock(name.to_string()))?;
        if local[i].used_length != used_length {
            return Err(LoadError::SizeMismatch {
                name: name.to_string(),
                stream: used_length,
                local: local[i].used_length,
            });
        }
        // A stream declares each block once: a block declared again is a
        // new load into the same memory (a restart after a failed one),
        // whose block indexes start again from 0.
        if self.map.contains(&i) {
            self.map.clear();
        }
        self.map.push(i);
        Ok(())
    }

    pub(crate) fn local(&self, block: usize) -> usize {
        self.map[block]
    }

    /// Forget the stream's blocks (the local names stay indexed).
    fn forget_stream(&mut self) {
        self.map.clear();
    }
}

/// Split a block's storage (`per_page` items a page) at page `bounds`
/// into disjoint mutable parts, each with its first page.
fn split_at_bounds<'a, T>(
    mut items: &'a mut [T],
    bounds: &[u64],
    per_page: usize,
) -> Vec<(u64, &'a mut [T])> {
    let mut parts = Vec::with_capacity(bounds.len().saturating_sub(1));
    for r in bounds.windows(2) {
        let n = (r[1] - r[0]) as usize * per_page;
        let (head, tail) = items.split_at_mut(n);
        parts.push((r[0], head));
        items = tail;
    }
    parts
}

/// Zeroed memory for a block of `len` bytes, on huge pages if it can.
fn block_memory(len: usize) -> AlignedBuf {
    let mut m = AlignedBuf::zeroed(len);
    m.advise_huge_pages();
    m
}

/// Destination memory, byte for byte (page-aligned, so O_DIRECT reads can
/// land in it; backed by huge pages where the kernel allows, like a VMM's
/// guest RAM).
#[derive(Debug)]
pub struct Destination {
    blocks: Vec<RamBlockDesc>,
    mem: Vec<AlignedBuf>,
    map: BlockMap,
    fill: u8,
}

impl Destination {
    /// A destination with these blocks; `dirty` fills memory with garbage.
    pub fn new(blocks: &[RamBlockDesc], dirty: bool) -> Self {
        let fill = if dirty { GARBAGE } else { 0 };
        Self {
            mem: blocks
                .iter()
                .map(|b| {
                    let mut m = block_memory(b.used_length as usize);
                    if fill != 0 {
                        m.fill(fill);
                    }
                    m
                })
                .collect(),
            blocks: blocks.to_vec(),
            map: BlockMap::default(),
            fill,
        }
    }

    /// The blocks it was made with.
    pub fn blocks(&self) -> &[RamBlockDesc] {
        &self.blocks
    }

    /// Make it what [`Destination::new`] with its blocks and fill makes:
    /// every byte the initial fill again, no stream block declared. The
    /// fuzz targets load a dirty destination for every input and reuse
    /// one, instead of allocating and faulting in its memory each time.
    pub fn reset(&mut self) {
        for m in &mut self.mem {
            m.fill(self.fill);
        }
        self.map.forget_stream();
    }

    /// Make it what [`Destination::new`] with `blocks` and its fill makes,
    /// in the memory it has where that is large enough (a block's memory
    /// is allocated again only when it grows past what it ever was).
    pub fn reset_to(&mut self, blocks: &[RamBlockDesc]) {
        self.mem.truncate(blocks.len());
        for (i, b) in blocks.iter().enumerate() {
            let len = b.used_length as usize;
            match self.mem.get_mut(i) {
                Some(m) => {
                    if !m.fit(len) {
                        *m = block_memory(len);
                    }
                }
                None => self.mem.push(block_memory(len)),
            }
        }
        blocks.clone_into(&mut self.blocks);
        self.map = BlockMap::default();
        self.reset();
    }

    /// The byte every page held before the load (0, or [`GARBAGE`]).
    pub fn initial_fill(&self) -> u8 {
        self.fill
    }

    /// All of local block `block`'s memory.
    pub fn block(&self, block: usize) -> &[u8] {
        &self.mem[block]
    }

    /// One page of local block `block`.
    pub fn page(&self, block: usize, page: u64) -> &[u8] {
        let s = (page * PAGE_SIZE) as usize;
        &self.mem[block][s..s + PAGE_SIZE as usize]
    }

    fn range(&mut self, block: usize, first: u64, bytes: u64) -> &mut [u8] {
        let local = self.map.local(block);
        let s = (first * PAGE_SIZE) as usize;
        &mut self.mem[local][s..s + bytes as usize]
    }
}

/// One channel's page range of a [`Destination`] block.
struct MemPart<'a> {
    first: u64,
    mem: &'a mut [u8],
}

impl MemPart<'_> {
    fn range(&mut self, first: u64, bytes: u64) -> &mut [u8] {
        let s = ((first - self.first) * PAGE_SIZE) as usize;
        &mut self.mem[s..s + bytes as usize]
    }
}

impl BlockPart for MemPart<'_> {
    fn write_pages(&mut self, first: u64, data: &[u8]) -> Result<(), LoadError> {
        self.range(first, data.len() as u64).copy_from_slice(data);
        Ok(())
    }
    fn zero_pages(&mut self, first: u64, count: u64) -> Result<(), LoadError> {
        self.range(first, count * PAGE_SIZE).fill(0);
        Ok(())
    }
    fn buffer(&mut self, first: u64, count: u64) -> Option<&mut [u8]> {
        Some(self.range(first, count * PAGE_SIZE))
    }
}

impl RamSink for Destination {
    fn declare_block(&mut self, name: &str, used_length: u64) -> Result<(), LoadError> {
        self.map.declare(&self.blocks, name, used_length)
    }

    fn write_pages(&mut self, block: usize, first: u64, data: &[u8]) -> Result<(), LoadError> {
        self.range(block, first, data.len() as u64)
            .copy_from_slice(data);
        Ok(())
    }

    fn zero_pages(&mut self, block: usize, first: u64, count: u64) -> Result<(), LoadError> {
        self.range(block, first, count * PAGE_SIZE).fill(0);
        Ok(())
    }

    fn buffer(&mut self, block: usize, first: u64, count: u64) -> Option<&mut [u8]> {
        Some(self.range(block, first, count * PAGE_SIZE))
    }

    fn split(
        &mut self,
        block: usize,
        bounds: &[u64],
    ) -> Option<Vec<Box<dyn BlockPart + Send + '_>>> {
        let local = self.map.local(block);
        let parts = split_at_bounds(&mut self.mem[local], bounds, PAGE_SIZE as usize);
        Some(
            parts
                .into_iter()
                .map(|(first, mem)| Box::new(MemPart { first, mem }) as Box<dyn BlockPart + Send>)
                .collect(),
        )
    }
}

// What a page was identified as, packed in a u64.
const HELD_ZERO: u64 = 0;
const HELD_GARBAGE: u64 = u64::MAX;
const HELD_FOREIGN: u64 = u64::MAX - 1;

/// A destination that identifies every page as it arrives and keeps only
/// that: 8 bytes a page (plus an entry for each page holding another
/// page's data, which only a broken writer or reader produces).
#[derive(Debug)]
pub struct VerifyingDestination {
    seed: u64,
    blocks: Vec<RamBlockDesc>,
    held: Vec<Vec<u64>>,
    /// (local block, page) -> what a foreign data page was.
    foreign: Mutex<BTreeMap<(usize, u64), Identified>>,
    map: BlockMap,
    dirty: bool,
}

impl VerifyingDestination {
    /// A destination for pages generated from `seed`; `dirty` starts every
    /// page as garbage (as [`Destination`] filled with [`GARBAGE`]).
    pub fn new(seed: u64, blocks: &[RamBlockDesc], dirty: bool) -> Self {
        let start = if dirty { HELD_GARBAGE } else { HELD_ZERO };
        Self {
            seed,
            held: blocks
                .iter()
                .map(|b| vec![start; b.pages() as usize])
                .collect(),
            blocks: blocks.to_vec(),
            foreign: Mutex::new(BTreeMap::new()),
            map: BlockMap::default(),
            dirty,
        }
    }

    /// What every page held before the load: zero, or garbage.
    pub fn initial(&self) -> Identified {
        Identified::before_load(self.dirty)
    }

    /// What page `page` of local block `block` holds.
    pub fn held(&self, block: usize, page: u64) -> Identified {
        match self.held[block][page as usize] {
            HELD_ZERO => Identified::Zero,
            HELD_GARBAGE => Identified::Garbage,
            HELD_FOREIGN => self
                .foreign
                .lock()
                .expect("no channel panicked")
                .get(&(block, page))
                .copied()
                .unwrap_or(Identified::Garbage),
            v => Identified::Data {
                block: block as u32,
                page,
                version: v as u32,
            },
        }
    }

    /// Bytes this destination keeps (for memory reports).
    pub fn footprint(&self) -> u64 {
        self.held.iter().map(|h| h.len() as u64 * 8).sum()
    }
}

/// One channel's page range of a [`VerifyingDestination`] block.
struct HeldPart<'a> {
    seed: u64,
    block: usize,
    first: u64,
    held: &'a mut [u64],
    foreign: &'a Mutex<BTreeMap<(usize, u64), Identified>>,
}

impl BlockPart for HeldPart<'_> {
    fn write_pages(&mut self, first: u64, data: &[u8]) -> Result<(), LoadError> {
        super::stages::timed(super::stages::Stage::Verify, || {
            self.identify_pages(first, data)
        });
        Ok(())
    }

    fn zero_pages(&mut self, first: u64, count: u64) -> Result<(), LoadError> {
        let s = (first - self.first) as usize;
        self.held[s..s + count as usize].fill(HELD_ZERO);
        Ok(())
    }
}

impl HeldPart<'_> {
    /// What each page of `data` is, from page `first` on.
    fn identify_pages(&mut self, first: u64, data: &[u8]) {
        for (k, page_bytes) in data.chunks_exact(PAGE_SIZE as usize).enumerate() {
            let page = first + k as u64;
            let slot = &mut self.held[(page - self.first) as usize];
            *slot = match identify(self.seed, page_bytes) {
                Identified::Zero => HELD_ZERO,
                Identified::Garbage => HELD_GARBAGE,
                Identified::Data {
                    block,
                    page: p,
                    version,
                } if block as usize == self.block && p == page => u64::from(version),
                other => {
                    self.foreign
                        .lock()
                        .expect("no channel panicked")
                        .insert((self.block, page), other);
                    HELD_FOREIGN
                }
            };
        }
    }
}

impl VerifyingDestination {
    fn whole(&mut self, block: usize) -> HeldPart<'_> {
        let local = self.map.local(block);
        HeldPart {
            seed: self.seed,
            block: local,
            first: 0,
            held: &mut self.held[local],
            foreign: &self.foreign,
        }
    }
}

impl RamSink for VerifyingDestination {
    fn declare_block(&mut self, name: &str, used_length: u64) -> Result<(), LoadError> {
        self.map.declare(&self.blocks, name, used_length)
    }

    fn write_pages(&mut self, block: usize, first: u64, data: &[u8]) -> Result<(), LoadError> {
        self.whole(block).write_pages(first, data)
    }

    fn zero_pages(&mut self, block: usize, first: u64, count: u64) -> Result<(), LoadError> {
        self.whole(block).zero_pages(first, count)
    }

    fn split(
        &mut self,
        block: usize,
        bounds: &[u64],
    ) -> Option<Vec<Box<dyn BlockPart + Send + '_>>> {
        let local = self.map.local(block);
        let seed = self.seed;
        let foreign = &self.foreign;
        let parts = split_at_bounds(&mut self.held[local], bounds, 1);
        Some(
            parts
                .into_iter()
                .map(|(first, held)| {
                    Box::new(HeldPart {
                        seed,
                        block: local,
                        first,
                        held,
                        foreign,
                    }) as Box<dyn BlockPart + Send>
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks() -> Vec<RamBlockDesc> {
        ["a", "b"]
            .iter()
            .zip([3u64, 1])
            .map(|(n, pages)| RamBlockDesc {
                name: (*n).into(),
                used_length: pages * PAGE_SIZE,
                shared: false,
            })
            .collect()
    }

    /// A destination reset after a load holds what a new one holds and
    /// takes the next load as a new one does: the same bytes after it,
    /// the same refusals (a block declared twice starts a new load, an
    /// unknown one is refused).
    #[test]
    fn a_reset_destination_is_a_new_one() {
        let local = blocks();
        let page = |b: u8| vec![b; PAGE_SIZE as usize];
        let load = |d: &mut Destination, order: &[(&str, u64)]| {
            for (i, (name, len)) in order.iter().enumerate() {
                d.declare_block(name, *len).unwrap();
                d.write_pages(i, 0, &page(0x10 + i as u8)).unwrap();
            }
            d.zero_pages(0, order[0].1 / PAGE_SIZE - 1, 1).unwrap();
        };
        for dirty in [false, true] {
            let mut used = Destination::new(&local, dirty);
            load(&mut used, &[("b", PAGE_SIZE), ("a", 3 * PAGE_SIZE)]);
            used.reset();
            let fresh = Destination::new(&local, dirty);
            for b in 0..local.len() {
                assert!(used.block(b) == fresh.block(b), "dirty {dirty}: block {b}");
            }
            assert_eq!(used.initial_fill(), fresh.initial_fill());
            assert_eq!(used.blocks(), fresh.blocks());
            // The next load maps stream block 0 to "a" again, as in a new one.
            let mut fresh = fresh;
            for d in [&mut used, &mut fresh] {
                load(d, &[("a", 3 * PAGE_SIZE)]);
                assert!(d.declare_block("c", PAGE_SIZE).is_err());
            }
            for b in 0..local.len() {
                assert!(
                    used.block(b) == fresh.block(b),
                    "dirty {dirty}: reloaded {b}"
                );
            }
            assert!(used.page(0, 0) == page(0x10).as_slice());
        }
    }

    /// A destination reset to other blocks (fewer, more, larger,
    /// smaller, renamed) holds and loads what a new one with those blocks
    /// does, whatever it held before.
    #[test]
    fn a_destination_reset_to_other_blocks_is_a_new_one() {
        let shape = |sizes: &[(&str, u64)]| -> Vec<RamBlockDesc> {
            sizes
                .iter()
                .map(|&(name, pages)| RamBlockDesc {
                    name: name.into(),
                    used_length: pages * PAGE_SIZE,
                    shared: false,
                })
                .collect()
        };
        let shapes = [
            shape(&[("a", 4), ("b", 1)]),
            shape(&[("a", 2), ("b", 3), ("c", 1)]),
            shape(&[("c", 5)]),
            shape(&[("a", 1), ("b", 8)]),
        ];
        for dirty in [false, true] {
            let mut d = Destination::new(&shapes[0], dirty);
            for (k, local) in shapes.iter().cycle().take(9).enumerate() {
                // Leave marks a later shape must not see, in a load of
                // every block.
                d.reset();
                for b in 0..d.blocks().len() {
                    let name = d.blocks()[b].name.clone();
                    let len = d.blocks()[b].used_length;
                    d.declare_block(&name, len).unwrap();
                    d.write_pages(b, 0, &vec![0x77; PAGE_SIZE as usize])
                        .unwrap();
                }
                d.reset_to(local);
                let mut fresh = Destination::new(local, dirty);
                assert_eq!(d.blocks(), fresh.blocks(), "step {k}");
                for b in 0..local.len() {
                    assert!(
                        d.block(b) == fresh.block(b),
                        "dirty {dirty} step {k}: block {b}"
                    );
                }
                let last = local.last().unwrap();
                for x in [&mut d, &mut fresh] {
                    x.declare_block(&last.name, last.used_length).unwrap();
                    x.write_pages(0, 0, &vec![0x42; PAGE_SIZE as usize])
                        .unwrap();
                    assert!(x.declare_block("zz", PAGE_SIZE).is_err());
                }
                for b in 0..local.len() {
                    assert!(
                        d.block(b) == fresh.block(b),
                        "dirty {dirty} step {k}: loaded {b}"
                    );
                }
            }
        }
    }

    /// A stream block finds the first local block of its name, whether
    /// the destination scans its few blocks or maps its many; a name it
    /// lacks, or a size that differs, is refused either way.
    #[test]
    fn a_declaration_finds_the_first_local_block_of_its_name_few_or_many() {
        for n in [3, SCAN_MAX, SCAN_MAX + 1, 40] {
            let mut local: Vec<RamBlockDesc> = (0..n)
                .map(|i| RamBlockDesc {
                    name: format!("b{i}"),
                    used_length: PAGE_SIZE,
                    shared: false,
                })
                .collect();
            local[n - 1].name = "b1".into();
            local[n - 1].used_length = 2 * PAGE_SIZE;
            let mut map = BlockMap::default();
            map.declare(&local, "b1", PAGE_SIZE).unwrap();
            assert_eq!(map.local(0), 1, "{n} blocks: the first b1");
            map.declare(&local, "b0", PAGE_SIZE).unwrap();
            assert_eq!(map.local(1), 0, "{n} blocks");
            assert!(
                matches!(
                    map.declare(&local, "b1", 2 * PAGE_SIZE),
                    Err(LoadError::SizeMismatch { .. })
                ),
                "{n} blocks: the second b1's size is not the first's"
            );
            assert!(
                matches!(
                    map.declare(&local, "zz", PAGE_SIZE),
                    Err(LoadError::UnknownBlock(_))
                ),
                "{n} blocks"
            );
        }
    }
}
