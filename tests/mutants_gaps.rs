//! Tests that pin behaviour cargo-mutants found unpinned in the product
//! code (`src/format/`, `src/caps.rs`): each one kills at least one
//! mutant that survived the rest of the suite. They go through the public
//! API only.

use migsim_format::LoadError;
use migsim_format::SaveError;
use migsim_format::caps::{Capabilities, Capability, CapsError};
use migsim_format::io::{DiskFile, MigFile};
use migsim_format::ram::is_zero_page;
use migsim_format::reader::{self, LoadOptions, RamSink, StreamInfo};
use migsim_format::stream;
use migsim_format::vmdesc::Vmdesc;
use migsim_format::wire::{Cursor, Encoder, printable};
use migsim_format::writer::{DeviceState, MigrationWriter, RamBlockDesc};
use migsim_harness::bugs::{Bug, BugHooks};
use migsim_harness::sim::dest::Destination;

const MACHINE: &str = "pc-i440fx-10.0";
const PAGE: usize = 4096;

fn fixed() -> Capabilities {
    Capabilities::from_enabled(&[Capability::FixedRam]).unwrap()
}

fn block(name: &str, pages: u64) -> RamBlockDesc {
    RamBlockDesc {
        name: name.into(),
        used_length: pages * PAGE as u64,
    }
}

/// A recognisable non-zero page.
fn page(tag: u8) -> Vec<u8> {
    (0..PAGE)
        .map(|i| (i as u8).wrapping_mul(13) ^ tag)
        .collect()
}

fn setup_err(r: Result<impl Sized, SaveError>) -> String {
    match r {
        Err(SaveError::Setup(m)) => m,
        Err(e) => panic!("expected a setup error, got {e:?}"),
        Ok(_) => panic!("expected a setup error, got Ok"),
    }
}

fn start(
    caps: &Capabilities,
    blocks: Vec<RamBlockDesc>,
) -> Result<MigrationWriter<Vec<u8>>, SaveError> {
    MigrationWriter::start(Vec::new(), MACHINE, caps, blocks)
}

fn load_opts(caps: Capabilities) -> LoadOptions {
    LoadOptions {
        machine: Some(MACHINE.into()),
        caps: Some(caps),
        skip_page_data: false,
        ..LoadOptions::default()
    }
}

// ---------------------------------------------------------------------------
// Writer: setup validation.

#[test]
fn writer_refuses_an_empty_block_list() {
    for caps in [Capabilities::none(), fixed()] {
        let m = setup_err(start(&caps, vec![]));
        assert!(m.contains("at least one RAMBlock"), "{m}");
    }
}

#[test]
fn writer_refuses_block_names_outside_1_to_255_bytes() {
    let m = setup_err(start(&Capabilities::none(), vec![block("", 1)]));
    assert!(m.contains("must be 1..=255 bytes"), "{m}");
    let long = "b".repeat(256);
    let m = setup_err(start(&Capabilities::none(), vec![block(&long, 1)]));
    assert!(m.contains("must be 1..=255 bytes"), "{m}");
    // 255 bytes is the longest name a short string can carry: accepted, and
    // the reader gets it back intact.
    let name = "n".repeat(255);
    let mut w = start(&Capabilities::none(), vec![block(&name, 1)]).unwrap();
    w.begin_completion().unwrap();
    w.save_page(0, 0, &page(1)).unwrap();
    let (file, _) = w.finish(&[]).unwrap();
    let info = reader::inspect(&file).unwrap();
    assert_eq!(info.blocks[0].name, name);
}

#[test]
fn writer_refuses_used_length_zero_or_not_page_multiple() {
    for used_length in [0, 100, 4096 + 1, 3 * 4096 - 512] {
        let b = RamBlockDesc {
            name: "pc.ram".into(),
            used_length,
        };
        let m = setup_err(start(&Capabilities::none(), vec![b]));
        assert!(m.contains("must be a positive multiple of 4096"), "{m}");
    }
    // Exact multiples are fine, including a single page.
    for pages in [1, 2, 17] {
        assert!(start(&Capabilities::none(), vec![block("pc.ram", pages)]).is_ok());
    }
}

#[test]
fn writer_refuses_a_block_declared_twice() {
    let m = setup_err(start(
        &fixed(),
        vec![block("pc.ram", 2), block("vga", 1), block("pc.ram", 2)],
    ));
    assert!(m.contains("RAMBlock pc.ram declared twice"), "{m}");
    // Distinct names are fine.
    assert!(start(&fixed(), vec![block("pc.ram", 2), block("vga", 1)]).is_ok());
}

// ---------------------------------------------------------------------------
// Writer: call order.

#[test]
fn writer_refuses_pages_outside_a_ram_section() {
    for caps in [Capabilities::none(), fixed()] {
        let mut w = start(&caps, vec![block("pc.ram", 4)]).unwrap();
        let m = setup_err(w.save_page(0, 0, &page(1)));
        assert!(m.contains("save_page outside a RAM section"), "{m}");
        w.begin_iteration().unwrap();
        w.save_page(0, 0, &page(1)).unwrap();
        w.end_iteration().unwrap();
        let m = setup_err(w.save_page(0, 1, &page(2)));
        assert!(m.contains("save_page outside a RAM section"), "{m}");
    }
}

