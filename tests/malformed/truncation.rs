//! Truncation at every length or at representative points.

use migsim_format::LoadError;
use migsim_format::reader::{self, LoadOptions, NullSink, StreamInfo};
use migsim_harness::sim::dest::Destination;

use crate::alloc::*;
use crate::fixture::*;

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
    // A cut right after the EOF byte of a file with devices is a
    // well-formed file without vmdesc trailer (QEMU -machine
    // suppress-vmdesc=on): inspect reads it up to the first device section,
    // a load refuses it. Counted as the load's error.
    if let Ok(info) = &r
        && let Some(u) = &info.unwalked_devices
    {
        assert_eq!(info.eof_offset, cut as u64 - 1, "cut {cut}");
        assert_eq!(u.payload_offset + u.unread_bytes, cut as u64);
        for e in [&r2, &r3] {
            assert!(
                matches!(e, Err(LoadError::NoVmdesc { why, .. }) if why.contains("a full load must walk")),
                "cut {cut}: {e:?}"
            );
        }
        return r2;
    }
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
                | LoadError::NoVmdesc { .. }
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
