//! The `fixed_ram_mutate` target: a valid small fixed-ram file, then
//! targeted mutations of its fields, then every check of the `reader`
//! target.

use arbitrary::Arbitrary;

use crate::sim::dest::GARBAGE;
use migsim_format::caps::{Capabilities, Capability};
use migsim_format::fifo::FifoMap;
use migsim_format::io::MigFile;
use migsim_format::reader::{self, LoadOptions, StreamInfo};
use migsim_format::vmdesc::VmdescCache;
use migsim_format::writer::{DeviceState, MigrationWriter, RamBlockDesc};

use super::{MACHINE, PAGE, PAGE_USIZE, TRAILERS, typed_input};

use super::layout_model::*;
use super::reader::check_file_sharing;
use super::sparse_file::SparseFile;

/// Input of the [`fixed_ram_mutate`] target.
#[derive(Clone, Debug, Arbitrary)]
pub struct MutateInput {
    /// Pages - 1 of each block (1..=16 pages), at most 3 blocks.
    pub blocks: Vec<u8>,
    /// Layout of the valid file: the writer's own (1 MiB-aligned page
    /// areas) when `layout % 4 == 0`, otherwise compacted (page areas only
    /// page-aligned, a few KiB instead of a MiB per block: faster).
    pub layout: u8,
    /// Number of devices (FULL sections) after RAM, 0..=2.
    pub devices: u8,
    /// Pages sent per pass as (block, page, fill byte; 0 = zero page); the
    /// last pass is the completion pass.
    pub passes: Vec<Vec<(u8, u8, u8)>>,
    /// What to break.
    pub mutations: Vec<Mutation>,
}

/// One change to a valid file. `block` is taken modulo the block count.
/// Serialisable, so a reproducer records exactly what was applied.
#[derive(Clone, Debug, Arbitrary, serde::Serialize, serde::Deserialize)]
pub enum Mutation {
    /// The fixed-ram header's version (be32 at header+0).
    HeaderVersion {
        /// Block.
        block: u8,
        /// New value.
        value: Value32,
    },
    /// The header's page size (be64 at header+4).
    HeaderPageSize {
        /// Block.
        block: u8,
        /// New value.
        value: Value64,
    },
    /// The header's bitmap offset (be64 at header+12).
    BitmapOffset {
        /// Block.
        block: u8,
        /// New value.
        value: Value64,
    },
    /// The header's page-area offset (be64 at header+20).
    PagesOffset {
        /// Block.
        block: u8,
        /// New value.
        value: Value64,
    },
    /// The block's used_length in the block list; with `fix_total` the
    /// MEM_SIZE total moves by the same amount.
    UsedLength {
        /// Block.
        block: u8,
        /// New value.
        value: Value64,
        /// Keep the total consistent.
        fix_total: bool,
    },
    /// The whole MEM_SIZE word (total | 0x4).
    MemSizeWord {
        /// New value.
        value: Value64,
    },
    /// Flip one bit of the block's bitmap.
    FlipBitmapBit {
        /// Block.
        block: u8,
        /// Bit, modulo the bitmap's bits.
        bit: u16,
    },
    /// Set one byte of the block's bitmap.
    BitmapByte {
        /// Block.
        block: u8,
        /// Byte, modulo the bitmap's length.
        index: u16,
        /// New byte.
        value: u8,
    },
    /// Overwrite bytes in the block's page area.
    PageArea {
        /// Block.
        block: u8,
        /// Offset inside the area, modulo its length.
        offset: u32,
        /// Bytes (at most 64 used).
        bytes: Vec<u8>,
    },
    /// Overwrite bytes after the last page area (EOS, footers, PART/END
    /// sections, devices, EOF, vmdesc).
    Tail {
        /// Offset from the end of the last page area, modulo the tail.
        offset: u16,
        /// Bytes (at most 64 used).
        bytes: Vec<u8>,
    },
    /// Overwrite bytes anywhere.
    Anywhere {
        /// Offset, modulo the file length.
        offset: u32,
        /// Bytes (at most 64 used).
        bytes: Vec<u8>,
    },
    /// Cut the file.
    Truncate {
        /// New length (never longer than the file).
        at: Value64,
    },
    /// Grow the file with a hole.
    Extend {
        /// Bytes added, modulo 256 KiB.
        by: u32,
    },
}

/// A hostile 32-bit value.
#[derive(Clone, Copy, Debug, Arbitrary, serde::Serialize, serde::Deserialize)]
pub enum Value32 {
    /// This value.
    Exact(u32),
    /// One of 0, 1, 2, 0xffff_ffff, 0x8000_0000.
    Special(u8),
}

