//! The reader/loader: parses a migration file of either layout, checks
//! everything a hostile file could get wrong, and hands pages to a
//! [`RamSink`] (a destination guest, an extractor, or nothing at all for
//! `inspect`). It returns a [`StreamInfo`] describing the file's layout.
//!
//! Strictness: every length and offset is checked against the file's size
//! before anything is read or allocated; each malformed case has its own
//! [`LoadError`]. The loop consumes at least one byte per step, so it ends.
//!
//! Destination memory: for fixed-ram, pages whose bitmap bit is clear are
//! explicitly zeroed through [`RamSink::zero_pages`], so the result is
//! right even when the destination was not fresh (QEMU 10 skips this and
//! relies on fresh, zeroed RAM). For sequential streams every page the
//! stream names is written or zeroed; pages it never names are left as
//! they are (QEMU's first pass names every page).
//!
//! Files without a vmdesc trailer (QEMU `-machine suppress-vmdesc=on`):
//! a device (FULL) section's payload has no length prefix, so without the
//! trailer's field lists the device part cannot be walked. RAM comes
//! first in the stream, so [`load_ram`] (what [`inspect`] and `extract`
//! use) reads everything up to the first device section's header and
//! stops there with a warning, returning [`StreamInfo::unwalked_devices`];
//! it accepts this only after the RAM END section and when the file ends
//! like QEMU ends such a stream (a section footer `7E id`, then the EOF
//! byte), else it refuses with [`LoadError::NoVmdesc`]. No payload length
//! is guessed. [`load`] (a destination: the oracle) stays strict: it
//! refuses such a file with [`LoadError::NoVmdesc`], after the RAM before
//! the device sections has gone to the sink (a caller must not use that
//! memory as a restored guest).
//!
//! Names (block idstrs, section idstrs, capabilities, the machine type)
//! come back exactly as the file has them: a name with control characters
//! is returned with them (print it through an escaping function; the
//! [`LoadError`] texts escape the names they embed). A name that is not
//! UTF-8 is refused ([`LoadError::NameNotUtf8`]), since it could not be
//! given back byte for byte.
//!
//! Channels: [`load`] with [`LoadOptions::channels`] reads each fixed-ram block's page area with
//! several threads (the multifd idea) when the sink can be split into
//! disjoint page ranges ([`RamSink::split`]); a sink may also offer its
//! memory so pages are read straight into it ([`BlockPart::buffer`]).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::bitmap::PageBitmap;
use crate::caps::Capabilities;
use crate::error::LoadError;
use crate::fixed_ram::{FixedRamHeader, HEADER_LEN, HEADER_VERSION};
use crate::io::{AlignedBuf, MigFile};
use crate::layout::Layout;
use crate::ram::{FLAG_MASK, PAGE_SIZE, flag};
use crate::stream::{
    CAPS_SUBSECTION, CMD_SWITCHOVER_START, MAGIC, RAM_IDSTR, RAM_VERSION, SectionKind, VERSION,
    kind,
};
use crate::vmdesc::{Vmdesc, VmdescCache};
use crate::wire::Cursor;

/// Where loaded pages go.
pub trait RamSink {
    /// A block from the START section's list, in order (its index is the
    /// `block` argument of the other calls). Refuse with
    /// [`LoadError::UnknownBlock`] or [`LoadError::SizeMismatch`].
    fn declare_block(&mut self, name: &str, used_length: u64) -> Result<(), LoadError>;
    /// Whole pages starting at page `first`; `data.len()` is a multiple of
    /// the page size and lies inside the declared block.
    fn write_pages(&mut self, block: usize, first: u64, data: &[u8]) -> Result<(), LoadError>;
    /// `count` zero pages starting at page `first`, inside the block.
    fn zero_pages(&mut self, block: usize, first: u64, count: u64) -> Result<(), LoadError>;
    /// Memory of pages `first..first+count` of `block`, for the reader to
    /// read into directly (instead of calling `write_pages`). `None` (the
    /// default): use `write_pages`.
    fn buffer(&mut self, block: usize, first: u64, count: u64) -> Option<&mut [u8]> {
        let _ = (block, first, count);
        None
    }
    /// Split `block` into parts that channel threads fill concurrently:
    /// part `i` owns pages `bounds[i]..bounds[i+1]` (`bounds` starts at 0
    /// and ends at the block's page count). `None` (the default): the
    /// block is loaded by one thread through this sink.
    fn split(
        &mut self,
        block: usize,
        bounds: &[u64],
    ) -> Option<Vec<Box<dyn BlockPart + Send + '_>>> {
        let _ = (block, bounds);
        None
    }
}

/// One channel's share of a block (see [`RamSink::split`]). Page indices
/// are the block's own, inside the part's range.
pub trait BlockPart {
    /// Whole pages starting at page `first`.
    fn write_pages(&mut self, first: u64, data: &[u8]) -> Result<(), LoadError>;
    /// `count` zero pages starting at page `first`.
    fn zero_pages(&mut self, first: u64, count: u64) -> Result<(), LoadError>;
    /// Memory to read pages into directly, as [`RamSink::buffer`].
    fn buffer(&mut self, first: u64, count: u64) -> Option<&mut [u8]> {
        let _ = (first, count);
        None
    }
}

/// A whole sink seen as the one part of a block (single channel).
struct WholeBlock<'s, S: RamSink + ?Sized> {
    sink: &'s mut S,
    block: usize,
}

impl<S: RamSink + ?Sized> BlockPart for WholeBlock<'_, S> {
    fn write_pages(&mut self, first: u64, data: &[u8]) -> Result<(), LoadError> {
        self.sink.write_pages(self.block, first, data)
    }
    fn zero_pages(&mut self, first: u64, count: u64) -> Result<(), LoadError> {
        self.sink.zero_pages(self.block, first, count)
    }
    fn buffer(&mut self, first: u64, count: u64) -> Option<&mut [u8]> {
        self.sink.buffer(self.block, first, count)
    }
}

