//! Where the fixed-ram writer must put each block, computed here from the
//! format (not from the writer's code), and compacting a file to
//! page-aligned areas.

use migsim_format::io::MigFile;
use migsim_format::writer::RamBlockDesc;

use super::{MACHINE, PAGE};

use super::read_exact;
use super::sparse_file::SparseFile;

/// Where the fixed-ram writer puts a block, computed here from the format
/// description (the layouts at the top of `migsim_format::stream`, `ram` and
/// `fixed_ram`) for a
/// stream with machine [`MACHINE`] and only `fixed-ram` listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ModelBlock {
    /// Offset of the block's idstr in the START section's list.
    pub(crate) record: u64,
    /// Offset of the 28-byte header.
    pub(crate) header: u64,
    /// Bitmap offset and length.
    pub(crate) bitmap: u64,
    pub(crate) bitmap_len: u64,
    /// Page-area offset and length.
    pub(crate) pages: u64,
    pub(crate) used: u64,
}

pub(crate) fn model_layout(blocks: &[RamBlockDesc]) -> Vec<ModelBlock> {
    const MIB: u64 = 1 << 20;
    let caps_subsection = 1 + 1 + "configuration/capabilities".len() as u64 + 4 + 4 + 1 + 9;
    let start_section = 1 + 4 + 1 + 3 + 4 + 4;
    let mut pos = 8 + 1 + 4 + MACHINE.len() as u64 + caps_subsection + start_section + 8;
    blocks
        .iter()
        .map(|b| {
            let record = pos;
            let header = record + 1 + b.name.len() as u64 + 8;
            let bitmap = header + 28;
            let bitmap_len = (b.used_length / PAGE).div_ceil(64) * 8;
            let pages = (bitmap + bitmap_len).div_ceil(MIB) * MIB;
            pos = pages + b.used_length;
            ModelBlock {
                record,
                header,
                bitmap,
                bitmap_len,
                pages,
                used: b.used_length,
            }
        })
        .collect()
}

/// The writer's headers must be where and what the model says.
pub(crate) fn check_headers<F: MigFile + ?Sized>(
    file: &F,
    blocks: &[RamBlockDesc],
    layout: &[ModelBlock],
) {
    for (b, m) in blocks.iter().zip(layout) {
        let mut raw = [0u8; 36];
        read_exact(file, m.header - 8, &mut raw);
        let be64 = |i: usize| u64::from_be_bytes(raw[i..i + 8].try_into().expect("8 bytes"));
        let got = (
            be64(0),
            u32::from_be_bytes(raw[8..12].try_into().expect("4 bytes")),
            be64(12),
            be64(20),
            be64(28),
        );
        assert_eq!(
            got,
            (b.used_length, 1, PAGE, m.bitmap, m.pages),
            "block {}: (used_length, version, page_size, bitmap_offset, pages_offset) at \
             {:#x} differ from the layout computed from the format",
            b.name,
            m.header - 8
        );
    }
}

/// The same fixed-ram file with every page area moved down to the first
/// page boundary after its bitmap (headers rewritten): still valid for the
/// reader, but a few KiB instead of a MiB per block.
pub(crate) fn compact<F: MigFile + ?Sized>(file: &F, layout: &[ModelBlock]) -> SparseFile {
    let mut out = SparseFile::default();
    let copy = |out: &mut SparseFile, from: u64, to: u64| {
        let mut buf = vec![0u8; (to - from) as usize];
        read_exact(file, from, &mut buf);
        let at = out.len();
        out.write_at(at, &buf).expect("in memory");
    };
    let mut src = 0u64;
    for m in layout {
        let header = out.len() + (m.header - src);
        let bitmap = header + (m.bitmap - m.header);
        copy(&mut out, src, m.bitmap + m.bitmap_len);
        let pages = out.len().next_multiple_of(PAGE);
        out.set_len(pages);
        copy(&mut out, m.pages, m.pages + m.used);
        out.write_at(header + 12, &bitmap.to_be_bytes())
            .expect("in memory");
        out.write_at(header + 20, &pages.to_be_bytes())
            .expect("in memory");
        src = m.pages + m.used;
    }
    copy(&mut out, src, file.len());
    out
}