/// A hostile 64-bit value, relative to the field's valid value and the
/// file's layout.
#[derive(Clone, Copy, Debug, Arbitrary, serde::Serialize, serde::Deserialize)]
pub enum Value64 {
    /// This value.
    Exact(u64),
    /// The valid value plus this.
    Delta(i32),
    /// The valid value plus this many pages.
    DeltaPages(i16),
    /// One of a table of edge values (see [`Value64::resolve`]).
    Special(u8),
}

/// What a [`Value64`] is relative to.
pub(crate) struct Ctx {
    orig: u64,
    file_len: u64,
    header: u64,
}

impl Value32 {
    fn resolve(self) -> u32 {
        match self {
            Value32::Exact(v) => v,
            Value32::Special(i) => [0, 1, 2, u32::MAX, 1 << 31][usize::from(i) % 5],
        }
    }
}

impl Value64 {
    fn resolve(self, c: &Ctx) -> u64 {
        match self {
            Value64::Exact(v) => v,
            Value64::Delta(d) => c.orig.wrapping_add_signed(i64::from(d)),
            Value64::DeltaPages(d) => c.orig.wrapping_add_signed(i64::from(d) * PAGE as i64),
            Value64::Special(i) => {
                let table = [
                    0,
                    1,
                    28,
                    PAGE - 1,
                    PAGE,
                    PAGE + 1,
                    1 << 20,
                    (1 << 20) - PAGE,
                    c.file_len,
                    c.file_len.saturating_sub(1),
                    c.file_len & !(PAGE - 1),
                    c.file_len.next_multiple_of(PAGE),
                    c.header,
                    c.header + 28,
                    c.orig.wrapping_mul(2),
                    c.orig / 2,
                    u64::MAX,
                    u64::MAX - 27,
                    !(PAGE - 1),
                    1 << 63,
                    i64::MAX as u64,
                    u64::from(u32::MAX),
                ];
                table[usize::from(i) % table.len()]
            }
        }
    }
}

/// Byte `i` of every data page before its fill: `i * 31` (mod 256).
const PAGE_PATTERN: [u8; PAGE_USIZE] = {
    let mut p = [0u8; PAGE_USIZE];
    let mut i = 0;
    while i < PAGE_USIZE {
        p[i] = (i as u8).wrapping_mul(31);
        i += 1;
    }
    p
};

/// The bytes of a page sent with `fill` (0 = a zero page): byte `i` is
/// `fill ^ i*31 ^ block ^ rotl3(page)`, byte 0 the fill. Built eight
/// bytes a step (instrumented code pays per loop iteration).
pub(crate) fn page_bytes(block: usize, page: u64, fill: u8) -> [u8; PAGE_USIZE] {
    let mut p = [0u8; PAGE_USIZE];
    if fill != 0 {
        let key = u64::from_ne_bytes([fill ^ (block as u8) ^ (page as u8).rotate_left(3); 8]);
        for (out, base) in p.chunks_exact_mut(8).zip(PAGE_PATTERN.chunks_exact(8)) {
            let word = u64::from_ne_bytes(base.try_into().expect("8 bytes")) ^ key;
            out.copy_from_slice(&word.to_ne_bytes());
        }
        p[0] = fill;
    }
    p
}

pub(crate) fn devices(n: u8) -> Vec<DeviceState> {
    let all = [("timer", 2u32, 24usize), ("cpu", 12, 64)];
    all.iter()
        .take(usize::from(n % 3))
        .map(|&(idstr, version_id, len)| DeviceState {
            idstr: idstr.into(),
            instance_id: 0,
            version_id,
            payload: (0..len).map(|i| (i as u8).wrapping_mul(7) ^ 0x5a).collect(),
        })
        .collect()
}

/// Sends: per pass, (block, page, fill); the last pass is the completion
/// pass.
pub(crate) type Passes = Vec<Vec<(usize, u64, u8)>>;

