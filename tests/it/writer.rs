//! The two writer layouts, observed through their files' bytes and write
//! logs: what goes where, what is overwritten, what is appended.

use migsim_format::SaveError;
use migsim_format::caps::Capabilities;
use migsim_format::io::{DiskFile, MigFile};
use migsim_format::reader::inspect;
use migsim_format::writer::{DeviceState, MigrationWriter, RamBlockDesc};
use migsim_harness::sim::simfile::SimFile;

use crate::support::{PAGE_LEN as PAGE, block, filled_page, start, zero_page};

fn blocks() -> Vec<RamBlockDesc> {
    vec![
        RamBlockDesc {
            name: "pc.ram".into(),
            used_length: 16 * 4096,
            shared: false,
        },
        RamBlockDesc {
            name: "one".into(),
            used_length: 4096,
            shared: false,
        },
    ]
}

use crate::support::fixed_ram as fixed;

fn device() -> DeviceState {
    DeviceState {
        idstr: "timer".into(),
        instance_id: 0,
        version_id: 2,
        payload: vec![7; 24],
    }
}

/// Pass 1 sends pc.ram page 3 (data 0x11) and `one` page 0; pass 2 re-sends
/// page 3 (0x22); the final pass zeroes page 3.
fn migrate<F: MigFile>(file: F, caps: &Capabilities) -> F {
    let mut w = MigrationWriter::start(file, "pc-i440fx-10.0", caps, blocks()).unwrap();
    w.begin_iteration().unwrap();
    w.save_page(0, 3, &filled_page(0x11)).unwrap();
    w.save_page(1, 0, &filled_page(0x33)).unwrap();
    w.end_iteration().unwrap();
    w.begin_iteration().unwrap();
    w.save_page(0, 3, &filled_page(0x22)).unwrap();
    w.end_iteration().unwrap();
    w.begin_completion().unwrap();
    w.save_page(0, 3, &zero_page()).unwrap();
    w.finish(&[device()]).unwrap().0
}

#[test]
fn fixed_ram_refuses_a_non_seekable_transport_and_writes_nothing() {
    let mut f = SimFile::non_seekable();
    let err = MigrationWriter::start(&mut f, "pc-i440fx-10.0", &fixed(), blocks())
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "Migration requires seekable transport (e.g. file)"
    );
    assert_eq!(f.len(), 0);
    assert!(f.log().is_empty());
    // The sequential layout only appends, so it works on the same transport.
    let f = migrate(SimFile::non_seekable(), &Capabilities::none());
    assert!(inspect(&f).is_ok());
}

#[test]
fn sequential_appends_every_resent_page() {
    let f = migrate(SimFile::new(), &Capabilities::none());
    let bytes = f.to_vec();
    let count = |b: u8| {
        bytes
            .windows(4096)
            .filter(|w| w.iter().all(|&x| x == b))
            .count()
    };
    assert_eq!(count(0x11), 1, "first version of page 3 is in the stream");
    assert_eq!(count(0x22), 1, "re-sent page 3 is appended again");
    let info = inspect(&f).unwrap();
    assert_eq!(info.blocks[0].pages_present, 2);
    assert_eq!(info.blocks[0].zero_records, 1);
    let mut end = 0;
    for w in f.log() {
        assert_eq!(w.offset, end, "sequential writes only append");
        end += w.len;
    }
}

