//! The fixed-ram (QEMU: mapped-ram) layout of a RAMBlock in the file.
//!
//! In the START section's block list, after a block's `used_length`:
//!
//! ```text
//! H+0   be32 version        1
//! H+4   be64 page_size      4096
//! H+12  be64 bitmap_offset  absolute; = H + 28
//! H+20  be64 pages_offset   absolute; = round_up(bitmap_offset + bitmap_len, 1 MiB)
//! bitmap_offset: ceil(pages/64)*8 bytes, LE u64 words, written once at the end
//! pages_offset + i*4096: page i (only meaningful where its bit is set)
//! pages_offset + used_length: the next block record (or the list's EOS)
//! ```
//! Bytes between the bitmap and the page area are never written (holes).
//!
//! A block *ignored* under x-ignore-shared (shared memory: the destination
//! maps the same memory, so nothing of it is sent) has the same header with
//! `bitmap_offset = pages_offset = 0`, and no bitmap and no page area: the
//! next record follows the header at H+28 (QEMU 11.0, 0b510b51b6; QEMU
//! 10.0 fails that save instead). A reader accepts that encoding only when
//! the stream lists x-ignore-shared.

use crate::bitmap::PageBitmap;
use crate::ram::PAGE_SIZE;
use crate::wire::Encoder;

/// Size of the per-block header.
pub const HEADER_LEN: u64 = 28;
/// The header version this code writes and the highest it reads.
pub const HEADER_VERSION: u32 = 1;
/// Alignment of every page area (absolute file offset).
pub const PAGE_AREA_ALIGN: u64 = 1 << 20;

/// The 28-byte per-block header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedRamHeader {
    /// Layout version.
    pub version: u32,
    /// Page size used to count the block's pages.
    pub page_size: u64,
    /// Absolute offset of the block's bitmap.
    pub bitmap_offset: u64,
    /// Absolute offset of page 0.
    pub pages_offset: u64,
}

impl FixedRamHeader {
    /// Encode as 28 big-endian bytes.
    pub fn encode(&self, e: &mut Encoder) {
        e.be32(self.version)
            .be64(self.page_size)
            .be64(self.bitmap_offset)
            .be64(self.pages_offset);
    }

    /// Both offsets 0: the encoding of a block ignored under
    /// x-ignore-shared (no real block can have either at 0, where the
    /// stream's magic is).
    pub fn is_ignored(&self) -> bool {
        self.bitmap_offset == 0 && self.pages_offset == 0
    }

    /// Decode 28 bytes.
    pub fn decode(b: &[u8; 28]) -> Self {
        let be64 = |i: usize| u64::from_be_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        Self {
            version: u32::from_be_bytes(b[0..4].try_into().expect("4 bytes")),
            page_size: be64(4),
            bitmap_offset: be64(12),
            pages_offset: be64(20),
        }
    }
}

/// Where one block's pieces sit in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockLayout {
    /// The header as written.
    pub header: FixedRamHeader,
    /// Bytes of bitmap.
    pub bitmap_len: u64,
    /// Bytes of page area (= used_length; 0 for an ignored block).
    pub used_length: u64,
    /// Absolute offset of the header.
    pub header_offset: u64,
}

impl BlockLayout {
    /// Lay out a block whose header starts at absolute `header_offset`.
    pub fn plan(header_offset: u64, used_length: u64) -> Self {
        let pages = used_length / PAGE_SIZE;
        let bitmap_offset = header_offset + HEADER_LEN;
        let bitmap_len = PageBitmap::encoded_len(pages);
        let pages_offset = (bitmap_offset + bitmap_len).next_multiple_of(PAGE_AREA_ALIGN);
        Self {
            header: FixedRamHeader {
                version: HEADER_VERSION,
                page_size: PAGE_SIZE,
                bitmap_offset,
                pages_offset,
            },
            bitmap_len,
            used_length,
            header_offset,
        }
    }

    /// The layout of a block ignored under x-ignore-shared whose header
    /// starts at `header_offset`: both offsets 0, no bitmap, no pages.
    pub fn ignored(header_offset: u64) -> Self {
        Self {
            header: FixedRamHeader {
                version: HEADER_VERSION,
                page_size: PAGE_SIZE,
                bitmap_offset: 0,
                pages_offset: 0,
            },
            bitmap_len: 0,
            used_length: 0,
            header_offset,
        }
    }

    /// Whether this is an ignored block's layout (both offsets 0).
    pub fn is_ignored(&self) -> bool {
        self.header.is_ignored()
    }

    /// Absolute offset of page `i`.
    pub fn page_offset(&self, i: u64) -> u64 {
        self.header.pages_offset + i * PAGE_SIZE
    }

    /// Where the stream continues after this block's page area (after
    /// the header, for an ignored block).
    pub fn end(&self) -> u64 {
        if self.is_ignored() {
            self.header_offset + HEADER_LEN
        } else {
            self.header.pages_offset + self.used_length
        }
    }
}
