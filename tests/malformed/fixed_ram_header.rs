//! The 28-byte fixed-ram (mapped-ram) header of each block.

use migsim_format::LoadError;
use migsim_format::reader::{self};
use migsim_harness::sim::dest::Destination;

use crate::alloc::*;
use crate::fixture::*;

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
