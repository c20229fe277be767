//! Real QEMU 10.0.2 saves (tests/data/qemu, made by make-fixtures.sh with
//! facts in manifest.json gathered from QEMU itself, not from migsim):
//! `migsim inspect --json` must report the blocks, sizes, offsets and page
//! counts QEMU wrote, and `migsim extract --block pc.ram` must equal QEMU's
//! own pmemsave of the same guest.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::migsim_command;

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/qemu")
}

fn gunzip(name: &str, dir: &Path) -> PathBuf {
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(data().join(name)).unwrap())
        .read_to_end(&mut bytes)
        .unwrap();
    let out = dir.join(name.trim_end_matches(".gz"));
    std::fs::write(&out, bytes).unwrap();
    out
}

fn manifest() -> Value {
    serde_json::from_str(&std::fs::read_to_string(data().join("manifest.json")).unwrap()).unwrap()
}

fn migsim(args: &[&str]) -> std::process::Output {
    let out = migsim_command().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "migsim {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn check_inspect(name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = gunzip(name, dir.path());
    let m = &manifest()["files"][name];
    let st = &m["stream"];
    let out = migsim(&["inspect", "--json", path.to_str().unwrap()]);
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["file_len"], m["file_size"], "{name}: file size");
    assert_eq!(got["machine"], st["machine_type"], "{name}: machine");
    assert_eq!(
        got["capabilities"], st["config_capabilities"],
        "{name}: capabilities"
    );
    assert_eq!(got["eof_offset"], st["eof_offset"], "{name}: EOF offset");
    assert_eq!(
        got["vmdesc_offset"], st["vmdesc_offset"],
        "{name}: vmdesc offset"
    );
    let mapped = !st["config_capabilities"].as_array().unwrap().is_empty();
    assert_eq!(
        got["layout"],
        if mapped { "fixed-ram" } else { "sequential" }
    );
    let blocks = got["blocks"].as_array().unwrap();
    let want = st["blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), want.len(), "{name}: block count");
    // Block names and lengths also agree with QEMU's own `info ramblock`.
    let info: Vec<_> = m["info_ramblock"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["name"].clone(), b["used_length"].clone()))
        .collect();
    for (b, w) in blocks.iter().zip(want) {
        assert_eq!(b["name"], w["name"]);
        assert_eq!(b["used_length"], w["used_length"], "{}", w["name"]);
        assert!(
            info.contains(&(b["name"].clone(), b["used_length"].clone())),
            "{} not in info ramblock",
            b["name"]
        );
        assert_eq!(b["record_offset"], w["record_offset"], "{}", w["name"]);
        if mapped {
            let f = &b["fixed_ram"];
            assert_eq!(b["pages_present"], w["bitmap_set_bits"], "{}", w["name"]);
            assert_eq!(f["header_offset"], w["header_offset"]);
            assert_eq!(f["version"], w["header_version"]);
            assert_eq!(f["page_size"], w["header_page_size"]);
            assert_eq!(f["bitmap_offset"], w["bitmap_offset"]);
            assert_eq!(f["bitmap_len"], w["bitmap_size"]);
            assert_eq!(f["pages_offset"], w["pages_offset"]);
        } else {
            assert_eq!(b["pages_present"], w["page_records"], "{}", w["name"]);
            assert_eq!(b["zero_records"], w["zero_records"], "{}", w["name"]);
        }
    }
    // Sections: RAM START/PART/END at QEMU's offsets, one SWITCHOVER_START,
    // and every device section at the offset QEMU's vmdesc walk found.
    let secs = got["sections"].as_array().unwrap();
    for r in st["ram_sections"].as_array().unwrap() {
        assert!(
            secs.iter().any(|s| s["kind"] == r["type"]
                && s["offset"] == r["offset"]
                && s["idstr"] == "ram"),
            "{name}: RAM {} section at {} not reported",
            r["type"],
            r["offset"]
        );
    }
    let full: Vec<_> = secs.iter().filter(|s| s["kind"] == "FULL").collect();
    let want_full = st["full_sections"].as_array().unwrap();
    assert_eq!(full.len(), want_full.len(), "{name}: device sections");
    for (s, w) in full.iter().zip(want_full) {
        assert_eq!(s["offset"], w["offset"]);
        assert_eq!(s["idstr"], w["idstr"]);
        assert_eq!(s["instance_id"], w["instance_id"]);
        assert_eq!(s["version_id"], w["version_id"]);
        assert_eq!(
            s["offset"].as_u64().unwrap() + s["len"].as_u64().unwrap(),
            w["end"].as_u64().unwrap()
        );
    }
    let cmds: Vec<_> = secs.iter().filter(|s| s["kind"] == "COMMAND").collect();
    assert_eq!(cmds.len(), st["commands"].as_array().unwrap().len());
}

