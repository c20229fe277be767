//! The migration writer: one stream framing, two RAM layouts.
//!
//! * **Sequential**: pages go into the RAM PART/END sections as ZERO and
//!   PAGE records (CONTINUE when the block repeats); a page sent again is
//!   appended again, so the file grows with every re-dirty.
//! * **Fixed-ram**: the START section's block list carries, per block, the
//!   28-byte header (see [`crate::fixed_ram`]); page `i` is written at
//!   `pages_offset + i*4096` and overwritten in place when re-sent; a page
//!   that became zero only clears its bit (stale bytes stay, as in QEMU);
//!   the bitmaps are written once, at completion; PART/END sections carry
//!   only EOS; device state follows the last page area.
//!
//! Call order: [`MigrationWriter::start`], then per pass
//! `begin_iteration` / `save_page`* / `end_iteration`, then
//! `begin_completion` / `save_page`* / [`MigrationWriter::finish`].
//! `save_pages` sends a batch at once: fixed-ram writes each run of
//! consecutive non-zero pages with one write, and with several channels
//! (the multifd idea) splits the batch into contiguous shares written by
//! concurrent threads. Pages land at fixed offsets, so the file's bytes do
//! not depend on the number of channels.
//!
//! Durability: by default the writer never syncs, as QEMU 10;
//! [`MigrationWriter::with_durability`] with [`Durability::Durable`] syncs
//! in `finish` and appends the completion mark ([`crate::durable`]);
//! [`MigrationWriter::with_integrity`] appends the integrity trailer
//! before it ([`crate::integrity`]).

use serde::Serialize;

use crate::bitmap::PageBitmap;
use crate::caps::{Capabilities, CapsError};
use crate::durable::{self, Durability};
use crate::error::SaveError;
use crate::fixed_ram::BlockLayout;
use crate::hooks::SaveHooks;
use crate::io::{AlignedBuf, MigFile};
use crate::layout::Layout;
use crate::ram::{PAGE_SIZE, flag, is_zero_page};
use crate::stream::{self, CMD_SWITCHOVER_START, RAM_IDSTR, RAM_VERSION, kind};
use crate::wire::Encoder;

mod range;
pub use range::{PageRun, RunContent, RunSource};

/// A RAMBlock as the source declares it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RamBlockDesc {
    /// idstr, e.g. `pc.ram`.
    pub name: String,
    /// Bytes, a multiple of the page size.
    pub used_length: u64,
    /// Backed by shared memory (QEMU: a `memory-backend-file` with
    /// `share=on`): with x-ignore-shared the block is *ignored*, its record
    /// is written (with `mr_addr`) but none of its pages, and under
    /// fixed-ram its header carries bitmap_offset = pages_offset = 0 and no
    /// page area follows (QEMU 0b510b51b6, 11.0). Without x-ignore-shared
    /// it migrates like any other block.
    #[serde(default)]
    pub shared: bool,
}

impl RamBlockDesc {
    /// Number of pages.
    pub fn pages(&self) -> u64 {
        self.used_length / PAGE_SIZE
    }

    /// Whether a migration with x-ignore-shared `on` skips this block
    /// (QEMU's `migrate_ram_is_ignored`).
    pub fn ignored(&self, ignore_shared: bool) -> bool {
        ignore_shared && self.shared
    }
}

/// A non-iterative device's state, sent as one FULL section and described
/// in the vmdesc trailer as a single buffer field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceState {
    /// Section idstr.
    pub idstr: String,
    /// Instance id.
    pub instance_id: u32,
    /// vmstate version.
    pub version_id: u32,
    /// The raw state.
    pub payload: Vec<u8>,
}

/// What the writer did so far.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WriterStats {
    /// Non-zero pages written (PAGE records or page-area writes).
    pub pages_written: u64,
    /// Zero pages handled (ZERO records, or bits cleared).
    pub zero_pages: u64,
    /// PART sections written.
    pub iterations: u64,
}

