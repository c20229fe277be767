//! Device sections and the vmdesc trailer, hostile trailers included.

use migsim_format::LoadError;
use migsim_format::reader::{self};

use crate::alloc::*;
use crate::fixture::*;

// ---------------------------------------------------------------------------
// Device sections and the vmdesc trailer.

#[test]
fn device_section_not_described_by_vmdesc_is_rejected() {
    for lay in BOTH {
        let f = Fixture::new(lay);
        let full = f.section("FULL", 0);
        // type, id, len byte, "timer"
        let name_at = full + 1 + 4 + 1;
        assert_eq!(&f.bytes[name_at as usize..name_at as usize + 5], b"timer");
        let bad = f.corrupt(|b| put(b, name_at, b"timex"));
        assert_err!(
            load_err(&bad),
            LoadError::DeviceSection { ref idstr, offset, ref why }
                if idstr == "timex" && offset == full && why.contains("does not describe"),
            "cannot read device section 'timex'"
        );
        // Same name, another instance.
        let inst_at = name_at + 5;
        let bad = f.corrupt(|b| put_be32(b, inst_at, 1));
        assert_err!(
            load_err(&bad),
            LoadError::DeviceSection { ref idstr, .. } if idstr == "timer",
            "does not describe instance 1"
        );
    }
}

#[test]
fn device_sections_without_vmdesc_are_rejected() {
    for lay in BOTH {
        let f = Fixture::new(lay);
        let eof = f.info.eof_offset;
        assert_eq!(f.bytes[eof as usize], 0x00);
        assert_eq!(f.bytes[eof as usize + 1], 0x06);
        let full = f.section("FULL", 0);
        // No trailer at all: a file as QEMU writes it with -machine
        // suppress-vmdesc=on. A load refuses it; inspect reads up to the
        // first device section's header and says so.
        let mut bad = f.bytes.clone();
        bad.truncate(eof as usize + 1);
        let e = reader::load(&bad, &opts(lay.caps()), &mut reader::NullSink).unwrap_err();
        assert_err!(
            e,
            LoadError::NoVmdesc { ref idstr, offset, .. } if idstr == "timer" && offset == full,
            "a full load must walk the device state"
        );
        let info = reader::inspect(&bad).expect("inspect reads what it can");
        let u = info
            .unwalked_devices
            .as_ref()
            .expect("stopped at the devices");
        assert_eq!((u.offset, u.idstr.as_str()), (full, "timer"));
        assert!(info.sections.iter().all(|s| s.offset < full));
        assert!(
            info.warnings[0].starts_with("no vmdesc trailer"),
            "{:?}",
            info.warnings
        );
        // Something else than a trailer after EOF: the file does not end
        // like a QEMU stream.
        let bad = f.corrupt(|b| b[eof as usize + 1] = 0x07);
        assert_err!(
            load_err(&bad),
            LoadError::NoVmdesc { ref idstr, .. } if idstr == "timer",
            "looks cut short"
        );
        // A trailer whose JSON does not parse.
        let json = eof as usize + 6;
        assert_eq!(f.bytes[json], b'{');
        let bad = f.corrupt(|b| {
            let n = b.len();
            b[n - 1] = b'!';
        });
        assert_err!(
            load_err(&bad),
            LoadError::NoVmdesc { ref idstr, .. } if idstr == "timer",
            "no vmdesc trailer"
        );
    }
}

#[test]
fn missing_vmdesc_without_devices_is_only_a_warning() {
    for lay in BOTH {
        let f = Fixture::with_devices(lay, &[]);
        let eof = f.info.eof_offset as usize;
        let mut cut = f.bytes.clone();
        cut.truncate(eof + 1);
        let info = load_with(&cut, &opts(lay.caps())).expect("no trailer is legal");
        assert_eq!(info.vmdesc_offset, None);
        assert!(
            info.warnings
                .iter()
                .any(|w| w.contains("Expected vmdescription section, but got 0")),
            "{:?}",
            info.warnings
        );
        let other = f.corrupt(|b| b[eof + 1] = 0x07);
        let info = load_with(&other, &opts(lay.caps())).expect("a wrong trailer byte is legal");
        assert!(
            info.warnings
                .iter()
                .any(|w| w.contains("Expected vmdescription section, but got 7")),
            "{:?}",
            info.warnings
        );
        // Garbage JSON is a warning too.
        let garbage = f.corrupt(|b| b[eof + 6] = b'#');
        let info = load_with(&garbage, &opts(lay.caps())).expect("bad JSON is legal");
        assert!(
            info.warnings.iter().any(|w| w.contains("not valid JSON")),
            "{:?}",
            info.warnings
        );
        // Bytes after the trailer are a warning.
        let mut longer = f.bytes.clone();
        longer.extend_from_slice(b"xyz");
        let info = load_with(&longer, &opts(lay.caps())).expect("trailing bytes are legal");
        assert!(
            info.warnings
                .iter()
                .any(|w| w.contains("3 bytes after the vmdesc trailer")),
            "{:?}",
            info.warnings
        );
    }
}