#[test]
fn fixed_ram_overwrites_in_place_and_clears_the_bit_of_a_zeroed_page() {
    let f = migrate(SimFile::new(), &fixed());
    let info = inspect(&f).unwrap();
    let fr = info.blocks[0].fixed_ram.clone().unwrap();
    assert_eq!(fr.pages_offset % (1 << 20), 0);
    let slot = fr.pages_offset + 3 * 4096;
    let writes: Vec<_> = f.log().iter().filter(|w| w.offset == slot).collect();
    assert_eq!(writes.len(), 2, "page 3 written twice at the same offset");
    // Zeroed in the final pass: bit clear, the stale 0x22 bytes stay.
    let mut buf = vec![0; 4096];
    f.read_at(slot, &mut buf).unwrap();
    assert_eq!(buf, filled_page(0x22));
    assert_eq!(info.blocks[0].pages_present, 0);
    assert_eq!(info.blocks[1].pages_present, 1);
    // Bitmaps written once each, after every page write.
    let is_bitmap = |off: u64| {
        info.blocks
            .iter()
            .any(|b| b.fixed_ram.as_ref().unwrap().bitmap_offset == off)
    };
    let bitmap_at: Vec<_> = f
        .log()
        .iter()
        .enumerate()
        .filter(|(_, w)| is_bitmap(w.offset))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(bitmap_at.len(), 2);
    let last_page_write = f
        .log()
        .iter()
        .rposition(|w| w.len == 4096 && w.offset >= fr.pages_offset)
        .unwrap();
    assert!(bitmap_at.iter().all(|&i| i > last_page_write));
    // PART and END carry only EOS: 1 type + 4 id + 8 EOS + 5 footer.
    for s in info.sections.iter().filter(|s| {
        s.kind == migsim_format::SectionKind::Part || s.kind == migsim_format::SectionKind::End
    }) {
        assert_eq!(s.len, 18, "{s:?}");
    }
    // Device state follows the last page area.
    let last = info.blocks.last().unwrap();
    let area_end = last.fixed_ram.as_ref().unwrap().pages_offset + last.used_length;
    let dev = info
        .sections
        .iter()
        .find(|s| s.kind == migsim_format::SectionKind::Full)
        .unwrap();
    assert!(dev.offset > area_end);
}

#[test]
fn a_real_file_on_disk_gets_the_same_bytes_as_the_simulated_file() {
    let dir = tempfile::tempdir().unwrap();
    for (name, caps) in [("seq", Capabilities::none()), ("fixed", fixed())] {
        let sim = migrate(SimFile::new(), &caps);
        let path = dir.path().join(name);
        let disk = migrate(DiskFile::create(&path).unwrap(), &caps);
        assert_eq!(disk.len(), sim.len());
        assert_eq!(std::fs::read(&path).unwrap(), sim.to_vec(), "{name}");
        let reopened = DiskFile::open(&path).unwrap();
        assert_eq!(inspect(&reopened).unwrap(), inspect(&sim).unwrap());
    }
}

#[test]
fn save_page_refuses_a_page_of_the_wrong_size_or_outside_its_block() {
    let mut w =
        MigrationWriter::start(SimFile::new(), "pc-i440fx-10.0", &fixed(), blocks()).unwrap();
    w.begin_iteration().unwrap();
    for (block, page, len) in [
        (0, 3, 4095),
        (0, 3, 4097),
        (0, 16, 4096),
        (1, 1, 4096),
        (2, 0, 4096),
    ] {
        let err = w.save_page(block, page, &vec![1; len]).err();
        assert!(
            err.is_some(),
            "block {block} page {page} with {len} bytes was accepted"
        );
    }
    w.save_page(0, 15, &filled_page(1)).unwrap();
}

#[test]
fn configuration_subsections_qemu_may_send_are_understood() {
    // A stream whose configuration carries target-page-bits and uuid
    // subsections (as QEMU sends for ARM targets and validate-uuid) loads;
    // an unknown subsection is refused by name.
    let f = migrate(Vec::new(), &Capabilities::none());
    let machine_end = 4 + 4 + 1 + 4 + "pc-i440fx-10.0".len();
    let mut sub = Vec::new();
    for (name, body) in [
        (
            "configuration/target-page-bits",
            12u32.to_be_bytes().to_vec(),
        ),
        ("configuration/uuid", vec![7; 16]),
    ] {
        sub.push(0x05);
        sub.push(name.len() as u8);
        sub.extend_from_slice(name.as_bytes());
        sub.extend_from_slice(&1u32.to_be_bytes());
        sub.extend_from_slice(&body);
    }
    let mut with = f[..machine_end].to_vec();
    with.extend_from_slice(&sub);
    with.extend_from_slice(&f[machine_end..]);
    // Later absolute offsets do not matter to a sequential stream.
    let info = inspect(&with).unwrap();
    assert_eq!(info.machine, "pc-i440fx-10.0");
    assert_eq!(info.blocks.len(), 2);
    let mut bad = f[..machine_end].to_vec();
    bad.extend_from_slice(&[0x05, 3, b'x', b'y', b'z', 0, 0, 0, 1]);
    bad.extend_from_slice(&f[machine_end..]);
    let e = inspect(&bad).unwrap_err().to_string();
    assert!(e.contains("unknown configuration subsection 'xyz'"), "{e}");
}