#[test]
fn writer_refuses_to_open_a_section_while_one_is_open() {
    let mut w = start(&Capabilities::none(), vec![block("pc.ram", 4)]).unwrap();
    w.begin_iteration().unwrap();
    let m = setup_err(w.begin_iteration());
    assert!(m.contains("already open"), "{m}");
    let m = setup_err(w.begin_completion());
    assert!(m.contains("already open"), "{m}");
    w.end_iteration().unwrap();
    assert_eq!(w.stats().iterations, 1, "the refused opens counted nothing");
    w.begin_completion().unwrap();
    let m = setup_err(w.begin_iteration());
    assert!(m.contains("already open"), "{m}");
}

#[test]
fn writer_refuses_end_iteration_without_an_open_part() {
    let mut w = start(&Capabilities::none(), vec![block("pc.ram", 4)]).unwrap();
    let m = setup_err(w.end_iteration());
    assert!(m.contains("end_iteration without begin_iteration"), "{m}");
    w.begin_completion().unwrap();
    let m = setup_err(w.end_iteration());
    assert!(m.contains("end_iteration without begin_iteration"), "{m}");
}

#[test]
fn writer_refuses_finish_without_begin_completion() {
    let w = start(&fixed(), vec![block("pc.ram", 4)]).unwrap();
    let m = setup_err(w.finish(&[]));
    assert!(m.contains("finish without begin_completion"), "{m}");
    let mut w = start(&fixed(), vec![block("pc.ram", 4)]).unwrap();
    w.begin_iteration().unwrap();
    let m = setup_err(w.finish(&[]));
    assert!(m.contains("finish without begin_completion"), "{m}");
}

#[test]
fn writer_refuses_a_page_outside_its_block_or_of_the_wrong_size() {
    for caps in [Capabilities::none(), fixed()] {
        let mut w = start(&caps, vec![block("pc.ram", 4), block("vga", 1)]).unwrap();
        w.begin_iteration().unwrap();
        // Last page of each block: fine.
        w.save_page(0, 3, &page(1)).unwrap();
        w.save_page(1, 0, &page(2)).unwrap();
        // One past the end.
        let m = setup_err(w.save_page(0, 4, &page(3)));
        assert!(m.contains("outside block pc.ram of 4 pages"), "{m}");
        let m = setup_err(w.save_page(1, 1, &page(3)));
        assert!(m.contains("outside block vga of 1 pages"), "{m}");
        // No such block.
        let m = setup_err(w.save_page(2, 0, &page(3)));
        assert!(m.contains("no block 2"), "{m}");
        // Short or long data.
        for len in [0, PAGE - 1, PAGE + 1, 2 * PAGE] {
            let m = setup_err(w.save_page(0, 0, &vec![7u8; len]));
            assert!(m.contains(&format!("({len} bytes)")), "{m}");
        }
        w.end_iteration().unwrap();
        assert_eq!(w.stats().pages_written, 2, "refused pages are not counted");
        assert_eq!(w.stats().zero_pages, 0);
    }
}

#[test]
fn writer_refuses_device_idstr_empty_or_longer_than_255_bytes() {
    let dev = |idstr: String| DeviceState {
        idstr,
        instance_id: 0,
        version_id: 1,
        payload: vec![1, 2, 3],
    };
    for bad in [String::new(), "d".repeat(256)] {
        let mut w = start(&Capabilities::none(), vec![block("pc.ram", 1)]).unwrap();
        w.begin_completion().unwrap();
        let m = setup_err(w.finish(&[dev(bad.clone())]));
        assert!(m.contains("bad device idstr"), "{m}");
    }
    // 255 bytes is accepted and walks back through the vmdesc trailer.
    let name = "d".repeat(255);
    let mut w = start(&Capabilities::none(), vec![block("pc.ram", 1)]).unwrap();
    w.begin_completion().unwrap();
    let (file, _) = w.finish(&[dev(name.clone())]).unwrap();
    let info = reader::inspect(&file).unwrap();
    let full: Vec<_> = info
        .sections
        .iter()
        .filter(|s| s.kind == migsim_format::SectionKind::Full)
        .collect();
    assert_eq!(full.len(), 1);
    assert_eq!(full[0].idstr, name);
    assert_eq!(info.vmdesc_devices, 1);
}

// ---------------------------------------------------------------------------
// Reader: configuration subsections.

/// A sequential file (no absolute offsets, so bytes can be inserted into
/// its configuration section) with two blocks and known memory.
fn sequential_file() -> (Vec<u8>, Vec<RamBlockDesc>) {
    let blocks = vec![block("pc.ram", 4), block("vga", 1)];
    let mut w = start(&Capabilities::none(), blocks.clone()).unwrap();
    w.begin_iteration().unwrap();
    w.save_page(0, 0, &page(0x10)).unwrap();
    w.save_page(0, 1, &vec![0; PAGE]).unwrap();
    w.save_page(1, 0, &page(0x20)).unwrap();
    w.save_page(0, 2, &page(0x30)).unwrap();
    w.end_iteration().unwrap();
    w.begin_completion().unwrap();
    w.save_page(0, 3, &page(0x40)).unwrap();
    let dev = DeviceState {
        idstr: "timer".into(),
        instance_id: 0,
        version_id: 2,
        payload: (1..=8).collect(),
    };
    let (file, _) = w.finish(&[dev]).unwrap();
    (file, blocks)
}