enum LayoutState {
    Sequential {
        last_block: Option<usize>,
    },
    FixedRam {
        blocks: Vec<BlockLayout>,
        bitmaps: Vec<PageBitmap>,
    },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Open {
    None,
    Part,
    End,
}

/// Writes one migration stream to a [`MigFile`]. `H` lets a test harness
/// make the writer deliberately wrong ([`SaveHooks`]); the default `()`
/// costs nothing.
pub struct MigrationWriter<F: MigFile, H: SaveHooks = ()> {
    file: F,
    pos: u64,
    pending: Encoder,
    layout: LayoutState,
    blocks: Vec<RamBlockDesc>,
    open: Open,
    stats: WriterStats,
    /// Machine type and validated capabilities, for the vmdesc trailer.
    machine: String,
    validated: Vec<&'static str>,
    hooks: H,
    /// One run buffer per channel, kept between batches.
    bufs: Vec<AlignedBuf>,
    durability: Durability,
    /// Append the integrity trailer in `finish`.
    integrity: bool,
    /// Where the stream starts (`start_at`).
    stream_start: u64,
    /// Detect all-zero pages (QEMU's `zero-page-detection` other than
    /// `none`); when off, every page is written as data.
    detect_zero: bool,
    /// x-ignore-shared is on: shared blocks are ignored.
    ignore_shared: bool,
}

/// Where [`MigrationWriter::save_pages`] gets page bytes. Called from
/// channel threads. Any `Fn(block, page, buf)` closure is one.
pub trait PageSource: Sync {
    /// Fill `buf` (one page) with page `page` of block `block`.
    fn fill(&self, block: usize, page: u64, buf: &mut [u8]);
    /// Pages `first..first+count` of `block` as one slice, when the source
    /// holds them in memory (guest RAM): they are written from there
    /// without a copy. `None` (the default): use `fill`.
    fn pages(&self, block: usize, first: u64, count: usize) -> Option<&[u8]> {
        let _ = (block, first, count);
        None
    }
}

impl<F: Fn(usize, u64, &mut [u8]) + Sync> PageSource for F {
    fn fill(&self, block: usize, page: u64, buf: &mut [u8]) {
        self(block, page, buf)
    }
}

#[path = "writer_channel.rs"]
mod channel;

/// Pages per fixed-ram write at most (1 MiB).
const RUN_PAGES: usize = 256;

/// Section id of the RAM section. Not 0: QEMU 10 finds the handler of a
/// PART/END section by comparing its id with every handler's last loaded
/// id, which is 0 for handlers not yet seen, so a RAM PART with id 0 is fed
/// to QEMU's first handler (`timer`) and the load fails. QEMU itself uses
/// 0 for timer and 1 for ram.
pub const RAM_SECTION_ID: u32 = 1;

const FLUSH_AT: usize = 1 << 20;

impl<F: MigFile> MigrationWriter<F> {
    /// Check the setup, then write the header, the configuration section
    /// and the RAM START section (block list; fixed-ram headers).
    pub fn start(
        file: F,
        machine: &str,
        caps: &Capabilities,
        blocks: Vec<RamBlockDesc>,
    ) -> Result<Self, SaveError> {
        Self::start_at(file, 0, machine, caps, blocks)
    }

    /// [`MigrationWriter::start`] with the stream beginning at file offset
    /// `offset` (QEMU's `file:PATH,offset=N`; a header of the caller's
    /// before it, as libvirt's): every fixed-ram offset written is an
    /// absolute file position, as QEMU writes them, and the bytes before
    /// `offset` are not touched. A non-seekable file must start at 0.
    pub fn start_at(
        file: F,
        offset: u64,
        machine: &str,
        caps: &Capabilities,
        blocks: Vec<RamBlockDesc>,
    ) -> Result<Self, SaveError> {
        if offset != 0 && !file.seekable() {
            return Err(SaveError::Setup(
                "a stream at an offset needs a seekable file".into(),
            ));
        }
        let fixed = caps.fixed_layout();
        if fixed && !file.seekable() {
            return Err(CapsError::NeedsSeekableTransport.into());
        }
        validate_blocks(&blocks)?;
        let mut w = Self {
            file,
            pos: offset,
            pending: Encoder::new(),
            layout: if fixed {
                LayoutState::FixedRam {
                    blocks: Vec::new(),
                    bitmaps: blocks.iter().map(|b| PageBitmap::new(b.pages())).collect(),
                }
            } else {
                LayoutState::Sequential { last_block: None }
            },
            blocks,
            open: Open::None,
            stats: WriterStats::default(),
            machine: machine.to_string(),
            validated: caps.validated_names(),
            hooks: (),
            bufs: Vec::new(),
            durability: Durability::QemuCompatible,
            integrity: false,
            stream_start: offset,
            detect_zero: true,
            ignore_shared: caps.has(crate::caps::Capability::XIgnoreShared),
        };
        stream::encode_preamble(&mut w.pending, machine, &w.validated);
        stream::encode_section_start(
            &mut w.pending,
            kind::START,
            RAM_SECTION_ID,
            RAM_IDSTR,
            0,
            RAM_VERSION,
        );
        let ignore_shared = w.ignore_shared;
        let total: u64 = w.blocks.iter().map(|b| b.used_length).sum();
        w.pending.be64(total | flag::MEM_SIZE);
        for i in 0..w.blocks.len() {
            let b = &w.blocks[i];
            w.pending.short_str(&b.name).be64(b.used_length);
            if ignore_shared {
                // mr_addr, before the fixed-ram header (QEMU's
                // `ram_save_setup`). migsim's blocks have no guest address:
                // 0, which a destination compares only for ignored blocks.
                w.pending.be64(0);
            }
            if let LayoutState::FixedRam { blocks, .. } = &mut w.layout {
                let header_at = w.pos + w.pending.buf.len() as u64;
                if b.ignored(ignore_shared) {
                    // Both offsets 0, no bitmap, no page area: the next
                    // record follows the header.
                    let l = BlockLayout::ignored(header_at);
                    l.header.encode(&mut w.pending);
                    blocks.push(l);
                    continue;
                }
                let l = BlockLayout::plan(header_at, b.used_length);
                l.header.encode(&mut w.pending);
                blocks.push(l);
                w.flush()?;
                w.pos = l.end();
            }
        }
        w.pending.be64(flag::EOS);
        stream::encode_footer(&mut w.pending, RAM_SECTION_ID);
        w.flush()?;
        Ok(w)
    }

