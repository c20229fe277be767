//! Streams at an offset: QEMU's `file:PATH,offset=N` both ways, and the
//! same stream behind a libvirt save image header, found by `migsim
//! inspect` and read by `migsim extract`.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use migsim_format::io::DiskFile;

use crate::guest_memory::{PAGE, caps_of, pattern};
use crate::qemu_process::{Qemu, qemu};
use crate::support::{extract, migsim_command};

/// `migsim inspect --json FILE`.
fn inspect_json(file: &Path) -> Value {
    let o = migsim_command()
        .args(["inspect", "--json"])
        .arg(file)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Both ways at `offset=0x10000`: QEMU saves a stopped guest with
/// mapped-ram at the offset; `migsim inspect` finds the stream there,
/// alone and behind a libvirt save image header written into the space
/// before it, and `migsim extract` gives the guest's memory; and a file
/// migsim writes at the offset (`MigrationWriter::start_at`) loads into
/// QEMU with the same `offset=`.
#[test]
fn qemu_mapped_ram_stream_at_an_offset_both_ways() {
    let Some(info) = qemu() else { return };
    const AT: u64 = 0x10000;
    let dir = tempfile::tempdir().unwrap();
    let (addr, pages) = (0x10_0000u64, 48u64);
    let pat = dir.path().join("pattern.bin");
    std::fs::write(&pat, pattern(addr, pages)).unwrap();
    let loader = format!("loader,file={},addr={addr:#x}", pat.display());
    let mut src = Qemu::start(
        info,
        dir.path(),
        "src",
        "pc",
        16,
        &info.accel,
        &["-S", "-device", &loader],
    );
    src.set_caps(&["mapped-ram"]);
    let mig = dir.path().join("offset.mig");
    src.cmd(
        "migrate",
        json!({ "uri": format!("file:{},offset={AT}", mig.display()) }),
    );
    let st = src.wait_migration(Duration::from_secs(60), |_, _| {});
    assert_eq!(st["status"], "completed", "{st}\n{}", src.stderr());
    let want = src.pmemsave(addr, pages * PAGE);
    let check = |file: &Path, container: &str| {
        let v = inspect_json(file);
        assert_eq!(v["stream_offset"], AT, "{container}: {v}");
        assert_eq!(v["layout"], "fixed-ram");
        assert_eq!(v["container"]["kind"], container, "{v}");
        let out = dir.path().join(format!("{container}.ram"));
        extract(file, "pc.ram", &out);
        let ram = std::fs::read(&out).unwrap();
        assert!(
            ram[addr as usize..(addr + pages * PAGE) as usize] == want[..],
            "{container}: extract differs from QEMU's memory"
        );
    };
    check(&mig, "offset");
    // A libvirt save image header and domain XML in the space before it.
    let mut bytes = std::fs::read(&mig).unwrap();
    let mut header = b"LibvirtQemudSave".to_vec();
    for word in [2u32, (AT - 92) as u32, 0, 0, 0] {
        header.extend_from_slice(&word.to_le_bytes());
    }
    header.resize(92, 0);
    header.extend_from_slice(b"<domain type='kvm'><name>migsim</name></domain>");
    bytes[..header.len()].copy_from_slice(&header);
    let image = dir.path().join("image.save");
    std::fs::write(&image, &bytes).unwrap();
    check(&image, "libvirt-save");

    // migsim -> QEMU: a mapped-ram file written at the offset, for the
    // destination's own block list, with the pattern in pc.ram.
    let (mut dst, blocks, _) = {
        let mut q = Qemu::start(
            info,
            dir.path(),
            "dst",
            "pc",
            16,
            &info.accel,
            &["-S", "-incoming", "defer"],
        );
        let blocks = q.ramblocks();
        (q, blocks, ())
    };
    let caps = caps_of(&["mapped-ram"]);
    let pc = blocks.iter().position(|b| b.name == "pc.ram").unwrap();
    let file = DiskFile::create(&dir.path().join("ours.mig")).unwrap();
    let mut w = migsim_format::MigrationWriter::start_at(
        file,
        AT,
        info.machine("pc"),
        &caps,
        blocks.clone(),
    )
    .unwrap();
    w.begin_completion().unwrap();
    let src_pat = pattern(addr, pages);
    for k in 0..pages {
        let p = &src_pat[(k * PAGE) as usize..((k + 1) * PAGE) as usize];
        w.save_page(pc, addr / PAGE + k, p).unwrap();
    }
    w.finish(&[]).unwrap();
    dst.set_caps(&["mapped-ram"]);
    let ours = dir.path().join("ours.mig");
    let mut args = json!({ "uri": format!("file:{},offset={AT}", ours.display()) });
    if info.version >= (9, 1, 0) {
        args["exit-on-error"] = json!(false);
    }
    dst.cmd("migrate-incoming", args);
    let st = dst.wait_migration(Duration::from_secs(60), |_, _| {});
    assert_eq!(
        st["status"],
        "completed",
        "QEMU refused migsim's offset file: {st}\n{}",
        dst.stderr()
    );
    assert!(
        dst.pmemsave(addr, pages * PAGE) == src_pat,
        "QEMU's memory after loading migsim's offset file differs"
    );
    println!(
        "offset={AT:#x}: QEMU's mapped-ram save inspects and extracts alone and in a libvirt image; \
         QEMU loads migsim's file written at the offset ({} blocks)",
        blocks.len()
    );
}
