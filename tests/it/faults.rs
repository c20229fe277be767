//! The fault model (crates/migsim-harness/src/faults.rs) on small
//! scenarios, crashed at every write index of both layouts: QEMU's
//! protocol (no fsync, bitmaps last) restores wrong memory after some
//! power losses, the durable mode never does, its bug variant does, and
//! ENOSPC, EIO and short writes give a clear error and no wrong file. The
//! product's durable mode and completion mark through its public API.

use migsim_format::Durability;
use migsim_format::LoadError;
use migsim_format::io::{DiskFile, MigFile};
use migsim_format::reader::{NullSink, inspect, load};
use migsim_harness::bugs::Bug;
use migsim_harness::faults::{FaultsOptions, FaultsReport, Outcome, Points, faults};
use migsim_harness::sim::simfile::IoFault;

use crate::support::*;

fn crash_all(name: &str, mode: Durability, bug: Option<Bug>) -> FaultsReport {
    let s = scenario(name);
    let r = faults(
        &s,
        &FaultsOptions {
            mode,
            points: Points::All,
            bug,
            max_wrong: 1000,
            ..FaultsOptions::default()
        },
    );
    assert_eq!(r.run_error, None);
    assert_eq!(r.layouts.len(), 2, "both writers ran");
    for l in &r.layouts {
        assert_eq!(l.points, l.writes + 1, "{}: every write index", l.layout);
        assert_eq!(l.cases, l.points * 8);
        assert_eq!(l.exact + l.refused + l.wrong, l.cases);
    }
    r
}

#[test]
fn qemu_protocol_restores_wrong_memory_only_once_the_file_looks_complete() {
    let r = crash_all("power-loss-small", Durability::QemuCompatible, None);
    let fixed = &r.layouts[1];
    assert_eq!(fixed.layout, migsim_format::Layout::FixedRam);
    assert!(
        fixed.wrong > 0,
        "with bitmaps written last and no fsync, losing one page write of a \
         complete-looking file must load wrong memory: {fixed:?}"
    );
    for l in &r.layouts {
        assert_eq!(l.syncs, 0, "QEMU never fsyncs");
        for c in &l.first_wrong {
            // The EOF byte is in the last write: before it, the strict
            // reader refuses (no EOF, or no RAM END section).
            assert_eq!(c.point, l.writes, "{c:?}");
            assert!(c.bad_pages > 0 && c.detail.contains("expected v"), "{c:?}");
        }
        // A clean cut after every write (sample 1, also a cancelled save)
        // is refused until the save is complete, then exact.
        assert!(l.exact >= 1);
    }
}

fn assert_durable(name: &str, r: &FaultsReport) {
    for l in &r.layouts {
        assert_eq!(l.wrong, 0, "{name} {}: {:?}", l.layout, l.first_wrong);
        assert_eq!(l.syncs, 3, "pages, metadata, mark");
        // At least the complete file is exact.
        assert!(l.exact >= 1, "{name} {}", l.layout);
    }
    assert_eq!(r.wrong(), 0);
}

#[test]
fn durable_mode_is_exact_or_refused_at_every_crash_point() {
    let r = crash_all("power-loss-small", Durability::Durable, None);
    assert_durable("power-loss-small", &r);
    // A bigger guest onto a dirty destination: 40 crash points each.
    let name = "zero-after-data-dirty-destination";
    let r = faults(
        &scenario(name),
        &FaultsOptions {
            mode: Durability::Durable,
            points: Points::Sampled(40),
            io_points: 0,
            ..FaultsOptions::default()
        },
    );
    assert!(r.layouts.iter().all(|l| l.points == 40.min(l.writes + 1)));
    assert_durable(name, &r);
}

#[test]
fn the_mark_written_before_its_sync_is_caught_as_wrong() {
    let r = crash_all(
        "power-loss-small",
        Durability::Durable,
        Some(Bug::DurableMarkUnsynced),
    );
    let wrong: usize = r.layouts.iter().map(|l| l.wrong).sum();
    assert!(wrong > 0, "{:?}", r.layouts);
    let c = &r.layouts.iter().find(|l| l.wrong > 0).unwrap().first_wrong[0];
    assert!(c.detail.contains("restored"), "names the pages: {c:?}");
}

#[test]
fn one_crash_replays_with_the_same_verdict() {
    let s = scenario("power-loss-small");
    let all = faults(&s, &FaultsOptions::default());
    let fixed = &all.layouts[1];
    let w = &fixed.first_wrong[0];
    let one = faults(
        &s,
        &FaultsOptions {
            only: Some((w.point, w.sample)),
            ..FaultsOptions::default()
        },
    );
    let c = one.layouts[1].case.as_ref().unwrap();
    assert_eq!((c.outcome, &c.detail), (Outcome::Wrong, &w.detail));
    // And the whole report is the same every time.
    let again = faults(&s, &FaultsOptions::default());
    assert_eq!(
        serde_json::to_string(&all).unwrap(),
        serde_json::to_string(&again).unwrap()
    );
}

