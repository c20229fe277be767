//! Property tests of the public API: fixed-ram offset arithmetic, the
//! 28-byte header, the page bitmap, the writer/reader round trip of both
//! RAM layouts, file sizes, and the capability checker.
//!
//! Every expected value is computed here from the format description
//! (the layouts documented in `migsim_format::stream`, `ram`, `fixed_ram`
//! and `bitmap`, and the rules of `migsim_format::caps`), not by
//! calling the code under test.

use std::collections::BTreeSet;

use migsim_format::bitmap::PageBitmap;
use migsim_format::caps::{Capabilities, Capability, Transport};
use migsim_format::fixed_ram::{BlockLayout, FixedRamHeader};
use migsim_format::io::MigFile;
use migsim_format::reader::{self, LoadOptions, StreamInfo};
use migsim_format::wire::Encoder;
use migsim_format::writer::{MigrationWriter, RamBlockDesc, WriterStats};
use migsim_format::{LoadError, SaveError};
use migsim_harness::sim::dest::{Destination, GARBAGE};
use migsim_harness::sim::simfile::SimFile;
use proptest::prelude::*;
use proptest::sample::Index;

const PAGE: u64 = 4096;
const MIB: u64 = 1 << 20;

// ---------------------------------------------------------------------------
// Independent model of the fixed-ram layout (format doc 4.3).

fn my_round_up_mib(x: u64) -> u64 {
    x.div_ceil(MIB) * MIB
}

fn my_bitmap_len(pages: u64) -> u64 {
    // ceil(pages / 64) 64-bit words, 8 bytes each.
    let mut words = pages / 64;
    if !pages.is_multiple_of(64) {
        words += 1;
    }
    words * 8
}

/// (bitmap_offset, bitmap_len, pages_offset, end) of a block whose header
/// is at `h`.
fn my_layout(h: u64, used_length: u64) -> (u64, u64, u64, u64) {
    let bitmap_offset = h + 28;
    let bitmap_len = my_bitmap_len(used_length / PAGE);
    let pages_offset = my_round_up_mib(bitmap_offset + bitmap_len);
    (
        bitmap_offset,
        bitmap_len,
        pages_offset,
        pages_offset + used_length,
    )
}

fn header_offset_strategy() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..(1 << 40),
        0u64..(4 * MIB),
        // Near a 1 MiB boundary, where rounding is interesting.
        (0u64..(1 << 20), -64i64..64).prop_map(|(k, d)| (k * MIB).saturating_add_signed(d)),
    ]
}

fn pages_strategy() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..200, 0u64..(1 << 22), Just(64), Just(65), Just(63)]
}

