//! The valid files every malformed-input test starts from, and byte
//! helpers to corrupt them.

use migsim_format::LoadError;
use migsim_format::caps::{Capabilities, Capability};
use migsim_format::reader::{self, LoadOptions, NullSink, StreamInfo};
use migsim_format::writer::{DeviceState, MigrationWriter, RamBlockDesc};
use migsim_harness::sim::dest::Destination;

use crate::alloc::*;

// ---------------------------------------------------------------------------
// Fixtures.

pub(crate) const MACHINE: &str = "pc-i440fx-10.0";
pub(crate) const PAGE: u64 = 4096;
pub(crate) const PAGE_US: usize = 4096;
/// pc.ram pages.
pub(crate) const RAM_PAGES: u64 = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lay {
    Sequential,
    FixedRam,
}

pub(crate) const BOTH: [Lay; 2] = [Lay::Sequential, Lay::FixedRam];

impl Lay {
    pub(crate) fn caps(self) -> Capabilities {
        match self {
            Lay::Sequential => Capabilities::none(),
            Lay::FixedRam => Capabilities::from_enabled(&[Capability::FixedRam]).unwrap(),
        }
    }
}

/// Two RAMBlocks of equal name length (so one can be renamed into the
/// other): a 16-page one and a one-page one.
pub(crate) fn blocks() -> Vec<RamBlockDesc> {
    vec![
        RamBlockDesc {
            name: "pc.ram".into(),
            used_length: RAM_PAGES * PAGE,
            shared: false,
        },
        RamBlockDesc {
            name: "pc.rom".into(),
            used_length: PAGE,
            shared: false,
        },
    ]
}

/// A recognisable non-zero page.
pub(crate) fn page(tag: u8) -> Vec<u8> {
    (0..PAGE_US)
        .map(|i| (i as u8).wrapping_mul(7) ^ tag)
        .collect()
}

pub(crate) fn zero_page() -> Vec<u8> {
    vec![0; PAGE_US]
}

pub(crate) fn devices() -> Vec<DeviceState> {
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
pub(crate) fn write(lay: Lay, devs: &[DeviceState]) -> Vec<u8> {
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
pub(crate) fn expected_memory() -> Vec<Vec<u8>> {
    let mut ram = vec![0u8; (RAM_PAGES * PAGE) as usize];
    ram[0..PAGE_US].copy_from_slice(&page(0x55));
    ram[2 * PAGE_US..3 * PAGE_US].copy_from_slice(&page(0x44));
    vec![ram, page(0x22)]
}

pub(crate) fn opts(caps: Capabilities) -> LoadOptions {
    LoadOptions {
        machine: Some(MACHINE.into()),
        caps: Some(caps),
        skip_page_data: false,
        ..LoadOptions::default()
    }
}

pub(crate) fn assert_memory(dest: &Destination) {
    for (b, mem) in expected_memory().iter().enumerate() {
        for p in 0..(mem.len() / PAGE_US) {
            assert!(
                dest.page(b, p as u64) == &mem[p * PAGE_US..(p + 1) * PAGE_US],
                "block {b} page {p} differs from what was migrated"
            );
        }
    }
}

pub(crate) struct Fixture {
    pub(crate) bytes: Vec<u8>,
    pub(crate) info: StreamInfo,
}

impl Fixture {
    /// Build a valid file and check that it loads, into a clean and into a
    /// dirty destination, with the right memory.
    pub(crate) fn new(lay: Lay) -> Self {
        Self::with_devices(lay, &devices())
    }

    pub(crate) fn with_devices(lay: Lay, devs: &[DeviceState]) -> Self {
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

    pub(crate) fn section(&self, kind: &str, nth: usize) -> u64 {
        self.info
            .sections
            .iter()
            .filter(|s| s.kind.name() == kind)
            .nth(nth)
            .unwrap_or_else(|| panic!("no {kind} section #{nth}"))
            .offset
    }

    pub(crate) fn ram_start(&self) -> u64 {
        let s = &self.info.sections[0];
        assert_eq!((s.kind.name(), s.idstr.as_str()), ("START", "ram"));
        s.offset
    }

    /// Offset of block `i`'s used_length field.
    pub(crate) fn used_length_at(&self, i: usize) -> u64 {
        let b = &self.info.blocks[i];
        b.record_offset + 1 + b.name.len() as u64
    }

    pub(crate) fn fixed(&self, i: usize) -> &reader::FixedRamInfo {
        self.info.blocks[i].fixed_ram.as_ref().unwrap()
    }

    /// A copy with `f` applied.
    pub(crate) fn corrupt(&self, f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut b = self.bytes.clone();
        f(&mut b);
        b
    }
}

pub(crate) fn be16_at(b: &[u8], at: u64) -> u16 {
    let at = at as usize;
    u16::from_be_bytes(b[at..at + 2].try_into().unwrap())
}
pub(crate) fn be32_at(b: &[u8], at: u64) -> u32 {
    let at = at as usize;
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}
pub(crate) fn be64_at(b: &[u8], at: u64) -> u64 {
    let at = at as usize;
    u64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}
pub(crate) fn put(b: &mut [u8], at: u64, data: &[u8]) {
    let at = at as usize;
    b[at..at + data.len()].copy_from_slice(data);
}
pub(crate) fn put_be16(b: &mut [u8], at: u64, v: u16) {
    put(b, at, &v.to_be_bytes());
}
pub(crate) fn put_be32(b: &mut [u8], at: u64, v: u32) {
    put(b, at, &v.to_be_bytes());
}
pub(crate) fn put_be64(b: &mut [u8], at: u64, v: u64) {
    put(b, at, &v.to_be_bytes());
}
pub(crate) fn find(hay: &[u8], needle: &[u8]) -> u64 {
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
pub(crate) fn load_err(file: &Vec<u8>) -> LoadError {
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
pub(crate) fn load_with(file: &Vec<u8>, o: &LoadOptions) -> Result<StreamInfo, LoadError> {
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
pub(crate) use assert_err;

/// Offset of the MEM_SIZE word.
pub(crate) fn mem_size_at(f: &Fixture) -> u64 {
    // type, id, "\x03ram", instance, version
    let at = f.ram_start() + 1 + 4 + 4 + 4 + 4;
    assert_eq!(be64_at(&f.bytes, at), ((RAM_PAGES + 1) * PAGE) | 0x04);
    at
}

/// Offset of the be32 capability count in a fixed-ram file.
pub(crate) fn caps_count_at(f: &Fixture) -> (u64, u64) {
    let name = find(&f.bytes, b"configuration/capabilities");
    let sub = name - 2; // 0x05, length byte
    assert_eq!(f.bytes[sub as usize], 0x05);
    let count = name + 26 + 4;
    assert_eq!(be32_at(&f.bytes, count), 1);
    (sub, count)
}
