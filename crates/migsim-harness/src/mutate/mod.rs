//! The mutations of a valid migration file that the `fixed_ram_mutate`
//! fuzz target and `migsim qemu fuzz` ([`crate::qemu::campaign`]) share:
//! what a [`Mutation`] changes (`apply_mutations`), the in-memory file
//! it changes ([`sparse_file`]), and [`decode`], which reads mutations
//! from bytes exactly as `arbitrary`'s derived impls do, so `qemu fuzz`
//! builds the same inputs from its seeds without the `arbitrary` crate
//! (only the fuzz targets, feature `fuzz`, need it).

pub mod decode;
pub mod sparse_file;

use migsim_format::io::MigFile;
use migsim_format::ram::PAGE_SIZE as PAGE;
use migsim_format::reader::StreamInfo;

use self::sparse_file::SparseFile;

/// One change to a valid file. `block` is taken modulo the block count.
/// Serialisable, so a reproducer records exactly what was applied.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "fuzz", derive(arbitrary::Arbitrary))]
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
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "fuzz", derive(arbitrary::Arbitrary))]
pub enum Value32 {
    /// This value.
    Exact(u32),
    /// One of 0, 1, 2, 0xffff_ffff, 0x8000_0000.
    Special(u8),
}

/// A hostile 64-bit value, relative to the field's valid value and the
/// file's layout.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "fuzz", derive(arbitrary::Arbitrary))]
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
    pub(crate) fn resolve(self) -> u32 {
        match self {
            Value32::Exact(v) => v,
            Value32::Special(i) => [0, 1, 2, u32::MAX, 1 << 31][usize::from(i) % 5],
        }
    }
}

impl Value64 {
    pub(crate) fn resolve(self, c: &Ctx) -> u64 {
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

/// Apply up to 8 `mutations` to a valid `file` described by `info` (its
/// `inspect`; the header, bitmap and page-area mutations need a fixed-ram
/// file): header fields, block list lengths, bitmap bits,
/// page areas, the tail after the last page area, anything, truncation
/// and extension. Deterministic: the same file, info and mutations give
/// the same bytes. Used by the `fixed_ram_mutate` fuzz target and by
/// `migsim qemu fuzz`.
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
