//! The seed corpus of the fuzz targets, written by migsim.

use super::{reader_blocks, typed_input};

use super::caps::*;
use super::caps_model::*;
use super::fixed_ram_mutate::*;
use super::layout_model::*;

/// The seed corpus written by migsim: `(target, file name, bytes)`. The
/// `reader` seeds are small valid files for [`reader_blocks`]: sequential
/// ones, and fixed-ram ones compacted (page areas only page-aligned) so
/// they stay a few KiB. The structure-aware targets get fixed byte strings
/// of a few lengths (any bytes are a valid input for them). The
/// `#[ignore]`d test `regenerate_seed_corpus` in `tests/it/fuzz_corpus.rs`
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