    /// The same writer with `hooks` consulted from now on (headers are
    /// already written; hooks only change pages and bitmaps).
    pub fn with_hooks<H: SaveHooks>(self, hooks: H) -> MigrationWriter<F, H> {
        MigrationWriter {
            file: self.file,
            pos: self.pos,
            pending: self.pending,
            layout: self.layout,
            blocks: self.blocks,
            open: self.open,
            stats: self.stats,
            machine: self.machine,
            validated: self.validated,
            hooks,
            bufs: self.bufs,
            durability: self.durability,
            integrity: self.integrity,
            stream_start: self.stream_start,
            detect_zero: self.detect_zero,
            ignore_shared: self.ignore_shared,
        }
    }
}

impl<F: MigFile, H: SaveHooks> MigrationWriter<F, H> {
    fn flush(&mut self) -> Result<(), SaveError> {
        if !self.pending.buf.is_empty() {
            self.file.write_at(self.pos, &self.pending.buf)?;
            self.pos += self.pending.buf.len() as u64;
            self.pending.buf.clear();
        }
        Ok(())
    }

    /// The same writer, finishing with `d` (see [`crate::durable`]; only
    /// `finish` changes).
    pub fn with_durability(mut self, d: Durability) -> Self {
        self.durability = d;
        self
    }

    /// The same writer, appending the integrity trailer after the vmdesc
    /// trailer in `finish` when `on` ([`crate::integrity`]; the file is
    /// read back then, so it must be seekable and readable).
    pub fn with_integrity(mut self, on: bool) -> Self {
        self.integrity = on;
        self
    }

    /// The same writer, detecting all-zero pages when `on` (the default;
    /// QEMU's `zero-page-detection` `legacy` or `multifd`) or writing every
    /// page as data (`none`: a PAGE record, or a page write with its bit
    /// set).
    pub fn with_zero_page_detection(mut self, on: bool) -> Self {
        self.detect_zero = on;
        self
    }

    /// How this writer finishes.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// The blocks being migrated.
    pub fn blocks(&self) -> &[RamBlockDesc] {
        &self.blocks
    }

    /// Counters so far.
    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }

    /// The file, e.g. to tag a simulated file's write log with the pass.
    pub fn file_mut(&mut self) -> &mut F {
        &mut self.file
    }

    /// The layout this writer writes.
    pub fn layout(&self) -> Layout {
        match self.layout {
            LayoutState::Sequential { .. } => Layout::Sequential,
            LayoutState::FixedRam { .. } => Layout::FixedRam,
        }
    }

