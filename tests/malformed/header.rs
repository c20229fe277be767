//! Sanity: the valid files load; the stream header.

use migsim_format::LoadError;

use crate::fixture::*;

// ---------------------------------------------------------------------------
// Sanity.

#[test]
fn valid_files_load() {
    for lay in BOTH {
        let f = Fixture::new(lay);
        assert_eq!(f.info.machine, MACHINE);
        assert_eq!(f.info.version, 3);
        assert_eq!(f.info.blocks[0].pages, RAM_PAGES);
        assert_eq!(f.info.blocks[1].pages, 1);
        let kinds: Vec<_> = f.info.sections.iter().map(|s| s.kind.name()).collect();
        assert_eq!(
            kinds,
            ["START", "PART", "PART", "COMMAND", "END", "FULL", "FULL"],
            "{lay:?}"
        );
        if lay == Lay::FixedRam {
            assert_eq!(f.info.capabilities, ["fixed-ram"]);
            assert_eq!(f.fixed(0).pages_offset % (1 << 20), 0);
        } else {
            assert!(f.info.capabilities.is_empty());
        }
    }
}

// ---------------------------------------------------------------------------
// Header.

#[test]
fn bad_magic_is_rejected() {
    for lay in BOTH {
        let f = Fixture::new(lay);
        let bad = f.corrupt(|b| b[0] = b'X');
        assert_err!(
            load_err(&bad),
            LoadError::BadMagic(0x5845_564d),
            "Not a migration stream"
        );
        let bad = f.corrupt(|b| put_be32(b, 0, 0));
        assert_err!(
            load_err(&bad),
            LoadError::BadMagic(0),
            "Not a migration stream"
        );
    }
}

#[test]
fn stream_version_2_is_obsolete() {
    for lay in BOTH {
        let f = Fixture::new(lay);
        let bad = f.corrupt(|b| put_be32(b, 4, 2));
        assert_err!(
            load_err(&bad),
            LoadError::ObsoleteVersion,
            "SaveVM v2 format is obsolete and don't work anymore"
        );
    }
}

#[test]
fn stream_version_4_is_unsupported() {
    for lay in BOTH {
        let f = Fixture::new(lay);
        let bad = f.corrupt(|b| put_be32(b, 4, 4));
        assert_err!(
            load_err(&bad),
            LoadError::UnsupportedVersion(4),
            "Unsupported migration stream version 4"
        );
        let bad = f.corrupt(|b| put_be32(b, 4, u32::MAX));
        assert_err!(
            load_err(&bad),
            LoadError::UnsupportedVersion(u32::MAX),
            "Unsupported migration stream version"
        );
    }
}
