//! The extent mode's destination: load an [`ExtentFile`] with the
//! product's reader and say what every page of the destination holds, as
//! runs of identities (`HeldRuns`), never a page's bytes.
//!
//! The reader ([`migsim_format::load`], `skip_page_data`) walks the whole
//! stream as for any file: header, configuration and capability checks,
//! block list and fixed-ram headers against the destination's blocks, the
//! real bitmaps (checked and read), device sections, vmdesc. It zeroes the
//! runs of clear bits (unless the load option leaves them, as QEMU 10
//! does), which [`ExtentSink`] records as runs. The set-bit runs are read
//! from the same bitmap bytes the reader read, at the offsets its
//! [`StreamInfo`] reports, and resolved through the file's identities: a
//! page whose bit is set holds what the file holds at `pages_offset +
//! page*4096`, exactly what the byte-level reader copies from there.

use migsim_format::bitmap::PageBitmap;
use migsim_format::reader::{LoadOptions, RamSink, StreamInfo, load};
use migsim_format::writer::RamBlockDesc;
use migsim_format::{LoadError, PAGE_SIZE};

use super::file::ExtentFile;
use crate::sim::content::Identified;
use crate::sim::dest::BlockMap;

/// What one block of the destination holds: runs `(first, count, id)`,
/// ascending and covering the block, `id` what page `first` holds (a data
/// run holds consecutive pages from there).
pub type HeldRuns = Vec<(u64, u64, Identified)>;

/// What `id` (held by a run's first page) says about the page `by` later.
pub fn advance(id: Identified, by: u64) -> Identified {
    match id {
        Identified::Data {
            block,
            page,
            version,
        } => Identified::Data {
            block,
            page: page + by,
            version,
        },
        other => other,
    }
}

/// The reader's sink: checks blocks as a destination does and records the
/// runs it zeroes.
struct ExtentSink<'a> {
    local: &'a [RamBlockDesc],
    map: BlockMap,
    /// Per local block: runs zeroed, in load order.
    zeroed: Vec<Vec<(u64, u64)>>,
}

impl RamSink for ExtentSink<'_> {
    fn declare_block(&mut self, name: &str, used_length: u64) -> Result<(), LoadError> {
        self.map.declare(self.local, name, used_length)
    }

    fn write_pages(&mut self, block: usize, first: u64, data: &[u8]) -> Result<(), LoadError> {
        // The extent file's RAM is fixed-ram; the reader skips page data.
        let _ = (block, first, data);
        Err(LoadError::Io(std::io::Error::other(
            "the extent destination takes fixed-ram files loaded without page data",
        )))
    }

    fn zero_pages(&mut self, block: usize, first: u64, count: u64) -> Result<(), LoadError> {
        let b = self.map.local(block);
        self.zeroed[b].push((first, count));
        Ok(())
    }
}

/// Load `file` (the reader's `opts`, page data skipped) into a destination
/// with blocks `local`, zeroed or garbage (`dirty`): what each block
/// holds, or the reader's refusal.
pub fn restore(
    file: &ExtentFile,
    opts: &LoadOptions,
    local: &[RamBlockDesc],
    dirty: bool,
) -> Result<Vec<HeldRuns>, LoadError> {
    let mut sink = ExtentSink {
        local,
        map: BlockMap::default(),
        zeroed: vec![Vec::new(); local.len()],
    };
    let opts = LoadOptions {
        skip_page_data: true,
        ..opts.clone()
    };
    let info: StreamInfo = load(file, &opts, &mut sink)?;
    let start = Identified::before_load(dirty);
    let mut held: Vec<HeldRuns> = local.iter().map(|b| vec![(0, b.pages(), start)]).collect();
    for (i, b) in info.blocks.iter().enumerate() {
        let l = sink.map.local(i);
        let Some(fr) = &b.fixed_ram else {
            return Err(LoadError::Io(std::io::Error::other(
                "the extent destination takes fixed-ram files only",
            )));
        };
        if b.ignored {
            // Shared memory the destination keeps: as it was.
            continue;
        }
        let mut runs: Vec<(u64, u64, Identified)> = sink.zeroed[l]
            .iter()
            .map(|&(f, n)| (f, n, Identified::Zero))
            .collect();
        for_each_set_run(file, fr.bitmap_offset, b.pages, &mut |first, count| {
            let at = fr.pages_offset + first * PAGE_SIZE;
            file.identities(at, count, &mut |k, n, id| runs.push((first + k, n, id)));
        })?;
        runs.sort_by_key(|r| r.0);
        held[l] = overlay(b.pages, start, &runs);
    }
    Ok(held)
}

/// `runs` (disjoint) over a block of `pages` pages holding `start`
/// elsewhere, as covering runs.
fn overlay(pages: u64, start: Identified, runs: &[(u64, u64, Identified)]) -> HeldRuns {
    let mut out = Vec::with_capacity(runs.len() * 2 + 1);
    let mut at = 0;
    for &(f, n, id) in runs {
        if f > at {
            out.push((at, f - at, start));
        }
        out.push((f, n, id));
        at = f + n;
    }
    if at < pages {
        out.push((at, pages - at, start));
    }
    out
}

/// Bitmap bytes read at a time.
const BITMAP_CHUNK: u64 = 64 << 20;

/// Call `each(first, count)` for every run of set bits of the `pages`-page
/// bitmap at `offset` of `file`, ascending; read a chunk at a time and
/// scanned a word at a time.
fn for_each_set_run(
    file: &ExtentFile,
    offset: u64,
    pages: u64,
    each: &mut dyn FnMut(u64, u64),
) -> Result<(), LoadError> {
    use migsim_format::io::MigFile;
    let len = PageBitmap::encoded_len(pages);
    let mut buf = vec![0u8; BITMAP_CHUNK.min(len) as usize];
    let mut run: Option<(u64, u64)> = None;
    let mut flush = |run: &mut Option<(u64, u64)>| {
        if let Some((f, n)) = run.take() {
            each(f, n);
        }
    };
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(BITMAP_CHUNK) as usize;
        let got = file.read_at(offset + done, &mut buf[..n])?;
        if got != n {
            return Err(LoadError::Io(std::io::Error::from(
                std::io::ErrorKind::UnexpectedEof,
            )));
        }
        for (wi, c) in buf[..n].chunks_exact(8).enumerate() {
            let base = (done / 8 + wi as u64) * 64;
            let mut w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
            // Bits past the block's pages are ignored, as the reader does.
            if base + 64 > pages {
                let keep = pages - base;
                w &= if keep == 0 {
                    0
                } else {
                    u64::MAX >> (64 - keep)
                };
            }
            let mut bit = 0u64;
            while bit < 64 {
                let rest = w >> bit;
                if rest == 0 {
                    flush(&mut run);
                    break;
                }
                let zeros = u64::from(rest.trailing_zeros());
                if zeros > 0 {
                    flush(&mut run);
                    bit += zeros;
                    continue;
                }
                let ones = u64::from((!rest).trailing_zeros()).min(64 - bit);
                let p = base + bit;
                match &mut run {
                    Some((f, k)) if *f + *k == p => *k += ones,
                    _ => {
                        flush(&mut run);
                        run = Some((p, ones));
                    }
                }
                bit += ones;
            }
        }
        done += n as u64;
    }
    flush(&mut run);
    Ok(())
}