/// Write a valid file with the public writer. Returns the file and, per
/// block and page, the fill byte of the last send (`None`: never sent).
pub(crate) fn write_file(
    blocks: &[RamBlockDesc],
    fixed: bool,
    passes: &Passes,
    devs: &[DeviceState],
) -> (SparseFile, Vec<Vec<Option<u8>>>) {
    let enabled: &[Capability] = if fixed { &[Capability::FixedRam] } else { &[] };
    let caps = Capabilities::from_enabled(enabled).expect("valid capabilities");
    let mut w = MigrationWriter::start(SparseFile::default(), MACHINE, &caps, blocks.to_vec())
        .expect("writer starts");
    let mut last: Vec<Vec<Option<u8>>> = blocks
        .iter()
        .map(|b| vec![None; (b.used_length / PAGE) as usize])
        .collect();
    let n = passes.len();
    for (k, pass) in passes.iter().enumerate() {
        if k + 1 == n {
            w.begin_completion().expect("begin_completion");
        } else {
            w.begin_iteration().expect("begin_iteration");
        }
        for &(b, p, fill) in pass {
            w.save_page(b, p, &page_bytes(b, p, fill))
                .expect("save_page");
            last[b][p as usize] = Some(fill);
        }
        if k + 1 != n {
            w.end_iteration().expect("end_iteration");
        }
    }
    let (file, _) = w.finish(devs).expect("finish");
    (file, last)
}

/// Check a freshly written file restores what was sent: for fixed-ram every
/// page (never-sent and zero pages read as zero), for sequential the pages
/// sent (the rest keep the destination's garbage).
pub(crate) fn check_valid_file(
    file: &SparseFile,
    blocks: &[RamBlockDesc],
    last: &[Vec<Option<u8>>],
    fixed: bool,
    cache: &VmdescCache,
) -> StreamInfo {
    let mut dest = super::reader::dirty_destination(blocks);
    let caps = Capabilities::from_enabled(if fixed { &[Capability::FixedRam] } else { &[] })
        .expect("valid");
    let opts = LoadOptions {
        machine: Some(MACHINE.into()),
        caps: Some(caps),
        vmdesc_cache: Some(cache.clone()),
        ..LoadOptions::default()
    };
    let info = reader::load(file, &opts, &mut dest)
        .unwrap_or_else(|e| panic!("a valid file written by migsim does not load: {e}"));
    for (b, pages) in last.iter().enumerate() {
        for (p, fill) in pages.iter().enumerate() {
            let want = match fill {
                Some(f) => page_bytes(b, p as u64, *f),
                None if fixed => [0; PAGE_USIZE],
                None => [GARBAGE; PAGE_USIZE],
            };
            assert!(
                dest.page(b, p as u64) == want,
                "valid file: block {b} page {p} (last sent with fill {fill:?}) restored wrong"
            );
        }
    }
    super::reader::DIRTY.set(Some(dest));
    info
}

/// What decides an input's valid file: block sizes, sends, devices and
/// layout (everything of [`MutateInput`] but the mutations).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ValidKey {
    pages: Vec<u64>,
    passes: Passes,
    devices: u8,
    compact: bool,
}

/// A valid file written and checked, with its description and the
/// comparing trailer cache that holds its vmdesc answer. Cheap to clone:
/// the file's bytes and the description are shared.
#[derive(Clone, Debug)]
struct Valid {
    file: SparseFile,
    info: std::sync::Arc<StreamInfo>,
    cache: VmdescCache,
}

/// Valid files by [`ValidKey`], kept across inputs: most inputs are
/// mutated in their mutations, not their configuration, and writing and
/// checking the same configuration again runs the same deterministic
/// code on the same bytes (its coverage came with the first input that
/// had it). At most [`VALID_ENTRIES`] files and [`VALID_BYTES`] of their
/// chunks, oldest dropped first. A fresh process (a replayed input)
/// starts empty, so a reproducer writes and checks its file.
static VALID: std::sync::LazyLock<std::sync::Mutex<FifoMap<ValidKey, Valid>>> =
    std::sync::LazyLock::new(|| std::sync::Mutex::new(FifoMap::new(VALID_ENTRIES, VALID_BYTES)));

const VALID_ENTRIES: usize = 512;
const VALID_BYTES: usize = 64 << 20;

/// Write the input's valid file and check it: headers against the
/// layout model, then a load that must restore every page sent.
fn write_valid(input: &MutateInput, blocks: &[RamBlockDesc], passes: &Passes) -> Valid {
    let devs = devices(input.devices);
    let (written, last) = write_file(blocks, true, passes, &devs);
    let layout = model_layout(blocks);
    check_headers(&written, blocks, &layout);
    let file = if !input.layout.is_multiple_of(4) {
        compact(&written, &layout)
    } else {
        written
    };
    // One trailer search serves the valid file and, when the mutations
    // left the trailer alone, the mutated one: compared once, then
    // pinned for its five loads.
    let cache = VmdescCache::new().remembering(&TRAILERS);
    let info = check_valid_file(&file, blocks, &last, true, &cache);
    Valid {
        file,
        info: info.into(),
        cache,
    }
}