fn subsection(name: &str, body: &[u8]) -> Vec<u8> {
    let mut s = vec![0x05, name.len() as u8];
    s.extend_from_slice(name.as_bytes());
    s.extend_from_slice(&1u32.to_be_bytes());
    s.extend_from_slice(body);
    s
}

/// Offset right after the machine name of the configuration section.
fn after_machine_name(file: &[u8]) -> usize {
    assert_eq!(file[8], 0x07);
    let n = u32::from_be_bytes(file[9..13].try_into().unwrap()) as usize;
    13 + n
}

#[test]
fn uuid_and_target_page_bits_configuration_subsections_are_skipped() {
    let (file, blocks) = sequential_file();
    let at = after_machine_name(&file);
    let mut extra = subsection("configuration/target-page-bits", &12u32.to_be_bytes());
    extra.extend(subsection("configuration/uuid", &[0xAB; 16]));
    let mut patched = file[..at].to_vec();
    patched.extend_from_slice(&extra);
    patched.extend_from_slice(&file[at..]);

    let mut want = Destination::new(&blocks, true);
    let base = reader::load(&file, &load_opts(Capabilities::none()), &mut want).unwrap();
    let mut got = Destination::new(&blocks, true);
    let info = reader::load(&patched, &load_opts(Capabilities::none()), &mut got)
        .expect("a file with uuid and target-page-bits subsections loads");
    assert_eq!(info.machine, MACHINE);
    assert_eq!(info.blocks.len(), 2);
    assert_eq!(info.blocks[0].pages_present, base.blocks[0].pages_present);
    assert_eq!(
        info.sections[0].offset,
        base.sections[0].offset + extra.len() as u64,
        "the RAM section starts right after the skipped subsections"
    );
    for (b, d) in blocks.iter().enumerate() {
        for p in 0..d.pages() {
            assert_eq!(got.page(b, p), want.page(b, p), "block {b} page {p}");
        }
    }
    // Each one alone, too (so neither depends on the other's presence).
    for sub in [
        subsection("configuration/uuid", &[0; 16]),
        subsection("configuration/target-page-bits", &12u32.to_be_bytes()),
    ] {
        let mut p = file[..at].to_vec();
        p.extend_from_slice(&sub);
        p.extend_from_slice(&file[at..]);
        let i = reader::inspect(&p).unwrap();
        assert_eq!(i.sections.len(), base.sections.len());
    }
    // A subsection of another name is still refused.
    let mut p = file[..at].to_vec();
    p.extend_from_slice(&subsection("configuration/other", &[0; 4]));
    p.extend_from_slice(&file[at..]);
    assert!(matches!(
        reader::inspect(&p),
        Err(LoadError::UnknownConfigSubsection(ref n, _)) if n == "configuration/other"
    ));
}

// ---------------------------------------------------------------------------
// Reader: how fixed-ram pages reach the sink.

/// A sink that records every call.
#[derive(Default)]
struct Recorder {
    declared: Vec<(String, u64)>,
    /// (block, first page, pages, first byte of each page)
    writes: Vec<(usize, u64, u64, Vec<u8>)>,
    /// (block, first page, pages)
    zeros: Vec<(usize, u64, u64)>,
}

impl RamSink for Recorder {
    fn declare_block(&mut self, name: &str, used_length: u64) -> Result<(), LoadError> {
        self.declared.push((name.to_string(), used_length));
        Ok(())
    }
    fn write_pages(&mut self, block: usize, first: u64, data: &[u8]) -> Result<(), LoadError> {
        assert_eq!(data.len() % PAGE, 0);
        let tags = data.chunks(PAGE).map(|p| p[1]).collect();
        self.writes
            .push((block, first, (data.len() / PAGE) as u64, tags));
        Ok(())
    }
    fn zero_pages(&mut self, block: usize, first: u64, count: u64) -> Result<(), LoadError> {
        self.zeros.push((block, first, count));
        Ok(())
    }
}

/// A page whose byte 1 is `tag` (byte 0 differs so the page is never zero).
fn tagged(tag: u8) -> Vec<u8> {
    let mut p = vec![0xEE; PAGE];
    p[1] = tag;
    p
}