    fn open_section(&mut self, which: Open) -> Result<(), SaveError> {
        if self.open != Open::None {
            return Err(SaveError::Setup("a RAM section is already open".into()));
        }
        let k = if which == Open::Part {
            self.stats.iterations += 1;
            kind::PART
        } else {
            self.pending
                .u8(kind::COMMAND)
                .be16(CMD_SWITCHOVER_START)
                .be16(0);
            kind::END
        };
        self.pending.u8(k).be32(RAM_SECTION_ID);
        self.open = which;
        Ok(())
    }

    fn close_section(&mut self) -> Result<(), SaveError> {
        self.pending.be64(flag::EOS);
        stream::encode_footer(&mut self.pending, RAM_SECTION_ID);
        self.open = Open::None;
        self.flush()
    }

    /// Open a RAM PART section for one pre-copy pass.
    pub fn begin_iteration(&mut self) -> Result<(), SaveError> {
        self.open_section(Open::Part)
    }

    /// Close the pass's PART section.
    pub fn end_iteration(&mut self) -> Result<(), SaveError> {
        if self.open != Open::Part {
            return Err(SaveError::Setup(
                "end_iteration without begin_iteration".into(),
            ));
        }
        self.close_section()
    }

    /// Switchover: the SWITCHOVER_START command, then the RAM END section
    /// that carries the final pass.
    pub fn begin_completion(&mut self) -> Result<(), SaveError> {
        self.open_section(Open::End)
    }

    fn check_page(&self, block: usize, page: u64, len: usize) -> Result<(), SaveError> {
        if self.open == Open::None {
            return Err(SaveError::Setup("save_page outside a RAM section".into()));
        }
        let b = self
            .blocks
            .get(block)
            .ok_or_else(|| SaveError::Setup(format!("no block {block}")))?;
        if page >= b.pages() || len as u64 != PAGE_SIZE {
            return Err(SaveError::Setup(format!(
                "page {page:#x} ({len} bytes) outside block {} of {} pages",
                b.name,
                b.pages()
            )));
        }
        self.refuse_ignored(block)
    }

    /// A page of a block ignored under x-ignore-shared is never sent: the
    /// destination maps the same shared memory. (QEMU 10.0's save tried to
    /// write the bitmap of such a block under mapped-ram and failed, "Bad
    /// address"; 0b510b51b6 skips them.)
    fn refuse_ignored(&self, block: usize) -> Result<(), SaveError> {
        let b = &self.blocks[block];
        if b.ignored(self.ignore_shared) {
            return Err(SaveError::Setup(format!(
                "block {} is on shared memory and x-ignore-shared is on: its pages are not migrated",
                b.name
            )));
        }
        Ok(())
    }

    /// Count a sent page; fixed-ram: set or clear its bitmap bit.
    fn note_page(&mut self, block: usize, page: u64, zero: bool) {
        if zero {
            self.stats.zero_pages += 1;
        } else {
            self.stats.pages_written += 1;
        }
        if let LayoutState::FixedRam { bitmaps, .. } = &mut self.layout {
            let was_set = bitmaps[block].get(page);
            let bit = self.hooks.bitmap_bit(block, page, zero, was_set);
            bitmaps[block].set(page, bit);
        }
    }

    /// Send page `page` of block `block` (index into the declared blocks).
    /// An all-zero page becomes a ZERO record (sequential) or a cleared
    /// bit (fixed-ram).
    pub fn save_page(&mut self, block: usize, page: u64, data: &[u8]) -> Result<(), SaveError> {
        self.check_page(block, page, data.len())?;
        let zero = self.detect_zero && is_zero_page(data);
        self.note_page(block, page, zero);
        let hooks = &self.hooks;
        match &mut self.layout {
            LayoutState::Sequential { last_block } => {
                let b = &self.blocks[block];
                let cont = *last_block == Some(block);
                let word = (page * PAGE_SIZE)
                    | if zero { flag::ZERO } else { flag::PAGE }
                    | if cont { flag::CONTINUE } else { 0 };
                self.pending.be64(word);
                if !cont {
                    self.pending.short_str(&b.name);
                }
                if zero {
                    self.pending.u8(0);
                } else {
                    self.pending.bytes(data);
                }
                *last_block = Some(block);
                if self.pending.buf.len() >= FLUSH_AT {
                    self.flush()?;
                }
            }
            LayoutState::FixedRam { blocks, .. } => {
                if !zero {
                    let off = page_offset(&blocks[block], block, page, hooks);
                    self.file.write_at(off, data)?;
                }
            }
        }
        Ok(())
    }

