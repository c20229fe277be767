//! The bodies of the cargo-fuzz targets, as plain functions, so stable
//! `cargo test` can replay every corpus and artifact file through them
//! (`tests/fuzz_corpus.rs`) and `cargo +nightly fuzz run <target>` drives
//! them with libFuzzer (`fuzz/fuzz_targets/<target>.rs`).
//!
//! Every target panics only when a property fails; the panic message names
//! the property and shows enough of the input to read the failure.
//!
//! * [`reader`]: arbitrary bytes as a migration file of either layout. The
//!   reader must answer `Ok` or `Err`: never panic, nor hang (libFuzzer's
//!   `-timeout`), nor allocate past libFuzzer's `-malloc_limit_mb`. Beyond
//!   that: [`inspect`](migsim_format::reader::inspect) (which loads into a
//!   [`NullSink`](migsim_format::reader::NullSink) without page data) and
//!   a full load into a sink that accepts every block like `NullSink` but
//!   checks the [`RamSink`] contract (whole pages, inside a declared
//!   block) agree: the same description or the same error; a file that
//!   loads has the layout the README promises (page areas page-aligned,
//!   after their bitmaps, inside the file, blocks in order); a fixed-ram
//!   file loaded into a [`Destination`] (dirty, or zeroed) holds exactly
//!   the file's page where the bitmap bit is set and zeros where it is
//!   clear; a load checked against a destination's machine and fixed-ram
//!   setting only succeeds when the stream lists exactly that setting.
//! * [`caps`] (structure-aware, [`CapsInput`]): a profile (fixed-ram or
//!   mapped-ram) and a sequence of `MigrationConfig::set_capabilities` and
//!   `set_parameters` calls. The checker must agree, call by call, with an
//!   independent table-driven model of both rule sets in this file:
//!   capabilities a profile lacks, incompatible pairs checked in order with
//!   their exact messages (the proposal's four; QEMU 10.0.2's postcopy +
//!   multifd, multifd + xbzrle, mapped-ram + xbzrle, mapped-ram +
//!   postcopy), compression and TLS refused while mapped-ram is on, and
//!   for every transport `check_transport`, `check_migrate` (seekable
//!   transport for the layout, multi-channel transport for multifd without
//!   mapped-ram, then TLS, then compression with mapped-ram) and
//!   `check_incoming_transport`, `direct_io_effective` (mapped-ram +
//!   multifd only); a refused call changes nothing; the load-time
//!   `check_incoming` messages. The final capabilities must not depend on
//!   the order of the settings that succeeded: replayed reversed and
//!   rotated, one call at a time or as one call, they reach the same
//!   state, and every call succeeds.
//! * [`roundtrip`] (structure-aware, [`RoundtripInput`]): a small scenario
//!   (1-3 blocks of 1-64 pages with distinct names, one-page blocks
//!   included; any workload; bandwidth, downtime, up to 6 passes, initial
//!   fill, zeroed or dirty destination) run through both writers. The
//!   verdict must be `pass` (every oracle invariant) and the run digest
//!   must be the same when the scenario is run twice. A failure prints the
//!   failed invariants and the scenario as TOML, ready to save under
//!   `scenarios/regressions/`.
//! * [`fixed_ram_mutate`] (structure-aware, [`MutateInput`]): writes a
//!   VALID small fixed-ram file with [`MigrationWriter`] (with the
//!   writer's 1 MiB-aligned page areas in a sparse in-memory file, or
//!   compacted so page areas are only page-aligned), checks its headers
//!   against a layout computed here from the format and that it restores
//!   what was sent, then applies targeted mutations (header version, page
//!   size, bitmap and page-area offsets of block k, bitmap bits, used_length
//!   with or without the MEM_SIZE total, the total alone, truncation,
//!   extension, overwrites in a page area, the stream tail or anywhere) so
//!   the fuzzer gets past the header checks, then runs every check of
//!   [`reader`] on the result.
//!
//! The `*_bytes` functions build a structure-aware input from raw bytes
//! exactly as `libfuzzer-sys` does (`Arbitrary::arbitrary_take_rest`), so a
//! corpus or crash file replays the same way under `cargo test`.
//! [`seed_corpus`] produces the checked-in seeds (see `fuzz/README.md`).

use std::collections::BTreeMap;
use std::io;

use arbitrary::{Arbitrary, Unstructured};
use serde_json::json;

use crate::run;
use crate::scenario::{Scenario, Verdict};
use crate::sim::dest::{Destination, GARBAGE};
use migsim_format::caps::{
    Capabilities, Capability, MigrationConfig, MultifdCompression, Parameters, Profile, Transport,
};
use migsim_format::io::MigFile;
use migsim_format::reader::{self, LoadOptions, RamSink, StreamInfo};
use migsim_format::writer::{DeviceState, MigrationWriter, RamBlockDesc};
use migsim_format::{Layout, LoadError};

const PAGE: u64 = 4096;
const PAGE_USIZE: usize = PAGE as usize;
const MACHINE: &str = "pc-i440fx-10.0";

/// The destination blocks of the [`reader`] target; the seed files use the
/// same blocks, so the fuzzer starts from files this destination accepts.
pub fn reader_blocks() -> Vec<RamBlockDesc> {
    vec![
        RamBlockDesc {
            name: "pc.ram".into(),
            used_length: 4 * PAGE,
        },
        RamBlockDesc {
            name: "vga.vram".into(),
            used_length: PAGE,
        },
    ]
}

// ---------------------------------------------------------------------------
// Target: reader

/// Arbitrary bytes as a migration file (see the module docs).
pub fn reader(data: &[u8]) {
    let file: Vec<u8> = data.to_vec();
    check_file(&file, &reader_blocks());
}