/// (header offset, pages); a third of the cases put the bitmap's end
/// within a few bytes of a 1 MiB boundary (exactly on it included).
fn layout_input() -> impl Strategy<Value = (u64, u64)> {
    prop_oneof![
        2 => (header_offset_strategy(), pages_strategy()),
        1 => (1u64..(1 << 20), pages_strategy(), -8i64..=8).prop_filter_map(
            "header offset below 0",
            |(k, pages, d)| {
                let h = (k * MIB).checked_sub(28 + my_bitmap_len(pages))?;
                Some((h.checked_add_signed(d)?, pages))
            }
        ),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Property 1a: one block's offsets.
    #[test]
    fn layout_offsets((h, pages) in layout_input()) {
        let used = pages * PAGE;
        let l = BlockLayout::plan(h, used);
        prop_assert_eq!(l.header.version, 1);
        prop_assert_eq!(l.header.page_size, PAGE);
        prop_assert_eq!(l.used_length, used);
        prop_assert_eq!(l.header.bitmap_offset, h + 28);
        prop_assert_eq!(l.bitmap_len, pages.div_ceil(64) * 8);
        prop_assert_eq!(l.bitmap_len, my_bitmap_len(pages));
        let bitmap_end = h + 28 + l.bitmap_len;
        let p = l.header.pages_offset;
        prop_assert_eq!(p % MIB, 0, "pages_offset {:#x} not 1 MiB aligned", p);
        prop_assert!(p >= bitmap_end, "pages_offset {:#x} < bitmap end {:#x}", p, bitmap_end);
        prop_assert!(p < bitmap_end + MIB, "pages_offset {:#x} wastes >= 1 MiB", p);
        for i in [0, 1, pages / 2, pages.saturating_sub(1), pages] {
            prop_assert_eq!(l.page_offset(i), p + i * 4096);
        }
        prop_assert_eq!(l.end(), p + used);
        prop_assert_eq!((l.header.bitmap_offset, l.bitmap_len, p, l.end()), my_layout(h, used));
    }

    /// Property 1b: consecutive blocks (next record right at the previous
    /// block's end) never overlap, and each region comes after the last.
    #[test]
    fn layout_consecutive_blocks_disjoint(
        start in 0u64..(3 * MIB),
        blocks in prop::collection::vec((1usize..=255, 1u64..(1 << 18)), 1..8),
    ) {
        let mut pos = start;
        // (what, begin, end) in file order.
        let mut regions: Vec<(&str, u64, u64)> = Vec::new();
        for &(name_len, pages) in &blocks {
            let used = pages * PAGE;
            let record = pos;
            let h = record + 1 + name_len as u64 + 8;
            let l = BlockLayout::plan(h, used);
            let (bo, bl, po, end) = my_layout(h, used);
            prop_assert_eq!(
                (l.header.bitmap_offset, l.bitmap_len, l.header.pages_offset, l.end()),
                (bo, bl, po, end)
            );
            regions.push(("record", record, h));
            regions.push(("header", h, h + 28));
            regions.push(("bitmap", bo, bo + bl));
            regions.push(("pages", po, po + used));
            pos = l.end();
        }
        for w in regions.windows(2) {
            let (a, b) = (w[0], w[1]);
            prop_assert!(a.1 <= a.2);
            prop_assert!(
                a.2 <= b.1,
                "{} [{:#x},{:#x}) overlaps {} [{:#x},{:#x})",
                a.0, a.1, a.2, b.0, b.1, b.2
            );
        }
        // All pairs, not just neighbours (cheap: < 32 regions).
        for (i, a) in regions.iter().enumerate() {
            for b in &regions[i + 1..] {
                prop_assert!(a.2 <= b.1 || b.2 <= a.1, "{:?} overlaps {:?}", a, b);
            }
        }
    }

    /// Property 2: the 28-byte big-endian header round-trips.
    #[test]
    fn header_roundtrip(
        version in any::<u32>(),
        page_size in any::<u64>(),
        bitmap_offset in any::<u64>(),
        pages_offset in any::<u64>(),
    ) {
        let h = FixedRamHeader { version, page_size, bitmap_offset, pages_offset };
        let mut e = Encoder::new();
        h.encode(&mut e);
        prop_assert_eq!(e.buf.len(), 28);
        let mut want = Vec::new();
        want.extend_from_slice(&version.to_be_bytes());
        want.extend_from_slice(&page_size.to_be_bytes());
        want.extend_from_slice(&bitmap_offset.to_be_bytes());
        want.extend_from_slice(&pages_offset.to_be_bytes());
        prop_assert_eq!(&e.buf, &want);
        let raw: [u8; 28] = e.buf[..].try_into().unwrap();
        prop_assert_eq!(FixedRamHeader::decode(&raw), h);
    }

    /// Property 2b: decode then encode is the identity on any 28 bytes.
    #[test]
    fn header_bytes_roundtrip(raw in prop::array::uniform28(any::<u8>())) {
        let h = FixedRamHeader::decode(&raw);
        let mut e = Encoder::new();
        h.encode(&mut e);
        prop_assert_eq!(&e.buf[..], &raw[..]);
    }
}

#[test]
fn layout_matches_reference_worked_example() {
    // Format doc 4.3, `vm.mapped`: (name, used_length, record, header,
    // bitmap_offset, bitmap size, pages_offset, next).
    #[allow(clippy::type_complexity)]
    let table: [(&str, u64, u64, u64, u64, u64, u64, u64); 6] = [
        (
            "pc.ram", 0x10000000, 0x63, 0x72, 0x8E, 8192, 0x100000, 0x10100000,
        ),
        (
            "/rom@etc/acpi/tables",
            0x20000,
            0x10100000,
            0x1010001D,
            0x10100039,
            8,
            0x10200000,
            0x10220000,
        ),
        (
            "pc.bios", 0x40000, 0x10220000, 0x10220010, 0x1022002C, 8, 0x10300000, 0x10340000,
        ),
        (
            "pc.rom", 0x20000, 0x10340000, 0x1034000F, 0x1034002B, 8, 0x10400000, 0x10420000,
        ),
        (
            "/rom@etc/table-loader",
            0x1000,
            0x10420000,
            0x1042001E,
            0x1042003A,
            8,
            0x10500000,
            0x10501000,
        ),
        (
            "/rom@etc/acpi/rsdp",
            0x1000,
            0x10501000,
            0x1050101B,
            0x10501037,
            8,
            0x10600000,
            0x10601000,
        ),
    ];
    let mut pos = 0x63;
    for (name, used, record, header, bo, bl, po, next) in table {
        assert_eq!(pos, record, "{name}");
        let h = pos + 1 + name.len() as u64 + 8;
        assert_eq!(h, header, "{name}");
        let l = BlockLayout::plan(h, used);
        assert_eq!(l.header.bitmap_offset, bo, "{name}");
        assert_eq!(l.bitmap_len, bl, "{name}");
        assert_eq!(l.header.pages_offset, po, "{name}");
        assert_eq!(l.end(), next, "{name}");
        pos = l.end();
    }
}

// ---------------------------------------------------------------------------
// Property 3: the page bitmap against a Vec<bool> model.

fn check_bitmap_against(bm: &PageBitmap, model: &[bool]) -> Result<(), TestCaseError> {
    let len = model.len() as u64;
    prop_assert_eq!(bm.len(), len);
    prop_assert_eq!(bm.is_empty(), len == 0);
    for (i, &m) in model.iter().enumerate() {
        prop_assert_eq!(bm.get(i as u64), m, "bit {}", i);
    }
    for i in len..len + 130 {
        prop_assert!(!bm.get(i), "bit {} past len {} reads set", i, len);
    }
    let ones: Vec<u64> = model
        .iter()
        .enumerate()
        .filter(|(_, b)| **b)
        .map(|(i, _)| i as u64)
        .collect();
    prop_assert_eq!(bm.count_ones(), ones.len() as u64);
    prop_assert_eq!(bm.iter_ones().collect::<Vec<_>>(), ones);
    let bytes = bm.to_le_bytes();
    prop_assert_eq!(bytes.len() as u64, my_bitmap_len(len));
    prop_assert_eq!(PageBitmap::encoded_len(len), my_bitmap_len(len));
    for i in 0..bytes.len() * 8 {
        let bit = bytes[i / 8] >> (i % 8) & 1 == 1;
        let want = i < model.len() && model[i];
        prop_assert_eq!(
            bit,
            want,
            "encoded bit {} (byte {}, bit {})",
            i,
            i / 8,
            i % 8
        );
    }
    prop_assert_eq!(&PageBitmap::from_le_bytes(&bytes, len), bm);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn bitmap_matches_model(
        len in prop_oneof![0u64..300, Just(64), Just(128), Just(1)],
        ops in prop::collection::vec((any::<Index>(), any::<bool>()), 0..200),
    ) {
        let mut bm = PageBitmap::new(len);
        let mut model = vec![false; len as usize];
        check_bitmap_against(&bm, &model)?;
        if len > 0 {
            for (idx, on) in &ops {
                let i = idx.index(len as usize);
                bm.set(i as u64, *on);
                model[i] = *on;
            }
        }
        check_bitmap_against(&bm, &model)?;

        let taken = bm.take();
        check_bitmap_against(&taken, &model)?;
        check_bitmap_against(&bm, &vec![false; len as usize])?;
        prop_assert_eq!(&bm, &PageBitmap::new(len));

        check_bitmap_against(&PageBitmap::full(len), &vec![true; len as usize])?;
    }

    /// Arbitrary bytes (garbage in the bits past `len` included): bits
    /// below `len` are read LSB first, the rest ignored.
    #[test]
    fn bitmap_from_arbitrary_bytes(
        len in 0u64..300,
        seed in prop::collection::vec(any::<u8>(), 0..=(300usize.div_ceil(64) * 8)),
    ) {
        let n = my_bitmap_len(len) as usize;
        let mut bytes = seed;
        bytes.resize(n, 0xFF);
        let model: Vec<bool> = (0..len as usize).map(|i| bytes[i / 8] >> (i % 8) & 1 == 1).collect();
        let bm = PageBitmap::from_le_bytes(&bytes, len);
        check_bitmap_against(&bm, &model)?;
    }
}

// ---------------------------------------------------------------------------
// Properties 4 and 5: writer -> file -> reader.

#[derive(Clone, Debug)]
enum Content {
    Zero,
    /// A full page of pseudo-random bytes.
    Data(u64),
    /// One non-zero byte, everything else zero.
    OneByte(u16, u8),
}

fn page_bytes(c: &Content) -> Vec<u8> {
    let mut p = vec![0u8; PAGE as usize];
    match *c {
        Content::Zero => {}
        Content::Data(seed) => {
            let mut s = seed;
            for ch in p.chunks_exact_mut(8) {
                s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = s;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                ch.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
            }
        }
        Content::OneByte(pos, b) => p[pos as usize] = b,
    }
    p
}

fn all_zero(p: &[u8]) -> bool {
    p.iter().all(|&b| b == 0)
}

type PageSend = (usize, u64, Content);

#[derive(Clone, Debug)]
struct Plan {
    machine: String,
    blocks: Vec<RamBlockDesc>,
    /// Every pass but the last is an iteration (PART); the last is the
    /// completion (END). Never empty.
    passes: Vec<Vec<PageSend>>,
}

/// Whether the first pass first sends every page, as QEMU's does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bulk {
    No,
    /// Every third page zero.
    Mixed,
    AllData,
}

