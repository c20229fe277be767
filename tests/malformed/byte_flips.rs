//! Byte flips anywhere in a file.

use std::panic::{AssertUnwindSafe, catch_unwind};

use migsim_format::reader::{self, LoadOptions, NullSink};
use migsim_harness::sim::dest::Destination;

use crate::alloc::*;
use crate::fixture::*;

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