/// A sink that accepts any block and discards pages: for `inspect`.
#[derive(Default, Debug)]
pub struct NullSink;

impl RamSink for NullSink {
    fn declare_block(&mut self, _: &str, _: u64) -> Result<(), LoadError> {
        Ok(())
    }
    fn write_pages(&mut self, _: usize, _: u64, _: &[u8]) -> Result<(), LoadError> {
        Ok(())
    }
    fn zero_pages(&mut self, _: usize, _: u64, _: u64) -> Result<(), LoadError> {
        Ok(())
    }
}

/// What the destination expects. `None` fields are not checked (inspect).
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// The destination's machine type.
    pub machine: Option<String>,
    /// The destination's capabilities (validated ones are compared).
    pub caps: Option<Capabilities>,
    /// Skip reading page data of fixed-ram blocks (bitmaps are still read
    /// and checked). `inspect` uses it to stay fast on big files.
    pub skip_page_data: bool,
    /// What happens to fixed-ram pages whose bitmap bit is clear.
    pub clear_bit_pages: ClearBitPages,
    /// File offset where the stream starts (QEMU `file:PATH,offset=N`, a
    /// libvirt save image: see [`crate::container::find_stream`]); every
    /// fixed-ram offset in the stream is an absolute file position.
    pub stream_offset: u64,
    /// Threads reading each fixed-ram block's page area (the multifd
    /// idea), when the sink can be split ([`RamSink::split`]); 0 and 1
    /// mean one. The result does not depend on it.
    pub channels: usize,
    /// Refuse a file that does not end with a durable save's completion
    /// mark right after its vmdesc trailer ([`crate::durable`]), with
    /// [`LoadError::NotDurable`]: checked before any page is loaded, and
    /// again where the trailer ends.
    pub require_durable: bool,
    /// Refuse a file without a valid integrity trailer right after its
    /// vmdesc trailer ([`crate::integrity`]): every chunk is checked
    /// before any page is loaded, and the first that differs is named
    /// ([`LoadError::IntegrityMismatch`]).
    pub require_integrity: bool,
    /// Share the vmdesc trailer found by one load with later loads given
    /// the same cache (a clone of it): for loading one file several times
    /// (the fuzz targets). A load checks that the file holds the bytes the
    /// trailer was found in before it reuses it ([`VmdescCache::new`]), so
    /// the result never depends on it; except with
    /// [`VmdescCache::for_one_file`], which trusts the caller that every
    /// load is of the same unchanged file.
    pub vmdesc_cache: Option<VmdescCache>,
}

/// What a fixed-ram load does with pages whose bitmap bit is clear (pages
/// the source never sent, or last sent as zero).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClearBitPages {
    /// Zero them, so the result is right on a destination that was not
    /// fresh (migsim's default).
    #[default]
    Zero,
    /// Leave them as they are, as QEMU 10 does (`parse_ramblock_mapped_ram`
    /// reads only set-bit runs): right only on fresh, zeroed memory. A
    /// destination holding older data keeps it in those pages.
    Untouched,
}

/// The fixed-ram part of a block's description.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct FixedRamInfo {
    /// Offset of the 28-byte header.
    pub header_offset: u64,
    /// Header version.
    pub version: u32,
    /// Header page size.
    pub page_size: u64,
    /// Bitmap offset.
    pub bitmap_offset: u64,
    /// Bitmap bytes.
    pub bitmap_len: u64,
    /// Offset of page 0.
    pub pages_offset: u64,
}

/// One RAMBlock as the file describes it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct BlockInfo {
    /// idstr.
    pub name: String,
    /// Bytes.
    pub used_length: u64,
    /// `used_length / 4096`.
    pub pages: u64,
    /// Offset of the block's record in the START section.
    pub record_offset: u64,
    /// Fixed-ram: pages whose bit is set. Sequential: PAGE records.
    pub pages_present: u64,
    /// Sequential: ZERO records (fixed-ram: 0).
    pub zero_records: u64,
    /// x-ignore-shared: the region's guest address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mr_addr: Option<u64>,
    /// Fixed-ram with x-ignore-shared: the header's offsets are both 0,
    /// the encoding of a block on shared memory that the migration skips
    /// (no bitmap, no page area; the destination keeps its own memory).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ignored: bool,
    /// Fixed-ram layout, when the stream uses it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fixed_ram: Option<FixedRamInfo>,
}

/// One section, command or the EOF marker.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct SectionInfo {
    /// Offset of the type byte.
    pub offset: u64,
    /// START, PART, END, FULL, COMMAND.
    pub kind: SectionKind,
    /// Section id (commands: the command number).
    pub id: u32,
    /// Section name.
    pub idstr: String,
    /// Instance id (START/FULL).
    pub instance_id: u32,
    /// vmstate version (START/FULL).
    pub version_id: u32,
    /// Bytes from the type byte through the footer.
    pub len: u64,
}

/// Where [`load_ram`] stopped in a file without a vmdesc trailer: the
/// first device section, whose header is read but whose payload (no length
/// prefix) cannot be walked, nor anything after it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct UnwalkedDevices {
    /// Offset of the first device section's type byte.
    pub offset: u64,
    /// Its section id.
    pub id: u32,
    /// Its name.
    pub idstr: String,
    /// Its instance id.
    pub instance_id: u32,
    /// Its vmstate version.
    pub version_id: u32,
    /// Offset of its payload: the first byte not read.
    pub payload_offset: u64,
    /// Bytes from `payload_offset` to the end of the file, not read
    /// (device payloads and footers, then the EOF byte).
    pub unread_bytes: u64,
    /// The section id in the footer that ends the file's last section
    /// (the 5 bytes before the EOF byte).
    pub last_footer_id: u32,
}