/// Every reader check on one file, with `local` as the destination's
/// blocks.
fn check_file<F: MigFile + ?Sized>(file: &F, local: &[RamBlockDesc]) {
    let inspected = reader::inspect(file);
    if let Ok(info) = &inspected {
        check_layout(file, info);
    }
    let mut contract = ContractSink::default();
    let loaded = reader::load(file, &LoadOptions::default(), &mut contract);
    same_outcome(&inspected, &loaded);

    // A dirty destination proves the reader zeroes what the file says is
    // zero; the checked loads below use a zeroed one.
    {
        let mut dest = Destination::new(local, true);
        if let Ok(info) = reader::load(file, &LoadOptions::default(), &mut dest) {
            assert!(
                loaded.is_ok(),
                "a destination accepted a file that a sink accepting every block refused: {:?}",
                loaded.err()
            );
            check_restored(file, &info, &dest, local);
        }
    }

    for fixed in [false, true] {
        let enabled: &[Capability] = if fixed { &[Capability::FixedRam] } else { &[] };
        let caps = Capabilities::from_enabled(enabled).expect("fixed-ram alone is valid");
        let opts = LoadOptions {
            machine: Some(MACHINE.into()),
            caps: Some(caps),
            ..LoadOptions::default()
        };
        let mut dest = Destination::new(local, false);
        if let Ok(info) = reader::load(file, &opts, &mut dest) {
            // The only validated capability is fixed-ram: the stream may
            // list it (even twice) exactly when the destination has it.
            let listed = !info.capabilities.is_empty();
            assert!(
                info.capabilities.iter().all(|c| c == "fixed-ram") && listed == fixed,
                "a destination with fixed-ram {} accepted a stream listing {:?}",
                on_off(fixed),
                info.capabilities
            );
            assert_eq!(
                info.machine, MACHINE,
                "machine check let another machine in"
            );
            check_restored(file, &info, &dest, local);
        }
    }
}

/// `inspect` (no page data) and a full load into an accepting sink must
/// describe the file the same way, or fail with the same error.
fn same_outcome(inspected: &Result<StreamInfo, LoadError>, loaded: &Result<StreamInfo, LoadError>) {
    match (inspected, loaded) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "inspect and load describe the file differently"),
        (Err(a), Err(b)) => assert_eq!(
            a.to_string(),
            b.to_string(),
            "inspect and load fail differently"
        ),
        (a, b) => panic!(
            "inspect and load disagree: inspect {:?}, load {:?}",
            a.as_ref().map(|i| i.layout),
            b.as_ref().map(|i| i.layout)
        ),
    }
}

/// What the README promises about a file the reader accepted.
fn check_layout<F: MigFile + ?Sized>(file: &F, info: &StreamInfo) {
    let len = file.len();
    assert_eq!(info.file_len, len, "file_len");
    assert!(
        info.eof_offset < len,
        "EOF byte at {:#x} past the file",
        info.eof_offset
    );
    let mut end = 0u64;
    for s in &info.sections {
        assert!(
            s.offset >= end,
            "section at {:#x} overlaps the one before",
            s.offset
        );
        end = s.offset + s.len;
    }
    assert!(end <= info.eof_offset, "sections run past the EOF byte");
    let fixed = info.layout == migsim_format::Layout::FixedRam;
    let mut next_free = 0u64;
    for b in &info.blocks {
        assert!(
            b.used_length > 0 && b.used_length.is_multiple_of(PAGE),
            "block {} used_length {:#x}",
            b.name,
            b.used_length
        );
        assert_eq!(b.pages, b.used_length / PAGE, "block {} page count", b.name);
        let Some(fr) = &b.fixed_ram else {
            assert!(
                !fixed,
                "fixed-ram stream, but block {} has no header",
                b.name
            );
            continue;
        };
        assert!(
            fixed,
            "sequential stream, but block {} has a header",
            b.name
        );
        let bitmap_len = b.pages.div_ceil(64) * 8;
        let story = format!("block {} layout {fr:?} in a file of {len:#x} bytes", b.name);
        assert!(
            fr.header_offset >= next_free,
            "{story}: header overlaps the block before"
        );
        assert!(
            fr.version <= 1 && fr.page_size == PAGE,
            "{story}: header fields"
        );
        assert_eq!(fr.bitmap_len, bitmap_len, "{story}: bitmap length");
        assert!(
            fr.bitmap_offset >= fr.header_offset + 28,
            "{story}: bitmap overlaps header"
        );
        assert!(
            fr.pages_offset.is_multiple_of(PAGE),
            "{story}: page area not page-aligned"
        );
        assert!(
            fr.pages_offset >= fr.bitmap_offset + bitmap_len,
            "{story}: page area overlaps bitmap"
        );
        assert!(
            fr.pages_offset + b.used_length <= len,
            "{story}: page area past the end"
        );
        assert!(
            b.pages_present <= b.pages,
            "{story}: more pages present than pages"
        );
        next_free = fr.pages_offset + b.used_length;
    }
}

/// A fixed-ram file that loaded into `dest`: every page of every block
/// must be the file's page where its bitmap bit (read here, LSB first) is
/// set, and zero where it is clear, whatever the destination held before.
fn check_restored<F: MigFile + ?Sized>(
    file: &F,
    info: &StreamInfo,
    dest: &Destination,
    local: &[RamBlockDesc],
) {
    check_layout(file, info);
    if info.layout != migsim_format::Layout::FixedRam {
        return;
    }
    let zero = [0u8; PAGE_USIZE];
    let mut want = vec![0u8; PAGE_USIZE];
    for b in &info.blocks {
        let fr = b.fixed_ram.as_ref().expect("checked by check_layout");
        let li = local
            .iter()
            .position(|l| l.name == b.name)
            .unwrap_or_else(|| panic!("destination accepted unknown block {}", b.name));
        assert_eq!(
            local[li].used_length, b.used_length,
            "used_length of {}",
            b.name
        );
        let mut bitmap = vec![0u8; fr.bitmap_len as usize];
        read_exact(file, fr.bitmap_offset, &mut bitmap);
        let mut set = 0;
        for p in 0..b.pages {
            let bit = bitmap[(p / 8) as usize] >> (p % 8) & 1 == 1;
            let expected: &[u8] = if bit {
                set += 1;
                read_exact(file, fr.pages_offset + p * PAGE, &mut want);
                &want
            } else {
                &zero
            };
            let got = dest.page(li, p);
            if got != expected {
                let first = got.iter().zip(expected).position(|(a, b)| a != b);
                panic!(
                    "fixed-ram restore of {} page {p:#x} (bitmap bit {}) is wrong: first \
                     difference at byte {first:?}, restored {:#04x?}, expected {:#04x?} \
                     (garbage is {GARBAGE:#04x})",
                    b.name,
                    u8::from(bit),
                    &got[..16],
                    &expected[..16]
                );
            }
        }
        assert_eq!(b.pages_present, set, "pages_present of {}", b.name);
    }
}