#[test]
fn enospc_eio_and_short_writes_fail_clearly_and_leave_no_wrong_file() {
    for mode in [Durability::QemuCompatible, Durability::Durable] {
        let r = faults(
            &scenario("power-loss-small"),
            &FaultsOptions {
                mode,
                points: Points::Sampled(1),
                samples: 1,
                io_points: 6,
                ..FaultsOptions::default()
            },
        );
        assert_eq!(r.io.len(), 2 * 3 * 6, "{mode:?}");
        for fault in IoFault::ALL {
            assert!(r.io.iter().any(|c| c.fault == fault));
        }
        for c in &r.io {
            let e = c
                .error
                .as_deref()
                .unwrap_or_else(|| panic!("not reported: {c:?}"));
            assert!(e.starts_with("I/O error: "), "{e}");
            assert!(e.contains(&format!("write {}", c.write)), "{e}");
            assert_ne!(c.outcome, Outcome::Wrong, "{c:?}");
        }
    }
}

fn durable_file(mode: Durability) -> Vec<u8> {
    let caps = fixed_ram();
    let mut w = start(&caps, vec![block("pc.ram", 4)])
        .unwrap()
        .with_durability(mode);
    w.begin_iteration().unwrap();
    w.save_page(0, 1, &page(1)).unwrap();
    w.end_iteration().unwrap();
    w.begin_completion().unwrap();
    w.finish(&[]).unwrap().0
}

#[test]
fn a_durable_file_ends_with_its_mark_and_the_reader_requires_it_when_asked() {
    let caps = fixed_ram();
    let mut strict = load_opts(caps);
    strict.require_durable = true;
    let d = durable_file(Durability::Durable);
    let q = durable_file(Durability::QemuCompatible);
    assert_eq!(d.len(), q.len() + 16);
    assert_eq!(d[..q.len()], q[..], "the mark is the only difference");
    assert_eq!(&d[q.len()..q.len() + 8], b"MIGSIMOK");
    let info = load(&d, &strict, &mut NullSink).unwrap();
    assert_eq!(info.completion_mark, Some(q.len() as u64));
    assert!(info.warnings.is_empty(), "{:?}", info.warnings);
    // Without asking, both load; inspect names the mark.
    load(&q, &load_opts(caps), &mut NullSink).unwrap();
    assert_eq!(inspect(&d).unwrap().completion_mark, Some(q.len() as u64));
    // Asked for, a missing, torn or moved mark is refused.
    let mut torn = d.clone();
    let n = torn.len();
    torn[n - 12] = 0;
    let mut moved = d.clone();
    moved.insert(q.len(), 0);
    for (what, f) in [("missing", &q), ("torn", &torn), ("moved", &moved)] {
        match load(f, &strict, &mut NullSink) {
            Err(LoadError::NotDurable { .. }) => {}
            other => panic!("{what}: {other:?}"),
        }
    }
    let e = load(&q, &strict, &mut NullSink).unwrap_err().to_string();
    assert!(
        e.starts_with("no completion mark: the save did not finish durably"),
        "{e}"
    );
}

#[test]
fn a_durable_save_to_a_real_file_syncs_and_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.mig");
    let caps = fixed_ram();
    let mut w = migsim_format::MigrationWriter::start(
        DiskFile::create(&path).unwrap(),
        MACHINE,
        &caps,
        vec![block("pc.ram", 4)],
    )
    .unwrap()
    .with_durability(Durability::Durable);
    w.begin_iteration().unwrap();
    w.save_page(0, 2, &page(2)).unwrap();
    w.end_iteration().unwrap();
    w.begin_completion().unwrap();
    let (mut f, _) = w.finish(&[]).unwrap();
    f.sync().unwrap();
    drop(f);
    let back = DiskFile::open(&path).unwrap();
    let mut strict = load_opts(caps);
    strict.require_durable = true;
    assert_eq!(
        load(&back, &strict, &mut NullSink).unwrap().completion_mark,
        Some(back.len() - 16)
    );
}

#[test]
fn enospc_from_a_real_disk_is_a_clear_writer_error() {
    // /dev/full answers every write with ENOSPC, as a full filesystem does.
    let Ok(full) = DiskFile::create(std::path::Path::new("/dev/full")) else {
        eprintln!("skipped: no /dev/full");
        return;
    };
    let e = match start_on(full) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a write to /dev/full succeeded"),
    };
    assert!(e.contains("No space left on device"), "{e}");
}

