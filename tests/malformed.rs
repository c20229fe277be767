//! Malformed-input tests for the reader (`migsim_format::reader`).
//!
//! Every test builds a VALID file with the public writer API, checks that
//! it loads, then corrupts specific bytes (offsets computed from the
//! format or taken from `inspect`'s `StreamInfo`) and asserts the exact
//! `LoadError` variant and the key phrase of its text. The reader must
//! never panic, hang, or allocate more than the file size justifies; the
//! largest single allocation is measured with a tracking global
//! allocator (per thread) and long loops run under a timeout.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::time::Duration;

use migsim_format::LoadError;
use migsim_format::caps::{Capabilities, Capability, CapsError};
use migsim_format::reader::{self, LoadOptions, NullSink, RamSink, StreamInfo};
use migsim_format::writer::{DeviceState, MigrationWriter, RamBlockDesc};
use migsim_harness::sim::dest::Destination;

// ---------------------------------------------------------------------------
// Allocation tracking: the largest single allocation request of the current
// thread. Const-initialised `Cell<usize>` thread-locals need no lazy
// registration, so using them from the allocator is safe.

struct Tracking;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note_alloc(n: usize) {
    let _ = LARGEST.try_with(|c| {
        if n > c.get() {
            c.set(n);
        }
    });
}

unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        note_alloc(l.size());
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        note_alloc(l.size());
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        note_alloc(new_size);
        unsafe { System.realloc(p, l, new_size) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static GLOBAL: Tracking = Tracking;

/// Run `f`, returning its result and the largest single allocation it made
/// on this thread.
fn largest_alloc<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|c| c.set(0));
    let r = f();
    (r, LARGEST.with(Cell::get))
}

/// Slack over the file length a load may allocate in one piece (the
/// cursor's 64 KiB window is bounded by the bytes left, so this is generous).
const ALLOC_SLACK: usize = 64 * 1024;

/// Run `f` on its own thread; fail if it does not finish in time (a hang)
/// or panics.
fn within<T: Send + 'static>(secs: u64, what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what} did not finish within {secs} s (hang?)")
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what} panicked"),
    }
}

// ---------------------------------------------------------------------------
// Fixtures.

const MACHINE: &str = "pc-i440fx-10.0";
const PAGE: u64 = 4096;
const PAGE_US: usize = 4096;
/// pc.ram pages.
const RAM_PAGES: u64 = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lay {
    Sequential,
    FixedRam,
}

const BOTH: [Lay; 2] = [Lay::Sequential, Lay::FixedRam];

impl Lay {
    fn caps(self) -> Capabilities {
        match self {
            Lay::Sequential => Capabilities::none(),
            Lay::FixedRam => Capabilities::from_enabled(&[Capability::FixedRam]).unwrap(),
        }
    }
}

/// Two RAMBlocks of equal name length (so one can be renamed into the
/// other): a 16-page one and a one-page one.
fn blocks() -> Vec<RamBlockDesc> {
    vec![
        RamBlockDesc {
            name: "pc.ram".into(),
            used_length: RAM_PAGES * PAGE,
        },
        RamBlockDesc {
            name: "pc.rom".into(),
            used_length: PAGE,
        },
    ]
}

/// A recognisable non-zero page.
fn page(tag: u8) -> Vec<u8> {
    (0..PAGE_US)
        .map(|i| (i as u8).wrapping_mul(7) ^ tag)
        .collect()
}

fn zero_page() -> Vec<u8> {
    vec![0; PAGE_US]
}

fn devices() -> Vec<DeviceState> {
    vec![
        DeviceState {
            idstr: "timer".into(),
            instance_id: 0,
            version_id: 2,
            payload: (1..=8).collect(),
        },
        DeviceState {
            idstr: "cpu".into(),
            instance_id: 0,
            version_id: 12,
            payload: (0x40..0x50).collect(),
        },
    ]
}

/// Write the standard scenario:
///
/// PART 1: pc.ram p0 data (PAGE, named), p1 zero (ZERO|CONT), pc.rom p0
///         data (PAGE, named), pc.ram p5 zero (ZERO, named), pc.ram p3 data
///         (PAGE|CONT).
/// PART 2: pc.ram p2 data (PAGE|CONT: CONTINUE persists across sections).
/// SWITCHOVER_START, END: pc.ram p0 re-dirtied (data), p3 zeroed (in
///         fixed-ram its stale bytes stay in the file, bit clear).
/// FULL sections for `devs`, EOF, vmdesc.
fn write(lay: Lay, devs: &[DeviceState]) -> Vec<u8> {
    let mut w = MigrationWriter::start(Vec::new(), MACHINE, &lay.caps(), blocks()).unwrap();
    w.begin_iteration().unwrap();
    w.save_page(0, 0, &page(0x11)).unwrap();
    w.save_page(0, 1, &zero_page()).unwrap();
    w.save_page(1, 0, &page(0x22)).unwrap();
    w.save_page(0, 5, &zero_page()).unwrap();
    w.save_page(0, 3, &page(0x33)).unwrap();
    w.end_iteration().unwrap();
    w.begin_iteration().unwrap();
    w.save_page(0, 2, &page(0x44)).unwrap();
    w.end_iteration().unwrap();
    w.begin_completion().unwrap();
    w.save_page(0, 0, &page(0x55)).unwrap();
    w.save_page(0, 3, &zero_page()).unwrap();
    let (file, _) = w.finish(devs).unwrap();
    file
}

/// What the destination must hold after loading the scenario.
fn expected_memory() -> Vec<Vec<u8>> {
    let mut ram = vec![0u8; (RAM_PAGES * PAGE) as usize];
    ram[0..PAGE_US].copy_from_slice(&page(0x55));
    ram[2 * PAGE_US..3 * PAGE_US].copy_from_slice(&page(0x44));
    vec![ram, page(0x22)]
}

fn opts(caps: Capabilities) -> LoadOptions {
    LoadOptions {
        machine: Some(MACHINE.into()),
        caps: Some(caps),
        skip_page_data: false,
        ..LoadOptions::default()
    }
}

fn assert_memory(dest: &Destination) {
    for (b, mem) in expected_memory().iter().enumerate() {
        for p in 0..(mem.len() / PAGE_US) {
            assert!(
                dest.page(b, p as u64) == &mem[p * PAGE_US..(p + 1) * PAGE_US],
                "block {b} page {p} differs from what was migrated"
            );
        }
    }
}

struct Fixture {
    bytes: Vec<u8>,
    info: StreamInfo,
}

impl Fixture {
    /// Build a valid file and check that it loads, into a clean and into a
    /// dirty destination, with the right memory.
    fn new(lay: Lay) -> Self {
        Self::with_devices(lay, &devices())
    }

    fn with_devices(lay: Lay, devs: &[DeviceState]) -> Self {
        let bytes = write(lay, devs);
        let info = reader::inspect(&bytes).expect("the valid file inspects");
        assert_eq!(info.file_len, bytes.len() as u64);
        assert_eq!(info.blocks.len(), 2);
        assert_eq!(
            info.layout,
            match lay {
                Lay::Sequential => migsim_format::Layout::Sequential,
                Lay::FixedRam => migsim_format::Layout::FixedRam,
            }
        );
        let dirty_ok = lay == Lay::FixedRam;
        for dirty in [false, true] {
            if dirty && !dirty_ok {
                continue;
            }
            let mut dest = Destination::new(&blocks(), dirty);
            let loaded =
                reader::load(&bytes, &opts(lay.caps()), &mut dest).expect("the valid file loads");
            assert_eq!(loaded, info, "load and inspect describe the file alike");
            assert_memory(&dest);
        }
        if devs.is_empty() {
            assert_eq!(info.vmdesc_devices, 0);
        } else {
            assert!(info.warnings.is_empty(), "{:?}", info.warnings);
            assert_eq!(info.vmdesc_devices, devs.len());
        }
        Self { bytes, info }
    }

    fn section(&self, kind: &str, nth: usize) -> u64 {
        self.info
            .sections
            .iter()
            .filter(|s| s.kind.name() == kind)
            .nth(nth)
            .unwrap_or_else(|| panic!("no {kind} section #{nth}"))
            .offset
    }

    fn ram_start(&self) -> u64 {
        let s = &self.info.sections[0];
        assert_eq!((s.kind.name(), s.idstr.as_str()), ("START", "ram"));
        s.offset
    }

    /// Offset of block `i`'s used_length field.
    fn used_length_at(&self, i: usize) -> u64 {
        let b = &self.info.blocks[i];
        b.record_offset + 1 + b.name.len() as u64
    }

    fn fixed(&self, i: usize) -> &reader::FixedRamInfo {
        self.info.blocks[i].fixed_ram.as_ref().unwrap()
    }

    /// A copy with `f` applied.
    fn corrupt(&self, f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut b = self.bytes.clone();
        f(&mut b);
        b
    }
}

fn be16_at(b: &[u8], at: u64) -> u16 {
    let at = at as usize;
    u16::from_be_bytes(b[at..at + 2].try_into().unwrap())
}
fn be32_at(b: &[u8], at: u64) -> u32 {
    let at = at as usize;
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}
fn be64_at(b: &[u8], at: u64) -> u64 {
    let at = at as usize;
    u64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}