fn content_strategy() -> impl Strategy<Value = Content> {
    prop_oneof![
        3 => Just(Content::Zero),
        5 => any::<u64>().prop_map(Content::Data),
        2 => (0u16..4096, 1u8..=255).prop_map(|(p, b)| Content::OneByte(p, b)),
    ]
}

fn name_pool() -> Vec<String> {
    vec![
        "pc.ram".into(),
        "/rom@etc/acpi/tables".into(),
        "pc.bios".into(),
        "m".into(),
        "mem".into(),
        "x".repeat(255),
    ]
}

fn plan_strategy() -> impl Strategy<Value = Plan> {
    let blocks = prop::sample::subsequence(name_pool(), 1..=3)
        .prop_shuffle()
        .prop_flat_map(|names| {
            let n = names.len();
            // Mostly small; sometimes a multi-word bitmap, or more than
            // the reader's 256-page read run.
            let pages = prop_oneof![8 => 1u64..40, 1 => 60u64..70, 1 => 250u64..300];
            (Just(names), prop::collection::vec(pages, n))
        })
        .prop_map(|(names, pages)| {
            names
                .into_iter()
                .zip(pages)
                .map(|(name, p)| RamBlockDesc {
                    name,
                    used_length: p * PAGE,
                    shared: false,
                })
                .collect::<Vec<_>>()
        });
    let raw_passes = prop::collection::vec(
        prop::collection::vec((any::<Index>(), any::<Index>(), content_strategy()), 0..40),
        1..=4,
    );
    (
        prop::sample::select(vec!["pc-i440fx-10.0", "pc-q35-10.0", "m"]),
        blocks,
        raw_passes,
        prop::sample::select(vec![Bulk::No, Bulk::Mixed, Bulk::AllData]),
        any::<u64>(),
    )
        .prop_map(|(machine, blocks, raw, bulk_kind, seed)| {
            let mut passes: Vec<Vec<PageSend>> = raw
                .into_iter()
                .map(|pass| {
                    pass.into_iter()
                        .map(|(bi, pi, c)| {
                            let b = bi.index(blocks.len());
                            let p = pi.index((blocks[b].used_length / PAGE) as usize) as u64;
                            (b, p, c)
                        })
                        .collect()
                })
                .collect();
            if bulk_kind != Bulk::No {
                // QEMU's first pass names every page (some zero).
                let mut bulk = Vec::new();
                for (b, d) in blocks.iter().enumerate() {
                    for p in 0..d.used_length / PAGE {
                        let c = if bulk_kind == Bulk::Mixed && (p + b as u64).is_multiple_of(3) {
                            Content::Zero
                        } else {
                            Content::Data(seed ^ (b as u64) << 32 ^ p)
                        };
                        bulk.push((b, p, c));
                    }
                }
                bulk.append(&mut passes[0]);
                passes[0] = bulk;
            }
            Plan {
                machine: machine.to_string(),
                blocks,
                passes,
            }
        })
}