fn start_on(f: DiskFile) -> Result<(), migsim_format::SaveError> {
    let caps = fixed_ram();
    let mut w = migsim_format::MigrationWriter::start(f, MACHINE, &caps, vec![block("pc.ram", 4)])?
        .with_durability(Durability::Durable);
    w.begin_iteration()?;
    w.save_page(0, 0, &page(3))?;
    w.end_iteration()?;
    w.begin_completion()?;
    w.finish(&[])?;
    Ok(())
}

#[test]
fn with_the_integrity_trailer_even_qemus_protocol_restores_no_wrong_memory() {
    let s = scenario("power-loss-small");
    for mode in [Durability::QemuCompatible, Durability::Durable] {
        let r = faults(
            &s,
            &FaultsOptions {
                mode,
                integrity: true,
                io_points: 2,
                ..FaultsOptions::default()
            },
        );
        assert_eq!(r.run_error, None);
        for l in &r.layouts {
            assert_eq!(l.points, l.writes + 1);
            assert_eq!(l.wrong, 0, "{mode:?} {}: {:?}", l.layout, l.first_wrong);
            assert!(l.exact >= 1);
        }
        assert_eq!(r.wrong(), 0);
    }
}

fn integrity_file(durable: bool) -> Vec<u8> {
    let caps = fixed_ram();
    let mode = if durable {
        Durability::Durable
    } else {
        Durability::QemuCompatible
    };
    let mut w = start(&caps, vec![block("pc.ram", 300), block("vga.vram", 4)])
        .unwrap()
        .with_durability(mode)
        .with_integrity(true);
    w.begin_iteration().unwrap();
    for p in 0..300 {
        w.save_page(0, p, &page(p as u8)).unwrap();
    }
    w.save_page(1, 3, &page(9)).unwrap();
    w.end_iteration().unwrap();
    w.begin_completion().unwrap();
    w.finish(&[]).unwrap().0
}