fn put(b: &mut [u8], at: u64, data: &[u8]) {
    let at = at as usize;
    b[at..at + data.len()].copy_from_slice(data);
}
fn put_be16(b: &mut [u8], at: u64, v: u16) {
    put(b, at, &v.to_be_bytes());
}
fn put_be32(b: &mut [u8], at: u64, v: u32) {
    put(b, at, &v.to_be_bytes());
}
fn put_be64(b: &mut [u8], at: u64, v: u64) {
    put(b, at, &v.to_be_bytes());
}
fn find(hay: &[u8], needle: &[u8]) -> u64 {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .unwrap_or_else(|| panic!("{:?} not in the file", String::from_utf8_lossy(needle)))
        as u64
}

/// The error of a malformed file. It is loaded three ways: `inspect`,
/// `load` into a `NullSink` reading page data, and `load` into a
/// `Destination` with the right blocks (but no machine/caps checks);
/// all must fail alike, without panicking and without allocating more
/// than the file justifies.
fn load_err(file: &Vec<u8>) -> LoadError {
    let limit = file.len() + ALLOC_SLACK;
    let (r, big) = largest_alloc(|| reader::inspect(file));
    let e = r.expect_err("inspect must reject the corrupted file");
    assert!(
        big <= limit,
        "inspect allocated {big} bytes at once for a {}-byte file",
        file.len()
    );
    let full = LoadOptions::default();
    let (r2, big) = largest_alloc(|| reader::load(file, &full, &mut NullSink));
    let e2 = r2.expect_err("load must reject the corrupted file");
    assert!(
        big <= limit,
        "load allocated {big} bytes at once for a {}-byte file",
        file.len()
    );
    assert_eq!(e.to_string(), e2.to_string(), "inspect and load disagree");
    let mut dest = Destination::new(&blocks(), true);
    let e3 = reader::load(file, &full, &mut dest).expect_err("load into a destination must fail");
    // A destination may refuse a block (size, name) before the file's
    // layout is checked; otherwise it must report the same error.
    if !matches!(
        e3,
        LoadError::SizeMismatch { .. } | LoadError::UnknownBlock(_)
    ) {
        assert_eq!(
            e.to_string(),
            e3.to_string(),
            "inspect and load into a destination disagree"
        );
    }
    e
}

/// Load with the destination's expectations (machine, caps).
fn load_with(file: &Vec<u8>, o: &LoadOptions) -> Result<StreamInfo, LoadError> {
    let mut dest = Destination::new(&blocks(), false);
    reader::load(file, o, &mut dest)
}

macro_rules! assert_err {
    ($e:expr, $pat:pat $(if $guard:expr)?, $phrase:expr) => {{
        let e: LoadError = $e;
        assert!(
            matches!(e, $pat $(if $guard)?),
            "unexpected error variant: {e:?} ({e})"
        );
        let text = e.to_string();
        assert!(
            text.contains($phrase),
            "error text {text:?} lacks the phrase {:?}",
            $phrase
        );
    }};
}

// ---------------------------------------------------------------------------
// Sanity.

#[test]
fn valid_files_load() {
    for lay in BOTH {
        let f = Fixture::new(lay);
        assert_eq!(f.info.machine, MACHINE);
        assert_eq!(f.info.version, 3);
        assert_eq!(f.info.blocks[0].pages, RAM_PAGES);
        assert_eq!(f.info.blocks[1].pages, 1);
        let kinds: Vec<_> = f.info.sections.iter().map(|s| s.kind.name()).collect();
        assert_eq!(
            kinds,
            ["START", "PART", "PART", "COMMAND", "END", "FULL", "FULL"],
            "{lay:?}"
        );
        if lay == Lay::FixedRam {
            assert_eq!(f.info.capabilities, ["fixed-ram"]);
            assert_eq!(f.fixed(0).pages_offset % (1 << 20), 0);
        } else {
            assert!(f.info.capabilities.is_empty());
        }
    }
}

// ---------------------------------------------------------------------------
// Header.

#[test]
fn bad_magic_is_rejected() {
    for lay in BOTH {
        let f = Fixture::new(lay);
        let bad = f.corrupt(|b| b[0] = b'X');
        assert_err!(
            load_err(&bad),
            LoadError::BadMagic(0x5845_564d),
            "Not a migration stream"
        );
        let bad = f.corrupt(|b| put_be32(b, 0, 0));
        assert_err!(
            load_err(&bad),
            LoadError::BadMagic(0),
            "Not a migration stream"
        );
    }
}

#[test]
fn stream_version_2_is_obsolete() {
    for lay in BOTH {
        let f = Fixture::new(lay);
        let bad = f.corrupt(|b| put_be32(b, 4, 2));
        assert_err!(
            load_err(&bad),
            LoadError::ObsoleteVersion,
            "SaveVM v2 format is obsolete and don't work anymore"
        );
    }
}

#[test]
fn stream_version_4_is_unsupported() {
    for lay in BOTH {
        let f = Fixture::new(lay);
        let bad = f.corrupt(|b| put_be32(b, 4, 4));
        assert_err!(
            load_err(&bad),
            LoadError::UnsupportedVersion(4),
            "Unsupported migration stream version 4"
        );
        let bad = f.corrupt(|b| put_be32(b, 4, u32::MAX));
        assert_err!(
            load_err(&bad),
            LoadError::UnsupportedVersion(u32::MAX),
            "Unsupported migration stream version"
        );
    }
}

// ---------------------------------------------------------------------------
// Configuration section.

#[test]
fn configuration_missing_is_rejected() {
    for lay in BOTH {
        let f = Fixture::new(lay);
        assert_eq!(f.bytes[8], 0x07);
        let bad = f.corrupt(|b| b[8] = 0x04);
        assert_err!(
            load_err(&bad),
            LoadError::ConfigurationMissing(0x04),
            "Configuration section missing"
        );
        // A stream whose sections start right after the header.
        let bad = f.corrupt(|b| b[8] = 0x01);
        assert_err!(
            load_err(&bad),
            LoadError::ConfigurationMissing(0x01),
            "Configuration section missing"
        );
    }
}

#[test]
fn machine_mismatch_is_rejected() {
    for lay in BOTH {
        let f = Fixture::new(lay);
        let o = LoadOptions {
            machine: Some("pc-q35-10.0".into()),
            ..opts(lay.caps())
        };
        let e = load_with(&f.bytes, &o).unwrap_err();
        assert!(
            matches!(&e, LoadError::MachineMismatch { received, local }
                if received == MACHINE && local == "pc-q35-10.0"),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "Machine type received is 'pc-i440fx-10.0' and local is 'pc-q35-10.0'"
        );
        // The same machine name with a corrupted byte in the file.
        let bad = f.corrupt(|b| b[8 + 1 + 4] = b'q');
        let e = load_with(&bad, &opts(lay.caps())).unwrap_err();
        assert_err!(
            e,
            LoadError::MachineMismatch { .. },
            "Machine type received is 'qc-i440fx-10.0' and local is 'pc-i440fx-10.0'"
        );
    }
}