fn read_exact<F: MigFile + ?Sized>(file: &F, offset: u64, buf: &mut [u8]) {
    let n = file.read_at(offset, buf).expect("in-memory read");
    assert_eq!(
        n,
        buf.len(),
        "short read at {offset:#x} inside a region the reader accepted"
    );
}

/// A sink that accepts every block and checks the reader keeps the
/// [`RamSink`] contract: whole pages, inside a declared block.
#[derive(Default)]
struct ContractSink {
    /// Pages of each declared block.
    pages: Vec<u64>,
}

impl ContractSink {
    fn check(&self, what: &str, block: usize, first: u64, count: u64) {
        let Some(&pages) = self.pages.get(block) else {
            panic!(
                "reader broke the RamSink contract: {what} for block {block}, but only {} declared",
                self.pages.len()
            );
        };
        assert!(
            first.checked_add(count).is_some_and(|end| end <= pages),
            "reader broke the RamSink contract: {what} pages {first:#x}+{count:#x} outside block \
             {block} of {pages:#x} pages"
        );
    }
}

impl RamSink for ContractSink {
    fn declare_block(&mut self, name: &str, used_length: u64) -> Result<(), LoadError> {
        assert!(
            !name.is_empty(),
            "reader declared a block with an empty name"
        );
        assert!(
            used_length > 0 && used_length.is_multiple_of(PAGE),
            "reader declared block {name} with used_length {used_length:#x}"
        );
        self.pages.push(used_length / PAGE);
        Ok(())
    }
    fn write_pages(&mut self, block: usize, first: u64, data: &[u8]) -> Result<(), LoadError> {
        assert!(
            data.len().is_multiple_of(PAGE_USIZE),
            "reader broke the RamSink contract: write_pages of {} bytes",
            data.len()
        );
        self.check(
            "write_pages",
            block,
            first,
            (data.len() / PAGE_USIZE) as u64,
        );
        Ok(())
    }
    fn zero_pages(&mut self, block: usize, first: u64, count: u64) -> Result<(), LoadError> {
        self.check("zero_pages", block, first, count);
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Target: caps

/// Input of the [`caps`] target.
#[derive(Clone, Debug, Arbitrary)]
pub struct CapsInput {
    /// The rule set, mapped by [`profile_of`]: even is fixed-ram, odd is
    /// mapped-ram.
    pub profile: u8,
    /// Rotation used when replaying the successful settings.
    pub rotate: u8,
    /// Names a stream's configuration section lists, for `check_incoming`.
    pub received: Vec<ReceivedName>,
    /// `migrate-set-capabilities` and `migrate-set-parameters` calls, in
    /// order.
    pub steps: Vec<CapsStep>,
}

/// One call of the [`caps`] target.
#[derive(Clone, Debug, Arbitrary)]
pub enum CapsStep {
    /// `MigrationConfig::set_capabilities`: (capability, on) pairs, the
    /// capability mapped by [`capability_of`].
    Capabilities(Vec<(u8, bool)>),
    /// `MigrationConfig::set_parameters`.
    Parameters {
        /// multifd-compression: none, zlib, zstd (by the byte mod 3).
        compression: u8,
        /// tls-creds set (`"tls0"`) or empty.
        tls: bool,
        /// direct-io.
        direct_io: bool,
    },
}

/// A capability name received in a stream.
#[derive(Clone, Debug, Arbitrary)]
pub enum ReceivedName {
    /// One of a table of interesting names.
    Known(u8),
    /// Anything.
    Raw(String),
}

// The model's tables, written from the rules as stated, not from `caps.rs`:
// the fixed-ram proposal (DESIGN.md section 8) and QEMU 10.0.2's mapped-ram
// rules (reference doc section 5 and what QEMU answered in
// tests/data/qemu/caps/, whose README summarises it).

/// The model's capabilities, by index.
const MODEL_NAMES: [&str; 6] = [
    "fixed-ram",
    "multifd",
    "xbzrle",
    "compress",
    "postcopy-ram",
    "mapped-ram",
];
const FIXED_RAM: usize = 0;
const MULTIFD: usize = 1;
const XBZRLE: usize = 2;
const POSTCOPY: usize = 4;
const MAPPED_RAM: usize = 5;
/// QAPI enum order: xbzrle, compress, postcopy-ram, multifd, then fixed-ram
/// (never shipped) and mapped-ram (QEMU's last capability).
const QAPI_ORDER: [usize; 6] = [2, 3, 4, 1, 0, 5];

/// The two rule sets of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ModelProfile {
    FixedRam,
    MappedRam,
}

impl ModelProfile {
    fn name(self) -> &'static str {
        match self {
            ModelProfile::FixedRam => "fixed-ram",
            ModelProfile::MappedRam => "mapped-ram",
        }
    }

    /// The layout capability: the only validated one (listed in the
    /// stream, compared on load).
    fn layout(self) -> usize {
        match self {
            ModelProfile::FixedRam => FIXED_RAM,
            ModelProfile::MappedRam => MAPPED_RAM,
        }
    }

    /// Capabilities that exist under the profile: the proposal predates
    /// mapped-ram; QEMU 10 has no fixed-ram and no compress (removed in
    /// 9.1).
    fn has(self, i: usize) -> bool {
        match self {
            ModelProfile::FixedRam => i != MAPPED_RAM,
            ModelProfile::MappedRam => i != FIXED_RAM && i != 3,
        }
    }

    /// Conflicting pairs, checked in this order; the first pair fully on
    /// is refused with its message.
    fn conflicts(self) -> &'static [(usize, usize, &'static str)] {
        match self {
            // With fixed-ram on, each of these is refused.
            ModelProfile::FixedRam => &[
                (0, 1, "Fixed-ram migration is incompatible with multifd"),
                (0, 2, "Fixed-ram migration is incompatible with xbzrle"),
                (0, 3, "Fixed-ram migration is incompatible with compression"),
                (
                    0,
                    4,
                    "Fixed-ram migration is incompatible with postcopy ram",
                ),
            ],
            // QEMU checks the resulting set in this fixed order, whatever
            // order the call lists the capabilities in.
            ModelProfile::MappedRam => &[
                (
                    POSTCOPY,
                    MULTIFD,
                    "Postcopy is not yet compatible with multifd",
                ),
                (MULTIFD, XBZRLE, "Multifd is not compatible with xbzrle"),
                (
                    MAPPED_RAM,
                    XBZRLE,
                    "Mapped-ram migration is incompatible with xbzrle",
                ),
                (
                    MAPPED_RAM,
                    POSTCOPY,
                    "Mapped-ram migration is incompatible with postcopy",
                ),
            ],
        }
    }
}

