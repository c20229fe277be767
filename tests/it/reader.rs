//! The reader through its public API: configuration subsections, how
//! fixed-ram pages reach the sink, the RAM section's framing, and the
//! validated-capability check on load.

use migsim_format::LoadError;
use migsim_format::caps::{Capabilities, CapsError};
use migsim_format::io::MigFile;
use migsim_format::reader::{self, LoadOptions, RamSink};
use migsim_format::writer::{DeviceState, RamBlockDesc};
use migsim_harness::sim::dest::Destination;

use crate::support::{
    MACHINE, PAGE_LEN as PAGE, block, fixed_ram as fixed, load_opts, page, start,
};

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
// Names: the bytes in the file, and the same bytes out (issue 14, point 6).

/// A block and a device whose names hold a tab, a terminal escape and a
/// newline: the reader gives back exactly the names the writer wrote (no
/// escaping), for both layouts; a destination with those names loads the
/// file, and error texts that quote a name escape it.
#[test]
fn names_with_control_characters_round_trip_through_writer_and_reader() {
    let odd = "a\tb\x1b[2J\nc";
    let dev_name = "dev\t\x1b[2J\n";
    for caps in [Capabilities::none(), fixed()] {
        let blocks = vec![block("pc.ram", 2), block(odd, 1)];
        let mut w = start(&caps, blocks.clone()).unwrap();
        w.begin_iteration().unwrap();
        w.save_page(1, 0, &page(0x5A)).unwrap();
        w.end_iteration().unwrap();
        w.begin_completion().unwrap();
        let dev = DeviceState {
            idstr: dev_name.into(),
            instance_id: 0,
            version_id: 1,
            payload: vec![7; 4],
        };
        let (file, _) = w.finish(&[dev]).unwrap();
        let info = reader::inspect(&file).unwrap();
        let names: Vec<&str> = info.blocks.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["pc.ram", odd]);
        assert!(
            info.sections.iter().any(|s| s.idstr == dev_name),
            "{:?}",
            info.sections
        );
        // A destination that has a block of exactly that name takes it.
        let mut dest = Destination::new(&blocks, true);
        reader::load(&file, &load_opts(caps), &mut dest).unwrap();
        assert_eq!(dest.page(1, 0), page(0x5A).as_slice());
        // One that does not: the error quotes the name escaped.
        let other = vec![block("pc.ram", 2), block("vga", 1)];
        let e =
            reader::load(&file, &load_opts(caps), &mut Destination::new(&other, true)).unwrap_err();
        assert!(
            matches!(e, LoadError::UnknownBlock(ref n) if n == odd),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "Unknown ramblock \"a\\tb\\u{1b}[2J\\nc\", cannot accept migration"
        );
    }
}

/// A name that is not UTF-8 cannot be given back byte for byte: refused
/// with its own error (not decoded lossily).
#[test]
fn a_block_name_that_is_not_utf8_is_refused() {
    let (mut file, _) = sequential_file();
    let at = file.windows(6).position(|w| w == b"pc.ram").unwrap();
    file[at + 2] = 0xFF;
    match reader::inspect(&file) {
        Err(
            e @ LoadError::NameNotUtf8 {
                what: "RAMBlock idstr",
                ..
            },
        ) => {
            assert!(e.to_string().contains("pc\u{FFFD}ram"), "{e}")
        }
        other => panic!("{other:?}"),
    }
}