fn caps_for(fixed: bool) -> Capabilities {
    if fixed {
        Capabilities::from_enabled(&[Capability::FixedRam]).expect("fixed-ram alone is valid")
    } else {
        Capabilities::none()
    }
}

fn write_plan<F: MigFile>(
    file: F,
    plan: &Plan,
    caps: &Capabilities,
) -> Result<(F, WriterStats), SaveError> {
    let mut w = MigrationWriter::start(file, &plan.machine, caps, plan.blocks.clone())?;
    let n = plan.passes.len();
    for (i, pass) in plan.passes.iter().enumerate() {
        let last = i + 1 == n;
        if last {
            w.begin_completion()?;
        } else {
            w.begin_iteration()?;
        }
        for (b, p, c) in pass {
            w.save_page(*b, *p, &page_bytes(c))?;
        }
        if !last {
            w.end_iteration()?;
        }
    }
    w.finish(&[])
}

/// Per page: the last content sent (None = never sent) and the last
/// non-zero content sent.
struct Model {
    last: Vec<Vec<Option<Vec<u8>>>>,
    last_nonzero: Vec<Vec<Option<Vec<u8>>>>,
    nonzero_sends: Vec<u64>,
    zero_sends: Vec<u64>,
}

impl Model {
    fn of(plan: &Plan) -> Self {
        let per_block = |b: &RamBlockDesc| vec![None; (b.used_length / PAGE) as usize];
        let mut m = Model {
            last: plan.blocks.iter().map(per_block).collect(),
            last_nonzero: plan.blocks.iter().map(per_block).collect(),
            nonzero_sends: vec![0; plan.blocks.len()],
            zero_sends: vec![0; plan.blocks.len()],
        };
        for (b, p, c) in plan.passes.iter().flatten() {
            let bytes = page_bytes(c);
            if all_zero(&bytes) {
                m.zero_sends[*b] += 1;
            } else {
                m.nonzero_sends[*b] += 1;
                m.last_nonzero[*b][*p as usize] = Some(bytes.clone());
            }
            m.last[*b][*p as usize] = Some(bytes);
        }
        m
    }

    fn bit(&self, b: usize, p: usize) -> bool {
        self.last[b][p].as_deref().is_some_and(|x| !all_zero(x))
    }
}

const CAPS_SUBSECTION_NAME: &str = "configuration/capabilities";
/// The vmdesc trailer of a stream without devices, as QEMU 10 writes it:
/// the configuration (machine name; with fixed-ram, the capabilities
/// subsection listing "fixed-ram", a 10-byte short string), the page size,
/// no devices.
fn empty_vmdesc(machine: &str, fixed: bool) -> String {
    let caps = if fixed {
        r#","subsections":[{"vmsd_name":"configuration/capabilities","version":1,"fields":[{"name":"caps_count","type":"uint32","size":4},{"name":"capabilities","type":"capability","size":10}]}]"#
    } else {
        ""
    };
    format!(
        r#"{{"configuration":{{"vmsd_name":"configuration","version":1,"fields":[{{"name":"len","type":"uint32","size":4}},{{"name":"name","type":"buffer","size":{}}}]{caps}}},"page_size":4096,"devices":[]}}"#,
        machine.len()
    )
}

struct ExpBlock {
    record: u64,
    /// Fixed-ram: (header, bitmap_offset, bitmap_len, pages_offset).
    fixed: Option<(u64, u64, u64, u64)>,
}

