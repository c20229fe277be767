//! The configuration section: machine, capabilities, subsections.

use migsim_format::LoadError;
use migsim_format::caps::{Capability, CapsError};
use migsim_format::reader::LoadOptions;

use crate::fixture::*;

// ---------------------------------------------------------------------------
// Configuration section.

#[test]
fn configuration_missing_is_rejected() {
    for lay in BOTH {
        let f = Fixture::new(lay);
        assert_eq!(f.bytes[8], 0x07);
        let bad = f.corrupt(|b| b[8] = 0x04);
        assert_err!(
            load_err(&bad),
            LoadError::ConfigurationMissing(0x04),
            "Configuration section missing"
        );
        // A stream whose sections start right after the header.
        let bad = f.corrupt(|b| b[8] = 0x01);
        assert_err!(
            load_err(&bad),
            LoadError::ConfigurationMissing(0x01),
            "Configuration section missing"
        );
    }
}

#[test]
fn machine_mismatch_is_rejected() {
    for lay in BOTH {
        let f = Fixture::new(lay);
        let o = LoadOptions {
            machine: Some("pc-q35-10.0".into()),
            ..opts(lay.caps())
        };
        let e = load_with(&f.bytes, &o).unwrap_err();
        assert!(
            matches!(&e, LoadError::MachineMismatch { received, local }
                if received == MACHINE && local == "pc-q35-10.0"),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "Machine type received is 'pc-i440fx-10.0' and local is 'pc-q35-10.0'"
        );
        // The same machine name with a corrupted byte in the file.
        let bad = f.corrupt(|b| b[8 + 1 + 4] = b'q');
        let e = load_with(&bad, &opts(lay.caps())).unwrap_err();
        assert_err!(
            e,
            LoadError::MachineMismatch { .. },
            "Machine type received is 'qc-i440fx-10.0' and local is 'pc-i440fx-10.0'"
        );
    }
}

#[test]
fn capability_fixed_ram_on_locally_but_off_in_stream_is_rejected() {
    let f = Fixture::new(Lay::Sequential);
    let e = load_with(&f.bytes, &opts(Lay::FixedRam.caps())).unwrap_err();
    assert!(
        matches!(
            e,
            LoadError::Caps(CapsError::Mismatch {
                cap: Capability::FixedRam,
                local: true,
                received: false
            })
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "Capability fixed-ram is on, but received capability is off"
    );
}

#[test]
fn capability_fixed_ram_off_locally_but_on_in_stream_is_rejected() {
    let f = Fixture::new(Lay::FixedRam);
    let e = load_with(&f.bytes, &opts(Lay::Sequential.caps())).unwrap_err();
    assert!(
        matches!(
            e,
            LoadError::Caps(CapsError::Mismatch {
                cap: Capability::FixedRam,
                local: false,
                received: true
            })
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "Capability fixed-ram is off, but received capability is on"
    );
}

#[test]
fn unknown_capability_is_rejected() {
    let f = Fixture::new(Lay::FixedRam);
    let at = find(&f.bytes, b"\x09fixed-ram");
    let bad = f.corrupt(|b| put(b, at + 1, b"fixed-rom"));
    for caps in [Lay::FixedRam.caps(), Lay::Sequential.caps()] {
        let e = load_with(&bad, &opts(caps)).unwrap_err();
        assert!(
            matches!(&e, LoadError::Caps(CapsError::UnknownCapability(n)) if n == "fixed-rom"),
            "{e:?}"
        );
        assert_eq!(e.to_string(), "Received unknown capability fixed-rom");
    }
}

#[test]
fn capability_count_larger_than_file_is_rejected() {
    let f = Fixture::new(Lay::FixedRam);
    let (sub, count) = caps_count_at(&f);
    for n in [u32::MAX, f.bytes.len() as u32, 0x8000_0000] {
        let bad = f.corrupt(|b| put_be32(b, count, n));
        assert_err!(
            load_err(&bad),
            LoadError::CapabilityCount(c, at) if c == n && at == sub,
            "more than the file can hold"
        );
    }
}

#[test]
fn unknown_configuration_subsection_is_rejected() {
    let f = Fixture::new(Lay::FixedRam);
    let (sub, _) = caps_count_at(&f);
    let at = find(&f.bytes, b"configuration/capabilities");
    let bad = f.corrupt(|b| put(b, at, b"configuration/capabilitiez"));
    assert_err!(
        load_err(&bad),
        LoadError::UnknownConfigSubsection(ref n, o) if n == "configuration/capabilitiez" && o == sub,
        "unknown configuration subsection 'configuration/capabilitiez'"
    );
}

/// A subsection name that is not UTF-8 is refused as such, at its length
/// byte, before its version is read (known names are compared in place).
#[test]
fn configuration_subsection_name_not_utf8_is_rejected() {
    let f = Fixture::new(Lay::FixedRam);
    let at = find(&f.bytes, b"configuration/capabilities");
    let bad = f.corrupt(|b| b[at as usize + 3] = 0xFF);
    assert_err!(
        load_err(&bad),
        LoadError::NameNotUtf8 { what: "subsection name", offset, len: 26, .. } if offset == at - 1,
        "subsection name"
    );
}