/// A hostile be32 length makes the machine type as long as the file: the
/// error shows its first 64 bytes and says how long it was, instead of
/// carrying (and escaping) a megabyte.
#[test]
fn a_megabyte_machine_type_that_is_not_utf8_is_shown_cut_with_its_length() {
    let n = 1u32 << 20;
    let mut file = Vec::new();
    file.extend_from_slice(&0x5145_564D_u32.to_be_bytes()); // QEVM
    file.extend_from_slice(&3u32.to_be_bytes());
    file.push(0x07); // CONFIGURATION
    file.extend_from_slice(&n.to_be_bytes());
    file.extend(std::iter::repeat_n(0xFFu8, n as usize));
    match reader::inspect(&file) {
        Err(
            e @ LoadError::NameNotUtf8 {
                what: "machine name",
                len,
                ..
            },
        ) => {
            assert_eq!(len, u64::from(n));
            let text = e.to_string();
            assert!(text.len() < 400, "{} bytes: {text}", text.len());
            assert!(
                text.contains(&format!("... ({n} bytes, the first 64 shown)")),
                "{text}"
            );
            assert_eq!(text.matches('\u{FFFD}').count(), 64, "{text}");
        }
        other => panic!("{other:?}"),
    }
}

/// QEMU's `file:PATH,offset=N` puts the stream at N with every mapped-ram
/// offset absolute; libvirt's save image puts its header and domain XML
/// first. The writer writes at an offset, `find_stream` finds the stream
/// in both shapes, and the reader loads it from there.
#[test]
fn a_stream_at_an_offset_or_in_a_libvirt_image_is_found_and_loads() {
    use migsim_format::{Container, MigrationWriter, find_stream};
    const AT: u64 = 0x3000;
    let blocks = vec![block("pc.ram", 8), block("vga", 2)];
    let mut w =
        MigrationWriter::start_at(Vec::new(), AT, MACHINE, &fixed(), blocks.clone()).unwrap();
    w.begin_completion().unwrap();
    w.save_page(0, 3, &page(0x33)).unwrap();
    w.save_page(1, 1, &page(0x44)).unwrap();
    let (mut file, _) = w.finish(&[]).unwrap();
    assert!(
        file[..AT as usize].iter().all(|&b| b == 0),
        "bytes before the stream untouched"
    );
    let start = find_stream(&file).unwrap();
    assert_eq!((start.offset, &start.container), (AT, &Container::Offset));
    let load_at = |file: &Vec<u8>, at: u64| {
        let mut dest = Destination::new(&blocks, true);
        let opts = LoadOptions {
            stream_offset: at,
            ..load_opts(fixed())
        };
        reader::load(file, &opts, &mut dest).map(|info| (info, dest))
    };
    let (info, dest) = load_at(&file, AT).unwrap();
    assert_eq!(info.stream_offset, AT);
    assert!(info.blocks[0].fixed_ram.as_ref().unwrap().pages_offset > AT);
    assert_eq!(dest.page(0, 3), page(0x33));
    assert_eq!(dest.page(1, 1), page(0x44));
    assert_eq!(dest.page(0, 0), vec![0; PAGE]);
    assert!(matches!(load_at(&file, 0), Err(LoadError::BadMagic(0))));

    // The same bytes behind a libvirt save image header (92 bytes, host
    // byte order) and AT - 92 bytes of domain XML.
    let xml = b"<domain type='kvm'><name>g</name></domain>";
    let mut header = Vec::new();
    header.extend_from_slice(b"LibvirtQemudSave");
    for word in [2u32, (AT - 92) as u32, 1, 0, 0] {
        header.extend_from_slice(&word.to_le_bytes());
    }
    header.resize(92, 0);
    header.extend_from_slice(xml);
    file[..header.len()].copy_from_slice(&header);
    let start = find_stream(&file).unwrap();
    assert_eq!(start.offset, AT);
    assert_eq!(
        start.container,
        Container::LibvirtSave {
            version: 2,
            data_len: (AT - 92) as u32,
            was_running: true,
            partial: false
        }
    );
    let (_, dest) = load_at(&file, start.offset).unwrap();
    assert_eq!(dest.page(0, 3), page(0x33));
    // A compressed image (format 1, gzip) is refused with what to do.
    file[28] = 1;
    let e = find_stream(&file).unwrap_err();
    assert!(e.to_string().contains("decompress it first"), "{e}");
}