#[test]
fn fixed_ram_set_runs_reach_the_sink_in_maximal_chunks_of_at_most_1_mib() {
    // pc.ram: 600 pages; pages 0..=599 set except 300 and 301.
    // vga: 3 pages, only page 2 set.
    let blocks = vec![block("pc.ram", 600), block("vga", 3)];
    let mut w = start(&fixed(), blocks.clone()).unwrap();
    w.begin_iteration().unwrap();
    for p in 0..600u64 {
        if p != 300 && p != 301 {
            w.save_page(0, p, &tagged(p as u8)).unwrap();
        }
    }
    w.save_page(1, 2, &tagged(0x77)).unwrap();
    w.end_iteration().unwrap();
    w.begin_completion().unwrap();
    let (file, _) = w.finish(&[]).unwrap();

    let mut rec = Recorder::default();
    let info = reader::load(&file, &load_opts(fixed()), &mut rec).unwrap();
    assert_eq!(
        rec.declared,
        [
            ("pc.ram".to_string(), 600 * 4096),
            ("vga".to_string(), 3 * 4096)
        ]
    );
    assert_eq!(info.blocks[0].pages_present, 598);
    assert_eq!(info.blocks[1].pages_present, 1);
    let spans: Vec<_> = rec.writes.iter().map(|w| (w.0, w.1, w.2)).collect();
    assert_eq!(
        spans,
        [
            (0, 0, 256),
            (0, 256, 44),
            (0, 302, 256),
            (0, 558, 42),
            (1, 2, 1)
        ],
        "runs of set bits, cut at 256 pages (1 MiB)"
    );
    for (block, first, n, tags) in &rec.writes {
        let want: Vec<u8> = if *block == 0 {
            (*first..first + n).map(|p| p as u8).collect()
        } else {
            vec![0x77]
        };
        assert_eq!(tags, &want, "page data of block {block} from page {first}");
    }
    assert_eq!(
        rec.zeros,
        [(0, 300, 2), (1, 0, 2)],
        "each run of clear bits is zeroed in one call"
    );
    // With skip_page_data no page is read, but clear runs are still zeroed.
    let mut rec = Recorder::default();
    let opts = LoadOptions {
        skip_page_data: true,
        ..load_opts(fixed())
    };
    reader::load(&file, &opts, &mut rec).unwrap();
    assert!(rec.writes.is_empty(), "skip_page_data reads no page");
    assert_eq!(rec.zeros, [(0, 300, 2), (1, 0, 2)]);
}

// ---------------------------------------------------------------------------
// Bug variants: each deliberately wrong hook does exactly its documented
// wrong thing, and only when injected.

fn page_at(file: &[u8], off: u64) -> &[u8] {
    &file[off as usize..off as usize + PAGE]
}

/// Write pc.ram p1 (0x11) and p2 (then zeroed), vga p0 (0x22), with `bug`.
fn fixed_file_with(bug: Option<Bug>) -> Vec<u8> {
    let mut w = start(&fixed(), vec![block("pc.ram", 4), block("vga", 2)])
        .unwrap()
        .with_hooks(BugHooks(bug));
    w.begin_iteration().unwrap();
    w.save_page(0, 1, &page(0x11)).unwrap();
    w.save_page(0, 2, &page(0x33)).unwrap();
    w.save_page(1, 0, &page(0x22)).unwrap();
    w.end_iteration().unwrap();
    w.begin_completion().unwrap();
    w.save_page(0, 2, &vec![0; PAGE]).unwrap();
    w.finish(&[]).unwrap().0
}

fn bitmap_byte(file: &[u8], info: &StreamInfo, b: usize) -> u8 {
    file[info.blocks[b].fixed_ram.as_ref().unwrap().bitmap_offset as usize]
}

#[test]
fn writer_without_injected_bug_writes_the_documented_layout() {
    let file = fixed_file_with(None);
    let info = reader::inspect(&file).unwrap();
    let fr = |b: usize| info.blocks[b].fixed_ram.clone().unwrap();
    assert_eq!(page_at(&file, fr(0).pages_offset + 4096), page(0x11));
    assert_eq!(page_at(&file, fr(1).pages_offset), page(0x22));
    assert_eq!(
        bitmap_byte(&file, &info, 0),
        0b0000_0010,
        "p1 set, p2 cleared"
    );
    assert_eq!(bitmap_byte(&file, &info, 1), 0b0000_0001);
}

#[test]
fn bug_off_by_one_later_block_shifts_only_later_blocks() {
    let file = fixed_file_with(Some(Bug::OffByOneLaterBlock));
    let info = reader::inspect(&file).unwrap();
    let fr = |b: usize| info.blocks[b].fixed_ram.clone().unwrap();
    assert_eq!(
        page_at(&file, fr(0).pages_offset + 4096),
        page(0x11),
        "block 0 is not shifted"
    );
    assert_eq!(
        page_at(&file, fr(1).pages_offset + 4096),
        page(0x22),
        "block 1 page 0 lands in slot 1"
    );
    assert_ne!(page_at(&file, fr(1).pages_offset), page(0x22));
}

#[test]
fn bug_zero_page_keeps_bit_keeps_only_bits_already_set() {
    let file = fixed_file_with(Some(Bug::ZeroPageKeepsBit));
    let info = reader::inspect(&file).unwrap();
    assert_eq!(
        bitmap_byte(&file, &info, 0),
        0b0000_0110,
        "zeroed p2 keeps its bit"
    );
    // A page that is zero the first time it is sent gets no bit.
    let mut w = start(&fixed(), vec![block("pc.ram", 4)])
        .unwrap()
        .with_hooks(BugHooks(Some(Bug::ZeroPageKeepsBit)));
    w.begin_completion().unwrap();
    w.save_page(0, 3, &vec![0; PAGE]).unwrap();
    let file = w.finish(&[]).unwrap().0;
    let info = reader::inspect(&file).unwrap();
    assert_eq!(bitmap_byte(&file, &info, 0), 0);
}