    /// Send a batch of pages, in order, taking their bytes from `source`.
    /// The file ends up exactly as if each page had gone through
    /// [`MigrationWriter::save_page`]. Fixed-ram: runs of consecutive
    /// non-zero pages are written with one write each; with `channels` > 1
    /// and a file that offers [`MigFile::shared`], the batch is split into
    /// that many contiguous shares written concurrently.
    pub fn save_pages(
        &mut self,
        pages: &[(usize, u64)],
        source: &dyn PageSource,
        channels: usize,
    ) -> Result<(), SaveError> {
        for &(b, p) in pages {
            self.check_page(b, p, PAGE_SIZE as usize)?;
        }
        if self.layout() != Layout::FixedRam || !self.detect_zero {
            let mut buf = vec![0u8; PAGE_SIZE as usize];
            for &(b, p) in pages {
                source.fill(b, p, &mut buf);
                self.save_page(b, p, &buf)?;
            }
            return Ok(());
        }
        let channels = channels.clamp(1, pages.len().div_ceil(RUN_PAGES).max(1));
        while self.bufs.len() < channels {
            self.bufs
                .push(AlignedBuf::zeroed(RUN_PAGES * PAGE_SIZE as usize));
        }
        let Self {
            file,
            layout,
            bufs,
            hooks,
            ..
        } = self;
        let hooks = &*hooks;
        let LayoutState::FixedRam { blocks, .. } = layout else {
            unreachable!("checked above")
        };
        let blocks = &blocks[..];
        let zero: Vec<bool> = match file.shared() {
            Some(shared) if channels > 1 => {
                let share = pages.len().div_ceil(channels);
                let jobs: Vec<_> = pages
                    .chunks(share)
                    .zip(bufs.iter_mut())
                    .map(|(part, buf)| {
                        move || -> ShareResult {
                            let mut writes = Vec::new();
                            let zero =
                                write_share(part, source, buf, blocks, hooks, &mut |off, data| {
                                    shared.write_shared(off, data)?;
                                    writes.push((off, data.len() as u64));
                                    Ok(())
                                })?;
                            Ok((zero, writes))
                        }
                    })
                    .collect();
                let results = crate::parallel::run_jobs(jobs);
                let mut zero = Vec::with_capacity(pages.len());
                for r in results {
                    let (z, writes) = r?;
                    zero.extend(z);
                    for (off, len) in writes {
                        file.note_shared_write(off, len);
                    }
                }
                zero
            }
            _ => write_share(
                pages,
                source,
                &mut bufs[0],
                blocks,
                hooks,
                &mut |off, data| file.write_at(off, data),
            )?,
        };
        for (&(b, p), z) in pages.iter().zip(zero) {
            self.note_page(b, p, z);
        }
        Ok(())
    }

    /// Close the END section (fixed-ram: write every bitmap first), write
    /// each device as a FULL section, EOF and the vmdesc trailer; a
    /// durable writer syncs before and after that and appends the
    /// completion mark (see [`crate::durable`]). Returns the file.
    pub fn finish(mut self, devices: &[DeviceState]) -> Result<(F, WriterStats), SaveError> {
        if self.open != Open::End {
            return Err(SaveError::Setup("finish without begin_completion".into()));
        }
        let durable = self.durability == Durability::Durable;
        if durable {
            // Every page (and the sequential stream so far) before any
            // bitmap: a loader that trusts a bitmap finds its pages.
            self.flush()?;
            self.file.sync()?;
        }
        if let LayoutState::FixedRam { blocks, bitmaps } = &self.layout {
            for (i, (l, bm)) in blocks.iter().zip(bitmaps).enumerate() {
                if l.is_ignored() {
                    continue;
                }
                let mut bytes = bm.to_le_bytes();
                self.hooks.bitmap_bytes(i, &mut bytes);
                self.file.write_at(l.header.bitmap_offset, &bytes)?;
            }
        }
        self.close_section()?;
        for (i, d) in devices.iter().enumerate() {
            if d.idstr.len() > 255 || d.idstr.is_empty() {
                return Err(SaveError::Setup(format!("bad device idstr {:?}", d.idstr)));
            }
            let id = RAM_SECTION_ID + 1 + i as u32;
            stream::encode_section_start(
                &mut self.pending,
                kind::FULL,
                id,
                &d.idstr,
                d.instance_id,
                d.version_id,
            );
            self.pending.bytes(&d.payload);
            stream::encode_footer(&mut self.pending, id);
        }
        self.pending.u8(kind::EOF);
        let json = crate::vmdesc::encode(&self.machine, &self.validated, devices);
        self.pending
            .u8(kind::VMDESCRIPTION)
            .be32(json.len() as u32)
            .bytes(&json);
        self.flush()?;
        if self.integrity {
            if !self.file.seekable() {
                return Err(SaveError::Setup(
                    "the integrity trailer needs a seekable file (it is computed by reading the file back)".into(),
                ));
            }
            let t = crate::integrity::encode(&self.file, self.stream_start, self.pos)?;
            self.file.write_at(self.pos, &t)?;
            self.pos += t.len() as u64;
        }
        if durable {
            if self.hooks.sync_before_mark() {
                self.file.sync()?;
            }
            let at = self.pos;
            self.file.write_at(at, &durable::encode_mark(at))?;
            self.pos += durable::MARK_LEN;
            self.file.sync()?;
        }
        Ok((self.file, self.stats))
    }
}

