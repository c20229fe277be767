//! The RAM START section's block list.

use migsim_format::LoadError;
use migsim_format::reader::{self, RamSink};
use migsim_format::writer::{MigrationWriter, RamBlockDesc};
use migsim_harness::sim::dest::Destination;

use crate::alloc::*;
use crate::fixture::*;

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

/// A stream of many blocks (the reader finds a block by a scan up to 16
/// of them and by a name map beyond) loads, refuses a duplicate and an
/// unknown name in a page record, as one of few does.
#[test]
fn many_blocks_are_found_and_refused_as_few_are() {
    for n in [3usize, 16, 17, 40] {
        let blocks: Vec<RamBlockDesc> = (0..n)
            .map(|i| RamBlockDesc {
                name: format!("blk{i:03}"),
                used_length: 2 * PAGE,
                shared: false,
            })
            .collect();
        for lay in BOTH {
            let mut w =
                MigrationWriter::start(Vec::new(), MACHINE, &lay.caps(), blocks.clone()).unwrap();
            w.begin_completion().unwrap();
            for b in (0..n).rev() {
                w.save_page(b, 1, &page(b as u8)).unwrap();
            }
            let (file, _) = w.finish(&[]).unwrap();
            let mut dest = Destination::new(&blocks, true);
            let info = reader::load(&file, &opts(lay.caps()), &mut dest)
                .unwrap_or_else(|e| panic!("{n} blocks, {lay:?}: {e}"));
            for b in 0..n {
                assert!(
                    dest.page(b, 1) == page(b as u8),
                    "{n} blocks, {lay:?}: block {b}"
                );
                assert!(dest.page(b, 0) == zero_page() || lay == Lay::Sequential);
            }
            // The last block renamed to the first: listed twice.
            let last = info.blocks[n - 1].record_offset + 1;
            let dup = put_copy(&file, last, b"blk000");
            assert_err!(
                reader::inspect(&dup).unwrap_err(),
                LoadError::DuplicateBlock(ref d) if d == "blk000",
                "ramblock blk000 listed twice"
            );
            if lay == Lay::Sequential {
                // The first page record names the last block: now unknown.
                let at = find(&file, format!("blk{:03}", n - 1).as_bytes(), last + 6);
                let unknown = put_copy(&file, at, b"blkzzz");
                assert!(
                    matches!(reader::inspect(&unknown), Err(LoadError::UnknownBlock(ref u)) if u == "blkzzz"),
                    "{n} blocks"
                );
            }
        }
    }
}

/// `file` with `data` at `at`.
fn put_copy(file: &[u8], at: u64, data: &[u8]) -> Vec<u8> {
    let mut b = file.to_vec();
    put(&mut b, at, data);
    b
}

/// The first offset of `needle` in `hay` at or after `from`.
fn find(hay: &[u8], needle: &[u8], from: u64) -> u64 {
    let i = hay[from as usize..]
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("present");
    from + i as u64
}