#[test]
fn bug_bitmap_wrong_bit_order_writes_msb_first() {
    let file = fixed_file_with(Some(Bug::BitmapWrongBitOrder));
    let info = reader::inspect(&file).unwrap();
    assert_eq!(bitmap_byte(&file, &info, 0), 0b0100_0000);
    assert_eq!(bitmap_byte(&file, &info, 1), 0b1000_0000);
}

#[test]
fn bug_reader_skips_clear_bits_leaves_stale_destination_pages() {
    let file = fixed_file_with(None);
    let blocks = vec![block("pc.ram", 4), block("vga", 2)];
    for (bug, stale) in [(None, false), (Some(Bug::ReaderSkipsClearBits), true)] {
        let mut dest = Destination::new(&blocks, true);
        let opts = LoadOptions {
            clear_bit_pages: migsim_harness::bugs::clear_bit_pages(bug),
            ..load_opts(fixed())
        };
        reader::load(&file, &opts, &mut dest).unwrap();
        assert_eq!(dest.page(0, 1), page(0x11));
        let garbage = vec![migsim_harness::sim::dest::GARBAGE; PAGE];
        let zero = vec![0; PAGE];
        for (b, p) in [(0, 0), (0, 2), (0, 3), (1, 1)] {
            let want = if stale { &garbage } else { &zero };
            assert_eq!(
                dest.page(b, p),
                want.as_slice(),
                "{bug:?} block {b} page {p}"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Capabilities.

#[test]
fn incoming_stream_listing_a_non_validated_capability_is_refused() {
    // Only validated capabilities (fixed-ram) travel in the configuration
    // section; a known but non-validated name is as foreign as an unknown one.
    for dest in [Capabilities::none(), fixed()] {
        for name in ["multifd", "xbzrle", "compress", "postcopy-ram"] {
            let got = dest.check_incoming(&[name.to_string()]);
            assert_eq!(
                got,
                Err(CapsError::UnknownCapability(name.to_string())),
                "{name}"
            );
            assert_eq!(
                got.unwrap_err().to_string(),
                format!("Received unknown capability {name}")
            );
        }
    }
    // The validated one is accepted when the settings agree.
    assert_eq!(fixed().check_incoming(&["fixed-ram".to_string()]), Ok(()));
}

// ---------------------------------------------------------------------------
// Reader: the RAM section's framing.

#[test]
fn ram_sent_as_a_full_section_is_refused() {
    for caps in [Capabilities::none(), fixed()] {
        let mut w = start(&caps, vec![block("pc.ram", 2)]).unwrap();
        w.begin_completion().unwrap();
        w.save_page(0, 1, &page(5)).unwrap();
        let mut file = w.finish(&[]).unwrap().0;
        let info = reader::inspect(&file).unwrap();
        let s = &info.sections[0];
        assert_eq!((s.kind.name(), s.idstr.as_str()), ("START", "ram"));
        // Same bytes, but announced as a FULL (non-iterative) section.
        file[s.offset as usize] = 0x04;
        match reader::inspect(&file) {
            Err(LoadError::RamSection(why)) => assert!(why.contains("one START section"), "{why}"),
            other => panic!("expected RamSection, got {other:?}"),
        }
    }
}

/// A file that counts the bytes read from it.
struct CountingFile {
    bytes: Vec<u8>,
    read: std::sync::atomic::AtomicU64,
}

impl MigFile for CountingFile {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.bytes.write_at(offset, data)
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.bytes.read_at(offset, buf)?;
        self.read
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
    fn len(&self) -> u64 {
        MigFile::len(&self.bytes)
    }
    fn seekable(&self) -> bool {
        true
    }
}

#[test]
fn inspect_does_not_read_fixed_ram_page_data() {
    let pages = 1024u64; // 4 MiB of set pages
    let mut w = start(&fixed(), vec![block("pc.ram", pages)]).unwrap();
    w.begin_completion().unwrap();
    for p in 0..pages {
        w.save_page(0, p, &tagged(p as u8)).unwrap();
    }
    let file = CountingFile {
        bytes: w.finish(&[]).unwrap().0,
        read: std::sync::atomic::AtomicU64::new(0),
    };
    let info = reader::inspect(&file).unwrap();
    assert_eq!(info.blocks[0].pages_present, pages);
    let inspected = file.read.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        inspected < pages * 4096 / 8,
        "inspect read {inspected} bytes of a file with {} bytes of pages",
        pages * 4096
    );
    // A load that wants the pages does read them.
    file.read.store(0, std::sync::atomic::Ordering::Relaxed);
    reader::load(&file, &LoadOptions::default(), &mut Recorder::default()).unwrap();
    assert!(file.read.load(std::sync::atomic::Ordering::Relaxed) >= pages * 4096);
}

#[test]
fn capability_count_may_equal_the_bytes_left() {
    // The count is refused only when it exceeds the bytes left: `n` empty
    // names fit in exactly `n` bytes. This file then ends before its first
    // section, which is reported as such.
    let n = 5u32;
    let mut f = Vec::new();
    f.extend_from_slice(&0x5145_564Du32.to_be_bytes());
    f.extend_from_slice(&3u32.to_be_bytes());
    f.push(0x07);
    f.extend_from_slice(&(MACHINE.len() as u32).to_be_bytes());
    f.extend_from_slice(MACHINE.as_bytes());
    let caps_at = f.len() as u64;
    f.extend(subsection("configuration/capabilities", &n.to_be_bytes()));
    f.extend(std::iter::repeat_n(0u8, n as usize));
    match reader::inspect(&f) {
        Err(LoadError::Truncated { what, offset, .. }) => {
            assert_eq!(what, "section type");
            assert_eq!(offset, f.len() as u64);
        }
        other => panic!("expected Truncated at the first section, got {other:?}"),
    }
    // One more than the bytes left is refused up front.
    let last = f.len() - 4 - n as usize;
    f[last..last + 4].copy_from_slice(&(n + 1).to_be_bytes());
    match reader::inspect(&f) {
        Err(LoadError::CapabilityCount(c, at)) => assert_eq!((c, at), (n + 1, caps_at)),
        other => panic!("expected CapabilityCount, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Stream primitives.

#[test]
fn preamble_lists_capabilities_only_when_there_are_some() {
    let mut e = Encoder::new();
    stream::encode_preamble(&mut e, "pc", &[]);
    let mut want = vec![
        b'Q', b'E', b'V', b'M', 0, 0, 0, 3, 0x07, 0, 0, 0, 2, b'p', b'c',
    ];
    assert_eq!(e.buf, want, "no capabilities: no subsection");
    let mut e = Encoder::new();
    stream::encode_preamble(&mut e, "pc", &["fixed-ram"]);
    want.push(0x05);
    want.push(26);
    want.extend_from_slice(b"configuration/capabilities");
    want.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, 9]);
    want.extend_from_slice(b"fixed-ram");
    assert_eq!(e.buf, want);
}

#[test]
fn section_type_bytes_have_their_names() {
    let names = [
        (0x00, "EOF"),
        (0x01, "START"),
        (0x02, "PART"),
        (0x03, "END"),
        (0x04, "FULL"),
        (0x05, "SUBSECTION"),
        (0x06, "VMDESCRIPTION"),
        (0x07, "CONFIGURATION"),
        (0x08, "COMMAND"),
        (0x7E, "FOOTER"),
        (0x09, "unknown"),
        (0xFF, "unknown"),
    ];
    for (k, name) in names {
        assert_eq!(stream::kind_name(k), name, "{k:#04x}");
    }
}

#[test]
fn short_str_len_counts_the_length_byte() {
    for s in ["", "ram", "pc.ram", &"x".repeat(255)] {
        let mut e = Encoder::new();
        e.short_str(s);
        assert_eq!(Encoder::short_str_len(s), e.buf.len() as u64, "{s:?}");
    }
}

/// Bytes 0..len where every aligned be32 holds its own index, shifted by
/// one pad byte so reads straddle the cursor's 64 KiB windows.
fn counters(n: u32) -> Vec<u8> {
    let mut f = vec![0xAA];
    for i in 0..n {
        f.extend_from_slice(&i.to_be_bytes());
    }
    f
}

#[test]
fn cursor_reads_the_right_bytes_across_window_boundaries_and_seeks() {
    let n = 60_000u32; // 240 KiB: several windows
    let f = counters(n);
    let mut c = Cursor::new(&f, 1);
    assert_eq!(c.file_len(), f.len() as u64);
    for i in 0..n {
        assert_eq!(c.pos(), 1 + 4 * u64::from(i));
        assert_eq!(c.remaining(), f.len() as u64 - c.pos());
        match i % 3 {
            0 => assert_eq!(c.be32("x").unwrap(), i),
            1 => {
                let hi = c.be16("x").unwrap();
                let lo = c.be16("x").unwrap();
                assert_eq!((u32::from(hi) << 16) | u32::from(lo), i);
            }
            _ => {
                assert_eq!(c.peek_u8().unwrap(), Some(i.to_be_bytes()[0]));
                assert_eq!(c.u8("x").unwrap(), i.to_be_bytes()[0]);
                assert_eq!(c.bytes("x", 3).unwrap(), i.to_be_bytes()[1..]);
            }
        }
    }
    assert_eq!(c.remaining(), 0);
    assert_eq!(c.peek_u8().unwrap(), None);
    // Seek back before the current window, then forward again.
    c.seek(1 + 4 * 7);
    assert_eq!(c.be64("x").unwrap(), (7u64 << 32) | 8);
    c.seek(1 + 4 * 40_000);
    assert_eq!(c.be32("x").unwrap(), 40_000);
    c.seek(1 + 4 * 20_000);
    assert_eq!(c.be32("x").unwrap(), 20_000);
    // skip moves exactly.
    c.skip("x", 4 * 99).unwrap();
    assert_eq!(c.be32("x").unwrap(), 20_100);
    // A read larger than the window.
    let mut big = vec![0; 100_000];
    c.seek(1 + 4 * 1000);
    c.read_into("x", &mut big).unwrap();
    assert_eq!(big[..], f[4001..104_001]);
    assert_eq!(c.pos(), 104_001);
    assert_eq!(c.be32("x").unwrap(), 26_000);
}

#[test]
fn cursor_reports_truncation_exactly_at_the_end() {
    let f = counters(40_000); // 160_001 bytes
    let len = f.len() as u64;
    let truncated = |r: Result<(), LoadError>, at: u64, needed: u64| match r {
        Err(LoadError::Truncated {
            what,
            offset,
            needed: n,
            file_len,
        }) => {
            assert_eq!((what, offset, n, file_len), ("t", at, needed, len));
        }
        other => panic!("expected Truncated at {at}, got {other:?}"),
    };
    for left in [0u64, 1, 3, 7, 70_000, 100_000] {
        let at = len - left;
        let mut c = Cursor::new(&f, at);
        // Exactly what is left: fine.
        c.skip("t", left).unwrap();
        assert_eq!(c.pos(), len);
        let mut c = Cursor::new(&f, at);
        assert_eq!(c.bytes("t", left).unwrap(), f[at as usize..]);
        let mut c = Cursor::new(&f, at);
        let mut buf = vec![0; left as usize];
        c.read_into("t", &mut buf).unwrap();
        assert_eq!(buf, f[at as usize..]);
        // One more: refused, and the position does not move.
        let mut c = Cursor::new(&f, at);
        truncated(c.skip("t", left + 1), at, left + 1);
        truncated(c.bytes("t", left + 1).map(drop), at, left + 1);
        let mut buf = vec![0; left as usize + 1];
        truncated(c.read_into("t", &mut buf), at, left + 1);
        assert_eq!(c.pos(), at);
        if left < 8 {
            truncated(c.be64("t").map(drop), at, 8);
        }
        if left < 4 {
            truncated(c.be32("t").map(drop), at, 4);
        }
        if left < 2 {
            truncated(c.be16("t").map(drop), at, 2);
        }
        if left == 0 {
            truncated(c.u8("t").map(drop), at, 1);
        }
    }
}

#[test]
fn hostile_names_are_printed_safely() {
    assert_eq!(printable(b"pc.ram"), "pc.ram");
    assert_eq!(printable(b"a\x1b[2Jb\n"), "a\\u{1b}[2Jb\\n");
    assert_eq!(printable(&[b'x', 0xFF, b'y']), "x\u{FFFD}y");
    let mut f = vec![5];
    f.extend_from_slice(b"a\tb\0c");
    let mut c = Cursor::new(&f, 0);
    assert_eq!(c.short_str("name").unwrap(), "a\\tb\\u{0}c");
    assert_eq!(c.pos(), 6);
}

// ---------------------------------------------------------------------------
// MigFile implementations.

#[test]
fn vec_file_reads_short_at_the_end_and_grows_on_writes_past_it() {
    let mut v: Vec<u8> = vec![1, 2, 3, 4, 5];
    assert!(!MigFile::is_empty(&v));
    assert!(v.seekable());
    let mut buf = [0u8; 4];
    assert_eq!(v.read_at(3, &mut buf).unwrap(), 2);
    assert_eq!(buf[..2], [4, 5]);
    assert_eq!(v.read_at(1, &mut buf).unwrap(), 4);
    assert_eq!(buf, [2, 3, 4, 5]);
    assert_eq!(v.read_at(5, &mut buf).unwrap(), 0);
    assert_eq!(v.read_at(1 << 40, &mut buf).unwrap(), 0);
    v.write_at(8, &[9, 9]).unwrap();
    assert_eq!(v, [1, 2, 3, 4, 5, 0, 0, 0, 9, 9]);
    v.write_at(0, &[7]).unwrap();
    v.write_at(9, &[6]).unwrap();
    assert_eq!(v, [7, 2, 3, 4, 5, 0, 0, 0, 9, 6]);
    assert_eq!(MigFile::len(&v), 10);
    assert!(MigFile::is_empty(&Vec::new()));
}

#[test]
fn a_mutable_reference_is_the_same_file() {
    type R<'a> = &'a mut Vec<u8>;
    let mut v: Vec<u8> = vec![1, 2, 3];
    {
        let mut r: R = &mut v;
        assert_eq!(<R as MigFile>::len(&r), 3);
        assert!(!<R as MigFile>::is_empty(&r));
        assert!(<R as MigFile>::seekable(&r));
        let mut buf = [0u8; 2];
        assert_eq!(<R as MigFile>::read_at(&r, 1, &mut buf).unwrap(), 2);
        assert_eq!(buf, [2, 3]);
        <R as MigFile>::write_at(&mut r, 3, &[4]).unwrap();
        assert_eq!(<R as MigFile>::len(&r), 4);
    }
    assert_eq!(v, [1, 2, 3, 4]);
    let mut empty: Vec<u8> = Vec::new();
    assert!(<R as MigFile>::is_empty(&&mut empty));
}

#[test]
fn disk_file_tracks_its_length_and_reads_back_what_was_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.mig");
    let mut d = DiskFile::create(&path).unwrap();
    assert!(d.is_empty());
    assert!(d.seekable());
    d.write_at(10, b"abc").unwrap();
    assert_eq!(d.len(), 13);
    d.write_at(0, b"x").unwrap();
    assert_eq!(d.len(), 13, "a write inside the file does not grow it");
    let mut buf = [0xFFu8; 10];
    assert_eq!(d.read_at(8, &mut buf).unwrap(), 5);
    assert_eq!(buf[..5], [0, 0, b'a', b'b', b'c']);
    assert_eq!(d.read_at(13, &mut buf).unwrap(), 0);
    drop(d);
    let d = DiskFile::open(&path).unwrap();
    assert_eq!(d.len(), 13);
    assert!(d.seekable());
    let mut all = [0u8; 13];
    assert_eq!(d.read_at(0, &mut all).unwrap(), 13);
    assert_eq!(all[0], b'x');
    assert_eq!(all[10..], *b"abc");
    // A large read is completed across the kernel's short reads.
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let path = dir.path().join("big.mig");
    let mut d = DiskFile::create(&path).unwrap();
    d.write_at(0, &big).unwrap();
    let d = DiskFile::open(&path).unwrap();
    let mut back = vec![0; big.len() + 10];
    assert_eq!(d.read_at(0, &mut back).unwrap(), big.len());
    assert_eq!(back[..big.len()], big[..]);
    let mut tail = vec![0; 100];
    assert_eq!(d.read_at(big.len() as u64 - 40, &mut tail).unwrap(), 40);
    assert_eq!(tail[..40], big[big.len() - 40..]);
}

#[test]
fn writer_reports_its_blocks_layout_and_counters() {
    let blocks = vec![block("pc.ram", 4), block("vga", 1)];
    for (caps, fixed_ram) in [(Capabilities::none(), false), (fixed(), true)] {
        let mut w = start(&caps, blocks.clone()).unwrap();
        assert_eq!(w.blocks(), blocks.as_slice());
        assert_eq!(w.layout() == migsim_format::Layout::FixedRam, fixed_ram);
        let written = MigFile::len(w.file_mut());
        assert!(written > 0, "the START section is written by start()");
        w.begin_iteration().unwrap();
        w.save_page(0, 0, &page(1)).unwrap();
        w.save_page(0, 1, &vec![0; PAGE]).unwrap();
        w.save_page(1, 0, &page(2)).unwrap();
        w.end_iteration().unwrap();
        w.begin_iteration().unwrap();
        w.end_iteration().unwrap();
        let s = w.stats().clone();
        assert_eq!((s.pages_written, s.zero_pages, s.iterations), (2, 1, 2));
        w.begin_completion().unwrap();
        let (_, stats) = w.finish(&[]).unwrap();
        assert_eq!(stats, s, "completion alone adds nothing");
    }
}

#[test]
fn disk_file_read_errors_are_returned_not_retried() {
    // Reading a directory fails with EISDIR: a real error, which must come
    // back to the caller (only EINTR is retried).
    let dir = tempfile::tempdir().unwrap();
    let d = DiskFile::open(dir.path()).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 16];
        let _ = tx.send(d.read_at(0, &mut buf).map_err(|e| e.kind()));
    });
    let r = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("read_at on a directory must return, not spin");
    assert_eq!(r, Err(std::io::ErrorKind::IsADirectory));
}