/// The input's valid file, from [`VALID`] when an earlier input had the
/// same configuration.
fn valid_file(input: &MutateInput, blocks: &[RamBlockDesc], passes: Passes) -> Valid {
    let key = ValidKey {
        pages: blocks.iter().map(|b| b.used_length / PAGE).collect(),
        passes,
        devices: input.devices % 3,
        compact: !input.layout.is_multiple_of(4),
    };
    let lock = || VALID.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(v) = lock().get(&key) {
        return v.clone();
    }
    let v = write_valid(input, blocks, &key.passes);
    let size = v.file.stored_bytes();
    lock().insert(key, v.clone(), size);
    v
}

/// Structure-aware fixed-ram mutation target (see the module docs).
pub fn fixed_ram_mutate(input: MutateInput) {
    let blocks = input.blocks();
    let passes = input.passes(&blocks);
    let Valid {
        mut file,
        info,
        cache,
    } = valid_file(&input, &blocks, passes);
    apply_mutations(&mut file, &info, &input.mutations);
    // An in-memory SparseFile cannot fail a read; were the search to
    // fail, the loads meet the same error and check it.
    let pinned = cache
        .pinned_to(&file)
        .unwrap_or_else(|_| VmdescCache::for_one_file().remembering(&TRAILERS));
    check_file_sharing(&file, &blocks, pinned);
}

/// Apply up to 8 `mutations` to a valid `file` described by `info` (its
/// `inspect`; the header, bitmap and page-area mutations need a fixed-ram
/// file): header fields, block list lengths, bitmap bits,
/// page areas, the tail after the last page area, anything, truncation
/// and extension. Deterministic: the same file, info and mutations give
/// the same bytes. Used by this target and by `migsim qemu fuzz`.
pub(crate) fn apply_mutations(file: &mut SparseFile, info: &StreamInfo, mutations: &[Mutation]) {
    let len = file.len();
    // Where the tail (EOS, sections, devices, trailer) starts: after the
    // last page area (a sequential stream: the whole stream is "tail").
    let tail_start = info.blocks.last().map_or(0, |b| {
        b.fixed_ram
            .as_ref()
            .map_or(0, |f| f.pages_offset + b.used_length)
    });
    let mem_size_at = info.blocks[0].record_offset - 8;
    let orig_total: u64 = info.blocks.iter().map(|b| b.used_length).sum::<u64>() | 4;

    for m in mutations.iter().take(8) {
        let pick = |k: u8| {
            let i = usize::from(k) % info.blocks.len();
            let b = &info.blocks[i];
            (b, b.fixed_ram.clone().expect("fixed-ram"))
        };
        let ctx = |orig: u64, header: u64| Ctx {
            orig,
            file_len: len,
            header,
        };
        let (at, bytes): (u64, Vec<u8>) = match m {
            Mutation::HeaderVersion { block, value } => {
                let (_, fr) = pick(*block);
                (fr.header_offset, value.resolve().to_be_bytes().to_vec())
            }
            Mutation::HeaderPageSize { block, value } => {
                let (_, fr) = pick(*block);
                let v = value.resolve(&ctx(PAGE, fr.header_offset));
                (fr.header_offset + 4, v.to_be_bytes().to_vec())
            }
            Mutation::BitmapOffset { block, value } => {
                let (_, fr) = pick(*block);
                let v = value.resolve(&ctx(fr.bitmap_offset, fr.header_offset));
                (fr.header_offset + 12, v.to_be_bytes().to_vec())
            }
            Mutation::PagesOffset { block, value } => {
                let (_, fr) = pick(*block);
                let v = value.resolve(&ctx(fr.pages_offset, fr.header_offset));
                (fr.header_offset + 20, v.to_be_bytes().to_vec())
            }
            Mutation::UsedLength {
                block,
                value,
                fix_total,
            } => {
                let (b, fr) = pick(*block);
                let v = value.resolve(&ctx(b.used_length, fr.header_offset));
                if *fix_total {
                    let total = orig_total.wrapping_add(v.wrapping_sub(b.used_length));
                    write_clipped(file, mem_size_at, &total.to_be_bytes());
                }
                (fr.header_offset - 8, v.to_be_bytes().to_vec())
            }
            Mutation::MemSizeWord { value } => {
                let v = value.resolve(&ctx(orig_total, info.blocks[0].record_offset));
                (mem_size_at, v.to_be_bytes().to_vec())
            }
            Mutation::FlipBitmapBit { block, bit } => {
                let (_, fr) = pick(*block);
                let bit = u64::from(*bit) % (fr.bitmap_len * 8);
                let at = fr.bitmap_offset + bit / 8;
                let mut byte = [0u8];
                file.read_at(at, &mut byte).expect("in memory");
                (at, vec![byte[0] ^ (1 << (bit % 8))])
            }
            Mutation::BitmapByte {
                block,
                index,
                value,
            } => {
                let (_, fr) = pick(*block);
                (
                    fr.bitmap_offset + u64::from(*index) % fr.bitmap_len,
                    vec![*value],
                )
            }
            Mutation::PageArea {
                block,
                offset,
                bytes,
            } => {
                let (b, fr) = pick(*block);
                let at = fr.pages_offset + u64::from(*offset) % b.used_length;
                (at, bytes.iter().take(64).copied().collect())
            }
            Mutation::Tail { offset, bytes } => {
                let at = tail_start + u64::from(*offset) % (len - tail_start + 1);
                (at, bytes.iter().take(64).copied().collect())
            }
            Mutation::Anywhere { offset, bytes } => {
                let at = u64::from(*offset) % (len + 1);
                (at, bytes.iter().take(64).copied().collect())
            }
            Mutation::Truncate { at } => {
                let v = at.resolve(&ctx(tail_start, info.blocks[0].record_offset));
                file.set_len(v.min(file.len()));
                continue;
            }
            Mutation::Extend { by } => {
                file.set_len(file.len() + u64::from(*by) % (256 << 10));
                continue;
            }
        };
        write_clipped(file, at, &bytes);
    }
}