/// What one channel returns: zero flags of its pages, and its writes.
type ShareResult = std::io::Result<(Vec<bool>, Vec<(u64, u64)>)>;

/// Where a fixed-ram page is written: its slot (the hooks may move it) in
/// the block's page area.
fn page_offset(l: &BlockLayout, block: usize, page: u64, hooks: &impl SaveHooks) -> u64 {
    l.page_offset(hooks.page_slot(block, page))
}

/// Write one channel's share of a fixed-ram batch: take runs of
/// consecutive pages from the source's memory or fill them into `buf`,
/// write each run of non-zero pages with one `write`. Returns each page's
/// zero flag, in order.
fn write_share(
    pages: &[(usize, u64)],
    source: &dyn PageSource,
    buf: &mut [u8],
    blocks: &[BlockLayout],
    hooks: &impl SaveHooks,
    write: &mut dyn FnMut(u64, &[u8]) -> std::io::Result<()>,
) -> std::io::Result<Vec<bool>> {
    let page_len = PAGE_SIZE as usize;
    let mut zero = Vec::with_capacity(pages.len());
    let mut i = 0;
    while i < pages.len() {
        // A run: same block, consecutive pages, at most RUN_PAGES.
        let (b, first) = pages[i];
        let mut n = 1;
        while i + n < pages.len() && n < RUN_PAGES && pages[i + n] == (b, first + n as u64) {
            n += 1;
        }
        let run: &[u8] = match source.pages(b, first, n) {
            Some(mem) if mem.len() == n * page_len => mem,
            Some(mem) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!(
                        "page source lent {} bytes for {n} pages of block {b} from page {first:#x}",
                        mem.len()
                    ),
                ));
            }
            None => {
                let run = &mut buf[..n * page_len];
                for (k, chunk) in run.chunks_exact_mut(page_len).enumerate() {
                    source.fill(b, first + k as u64, chunk);
                }
                run
            }
        };
        zero.extend(run.chunks_exact(page_len).map(is_zero_page));
        // Write maximal sub-runs of non-zero pages.
        let flags = &zero[zero.len() - n..];
        let mut k = 0;
        while k < n {
            if flags[k] {
                k += 1;
                continue;
            }
            let mut e = k + 1;
            while e < n && !flags[e] {
                e += 1;
            }
            let off = page_offset(&blocks[b], b, first + k as u64, hooks);
            write(off, &run[k * page_len..e * page_len])?;
            k = e;
        }
        i += n;
    }
    Ok(zero)
}

fn validate_blocks(blocks: &[RamBlockDesc]) -> Result<(), SaveError> {
    if blocks.is_empty() {
        return Err(SaveError::Setup(
            "a guest needs at least one RAMBlock".into(),
        ));
    }
    let mut seen = std::collections::HashSet::with_capacity(blocks.len());
    for b in blocks {
        if b.name.is_empty() || b.name.len() > 255 {
            return Err(SaveError::Setup(format!(
                "RAMBlock name {:?} must be 1..=255 bytes",
                b.name
            )));
        }
        if b.used_length == 0 || b.used_length % PAGE_SIZE != 0 {
            return Err(SaveError::Setup(format!(
                "RAMBlock {}: used_length {:#x} must be a positive multiple of {PAGE_SIZE}",
                b.name, b.used_length
            )));
        }
        if !seen.insert(b.name.as_str()) {
            return Err(SaveError::Setup(format!(
                "RAMBlock {} declared twice",
                b.name
            )));
        }
    }
    Ok(())
}