/// Transports: (transport, seekable, several channels possible).
const TRANSPORTS: [(Transport, bool, bool); 5] = [
    (Transport::File, true, false),
    (Transport::Tcp, false, true),
    (Transport::Unix, false, true),
    (Transport::Exec, false, false),
    (Transport::Fd, false, false),
];
const NEEDS_SEEKABLE: &str = "Migration requires seekable transport (e.g. file)";
const NEEDS_MULTI_CHANNEL: &str = "Migration requires multi-channel URIs (e.g. tcp)";
const MAPPED_RAM_PARAMETERS: &str =
    "Mapped-ram only available for non-compressed non-TLS multifd migration";
const TLS_WITH_MAPPED_RAM: &str = "Cannot use TLS with mapped-ram";
const COMPRESSION_WITH_MAPPED_RAM: &str = "Cannot use compression with mapped-ram";
/// Names tried as received capabilities.
const RECEIVED_NAMES: [&str; 14] = [
    "fixed-ram",
    "mapped-ram",
    "multifd",
    "xbzrle",
    "compress",
    "postcopy-ram",
    "x-ignore-shared",
    "validate-uuid",
    "",
    "FIXED-RAM",
    "fixed-ram\0",
    "fixed_ram",
    "Mapped-ram",
    "mapped-ram ",
];

/// Map a byte to (model index, capability).
pub fn capability_of(b: u8) -> (usize, Capability) {
    let i = usize::from(b % 6);
    let cap = match i {
        0 => Capability::FixedRam,
        1 => Capability::Multifd,
        2 => Capability::Xbzrle,
        3 => Capability::Compress,
        4 => Capability::PostcopyRam,
        _ => Capability::MappedRam,
    };
    (i, cap)
}

/// Map a byte to the checker's profile.
pub fn profile_of(b: u8) -> Profile {
    if b.is_multiple_of(2) {
        Profile::FixedRam
    } else {
        Profile::MappedRam
    }
}

fn on_off(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

/// The model's parameters: compression index (0 = none), TLS, direct-io.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct ModelParams {
    compression: u8,
    tls: bool,
    direct_io: bool,
}

/// The independent model of the capability rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Model {
    profile: ModelProfile,
    on: [bool; 6],
    params: ModelParams,
}

impl Model {
    fn new(profile: ModelProfile) -> Self {
        Self {
            profile,
            on: [false; 6],
            params: ModelParams::default(),
        }
    }

    /// `migrate-set-capabilities`: the resulting set is checked as a whole
    /// (a capability the profile lacks may not be on, then the conflicts in
    /// order); a refused call changes nothing. Parameters play no part.
    fn set(&mut self, settings: &[(usize, bool)]) -> Result<(), String> {
        let mut next = self.on;
        for &(i, on) in settings {
            next[i] = on;
        }
        if let Some(&i) = QAPI_ORDER
            .iter()
            .find(|&&i| next[i] && !self.profile.has(i))
        {
            return Err(format!(
                "Capability {} does not exist in the {} profile",
                MODEL_NAMES[i],
                self.profile.name()
            ));
        }
        for &(a, b, message) in self.profile.conflicts() {
            if next[a] && next[b] {
                return Err(message.to_string());
            }
        }
        self.on = next;
        Ok(())
    }

    /// `migrate-set-parameters`. mapped-ram: while it is on, compression
    /// and TLS are refused. QEMU 10.0.2 checks the values already stored
    /// instead (named divergence `qemu-checks-current-parameters`); migsim
    /// checks the new ones. The proposal has no parameter rule.
    fn set_params(&mut self, p: ModelParams) -> Result<(), String> {
        if self.profile == ModelProfile::MappedRam
            && self.on[MAPPED_RAM]
            && (p.compression != 0 || p.tls)
        {
            return Err(MAPPED_RAM_PARAMETERS.to_string());
        }
        self.params = p;
        Ok(())
    }

    /// The transport rules of `migrate` and `migrate-incoming`: the layout
    /// needs a seekable transport; (mapped-ram) multifd without mapped-ram
    /// needs one with several channels.
    fn transport(&self, seekable: bool, multi_channel: bool) -> Result<(), String> {
        let layout = self.on[self.profile.layout()];
        if layout && !seekable {
            return Err(NEEDS_SEEKABLE.to_string());
        }
        if self.profile == ModelProfile::MappedRam && self.on[MULTIFD] && !layout && !multi_channel
        {
            return Err(NEEDS_MULTI_CHANNEL.to_string());
        }
        Ok(())
    }

    /// `migrate`: the transport first, then (mapped-ram on) TLS, then
    /// compression, in the order QEMU's `migrate_prepare` checks them.
    fn migrate(&self, seekable: bool, multi_channel: bool) -> Result<(), String> {
        self.transport(seekable, multi_channel)?;
        if self.profile == ModelProfile::MappedRam && self.on[MAPPED_RAM] {
            if self.params.tls {
                return Err(TLS_WITH_MAPPED_RAM.to_string());
            }
            if self.params.compression != 0 {
                return Err(COMPRESSION_WITH_MAPPED_RAM.to_string());
            }
        }
        Ok(())
    }

    /// direct-io is only used by mapped-ram's multifd channels.
    fn direct_io_effective(&self) -> bool {
        self.params.direct_io && self.on[MAPPED_RAM] && self.on[MULTIFD]
    }

    fn enabled(&self) -> Vec<&'static str> {
        QAPI_ORDER
            .iter()
            .filter(|&&i| self.on[i])
            .map(|&i| MODEL_NAMES[i])
            .collect()
    }

    /// Load time: every received name must be the profile's layout
    /// capability, and its setting must equal the destination's.
    fn incoming(&self, received: &[String]) -> Result<(), String> {
        let layout = self.profile.layout();
        let mut got = false;
        for name in received {
            if name == MODEL_NAMES[layout] {
                got = true;
            } else {
                return Err(format!("Received unknown capability {name}"));
            }
        }
        if self.on[layout] != got {
            return Err(format!(
                "Capability {} is {}, but received capability is {}",
                MODEL_NAMES[layout],
                on_off(self.on[layout]),
                on_off(got)
            ));
        }
        Ok(())
    }
}

