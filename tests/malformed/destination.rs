//! Destination memory after a fixed-ram load.

use migsim_format::reader::{self};
use migsim_harness::sim::dest::Destination;

use crate::fixture::*;

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