/// Independent layout of the whole file: the blocks, and its length.
fn expected_file(plan: &Plan, fixed: bool) -> (Vec<ExpBlock>, u64) {
    let mut pos = 4 + 4 + 1 + 4 + plan.machine.len() as u64;
    if fixed {
        // SUBSECTION, name, version, count, "fixed-ram".
        pos += 1 + (1 + CAPS_SUBSECTION_NAME.len() as u64) + 4 + 4 + (1 + 9);
    }
    // START: type, id, "ram", instance, version; MEM_SIZE word.
    pos += 1 + 4 + (1 + 3) + 4 + 4 + 8;
    let mut blocks = Vec::new();
    for b in &plan.blocks {
        let record = pos;
        pos += 1 + b.name.len() as u64 + 8;
        let mut fx = None;
        if fixed {
            let (bo, bl, po, end) = my_layout(pos, b.used_length);
            fx = Some((pos, bo, bl, po));
            pos = end;
        }
        blocks.push(ExpBlock { record, fixed: fx });
    }
    pos += 8 + 5; // EOS, footer
    let mut last_block: Option<usize> = None;
    let n = plan.passes.len();
    for (i, pass) in plan.passes.iter().enumerate() {
        if i + 1 == n {
            pos += 1 + 2 + 2; // SWITCHOVER_START command
        }
        pos += 1 + 4; // PART/END header
        if !fixed {
            for (b, _, c) in pass {
                let cont = last_block == Some(*b);
                pos += 8;
                if !cont {
                    pos += 1 + plan.blocks[*b].name.len() as u64;
                }
                pos += if all_zero(&page_bytes(c)) { 1 } else { PAGE };
                last_block = Some(*b);
            }
        }
        pos += 8 + 5; // EOS, footer
    }
    pos += 1; // EOF
    pos += 1 + 4 + empty_vmdesc(&plan.machine, fixed).len() as u64;
    (blocks, pos)
}

fn check_info(
    info: &StreamInfo,
    plan: &Plan,
    model: &Model,
    fixed: bool,
    file_len: u64,
) -> Result<(), TestCaseError> {
    let (exp, exp_len) = expected_file(plan, fixed);
    prop_assert_eq!(info.file_len, file_len);
    prop_assert_eq!(file_len, exp_len, "file length vs independent computation");
    prop_assert_eq!(info.version, 3);
    prop_assert_eq!(&info.machine, &plan.machine);
    let want_caps: Vec<String> = if fixed {
        vec!["fixed-ram".into()]
    } else {
        vec![]
    };
    prop_assert_eq!(&info.capabilities, &want_caps);
    prop_assert_eq!(
        info.layout.name(),
        if fixed { "fixed-ram" } else { "sequential" }
    );
    prop_assert_eq!(info.blocks.len(), plan.blocks.len());
    for (i, (got, want)) in info.blocks.iter().zip(&plan.blocks).enumerate() {
        prop_assert_eq!(&got.name, &want.name);
        prop_assert_eq!(got.used_length, want.used_length);
        prop_assert_eq!(got.pages, want.used_length / PAGE);
        prop_assert_eq!(
            got.record_offset,
            exp[i].record,
            "record offset of {}",
            want.name
        );
        if fixed {
            let bits = (0..model.last[i].len())
                .filter(|&p| model.bit(i, p))
                .count() as u64;
            prop_assert_eq!(got.pages_present, bits, "pages_present of {}", want.name);
            prop_assert_eq!(got.zero_records, 0);
            let f = got.fixed_ram.as_ref().expect("fixed-ram info");
            let (h, bo, bl, po) = exp[i].fixed.unwrap();
            prop_assert_eq!(
                (
                    f.header_offset,
                    f.version,
                    f.page_size,
                    f.bitmap_offset,
                    f.bitmap_len,
                    f.pages_offset
                ),
                (h, 1, PAGE, bo, bl, po)
            );
        } else {
            prop_assert_eq!(
                got.pages_present,
                model.nonzero_sends[i],
                "PAGE records of {}",
                want.name
            );
            prop_assert_eq!(
                got.zero_records,
                model.zero_sends[i],
                "ZERO records of {}",
                want.name
            );
            prop_assert!(got.fixed_ram.is_none());
        }
    }
    let kinds: Vec<&str> = info.sections.iter().map(|s| s.kind.name()).collect();
    let mut want_kinds = vec!["START"];
    want_kinds.extend(std::iter::repeat_n("PART", plan.passes.len() - 1));
    want_kinds.extend(["COMMAND", "END"]);
    prop_assert_eq!(kinds, want_kinds);
    let vmdesc_at = file_len - (1 + 4 + empty_vmdesc(&plan.machine, fixed).len() as u64);
    prop_assert_eq!(info.eof_offset, vmdesc_at - 1);
    prop_assert_eq!(info.vmdesc_offset, Some(vmdesc_at));
    prop_assert!(info.warnings.is_empty(), "warnings: {:?}", info.warnings);
    Ok(())
}