fn err_text<E: std::fmt::Display>(r: Result<(), E>) -> Result<(), String> {
    r.map_err(|e| e.to_string())
}

fn model_profile(p: Profile) -> ModelProfile {
    match p {
        Profile::FixedRam => ModelProfile::FixedRam,
        Profile::MappedRam => ModelProfile::MappedRam,
    }
}

fn parameters_of(compression: u8, tls: bool, direct_io: bool) -> (Parameters, ModelParams) {
    let c = compression % 3;
    let real = Parameters {
        multifd_compression: match c {
            0 => MultifdCompression::None,
            1 => MultifdCompression::Zlib,
            _ => MultifdCompression::Zstd,
        },
        direct_io,
        tls_creds: if tls { "tls0".into() } else { String::new() },
    };
    (
        real,
        ModelParams {
            compression: c,
            tls,
            direct_io,
        },
    )
}

/// The checker's capabilities must be the model's, seen through every
/// accessor.
fn agree(real: &Capabilities, model: &Model, context: &dyn Fn() -> String) {
    assert_eq!(
        model_profile(real.profile()),
        model.profile,
        "profile(), {}",
        context()
    );
    for b in 0..6u8 {
        let (i, cap) = capability_of(b);
        assert_eq!(
            real.has(cap),
            model.on[i],
            "{cap}: checker vs model, {}",
            context()
        );
    }
    let enabled: Vec<&str> = real.enabled().into_iter().map(Capability::name).collect();
    assert_eq!(enabled, model.enabled(), "enabled(), {}", context());
    let layout = model.profile.layout();
    let validated: Vec<&str> = if model.on[layout] {
        vec![MODEL_NAMES[layout]]
    } else {
        Vec::new()
    };
    assert_eq!(
        real.validated_names(),
        validated,
        "validated_names(), {}",
        context()
    );
    assert_eq!(
        real.fixed_layout(),
        model.on[layout],
        "fixed_layout(), {}",
        context()
    );
    for (t, seekable, multi) in TRANSPORTS {
        assert_eq!(
            err_text(real.check_transport(t)),
            model.transport(seekable, multi),
            "check_transport({t:?}), {}",
            context()
        );
    }
}

/// The whole configuration must be the model's: capabilities, parameters,
/// and every decision taken from them.
fn agree_config(real: &MigrationConfig, model: &Model, context: &dyn Fn() -> String) {
    agree(&real.caps, model, context);
    let (params, _) = parameters_of(
        model.params.compression,
        model.params.tls,
        model.params.direct_io,
    );
    assert_eq!(real.params, params, "parameters, {}", context());
    for (t, seekable, multi) in TRANSPORTS {
        assert_eq!(
            err_text(real.check_migrate(t)),
            model.migrate(seekable, multi),
            "check_migrate({t:?}), {}",
            context()
        );
        assert_eq!(
            err_text(real.check_incoming_transport(t)),
            model.transport(seekable, multi),
            "check_incoming_transport({t:?}), {}",
            context()
        );
    }
    assert_eq!(
        real.direct_io_effective(),
        model.direct_io_effective(),
        "direct_io_effective(), {}",
        context()
    );
}

/// Structure-aware capability checker target (see the module docs).
pub fn caps(input: CapsInput) {
    let profile = profile_of(input.profile);
    let mprofile = model_profile(profile);
    let steps: Vec<&CapsStep> = input.steps.iter().take(32).collect();

    let mut real = MigrationConfig::new(profile);
    let mut model = Model::new(mprofile);
    let mut succeeded: Vec<Vec<(usize, Capability, bool)>> = Vec::new();
    for (n, step) in steps.iter().enumerate() {
        let before = real.clone();
        let context = || format!("after step {n} {step:?} of {steps:?} ({profile:?} profile)");
        let refused = match step {
            CapsStep::Capabilities(pairs) => {
                let step: Vec<(usize, Capability, bool)> = pairs
                    .iter()
                    .take(8)
                    .map(|&(b, on)| {
                        let (i, cap) = capability_of(b);
                        (i, cap, on)
                    })
                    .collect();
                let settings: Vec<(Capability, bool)> =
                    step.iter().map(|&(_, c, on)| (c, on)).collect();
                let got = err_text(real.set_capabilities(&settings));
                let want = model.set(&step.iter().map(|&(i, _, on)| (i, on)).collect::<Vec<_>>());
                assert_eq!(
                    got,
                    want,
                    "set_capabilities(): checker vs model, {}",
                    context()
                );
                // Building the same enabled set in one go.
                let on: Vec<Capability> = step.iter().filter(|s| s.2).map(|s| s.1).collect();
                let mut m = Model::new(mprofile);
                let one_go = m.set(
                    &step
                        .iter()
                        .filter(|s| s.2)
                        .map(|s| (s.0, true))
                        .collect::<Vec<_>>(),
                );
                match Capabilities::from_enabled_in(profile, &on) {
                    Ok(c) => {
                        assert_eq!(
                            Ok(()),
                            one_go,
                            "from_enabled_in({profile:?}, {on:?}) accepted"
                        );
                        agree(&c, &m, &|| format!("from_enabled_in({profile:?}, {on:?})"));
                    }
                    Err(e) => assert_eq!(
                        Err(e.to_string()),
                        one_go,
                        "from_enabled_in({profile:?}, {on:?})"
                    ),
                }
                if got.is_ok() {
                    succeeded.push(step);
                }
                got.is_err()
            }
            CapsStep::Parameters {
                compression,
                tls,
                direct_io,
            } => {
                let (p, mp) = parameters_of(*compression, *tls, *direct_io);
                let got = err_text(real.set_parameters(p));
                let want = model.set_params(mp);
                assert_eq!(
                    got,
                    want,
                    "set_parameters(): checker vs model, {}",
                    context()
                );
                got.is_err()
            }
        };
        if refused {
            assert_eq!(
                real,
                before,
                "a refused call changed the state, {}",
                context()
            );
        }
        agree_config(&real, &model, &context);
    }

    order_independence(profile, &real.caps, &succeeded, input.rotate);

    // Load-time check of the stream's listed capabilities.
    let names: Vec<String> = input
        .received
        .iter()
        .take(8)
        .map(|r| match r {
            ReceivedName::Known(i) => RECEIVED_NAMES[usize::from(*i) % RECEIVED_NAMES.len()].into(),
            ReceivedName::Raw(s) => s.chars().take(64).collect(),
        })
        .collect();
    let layout = profile.layout_capability();
    let layout_only = Capabilities::from_enabled_in(profile, &[layout]).expect("valid");
    let mut layout_model = Model::new(mprofile);
    layout_model.on[mprofile.layout()] = true;
    let layout_name = vec![layout.name().to_string()];
    let other_name = vec![match profile {
        Profile::FixedRam => "mapped-ram".to_string(),
        Profile::MappedRam => "fixed-ram".to_string(),
    }];
    for (local, m) in [
        (real.caps, model),
        (Capabilities::for_profile(profile), Model::new(mprofile)),
        (layout_only, layout_model),
    ] {
        for received in [&names[..], &layout_name, &other_name, &[]] {
            assert_eq!(
                err_text(local.check_incoming(received)),
                m.incoming(received),
                "check_incoming({received:?}) with local {:?} ({profile:?} profile)",
                m.enabled()
            );
        }
    }
}