#[test]
fn capability_fixed_ram_on_locally_but_off_in_stream_is_rejected() {
    let f = Fixture::new(Lay::Sequential);
    let e = load_with(&f.bytes, &opts(Lay::FixedRam.caps())).unwrap_err();
    assert!(
        matches!(
            e,
            LoadError::Caps(CapsError::Mismatch {
                cap: Capability::FixedRam,
                local: true,
                received: false
            })
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "Capability fixed-ram is on, but received capability is off"
    );
}

#[test]
fn capability_fixed_ram_off_locally_but_on_in_stream_is_rejected() {
    let f = Fixture::new(Lay::FixedRam);
    let e = load_with(&f.bytes, &opts(Lay::Sequential.caps())).unwrap_err();
    assert!(
        matches!(
            e,
            LoadError::Caps(CapsError::Mismatch {
                cap: Capability::FixedRam,
                local: false,
                received: true
            })
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "Capability fixed-ram is off, but received capability is on"
    );
}

#[test]
fn unknown_capability_is_rejected() {
    let f = Fixture::new(Lay::FixedRam);
    let at = find(&f.bytes, b"\x09fixed-ram");
    let bad = f.corrupt(|b| put(b, at + 1, b"fixed-rom"));
    for caps in [Lay::FixedRam.caps(), Lay::Sequential.caps()] {
        let e = load_with(&bad, &opts(caps)).unwrap_err();
        assert!(
            matches!(&e, LoadError::Caps(CapsError::UnknownCapability(n)) if n == "fixed-rom"),
            "{e:?}"
        );
        assert_eq!(e.to_string(), "Received unknown capability fixed-rom");
    }
}

/// Offset of the be32 capability count in a fixed-ram file.
fn caps_count_at(f: &Fixture) -> (u64, u64) {
    let name = find(&f.bytes, b"configuration/capabilities");
    let sub = name - 2; // 0x05, length byte
    assert_eq!(f.bytes[sub as usize], 0x05);
    let count = name + 26 + 4;
    assert_eq!(be32_at(&f.bytes, count), 1);
    (sub, count)
}

#[test]
fn capability_count_larger_than_file_is_rejected() {
    let f = Fixture::new(Lay::FixedRam);
    let (sub, count) = caps_count_at(&f);
    for n in [u32::MAX, f.bytes.len() as u32, 0x8000_0000] {
        let bad = f.corrupt(|b| put_be32(b, count, n));
        assert_err!(
            load_err(&bad),
            LoadError::CapabilityCount(c, at) if c == n && at == sub,
            "more than the file can hold"
        );
    }
}

#[test]
fn unknown_configuration_subsection_is_rejected() {
    let f = Fixture::new(Lay::FixedRam);
    let (sub, _) = caps_count_at(&f);
    let at = find(&f.bytes, b"configuration/capabilities");
    let bad = f.corrupt(|b| put(b, at, b"configuration/capabilitiez"));
    assert_err!(
        load_err(&bad),
        LoadError::UnknownConfigSubsection(ref n, o) if n == "configuration/capabilitiez" && o == sub,
        "unknown configuration subsection 'configuration/capabilitiez'"
    );
}

// ---------------------------------------------------------------------------
// Sections, footers, commands.

#[test]
fn unknown_section_type_is_rejected() {
    for lay in BOTH {
        let f = Fixture::new(lay);
        let part = f.section("PART", 0);
        for k in [0x09u8, 0x05, 0x06, 0x07, 0x7E, 0xFF] {
            let bad = f.corrupt(|b| b[part as usize] = k);
            assert_err!(
                load_err(&bad),
                LoadError::UnknownSectionType { kind, offset } if kind == k && offset == part,
                "unknown section type"
            );
        }
        // Also the first section after the configuration.
        let start = f.ram_start();
        let bad = f.corrupt(|b| b[start as usize] = 0x42);
        assert_err!(
            load_err(&bad),
            LoadError::UnknownSectionType { kind: 0x42, offset } if offset == start,
            "unknown section type 0x42"
        );
    }
}

#[test]
fn missing_footer_is_rejected() {
    for lay in BOTH {
        let f = Fixture::new(lay);
        for s in f
            .info
            .sections
            .iter()
            .filter(|s| s.kind != migsim_format::SectionKind::Command)
        {
            let foot = s.offset + s.len - 5;
            assert_eq!(f.bytes[foot as usize], 0x7E, "{lay:?} {s:?}");
            let bad = f.corrupt(|b| b[foot as usize] = 0x7F);
            let idstr = s.idstr.clone();
            assert_err!(
                load_err(&bad),
                LoadError::MissingFooter { idstr: ref i, found: 0x7F, offset }
                    if *i == idstr && offset == foot,
                &format!("Missing section footer for {}", s.idstr)
            );
        }
    }
}

#[test]
fn footer_id_mismatch_is_rejected() {
    for lay in BOTH {
        let f = Fixture::new(lay);
        for s in f
            .info
            .sections
            .iter()
            .filter(|s| s.kind != migsim_format::SectionKind::Command)
        {
            let foot = s.offset + s.len - 5;
            assert_eq!(be32_at(&f.bytes, foot + 1), s.id);
            let bad = f.corrupt(|b| put_be32(b, foot + 1, 0xdead));
            let idstr = s.idstr.clone();
            let id = s.id;
            assert_err!(
                load_err(&bad),
                LoadError::FooterMismatch { idstr: ref i, read: 0xdead, expected }
                    if *i == idstr && expected == id,
                &format!(
                    "Mismatched section id in footer for {} - read 0xdead expected {:#x}",
                    s.idstr, s.id
                )
            );
        }
    }
}

#[test]
fn part_and_end_with_unknown_section_id_are_rejected() {
    for lay in BOTH {
        let f = Fixture::new(lay);
        for at in [
            f.section("PART", 0),
            f.section("PART", 1),
            f.section("END", 0),
        ] {
            let bad = f.corrupt(|b| put_be32(b, at + 1, 99));
            assert_err!(
                load_err(&bad),
                LoadError::UnknownSectionId { id: 99, offset } if offset == at,
                "unknown section id 99"
            );
        }
        // A PART naming a device's (FULL) id is not RAM.
        let full_id = f
            .info
            .sections
            .iter()
            .find(|s| s.kind == migsim_format::SectionKind::Full)
            .unwrap()
            .id;
        let part = f.section("PART", 0);
        let bad = f.corrupt(|b| put_be32(b, part + 1, full_id));
        // The device sections come after the RAM PART, so at that point the
        // id is unknown too.
        assert_err!(
            load_err(&bad),
            LoadError::UnknownSectionId { id, .. } if id == full_id,
            "unknown section id"
        );
    }
}

#[test]
fn ram_section_version_not_4_is_rejected() {
    for lay in BOTH {
        let f = Fixture::new(lay);
        // type, id, "\x03ram", instance, version
        let at = f.ram_start() + 1 + 4 + 4 + 4;
        assert_eq!(be32_at(&f.bytes, at), 4);
        for v in [3u32, 5, 0, u32::MAX] {
            let bad = f.corrupt(|b| put_be32(b, at, v));
            assert_err!(
                load_err(&bad),
                LoadError::RamVersion(got) if got == v,
                "ram section version"
            );
        }
    }
}

#[test]
fn duplicate_section_id_is_rejected() {
    for lay in BOTH {
        let f = Fixture::new(lay);
        // Give the second device the first device's id.
        let first = f.section("FULL", 0);
        let second = f.section("FULL", 1);
        let id = be32_at(&f.bytes, first + 1);
        let bad = f.corrupt(|b| put_be32(b, second + 1, id));
        assert_err!(
            load_err(&bad),
            LoadError::DuplicateSectionId { id: i, ref idstr, offset }
                if i == id && idstr == "cpu" && offset == second,
            "duplicate section id"
        );
    }
}

#[test]
fn stream_without_ram_is_rejected() {
    for lay in BOTH {
        let f = Fixture::new(lay);
        let start = f.ram_start();
        let bad = f.corrupt(|b| b[start as usize] = 0x00);
        assert_err!(
            load_err(&bad),
            LoadError::NoRam,
            "stream has no RAM section"
        );
    }
}

#[test]
fn command_other_than_switchover_start_is_rejected() {
    for lay in BOTH {
        let f = Fixture::new(lay);
        let c = f.section("COMMAND", 0);
        assert_eq!(be16_at(&f.bytes, c + 1), 0x000B);
        for cmd in [0x0002u16, 0x0001, 0x000A, 0x000C, 0xFFFF] {
            let bad = f.corrupt(|b| put_be16(b, c + 1, cmd));
            assert_err!(
                load_err(&bad),
                LoadError::UnexpectedCommand { cmd: got, len: 0, offset }
                    if got == cmd && offset == c,
                &format!("unexpected command {cmd:#06x}")
            );
        }
        // SWITCHOVER_START with a payload is not accepted either.
        let bad = f.corrupt(|b| put_be16(b, c + 3, 1));
        assert_err!(
            load_err(&bad),
            LoadError::UnexpectedCommand {
                cmd: 0x000B,
                len: 1,
                ..
            },
            "unexpected command 0x000b (length 1)"
        );
    }
}

// ---------------------------------------------------------------------------
// The block list.

#[test]
fn unknown_block_is_rejected() {
    for lay in BOTH {
        let f = Fixture::new(lay);
        // A destination without pc.rom.
        let mut other = blocks();
        other[1].name = "vga.vram".into();
        let mut dest = Destination::new(&other, false);
        let e = reader::load(&f.bytes, &opts(lay.caps()), &mut dest).unwrap_err();
        assert_err!(
            e,
            LoadError::UnknownBlock(ref n) if n == "pc.rom",
            "Unknown ramblock \"pc.rom\", cannot accept migration"
        );
        // A tiny RamSink that knows only pc.ram.
        struct OnlyPcRam;
        impl RamSink for OnlyPcRam {
            fn declare_block(&mut self, name: &str, _: u64) -> Result<(), LoadError> {
                if name == "pc.ram" {
                    Ok(())
                } else {
                    Err(LoadError::UnknownBlock(name.into()))
                }
            }
            fn write_pages(&mut self, _: usize, _: u64, _: &[u8]) -> Result<(), LoadError> {
                Ok(())
            }
            fn zero_pages(&mut self, _: usize, _: u64, _: u64) -> Result<(), LoadError> {
                Ok(())
            }
        }
        let e = reader::load(&f.bytes, &opts(lay.caps()), &mut OnlyPcRam).unwrap_err();
        assert_err!(e, LoadError::UnknownBlock(ref n) if n == "pc.rom", "Unknown ramblock");
        // The file renames a block the destination has.
        let at = f.info.blocks[1].record_offset + 1;
        let bad = f.corrupt(|b| put(b, at, b"pc.rum"));
        let e = load_with(&bad, &opts(lay.caps())).unwrap_err();
        assert_err!(
            e,
            LoadError::UnknownBlock(ref n) if n == "pc.rum",
            "Unknown ramblock \"pc.rum\""
        );
    }
}

#[test]
fn block_size_mismatch_is_rejected() {
    for lay in BOTH {
        let f = Fixture::new(lay);
        let mut bigger = blocks();
        bigger[0].used_length = 2 * RAM_PAGES * PAGE;
        let mut dest = Destination::new(&bigger, false);
        let e = reader::load(&f.bytes, &opts(lay.caps()), &mut dest).unwrap_err();
        assert_err!(
            e,
            LoadError::SizeMismatch { ref name, stream: 0x10000, local: 0x20000 } if name == "pc.ram",
            "Size mismatch: pc.ram: 0x10000 != 0x20000"
        );
        // The one-page block, bigger at the destination.
        let mut other = blocks();
        other[1].used_length = 2 * PAGE;
        let mut dest = Destination::new(&other, false);
        let e = reader::load(&f.bytes, &opts(lay.caps()), &mut dest).unwrap_err();
        assert_err!(
            e,
            LoadError::SizeMismatch { ref name, stream: 0x1000, local: 0x2000 } if name == "pc.rom",
            "Size mismatch: pc.rom: 0x1000 != 0x2000"
        );
    }
}

#[test]
fn used_length_not_page_multiple_is_rejected() {
    for lay in BOTH {
        let f = Fixture::new(lay);
        for (blk, len) in [(1usize, 0x1001u64), (1, 0x800), (0, 0x10000 - 1), (1, 0)] {
            let at = f.used_length_at(blk);
            let bad = f.corrupt(|b| put_be64(b, at, len));
            let name = f.info.blocks[blk].name.clone();
            assert_err!(
                load_err(&bad),
                LoadError::BadUsedLength { name: ref n, used_length } if *n == name && used_length == len,
                "is not a positive multiple of the page size"
            );
        }
    }
}

/// Offset of the MEM_SIZE word.
fn mem_size_at(f: &Fixture) -> u64 {
    // type, id, "\x03ram", instance, version
    let at = f.ram_start() + 1 + 4 + 4 + 4 + 4;
    assert_eq!(be64_at(&f.bytes, at), ((RAM_PAGES + 1) * PAGE) | 0x04);
    at
}

#[test]
fn block_list_overrunning_its_total_is_rejected() {
    for lay in BOTH {
        let f = Fixture::new(lay);
        let total_at = mem_size_at(&f);
        // The second block makes the list longer than announced.
        let at = f.used_length_at(1);
        let rec1 = f.info.blocks[1].record_offset;
        let bad = f.corrupt(|b| put_be64(b, at, 2 * PAGE));
        assert_err!(
            load_err(&bad),
            LoadError::BlockListOverrun { total: 0x11000, seen: 0x12000, offset } if offset == rec1,
            "block list overruns its announced total"
        );
        // The announced total is smaller than the first block.
        let rec0 = f.info.blocks[0].record_offset;
        let bad = f.corrupt(|b| put_be64(b, total_at, 0x8000 | 0x04));
        assert_err!(
            load_err(&bad),
            LoadError::BlockListOverrun { total: 0x8000, seen: 0x10000, offset } if offset == rec0,
            "block list overruns its announced total"
        );
        // used_length so big that seen + used_length overflows.
        let bad = f.corrupt(|b| put_be64(b, at, u64::MAX - 0xfff));
        assert_err!(
            load_err(&bad),
            LoadError::BlockListOverrun { total: 0x11000, offset, .. } if offset == rec1,
            "block list overruns its announced total"
        );
    }
}

#[test]
fn block_list_shorter_than_its_total_is_rejected() {
    // The total announces a third block that the list does not have: the
    // reader then parses the EOS and what follows as a block record. It
    // must fail cleanly.
    for lay in BOTH {
        let f = Fixture::new(lay);
        let total_at = mem_size_at(&f);
        let bad = f.corrupt(|b| put_be64(b, total_at, ((RAM_PAGES + 2) * PAGE) | 0x04));
        let e = load_err(&bad);
        assert!(!e.to_string().is_empty());
    }
}

#[test]
fn block_list_shorter_than_its_total_names_the_total() {
    for lay in BOTH {
        let f = Fixture::new(lay);
        let total_at = mem_size_at(&f);
        let bad = f.corrupt(|b| put_be64(b, total_at, ((RAM_PAGES + 2) * PAGE) | 0x04));
        assert_err!(
            load_err(&bad),
            LoadError::BlockListShort {
                total: 0x12000,
                seen: 0x11000,
                ..
            },
            "MEM_SIZE total announced"
        );
    }
}

#[test]
fn duplicate_block_is_rejected() {
    for lay in BOTH {
        let f = Fixture::new(lay);
        let at = f.info.blocks[1].record_offset + 1;
        assert_eq!(&f.bytes[at as usize..at as usize + 6], b"pc.rom");
        let bad = f.corrupt(|b| put(b, at, b"pc.ram"));
        assert_err!(
            load_err(&bad),
            LoadError::DuplicateBlock(ref n) if n == "pc.ram",
            "ramblock pc.ram listed twice"
        );
    }
}

#[test]
fn sequential_hostile_used_length_does_not_allocate() {
    // A sequential stream announcing a 2^60-byte block: no allocation may
    // follow from it, and a destination refuses it.
    let f = Fixture::new(Lay::Sequential);
    let total_at = mem_size_at(&f);
    let at = f.used_length_at(0);
    let huge = 1u64 << 60;
    let bad = f.corrupt(|b| {
        put_be64(b, at, huge);
        put_be64(b, total_at, (huge + PAGE) | 0x04);
    });
    let len = bad.len();
    let (r, big) = within(30, "inspect of a 2^60-byte block", move || {
        largest_alloc(|| reader::inspect(&bad).map(|i| i.blocks[0].used_length))
    });
    assert!(big <= len + ALLOC_SLACK, "allocated {big} bytes at once");
    // The stream itself is consistent apart from the size: inspect accepts it.
    assert_eq!(r.unwrap(), huge);
    let bad = f.corrupt(|b| {
        put_be64(b, at, huge);
        put_be64(b, total_at, (huge + PAGE) | 0x04);
    });
    let e = load_with(&bad, &opts(Lay::Sequential.caps())).unwrap_err();
    assert_err!(
        e,
        LoadError::SizeMismatch { stream, local: 0x10000, .. } if stream == huge,
        "Size mismatch: pc.ram: 0x1000000000000000 != 0x10000"
    );
}

// ---------------------------------------------------------------------------
// Fixed-ram headers.

#[test]
fn fixed_ram_header_version_2_is_rejected() {
    let f = Fixture::new(Lay::FixedRam);
    for blk in 0..2 {
        let h = f.fixed(blk).header_offset;
        assert_eq!(be32_at(&f.bytes, h), 1);
        for v in [2u32, 0x100, u32::MAX] {
            let bad = f.corrupt(|b| put_be32(b, h, v));
            assert_err!(
                load_err(&bad),
                LoadError::HeaderVersion(got) if got == v,
                &format!(
                    "Migration fixed-ram capability version not supported (expected <= 1, got {v})"
                )
            );
        }
    }
}

#[test]
fn fixed_ram_header_version_0_is_accepted() {
    let f = Fixture::new(Lay::FixedRam);
    let ok = f.corrupt(|b| {
        for blk in 0..2 {
            put_be32(b, f.fixed(blk).header_offset, 0);
        }
    });
    let mut dest = Destination::new(&blocks(), true);
    let info = reader::load(&ok, &opts(Lay::FixedRam.caps()), &mut dest).unwrap();
    assert_eq!(info.blocks[0].fixed_ram.as_ref().unwrap().version, 0);
    assert_eq!(info.blocks[1].fixed_ram.as_ref().unwrap().version, 0);
    assert_memory(&dest);
}

#[test]
fn fixed_ram_header_page_size_8192_is_rejected() {
    let f = Fixture::new(Lay::FixedRam);
    for blk in 0..2 {
        let at = f.fixed(blk).header_offset + 4;
        assert_eq!(be64_at(&f.bytes, at), PAGE);
        for ps in [8192u64, 0, 2048, 1 << 63] {
            let bad = f.corrupt(|b| put_be64(b, at, ps));
            let name = f.info.blocks[blk].name.clone();
            assert_err!(
                load_err(&bad),
                LoadError::HeaderPageSize { name: ref n, page_size } if *n == name && page_size == ps,
                &format!("fixed-ram page size {ps} is not supported (expected 4096)")
            );
        }
    }
}

#[test]
fn fixed_ram_pages_offset_misaligned_is_rejected() {
    let f = Fixture::new(Lay::FixedRam);
    for blk in 0..2 {
        let fr = f.fixed(blk).clone();
        let at = fr.header_offset + 20;
        for delta in [1u64, 0x800, 0xfff] {
            let po = fr.pages_offset + delta;
            let bad = f.corrupt(|b| put_be64(b, at, po));
            assert_err!(
                load_err(&bad),
                LoadError::PagesMisaligned { pages_offset, .. } if pages_offset == po,
                "region has bad alignment"
            );
        }
    }
}

#[test]
fn fixed_ram_bitmap_overlapping_header_is_rejected() {
    let f = Fixture::new(Lay::FixedRam);
    for blk in 0..2 {
        let fr = f.fixed(blk).clone();
        let header_end = fr.header_offset + 28;
        assert_eq!(fr.bitmap_offset, header_end);
        for bo in [header_end - 1, fr.header_offset, 0] {
            let bad = f.corrupt(|b| put_be64(b, fr.header_offset + 12, bo));
            assert_err!(
                load_err(&bad),
                LoadError::RegionOverlap { region: "bitmap", offset, min, .. }
                    if offset == bo && min == header_end,
                "bitmap at"
            );
            assert!(
                load_err(&bad)
                    .to_string()
                    .contains("overlaps data before it")
            );
        }
    }
}

#[test]
fn fixed_ram_bitmap_past_end_of_file_is_rejected() {
    let f = Fixture::new(Lay::FixedRam);
    let len = f.bytes.len() as u64;
    for blk in 0..2 {
        let fr = f.fixed(blk).clone();
        for bo in [len - 4, len, len + 4096, 1 << 40] {
            let bad = f.corrupt(|b| put_be64(b, fr.header_offset + 12, bo));
            assert_err!(
                load_err(&bad),
                LoadError::RegionOutOfFile { region: "bitmap", offset, len: 8, file_len, .. }
                    if offset == bo && file_len == len,
                "lies outside the file"
            );
        }
    }
}

#[test]
fn fixed_ram_page_area_past_end_of_file_is_rejected() {
    let f = Fixture::new(Lay::FixedRam);
    let len = f.bytes.len() as u64;
    for blk in 0..2 {
        let fr = f.fixed(blk).clone();
        let used = f.info.blocks[blk].used_length;
        // Starts inside the file but ends past it; starts past the end.
        let inside = (len - 1) & !0xfff;
        for po in [inside, len.next_multiple_of(PAGE), 1 << 40] {
            assert!(po + used > len);
            let bad = f.corrupt(|b| put_be64(b, fr.header_offset + 20, po));
            assert_err!(
                load_err(&bad),
                LoadError::RegionOutOfFile { region: "page area", offset, len: l, .. }
                    if offset == po && l == used,
                "page area at"
            );
        }
    }
}

#[test]
fn fixed_ram_pages_offset_overlapping_bitmap_is_rejected() {
    let f = Fixture::new(Lay::FixedRam);
    for blk in 0..2 {
        let fr = f.fixed(blk).clone();
        let bitmap_end = fr.bitmap_offset + fr.bitmap_len;
        // The page-aligned offset at or before the bitmap.
        let po = fr.bitmap_offset & !0xfff;
        let bad = f.corrupt(|b| put_be64(b, fr.header_offset + 20, po));
        assert_err!(
            load_err(&bad),
            LoadError::RegionOverlap { region: "page area", offset, min, .. }
                if offset == po && min == bitmap_end,
            "page area at"
        );
        // The bitmap moved up so it ends inside the (unchanged) page area.
        let bo = fr.pages_offset - 4;
        let bad = f.corrupt(|b| put_be64(b, fr.header_offset + 12, bo));
        assert_err!(
            load_err(&bad),
            LoadError::RegionOverlap { region: "page area", offset, min, .. }
                if offset == fr.pages_offset && min == bo + fr.bitmap_len,
            "overlaps data before it"
        );
    }
}

#[test]
fn fixed_ram_bitmap_offset_overflow_is_rejected() {
    let f = Fixture::new(Lay::FixedRam);
    for blk in 0..2 {
        let fr = f.fixed(blk).clone();
        for bo in [u64::MAX, u64::MAX - 3, u64::MAX - 7, u64::MAX - 8] {
            let bad = f.corrupt(|b| put_be64(b, fr.header_offset + 12, bo));
            let e = within(10, "bitmap_offset overflow", move || load_err(&bad));
            assert_err!(
                e,
                LoadError::RegionOutOfFile { region: "bitmap", offset, .. } if offset == bo,
                "lies outside the file"
            );
        }
    }
}

#[test]
fn fixed_ram_pages_offset_overflow_is_rejected() {
    let f = Fixture::new(Lay::FixedRam);
    for blk in 0..2 {
        let fr = f.fixed(blk).clone();
        for po in [!0xfffu64, (u64::MAX - 0x10000) & !0xfff] {
            let bad = f.corrupt(|b| put_be64(b, fr.header_offset + 20, po));
            let e = within(10, "pages_offset overflow", move || load_err(&bad));
            assert_err!(
                e,
                LoadError::RegionOutOfFile { region: "page area", offset, .. } if offset == po,
                "lies outside the file"
            );
        }
    }
}

#[test]
fn fixed_ram_hostile_used_length_is_rejected_without_huge_allocation() {
    let f = Fixture::new(Lay::FixedRam);
    let total_at = mem_size_at(&f);
    let at = f.used_length_at(0);
    // 2^60: the bitmap alone (2^45 bytes) cannot be in the file.
    // 2^32: the 128 KiB bitmap fits, the 4 GiB page area does not.
    // 2^40: a 32 MiB bitmap, bigger than the file.
    for (huge, region) in [
        (1u64 << 60, "bitmap"),
        (1u64 << 40, "bitmap"),
        (1u64 << 32, "page area"),
    ] {
        let bad = f.corrupt(|b| {
            put_be64(b, at, huge);
            put_be64(b, total_at, (huge + PAGE) | 0x04);
        });
        let e = within(10, "hostile used_length", move || load_err(&bad));
        assert_err!(
            e,
            LoadError::RegionOutOfFile { region: r, .. } if r == region,
            "lies outside the file"
        );
        // Without a matching total it is a block-list overrun.
        let bad = f.corrupt(|b| put_be64(b, at, huge));
        let e = within(10, "hostile used_length", move || load_err(&bad));
        assert_err!(e, LoadError::BlockListOverrun { .. }, "overruns");
    }
}

// ---------------------------------------------------------------------------
// Sequential RAM records. Offsets inside PART 1 (r = PART offset + 5):
//   r          PAGE   pc.ram 0x0000  word 0x0008, "\x06pc.ram", 4096 bytes
//   r+4111     ZERO|C pc.ram 0x1000  word 0x1022, fill
//   r+4120     PAGE   pc.rom 0x0000  word 0x0008, "\x06pc.rom", 4096 bytes
//   r+8231     ZERO   pc.ram 0x5000  word 0x5002, "\x06pc.ram", fill
//   r+8247     PAGE|C pc.ram 0x3000  word 0x3028, 4096 bytes
//   r+12351    EOS

struct SeqRecords {
    f: Fixture,
    page0: u64,
    zero1: u64,
    rom0: u64,
    zero5: u64,
    page3: u64,
    eos: u64,
}

fn seq_records() -> SeqRecords {
    let f = Fixture::new(Lay::Sequential);
    let r = f.section("PART", 0) + 5;
    let s = SeqRecords {
        page0: r,
        zero1: r + 4111,
        rom0: r + 4120,
        zero5: r + 8231,
        page3: r + 8247,
        eos: r + 12351,
        f,
    };
    let b = &s.f.bytes;
    assert_eq!(be64_at(b, s.page0), 0x0008);
    assert_eq!(
        &b[s.page0 as usize + 8..s.page0 as usize + 15],
        b"\x06pc.ram"
    );
    assert_eq!(be64_at(b, s.zero1), 0x1022);
    assert_eq!(be64_at(b, s.rom0), 0x0008);
    assert_eq!(&b[s.rom0 as usize + 8..s.rom0 as usize + 15], b"\x06pc.rom");
    assert_eq!(be64_at(b, s.zero5), 0x5002);
    assert_eq!(be64_at(b, s.page3), 0x3028);
    assert_eq!(be64_at(b, s.eos), 0x10);
    assert_eq!(s.f.info.blocks[0].zero_records, 3);
    s
}

#[test]
fn zero_record_with_nonzero_fill_is_rejected() {
    let s = seq_records();
    for (fill_at, fill) in [(s.zero1 + 8, 1u8), (s.zero5 + 8 + 7, 0xFF)] {
        assert_eq!(s.f.bytes[fill_at as usize], 0);
        let bad = s.f.corrupt(|b| b[fill_at as usize] = fill);
        assert_err!(
            load_err(&bad),
            LoadError::ZeroPageFill(v) if v == fill,
            &format!("Found a zero page with value {fill}")
        );
    }
}

#[test]
fn continue_without_previous_block_is_rejected() {
    let s = seq_records();
    for word in [0x0028u64, 0x0022] {
        let bad = s.f.corrupt(|b| put_be64(b, s.page0, word));
        assert_err!(
            load_err(&bad),
            LoadError::ContinueWithoutBlock(at) if at == s.page0,
            "continues a block, but no block was named before"
        );
    }
}

#[test]
fn page_offset_beyond_block_is_rejected() {
    let s = seq_records();
    // pc.ram is 0x10000 bytes: offset 0x10000 is just past it.
    for (at, word, name, off, used) in [
        (s.page0, 0x10008u64, "pc.ram", 0x10000u64, 0x10000u64),
        (
            s.page0,
            0xFFFF_FFFF_FFFF_F008,
            "pc.ram",
            0xFFFF_FFFF_FFFF_F000,
            0x10000,
        ),
        (s.rom0, 0x1008, "pc.rom", 0x1000, 0x1000),
        (s.zero1, 0x10022, "pc.ram", 0x10000, 0x10000),
        (s.page3, 0x7_0000_0028, "pc.ram", 0x7_0000_0000, 0x10000),
    ] {
        let bad = s.f.corrupt(|b| put_be64(b, at, word));
        assert_err!(
            load_err(&bad),
            LoadError::IllegalRamOffset { name: ref n, offset, used_length }
                if n == name && offset == off && used_length == used,
            &format!("Illegal RAM offset {off:#x} in ramblock {name}")
        );
    }
}

#[test]
fn unknown_ram_flags_are_rejected() {
    let s = seq_records();
    // XBZRLE, FULL, HOOK, COMPRESS_PAGE, ZERO|PAGE, MEM_SIZE in a PART,
    // EOS with an offset, EOS|PAGE, XBZRLE|CONTINUE.
    for flags in [
        0x40u64, 0x01, 0x80, 0x100, 0x0A, 0x04, 0x18, 0x60, 0x400, 0x800,
    ] {
        let bad = s.f.corrupt(|b| put_be64(b, s.page0, flags));
        assert_err!(
            load_err(&bad),
            LoadError::UnknownRamFlags { flags: got, offset } if got == flags && offset == s.page0,
            &format!("Unknown combination of migration flags: {flags:#x}")
        );
    }
    // EOS with a non-zero offset is not EOS.
    let bad = s.f.corrupt(|b| put_be64(b, s.eos, 0x1010));
    assert_err!(
        load_err(&bad),
        LoadError::UnknownRamFlags { flags: 0x10, offset } if offset == s.eos,
        "Unknown combination of migration flags: 0x10"
    );
}

#[test]
fn page_record_naming_unknown_block_is_rejected() {
    let s = seq_records();
    let bad = s.f.corrupt(|b| put(b, s.rom0 + 9, b"pc.rum"));
    assert_err!(
        load_err(&bad),
        LoadError::UnknownBlock(ref n) if n == "pc.rum",
        "Unknown ramblock \"pc.rum\", cannot accept migration"
    );
}

#[test]
fn multifd_flush_shifting_the_records_is_rejected() {
    // MULTIFD_FLUSH is a legal sequential record: replacing the one-page
    // ZERO|CONT record's word with it shifts the stream by one byte (the
    // fill byte is then read as the next record) — it must fail cleanly,
    // not be silently accepted.
    let s = seq_records();
    let bad = s.f.corrupt(|b| put_be64(b, s.zero1, 0x200));
    let e = load_err(&bad);
    assert!(!e.to_string().is_empty());
}

// ---------------------------------------------------------------------------
// Fixed-ram streams must not carry page records.

#[test]
fn fixed_ram_page_record_after_block_list_is_rejected() {
    let f = Fixture::new(Lay::FixedRam);
    let last = f.fixed(1);
    let eos = last.pages_offset + f.info.blocks[1].used_length;
    assert_eq!(be64_at(&f.bytes, eos), 0x10);
    for (word, flags) in [
        (0x08u64, 8u64),
        (0x02, 2),
        (0x3028, 0x28),
        (0x22, 0x22),
        (0x200, 0x200),
        (0x40, 0x40),
    ] {
        let bad = f.corrupt(|b| put_be64(b, eos, word));
        assert_err!(
            load_err(&bad),
            LoadError::ForbiddenRamFlags { flags: got, offset } if got == flags && offset == eos,
            &format!("Unexpected RAM flags: {flags}")
        );
    }
}

#[test]
fn fixed_ram_page_or_zero_record_in_part_section_is_rejected() {
    let f = Fixture::new(Lay::FixedRam);
    for at in [
        f.section("PART", 0) + 5,
        f.section("PART", 1) + 5,
        f.section("END", 0) + 5,
    ] {
        assert_eq!(be64_at(&f.bytes, at), 0x10);
        for (word, flags) in [(0x1008u64, 8u64), (0x02, 2), (0x200, 512)] {
            let bad = f.corrupt(|b| put_be64(b, at, word));
            assert_err!(
                load_err(&bad),
                LoadError::ForbiddenRamFlags { flags: got, offset } if got == flags && offset == at,
                &format!("Unexpected RAM flags: {flags} (record at offset {at:#x}")
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Destination memory.

#[test]
fn fixed_ram_into_dirty_destination_zeroes_pages_whose_bit_is_clear() {
    let f = Fixture::new(Lay::FixedRam);
    // Page 3 of pc.ram was written, then became zero: its stale bytes
    // stay in the file, its bit is clear.
    let fr = f.fixed(0);
    let stale = (fr.pages_offset + 3 * PAGE) as usize;
    assert_eq!(&f.bytes[stale..stale + PAGE_US], &page(0x33)[..]);
    let bitmap = &f.bytes[fr.bitmap_offset as usize..(fr.bitmap_offset + fr.bitmap_len) as usize];
    assert_eq!(bitmap, &[0b0000_0101, 0, 0, 0, 0, 0, 0, 0]);
    let mut dest = Destination::new(&blocks(), true);
    assert_eq!(
        dest.page(0, 7),
        &[migsim_harness::sim::dest::GARBAGE; PAGE_US][..]
    );
    let info = reader::load(&f.bytes, &opts(Lay::FixedRam.caps()), &mut dest).unwrap();
    assert_eq!(info.blocks[0].pages_present, 2);
    assert_eq!(info.blocks[1].pages_present, 1);
    for p in 0..RAM_PAGES {
        let set = bitmap[(p / 8) as usize] & (1 << (p % 8)) != 0;
        if !set {
            assert!(
                dest.page(0, p).iter().all(|&b| b == 0),
                "pc.ram page {p} (bit clear) is not zero"
            );
        }
    }
    assert_memory(&dest);

    // Clear every bit: the whole destination must come out zero.
    let cleared = f.corrupt(|b| {
        for blk in 0..2 {
            let fr = f.fixed(blk);
            for i in 0..fr.bitmap_len {
                b[(fr.bitmap_offset + i) as usize] = 0;
            }
        }
    });
    let mut dest = Destination::new(&blocks(), true);
    reader::load(&cleared, &opts(Lay::FixedRam.caps()), &mut dest).unwrap();
    for p in 0..RAM_PAGES {
        assert!(dest.page(0, p).iter().all(|&b| b == 0), "pc.ram page {p}");
    }
    assert!(dest.page(1, 0).iter().all(|&b| b == 0), "pc.rom page 0");

    // Bits past the block's last page are ignored.
    let extra = f.corrupt(|b| {
        let fr = f.fixed(1);
        b[fr.bitmap_offset as usize] = 0xFF;
        b[(fr.bitmap_offset + 7) as usize] = 0xFF;
    });
    let mut dest = Destination::new(&blocks(), true);
    let info = reader::load(&extra, &opts(Lay::FixedRam.caps()), &mut dest).unwrap();
    assert_eq!(info.blocks[1].pages_present, 1);
    assert_memory(&dest);
}

// ---------------------------------------------------------------------------
// Device sections and the vmdesc trailer.

#[test]
fn device_section_not_described_by_vmdesc_is_rejected() {
    for lay in BOTH {
        let f = Fixture::new(lay);
        let full = f.section("FULL", 0);
        // type, id, len byte, "timer"
        let name_at = full + 1 + 4 + 1;
        assert_eq!(&f.bytes[name_at as usize..name_at as usize + 5], b"timer");
        let bad = f.corrupt(|b| put(b, name_at, b"timex"));
        assert_err!(
            load_err(&bad),
            LoadError::DeviceSection { ref idstr, offset, ref why }
                if idstr == "timex" && offset == full && why.contains("does not describe"),
            "cannot read device section 'timex'"
        );
        // Same name, another instance.
        let inst_at = name_at + 5;
        let bad = f.corrupt(|b| put_be32(b, inst_at, 1));
        assert_err!(
            load_err(&bad),
            LoadError::DeviceSection { ref idstr, .. } if idstr == "timer",
            "does not describe instance 1"
        );
    }
}

#[test]
fn device_sections_without_vmdesc_are_rejected() {
    for lay in BOTH {
        let f = Fixture::new(lay);
        let eof = f.info.eof_offset;
        assert_eq!(f.bytes[eof as usize], 0x00);
        assert_eq!(f.bytes[eof as usize + 1], 0x06);
        let full = f.section("FULL", 0);
        // No trailer at all.
        let mut bad = f.bytes.clone();
        bad.truncate(eof as usize + 1);
        assert_err!(
            load_err(&bad),
            LoadError::DeviceSection { ref idstr, offset, .. } if idstr == "timer" && offset == full,
            "the file has no vmdesc trailer describing device state"
        );
        // Something else than a trailer after EOF.
        let bad = f.corrupt(|b| b[eof as usize + 1] = 0x07);
        assert_err!(
            load_err(&bad),
            LoadError::DeviceSection { ref idstr, .. } if idstr == "timer",
            "no vmdesc trailer"
        );
        // A trailer whose JSON does not parse.
        let json = eof as usize + 6;
        assert_eq!(f.bytes[json], b'{');
        let bad = f.corrupt(|b| {
            let n = b.len();
            b[n - 1] = b'!';
        });
        assert_err!(
            load_err(&bad),
            LoadError::DeviceSection { ref idstr, .. } if idstr == "timer",
            "no vmdesc trailer"
        );
    }
}

#[test]
fn missing_vmdesc_without_devices_is_only_a_warning() {
    for lay in BOTH {
        let f = Fixture::with_devices(lay, &[]);
        let eof = f.info.eof_offset as usize;
        let mut cut = f.bytes.clone();
        cut.truncate(eof + 1);
        let info = load_with(&cut, &opts(lay.caps())).expect("no trailer is legal");
        assert_eq!(info.vmdesc_offset, None);
        assert!(
            info.warnings
                .iter()
                .any(|w| w.contains("Expected vmdescription section, but got 0")),
            "{:?}",
            info.warnings
        );
        let other = f.corrupt(|b| b[eof + 1] = 0x07);
        let info = load_with(&other, &opts(lay.caps())).expect("a wrong trailer byte is legal");
        assert!(
            info.warnings
                .iter()
                .any(|w| w.contains("Expected vmdescription section, but got 7")),
            "{:?}",
            info.warnings
        );
        // Garbage JSON is a warning too.
        let garbage = f.corrupt(|b| b[eof + 6] = b'#');
        let info = load_with(&garbage, &opts(lay.caps())).expect("bad JSON is legal");
        assert!(
            info.warnings.iter().any(|w| w.contains("not valid JSON")),
            "{:?}",
            info.warnings
        );
        // Bytes after the trailer are a warning.
        let mut longer = f.bytes.clone();
        longer.extend_from_slice(b"xyz");
        let info = load_with(&longer, &opts(lay.caps())).expect("trailing bytes are legal");
        assert!(
            info.warnings
                .iter()
                .any(|w| w.contains("3 bytes after the vmdesc trailer")),
            "{:?}",
            info.warnings
        );
    }
}

#[test]
fn truncated_vmdesc_without_devices_is_only_a_warning() {
    for lay in BOTH {
        let f = Fixture::with_devices(lay, &[]);
        let eof = f.info.eof_offset as usize;
        for cut in eof + 1..f.bytes.len() {
            let mut t = f.bytes.clone();
            t.truncate(cut);
            let r = load_with(&t, &opts(lay.caps()));
            assert!(r.is_ok(), "{lay:?} cut at {cut:#x}: {:?}", r.unwrap_err());
            assert!(!r.unwrap().warnings.is_empty());
        }
    }
}

// ---------------------------------------------------------------------------
// Truncation.

/// Load a truncated file every way; it must fail unless `cut` lies after
/// the EOF byte of a file without devices, and must not panic or
/// over-allocate.
fn check_truncated(full: &[u8], cut: usize, lay: Lay) -> Result<StreamInfo, LoadError> {
    let t = full[..cut].to_vec();
    let limit = cut + ALLOC_SLACK;
    let (r, big) = largest_alloc(|| reader::inspect(&t));
    assert!(
        big <= limit,
        "cut {cut}: inspect allocated {big} bytes at once"
    );
    let (r2, big) = largest_alloc(|| reader::load(&t, &LoadOptions::default(), &mut NullSink));
    assert!(
        big <= limit,
        "cut {cut}: load allocated {big} bytes at once"
    );
    // Machine checked, capabilities not: a cut right before the
    // capabilities subsection would otherwise be a (legitimate) mismatch.
    let o = LoadOptions {
        caps: None,
        ..opts(lay.caps())
    };
    let mut dest = Destination::new(&blocks(), true);
    let r3 = reader::load(&t, &o, &mut dest);
    let texts = |r: &Result<StreamInfo, LoadError>| match r {
        Ok(_) => "ok".to_string(),
        Err(e) => e.to_string(),
    };
    assert_eq!(texts(&r), texts(&r2), "cut {cut}");
    assert_eq!(texts(&r), texts(&r3), "cut {cut}");
    r
}

fn assert_truncation_error(e: &LoadError, cut: usize, first_full: u64) {
    let ok = if (cut as u64) <= first_full {
        matches!(
            e,
            LoadError::Truncated { .. }
                | LoadError::RegionOutOfFile { .. }
                | LoadError::CapabilityCount(..)
        )
    } else {
        matches!(
            e,
            LoadError::Truncated { .. }
                | LoadError::RegionOutOfFile { .. }
                | LoadError::DeviceSection { .. }
        )
    };
    assert!(ok, "cut at {cut:#x}: unexpected error {e:?} ({e})");
    if let LoadError::Truncated { file_len, .. } | LoadError::RegionOutOfFile { file_len, .. } = e {
        assert_eq!(*file_len, cut as u64, "cut at {cut:#x}: {e}");
    }
}

#[test]
fn truncated_sequential_file_at_every_length_is_rejected() {
    let f = Fixture::new(Lay::Sequential);
    let first_full = f.section("FULL", 0);
    let full = f.bytes.clone();
    within(300, "truncation of the sequential file", move || {
        for cut in 0..full.len() {
            match check_truncated(&full, cut, Lay::Sequential) {
                Ok(_) => panic!("cut at {cut:#x} loaded"),
                Err(e) => assert_truncation_error(&e, cut, first_full),
            }
        }
        assert!(check_truncated(&full, full.len(), Lay::Sequential).is_ok());
    });
}

#[test]
fn truncated_sequential_file_without_devices_at_every_length() {
    let f = Fixture::with_devices(Lay::Sequential, &[]);
    let eof = f.info.eof_offset as usize;
    let full = f.bytes.clone();
    within(300, "truncation of the device-less file", move || {
        for cut in 0..full.len() {
            let r = check_truncated(&full, cut, Lay::Sequential);
            if cut <= eof {
                let e = r.expect_err("a cut before the EOF byte must fail");
                assert!(
                    matches!(e, LoadError::Truncated { .. }),
                    "cut {cut:#x}: {e:?}"
                );
            } else if cut == eof + 1 {
                let info = r.expect("a file ending right after EOF loads");
                assert!(!info.warnings.is_empty());
            } else {
                // Inside the trailer: either a clean Truncated error or a
                // load with a warning (see truncated_vmdesc_without_devices_is_only_a_warning).
                match r {
                    Ok(info) => assert!(!info.warnings.is_empty()),
                    Err(e) => assert!(matches!(e, LoadError::Truncated { .. }), "{e:?}"),
                }
            }
        }
    });
}

#[test]
fn truncated_fixed_ram_file_at_representative_points_is_rejected() {
    let f = Fixture::new(Lay::FixedRam);
    let len = f.bytes.len() as u64;
    let mut cuts: Vec<u64> = vec![0, 1, 3, 4, 7, 8, 9, 12, 13, 20, 27, 28, 30];
    let (sub, count) = caps_count_at(&f);
    cuts.extend([
        sub,
        sub + 1,
        sub + 10,
        count,
        count + 2,
        count + 4,
        count + 6,
    ]);
    let s0 = f.ram_start();
    cuts.extend([s0, s0 + 1, s0 + 5, s0 + 9, s0 + 13, s0 + 17, s0 + 20]);
    for (i, b) in f.info.blocks.iter().enumerate() {
        let fr = f.fixed(i);
        let ul = f.used_length_at(i);
        let bitmap_end = fr.bitmap_offset + fr.bitmap_len;
        cuts.extend([
            b.record_offset,
            b.record_offset + 1,
            b.record_offset + 4,
            ul,
            ul + 4,
            fr.header_offset,
            fr.header_offset + 2,
            fr.header_offset + 4,
            fr.header_offset + 12,
            fr.header_offset + 20,
            fr.header_offset + 27,
            fr.bitmap_offset,
            fr.bitmap_offset + 3,
            bitmap_end - 1,
            bitmap_end,
            bitmap_end + 1,
            (bitmap_end + fr.pages_offset) / 2,
            fr.pages_offset - 1,
            fr.pages_offset,
            fr.pages_offset + 1,
            fr.pages_offset + PAGE,
            fr.pages_offset + b.used_length / 2,
            fr.pages_offset + b.used_length - 1,
            fr.pages_offset + b.used_length,
            fr.pages_offset + b.used_length + 4,
        ]);
    }
    for s in &f.info.sections {
        cuts.extend([
            s.offset,
            s.offset + 1,
            s.offset + s.len / 2,
            s.offset + s.len - 1,
        ]);
    }
    let eof = f.info.eof_offset;
    cuts.extend([
        eof,
        eof + 1,
        eof + 2,
        eof + 5,
        eof + 6,
        (eof + len) / 2,
        len - 1,
    ]);
    cuts.sort_unstable();
    cuts.dedup();
    cuts.retain(|&c| c < len);
    assert!(cuts.len() > 80, "{} cut points", cuts.len());
    let first_full = f.section("FULL", 0);
    let full = f.bytes.clone();
    within(300, "truncation of the fixed-ram file", move || {
        for cut in cuts {
            match check_truncated(&full, cut as usize, Lay::FixedRam) {
                Ok(_) => panic!("cut at {cut:#x} loaded"),
                Err(e) => assert_truncation_error(&e, cut as usize, first_full),
            }
        }
    });
}

// ---------------------------------------------------------------------------
// Byte flips.

/// Flip byte `i` (xor 0xFF), load the file every way, restore the byte.
/// Returns a description of a failure (panic or over-allocation).
fn flip_and_load(file: &mut Vec<u8>, i: usize, lay: Lay) -> Option<String> {
    file[i] ^= 0xFF;
    let limit = file.len() + ALLOC_SLACK;
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let (_, a) = largest_alloc(|| reader::inspect(&*file).is_ok());
        let (_, b) = largest_alloc(|| {
            let mut dest = Destination::new(&blocks(), true);
            reader::load(&*file, &opts(lay.caps()), &mut dest).is_ok()
        });
        let (_, c) =
            largest_alloc(|| reader::load(&*file, &LoadOptions::default(), &mut NullSink).is_ok());
        // The destination's own memory is allocated inside the closure.
        let dest_mem = (RAM_PAGES * PAGE) as usize;
        (a, b.saturating_sub(dest_mem), c)
    }));
    file[i] ^= 0xFF;
    match outcome {
        Err(_) => Some(format!("byte {i:#x}: load panicked")),
        Ok((a, b, c)) if a.max(b).max(c) > limit => Some(format!(
            "byte {i:#x}: allocated {} bytes at once",
            a.max(b).max(c)
        )),
        Ok(_) => None,
    }
}

#[test]
fn every_byte_flip_of_a_sequential_file_never_panics() {
    let f = Fixture::new(Lay::Sequential);
    let mut file = f.bytes.clone();
    let failures = within(300, "flipping every byte", move || {
        let mut failures = Vec::new();
        for i in 0..file.len() {
            failures.extend(flip_and_load(&mut file, i, Lay::Sequential));
        }
        failures
    });
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn sampled_byte_flips_of_a_fixed_ram_file_never_panic() {
    let f = Fixture::new(Lay::FixedRam);
    let len = f.bytes.len() as u64;
    let mut at: Vec<u64> = Vec::new();
    // Everything up to the end of the first block's bitmap (+ a bit of hole).
    let fr0 = f.fixed(0);
    at.extend(0..fr0.bitmap_offset + fr0.bitmap_len + 16);
    // The hole and the page area, sparsely.
    at.extend((fr0.bitmap_offset + fr0.bitmap_len..len).step_by(4093));
    // Every block's record, header and bitmap.
    for (i, b) in f.info.blocks.iter().enumerate() {
        let fr = f.fixed(i);
        at.extend(b.record_offset..fr.bitmap_offset + fr.bitmap_len + 16);
        at.extend([fr.pages_offset, fr.pages_offset + b.used_length - 1]);
    }
    // Everything after the last page area: EOS, PART/END, command,
    // devices, EOF, vmdesc.
    let fr1 = f.fixed(1);
    at.extend(fr1.pages_offset + f.info.blocks[1].used_length..len);
    at.sort_unstable();
    at.dedup();
    let mut file = f.bytes.clone();
    let failures = within(300, "flipping fixed-ram bytes", move || {
        let mut failures = Vec::new();
        for i in at {
            failures.extend(flip_and_load(&mut file, i as usize, Lay::FixedRam));
        }
        failures
    });
    assert!(failures.is_empty(), "{failures:#?}");
}

// ---------------------------------------------------------------------------
// Hostile vmdesc trailers (the device walk is driven by the file's JSON).

/// The file with its vmdesc trailer replaced by `json`.
fn with_vmdesc(f: &Fixture, json: &str) -> Vec<u8> {
    let eof = f.info.eof_offset as usize;
    let mut b = f.bytes[..=eof].to_vec();
    b.push(0x06);
    b.extend_from_slice(&(json.len() as u32).to_be_bytes());
    b.extend_from_slice(json.as_bytes());
    b
}

/// A vmdesc describing "timer" with `timer_fields` and "cpu" as its
/// 16-byte buffer.
fn vmdesc_json(timer_fields: &str) -> String {
    format!(
        r#"{{"page_size":4096,"devices":[{{"name":"timer","instance_id":0,"vmsd_name":"timer","version":2,"fields":[{timer_fields}]}},{{"name":"cpu","instance_id":0,"vmsd_name":"cpu","version":12,"fields":[{{"name":"state","type":"buffer","size":16}}]}}]}}"#
    )
}

#[test]
fn vmdesc_with_wrong_field_sizes_is_rejected() {
    for lay in BOTH {
        let f = Fixture::new(lay);
        // The rewritten trailer with the true description loads.
        let ok = with_vmdesc(
            &f,
            &vmdesc_json(r#"{"name":"state","type":"buffer","size":8}"#),
        );
        load_with(&ok, &opts(lay.caps())).expect("an equivalent trailer loads");
        // The timer said to be 9 bytes: its footer is misread.
        let bad = with_vmdesc(
            &f,
            &vmdesc_json(r#"{"name":"state","type":"buffer","size":9}"#),
        );
        assert_err!(
            load_err(&bad),
            LoadError::MissingFooter { ref idstr, .. } if idstr == "timer",
            "Missing section footer for timer"
        );
        // A field without a size.
        let bad = with_vmdesc(&f, &vmdesc_json(r#"{"name":"state","type":"buffer"}"#));
        assert_err!(
            load_err(&bad),
            LoadError::DeviceSection { ref idstr, ref why, .. }
                if idstr == "timer" && why.contains("has no size"),
            "field state has no size"
        );
        // size * array_len overflows.
        let bad = with_vmdesc(
            &f,
            &vmdesc_json(
                r#"{"name":"state","type":"buffer","size":4294967296,"array_len":4294967296}"#,
            ),
        );
        assert_err!(
            load_err(&bad),
            LoadError::DeviceSection { ref why, .. } if why.contains("overflows"),
            "size overflows"
        );
        // A huge field runs past the end of the file.
        let bad = with_vmdesc(
            &f,
            &vmdesc_json(r#"{"name":"state","type":"buffer","size":1099511627776}"#),
        );
        assert_err!(
            load_err(&bad),
            LoadError::DeviceSection { ref why, .. } if why.contains("truncated"),
            "cannot read device section 'timer'"
        );
        // A described subsection that is not in the stream.
        let bad = with_vmdesc(
            &f,
            &vmdesc_json(
                r#"{"name":"state","type":"buffer","size":8}],"subsections":[{"vmsd_name":"timer/sub","fields":[]}"#,
            ),
        );
        assert_err!(
            load_err(&bad),
            LoadError::DeviceSection { ref why, .. } if why.contains("subsection timer/sub not found"),
            "subsection timer/sub not found"
        );
    }
}

#[test]
fn vmdesc_huge_struct_array_hits_the_step_budget() {
    let f = Fixture::new(Lay::Sequential);
    let bad = with_vmdesc(
        &f,
        &vmdesc_json(
            r#"{"name":"s","type":"struct","array_len":1000000000000,"struct":{"fields":[]}}"#,
        ),
    );
    let e = within(60, "walking a huge struct array", move || load_err(&bad));
    assert_err!(
        e,
        LoadError::DeviceSection { ref why, .. } if why.contains("step budget"),
        "vmdesc walk exceeds its step budget"
    );
}

#[test]
fn vmdesc_struct_array_with_many_empty_fields_finishes_quickly() {
    let f = Fixture::new(Lay::Sequential);
    let inner: Vec<String> = (0..1000)
        .map(|i| format!(r#"{{"name":"z{i}","type":"uint8","size":0}}"#))
        .collect();
    let fields = format!(
        r#"{{"name":"s","type":"struct","array_len":4000000,"struct":{{"fields":[{}]}}}},{{"name":"state","type":"buffer","size":8}}"#,
        inner.join(",")
    );
    let bad = with_vmdesc(&f, &vmdesc_json(&fields));
    assert!(bad.len() < 64 * 1024);
    // Accepting (all fields are empty) or refusing (budget) are both
    // fine; taking minutes is not.
    let _ = within(30, "walking 4e6 x 1000 empty vmdesc fields", move || {
        reader::inspect(&bad).map(|_| ()).map_err(|e| e.to_string())
    });
}

// ---------------------------------------------------------------------------
// Work must stay (near) linear in the file size.

#[test]
fn many_devices_load_in_linear_time() {
    let devs: Vec<DeviceState> = (0..20_000)
        .map(|i| DeviceState {
            idstr: "dev".into(),
            instance_id: i,
            version_id: 1,
            payload: vec![i as u8; 2],
        })
        .collect();
    let mut w =
        MigrationWriter::start(Vec::new(), MACHINE, &Capabilities::none(), blocks()).unwrap();
    w.begin_iteration().unwrap();
    w.save_page(1, 0, &page(1)).unwrap();
    w.end_iteration().unwrap();
    w.begin_completion().unwrap();
    let (file, _) = w.finish(&devs).unwrap();
    let n = within(10, "inspecting 20,000 device sections", move || {
        reader::inspect(&file).map(|i| i.sections.len())
    });
    assert_eq!(n.unwrap(), 20_000 + 4);
}

#[test]
fn long_block_list_loads_in_linear_time() {
    use migsim_format::stream::{self, kind};
    use migsim_format::wire::Encoder;
    let n = 50_000u64;
    let mut e = Encoder::new();
    stream::encode_preamble(&mut e, MACHINE, &[]);
    stream::encode_section_start(&mut e, kind::START, 0, "ram", 0, 4);
    e.be64((n * PAGE) | 0x04);
    for i in 0..n {
        e.short_str(&format!("b{i:x}")).be64(PAGE);
    }
    e.be64(0x10);
    stream::encode_footer(&mut e, 0);
    e.u8(kind::EOF);
    let file = e.buf;
    let r = within(10, "inspecting a 50,000-block list", move || {
        reader::inspect(&file).map(|i| i.blocks.len())
    });
    assert_eq!(r.unwrap(), n as usize);
}