fn check_extract(name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = gunzip(name, dir.path());
    let m = &manifest()["files"][name];
    let pmem = std::fs::read(gunzip(m["pmemsave_file"].as_str().unwrap(), dir.path())).unwrap();
    let out = dir.path().join("pc.ram.bin");
    migsim(&[
        "extract",
        path.to_str().unwrap(),
        "--block",
        "pc.ram",
        "-o",
        out.to_str().unwrap(),
    ]);
    let ram = std::fs::read(&out).unwrap();
    assert_eq!(ram.len() as u64, m["ram_mib"].as_u64().unwrap() << 20);
    // pmemsave sees pc.ram except where ROM shadows it (0xC0000..0x100000,
    // from QEMU's `info mtree`); there pc.ram is zero on a guest that never ran.
    for r in m["pmemsave_equals_pc_ram_ranges"].as_array().unwrap() {
        let (a, b) = (
            r[0].as_u64().unwrap() as usize,
            r[1].as_u64().unwrap() as usize,
        );
        assert!(
            ram[a..b] == pmem[a..b],
            "{name}: pc.ram differs from pmemsave in {a:#x}..{b:#x}"
        );
    }
    assert!(ram[0xC0000..0x100000].iter().all(|&b| b == 0));
    let nonzero = ram
        .chunks(4096)
        .filter(|p| p.iter().any(|&b| b != 0))
        .count() as u64;
    assert_eq!(
        nonzero,
        m["pmemsave_nonzero_pages_in_pc_ram_ranges"]
            .as_u64()
            .unwrap()
    );
}

#[test]
fn inspect_real_qemu_sequential_save() {
    check_inspect("seq.mig.gz");
}

#[test]
fn inspect_real_qemu_mapped_ram_save() {
    check_inspect("mapped.mig.gz");
}

#[test]
fn inspect_real_qemu_mapped_ram_multifd_save() {
    check_inspect("mapped-multifd.mig.gz");
}

#[test]
fn inspect_real_qemu_q35_mapped_ram_save() {
    check_inspect("q35-mapped.mig.gz");
}

#[test]
fn extract_pc_ram_from_sequential_equals_pmemsave() {
    check_extract("seq.mig.gz");
}

#[test]
fn extract_pc_ram_from_mapped_ram_equals_pmemsave() {
    check_extract("mapped.mig.gz");
}

#[test]
fn extract_pc_ram_from_mapped_ram_multifd_equals_pmemsave() {
    check_extract("mapped-multifd.mig.gz");
}

#[test]
fn extract_pc_ram_from_q35_mapped_ram_equals_pmemsave() {
    check_extract("q35-mapped.mig.gz");
}

#[test]
fn extract_unknown_block_names_the_blocks_present() {
    let dir = tempfile::tempdir().unwrap();
    let path = gunzip("mapped.mig.gz", dir.path());
    let out = migsim_command()
        .args(["extract", path.to_str().unwrap(), "--block", "nope", "-o"])
        .arg(dir.path().join("x"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no RAMBlock named \"nope\"") && err.contains("pc.ram, /rom@etc/acpi/tables"),
        "{err}"
    );
}

// ---- saves without a vmdesc trailer (-machine suppress-vmdesc=on; issue 14, point 5) ----