// ---------------------------------------------------------------------------
// Setup and call-order checks, and what the writer reports.

fn setup_err(r: Result<impl Sized, SaveError>) -> String {
    match r {
        Err(SaveError::Setup(m)) => m,
        Err(e) => panic!("expected a setup error, got {e:?}"),
        Ok(_) => panic!("expected a setup error, got Ok"),
    }
}

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
    w.save_page(0, 0, &filled_page(1)).unwrap();
    let (file, _) = w.finish(&[]).unwrap();
    let info = inspect(&file).unwrap();
    assert_eq!(info.blocks[0].name, name);
}

#[test]
fn writer_refuses_used_length_zero_or_not_page_multiple() {
    for used_length in [0, 100, 4096 + 1, 3 * 4096 - 512] {
        let b = RamBlockDesc {
            name: "pc.ram".into(),
            used_length,
            shared: false,
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

// Call order.

#[test]
fn writer_refuses_pages_outside_a_ram_section() {
    for caps in [Capabilities::none(), fixed()] {
        let mut w = start(&caps, vec![block("pc.ram", 4)]).unwrap();
        let m = setup_err(w.save_page(0, 0, &filled_page(1)));
        assert!(m.contains("save_page outside a RAM section"), "{m}");
        w.begin_iteration().unwrap();
        w.save_page(0, 0, &filled_page(1)).unwrap();
        w.end_iteration().unwrap();
        let m = setup_err(w.save_page(0, 1, &filled_page(2)));
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
        w.save_page(0, 3, &filled_page(1)).unwrap();
        w.save_page(1, 0, &filled_page(2)).unwrap();
        // One past the end.
        let m = setup_err(w.save_page(0, 4, &filled_page(3)));
        assert!(m.contains("outside block pc.ram of 4 pages"), "{m}");
        let m = setup_err(w.save_page(1, 1, &filled_page(3)));
        assert!(m.contains("outside block vga of 1 pages"), "{m}");
        // No such block.
        let m = setup_err(w.save_page(2, 0, &filled_page(3)));
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
    let info = inspect(&file).unwrap();
    let full: Vec<_> = info
        .sections
        .iter()
        .filter(|s| s.kind == migsim_format::SectionKind::Full)
        .collect();
    assert_eq!(full.len(), 1);
    assert_eq!(full[0].idstr, name);
    assert_eq!(info.vmdesc_devices, 1);
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
        w.save_page(0, 0, &filled_page(1)).unwrap();
        w.save_page(0, 1, &zero_page()).unwrap();
        w.save_page(1, 0, &filled_page(2)).unwrap();
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
fn x_ignore_shared_puts_each_blocks_address_before_its_mapped_ram_header() {
    use migsim_format::caps::{Capability, Profile};
    use migsim_format::reader::{LoadOptions, NullSink, load};
    let mut caps = Capabilities::for_profile(Profile::MappedRam);
    caps.set(&[
        (Capability::MappedRam, true),
        (Capability::XIgnoreShared, true),
    ])
    .unwrap();
    let f = migrate(SimFile::new(), &caps);
    let bytes = f.to_vec();
    let info = inspect(&bytes).unwrap();
    assert_eq!(info.capabilities, vec!["x-ignore-shared", "mapped-ram"]);
    for b in &info.blocks {
        assert_eq!(b.mr_addr, Some(0), "{}", b.name);
        // idstr length byte, idstr, used_length, mr_addr, then the header.
        let header = b.record_offset + 1 + b.name.len() as u64 + 8 + 8;
        assert_eq!(
            b.fixed_ram.as_ref().unwrap().header_offset,
            header,
            "{}",
            b.name
        );
    }
    // The same stream with x-ignore-shared off on the destination: refused.
    let mut dest = Capabilities::for_profile(Profile::MappedRam);
    dest.set(&[(Capability::MappedRam, true)]).unwrap();
    let opts = LoadOptions {
        caps: Some(dest),
        ..LoadOptions::default()
    };
    let e = load(&bytes, &opts, &mut NullSink).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Capability x-ignore-shared is off, but received capability is on"
    );
    // And with it on, loaded.
    let opts = LoadOptions {
        caps: Some(caps),
        ..LoadOptions::default()
    };
    load(&bytes, &opts, &mut NullSink).unwrap();
}

/// The blocks of [`blocks`], the first (`pc.ram`) on shared memory.
fn blocks_shared_ram() -> Vec<RamBlockDesc> {
    let mut b = blocks();
    b[0].shared = true;
    b
}

fn ignore_shared(fixed_ram: bool) -> Capabilities {
    use migsim_format::caps::{Capability, Profile};
    let mut caps = Capabilities::for_profile(Profile::MappedRam);
    caps.set(&[
        (Capability::MappedRam, fixed_ram),
        (Capability::XIgnoreShared, true),
    ])
    .unwrap();
    caps
}

#[test]
fn x_ignore_shared_writes_an_ignored_block_as_offsets_0_and_no_page_area() {
    use migsim_format::fixed_ram::PAGE_AREA_ALIGN;
    use migsim_format::reader::{LoadOptions, load};
    use migsim_harness::sim::dest::{Destination, GARBAGE};
    let caps = ignore_shared(true);
    let mut w =
        MigrationWriter::start(SimFile::new(), "pc-i440fx-10.0", &caps, blocks_shared_ram())
            .unwrap();
    w.begin_iteration().unwrap();
    // A page of the ignored block is refused, naming it; the private one goes.
    let e = w
        .save_page(0, 3, &filled_page(0x11))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("block pc.ram is on shared memory and x-ignore-shared is on"),
        "{e}"
    );
    assert!(
        w.set_page_bit(0, 3, true).is_err(),
        "a channel may not send it either"
    );
    w.save_page(1, 0, &filled_page(0x33)).unwrap();
    w.end_iteration().unwrap();
    w.begin_completion().unwrap();
    let bytes = w.finish(&[device()]).unwrap().0.to_vec();

    let info = inspect(&bytes).unwrap();
    let (ram, one) = (&info.blocks[0], &info.blocks[1]);
    assert!(ram.ignored && !one.ignored);
    let fr = ram.fixed_ram.as_ref().unwrap();
    assert_eq!(ram.mr_addr, Some(0));
    assert_eq!(
        (
            fr.bitmap_offset,
            fr.pages_offset,
            fr.bitmap_len,
            ram.pages_present
        ),
        (0, 0, 0, 0)
    );
    // The raw header: version 1, page size 4096, both offsets 0.
    let h = fr.header_offset as usize;
    assert_eq!(&bytes[h..h + 4], &1u32.to_be_bytes());
    assert_eq!(&bytes[h + 4..h + 12], &4096u64.to_be_bytes());
    assert_eq!(&bytes[h + 12..h + 28], &[0u8; 16]);
    // The next record follows the header: no bitmap, no page area.
    assert_eq!(one.record_offset, fr.header_offset + 28);
    let one_fr = one.fixed_ram.as_ref().unwrap();
    assert_eq!(one_fr.pages_offset, PAGE_AREA_ALIGN, "the first page area");
    assert_eq!(one.pages_present, 1);
    assert!(
        (bytes.len() as u64) < PAGE_AREA_ALIGN + 2 * PAGE as u64,
        "no room for pc.ram's 64 KiB: {} bytes",
        bytes.len()
    );

    // A dirty destination keeps pc.ram as it was; block one is loaded.
    let mut dest = Destination::new(&blocks(), true);
    let opts = LoadOptions {
        caps: Some(caps),
        ..LoadOptions::default()
    };
    load(&bytes, &opts, &mut dest).unwrap();
    assert!(
        dest.block(0).iter().all(|&x| x == GARBAGE),
        "pc.ram touched"
    );
    assert_eq!(dest.page(1, 0), &filled_page(0x33)[..]);

    // In a stream without x-ignore-shared, that header (offsets zeroed in
    // a plain mapped-ram save) is refused by name.
    let mut plain = Capabilities::for_profile(migsim_format::caps::Profile::MappedRam);
    plain
        .set(&[(migsim_format::caps::Capability::MappedRam, true)])
        .unwrap();
    let mut w = MigrationWriter::start(SimFile::new(), "pc-i440fx-10.0", &plain, blocks()).unwrap();
    w.begin_completion().unwrap();
    let mut other = w.finish(&[device()]).unwrap().0.to_vec();
    let oi = inspect(&other).unwrap();
    let h = oi.blocks[0].fixed_ram.as_ref().unwrap().header_offset as usize;
    other[h + 12..h + 28].fill(0);
    let e = inspect(&other).unwrap_err().to_string();
    assert_eq!(
        e,
        "ramblock pc.ram: fixed-ram header has bitmap_offset and pages_offset 0, the encoding \
         of a block ignored under x-ignore-shared, but the stream does not list x-ignore-shared"
    );
}

#[test]
fn x_ignore_shared_sequential_stream_carries_no_page_of_an_ignored_block() {
    let caps = ignore_shared(false);
    let mut w =
        MigrationWriter::start(SimFile::new(), "pc-i440fx-10.0", &caps, blocks_shared_ram())
            .unwrap();
    w.begin_iteration().unwrap();
    assert!(w.save_page(0, 0, &filled_page(0x11)).is_err());
    w.save_page(1, 0, &filled_page(0x33)).unwrap();
    w.end_iteration().unwrap();
    w.begin_completion().unwrap();
    let bytes = w.finish(&[device()]).unwrap().0.to_vec();
    let info = inspect(&bytes).unwrap();
    assert_eq!(info.blocks[0].pages_present, 0);
    assert_eq!(info.blocks[1].pages_present, 1);
    assert_eq!(info.blocks[0].mr_addr, Some(0));
    // The same blocks without x-ignore-shared: pc.ram migrates as any other.
    let mut w = MigrationWriter::start(
        SimFile::new(),
        "pc-i440fx-10.0",
        &Capabilities::none(),
        blocks_shared_ram(),
    )
    .unwrap();
    w.begin_iteration().unwrap();
    w.save_page(0, 0, &filled_page(0x11)).unwrap();
}

/// The oracle's side of an ignored block: a load that writes pages of a
/// block on shared memory is caught and told. The file is a run with
/// x-ignore-shared where pc.ram is private (so its pages are in the
/// file); judged as if pc.ram were shared, every data page it restored is
/// a difference, and the story says the block had to stay untouched.
#[test]
fn the_oracle_catches_a_load_that_writes_an_ignored_block() {
    use migsim_format::caps::Capability;
    use migsim_format::reader::{LoadOptions, load};
    use migsim_harness::oracle::compare_restored;
    use migsim_harness::run::{RunOptions, run};
    use migsim_harness::scenario::Scenario;
    use migsim_harness::sim::dest::VerifyingDestination;
    let mut s = Scenario::load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("scenarios/ignore-shared-blocks.toml"),
    )
    .unwrap();
    s.guest.blocks[0].shared = false;
    s.expect.digest = None;
    assert!(s.migration.has(Capability::XIgnoreShared));
    let r = run(&s, &RunOptions::default());
    let file = &r
        .files
        .iter()
        .find(|f| f.writer == migsim_format::Layout::Sequential)
        .unwrap()
        .file;
    let mut dest = VerifyingDestination::new(r.content_seed, &s.blocks(), true);
    let opts = LoadOptions {
        caps: Some(ignore_shared(false)),
        ..LoadOptions::default()
    };
    load(file, &opts, &mut dest).unwrap();
    // As written (pc.ram private): equal.
    let (bad, _, _) = compare_restored(&s.blocks(), &r.switchover, &dest, 3, true);
    assert_eq!(bad, 0);
    // Judged with pc.ram shared: every page the load wrote differs.
    let mut shared = s.blocks();
    shared[0].shared = true;
    let (bad, total, stories) = compare_restored(&shared, &r.switchover, &dest, 3, true);
    assert_eq!(total, 1024 + 64);
    assert_eq!(
        bad, 1024,
        "every page of pc.ram: the bulk stage sent them all"
    );
    assert!(
        stories[0].starts_with("pc.ram page 0x")
            && stories[0].contains("expected untouched (garbage): the block is on shared memory"),
        "{stories:?}"
    );
    // Without x-ignore-shared the same flag changes nothing.
    let (bad, _, _) = compare_restored(&shared, &r.switchover, &dest, 3, false);
    assert_eq!(bad, 0);
}
