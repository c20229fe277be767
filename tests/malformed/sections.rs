//! Section framing: types, footers, ids, the RAM version, commands.

use migsim_format::LoadError;

use crate::fixture::*;

// ---------------------------------------------------------------------------
// Sections, footers, commands.

#[test]
fn unknown_section_type_is_rejected() {
    for lay in BOTH {
        let f = Fixture::new(lay);
        let part = f.section("PART", 0);
        for k in [0x09u8, 0x05, 0x06, 0x07, 0x7E, 0xFF] {
            let bad = f.corrupt(|b| b[part as usize] = k);
            assert_err!(
                load_err(&bad),
                LoadError::UnknownSectionType { kind, offset } if kind == k && offset == part,
                "unknown section type"
            );
        }
        // Also the first section after the configuration.
        let start = f.ram_start();
        let bad = f.corrupt(|b| b[start as usize] = 0x42);
        assert_err!(
            load_err(&bad),
            LoadError::UnknownSectionType { kind: 0x42, offset } if offset == start,
            "unknown section type 0x42"
        );
    }
}

#[test]
fn missing_footer_is_rejected() {
    for lay in BOTH {
        let f = Fixture::new(lay);
        for s in f
            .info
            .sections
            .iter()
            .filter(|s| s.kind != migsim_format::SectionKind::Command)
        {
            let foot = s.offset + s.len - 5;
            assert_eq!(f.bytes[foot as usize], 0x7E, "{lay:?} {s:?}");
            let bad = f.corrupt(|b| b[foot as usize] = 0x7F);
            let idstr = s.idstr.clone();
            assert_err!(
                load_err(&bad),
                LoadError::MissingFooter { idstr: ref i, found: 0x7F, offset }
                    if *i == idstr && offset == foot,
                &format!("Missing section footer for {}", s.idstr)
            );
        }
    }
}

#[test]
fn footer_id_mismatch_is_rejected() {
    for lay in BOTH {
        let f = Fixture::new(lay);
        for s in f
            .info
            .sections
            .iter()
            .filter(|s| s.kind != migsim_format::SectionKind::Command)
        {
            let foot = s.offset + s.len - 5;
            assert_eq!(be32_at(&f.bytes, foot + 1), s.id);
            let bad = f.corrupt(|b| put_be32(b, foot + 1, 0xdead));
            let idstr = s.idstr.clone();
            let id = s.id;
            assert_err!(
                load_err(&bad),
                LoadError::FooterMismatch { idstr: ref i, read: 0xdead, expected }
                    if *i == idstr && expected == id,
                &format!(
                    "Mismatched section id in footer for {} - read 0xdead expected {:#x}",
                    s.idstr, s.id
                )
            );
        }
    }
}

#[test]
fn part_and_end_with_unknown_section_id_are_rejected() {
    for lay in BOTH {
        let f = Fixture::new(lay);
        for at in [
            f.section("PART", 0),
            f.section("PART", 1),
            f.section("END", 0),
        ] {
            let bad = f.corrupt(|b| put_be32(b, at + 1, 99));
            assert_err!(
                load_err(&bad),
                LoadError::UnknownSectionId { id: 99, offset } if offset == at,
                "unknown section id 99"
            );
        }
        // A PART naming a device's (FULL) id is not RAM.
        let full_id = f
            .info
            .sections
            .iter()
            .find(|s| s.kind == migsim_format::SectionKind::Full)
            .unwrap()
            .id;
        let part = f.section("PART", 0);
        let bad = f.corrupt(|b| put_be32(b, part + 1, full_id));
        // The device sections come after the RAM PART, so at that point the
        // id is unknown too.
        assert_err!(
            load_err(&bad),
            LoadError::UnknownSectionId { id, .. } if id == full_id,
            "unknown section id"
        );
    }
}

#[test]
fn ram_section_version_not_4_is_rejected() {
    for lay in BOTH {
        let f = Fixture::new(lay);
        // type, id, "\x03ram", instance, version
        let at = f.ram_start() + 1 + 4 + 4 + 4;
        assert_eq!(be32_at(&f.bytes, at), 4);
        for v in [3u32, 5, 0, u32::MAX] {
            let bad = f.corrupt(|b| put_be32(b, at, v));
            assert_err!(
                load_err(&bad),
                LoadError::RamVersion(got) if got == v,
                "ram section version"
            );
        }
    }
}

#[test]
fn duplicate_section_id_is_rejected() {
    for lay in BOTH {
        let f = Fixture::new(lay);
        // Give the second device the first device's id.
        let first = f.section("FULL", 0);
        let second = f.section("FULL", 1);
        let id = be32_at(&f.bytes, first + 1);
        let bad = f.corrupt(|b| put_be32(b, second + 1, id));
        assert_err!(
            load_err(&bad),
            LoadError::DuplicateSectionId { id: i, ref idstr, offset }
                if i == id && idstr == "cpu" && offset == second,
            "duplicate section id"
        );
    }
}

#[test]
fn stream_without_ram_is_rejected() {
    for lay in BOTH {
        let f = Fixture::new(lay);
        let start = f.ram_start();
        let bad = f.corrupt(|b| b[start as usize] = 0x00);
        assert_err!(
            load_err(&bad),
            LoadError::NoRam,
            "stream has no RAM section"
        );
    }
}

#[test]
fn command_other_than_switchover_start_is_rejected() {
    for lay in BOTH {
        let f = Fixture::new(lay);
        let c = f.section("COMMAND", 0);
        assert_eq!(be16_at(&f.bytes, c + 1), 0x000B);
        for cmd in [0x0002u16, 0x0001, 0x000A, 0x000C, 0xFFFF] {
            let bad = f.corrupt(|b| put_be16(b, c + 1, cmd));
            assert_err!(
                load_err(&bad),
                LoadError::UnexpectedCommand { cmd: got, len: 0, offset }
                    if got == cmd && offset == c,
                &format!("unexpected command {cmd:#06x}")
            );
        }
        // SWITCHOVER_START with a payload is not accepted either.
        let bad = f.corrupt(|b| put_be16(b, c + 3, 1));
        assert_err!(
            load_err(&bad),
            LoadError::UnexpectedCommand {
                cmd: 0x000B,
                len: 1,
                ..
            },
            "unexpected command 0x000b (length 1)"
        );
    }
}