#[test]
fn zero_page_check_covers_every_byte_of_any_length() {
    assert!(is_zero_page(&[0; 4096]));
    assert!(is_zero_page(&[]));
    assert!(is_zero_page(&[0; 13]));
    for len in [1usize, 7, 8, 9, 13, 4096, 4097] {
        for at in [0, len / 2, len - 1] {
            let mut p = vec![0u8; len];
            p[at] = 0x80;
            assert!(!is_zero_page(&p), "len {len}, non-zero byte at {at}");
        }
    }
}

// ---------------------------------------------------------------------------
// vmdesc trailer search.

#[test]
fn vmdesc_trailer_is_found_only_after_an_eof_byte_and_ending_the_file() {
    let found = |bytes: &[u8]| Vmdesc::locate(&bytes.to_vec()).unwrap();
    // 7 bytes of something, EOF, VMDESCRIPTION, be32 len, JSON to the end.
    let mut f = b"section".to_vec();
    f.extend_from_slice(b"\x00\x06\x00\x00\x00\x02{}");
    let v = found(&f).expect("a well-formed trailer is found");
    assert_eq!(v.offset, 8, "offset of the 0x06 byte");
    assert_eq!(v.json_len, 2);
    assert_eq!(v.device_count(), 0);
    // No EOF byte before 0x06.
    let mut g = f.clone();
    g[7] = 0x01;
    assert!(found(&g).is_none(), "0x06 not preceded by EOF");
    // The announced length does not reach the end of the file.
    let mut g = f.clone();
    g[12] = 0x05;
    assert!(found(&g).is_none(), "length past the end");
    let mut g = f.clone();
    g[12] = 0x01;
    assert!(found(&g).is_none(), "length short of the end");
    // Valid JSON, but not an object.
    let mut g = f.clone();
    g[13..].copy_from_slice(b"[]");
    assert!(found(&g).is_none(), "not a JSON object");
}