/// The settings that succeeded, keeping per capability only the value it
/// ended with, reach the same state in any order: a call-by-call replay
/// reversed and rotated (every call must succeed: each intermediate state
/// only has capabilities on that are on at the end, and under both
/// profiles a subset of a valid set is valid) and one call with all of
/// them. Parameters do not take part in capability checks.
fn order_independence(
    profile: Profile,
    final_state: &Capabilities,
    succeeded: &[Vec<(usize, Capability, bool)>],
    rotate: u8,
) {
    let mut last: BTreeMap<usize, bool> = BTreeMap::new();
    for step in succeeded {
        for &(i, _, on) in step.iter() {
            last.insert(i, on);
        }
    }
    let calls: Vec<Vec<(Capability, bool)>> = succeeded
        .iter()
        .map(|step| {
            step.iter()
                .filter(|&&(i, _, on)| last[&i] == on)
                .map(|&(_, c, on)| (c, on))
                .collect()
        })
        .collect();
    let mut orders: Vec<Vec<&Vec<(Capability, bool)>>> = vec![calls.iter().rev().collect()];
    if !calls.is_empty() {
        let k = usize::from(rotate) % calls.len();
        orders.push(calls[k..].iter().chain(&calls[..k]).collect());
    }
    for order in orders {
        let mut c = Capabilities::for_profile(profile);
        for call in &order {
            let mut reversed = (*call).clone();
            reversed.reverse();
            if let Err(e) = c.set(&reversed) {
                panic!(
                    "replaying successful settings in another order refused {reversed:?}: {e} (order {order:?}, {profile:?} profile)"
                );
            }
        }
        assert_eq!(
            c, *final_state,
            "the final state depends on the order {order:?} ({profile:?} profile)"
        );
    }
    let all: Vec<(Capability, bool)> = calls.iter().rev().flatten().copied().collect();
    let mut c = Capabilities::for_profile(profile);
    c.set(&all).unwrap_or_else(|e| {
        panic!("all successful settings in one call {all:?}: {e} ({profile:?} profile)")
    });
    assert_eq!(
        c, *final_state,
        "all successful settings in one call {all:?} ({profile:?} profile)"
    );
}

/// The input libfuzzer-sys's typed `fuzz_target!` would build from `data`
/// (`None` where it skips the input: shorter than the type's size hint, or
/// `arbitrary_take_rest` fails).
fn typed_input<'a, T: Arbitrary<'a>>(data: &'a [u8]) -> Option<T> {
    if data.len() < T::size_hint(0).0 {
        return None;
    }
    T::arbitrary_take_rest(Unstructured::new(data)).ok()
}

/// [`caps`] from raw bytes, as libFuzzer's typed target builds its input.
pub fn caps_bytes(data: &[u8]) {
    if let Some(input) = typed_input::<CapsInput>(data) {
        caps(input);
    }
}

// ---------------------------------------------------------------------------
// Target: roundtrip

/// Input of the [`roundtrip`] target: everything is reduced into range.
#[derive(Clone, Debug, Arbitrary)]
pub struct RoundtripInput {
    /// Scenario seed.
    pub seed: u64,
    /// (name choice, pages - 1), at most 3 blocks; empty means one block.
    pub blocks: Vec<(u8, u8)>,
    /// Make the last block a single page.
    pub one_page_block: bool,
    /// Workload kind: idle, uniform, hot-set, sweep.
    pub workload: u8,
    /// Pages written per tick.
    pub writes_per_tick: u8,
    /// Hot-set fraction, /255.
    pub hot_fraction: u8,
    /// Hot-set share, /255.
    pub hot_share: u8,
    /// Share of zero writes, /255.
    pub zero_share: u8,
    /// Pages sent per tick.
    pub bandwidth: u8,
    /// Downtime budget in ticks.
    pub downtime_ticks: u8,
    /// Forced switchover after this many passes (1..=6).
    pub max_passes: u8,
    /// Share of pages written before migration, /255.
    pub initial_fill: u8,
    /// Destination memory starts as garbage.
    pub dirty_destination: bool,
}

