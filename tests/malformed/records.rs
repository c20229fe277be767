//! Sequential RAM records, and fixed-ram streams that carry records.

use migsim_format::LoadError;

use crate::fixture::*;

// ---------------------------------------------------------------------------
// Sequential RAM records. Offsets inside PART 1 (r = PART offset + 5):
//   r          PAGE   pc.ram 0x0000  word 0x0008, "\x06pc.ram", 4096 bytes
//   r+4111     ZERO|C pc.ram 0x1000  word 0x1022, fill
//   r+4120     PAGE   pc.rom 0x0000  word 0x0008, "\x06pc.rom", 4096 bytes
//   r+8231     ZERO   pc.ram 0x5000  word 0x5002, "\x06pc.ram", fill
//   r+8247     PAGE|C pc.ram 0x3000  word 0x3028, 4096 bytes
//   r+12351    EOS

struct SeqRecords {
    f: Fixture,
    page0: u64,
    zero1: u64,
    rom0: u64,
    zero5: u64,
    page3: u64,
    eos: u64,
}

fn seq_records() -> SeqRecords {
    let f = Fixture::new(Lay::Sequential);
    let r = f.section("PART", 0) + 5;
    let s = SeqRecords {
        page0: r,
        zero1: r + 4111,
        rom0: r + 4120,
        zero5: r + 8231,
        page3: r + 8247,
        eos: r + 12351,
        f,
    };
    let b = &s.f.bytes;
    assert_eq!(be64_at(b, s.page0), 0x0008);
    assert_eq!(
        &b[s.page0 as usize + 8..s.page0 as usize + 15],
        b"\x06pc.ram"
    );
    assert_eq!(be64_at(b, s.zero1), 0x1022);
    assert_eq!(be64_at(b, s.rom0), 0x0008);
    assert_eq!(&b[s.rom0 as usize + 8..s.rom0 as usize + 15], b"\x06pc.rom");
    assert_eq!(be64_at(b, s.zero5), 0x5002);
    assert_eq!(be64_at(b, s.page3), 0x3028);
    assert_eq!(be64_at(b, s.eos), 0x10);
    assert_eq!(s.f.info.blocks[0].zero_records, 3);
    s
}

#[test]
fn zero_record_with_nonzero_fill_is_rejected() {
    let s = seq_records();
    for (fill_at, fill) in [(s.zero1 + 8, 1u8), (s.zero5 + 8 + 7, 0xFF)] {
        assert_eq!(s.f.bytes[fill_at as usize], 0);
        let bad = s.f.corrupt(|b| b[fill_at as usize] = fill);
        assert_err!(
            load_err(&bad),
            LoadError::ZeroPageFill(v) if v == fill,
            &format!("Found a zero page with value {fill}")
        );
    }
}

#[test]
fn continue_without_previous_block_is_rejected() {
    let s = seq_records();
    for word in [0x0028u64, 0x0022] {
        let bad = s.f.corrupt(|b| put_be64(b, s.page0, word));
        assert_err!(
            load_err(&bad),
            LoadError::ContinueWithoutBlock(at) if at == s.page0,
            "continues a block, but no block was named before"
        );
    }
}

#[test]
fn page_offset_beyond_block_is_rejected() {
    let s = seq_records();
    // pc.ram is 0x10000 bytes: offset 0x10000 is just past it.
    for (at, word, name, off, used) in [
        (s.page0, 0x10008u64, "pc.ram", 0x10000u64, 0x10000u64),
        (
            s.page0,
            0xFFFF_FFFF_FFFF_F008,
            "pc.ram",
            0xFFFF_FFFF_FFFF_F000,
            0x10000,
        ),
        (s.rom0, 0x1008, "pc.rom", 0x1000, 0x1000),
        (s.zero1, 0x10022, "pc.ram", 0x10000, 0x10000),
        (s.page3, 0x7_0000_0028, "pc.ram", 0x7_0000_0000, 0x10000),
    ] {
        let bad = s.f.corrupt(|b| put_be64(b, at, word));
        assert_err!(
            load_err(&bad),
            LoadError::IllegalRamOffset { name: ref n, offset, used_length }
                if n == name && offset == off && used_length == used,
            &format!("Illegal RAM offset {off:#x} in ramblock {name}")
        );
    }
}