/// `inspect --json` of a save without vmdesc: every RAM block and RAM
/// section as QEMU wrote them (the RAM part is the same bytes as the
/// vmdesc save's, see the manifest), then a stop at the first device
/// section's header with a warning saying why; exit 0.
fn check_inspect_without_vmdesc(name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = gunzip(name, dir.path());
    let m = &manifest()["files"][name];
    assert_eq!(m["vmdesc_suppressed"], true);
    assert_eq!(
        m["compared_with_vmdesc_save"]["sha256_before_first_full_section_equal"],
        true
    );
    let st = &m["stream"];
    let out = migsim(&["inspect", "--json", path.to_str().unwrap()]);
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["file_len"], m["file_size"], "{name}: file size");
    assert_eq!(got["machine"], st["machine_type"]);
    assert_eq!(got["vmdesc_offset"], Value::Null);
    assert_eq!(got["eof_offset"], st["eof_offset"], "{name}: EOF offset");
    let blocks = got["blocks"].as_array().unwrap();
    let want = st["blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), want.len(), "{name}: block count");
    let mapped = !st["config_capabilities"].as_array().unwrap().is_empty();
    for (b, w) in blocks.iter().zip(want) {
        assert_eq!(b["name"], w["name"]);
        assert_eq!(b["used_length"], w["used_length"], "{}", w["name"]);
        assert_eq!(b["record_offset"], w["record_offset"], "{}", w["name"]);
        if mapped {
            assert_eq!(b["pages_present"], w["bitmap_set_bits"], "{}", w["name"]);
            assert_eq!(b["fixed_ram"]["pages_offset"], w["pages_offset"]);
            assert_eq!(b["fixed_ram"]["bitmap_offset"], w["bitmap_offset"]);
        } else {
            assert_eq!(b["pages_present"], w["page_records"], "{}", w["name"]);
            assert_eq!(b["zero_records"], w["zero_records"], "{}", w["name"]);
        }
    }
    let secs = got["sections"].as_array().unwrap();
    for r in st["ram_sections"].as_array().unwrap() {
        assert!(
            secs.iter()
                .any(|s| s["kind"] == r["type"] && s["offset"] == r["offset"]),
            "{name}: RAM {} section at {} not reported",
            r["type"],
            r["offset"]
        );
    }
    assert!(
        secs.iter().all(|s| s["kind"] != "FULL"),
        "{name}: no device section can be walked"
    );
    // Where it stopped: the first FULL section's header, as QEMU wrote it.
    let u = &got["unwalked_devices"];
    let f = &st["first_full_section"];
    assert_eq!(u["offset"], f["offset"], "{name}");
    assert_eq!(u["id"], f["section_id"]);
    assert_eq!(u["idstr"], f["idstr"]);
    assert_eq!(u["instance_id"], f["instance_id"]);
    assert_eq!(u["version_id"], f["version_id"]);
    assert_eq!(u["payload_offset"], f["payload_offset"]);
    assert_eq!(u["last_footer_id"], st["last_footer_section_id"]);
    let warning = format!(
        "no vmdesc trailer: device sections after offset {:#x} cannot be walked (QEMU -machine suppress-vmdesc=on)",
        f["payload_offset"].as_u64().unwrap()
    );
    assert!(
        got["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().starts_with(&warning)),
        "{name}: {}",
        got["warnings"]
    );
    // The text listing says the same, and exits 0 too.
    let text = String::from_utf8(migsim(&["inspect", path.to_str().unwrap()]).stdout).unwrap();
    assert!(text.contains(&warning), "{text}");
    assert!(text.contains("pc.bios"), "{text}");
}

#[test]
fn inspect_real_qemu_sequential_save_without_vmdesc() {
    check_inspect_without_vmdesc("seq-novmdesc.mig.gz");
}

#[test]
fn inspect_real_qemu_mapped_ram_save_without_vmdesc() {
    check_inspect_without_vmdesc("mapped-novmdesc.mig.gz");
}

#[test]
fn extract_pc_ram_from_sequential_without_vmdesc_equals_pmemsave() {
    check_extract("seq-novmdesc.mig.gz");
}

#[test]
fn extract_pc_ram_from_mapped_ram_without_vmdesc_equals_pmemsave() {
    check_extract("mapped-novmdesc.mig.gz");
}

/// A full load (a destination) refuses a save without vmdesc with its own
/// error, after the RAM; the same file cut inside its device part is
/// refused by inspect too (it does not end like QEMU ends a stream).
#[test]
fn load_of_a_save_without_vmdesc_is_refused_and_a_cut_one_too() {
    use migsim_format::LoadError;
    use migsim_format::reader::{LoadOptions, NullSink, inspect, load};
    let dir = tempfile::tempdir().unwrap();
    for name in ["seq-novmdesc.mig.gz", "mapped-novmdesc.mig.gz"] {
        let bytes = std::fs::read(gunzip(name, dir.path())).unwrap();
        let first = manifest()["files"][name]["stream"]["first_full_section"]["offset"]
            .as_u64()
            .unwrap();
        match load(&bytes, &LoadOptions::default(), &mut NullSink) {
            Err(e) => match &e {
                LoadError::NoVmdesc { idstr, offset, .. } => {
                    assert_eq!((idstr.as_str(), *offset), ("timer", first), "{name}");
                    assert!(e.to_string().contains("a full load must walk"), "{e}");
                }
                _ => panic!("{name}: load gave {e:?}"),
            },
            other => panic!("{name}: load gave {other:?}"),
        }
        for cut in [first as usize + 30, bytes.len() - 1, bytes.len() - 3] {
            match inspect(&bytes[..cut].to_vec()) {
                Err(e @ LoadError::NoVmdesc { .. }) => {
                    assert!(e.to_string().contains("looks cut short"), "{e}")
                }
                other => panic!("{name} cut at {cut:#x}: {other:?}"),
            }
        }
    }
}

/// The vmdesc JSON trailer of a file: the object after `00 06 be32 len`
/// that ends the file.
fn vmdesc_of(bytes: &[u8]) -> Value {
    (1..bytes.len().saturating_sub(5))
        .rev()
        .find_map(|i| {
            let len = u32::from_be_bytes(bytes[i + 1..i + 5].try_into().unwrap()) as usize;
            (bytes[i - 1] == 0 && bytes[i] == 6 && i + 5 + len == bytes.len())
                .then(|| serde_json::from_slice(&bytes[i + 5..]).ok())
                .flatten()
        })
        .expect("a vmdesc trailer ends the file")
}

/// QEMU's scripts/analyze-migration.py learns a stream's capabilities
/// from the trailer's `configuration` entry; migsim's trailer had none, so
/// the script stopped on migsim's mapped-ram files. For the same guest
/// shape (pc, machine pc-i440fx-10.0, mapped-ram profile) migsim's trailer
/// now has QEMU's keys in QEMU's order and an identical `configuration`
/// and `page_size`, for both layouts.
#[test]
fn migsim_vmdesc_trailer_matches_qemus_for_the_same_guest_shape() {
    use migsim_harness::run::{RunOptions, run};
    let s = crate::support::scenario("qemu/pc-16m-redirty");
    let r = run(&s, &RunOptions::default());
    let dir = tempfile::tempdir().unwrap();
    for (qemu, layout) in [
        ("seq.mig.gz", migsim_format::Layout::Sequential),
        ("mapped.mig.gz", migsim_format::Layout::FixedRam),
    ] {
        let theirs = vmdesc_of(&std::fs::read(gunzip(qemu, dir.path())).unwrap());
        let ours = vmdesc_of(
            &r.files
                .iter()
                .find(|f| f.writer == layout)
                .unwrap()
                .file
                .to_vec(),
        );
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&ours), keys(&theirs), "{layout}: top-level keys");
        assert_eq!(ours["configuration"], theirs["configuration"], "{layout}");
        assert_eq!(ours["page_size"], theirs["page_size"], "{layout}");
    }
}