/// The layout of a migration file.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct StreamInfo {
    /// File length.
    pub file_len: u64,
    /// File offset of the stream's first byte (0 unless it starts at an
    /// offset: see [`crate::container`]).
    #[serde(skip_serializing_if = "is_zero")]
    pub stream_offset: u64,
    /// Stream version (3).
    pub version: u32,
    /// Machine type from the configuration section.
    pub machine: String,
    /// Validated capabilities listed in the configuration section.
    pub capabilities: Vec<String>,
    /// Sequential or fixed-ram (`"sequential"`, `"fixed-ram"` in JSON).
    pub layout: Layout,
    /// RAM blocks in stream order.
    pub blocks: Vec<BlockInfo>,
    /// Every section and command in order (that was walked: not the
    /// device sections of [`StreamInfo::unwalked_devices`]).
    pub sections: Vec<SectionInfo>,
    /// Offset of the EOF byte. With [`StreamInfo::unwalked_devices`] the
    /// walk did not reach it: it is the file's last byte, which the reader
    /// checked to be 0x00 after a section footer.
    pub eof_offset: u64,
    /// Set when the file has device sections but no vmdesc trailer and
    /// [`load_ram`] stopped at the first of them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unwalked_devices: Option<UnwalkedDevices>,
    /// Offset of the vmdesc trailer, if present.
    pub vmdesc_offset: Option<u64>,
    /// Devices the vmdesc describes.
    pub vmdesc_devices: usize,
    /// Offset of a durable save's completion mark right after the vmdesc
    /// trailer ([`crate::durable`]), if the file has one.
    pub completion_mark: Option<u64>,
    /// Offset of an integrity trailer right after the vmdesc trailer
    /// ([`crate::integrity`]), if the file has one (verified only with
    /// [`LoadOptions::require_integrity`]).
    pub integrity_trailer: Option<u64>,
    /// Things QEMU would only warn about.
    pub warnings: Vec<String>,
}

struct Reader<'a, F: MigFile + ?Sized, S: RamSink + ?Sized> {
    cur: Cursor<'a, F>,
    sink: &'a mut S,
    opts: &'a LoadOptions,
    channels: usize,
    fixed: bool,
    ignore_shared: bool,
    blocks: Vec<BlockInfo>,
    /// Block name -> index in `blocks`, once there are more than
    /// [`BLOCK_SCAN_MAX`] (empty before: see [`Reader::find_block`]).
    block_index: BTreeMap<String, usize>,
    last_block: Option<usize>,
    page: Vec<u8>,
    vmdesc: Option<Option<Vmdesc>>,
    /// [`load_ram`]: stop at device sections that cannot be walked.
    stop_at_unwalkable: bool,
}

/// Pages per read of a fixed-ram page area at most (1 MiB).
const PAGES_PER_READ: u64 = 256;

/// A block loaded by several channels is cut into at most this many
/// pieces (of at least [`PAGES_PER_READ`] pages): 1 MiB pieces up to a
/// 4 GiB block, larger ones beyond, so the parts a sink makes stay few
/// however large the guest.
const MAX_PIECES: u64 = 4096;

/// Load pages `range` of one fixed-ram block into `part`: runs of set
/// bits are read (at most [`PAGES_PER_READ`] pages per read, straight into
/// the part's memory when it offers it), runs of clear bits are zeroed.
/// `buf` is the channel's read buffer, made on first need and kept for
/// its next ranges.
fn load_page_range<F: MigFile + ?Sized>(
    file: &F,
    opts: &LoadOptions,
    h: &FixedRamHeader,
    bitmap: &PageBitmap,
    range: std::ops::Range<u64>,
    part: &mut dyn BlockPart,
    buf: &mut Option<AlignedBuf>,
) -> Result<(), LoadError> {
    let mut i = range.start;
    while i < range.end {
        let set = bitmap.get(i);
        let mut j = i + 1;
        while j < range.end && bitmap.get(j) == set && (!set || j - i < PAGES_PER_READ) {
            j += 1;
        }
        if !set {
            if opts.clear_bit_pages == ClearBitPages::Zero {
                part.zero_pages(i, j - i)?;
            }
        } else if !opts.skip_page_data {
            let at = h.pages_offset + i * PAGE_SIZE;
            let mut cur = Cursor::new(file, at);
            let n = ((j - i) * PAGE_SIZE) as usize;
            if let Some(mem) = part.buffer(i, j - i) {
                cur.read_into("fixed-ram pages", mem)?;
            } else if !(at.is_multiple_of(PAGE_SIZE) && lend_pages(file, at, n, i, part)?) {
                // Pages the file lends where they lie (in memory) need no
                // copy (its pieces are whole pages when the area is
                // page-aligned); the others are read into a buffer as
                // large as the range's longest read can be, not always a
                // MiB (blocks of a few pages are common).
                // Aligned, so a file with an O_DIRECT descriptor reads
                // past the cache.
                let most = PAGES_PER_READ.min(range.end - range.start);
                if buf.as_ref().is_none_or(|b| b.len() < n) {
                    *buf = Some(AlignedBuf::zeroed((most * PAGE_SIZE) as usize));
                }
                let buf = buf.as_mut().expect("made just above");
                cur.read_into("fixed-ram pages", &mut buf[..n])?;
                part.write_pages(i, &buf[..n])?;
            }
        }
        i = j;
    }
    Ok(())
}

/// Pages from `first` on, `n` bytes of them at `at` (page-aligned), to
/// `part` as the file lends them ([`MigFile::lend`]); `false` when it
/// does not, and nothing was written.
fn lend_pages<F: MigFile + ?Sized>(
    file: &F,
    at: u64,
    n: usize,
    first: u64,
    part: &mut dyn BlockPart,
) -> Result<bool, LoadError> {
    let (mut page, mut done) = (first, Ok(()));
    let lent = file.lend(at, n, &mut |piece| {
        if done.is_ok() {
            done = part.write_pages(page, piece);
        }
        page += piece.len() as u64 / PAGE_SIZE;
    });
    done.map(|()| lent)
}