/// Overwrite bytes, never past the current end (so a truncation stays).
pub(crate) fn write_clipped(file: &mut SparseFile, at: u64, bytes: &[u8]) {
    let room = file.len().saturating_sub(at);
    let n = (bytes.len() as u64).min(room) as usize;
    if n > 0 {
        file.write_at(at, &bytes[..n]).expect("in memory");
    }
}

/// [`fixed_ram_mutate`] from raw bytes, as libFuzzer's typed target builds
/// its input.
pub fn fixed_ram_mutate_bytes(data: &[u8]) {
    if let Some(input) = typed_input::<MutateInput>(data) {
        fixed_ram_mutate(input);
    }
}

impl MutateInput {
    fn blocks(&self) -> Vec<RamBlockDesc> {
        let names = ["pc.ram", "vga.vram", "pc.bios"];
        let pages: Vec<u8> = if self.blocks.is_empty() {
            vec![3]
        } else {
            self.blocks.iter().take(3).copied().collect()
        };
        pages
            .iter()
            .zip(names)
            .map(|(&p, name)| RamBlockDesc {
                name: name.into(),
                used_length: (1 + u64::from(p % 16)) * PAGE,
                shared: false,
            })
            .collect()
    }

    fn passes(&self, blocks: &[RamBlockDesc]) -> Passes {
        let mut passes: Passes = self
            .passes
            .iter()
            .take(5)
            .map(|pass| {
                pass.iter()
                    .take(32)
                    .map(|&(b, p, fill)| {
                        let b = usize::from(b) % blocks.len();
                        (b, u64::from(p) % (blocks[b].used_length / PAGE), fill)
                    })
                    .collect()
            })
            .collect();
        if passes.is_empty() {
            passes.push(Vec::new());
        }
        passes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(layout: u8, fill: u8) -> MutateInput {
        MutateInput {
            blocks: vec![2, 0],
            layout,
            devices: 1,
            passes: vec![vec![(0, 1, 7), (1, 0, fill)], vec![(0, 2, 0), (0, 1, 9)]],
            mutations: Vec::new(),
        }
    }

    /// An input whose configuration an earlier input had gets the valid
    /// file that configuration writes: the same bytes and description as
    /// writing it afresh, for both layouts; another configuration gets
    /// its own.
    #[test]
    fn a_remembered_valid_file_is_the_one_written_again() {
        for layout in [0, 1] {
            let i = input(layout, 0x31);
            let (blocks, passes) = (i.blocks(), i.passes(&i.blocks()));
            let first = valid_file(&i, &blocks, passes.clone());
            let again = valid_file(&i, &blocks, passes.clone());
            let fresh = write_valid(&i, &blocks, &passes);
            for v in [&first, &again] {
                assert!(
                    v.file.to_vec() == fresh.file.to_vec(),
                    "layout {layout}: bytes"
                );
                assert_eq!(v.info, fresh.info, "layout {layout}: description");
            }
            let other = input(layout, 0x32);
            let o = valid_file(&other, &blocks, other.passes(&blocks));
            assert!(
                o.file.to_vec() != fresh.file.to_vec(),
                "another fill, other bytes"
            );
        }
    }
}