/// Fixed-ram: the bytes of the file itself — headers, bitmaps, page slots
/// (stale data of pages that became zero stays, holes read as zero).
fn check_fixed_file(file: &[u8], plan: &Plan, model: &Model) -> Result<(), TestCaseError> {
    let (exp, _) = expected_file(plan, true);
    for (i, b) in plan.blocks.iter().enumerate() {
        let (h, bo, bl, po) = exp[i].fixed.unwrap();
        let hdr = &file[h as usize..h as usize + 28];
        prop_assert_eq!(&hdr[0..4], &1u32.to_be_bytes());
        prop_assert_eq!(&hdr[4..12], &PAGE.to_be_bytes());
        prop_assert_eq!(&hdr[12..20], &bo.to_be_bytes());
        prop_assert_eq!(&hdr[20..28], &po.to_be_bytes());
        let bitmap = &file[bo as usize..(bo + bl) as usize];
        let pages = (b.used_length / PAGE) as usize;
        for bit in 0..bitmap.len() * 8 {
            let set = bitmap[bit / 8] >> (bit % 8) & 1 == 1;
            let want = bit < pages && model.bit(i, bit);
            prop_assert_eq!(set, want, "bitmap bit {} of {}", bit, b.name);
        }
        prop_assert!(
            all_zero(&file[(bo + bl) as usize..po as usize]),
            "padding written"
        );
        for p in 0..pages {
            let at = (po + p as u64 * PAGE) as usize;
            let slot = &file[at..at + PAGE as usize];
            match &model.last_nonzero[i][p] {
                Some(want) => prop_assert!(slot == &want[..], "slot {} of {}", p, b.name),
                None => prop_assert!(
                    all_zero(slot),
                    "never-written slot {} of {} not a hole",
                    p,
                    b.name
                ),
            }
        }
    }
    Ok(())
}

fn load_into(
    file: &[u8],
    plan: &Plan,
    caps: Capabilities,
    dest_blocks: &[RamBlockDesc],
    dirty: bool,
) -> Result<(Destination, StreamInfo), LoadError> {
    let mut dest = Destination::new(dest_blocks, dirty);
    let opts = LoadOptions {
        machine: Some(plan.machine.clone()),
        caps: Some(caps),
        skip_page_data: false,
        ..LoadOptions::default()
    };
    let info = reader::load(&file.to_vec(), &opts, &mut dest)?;
    Ok((dest, info))
}

fn check_roundtrip(plan: &Plan, fixed: bool, reverse_dest: bool) -> Result<(), TestCaseError> {
    let caps = caps_for(fixed);
    let model = Model::of(plan);
    let (file, stats) = write_plan(Vec::<u8>::new(), plan, &caps).expect("write");
    prop_assert_eq!(stats.pages_written, model.nonzero_sends.iter().sum::<u64>());
    prop_assert_eq!(stats.zero_pages, model.zero_sends.iter().sum::<u64>());
    prop_assert_eq!(stats.iterations, plan.passes.len() as u64 - 1);

    // The same stream through the simulated sparse file: same bytes. The
    // sequential layout only appends, so it also works on a socket.
    let (sim, _) = write_plan(SimFile::new(), plan, &caps).expect("write SimFile");
    prop_assert!(sim.to_vec() == file, "SimFile and Vec<u8> differ");
    if !fixed {
        let (sock, _) = write_plan(SimFile::non_seekable(), plan, &caps).expect("write socket");
        prop_assert!(sock.to_vec() == file, "socket and Vec<u8> differ");
    } else {
        match write_plan(SimFile::non_seekable(), plan, &caps) {
            Err(e) => prop_assert_eq!(
                e.to_string(),
                "Migration requires seekable transport (e.g. file)"
            ),
            Ok(_) => prop_assert!(false, "fixed-ram written to a non-seekable transport"),
        }
    }

    let info = reader::inspect(&file).expect("inspect");
    check_info(&info, plan, &model, fixed, file.len() as u64)?;
    if fixed {
        check_fixed_file(&file, plan, &model)?;
    }

    // The destination declares its blocks in its own order.
    let mut dest_blocks = plan.blocks.clone();
    if reverse_dest {
        dest_blocks.reverse();
    }
    for dirty in [false, true] {
        let (dest, info2) = load_into(&file, plan, caps, &dest_blocks, dirty)
            .map_err(|e| TestCaseError::fail(format!("load (dirty={dirty}): {e}")))?;
        prop_assert_eq!(&info2, &info);
        for (i, b) in plan.blocks.iter().enumerate() {
            let local = dest_blocks.iter().position(|d| d.name == b.name).unwrap();
            for p in 0..(b.used_length / PAGE) as usize {
                let got = dest.page(local, p as u64);
                match &model.last[i][p] {
                    Some(want) => prop_assert!(
                        got == &want[..],
                        "block {} page {} (dirty={}): not the last content sent",
                        b.name,
                        p,
                        dirty
                    ),
                    None if fixed => prop_assert!(
                        all_zero(got),
                        "block {} page {} (dirty={}): never sent but not zero",
                        b.name,
                        p,
                        dirty
                    ),
                    None => {
                        // Sequential: pages never named are left alone.
                        let fill = if dirty { GARBAGE } else { 0 };
                        prop_assert!(
                            got.iter().all(|&x| x == fill),
                            "block {} page {} (dirty={}): never sent but changed",
                            b.name,
                            p,
                            dirty
                        );
                    }
                }
            }
        }
    }

    // The other layout's destination refuses the stream.
    match load_into(&file, plan, caps_for(!fixed), &dest_blocks, false) {
        Err(e) => prop_assert_eq!(
            e.to_string(),
            format!(
                "Capability fixed-ram is {}, but received capability is {}",
                if fixed { "off" } else { "on" },
                if fixed { "on" } else { "off" }
            )
        ),
        Ok(_) => prop_assert!(false, "capability mismatch not detected"),
    }
    Ok(())
}