/// Load `file` into `sink`, checking it against `opts` (with up to
/// `opts.channels` threads reading each fixed-ram block's pages).
/// Every section must be walked: a file with device sections but no
/// vmdesc trailer is refused with [`LoadError::NoVmdesc`] (see the module
/// documentation).
pub fn load<F, S>(file: &F, opts: &LoadOptions, sink: &mut S) -> Result<StreamInfo, LoadError>
where
    F: MigFile + ?Sized,
    S: RamSink + ?Sized,
{
    load_with(file, opts, sink, false)
}

/// [`load`], except that a file whose device sections cannot be walked
/// (no vmdesc trailer, QEMU `-machine suppress-vmdesc=on`) ends at the
/// first device section's header: everything before it (all of RAM) is
/// checked and loaded as by [`load`], and the result says where it stopped
/// ([`StreamInfo::unwalked_devices`], and a warning). For reading RAM out
/// of a file (inspect, extract), not for restoring a guest.
pub fn load_ram<F, S>(file: &F, opts: &LoadOptions, sink: &mut S) -> Result<StreamInfo, LoadError>
where
    F: MigFile + ?Sized,
    S: RamSink + ?Sized,
{
    load_with(file, opts, sink, true)
}

fn load_with<F, S>(
    file: &F,
    opts: &LoadOptions,
    sink: &mut S,
    stop_at_unwalkable: bool,
) -> Result<StreamInfo, LoadError>
where
    F: MigFile + ?Sized,
    S: RamSink + ?Sized,
{
    let mut r = Reader {
        cur: Cursor::new(file, opts.stream_offset),
        sink,
        opts,
        channels: opts.channels.max(1),
        fixed: false,
        ignore_shared: false,
        blocks: Vec::new(),
        block_index: BTreeMap::new(),
        last_block: None,
        page: Vec::new(),
        vmdesc: None,
        stop_at_unwalkable,
    };
    r.run()
}

/// Describe `file` without a destination (no capability or machine
/// checks), as far as it can be walked ([`load_ram`]).
pub fn inspect<F: MigFile + ?Sized>(file: &F) -> Result<StreamInfo, LoadError> {
    inspect_sharing(file, None)
}

/// [`inspect`], sharing the vmdesc trailer it finds with later loads
/// given `cache` ([`LoadOptions::vmdesc_cache`]).
pub fn inspect_sharing<F: MigFile + ?Sized>(
    file: &F,
    cache: Option<&VmdescCache>,
) -> Result<StreamInfo, LoadError> {
    let opts = LoadOptions {
        skip_page_data: true,
        vmdesc_cache: cache.cloned(),
        ..LoadOptions::default()
    };
    load_ram(file, &opts, &mut NullSink)
}

