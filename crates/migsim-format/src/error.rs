//! Errors of the writers and the reader. Each variant's text is the message
//! the user sees; every malformed-input case has its own variant so tests
//! and fuzz harnesses can tell them apart.
//!
//! Names in the variants are the file's bytes, unescaped (the reader gives
//! names back exactly); the texts escape control characters in every name
//! they embed ([`p`]), so an error about a hostile file prints safely.

use crate::caps::CapsError;

/// A name from a file, fit for a terminal: control characters escaped.
fn p(s: &str) -> String {
    crate::wire::printable(s.as_bytes())
}

/// How many bytes of a name that is not UTF-8 an error shows.
pub const NAME_SHOWN: usize = 64;

/// Why a migration file could not be read or loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// I/O failure of the underlying file.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The file ends before a field it must contain.
    #[error(
        "truncated file: {what} needs {needed} bytes at offset {offset:#x}, but the file ends at {file_len:#x}"
    )]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Where.
        offset: u64,
        /// How many bytes.
        needed: u64,
        /// File length.
        file_len: u64,
    },
    /// A libvirt save image whose stream is compressed.
    #[error(
        "libvirt save image with a compressed stream (format {format}: 1 gzip, 2 bzip2, 3 xz, 4 lzop, 5 zstd); decompress it first, migsim reads raw streams"
    )]
    CompressedContainer {
        /// libvirt's format number.
        format: u32,
    },
    /// A libvirt save image without a stream where its header says.
    #[error("libvirt save image: no QEMU stream at offset {offset:#x}, where its header puts it")]
    NoStreamInContainer {
        /// Where the header puts it.
        offset: u64,
    },
    /// Magic is not "QEVM".
    #[error("Not a migration stream: magic {0:#010x}, expected 0x5145564d (\"QEVM\")")]
    BadMagic(u32),
    /// Stream version 2.
    #[error("SaveVM v2 format is obsolete and don't work anymore")]
    ObsoleteVersion,
    /// Stream version other than 3.
    #[error("Unsupported migration stream version {0} (expected 3)")]
    UnsupportedVersion(u32),
    /// No configuration section after the header.
    #[error("Configuration section missing: expected 0x07 at offset 0x8, found {0:#04x}")]
    ConfigurationMissing(u8),
    /// Machine type differs from the destination's.
    #[error("Machine type received is '{}' and local is '{}'", p(.received), p(.local))]
    MachineMismatch {
        /// From the stream.
        received: String,
        /// The destination's.
        local: String,
    },
    /// A configuration subsection this reader does not know.
    #[error("unknown configuration subsection '{}' at offset {:#x}", p(.0), .1)]
    UnknownConfigSubsection(String, u64),
    /// More capabilities listed than the subsection can hold.
    #[error("configuration lists {0} capabilities at offset {1:#x}, more than the file can hold")]
    CapabilityCount(u32, u64),
    /// Capability checks (mismatch, unknown capability). The text is
    /// escaped: an unknown capability's name comes from the file.
    #[error("{}", p(&.0.to_string()))]
    Caps(#[from] CapsError),
    /// A section type byte that is not defined.
    #[error("unknown section type {kind:#04x} at offset {offset:#x}")]
    UnknownSectionType {
        /// The byte.
        kind: u8,
        /// Where.
        offset: u64,
    },
    /// A PART/END for a section id no START announced.
    #[error(
        "unknown section id {id} at offset {offset:#x} (no START or FULL section announced it)"
    )]
    UnknownSectionId {
        /// The id.
        id: u32,
        /// Where.
        offset: u64,
    },
    /// A START that reuses an id.
    #[error("duplicate section id {id} for '{}' at offset {offset:#x}", p(.idstr))]
    DuplicateSectionId {
        /// The id.
        id: u32,
        /// The section's name.
        idstr: String,
        /// Where.
        offset: u64,
    },
    /// No footer where one must be.
    #[error("Missing section footer for {}: found {found:#04x} at offset {offset:#x}", p(.idstr))]
    MissingFooter {
        /// The section's name.
        idstr: String,
        /// The byte found instead of 0x7E.
        found: u8,
        /// Where.
        offset: u64,
    },
    /// Footer names another section.
    #[error("Mismatched section id in footer for {} - read {read:#x} expected {expected:#x}", p(.idstr))]
    FooterMismatch {
        /// The section's name.
        idstr: String,
        /// Id in the footer.
        read: u32,
        /// Id of the section.
        expected: u32,
    },
    /// RAM section version other than 4.
    #[error("ram section version {0} is not supported (expected 4)")]
    RamVersion(u32),
    /// The stream has no RAM section, or a second START for it.
    #[error("unexpected RAM section layout: {0}")]
    RamSection(&'static str),
    /// A block the destination does not have.
    #[error("Unknown ramblock \"{}\", cannot accept migration", p(.0))]
    UnknownBlock(String),
    /// A block whose length differs from the destination's.
    #[error("Size mismatch: {}: {stream:#x} != {local:#x}", p(.name))]
    SizeMismatch {
        /// Block name.
        name: String,
        /// used_length in the stream.
        stream: u64,
        /// The destination block's length.
        local: u64,
    },
    /// used_length not a multiple of the page size, or zero.
    #[error(
        "ramblock {}: used_length {used_length:#x} is not a positive multiple of the page size",
        p(.name)
    )]
    BadUsedLength {
        /// Block name.
        name: String,
        /// The length.
        used_length: u64,
    },
    /// The block list's lengths do not add up to the announced total.
    #[error(
        "block list overruns its announced total: {total:#x} bytes announced, {seen:#x} listed at offset {offset:#x}"
    )]
    BlockListOverrun {
        /// Announced.
        total: u64,
        /// Listed so far.
        seen: u64,
        /// Where.
        offset: u64,
    },
    /// The block list ends before its lengths reach the announced total.
    #[error(
        "block list ends at offset {offset:#x} with {seen:#x} of the {total:#x} bytes its MEM_SIZE total announced"
    )]
    BlockListShort {
        /// Announced.
        total: u64,
        /// Listed.
        seen: u64,
        /// Where the list ended.
        offset: u64,
    },
    /// The same block listed twice.
    #[error("ramblock {} listed twice", p(.0))]
    DuplicateBlock(String),
    /// Fixed-ram header version not supported.
    #[error("Migration fixed-ram capability version not supported (expected <= 1, got {0})")]
    HeaderVersion(u32),
    /// Fixed-ram header page size not the target's.
    #[error("ramblock {}: fixed-ram page size {page_size} is not supported (expected 4096)", p(.name))]
    HeaderPageSize {
        /// Block name.
        name: String,
        /// The page size.
        page_size: u64,
    },
    /// A fixed-ram header with both offsets 0 (an ignored block) in a
    /// stream without x-ignore-shared.
    #[error("ramblock {}: fixed-ram header has bitmap_offset and pages_offset 0, the encoding of a block ignored under x-ignore-shared, but the stream does not list x-ignore-shared", p(.name))]
    IgnoredWithoutCapability {
        /// Block name.
        name: String,
    },
    /// Page area not page-aligned.
    #[error("Error reading ramblock {} pages, region has bad alignment ({pages_offset:#x})", p(.name))]
    PagesMisaligned {
        /// Block name.
        name: String,
        /// The offset.
        pages_offset: u64,
    },
    /// A region of a block (bitmap or page area) lies past the end of the
    /// file or overflows.
    #[error(
        "ramblock {}: {region} at {offset:#x}+{len:#x} lies outside the file (length {file_len:#x})",
        p(.name)
    )]
    RegionOutOfFile {
        /// Block name.
        name: String,
        /// "bitmap" or "page area".
        region: &'static str,
        /// Start.
        offset: u64,
        /// Length.
        len: u64,
        /// File length.
        file_len: u64,
    },
    /// Bitmap or page area overlaps the header or another block's area.
    #[error(
        "ramblock {}: {region} at {offset:#x} overlaps data before it (must start at or after {min:#x})",
        p(.name)
    )]
    RegionOverlap {
        /// Block name.
        name: String,
        /// "bitmap" or "page area".
        region: &'static str,
        /// Start.
        offset: u64,
        /// First allowed offset.
        min: u64,
    },
    /// A page record or other flag that fixed-ram streams never carry.
    #[error(
        "Unexpected RAM flags: {flags} (record at offset {offset:#x}; a fixed-ram stream carries only EOS after the block list)"
    )]
    ForbiddenRamFlags {
        /// The flags, decimal as QEMU prints them.
        flags: u64,
        /// Where.
        offset: u64,
    },
    /// Flag bits this reader does not understand.
    #[error("Unknown combination of migration flags: {flags:#x} at offset {offset:#x}")]
    UnknownRamFlags {
        /// The flags.
        flags: u64,
        /// Where.
        offset: u64,
    },
    /// CONTINUE before any block was named.
    #[error("RAM record at offset {0:#x} continues a block, but no block was named before")]
    ContinueWithoutBlock(u64),
    /// Page offset outside its block.
    #[error("Illegal RAM offset {offset:#x} in ramblock {} (used_length {used_length:#x})", p(.name))]
    IllegalRamOffset {
        /// Block name.
        name: String,
        /// The offset.
        offset: u64,
        /// Block length.
        used_length: u64,
    },
    /// ZERO record whose fill byte is not zero.
    #[error("Found a zero page with value {0}")]
    ZeroPageFill(u8),
    /// A command this reader does not accept.
    #[error("unexpected command {cmd:#06x} (length {len}) at offset {offset:#x}")]
    UnexpectedCommand {
        /// Command number.
        cmd: u16,
        /// Its length.
        len: u16,
        /// Where.
        offset: u64,
    },
    /// A device section that cannot be walked.
    #[error("cannot read device section '{}' at offset {offset:#x}: {}", p(.idstr), p(.why))]
    DeviceSection {
        /// The device.
        idstr: String,
        /// Where.
        offset: u64,
        /// Why.
        why: String,
    },
    /// The stream reaches its EOF byte without the RAM END section: the
    /// save did not complete (a file cut short, or a hole of zeros where
    /// the next section should be, after a power loss).
    #[error("EOF at offset {offset:#x} before the RAM END section: the save did not complete")]
    NoRamEnd {
        /// Offset of the EOF byte.
        offset: u64,
    },
    /// A durable save was asked for ([`crate::LoadOptions::require_durable`])
    /// and the file does not end with its completion mark right after the
    /// vmdesc trailer: the save did not finish, or was cut by a crash
    /// before its last sync (see [`crate::durable`]).
    #[error("no completion mark: the save did not finish durably ({why})")]
    NotDurable {
        /// What is there instead.
        why: String,
    },
    /// [`crate::LoadOptions::require_integrity`] and the file has no
    /// integrity trailer ([`crate::integrity`]) where it must be.
    #[error("no integrity trailer: {why}")]
    NoIntegrity {
        /// What is there instead.
        why: String,
    },
    /// The integrity trailer itself is malformed or damaged.
    #[error("integrity trailer at offset {offset:#x}: {why}")]
    IntegrityTrailer {
        /// Its offset.
        offset: u64,
        /// What is wrong.
        why: String,
    },
    /// A chunk's bytes are not the ones the trailer vouches for: a write
    /// lost or torn, or bits changed, after the save.
    #[error(
        "integrity check failed: chunk {chunk} (bytes {start:#x}..{end:#x}) has CRC-32 {got:#010x}, the trailer says {want:#010x}: the file is not as it was written (a lost or torn write, or damage)"
    )]
    IntegrityMismatch {
        /// Chunk index.
        chunk: u64,
        /// First byte.
        start: u64,
        /// End (exclusive).
        end: u64,
        /// CRC-32 of the bytes read.
        got: u32,
        /// CRC-32 in the trailer.
        want: u32,
    },
    /// Device (FULL) sections, but no vmdesc trailer to walk them with: a
    /// device payload has no length prefix. [`crate::reader::load`] always
    /// refuses such a file (after the RAM before it went to the sink);
    /// [`crate::reader::load_ram`] (inspect, extract) stops there instead,
    /// unless `why` below holds.
    #[error(
        "no vmdesc trailer: device section '{}' at offset {offset:#x} and those after it cannot be walked (QEMU -machine suppress-vmdesc=on): {why}",
        p(.idstr)
    )]
    NoVmdesc {
        /// The first device section's name.
        idstr: String,
        /// Offset of its type byte.
        offset: u64,
        /// Why the reader does not stop there.
        why: &'static str,
    },
    /// A name (idstr, capability, subsection, machine type) that is not
    /// UTF-8. Names come back byte for byte, so one that cannot is refused.
    #[error(
        "{what} at offset {offset:#x} is not valid UTF-8: \"{name}\"{} (non-UTF-8 bytes shown as U+FFFD)",
        if *len > NAME_SHOWN as u64 { format!("... ({len} bytes, the first {NAME_SHOWN} shown)") } else { String::new() }
    )]
    NameNotUtf8 {
        /// Which name.
        what: &'static str,
        /// Offset of its length byte (the machine type: of its be32 length).
        offset: u64,
        /// The name's first [`NAME_SHOWN`] bytes at most, printable
        /// (invalid bytes as U+FFFD, control characters escaped): a hostile
        /// be32 length makes the machine type as long as the file.
        name: String,
        /// The name's length in bytes.
        len: u64,
    },
    /// The stream ended (EOF) without a RAM section.
    #[error("stream has no RAM section")]
    NoRam,
}

/// Why a writer could not write.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// Capability or transport refused.
    #[error("{0}")]
    Caps(#[from] CapsError),
    /// The file could not be written.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A RAMBlock or device definition that cannot be encoded.
    #[error("invalid setup: {0}")]
    Setup(String),
}
