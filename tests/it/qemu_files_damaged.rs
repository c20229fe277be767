//! Real QEMU saves, damaged: truncated, bit-flipped, with hostile 64-bit
//! lengths and offsets. `inspect` and `extract` must answer with a clean
//! error (or a correct result), never a panic, a hang or a huge file.

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use migsim_format::extract::extract;
use migsim_format::io::Bytes;
use migsim_format::reader::inspect;

fn real(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/qemu")
        .join(name);
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(p).unwrap())
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// Run inspect and extract on `bytes`; both must finish quickly, and an
/// extract that succeeds must not have written a huge output. (Discarding
/// a failed extract's output is the caller's: the CLI's, tested in
/// tests/cli/main.rs.) Returns inspect's error text, if any.
fn probe(bytes: &[u8], what: &str) -> Option<String> {
    let dir = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let r = inspect(&Bytes(bytes)).err().map(|e| e.to_string());
    let out = std::fs::File::create(dir.path().join("pc.ram")).unwrap();
    if extract(&Bytes(bytes), "pc.ram", &out).is_ok() {
        assert!(
            out.metadata().unwrap().len() <= 1 << 30,
            "{what}: huge output"
        );
    }
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{what}: took {:?}",
        start.elapsed()
    );
    r
}

fn put_be64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_be_bytes());
}

#[test]
fn truncated_real_saves_get_clean_errors() {
    for name in ["seq.mig.gz", "mapped.mig.gz"] {
        let full = real(name);
        let info = inspect(&full).unwrap();
        let eof = info.eof_offset as usize;
        // A spread of cut points plus every structural boundary.
        let mut cuts: Vec<usize> = (0..64).map(|i| i * full.len() / 64).collect();
        for b in &info.blocks {
            cuts.push(b.record_offset as usize + 3);
            if let Some(f) = &b.fixed_ram {
                cuts.extend([
                    f.header_offset as usize + 10,
                    f.bitmap_offset as usize + 1,
                    f.pages_offset as usize + 100,
                ]);
            }
        }
        cuts.extend(info.sections.iter().map(|s| s.offset as usize + 1));
        for cut in cuts {
            let err = probe(&full[..cut], &format!("{name} cut at {cut:#x}"));
            if cut <= eof {
                let e = err.unwrap_or_else(|| panic!("{name} cut at {cut:#x} was accepted"));
                assert!(!e.is_empty());
            }
        }
    }
}

#[test]
fn bit_flipped_real_saves_never_panic() {
    for name in ["seq.mig.gz", "mapped.mig.gz"] {
        let full = real(name);
        let info = inspect(&full).unwrap();
        // Every byte of the preamble, of each block record and fixed-ram
        // header, and a sample elsewhere.
        let mut at: Vec<usize> = (0..info.blocks[0].record_offset as usize).collect();
        for b in &info.blocks {
            let r = b.record_offset as usize;
            let end = b
                .fixed_ram
                .as_ref()
                .map_or(r + 2 + b.name.len() + 8, |f| f.header_offset as usize + 28);
            at.extend(r..end);
        }
        at.extend((0..150).map(|i| (i * 7919 * 131) % full.len()));
        for &i in &at {
            for mask in [0x01u8, 0xFF] {
                let mut b = full.clone();
                b[i] ^= mask;
                probe(&b, &format!("{name} byte {i:#x} ^ {mask:#x}"));
            }
        }
    }
}

#[test]
fn hostile_lengths_and_offsets_in_real_saves_get_clean_errors() {
    let seq = real("seq.mig.gz");
    let mapped = real("mapped.mig.gz");
    let seq_info = inspect(&seq).unwrap();
    let map_info = inspect(&mapped).unwrap();
    let hostile = [
        u64::MAX,
        u64::MAX - 0xFFF,
        1 << 63,
        1 << 40,
        0x7FFF_FFFF_FFFF_F000,
    ];
    for v in hostile {
        // used_length of pc.ram (after its 1+6-byte idstr).
        for (bytes, info, name) in [(&seq, &seq_info, "seq"), (&mapped, &map_info, "mapped")] {
            let mut b = bytes.clone();
            put_be64(&mut b, info.blocks[0].record_offset as usize + 7, v);
            let e = probe(&b, &format!("{name} used_length {v:#x}"));
            assert!(e.is_some(), "{name}: used_length {v:#x} accepted");
        }
        // The MEM_SIZE total.
        let mut b = mapped.clone();
        let start = map_info.sections[0].offset as usize + 17;
        put_be64(&mut b, start, (v & !0xFFF) | 0x04);
        probe(&b, &format!("MEM_SIZE {v:#x}"));
        // bitmap_offset and pages_offset of pc.ram's fixed-ram header.
        let h = map_info.blocks[0].fixed_ram.as_ref().unwrap().header_offset as usize;
        for (field, off) in [("bitmap_offset", 12), ("pages_offset", 20)] {
            let mut b = mapped.clone();
            put_be64(&mut b, h + off, v & !0xFFF);
            let e = probe(&b, &format!("{field} {v:#x}"));
            assert!(e.is_some(), "{field} {v:#x} accepted");
        }
    }
    // A hostile vmdesc length after EOF is only a warning, as in QEMU.
    let mut b = seq.clone();
    let at = seq_info.vmdesc_offset.unwrap() as usize + 1;
    b[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    probe(&b, "vmdesc length");
}
