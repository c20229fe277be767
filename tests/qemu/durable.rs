//! QEMU 10 loads migsim's durable saves (`Durability::Durable`: synced in
//! order, with the completion mark after the vmdesc trailer) and files
//! with the integrity trailer (CRC-32s after the vmdesc trailer, before a
//! mark) with memory equal to the guest's at switchover: neither stops a
//! QEMU load (its loader stops reading after the vmdesc trailer).
//! migsim's reader loads the same files with the mark and the trailer
//! required. And QEMU's own protocol (no fsync, bitmaps last) shown by
//! QEMU: the crash images `migsim faults` judges wrong load into QEMU with
//! exactly the pages migsim names wrong.

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use migsim_format::Durability;
use migsim_format::Layout;
use migsim_format::caps::{Capabilities, Capability, Profile};
use migsim_format::io::DiskFile;
use migsim_format::reader::{LoadOptions, NullSink, load};
use migsim_harness::qemu::{QemuProcess, stopped_guest_accel};
use migsim_harness::run::{RunOptions, run};
use migsim_harness::scenario::{Scenario, Verdict};
use migsim_harness::sim::content::fill_page;

use crate::guest_memory::{MIB, PAGE};

/// Where QEMU's pc machine maps pc.ram below 16 MiB for `pmemsave`:
/// [0, 640 KiB) and [1 MiB, RAM).
fn pc_ram_ranges(ram: u64) -> [(u64, u64); 2] {
    [(0, 0xA0000), (MIB, ram)]
}