/// The plan with `extra` more iteration passes re-sending pages (copies
/// of the existing sends, cycled) inserted before completion.
fn with_extra_passes(plan: &Plan, extra: usize) -> Plan {
    let sends: Vec<PageSend> = plan.passes.iter().flatten().cloned().collect();
    let mut p = plan.clone();
    let completion = p.passes.pop().unwrap();
    for k in 0..extra {
        let mut pass: Vec<PageSend> = sends.iter().skip(k).cloned().collect();
        if pass.is_empty() {
            pass = vec![(0, 0, Content::Data(k as u64))];
        }
        p.passes.push(pass);
    }
    p.passes.push(completion);
    p
}

/// The plan with the same passes but no page sent at all.
fn without_sends(plan: &Plan) -> Plan {
    let mut p = plan.clone();
    p.passes.iter_mut().for_each(Vec::clear);
    p
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Property 4 (+ the file-length half of 5): round trip through both
    /// layouts, zeroed and dirty destinations.
    #[test]
    fn codec_roundtrip(plan in plan_strategy(), reverse in any::<bool>()) {
        for fixed in [false, true] {
            check_roundtrip(&plan, fixed, reverse)?;
        }
    }

}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Property 5: sizes. Sequential grows by exactly the re-sent records
    /// (+18 per PART); fixed-ram does not depend on which or how many pages
    /// were sent, only on the number of PART sections (18 bytes each).
    #[test]
    fn file_sizes(plan in plan_strategy(), extra in 1usize..4) {
        let write_len = |p: &Plan, fixed: bool| -> u64 {
            write_plan(Vec::<u8>::new(), p, &caps_for(fixed)).expect("write").0.len() as u64
        };
        let more = with_extra_passes(&plan, extra);
        // Sequential: the independent record-size sum.
        for p in [&plan, &more] {
            prop_assert_eq!(write_len(p, false), expected_file(p, false).1);
        }
        // Fixed-ram.
        let base = write_len(&plan, true);
        prop_assert_eq!(base, expected_file(&plan, true).1);
        prop_assert_eq!(write_len(&without_sends(&plan), true), base);
        let bigger = write_len(&more, true);
        prop_assert_eq!(bigger, base + 18 * extra as u64);
        prop_assert_eq!(write_len(&without_sends(&more), true), bigger);
    }
}

/// Concrete: a page sent non-zero then zero loads as zero into a dirty
/// destination in both layouts, and in fixed-ram its stale bytes stay.
#[test]
fn zero_after_data_concrete() {
    let plan = Plan {
        machine: "pc-i440fx-10.0".into(),
        blocks: vec![RamBlockDesc {
            name: "pc.ram".into(),
            used_length: 2 * PAGE,
            shared: false,
        }],
        passes: vec![
            vec![(0, 0, Content::Data(7)), (0, 1, Content::OneByte(4095, 1))],
            vec![(0, 0, Content::Zero)],
        ],
    };
    for fixed in [false, true] {
        for reverse in [false, true] {
            check_roundtrip(&plan, fixed, reverse).unwrap();
        }
    }
}

// ---------------------------------------------------------------------------
// Property 6: capabilities, against an independent model of the rules.

/// Own order and indexing, independent of the crate's.
const CAPS: [Capability; 5] = [
    Capability::FixedRam,
    Capability::Multifd,
    Capability::Xbzrle,
    Capability::Compress,
    Capability::PostcopyRam,
];

fn cap_index(c: Capability) -> usize {
    CAPS.iter().position(|&x| x == c).unwrap()
}

fn mask_caps(mask: u8) -> Vec<Capability> {
    (0..5)
        .filter(|i| mask & (1 << i) != 0)
        .map(|i| CAPS[i])
        .collect()
}

/// The rules: with fixed-ram on, the first of multifd, xbzrle, compress,
/// postcopy-ram that is also on is refused with its message.
fn model_check(mask: u8) -> Result<(), String> {
    if mask & 1 == 0 {
        return Ok(());
    }
    for (bit, words) in [
        (1, "multifd"),
        (2, "xbzrle"),
        (3, "compression"),
        (4, "postcopy ram"),
    ] {
        if mask & (1 << bit) != 0 {
            return Err(format!("Fixed-ram migration is incompatible with {words}"));
        }
    }
    Ok(())
}

fn model_apply(mut mask: u8, settings: &[(Capability, bool)]) -> u8 {
    for &(c, on) in settings {
        let b = 1 << cap_index(c);
        if on {
            mask |= b;
        } else {
            mask &= !b;
        }
    }
    mask
}

