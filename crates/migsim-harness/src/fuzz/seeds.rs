//! The seed corpus of the fuzz targets: the files migsim writes, and the
//! real QEMU save made small ([`compact_qemu_seed`]).

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

/// The device whose vmdesc entry is left out of the QEMU seed: 70 KiB of
/// the 99 KiB trailer (an ACPI register table), and no field type the
/// other 30 devices lack.
pub const QEMU_SEED_DROPPED_DEVICE: &str = "0000:00:01.3/piix4_pm";

/// A real QEMU sequential save made cheap to fuzz, with the same
/// structure: every RAM page record but the first of each block becomes
/// a zero-page record (their 4 KiB of guest data do not steer the reader,
/// but they were 70% of the file, so most mutations landed there), the
/// zero-page records that only continue a block are left out (named
/// records stay), and [`QEMU_SEED_DROPPED_DEVICE`]'s FULL section and vmdesc entry are cut
/// (the trailer is parsed on every load). Everything else, the vmdesc's
/// own formatting included, is kept byte for byte. 547 KiB become about
/// 60 KiB.
pub fn compact_qemu_seed(raw: &[u8]) -> Result<Vec<u8>, String> {
    use migsim_format::ram::{FLAG_MASK, PAGE_SIZE, flag};
    use migsim_format::stream::SectionKind;

    let info = migsim_format::reader::inspect(&raw.to_vec()).map_err(|e| e.to_string())?;
    let vmdesc = info.vmdesc_offset.ok_or("no vmdesc trailer")? as usize;
    let first = info.sections.first().ok_or("no sections")?.offset as usize;
    let mut out = raw[..first].to_vec();
    let mut end = first;
    // The block of the last named record, and the blocks whose first page
    // kept its data.
    let mut block: &[u8] = &[];
    let mut kept: Vec<&[u8]> = Vec::new();
    for s in &info.sections {
        let (at, len) = (s.offset as usize, s.len as usize);
        let sec = &raw[at..at + len];
        end = at + len;
        match s.kind {
            SectionKind::Part | SectionKind::End => {
                // 1 type byte + be32 id, then records up to EOS, then the footer.
                out.extend_from_slice(&sec[..5]);
                let mut i = 5;
                loop {
                    let word = sec.get(i..i + 8).ok_or("RAM section cut short")?;
                    let word = u64::from_be_bytes(word.try_into().expect("8 bytes"));
                    let flags = word & FLAG_MASK;
                    let named =
                        flags & flag::CONTINUE == 0 && flags & (flag::ZERO | flag::PAGE) != 0;
                    let id_len = if named {
                        1 + usize::from(sec[i + 8])
                    } else {
                        0
                    };
                    let body = i + 8 + id_len;
                    if named {
                        block = &sec[i + 9..body];
                    }
                    if flags & flag::EOS != 0 || flags & flag::MULTIFD_FLUSH != 0 {
                        out.extend_from_slice(&sec[i..i + 8]);
                        i += 8;
                        if flags & flag::EOS != 0 {
                            break;
                        }
                    } else if flags & flag::ZERO != 0 {
                        // Zero pages of the block last named (CONTINUE)
                        // are left out: QEMU sends every page once, so
                        // they were 4,226 of the seed's records, walked
                        // by every load. Named records stay, so every
                        // CONTINUE that is kept still means its block.
                        if flags & flag::CONTINUE == 0 {
                            out.extend_from_slice(&sec[i..body + 1]);
                        }
                        i = body + 1;
                    } else if flags & flag::PAGE != 0 {
                        if !kept.contains(&block) {
                            kept.push(block);
                            out.extend_from_slice(&sec[i..body + PAGE_SIZE as usize]);
                        } else if flags & flag::CONTINUE == 0 {
                            // Named: a named zero record (word, idstr, fill).
                            let zero = (word & !flag::PAGE) | flag::ZERO;
                            out.extend_from_slice(&zero.to_be_bytes());
                            out.extend_from_slice(&sec[i + 8..body]);
                            out.push(0);
                        }
                        i = body + PAGE_SIZE as usize;
                    } else {
                        return Err(format!("RAM record flags {flags:#x} at {:#x}", at + i));
                    }
                }
                out.extend_from_slice(&sec[i..]);
            }
            SectionKind::Full if s.idstr == QEMU_SEED_DROPPED_DEVICE => {}
            _ => out.extend_from_slice(sec),
        }
    }
    // EOF byte(s) up to the trailer, then the trailer without the device.
    out.extend_from_slice(&raw[end..vmdesc]);
    let json = std::str::from_utf8(&raw[vmdesc + 5..]).map_err(|e| e.to_string())?;
    let entry = format!("{{\"name\": \"{QEMU_SEED_DROPPED_DEVICE}\"");
    let start = json.find(&entry).ok_or("device not in the vmdesc")?;
    let mut depth = 0usize;
    let close = json[start..]
        .char_indices()
        .find_map(|(k, c)| {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                _ => return None,
            }
            (depth == 0).then_some(start + k + 1)
        })
        .ok_or("unbalanced vmdesc")?;
    // Drop the entry and the ", " that joins it to its neighbour.
    let (cut_from, cut_to) = if json[close..].starts_with(", ") {
        (start, close + 2)
    } else {
        (start - 2, close)
    };
    let json = format!("{}{}", &json[..cut_from], &json[cut_to..]);
    out.push(migsim_format::stream::kind::VMDESCRIPTION);
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(json.as_bytes());
    Ok(out)
}