#[test]
fn truncated_vmdesc_without_devices_is_only_a_warning() {
    for lay in BOTH {
        let f = Fixture::with_devices(lay, &[]);
        let eof = f.info.eof_offset as usize;
        for cut in eof + 1..f.bytes.len() {
            let mut t = f.bytes.clone();
            t.truncate(cut);
            let r = load_with(&t, &opts(lay.caps()));
            assert!(r.is_ok(), "{lay:?} cut at {cut:#x}: {:?}", r.unwrap_err());
            assert!(!r.unwrap().warnings.is_empty());
        }
    }
}

// ---------------------------------------------------------------------------
// Hostile vmdesc trailers (the device walk is driven by the file's JSON).

/// The file with its vmdesc trailer replaced by `json`.
fn with_vmdesc(f: &Fixture, json: &str) -> Vec<u8> {
    let eof = f.info.eof_offset as usize;
    let mut b = f.bytes[..=eof].to_vec();
    b.push(0x06);
    b.extend_from_slice(&(json.len() as u32).to_be_bytes());
    b.extend_from_slice(json.as_bytes());
    b
}

/// A vmdesc describing "timer" with `timer_fields` and "cpu" as its
/// 16-byte buffer.
fn vmdesc_json(timer_fields: &str) -> String {
    format!(
        r#"{{"page_size":4096,"devices":[{{"name":"timer","instance_id":0,"vmsd_name":"timer","version":2,"fields":[{timer_fields}]}},{{"name":"cpu","instance_id":0,"vmsd_name":"cpu","version":12,"fields":[{{"name":"state","type":"buffer","size":16}}]}}]}}"#
    )
}

#[test]
fn vmdesc_with_wrong_field_sizes_is_rejected() {
    for lay in BOTH {
        let f = Fixture::new(lay);
        // The rewritten trailer with the true description loads.
        let ok = with_vmdesc(
            &f,
            &vmdesc_json(r#"{"name":"state","type":"buffer","size":8}"#),
        );
        load_with(&ok, &opts(lay.caps())).expect("an equivalent trailer loads");
        // The timer said to be 9 bytes: its footer is misread.
        let bad = with_vmdesc(
            &f,
            &vmdesc_json(r#"{"name":"state","type":"buffer","size":9}"#),
        );
        assert_err!(
            load_err(&bad),
            LoadError::MissingFooter { ref idstr, .. } if idstr == "timer",
            "Missing section footer for timer"
        );
        // A field without a size.
        let bad = with_vmdesc(&f, &vmdesc_json(r#"{"name":"state","type":"buffer"}"#));
        assert_err!(
            load_err(&bad),
            LoadError::DeviceSection { ref idstr, ref why, .. }
                if idstr == "timer" && why.contains("has no size"),
            "field state has no size"
        );
        // size * array_len overflows.
        let bad = with_vmdesc(
            &f,
            &vmdesc_json(
                r#"{"name":"state","type":"buffer","size":4294967296,"array_len":4294967296}"#,
            ),
        );
        assert_err!(
            load_err(&bad),
            LoadError::DeviceSection { ref why, .. } if why.contains("overflows"),
            "size overflows"
        );
        // A huge field runs past the end of the file.
        let bad = with_vmdesc(
            &f,
            &vmdesc_json(r#"{"name":"state","type":"buffer","size":1099511627776}"#),
        );
        assert_err!(
            load_err(&bad),
            LoadError::DeviceSection { ref why, .. } if why.contains("truncated"),
            "cannot read device section 'timer'"
        );
        // A described subsection that is not in the stream.
        let bad = with_vmdesc(
            &f,
            &vmdesc_json(
                r#"{"name":"state","type":"buffer","size":8}],"subsections":[{"vmsd_name":"timer/sub","fields":[]}"#,
            ),
        );
        assert_err!(
            load_err(&bad),
            LoadError::DeviceSection { ref why, .. } if why.contains("subsection timer/sub not found"),
            "subsection timer/sub not found"
        );
    }
}

#[test]
fn vmdesc_huge_struct_array_hits_the_step_budget() {
    let f = Fixture::new(Lay::Sequential);
    let bad = with_vmdesc(
        &f,
        &vmdesc_json(
            r#"{"name":"s","type":"struct","array_len":1000000000000,"struct":{"fields":[]}}"#,
        ),
    );
    let e = within(60, "walking a huge struct array", move || load_err(&bad));
    assert_err!(
        e,
        LoadError::DeviceSection { ref why, .. } if why.contains("step budget"),
        "vmdesc walk exceeds its step budget"
    );
}

#[test]
fn vmdesc_struct_array_with_many_empty_fields_finishes_quickly() {
    let f = Fixture::new(Lay::Sequential);
    let inner: Vec<String> = (0..1000)
        .map(|i| format!(r#"{{"name":"z{i}","type":"uint8","size":0}}"#))
        .collect();
    let fields = format!(
        r#"{{"name":"s","type":"struct","array_len":4000000,"struct":{{"fields":[{}]}}}},{{"name":"state","type":"buffer","size":8}}"#,
        inner.join(",")
    );
    let bad = with_vmdesc(&f, &vmdesc_json(&fields));
    assert!(bad.len() < 64 * 1024);
    // Accepting (all fields are empty) or refusing (budget) are both
    // fine; taking minutes is not.
    let _ = within(30, "walking 4e6 x 1000 empty vmdesc fields", move || {
        reader::inspect(&bad).map(|_| ()).map_err(|e| e.to_string())
    });
}