#[test]
fn the_integrity_trailer_names_the_first_bad_chunk_of_a_torn_or_flipped_file() {
    let caps = fixed_ram();
    let mut strict = load_opts(caps);
    strict.require_integrity = true;
    for durable in [false, true] {
        let f = integrity_file(durable);
        strict.require_durable = durable;
        let info = load(&f, &strict, &mut NullSink).unwrap();
        let at = info.integrity_trailer.expect("trailer recognised");
        assert!(info.warnings.is_empty(), "{:?}", info.warnings);
        assert_eq!(info.completion_mark.is_some(), durable);
        // inspect and a plain load see the trailer and do not mind it.
        assert_eq!(inspect(&f).unwrap().integrity_trailer, Some(at));
        load(&f, &load_opts(caps), &mut NullSink).unwrap();
        // pc.ram's page area starts at 1 MiB: page 0x105 is in chunk 2.
        let pages_offset = inspect(&f).unwrap().blocks[0]
            .fixed_ram
            .as_ref()
            .unwrap()
            .pages_offset;
        let byte = pages_offset + 0x105 * PAGE + 17;
        let chunk = byte >> 20;
        let mut flipped = f.clone();
        flipped[byte as usize] ^= 0x04;
        let mut torn = f.clone();
        let sector = (byte / 512 * 512) as usize;
        torn[sector..sector + 512].fill(0);
        for (what, bad) in [("bit flip", &flipped), ("torn sector", &torn)] {
            // Without the check the damage loads; with it, it is refused.
            load(bad, &load_opts(caps), &mut NullSink).unwrap();
            match load(bad, &strict, &mut NullSink) {
                Err(LoadError::IntegrityMismatch {
                    chunk: c, start, ..
                }) => {
                    assert_eq!((c, start), (chunk, chunk << 20), "{what}")
                }
                other => panic!("{what}: {other:?}"),
            }
        }
        let e = load(&flipped, &strict, &mut NullSink)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!("integrity check failed: chunk {chunk} ")),
            "{e}"
        );
    }
    // No trailer, asked for one.
    strict.require_durable = false;
    let q = durable_file(Durability::QemuCompatible);
    match load(&q, &strict, &mut NullSink) {
        Err(LoadError::NoIntegrity { .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_crash_image_rebuilt_alone_gets_the_verdict_faults_gave_it() {
    let s = scenario("power-loss-small");
    let o = FaultsOptions::default();
    let r = faults(&s, &o);
    let w = &r.layouts[1].first_wrong[0];
    let image =
        migsim_harness::faults::crash_image_of(&s, &o, w.layout, w.point, w.sample).unwrap();
    // It loads (that is what makes it wrong), and not as the guest was.
    let mut dest = migsim_harness::sim::dest::VerifyingDestination::new(
        run_report(&s).content_seed,
        &s.blocks(),
        false,
    );
    load(&image, &load_opts(fixed_ram()), &mut dest).unwrap();
    let rr = run_report(&s);
    let (bad, _, stories) =
        migsim_harness::oracle::compare_restored(&s.blocks(), &rr.switchover, &dest, 3, false);
    assert_eq!(bad, w.bad_pages);
    assert!(w.detail.contains(&stories[0]), "{} / {stories:?}", w.detail);
}

fn run_report(s: &migsim_harness::scenario::Scenario) -> migsim_harness::run::RunReport {
    migsim_harness::run::run(s, &migsim_harness::run::RunOptions::default())
}

#[test]
fn a_save_that_fails_on_disk_leaves_the_previous_file_and_no_temporary() {
    use migsim_harness::run::{RunOptions, run};
    let s = scenario("power-loss-small");
    let dir = tempfile::tempdir().unwrap();
    let fixed = dir.path().join("power-loss-small.fixed-ram.mig");
    std::fs::write(&fixed, b"the previous save").unwrap();
    let names = || {
        let mut v: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    };
    for fault in IoFault::ALL {
        let r = run(
            &s,
            &RunOptions {
                file_dir: Some(dir.path().to_path_buf()),
                io_fault: Some((migsim_format::Layout::FixedRam, 20, fault)),
                // Channels would write pages past write_at: the failing
                // file must still see write 20.
                channels: 2,
                ..RunOptions::default()
            },
        );
        let e = r.environment_error.expect("the failing disk is reported");
        assert!(e.contains("write 20"), "{e}");
        assert_eq!(std::fs::read(&fixed).unwrap(), b"the previous save");
        assert_eq!(names(), ["power-loss-small.fixed-ram.mig"], "{fault:?}");
    }
    // A run that completes replaces it, and leaves no temporary file.
    let r = run(
        &s,
        &RunOptions {
            file_dir: Some(dir.path().to_path_buf()),
            ..RunOptions::default()
        },
    );
    assert_eq!(r.environment_error, None);
    assert_eq!(r.digest, s.expect.digest.clone().unwrap());
    assert_eq!(
        names(),
        [
            "power-loss-small.fixed-ram.mig",
            "power-loss-small.sequential.mig"
        ]
    );
    assert_eq!(
        std::fs::read(&fixed).unwrap().len() as u64,
        r.fixed_ram_size.unwrap()
    );
}

#[test]
fn the_completion_mark_is_what_makes_the_durable_mode_exact() {
    // Judged as QEMU reads a file (the mark not required), a power loss
    // between the metadata writes and their sync can lose a bitmap behind
    // an EOF that survived: wrong. migsim's reader refuses those files.
    let r = faults(
        &scenario("power-loss-small"),
        &FaultsOptions {
            mode: Durability::Durable,
            ignore_mark: true,
            io_points: 0,
            ..FaultsOptions::default()
        },
    );
    let fixed = &r.layouts[1];
    assert!(fixed.wrong > 0, "{fixed:?}");
    for c in &fixed.first_wrong {
        // After the pages' sync and the metadata writes, before the mark.
        assert!(c.point >= fixed.writes - 4, "{c:?}");
    }
}

/// A destination killed mid-load (its page writes failing from the k-th
/// on, at 8 points of each layout's load): every such load reports the
/// failure, and a restarted load of the same file into the half-written
/// memory is exact. It once was not for fixed-ram: the destination kept
/// the killed load's block declarations, so the restart's block indexes
/// pointed at the wrong blocks (`pc.ram page 0x0: restored v3 of vga.vram
/// page 0x0`).
#[test]
fn a_destination_killed_mid_load_fails_and_its_restart_is_exact() {
    for mode in [Durability::QemuCompatible, Durability::Durable] {
        let r = crash_all("power-loss-small", mode, None);
        for layout in [
            migsim_format::Layout::Sequential,
            migsim_format::Layout::FixedRam,
        ] {
            let k: Vec<_> = r.kills.iter().filter(|k| k.layout == layout).collect();
            assert_eq!(k.len(), 8, "{layout:?}: {k:?}");
            assert!(
                k.iter()
                    .all(|k| k.at_write >= 1 && k.at_write <= k.of_writes)
            );
            for k in k {
                assert!(
                    k.killed_load
                        .as_deref()
                        .is_some_and(|e| e.contains("destination killed mid-load")),
                    "{layout:?} {mode:?}: killed at {} the load said {:?}",
                    k.at_write,
                    k.killed_load
                );
                assert_eq!(
                    k.restart,
                    Outcome::Exact,
                    "{layout:?} {mode:?}: {}",
                    k.detail
                );
            }
        }
    }
}