fn mask_of(c: &Capabilities) -> u8 {
    CAPS.iter()
        .enumerate()
        .filter(|(_, x)| c.has(**x))
        .fold(0, |m, (i, _)| m | 1 << i)
}

fn valid_state(mask: u8) -> Capabilities {
    Capabilities::from_enabled(&mask_caps(mask)).expect("valid state")
}

const TRANSPORTS: [Transport; 5] = [
    Transport::File,
    Transport::Tcp,
    Transport::Unix,
    Transport::Exec,
    Transport::Fd,
];

#[test]
fn caps_all_32_combinations() {
    for mask in 0u8..32 {
        let list = mask_caps(mask);
        let want = model_check(mask);
        // Any order of the same list gives the same answer.
        let mut rev = list.clone();
        rev.reverse();
        for l in [&list, &rev] {
            let got = Capabilities::from_enabled(l);
            match (&got, &want) {
                (Ok(c), Ok(())) => {
                    assert_eq!(mask_of(c), mask, "mask {mask:05b}");
                    let enabled: BTreeSet<_> = c.enabled().into_iter().collect();
                    assert_eq!(enabled, list.iter().copied().collect(), "mask {mask:05b}");
                    let validated: Vec<&str> = if mask & 1 != 0 {
                        vec!["fixed-ram"]
                    } else {
                        vec![]
                    };
                    assert_eq!(c.validated_names(), validated, "mask {mask:05b}");
                }
                (Err(e), Err(m)) => assert_eq!(&e.to_string(), m, "mask {mask:05b}"),
                _ => panic!("mask {mask:05b}: checker {got:?}, model {want:?}"),
            }
        }
        // The same through one `set` call on an empty set.
        let mut c = Capabilities::none();
        let settings: Vec<_> = list.iter().map(|&x| (x, true)).collect();
        let r = c.set(&settings).map_err(|e| e.to_string());
        assert_eq!(r, want, "set, mask {mask:05b}");
        assert_eq!(mask_of(&c), if want.is_ok() { mask } else { 0 });

        if let Ok(c) = Capabilities::from_enabled(&list) {
            for t in TRANSPORTS {
                let want_t = if mask & 1 != 0 && t != Transport::File {
                    Err("Migration requires seekable transport (e.g. file)".to_string())
                } else {
                    Ok(())
                };
                assert_eq!(
                    c.check_transport(t).map_err(|e| e.to_string()),
                    want_t,
                    "mask {mask:05b}, {t:?}"
                );
            }
        }
    }
}

#[test]
fn caps_set_single_exhaustive() {
    for start in (0u8..32).filter(|m| model_check(*m).is_ok()) {
        for c in CAPS {
            for on in [false, true] {
                let mut caps = valid_state(start);
                let new = model_apply(start, &[(c, on)]);
                let r = caps.set(&[(c, on)]).map_err(|e| e.to_string());
                assert_eq!(r, model_check(new), "{start:05b} + {c:?}={on}");
                let after = if r.is_ok() { new } else { start };
                assert_eq!(mask_of(&caps), after, "{start:05b} + {c:?}={on}");
            }
        }
    }
}

fn valid_mask() -> impl Strategy<Value = u8> {
    (0u8..32).prop_filter("valid start state", |m| model_check(*m).is_ok())
}

fn setting() -> impl Strategy<Value = (Capability, bool)> {
    (prop::sample::select(CAPS.to_vec()), any::<bool>())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// `set` is atomic and agrees with the model.
    #[test]
    fn caps_set_atomic(start in valid_mask(), settings in prop::collection::vec(setting(), 0..8)) {
        let mut c = valid_state(start);
        let before = c;
        let new = model_apply(start, &settings);
        let r = c.set(&settings).map_err(|e| e.to_string());
        prop_assert_eq!(&r, &model_check(new));
        if r.is_err() {
            prop_assert_eq!(c, before, "refused set changed the state");
        } else {
            prop_assert_eq!(mask_of(&c), new);
        }
    }

    /// Single settings (one per capability) that all succeed in two orders
    /// end in the same state, the model's.
    #[test]
    fn caps_single_settings_order_independent(
        start in valid_mask(),
        (settings, shuffled) in prop::sample::subsequence(CAPS.to_vec(), 0..=5)
            .prop_flat_map(|cs| {
                let n = cs.len();
                (Just(cs), prop::collection::vec(any::<bool>(), n))
            })
            .prop_map(|(cs, ons)| cs.into_iter().zip(ons).collect::<Vec<_>>())
            .prop_flat_map(|s| (Just(s.clone()), Just(s).prop_shuffle())),
    ) {
        let apply = |order: &[(Capability, bool)]| -> Option<Capabilities> {
            let mut c = valid_state(start);
            for s in order {
                let before = c;
                if c.set(std::slice::from_ref(s)).is_err() {
                    assert_eq!(c, before, "refused single setting changed the state");
                    return None;
                }
            }
            Some(c)
        };
        if let (Some(a), Some(b)) = (apply(&settings), apply(&shuffled)) {
            prop_assert_eq!(a, b);
            prop_assert_eq!(mask_of(&a), model_apply(start, &settings));
        }
    }
}