#[test]
fn unknown_ram_flags_are_rejected() {
    let s = seq_records();
    // XBZRLE, FULL, HOOK, COMPRESS_PAGE, ZERO|PAGE, MEM_SIZE in a PART,
    // EOS with an offset, EOS|PAGE, XBZRLE|CONTINUE.
    for flags in [
        0x40u64, 0x01, 0x80, 0x100, 0x0A, 0x04, 0x18, 0x60, 0x400, 0x800,
    ] {
        let bad = s.f.corrupt(|b| put_be64(b, s.page0, flags));
        assert_err!(
            load_err(&bad),
            LoadError::UnknownRamFlags { flags: got, offset } if got == flags && offset == s.page0,
            &format!("Unknown combination of migration flags: {flags:#x}")
        );
    }
    // EOS with a non-zero offset is not EOS.
    let bad = s.f.corrupt(|b| put_be64(b, s.eos, 0x1010));
    assert_err!(
        load_err(&bad),
        LoadError::UnknownRamFlags { flags: 0x10, offset } if offset == s.eos,
        "Unknown combination of migration flags: 0x10"
    );
}

#[test]
fn page_record_naming_unknown_block_is_rejected() {
    let s = seq_records();
    let bad = s.f.corrupt(|b| put(b, s.rom0 + 9, b"pc.rum"));
    assert_err!(
        load_err(&bad),
        LoadError::UnknownBlock(ref n) if n == "pc.rum",
        "Unknown ramblock \"pc.rum\", cannot accept migration"
    );
}

#[test]
fn multifd_flush_shifting_the_records_is_rejected() {
    // MULTIFD_FLUSH is a legal sequential record: replacing the one-page
    // ZERO|CONT record's word with it shifts the stream by one byte (the
    // fill byte is then read as the next record) — it must fail cleanly,
    // not be silently accepted.
    let s = seq_records();
    let bad = s.f.corrupt(|b| put_be64(b, s.zero1, 0x200));
    let e = load_err(&bad);
    assert!(!e.to_string().is_empty());
}

// ---------------------------------------------------------------------------
// Fixed-ram streams must not carry page records.

#[test]
fn fixed_ram_page_record_after_block_list_is_rejected() {
    let f = Fixture::new(Lay::FixedRam);
    let last = f.fixed(1);
    let eos = last.pages_offset + f.info.blocks[1].used_length;
    assert_eq!(be64_at(&f.bytes, eos), 0x10);
    for (word, flags) in [
        (0x08u64, 8u64),
        (0x02, 2),
        (0x3028, 0x28),
        (0x22, 0x22),
        (0x200, 0x200),
        (0x40, 0x40),
    ] {
        let bad = f.corrupt(|b| put_be64(b, eos, word));
        assert_err!(
            load_err(&bad),
            LoadError::ForbiddenRamFlags { flags: got, offset } if got == flags && offset == eos,
            &format!("Unexpected RAM flags: {flags}")
        );
    }
}

#[test]
fn fixed_ram_page_or_zero_record_in_part_section_is_rejected() {
    let f = Fixture::new(Lay::FixedRam);
    for at in [
        f.section("PART", 0) + 5,
        f.section("PART", 1) + 5,
        f.section("END", 0) + 5,
    ] {
        assert_eq!(be64_at(&f.bytes, at), 0x10);
        for (word, flags) in [(0x1008u64, 8u64), (0x02, 2), (0x200, 512)] {
            let bad = f.corrupt(|b| put_be64(b, at, word));
            assert_err!(
                load_err(&bad),
                LoadError::ForbiddenRamFlags { flags: got, offset } if got == flags && offset == at,
                &format!("Unexpected RAM flags: {flags} (record at offset {at:#x}")
            );
        }
    }
}