/// Save `scenario` with `opts`, load each file into a paused QEMU and
/// compare its pc.ram with the guest's at switchover.
fn qemu_loads(scenario: &str, opts: &RunOptions, what: &str) {
    let Some(q) = crate::support::qemu_or_skip() else {
        return;
    };
    if q.version_tuple() < (10, 0, 0) {
        println!("{what}: skipped, needs QEMU >= 10.0 for pc-i440fx-10.0");
        return;
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios/qemu")
        .join(scenario);
    let s = Scenario::load(&path).unwrap();
    let r = run(&s, opts);
    assert_eq!(r.verdict, Verdict::Pass, "{what}: {:?}", r.invariants);
    let blocks = s.blocks();
    let ram = blocks[0].used_length;
    assert_eq!(blocks[0].name, "pc.ram");
    let mut want = Vec::with_capacity(ram as usize);
    let mut buf = vec![0u8; PAGE as usize];
    for p in 0..blocks[0].pages() {
        fill_page(r.content_seed, 0, p, r.switchover[0][p as usize], &mut buf);
        want.extend_from_slice(&buf);
    }
    let dir = tempfile::tempdir().unwrap();
    for f in &r.files {
        let file = dir.path().join(format!("{}.mig", f.writer));
        f.file.save(&file).unwrap();
        let caps: &[&str] = if f.writer == Layout::FixedRam {
            &["mapped-ram"]
        } else {
            &[]
        };
        // migsim's reader, with the mark required.
        let mut dest_caps = Capabilities::for_profile(Profile::MappedRam);
        let settings: Vec<_> = caps
            .iter()
            .map(|c| (Capability::from_name(c).unwrap(), true))
            .collect();
        dest_caps.set(&settings).unwrap();
        let lo = LoadOptions {
            machine: Some(s.guest.machine.clone()),
            caps: Some(dest_caps),
            require_durable: opts.durability == Durability::Durable,
            require_integrity: opts.integrity,
            ..LoadOptions::default()
        };
        let info = load(&DiskFile::open(&file).unwrap(), &lo, &mut NullSink)
            .unwrap_or_else(|e| panic!("{what} {}: {e}", f.writer));

        let log = dir.path().join(format!("{}.log", f.writer));
        let mut qp = QemuProcess::start_incoming(
            q,
            what,
            &s.guest.machine,
            ram / MIB,
            &stopped_guest_accel(),
            &log,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        qp.enable_caps(caps).unwrap();
        qp.cmd(
            "migrate-incoming",
            json!({ "uri": format!("file:{}", file.display()), "exit-on-error": false }),
        )
        .unwrap();
        let st = qp
            .wait_migration(
                Duration::from_secs(60),
                Duration::from_millis(20),
                |_, _| {},
            )
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            st["status"],
            "completed",
            "{what}: QEMU refused migsim's {} file: {st}\n{}",
            f.writer,
            qp.stderr()
        );
        let mut compared = 0;
        for (start, end) in pc_ram_ranges(ram) {
            let got = qp
                .pmemsave(start, end - start, &dir.path().join("dump"))
                .unwrap();
            let differ: Vec<u64> = got
                .chunks(PAGE as usize)
                .zip(want[start as usize..end as usize].chunks(PAGE as usize))
                .enumerate()
                .filter(|(_, (g, w))| g != w)
                .map(|(i, _)| start / PAGE + i as u64)
                .collect();
            assert!(
                differ.is_empty(),
                "{what} {}: {} pc.ram pages differ in QEMU, first {:#x?}",
                f.writer,
                differ.len(),
                &differ[..differ.len().min(8)]
            );
            compared += (end - start) / PAGE;
        }
        println!(
            "{what}: QEMU {} loaded the {} file ({} bytes, integrity trailer {:?}, completion mark {:?}): {compared} pc.ram pages equal",
            q.version_tuple().0,
            f.writer,
            f.file.len_bytes(),
            info.integrity_trailer,
            info.completion_mark
        );
    }
}

#[test]
fn qemu_10_loads_migsim_durable_saves_with_memory_equal() {
    qemu_loads(
        "pc-16m-zero-after-data.toml",
        &RunOptions {
            durability: Durability::Durable,
            ..RunOptions::default()
        },
        "durable save",
    );
}

#[test]
fn qemu_10_loads_files_with_the_integrity_trailer_with_memory_equal() {
    for (durability, what) in [
        (Durability::QemuCompatible, "integrity trailer"),
        (Durability::Durable, "durable save with integrity trailer"),
    ] {
        qemu_loads(
            "pc-16m-zero-after-data.toml",
            &RunOptions {
                durability,
                integrity: true,
                ..RunOptions::default()
            },
            what,
        );
    }
}

/// QEMU's protocol shown as it is, by QEMU itself: the crash images that
/// `migsim faults` judges wrong for pc-16m-zero-after-data (a power loss
/// after the last write, before writeback: one page write lost, or one
/// sector torn) complete QEMU 10's `migrate-incoming`, and QEMU's pc.ram
/// differs from the guest's at switchover on exactly the pages migsim
/// names.
#[test]
fn qemu_10_loads_wrong_memory_from_a_crash_image_of_its_own_protocol() {
    use migsim_harness::faults::{FaultsOptions, Outcome, Points, crash_image_of, faults};
    use migsim_harness::sim::dest::Destination;
    let Some(q) = crate::support::qemu_or_skip() else {
        return;
    };
    if q.version_tuple() < (10, 0, 0) {
        println!("skipped, needs QEMU >= 10.0 for pc-i440fx-10.0");
        return;
    }
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/qemu/pc-16m-zero-after-data.toml");
    let s = Scenario::load(&path).unwrap();
    let o = FaultsOptions {
        points: Points::Last,
        io_points: 0,
        ..FaultsOptions::default()
    };
    let report = faults(&s, &o);
    let r = run(&s, &RunOptions::default());
    let blocks = s.blocks();
    let ram = blocks[0].used_length;
    let dir = tempfile::tempdir().unwrap();
    let mut loaded = 0;
    for l in &report.layouts {
        let Some(w) = l.first_wrong.first() else {
            continue;
        };
        assert_eq!(w.outcome, Outcome::Wrong);
        let image = crash_image_of(&s, &o, l.layout, w.point, w.sample).unwrap();
        let file = dir.path().join(format!("{}-crash.mig", l.layout));
        std::fs::write(&file, &image).unwrap();
        // migsim's own restore of the image, byte for byte.
        let caps: &[&str] = if l.layout == Layout::FixedRam {
            &["mapped-ram"]
        } else {
            &[]
        };
        let mut dest_caps = Capabilities::for_profile(Profile::MappedRam);
        let settings: Vec<_> = caps
            .iter()
            .map(|c| (Capability::from_name(c).unwrap(), true))
            .collect();
        dest_caps.set(&settings).unwrap();
        let lo = LoadOptions {
            machine: Some(s.guest.machine.clone()),
            caps: Some(dest_caps),
            ..LoadOptions::default()
        };
        let mut dest = Destination::new(&blocks, false);
        load(&image, &lo, &mut dest).unwrap();
        let mut want = vec![0u8; PAGE as usize];

        let log = dir.path().join(format!("{}.log", l.layout));
        let mut qp = QemuProcess::start_incoming(
            q,
            "crash image",
            &s.guest.machine,
            ram / MIB,
            &stopped_guest_accel(),
            &log,
        )
        .unwrap();
        qp.enable_caps(caps).unwrap();
        qp.cmd(
            "migrate-incoming",
            json!({ "uri": format!("file:{}", file.display()), "exit-on-error": false }),
        )
        .unwrap();
        let st = qp
            .wait_migration(
                Duration::from_secs(60),
                Duration::from_millis(20),
                |_, _| {},
            )
            .unwrap();
        assert_eq!(
            st["status"],
            "completed",
            "QEMU refused the {} crash image: {st}\n{}",
            l.layout,
            qp.stderr()
        );
        let (mut qemu_wrong, mut migsim_wrong) = (Vec::new(), Vec::new());
        for (start, end) in pc_ram_ranges(ram) {
            let got = qp
                .pmemsave(start, end - start, &dir.path().join("dump"))
                .unwrap();
            for (i, g) in got.chunks(PAGE as usize).enumerate() {
                let p = start / PAGE + i as u64;
                fill_page(r.content_seed, 0, p, r.switchover[0][p as usize], &mut want);
                if g != &want[..] {
                    qemu_wrong.push(p);
                }
                if dest.page(0, p) != &want[..] {
                    migsim_wrong.push(p);
                }
            }
        }
        assert!(
            !qemu_wrong.is_empty(),
            "{}: QEMU's memory is right",
            l.layout
        );
        assert_eq!(qemu_wrong, migsim_wrong, "{}", l.layout);
        println!(
            "{}: crash point {} sample {} ({}): QEMU {:?} completed the load; pc.ram pages {:x?} differ from switchover, as migsim said: {}",
            l.layout,
            w.point,
            w.sample,
            w.survival,
            q.version_tuple(),
            qemu_wrong,
            w.detail
        );
        loaded += 1;
    }
    assert_eq!(loaded, 2, "a wrong crash for both layouts");
}
