//! QEMU 10.0.2's load-side behaviours and divergences, each asserted on
//! QEMU 10.0.x (on another version the outcome is printed):
//!
//! * clear-bit pages are not zeroed into non-fresh RAM, and a mapped-ram
//!   load does not check `used_length`; migsim's reader does both.
//! * x-ignore-shared under mapped-ram (fixed upstream for 11.0): QEMU
//!   10.0.x cannot load its own mapped-ram + x-ignore-shared save, and
//!   fails to save a shared pc.ram with mapped-ram; the sequential save
//!   skips the shared pc.ram and loads with the same backend. The
//!   divergences are recorded in docs/design/qemu-interop.md.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use migsim_format::Layout;
use migsim_format::LoadError;
use migsim_format::io::DiskFile;
use migsim_format::reader::inspect;
use migsim_harness::sim::dest::GARBAGE;

use crate::guest_memory::{
    MIB, PAGE, block, compare_visible, describe_bytes, fixed_ram_block, migsim_restore, simulate,
};
use crate::qemu_process::{Qemu, QemuInfo, qemu, qemu_load};

// ---------------------------------------------------------------------------
// QEMU 10.0.2 load-side behaviours
// ---------------------------------------------------------------------------

/// QEMU 10.0.2's mapped-ram loader writes only pages whose bit is set and
/// relies on fresh, zeroed RAM: loaded over pc.ram that already holds
/// bytes (a `memory-backend-file` over a file of 0xA5, `share=off`), the
/// clear-bit pages keep those bytes where the guest's memory was zero. The
/// sequential file's ZERO records do zero them, and migsim's reader zeroes
/// clear-bit pages too.
#[test]
fn qemu_mapped_ram_load_leaves_clear_bit_pages_of_non_fresh_ram() {
    let Some(info) = qemu() else { return };
    let t0 = Instant::now();
    let sim = simulate(info, "pc-16m-zero-after-data.toml");
    let s = &sim.scenario;
    let ram = sim.ram();
    let dir = tempfile::tempdir().unwrap();
    let files: BTreeMap<_, _> = sim.save(dir.path()).into_iter().collect();
    let garbage = dir.path().join("garbage.ram");
    std::fs::write(&garbage, vec![GARBAGE; ram as usize]).unwrap();
    let backend = format!(
        "memory-backend-file,id=pc.ram,size={}M,mem-path={},share=off",
        ram / MIB,
        garbage.display()
    );
    let extra = [
        "-object",
        backend.as_str(),
        "-machine",
        "memory-backend=pc.ram",
    ];
    let describe = sim.describe();

    // mapped-ram over garbage.
    let fixed = &files[&Layout::FixedRam];
    let (mut q, _, st) = qemu_load(
        info,
        dir.path(),
        "mapped-over-garbage",
        &s.guest.machine,
        ram / MIB,
        fixed,
        &["mapped-ram"],
        &extra,
    );
    assert_eq!(st["status"], "completed", "{st}\n{}", q.stderr());
    let maps = q.flatview();
    let got = q.pmemsave(0, ram);
    let fr = fixed_ram_block(fixed, "pc.ram");
    let want = block(&sim.memory, "pc.ram");
    let (mut clear, mut stale, mut kept, mut wrong) = (0, 0, 0, Vec::new());
    for m in maps
        .iter()
        .filter(|m| m.region == "pc.ram" && m.offset == m.start && m.start < ram)
    {
        for a in (m.start..m.end.min(ram)).step_by(PAGE as usize) {
            let (p, r) = ((a / PAGE) as usize, a as usize..(a + PAGE) as usize);
            if fr.bits[p] {
                if got[r.clone()] != want[r.clone()] {
                    wrong.push(format!("set-bit page {p:#x}: {}", describe(&got[r])));
                }
                continue;
            }
            clear += 1;
            stale += usize::from(fr.slots_nonzero[p]);
            assert!(
                want[r.clone()].iter().all(|&b| b == 0),
                "clear bit on a non-zero page"
            );
            if got[r.clone()].iter().all(|&b| b == GARBAGE) {
                kept += 1;
            } else if got[r.clone()].iter().any(|&b| b != 0) {
                wrong.push(format!("clear-bit page {p:#x}: {}", describe(&got[r])));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:?}");
    assert!(
        clear > 0 && stale > 0,
        "the scenario must zero pages after sending them"
    );
    if info.is_10_0() {
        assert_eq!(
            kept,
            clear,
            "QEMU 10.0.2 was recorded leaving every clear-bit page as it was; this QEMU zeroed {} of {clear}",
            clear - kept
        );
    }

    // The sequential file over garbage: every page named, zeros written.
    let (mut q, _, st) = qemu_load(
        info,
        dir.path(),
        "sequential-over-garbage",
        &s.guest.machine,
        ram / MIB,
        &files[&Layout::Sequential],
        &[],
        &extra,
    );
    assert_eq!(st["status"], "completed", "{st}\n{}", q.stderr());
    let maps = q.flatview();
    compare_visible(
        &mut q,
        &maps,
        &sim.memory,
        ram,
        "sequential file into non-fresh QEMU RAM",
        &describe,
    );

    // migsim's reader into a garbage-filled destination: exact.
    let (_, restored) =
        migsim_restore(fixed, &s.blocks(), &s.guest.machine, &["mapped-ram"], true).unwrap();
    assert!(
        restored == sim.memory,
        "migsim restore over garbage differs"
    );
    println!(
        "mapped-ram file over {GARBAGE:#04x}-filled pc.ram: {clear} visible clear-bit pages \
         ({stale} with stale data in the file), QEMU {} left {kept} of them as garbage where \
         the guest had zeros; the sequential file loaded over garbage and migsim's reader \
         (dirty destination) both give the switchover memory; {:.1} s",
        info.short_version(),
        t0.elapsed().as_secs_f64()
    );
}

/// QEMU 10.0.2's mapped-ram loader does not compare a block's used_length
/// with the local block: migsim's mapped-ram file of a 16 MiB guest loads
/// ("completed") into a `-m 32` QEMU, while the sequential file fails with
/// QEMU's "Size mismatch". migsim's reader refuses both with SizeMismatch.
#[test]
fn qemu_mapped_ram_load_ignores_used_length_sequential_and_migsim_refuse() {
    let Some(info) = qemu() else { return };
    let t0 = Instant::now();
    let sim = simulate(info, "pc-16m-redirty.toml");
    let s = &sim.scenario;
    let small = sim.ram();
    let big = 2 * small;
    let dir = tempfile::tempdir().unwrap();
    let files: BTreeMap<_, _> = sim.save(dir.path()).into_iter().collect();
    let size_text = format!("Size mismatch: pc.ram: {small:#x} != {big:#x}");

    // mapped-ram: QEMU loads it.
    let (mut q, blocks32, st) = qemu_load(
        info,
        dir.path(),
        "mapped-into-32m",
        &s.guest.machine,
        big / MIB,
        &files[&Layout::FixedRam],
        &["mapped-ram"],
        &[],
    );
    let pc32 = blocks32.iter().find(|b| b.name == "pc.ram").unwrap();
    assert_eq!(pc32.used_length, big);
    let mapped_status = st["status"].as_str().unwrap_or_default().to_string();
    if info.is_10_0() {
        assert_eq!(
            mapped_status,
            "completed",
            "QEMU 10.0.2 was recorded loading a 16 MiB mapped-ram pc.ram into a 32 MiB one: {st}\n{}",
            q.stderr()
        );
    }
    if mapped_status == "completed" {
        // The first 16 MiB hold the file's pages; the rest stays zero.
        let maps = q.flatview();
        let got = q.pmemsave(0, big);
        let want = block(&sim.memory, "pc.ram");
        for m in maps
            .iter()
            .filter(|m| m.region == "pc.ram" && m.offset == m.start && m.start < small)
        {
            let r = m.start as usize..m.end.min(small) as usize;
            assert!(got[r.clone()] == want[r.clone()], "{:#x?} differs", r);
        }
        assert!(got[small as usize..].iter().all(|&b| b == 0));
    }

    // sequential: QEMU refuses it.
    let (q2, _, st2) = qemu_load(
        info,
        dir.path(),
        "sequential-into-32m",
        &s.guest.machine,
        big / MIB,
        &files[&Layout::Sequential],
        &[],
        &[],
    );
    assert_ne!(st2["status"], "completed", "{st2}");
    let log = q2.stderr();
    assert!(
        log.contains(&size_text),
        "expected {size_text:?} from QEMU; got {st2}\n{log}"
    );

    // migsim refuses both against QEMU's own -m 32 block list.
    for (writer, caps) in [
        (Layout::FixedRam, &["mapped-ram"][..]),
        (Layout::Sequential, &[][..]),
    ] {
        match migsim_restore(&files[&writer], &blocks32, &s.guest.machine, caps, false) {
            Err(e) => {
                let LoadError::SizeMismatch {
                    name,
                    stream,
                    local,
                } = &e
                else {
                    panic!("{writer}: expected SizeMismatch, got {e}");
                };
                assert_eq!((name.as_str(), *stream, *local), ("pc.ram", small, big));
                assert_eq!(e.to_string(), size_text);
            }
            Ok(_) => panic!("{writer}: migsim loaded a 16 MiB pc.ram into a 32 MiB one"),
        }
    }
    println!(
        "16 MiB pc.ram into `-m 32` QEMU {}: mapped-ram {mapped_status}, sequential {} \
         ({:?}; stderr: {:?}); migsim refuses both: {size_text:?}; {:.1} s",
        info.short_version(),
        st2["status"],
        st2["error-desc"].as_str().unwrap_or(""),
        log.lines()
            .find(|l| l.contains("Size mismatch"))
            .unwrap_or(""),
        t0.elapsed().as_secs_f64()
    );
}

// ---------------------------------------------------------------------------
// x-ignore-shared: QEMU 10.0's mapped-ram paths (fixed upstream for 11.0)
// ---------------------------------------------------------------------------

/// A paused `pc` guest of 16 MiB (`extra` on its command line) saved to
/// `NAME.mig` with `caps`: QEMU, the file and the final `query-migrate`.
fn qemu_save_paused(
    info: &QemuInfo,
    dir: &Path,
    name: &str,
    caps: &[&str],
    extra: &[&str],
) -> (Qemu, PathBuf, Value) {
    let mut args = vec!["-S"];
    args.extend_from_slice(extra);
    let mut q = Qemu::start(info, dir, name, info.machine("pc"), 16, &info.accel, &args);
    q.set_caps(caps);
    let mig = dir.join(format!("{name}.mig"));
    q.cmd(
        "migrate",
        json!({ "uri": format!("file:{}", mig.display()) }),
    );
    let st = q.wait_migration(Duration::from_secs(60), |_, _| {});
    (q, mig, st)
}

/// QEMU 10.0.x saves a mapped-ram + x-ignore-shared file (no block on
/// shared memory) whose layout is the one migsim writes and reads (every
/// block record: used_length, be64 mr_addr, then the mapped-ram header),
/// migsim restores it exactly, and QEMU 10.0.x cannot load it: its
/// `parse_ramblock` returns through the mapped-ram path before reading
/// mr_addr, so it takes mr_addr and the header's first 20 bytes as the
/// header. Fixed upstream by b043f6df27 (Nov 2025, QEMU 11.0 dev tree),
/// which reads mr_addr first. A QEMU divergence, recorded in docs/design/qemu-interop.md;
/// on another QEMU version the outcome is printed, not asserted.
#[test]
fn qemu_10_0_cannot_load_its_own_mapped_ram_x_ignore_shared_save() {
    let Some(info) = qemu() else { return };
    let dir = tempfile::tempdir().unwrap();
    let caps = ["x-ignore-shared", "mapped-ram"];
    let (mut src, mig, st) = qemu_save_paused(info, dir.path(), "src", &caps, &[]);
    assert_eq!(st["status"], "completed", "{st}\n{}", src.stderr());
    let blocks = src.ramblocks();
    let machine = info.machine("pc").to_string();

    let file = DiskFile::open(&mig).unwrap();
    let stream = inspect(&file).unwrap();
    assert_eq!(stream.capabilities, caps);
    let mut addrs = Vec::new();
    for b in &stream.blocks {
        let fr = b.fixed_ram.as_ref().unwrap();
        let header = b.record_offset + 1 + b.name.len() as u64 + 8 + 8;
        assert_eq!(
            fr.header_offset, header,
            "{}: header not after mr_addr",
            b.name
        );
        let plan = migsim_format::fixed_ram::BlockLayout::plan(header, b.used_length);
        assert_eq!(
            (fr.bitmap_offset, fr.pages_offset),
            (plan.header.bitmap_offset, plan.header.pages_offset),
            "{}: QEMU's offsets are not migsim's layout",
            b.name
        );
        assert!(!b.ignored, "{}: no block is on shared memory", b.name);
        addrs.push(format!("{} {:#x}", b.name, b.mr_addr.unwrap()));
    }
    let (_, restored) = migsim_restore(&mig, &blocks, &machine, &caps, true)
        .unwrap_or_else(|e| panic!("migsim cannot restore QEMU's {caps:?} save: {e}"));
    let maps = src.flatview();
    let pages = compare_visible(
        &mut src,
        &maps,
        &restored,
        16 * MIB,
        "QEMU mapped-ram + x-ignore-shared save restored by migsim",
        &describe_bytes,
    );

    let (dst, _, st) = qemu_load(info, dir.path(), "dst", &machine, 16, &mig, &caps, &[]);
    let err = st["error-desc"].as_str().unwrap_or_default().to_string();
    println!(
        "QEMU {} mapped-ram + x-ignore-shared save ({} blocks, mr_addr: {}): migsim restores it \
         ({pages:?}); QEMU loading it: {}, {err:?}; stderr: {}",
        info.short_version(),
        stream.blocks.len(),
        addrs.join(", "),
        st["status"],
        dst.stderr().trim()
    );
    if info.is_10_0() {
        assert_ne!(
            st["status"], "completed",
            "QEMU 10.0.x loads mapped-ram + x-ignore-shared now: the divergence is gone"
        );
        // mr_addr (0) and the real header's first 20 bytes read as the
        // header: pages_offset is the real bitmap_offset, not page-aligned.
        assert!(
            dst.stderr()
                .contains("Error reading ramblock pc.ram pages, region has bad alignment"),
            "{st}\n{}",
            dst.stderr()
        );
    }
}

/// pc.ram on shared memory (`memory-backend-file,share=on`) with
/// x-ignore-shared. Sequential: QEMU 10 sends none of pc.ram's pages (its
/// record, with mr_addr, only; migsim's `shared = true` blocks are written
/// the same way) and a destination mapping the same file loads it and has
/// the source's memory. Mapped-ram: QEMU 10.0.x fails the save, trying to
/// write the ignored block's bitmap (fixed upstream by 0b510b51b6, Nov
/// 2025, which writes both offsets 0 and no page area: the encoding
/// migsim writes and reads).
#[test]
fn qemu_10_x_ignore_shared_skips_a_shared_pc_ram_and_10_0_fails_it_under_mapped_ram() {
    let Some(info) = qemu() else { return };
    let dir = tempfile::tempdir().unwrap();
    let ram = dir.path().join("pc.ram.shm");
    let backend = format!(
        "memory-backend-file,id=pc.ram,size=16M,mem-path={},share=on",
        ram.display()
    );
    let extra = [
        "-object",
        backend.as_str(),
        "-machine",
        "memory-backend=pc.ram",
    ];
    let machine = info.machine("pc").to_string();

    // Sequential.
    let caps = ["x-ignore-shared"];
    let (mut src, mig, st) = qemu_save_paused(info, dir.path(), "seq", &caps, &extra);
    assert_eq!(st["status"], "completed", "{st}\n{}", src.stderr());
    let before = src.pmemsave(0, 16 * MIB);
    let stream = inspect(&DiskFile::open(&mig).unwrap()).unwrap();
    let pc = stream.blocks.iter().find(|b| b.name == "pc.ram").unwrap();
    assert_eq!(
        (pc.pages_present, pc.zero_records, pc.mr_addr),
        (0, 0, Some(0)),
        "QEMU sent pages of an ignored pc.ram"
    );
    let others: u64 = stream
        .blocks
        .iter()
        .map(|b| b.pages_present + b.zero_records)
        .sum();
    assert!(others > 0, "the private blocks (ROMs) still migrate");
    drop(src);
    let (mut dst, _, st) = qemu_load(
        info,
        dir.path(),
        "seq-dst",
        &machine,
        16,
        &mig,
        &caps,
        &extra,
    );
    assert_eq!(st["status"], "completed", "{st}\n{}", dst.stderr());
    assert!(
        dst.pmemsave(0, 16 * MIB) == before,
        "the destination mapping the same file does not have the source's memory"
    );
    println!(
        "QEMU {} sequential + x-ignore-shared, pc.ram shared: {} bytes, pc.ram 0 pages, \
         {others} pages of the other blocks; loads with the same backend, memory equal",
        info.short_version(),
        stream.file_len
    );
    drop(dst);

    // Mapped-ram.
    let caps = ["x-ignore-shared", "mapped-ram"];
    let (src, _, st) = qemu_save_paused(info, dir.path(), "mapped", &caps, &extra);
    let err = st["error-desc"].as_str().unwrap_or_default().to_string();
    println!(
        "QEMU {} mapped-ram + x-ignore-shared, pc.ram shared: save {}, {err:?}; stderr: {}",
        info.short_version(),
        st["status"],
        src.stderr().trim()
    );
    if info.is_10_0() {
        assert_eq!(st["status"], "failed", "{st}");
        assert!(
            err.contains("Failed to write bitmap to file")
                || src.stderr().contains("Failed to write bitmap"),
            "{st}\n{}",
            src.stderr()
        );
    }
}