fn block_names() -> Vec<String> {
    let mut names: Vec<String> = [
        "pc.ram",
        "vga.vram",
        "pc.bios",
        "pc.rom",
        "/rom@etc/acpi/tables",
        "/rom@etc/table-loader",
        "ram",
        "x",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    names.push("n".repeat(255));
    names
}

impl RoundtripInput {
    /// The scenario this input describes (always a valid one).
    pub fn scenario(&self) -> Scenario {
        let names = block_names();
        let mut used = vec![false; names.len()];
        let mut blocks = Vec::new();
        let specs: Vec<(u8, u8)> = if self.blocks.is_empty() {
            vec![(0, 15)]
        } else {
            self.blocks.iter().take(3).copied().collect()
        };
        for (n, &(choice, pages)) in specs.iter().enumerate() {
            let mut i = usize::from(choice) % names.len();
            while used[i] {
                i = (i + 1) % names.len();
            }
            used[i] = true;
            let mut pages = 1 + u64::from(pages % 64);
            if self.one_page_block && n + 1 == specs.len() {
                pages = 1;
            }
            blocks.push(json!({ "name": names[i], "size": pages * PAGE }));
        }
        let ratio = |b: u8| f64::from(b) / 255.0;
        let kind = ["idle", "uniform", "hot-set", "sweep"][usize::from(self.workload % 4)];
        let writes = if kind == "idle" {
            0
        } else {
            1 + u64::from(self.writes_per_tick % 64)
        };
        let value = json!({
            "name": "fuzz-roundtrip",
            "description": "built by the roundtrip fuzz target",
            "seed": self.seed,
            "guest": {
                "machine": MACHINE,
                "blocks": blocks,
                "initial_fill": ratio(self.initial_fill),
            },
            "workload": {
                "kind": kind,
                "writes_per_tick": writes,
                "hot_fraction": ratio(self.hot_fraction),
                "hot_share": ratio(self.hot_share),
                "zero_share": ratio(self.zero_share),
            },
            "parameters": {
                "bandwidth": 1 + u64::from(self.bandwidth % 128),
                "downtime_ticks": u64::from(self.downtime_ticks % 4),
                "max_passes": 1 + u32::from(self.max_passes % 6),
            },
            "destination": { "dirty_memory": self.dirty_destination },
        });
        let s: Scenario = serde_json::from_value(value)
            .unwrap_or_else(|e| panic!("fuzz harness built a scenario that does not parse: {e}"));
        if let Err(e) = s.validate() {
            panic!(
                "fuzz harness built an invalid scenario: {e}\n{}",
                scenario_toml(&s)
            );
        }
        s
    }
}

fn scenario_toml(s: &Scenario) -> String {
    toml::to_string(s).unwrap_or_else(|e| format!("(scenario does not serialize: {e})\n{s:#?}"))
}

/// Structure-aware round-trip target (see the module docs).
pub fn roundtrip(input: RoundtripInput) {
    let s = input.scenario();
    let r = run::run(&s, &run::RunOptions::default());
    let failed: Vec<String> = r
        .invariants
        .iter()
        .filter(|i| !i.ok)
        .map(|i| format!("  {} [{}]: {}", i.name, i.writer, i.detail))
        .collect();
    let writers: Vec<Layout> = r.files.iter().map(|f| f.writer).collect();
    let held = r.invariants.iter().filter(|i| i.ok).count();
    if r.verdict != Verdict::Pass || !failed.is_empty() || writers != Layout::ALL || held == 0 {
        panic!(
            "roundtrip verdict {} (error {:?}; writers {writers:?}; {held} invariants held), \
             failed invariants:\n{}\nscenario (save as scenarios/regressions/NAME.toml):\n{}",
            r.verdict.name(),
            r.error,
            failed.join("\n"),
            scenario_toml(&s)
        );
    }
    let again = run::run(&s, &run::RunOptions::default());
    assert_eq!(
        r.digest,
        again.digest,
        "the same scenario gave two digests:\n{}",
        scenario_toml(&s)
    );
}

/// [`roundtrip`] from raw bytes, as libFuzzer's typed target builds its
/// input.
pub fn roundtrip_bytes(data: &[u8]) {
    if let Some(input) = typed_input::<RoundtripInput>(data) {
        roundtrip(input);
    }
}

// ---------------------------------------------------------------------------
// Target: fixed_ram_mutate

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
#[derive(Clone, Debug, Arbitrary)]
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
#[derive(Clone, Copy, Debug, Arbitrary)]
pub enum Value32 {
    /// This value.
    Exact(u32),
    /// One of 0, 1, 2, 0xffff_ffff, 0x8000_0000.
    Special(u8),
}

/// A hostile 64-bit value, relative to the field's valid value and the
/// file's layout.
#[derive(Clone, Copy, Debug, Arbitrary)]
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
struct Ctx {
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

/// A sparse in-memory file (4 KiB chunks; holes read as zeros) that can
/// be truncated and extended: a 1 MiB-aligned fixed-ram file costs only
/// the chunks written.
#[derive(Clone, Debug, Default)]
struct SparseFile {
    len: u64,
    chunks: BTreeMap<u64, Box<[u8; PAGE_USIZE]>>,
}

impl SparseFile {
    fn set_len(&mut self, len: u64) {
        if len < self.len {
            let keep = len.div_ceil(PAGE);
            self.chunks.split_off(&keep);
            if let Some(c) = self.chunks.get_mut(&(len / PAGE)) {
                c[(len % PAGE) as usize..].fill(0);
            }
        }
        self.len = len;
    }

    fn to_vec(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.len as usize];
        let n = out.len();
        read_exact(self, 0, &mut out[..n]);
        out
    }
}

impl MigFile for SparseFile {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "write past 2^64"))?;
        let mut done = 0usize;
        while done < data.len() {
            let pos = offset + done as u64;
            let (ci, co) = (pos / PAGE, (pos % PAGE) as usize);
            let n = (PAGE_USIZE - co).min(data.len() - done);
            let chunk = self
                .chunks
                .entry(ci)
                .or_insert_with(|| Box::new([0u8; PAGE_USIZE]));
            chunk[co..co + n].copy_from_slice(&data[done..done + n]);
            done += n;
        }
        self.len = self.len.max(end);
        Ok(())
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        if offset >= self.len {
            return Ok(0);
        }
        let n = buf.len().min((self.len - offset) as usize);
        let mut done = 0usize;
        while done < n {
            let pos = offset + done as u64;
            let (ci, co) = (pos / PAGE, (pos % PAGE) as usize);
            let m = (PAGE_USIZE - co).min(n - done);
            match self.chunks.get(&ci) {
                Some(c) => buf[done..done + m].copy_from_slice(&c[co..co + m]),
                None => buf[done..done + m].fill(0),
            }
            done += m;
        }
        Ok(n)
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn seekable(&self) -> bool {
        true
    }
}

/// The bytes of a page sent with `fill` (0 = a zero page).
fn page_bytes(block: usize, page: u64, fill: u8) -> [u8; PAGE_USIZE] {
    let mut p = [0u8; PAGE_USIZE];
    if fill != 0 {
        for (i, b) in p.iter_mut().enumerate() {
            *b = fill ^ (i as u8).wrapping_mul(31) ^ (block as u8) ^ (page as u8).rotate_left(3);
        }
        p[0] = fill;
    }
    p
}