impl<F: MigFile + ?Sized, S: RamSink + ?Sized> Reader<'_, F, S> {
    fn run(&mut self) -> Result<StreamInfo, LoadError> {
        let mark = crate::durable::find_mark(self.cur.file())?;
        if self.opts.require_durable && mark.is_none() {
            return Err(LoadError::NotDurable {
                why: "the file's last 16 bytes are not a completion mark".into(),
            });
        }
        let tail_end = mark.unwrap_or(self.cur.file_len());
        let trailer = crate::integrity::find(self.cur.file(), tail_end)?;
        if self.opts.require_integrity {
            let Some(at) = trailer else {
                return Err(LoadError::NoIntegrity {
                    why: "the file does not end with one".into(),
                });
            };
            crate::integrity::verify(self.cur.file(), self.opts.stream_offset, at, tail_end)?;
        }
        let magic = self.cur.be32("magic")?;
        if magic != MAGIC {
            return Err(LoadError::BadMagic(magic));
        }
        let version = self.cur.be32("stream version")?;
        match version {
            VERSION => {}
            2 => return Err(LoadError::ObsoleteVersion),
            v => return Err(LoadError::UnsupportedVersion(v)),
        }
        let (machine, capabilities) = self.configuration()?;
        if let Some(local) = &self.opts.machine
            && *local != machine
        {
            return Err(LoadError::MachineMismatch {
                received: machine,
                local: local.clone(),
            });
        }
        if let Some(caps) = &self.opts.caps {
            caps.check_incoming(&capabilities)?;
        }
        self.fixed = capabilities
            .iter()
            .any(|c| c == "fixed-ram" || c == "mapped-ram");
        self.ignore_shared = capabilities.iter().any(|c| c == "x-ignore-shared");

        let mut sections = Vec::new();
        // id -> index in `sections` of the START or FULL section that
        // named it
        let mut ids: BTreeMap<u32, usize> = BTreeMap::new();
        let mut ram_started = false;
        let mut ram_ended = false;
        let mut unwalked = None;
        let eof_offset = loop {
            let offset = self.cur.pos();
            let k = self.cur.u8("section type")?;
            if k == kind::EOF {
                break offset;
            }
            let Some(section_kind) = SectionKind::from_byte(k) else {
                return Err(LoadError::UnknownSectionType { kind: k, offset });
            };
            let mut info = SectionInfo {
                offset,
                kind: section_kind,
                id: 0,
                idstr: String::new(),
                instance_id: 0,
                version_id: 0,
                len: 0,
            };
            match section_kind {
                SectionKind::Start | SectionKind::Full => {
                    info.id = self.cur.be32("section id")?;
                    info.idstr = self.cur.short_str("section idstr")?;
                    info.instance_id = self.cur.be32("instance id")?;
                    info.version_id = self.cur.be32("version id")?;
                    if ids.contains_key(&info.id) {
                        return Err(LoadError::DuplicateSectionId {
                            id: info.id,
                            idstr: info.idstr,
                            offset,
                        });
                    }
                    ids.insert(info.id, sections.len());
                    if info.idstr == RAM_IDSTR {
                        if section_kind == SectionKind::Full || ram_started {
                            return Err(LoadError::RamSection(
                                "RAM must be sent in one START section followed by PART/END",
                            ));
                        }
                        if info.version_id != RAM_VERSION {
                            return Err(LoadError::RamVersion(info.version_id));
                        }
                        ram_started = true;
                        self.ram_start()?;
                    } else if section_kind == SectionKind::Full {
                        if !self.skip_device(&info.idstr, info.instance_id, offset)? {
                            let u = self.unwalkable(info, ram_ended)?;
                            let eof = self.cur.file_len() - 1;
                            unwalked = Some(u);
                            break eof;
                        }
                    } else {
                        return Err(LoadError::DeviceSection {
                            idstr: info.idstr,
                            offset,
                            why: "iterative devices other than RAM are not supported".into(),
                        });
                    }
                    self.footer(info.id, &info.idstr)?;
                }
                SectionKind::Part | SectionKind::End => {
                    info.id = self.cur.be32("section id")?;
                    let named: &SectionInfo = ids.get(&info.id).map(|&i| &sections[i]).ok_or(
                        LoadError::UnknownSectionId {
                            id: info.id,
                            offset,
                        },
                    )?;
                    info.idstr.clone_from(&named.idstr);
                    info.instance_id = named.instance_id;
                    if info.idstr != RAM_IDSTR {
                        return Err(LoadError::DeviceSection {
                            idstr: info.idstr,
                            offset,
                            why: "iterative devices other than RAM are not supported".into(),
                        });
                    }
                    self.ram_records()?;
                    self.footer(info.id, &info.idstr)?;
                    ram_ended |= section_kind == SectionKind::End;
                }
                SectionKind::Command => {
                    let cmd = self.cur.be16("command")?;
                    let len = self.cur.be16("command length")?;
                    if cmd != CMD_SWITCHOVER_START || len != 0 {
                        return Err(LoadError::UnexpectedCommand { cmd, len, offset });
                    }
                    info.id = u32::from(cmd);
                    info.idstr = "SWITCHOVER_START".into();
                }
            }
            info.len = self.cur.pos() - offset;
            sections.push(info);
        };
        if !ram_started {
            return Err(LoadError::NoRam);
        }
        // QEMU always ends RAM with an END section (ram_save_complete); a
        // zero byte where the next section should be is a hole in a file
        // cut short, not the end of a save. A restore refuses it; inspect
        // and extract warn below.
        if !ram_ended && !self.stop_at_unwalkable {
            return Err(LoadError::NoRamEnd { offset: eof_offset });
        }
        let mut warnings = Vec::new();
        let mut vmdesc_offset = None;
        let mut vmdesc_devices = 0;
        let mut completion_mark = None;
        let mut integrity_trailer = None;
        if !ram_ended && unwalked.is_none() {
            warnings.push(format!(
                "EOF at {eof_offset:#x} before the RAM END section: the save did not complete"
            ));
        }
        if let Some(u) = &unwalked {
            warnings.push(format!(
                "no vmdesc trailer: device sections after offset {:#x} cannot be walked \
                 (QEMU -machine suppress-vmdesc=on); the first, '{}' (id {}, instance {}, \
                 version {}) at {:#x}, has no length prefix; its payload and the {} bytes \
                 to the end of the file were not read",
                u.payload_offset,
                u.idstr,
                u.id,
                u.instance_id,
                u.version_id,
                u.offset,
                u.unread_bytes
            ));
        }
        match self.cur.peek_u8()? {
            _ if unwalked.is_some() => {}
            Some(kind::VMDESCRIPTION) => {
                let at = self.cur.pos();
                self.cur.u8("vmdesc")?;
                // The trailer is optional (QEMU only warns about it), so a
                // damaged one is a warning, not an error.
                let json = match self.cur.be32("vmdesc length") {
                    Ok(n) if u64::from(n) <= self.cur.remaining() => {
                        Some(self.cur.bytes("vmdesc JSON", u64::from(n))?)
                    }
                    Ok(n) => {
                        warnings.push(format!(
                            "vmdesc trailer at {at:#x} announces {n} bytes but only {} remain",
                            self.cur.remaining()
                        ));
                        self.cur.seek(self.cur.file_len());
                        None
                    }
                    Err(_) => {
                        warnings.push(format!("vmdesc trailer at {at:#x} is cut short"));
                        self.cur.seek(self.cur.file_len());
                        None
                    }
                };
                // The trailer the device walk found is this one (it ends
                // where the stream does, so its JSON is these bytes):
                // parsed once.
                let parsed = |j: &[u8]| match &self.vmdesc {
                    Some(Some(v)) if v.offset == at && v.json_len == j.len() as u64 => {
                        Some(v.device_count())
                    }
                    _ => Vmdesc::parse(at, j).map(|v| v.device_count()),
                };
                match json.as_deref().map(parsed) {
                    Some(Some(devices)) => {
                        vmdesc_offset = Some(at);
                        vmdesc_devices = devices;
                    }
                    Some(None) => {
                        warnings.push(format!("vmdesc trailer at {at:#x} is not valid JSON"))
                    }
                    None => {}
                }
                if trailer.is_some() && trailer == Some(self.cur.pos()) {
                    integrity_trailer = trailer;
                    self.cur.seek(tail_end);
                }
                if mark == Some(self.cur.pos()) {
                    completion_mark = mark;
                    self.cur.seek(self.cur.file_len());
                } else if self.cur.remaining() > 0 {
                    warnings.push(format!(
                        "{} bytes after the vmdesc trailer at {:#x}",
                        self.cur.remaining(),
                        self.cur.pos()
                    ));
                }
            }
            Some(b) => warnings.push(format!("Expected vmdescription section, but got {b}")),
            None => warnings
                .push("Expected vmdescription section, but got 0 (no trailer after EOF)".into()),
        }
        if self.opts.require_integrity && integrity_trailer.is_none() {
            return Err(LoadError::NoIntegrity {
                why: format!(
                    "the trailer at {:#x} does not follow the vmdesc trailer",
                    trailer.unwrap_or(0)
                ),
            });
        }
        if self.opts.require_durable && completion_mark.is_none() {
            return Err(LoadError::NotDurable {
                why: match vmdesc_offset {
                    Some(at) => format!("the mark does not follow the vmdesc trailer at {at:#x}"),
                    None => "no vmdesc trailer before it".into(),
                },
            });
        }
        Ok(StreamInfo {
            completion_mark,
            integrity_trailer,
            file_len: self.cur.file_len(),
            stream_offset: self.opts.stream_offset,
            version,
            machine,
            capabilities,
            layout: if self.fixed {
                Layout::FixedRam
            } else {
                Layout::Sequential
            },
            blocks: std::mem::take(&mut self.blocks),
            sections,
            eof_offset,
            unwalked_devices: unwalked,
            vmdesc_offset,
            vmdesc_devices,
            warnings,
        })
    }

    fn configuration(&mut self) -> Result<(String, Vec<String>), LoadError> {
        let k = self.cur.u8("configuration section")?;
        if k != kind::CONFIGURATION {
            return Err(LoadError::ConfigurationMissing(k));
        }
        let at = self.cur.pos();
        let n = self.cur.be32("machine name length")?;
        let machine = self.cur.string("machine name", at, u64::from(n))?;
        let mut caps = Vec::new();
        while self.cur.peek_u8()? == Some(kind::SUBSECTION) {
            let at = self.cur.pos();
            self.cur.u8("subsection")?;
            // Known names compared in place; a String only for an
            // unknown one's error.
            let name_at = self.cur.pos();
            let sub = match self.cur.short_bytes("subsection name")? {
                b if b == CAPS_SUBSECTION.as_bytes() => Ok(CAPS_SUBSECTION),
                b"configuration/target-page-bits" => Ok("configuration/target-page-bits"),
                b"configuration/uuid" => Ok("configuration/uuid"),
                b => Err(crate::wire::utf8("subsection name", name_at, b)?),
            };
            self.cur.be32("subsection version")?;
            match sub {
                Err(unknown) => return Err(LoadError::UnknownConfigSubsection(unknown, at)),
                Ok(CAPS_SUBSECTION) => {
                    let count = self.cur.be32("capability count")?;
                    if u64::from(count) > self.cur.remaining() {
                        return Err(LoadError::CapabilityCount(count, at));
                    }
                    for _ in 0..count {
                        caps.push(self.cur.short_str("capability name")?);
                    }
                }
                Ok("configuration/target-page-bits") => {
                    self.cur.be32("target page bits")?;
                }
                Ok(_) => {
                    self.cur.skip("uuid", 16)?;
                }
            }
        }
        Ok((machine, caps))
    }

    fn footer(&mut self, id: u32, idstr: &str) -> Result<(), LoadError> {
        let offset = self.cur.pos();
        let b = self.cur.u8("section footer")?;
        if b != kind::FOOTER {
            return Err(LoadError::MissingFooter {
                idstr: idstr.to_string(),
                found: b,
                offset,
            });
        }
        let read = self.cur.be32("footer section id")?;
        if read != id {
            return Err(LoadError::FooterMismatch {
                idstr: idstr.to_string(),
                read,
                expected: id,
            });
        }
        Ok(())
    }

    /// Walk a device section's payload with the vmdesc trailer; `false`
    /// (nothing read) when the file has no trailer.
    fn skip_device(&mut self, idstr: &str, instance: u32, offset: u64) -> Result<bool, LoadError> {
        if self.vmdesc.is_none() {
            self.vmdesc = Some(match &self.opts.vmdesc_cache {
                Some(cache) => cache.locate(self.cur.file())?,
                None => Vmdesc::locate(self.cur.file())?,
            });
        }
        let Some(Some(desc)) = &mut self.vmdesc else {
            return Ok(false);
        };
        desc.skip_device(&mut self.cur, idstr, instance)
            .map_err(|why| LoadError::DeviceSection {
                idstr: idstr.to_string(),
                offset,
                why,
            })?;
        Ok(true)
    }

    /// The first device section (header read, cursor on its payload) cannot
    /// be walked: where [`load_ram`] stops, or why it may not (the RAM has
    /// not ended, the file looks cut short, or this is [`load`]).
    fn unwalkable(
        &mut self,
        info: SectionInfo,
        ram_ended: bool,
    ) -> Result<UnwalkedDevices, LoadError> {
        let refuse = |why| LoadError::NoVmdesc {
            idstr: info.idstr.clone(),
            offset: info.offset,
            why,
        };
        if !ram_ended {
            return Err(refuse(
                "the RAM section has not ended before it, so RAM may follow the device sections",
            ));
        }
        // QEMU ends the stream with the last section's footer and the EOF
        // byte; a file cut short almost never does.
        let payload_offset = self.cur.pos();
        let len = self.cur.file_len();
        let mut tail = [0u8; 6];
        let ends_like_qemu = len >= payload_offset + 6
            && self.cur.file().read_at(len - 6, &mut tail)? == 6
            && tail[0] == kind::FOOTER
            && tail[5] == kind::EOF;
        if !ends_like_qemu {
            return Err(refuse(
                "the file does not end with a section footer and the EOF byte, as QEMU ends it: it looks cut short",
            ));
        }
        // Checked last, so a damaged file gets the same error from both.
        if !self.stop_at_unwalkable {
            return Err(refuse(
                "a full load must walk the device state (inspect and extract read the RAM before it)",
            ));
        }
        Ok(UnwalkedDevices {
            offset: info.offset,
            id: info.id,
            idstr: info.idstr,
            instance_id: info.instance_id,
            version_id: info.version_id,
            payload_offset,
            unread_bytes: len - payload_offset,
            last_footer_id: u32::from_be_bytes(tail[1..5].try_into().expect("4 bytes")),
        })
    }

    fn ram_start(&mut self) -> Result<(), LoadError> {
        let at = self.cur.pos();
        let w = self.cur.be64("RAM block list")?;
        if w & FLAG_MASK != flag::MEM_SIZE {
            return Err(LoadError::RamSection(
                "the START section must begin with a MEM_SIZE block list",
            ));
        }
        let total = w & !FLAG_MASK;
        let mut seen = 0u64;
        let _ = at;
        while seen < total {
            let record_offset = self.cur.pos();
            let name = self.cur.short_str("RAMBlock idstr")?;
            if name.is_empty() {
                // Real block names are never empty; an empty one is the
                // EOS word read as a record: the list ended early.
                return Err(LoadError::BlockListShort {
                    total,
                    seen,
                    offset: record_offset,
                });
            }
            let used_length = self.cur.be64("RAMBlock used_length")?;
            if used_length == 0 || used_length % PAGE_SIZE != 0 {
                return Err(LoadError::BadUsedLength { name, used_length });
            }
            seen = match seen.checked_add(used_length) {
                Some(s) if s <= total => s,
                _ => {
                    return Err(LoadError::BlockListOverrun {
                        total,
                        seen: seen.saturating_add(used_length),
                        offset: record_offset,
                    });
                }
            };
            if self.find_block(&name).is_some() {
                return Err(LoadError::DuplicateBlock(name));
            }
            let mr_addr = if self.ignore_shared {
                Some(self.cur.be64("mr_addr")?)
            } else {
                None
            };
            self.sink.declare_block(&name, used_length)?;
            let index = self.blocks.len();
            if index >= BLOCK_SCAN_MAX {
                if self.block_index.is_empty() {
                    let named = self.blocks.iter().enumerate();
                    self.block_index = named.map(|(i, b)| (b.name.clone(), i)).collect();
                }
                self.block_index.insert(name.clone(), index);
            }
            self.blocks.push(BlockInfo {
                name,
                used_length,
                pages: used_length / PAGE_SIZE,
                record_offset,
                pages_present: 0,
                zero_records: 0,
                mr_addr,
                ignored: false,
                fixed_ram: None,
            });
            if self.fixed {
                self.fixed_ram_block(index)?;
            }
        }
        self.ram_records()
    }

    /// The declared block named `name`: a scan while there are at most
    /// [`BLOCK_SCAN_MAX`] (no map to build for the few of most streams),
    /// the name map after.
    fn find_block(&self, name: &str) -> Option<usize> {
        if self.blocks.len() <= BLOCK_SCAN_MAX {
            self.blocks.iter().position(|b| b.name == name)
        } else {
            self.block_index.get(name).copied()
        }
    }

    fn fixed_ram_block(&mut self, index: usize) -> Result<(), LoadError> {
        let header_offset = self.cur.pos();
        let mut raw = [0u8; HEADER_LEN as usize];
        self.cur.read_into("fixed-ram header", &mut raw)?;
        let h = FixedRamHeader::decode(&raw);
        // Borrowed: cloned only into an error.
        let name = &self.blocks[index].name;
        let used_length = self.blocks[index].used_length;
        let file_len = self.cur.file_len();
        if h.version > HEADER_VERSION {
            return Err(LoadError::HeaderVersion(h.version));
        }
        if h.page_size != PAGE_SIZE {
            return Err(LoadError::HeaderPageSize {
                name: name.clone(),
                page_size: h.page_size,
            });
        }
        if h.is_ignored() {
            return self.ignored_block(index, header_offset, &h);
        }
        if !h.pages_offset.is_multiple_of(PAGE_SIZE) {
            return Err(LoadError::PagesMisaligned {
                name: name.clone(),
                pages_offset: h.pages_offset,
            });
        }
        let pages = used_length / PAGE_SIZE;
        let bitmap_len = PageBitmap::encoded_len(pages);
        let header_end = header_offset + HEADER_LEN;
        check_region(
            name,
            "bitmap",
            h.bitmap_offset,
            bitmap_len,
            header_end,
            file_len,
        )?;
        check_region(
            name,
            "page area",
            h.pages_offset,
            used_length,
            h.bitmap_offset + bitmap_len,
            file_len,
        )?;
        self.cur.seek(h.bitmap_offset);
        // A small block's bitmap (up to 4096 pages) is read on the stack.
        let mut small = [0u8; 512];
        let mut large = Vec::new();
        let raw_bitmap = if bitmap_len as usize <= small.len() {
            &mut small[..bitmap_len as usize]
        } else {
            large.resize(bitmap_len as usize, 0);
            &mut large[..]
        };
        self.cur.read_into("fixed-ram bitmap", raw_bitmap)?;
        let bitmap = PageBitmap::from_le_bytes(raw_bitmap, pages);
        drop(large);
        self.load_fixed_pages(index, &h, &bitmap)?;
        let b = &mut self.blocks[index];
        b.pages_present = bitmap.count_ones();
        b.fixed_ram = Some(FixedRamInfo {
            header_offset,
            version: h.version,
            page_size: h.page_size,
            bitmap_offset: h.bitmap_offset,
            bitmap_len,
            pages_offset: h.pages_offset,
        });
        self.cur.seek(h.pages_offset + used_length);
        Ok(())
    }

    /// A header with both offsets 0: a block ignored under x-ignore-shared
    /// (QEMU 11.0's `parse_ramblock_mapped_ram` returns there too), whose
    /// next record follows the header. Refused in a stream that does not
    /// list x-ignore-shared, where no block is ever ignored.
    fn ignored_block(
        &mut self,
        index: usize,
        header_offset: u64,
        h: &FixedRamHeader,
    ) -> Result<(), LoadError> {
        if !self.ignore_shared {
            return Err(LoadError::IgnoredWithoutCapability {
                name: self.blocks[index].name.clone(),
            });
        }
        let b = &mut self.blocks[index];
        b.ignored = true;
        b.fixed_ram = Some(FixedRamInfo {
            header_offset,
            version: h.version,
            page_size: h.page_size,
            bitmap_offset: 0,
            bitmap_len: 0,
            pages_offset: 0,
        });
        self.cur.seek(header_offset + HEADER_LEN);
        Ok(())
    }

    /// Read runs of set bits in chunks of at most 1 MiB; zero runs of
    /// clear bits. With several channels and a sink that splits, the
    /// block is cut into pieces of at least 1 MiB (at most
    /// [`MAX_PIECES`]) that the channels take in file order, each its
    /// next piece when it finishes one (as QEMU's multifd channels take
    /// mapped-ram reads, without its dispatching thread): the reads in
    /// flight stay close together in the file, and a slow read holds up
    /// one piece, not a channel's whole share. Errors are deterministic:
    /// the first failing piece in file order, as a single channel would
    /// report it.
    fn load_fixed_pages(
        &mut self,
        index: usize,
        h: &FixedRamHeader,
        bitmap: &PageBitmap,
    ) -> Result<(), LoadError> {
        let pages = bitmap.len();
        let file = self.cur.file();
        let opts = self.opts;
        let channels = (self.channels as u64)
            .min(pages.div_ceil(PAGES_PER_READ))
            .max(1);
        if channels > 1 {
            let piece = pages
                .div_ceil(MAX_PIECES)
                .next_multiple_of(PAGES_PER_READ)
                .max(PAGES_PER_READ);
            let bounds: Vec<u64> = (0..=pages.div_ceil(piece))
                .map(|i| (i * piece).min(pages))
                .collect();
            if let Some(parts) = self.sink.split(index, &bounds) {
                let queue = std::sync::Mutex::new(parts.into_iter().enumerate());
                let failed = std::sync::atomic::AtomicBool::new(false);
                let (queue, failed, bounds) = (&queue, &failed, &bounds);
                let jobs: Vec<_> = (0..channels)
                    .map(|_| {
                        move || -> Option<(usize, LoadError)> {
                            let mut buf = None;
                            while !failed.load(std::sync::atomic::Ordering::Relaxed) {
                                let next = queue.lock().unwrap_or_else(|e| e.into_inner()).next();
                                let (k, mut part) = next?;
                                let range = bounds[k]..bounds[k + 1];
                                let r = load_page_range(
                                    file, opts, h, bitmap, range, &mut *part, &mut buf,
                                );
                                if let Err(e) = r {
                                    // Pieces before this one were all
                                    // taken already, so they finish and
                                    // the smallest failure is the
                                    // serial order's first.
                                    failed.store(true, std::sync::atomic::Ordering::Relaxed);
                                    return Some((k, e));
                                }
                            }
                            None
                        }
                    })
                    .collect();
                let first = crate::parallel::run_jobs(jobs)
                    .into_iter()
                    .flatten()
                    .min_by_key(|(k, _)| *k);
                return first.map_or(Ok(()), |(_, e)| Err(e));
            }
        }
        let mut whole = WholeBlock {
            sink: &mut *self.sink,
            block: index,
        };
        load_page_range(file, opts, h, bitmap, 0..pages, &mut whole, &mut None)
    }

    /// RAM records until EOS.
    fn ram_records(&mut self) -> Result<(), LoadError> {
        loop {
            let offset = self.cur.pos();
            let w = self.cur.be64("RAM record")?;
            let flags = w & FLAG_MASK;
            let addr = w & !FLAG_MASK;
            if w == flag::EOS {
                return Ok(());
            }
            if self.fixed {
                return Err(LoadError::ForbiddenRamFlags { flags, offset });
            }
            if w == flag::MULTIFD_FLUSH {
                continue;
            }
            let kind = flags & !flag::CONTINUE;
            if kind != flag::ZERO && kind != flag::PAGE {
                return Err(LoadError::UnknownRamFlags { flags, offset });
            }
            let block = if flags & flag::CONTINUE != 0 {
                self.last_block
                    .ok_or(LoadError::ContinueWithoutBlock(offset))?
            } else {
                let name = self.cur.short_str("RAMBlock idstr")?;
                self.find_block(&name)
                    .ok_or(LoadError::UnknownBlock(name))?
            };
            self.last_block = Some(block);
            let b = &self.blocks[block];
            if addr >= b.used_length {
                return Err(LoadError::IllegalRamOffset {
                    name: b.name.clone(),
                    offset: addr,
                    used_length: b.used_length,
                });
            }
            let page = addr / PAGE_SIZE;
            if kind == flag::ZERO {
                let fill = self.cur.u8("zero page fill byte")?;
                if fill != 0 {
                    return Err(LoadError::ZeroPageFill(fill));
                }
                self.blocks[block].zero_records += 1;
                self.sink.zero_pages(block, page, 1)?;
            } else {
                // Allocated with the first page record (a fixed-ram
                // stream has none).
                let mut data = std::mem::take(&mut self.page);
                data.resize(PAGE_SIZE as usize, 0);
                self.cur.read_into("page data", &mut data)?;
                self.blocks[block].pages_present += 1;
                let r = self.sink.write_pages(block, page, &data);
                self.page = data;
                r?;
            }
        }
    }
}

/// Streams with up to this many blocks find a block by name with a scan.
const BLOCK_SCAN_MAX: usize = 16;

fn check_region(
    name: &str,
    region: &'static str,
    offset: u64,
    len: u64,
    min: u64,
    file_len: u64,
) -> Result<(), LoadError> {
    if offset < min {
        return Err(LoadError::RegionOverlap {
            name: name.to_string(),
            region,
            offset,
            min,
        });
    }
    match offset.checked_add(len) {
        Some(end) if end <= file_len => Ok(()),
        _ => Err(LoadError::RegionOutOfFile {
            name: name.to_string(),
            region,
            offset,
            len,
            file_len,
        }),
    }
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}
