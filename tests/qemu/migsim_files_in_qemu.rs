//! migsim -> QEMU: the QEMU-shaped scenarios in `scenarios/qemu/` are run,
//! every file they write (sequential and mapped-ram) is loaded into a fresh
//! QEMU with `migrate-incoming` (the mapped-ram file also with multifd on
//! the destination), and QEMU's memory (`pmemsave` of every guest-physical
//! range where QEMU maps one of the blocks) must equal the simulated
//! guest's memory at switchover, page for page. The expectation is built
//! from the run's page states at switchover (`RunReport::switchover`,
//! contents from `sim::content`; [`simulate`]); migsim's reader is checked
//! against the same bytes on the side.

use std::time::Instant;

use migsim_format::Layout;

use crate::guest_memory::{MIB, compare_visible, fmt_mib, migsim_restore, simulate};
use crate::qemu_process::{qemu, qemu_load};

/// migsim -> QEMU for one scenario: every file it writes loads into a fresh
/// QEMU (the mapped-ram file also with multifd on the destination) and
/// QEMU's memory equals the guest's at switchover.
fn migsim_to_qemu(scenario: &str, mib: u64) {
    let Some(info) = qemu() else { return };
    let t0 = Instant::now();
    let sim = simulate(info, scenario);
    let s = &sim.scenario;
    let ram = sim.ram();
    assert_eq!(ram, mib * MIB);
    let dir = tempfile::tempdir().unwrap();
    let describe = sim.describe();
    for (writer, path) in sim.save(dir.path()) {
        // migsim's own reader, on the side: the oracle already proved this.
        let layout: &[&str] = if writer == Layout::FixedRam {
            &["mapped-ram"]
        } else {
            &[]
        };
        let (_, restored) = migsim_restore(&path, &s.blocks(), &s.guest.machine, layout, true)
            .unwrap_or_else(|e| panic!("{writer}: {e}"));
        assert!(restored == sim.memory, "{writer}: migsim restore differs");

        let loads: &[&[&str]] = if writer == Layout::FixedRam {
            &[&["mapped-ram"], &["mapped-ram", "multifd"]]
        } else {
            &[&[]]
        };
        for caps in loads {
            let tag = format!("{writer}-{}", caps.join("-"));
            let (mut q, blocks, st) = qemu_load(
                info,
                dir.path(),
                &tag,
                &s.guest.machine,
                mib,
                &path,
                caps,
                &[],
            );
            assert_eq!(
                st["status"],
                "completed",
                "{scenario}: QEMU refused migsim's {writer} file (caps {caps:?}): {st}\n{}",
                q.stderr()
            );
            // The scenario is shaped exactly like this QEMU's guest.
            let mut want = s.blocks();
            let mut have = blocks.clone();
            want.sort_by(|a, b| a.name.cmp(&b.name));
            have.sort_by(|a, b| a.name.cmp(&b.name));
            assert_eq!(
                want, have,
                "{scenario}: blocks differ from QEMU's `info ramblock`"
            );
            let state = q.status();
            assert_ne!(state, "running", "a -S destination must stay stopped");
            let maps = q.flatview();
            let what = format!("{scenario} {writer} file into QEMU (caps {caps:?})");
            let pages = compare_visible(&mut q, &maps, &sim.memory, ram, &what, &describe);
            println!(
                "{scenario}: {writer} file ({}, {} live passes) -> QEMU {caps:?}: completed, \
                 runstate {state}; pages equal to switchover memory: {pages:?}",
                fmt_mib(path.metadata().unwrap().len()),
                sim.report.passes
            );
        }
    }
    println!("{scenario}: {:.1} s", t0.elapsed().as_secs_f64());
}

#[test]
fn migsim_pc_16m_redirty_files_load_into_qemu() {
    migsim_to_qemu("pc-16m-redirty.toml", 16);
}

/// The same guest through the concurrency model's QEMU driver (a PART per
/// tick, mid-walk syncs): its files load into QEMU too.
#[test]
fn migsim_pc_16m_redirty_qemu_driver_files_load_into_qemu() {
    migsim_to_qemu("pc-16m-redirty-qemu-driver.toml", 16);
}

#[test]
fn migsim_q35_32m_redirty_files_load_into_qemu() {
    migsim_to_qemu("q35-32m-redirty.toml", 32);
}

#[test]
fn migsim_pc_16m_zero_after_data_files_load_into_qemu() {
    migsim_to_qemu("pc-16m-zero-after-data.toml", 16);
}