fn devices(n: u8) -> Vec<DeviceState> {
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
type Passes = Vec<Vec<(usize, u64, u8)>>;

/// Write a valid file with the public writer. Returns the file and, per
/// block and page, the fill byte of the last send (`None`: never sent).
fn write_file(
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

/// Where the fixed-ram writer puts a block, computed here from the format
/// description (qemu-migration-format.md 2.1-2.3, 3.2, 4.2-4.3) for a
/// stream with machine [`MACHINE`] and only `fixed-ram` listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ModelBlock {
    /// Offset of the block's idstr in the START section's list.
    record: u64,
    /// Offset of the 28-byte header.
    header: u64,
    /// Bitmap offset and length.
    bitmap: u64,
    bitmap_len: u64,
    /// Page-area offset and length.
    pages: u64,
    used: u64,
}

fn model_layout(blocks: &[RamBlockDesc]) -> Vec<ModelBlock> {
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
fn check_headers<F: MigFile + ?Sized>(file: &F, blocks: &[RamBlockDesc], layout: &[ModelBlock]) {
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
fn compact<F: MigFile + ?Sized>(file: &F, layout: &[ModelBlock]) -> SparseFile {
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

/// Check a freshly written file restores what was sent: for fixed-ram every
/// page (never-sent and zero pages read as zero), for sequential the pages
/// sent (the rest keep the destination's garbage).
fn check_valid_file(
    file: &SparseFile,
    blocks: &[RamBlockDesc],
    last: &[Vec<Option<u8>>],
    fixed: bool,
) -> StreamInfo {
    let mut dest = Destination::new(blocks, true);
    let caps = Capabilities::from_enabled(if fixed { &[Capability::FixedRam] } else { &[] })
        .expect("valid");
    let opts = LoadOptions {
        machine: Some(MACHINE.into()),
        caps: Some(caps),
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
    info
}

/// Structure-aware fixed-ram mutation target (see the module docs).
pub fn fixed_ram_mutate(input: MutateInput) {
    let blocks = input.blocks();
    let passes = input.passes(&blocks);
    let devs = devices(input.devices);
    let (written, last) = write_file(&blocks, true, &passes, &devs);
    let layout = model_layout(&blocks);
    check_headers(&written, &blocks, &layout);
    let mut file = if !input.layout.is_multiple_of(4) {
        compact(&written, &layout)
    } else {
        written
    };
    let info = check_valid_file(&file, &blocks, &last, true);
    let len = file.len();
    let tail_start = info.blocks.last().map_or(0, |b| {
        b.fixed_ram.as_ref().expect("fixed-ram").pages_offset + b.used_length
    });
    let mem_size_at = info.blocks[0].record_offset - 8;
    let orig_total: u64 = blocks.iter().map(|b| b.used_length).sum::<u64>() | 4;

    for m in input.mutations.iter().take(8) {
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
                    write_clipped(&mut file, mem_size_at, &total.to_be_bytes());
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
        write_clipped(&mut file, at, &bytes);
    }
    check_file(&file, &blocks);
}

/// Overwrite bytes, never past the current end (so a truncation stays).
fn write_clipped(file: &mut SparseFile, at: u64, bytes: &[u8]) {
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

// ---------------------------------------------------------------------------
// Seeds

/// A target's raw-bytes entry point.
pub type RawTarget = fn(&[u8]);

/// The fuzz targets by directory name, with their raw-bytes entry points.
pub const TARGETS: [(&str, RawTarget); 4] = [
    ("reader", reader),
    ("caps", caps_bytes),
    ("roundtrip", roundtrip_bytes),
    ("fixed_ram_mutate", fixed_ram_mutate_bytes),
];

/// The seed corpus written by migsim: `(target, file name, bytes)`. The
/// `reader` seeds are small valid files for [`reader_blocks`]: sequential
/// ones, and fixed-ram ones compacted (page areas only page-aligned) so
/// they stay a few KiB. The structure-aware targets get fixed byte strings
/// of a few lengths (any bytes are a valid input for them). The
/// `#[ignore]`d test `regenerate_seed_corpus` in `tests/fuzz_corpus.rs`
/// writes these (and the smallest real QEMU file) to `fuzz/corpus/`.
pub fn seed_corpus() -> Vec<(&'static str, String, Vec<u8>)> {
    let blocks = reader_blocks();
    let mut out = Vec::new();
    // Three passes: data, zero pages, a re-sent page (CONTINUE), a block
    // switch, and a completion pass; then two devices.
    let full: Passes = vec![
        vec![
            (0, 0, 0x11),
            (0, 1, 0),
            (0, 2, 0x22),
            (1, 0, 0x33),
            (0, 3, 0),
        ],
        vec![(0, 0, 0x44), (0, 2, 0)],
        vec![(1, 0, 0x55), (0, 3, 0x66)],
    ];
    let empty: Passes = vec![Vec::new()];
    for (name, passes, ndev) in [("passes", &full, 2u8), ("empty", &empty, 0)] {
        for fixed in [false, true] {
            let (file, _) = write_file(&blocks, fixed, passes, &devices(ndev));
            let bytes = if fixed {
                compact(&file, &model_layout(&blocks)).to_vec()
            } else {
                file.to_vec()
            };
            let layout = if fixed { "fixed-ram-compact" } else { "seq" };
            out.push(("reader", format!("{layout}-{name}.mig"), bytes));
        }
    }
    // Fixed byte strings from a splitmix64 stream.
    let mut s = 0x6d69_6773_696du64;
    let mut next = move || {
        s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    for target in ["caps", "roundtrip", "fixed_ram_mutate"] {
        for len in [16usize, 48, 128, 320] {
            let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            out.push((target, format!("seed-{len}"), bytes));
        }
    }
    // caps under the mapped-ram profile (odd first byte, see `profile_of`):
    // for each length, the first string of the stream that decodes to at
    // least four calls, one turning mapped-ram on and one setting
    // compression or TLS. (libFuzzer's byte strings end a list at the first
    // clear continuation bit, so most strings hold one or two calls.)
    for len in [64usize, 160, 400] {
        loop {
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            bytes[0] |= 1;
            let Some(input) = typed_input::<CapsInput>(&bytes) else {
                continue;
            };
            let mapped_ram_on = input.steps.iter().any(|s| {
                matches!(s, CapsStep::Capabilities(pairs)
                    if pairs.iter().any(|&(b, on)| on && capability_of(b).0 == MAPPED_RAM))
            });
            let compression_or_tls = input.steps.iter().any(|s| {
                matches!(s, CapsStep::Parameters { compression, tls, .. }
                    if compression % 3 != 0 || *tls)
            });
            if input.steps.len() >= 4 && mapped_ram_on && compression_or_tls {
                out.push(("caps", format!("seed-mapped-ram-{len}"), bytes));
                break;
            }
        }
    }
    out
}
