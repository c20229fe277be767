//! The concurrency model ([`migsim_harness::sched`]): the interleaving is
//! the scheduler's seed alone, and for correct code it changes the order of
//! every step but neither the restored memory nor the RAM the file holds.

use std::collections::BTreeSet;

use migsim_format::io::MigFile;
use migsim_format::reader;
use migsim_harness::run::{RunOptions, run};
use migsim_harness::scenario::{Scenario, Verdict};

fn scenario() -> Scenario {
    let mut s = Scenario::load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("scenarios/concurrency/multifd-4ch-2vcpu.toml"),
    )
    .unwrap();
    // The guest writes during the first 6 ticks only, never zero: memory
    // at switchover is then the same whatever the interleaving.
    let c = s.concurrency.as_mut().unwrap();
    c.guest_ticks = Some(6);
    s.workload.zero_share = 0.0;
    s.expect.digest = None;
    s
}

/// The fixed-ram file's RAM: each block's bitmap and the bytes of every
/// page whose bit is set.
fn ram_image(file: &impl MigFile) -> Vec<u8> {
    let bytes = {
        let mut v = vec![0u8; file.len() as usize];
        file.read_at(0, &mut v).unwrap();
        v
    };
    let info = reader::inspect(&bytes).unwrap();
    let mut out = Vec::new();
    for b in &info.blocks {
        let fr = b.fixed_ram.as_ref().unwrap();
        let bm = &bytes[fr.bitmap_offset as usize..(fr.bitmap_offset + fr.bitmap_len) as usize];
        out.extend_from_slice(bm);
        for p in 0..b.pages {
            if bm[(p / 8) as usize] & (1 << (p % 8)) != 0 {
                let at = (fr.pages_offset + p * 4096) as usize;
                out.extend_from_slice(&bytes[at..at + 4096]);
            }
        }
    }
    out
}

/// `s` under schedule seed `seed`, which must pass.
fn passing_run(mut s: Scenario, seed: u64) -> (Scenario, migsim_harness::run::RunReport) {
    s.concurrency.as_mut().unwrap().schedule_seed = Some(seed);
    let r = run(&s, &RunOptions::default());
    assert_eq!(
        r.verdict,
        Verdict::Pass,
        "schedule seed {seed}: {:#?}",
        r.invariants
    );
    (s, r)
}

#[test]
fn four_channels_and_two_vcpus_interleave_by_seed_but_restore_the_same_memory_and_ram() {
    let mut interleavings = BTreeSet::new();
    let mut first: Option<(Vec<u8>, String)> = None;
    let mut torn_seen = 0;
    for seed in 0..40 {
        let s = scenario();
        let (s, r) = passing_run(s, seed);
        let c = &r.concurrency.as_ref().unwrap()[0];
        assert!(c.multifd);
        interleavings.insert(c.interleaving.clone());
        let torn = r
            .invariants
            .iter()
            .find(|i| i.name.name() == "torn-copy-resent")
            .unwrap();
        if !torn.detail.starts_with("0 torn") {
            torn_seen += 1;
        }
        let image = ram_image(&r.files[0].file);
        let switchover = format!("{:?}", r.switchover);
        match &first {
            None => first = Some((image, switchover)),
            Some((img, sw)) => {
                assert_eq!(
                    sw, &switchover,
                    "schedule seed {seed}: memory at switchover"
                );
                assert!(
                    img == &image,
                    "schedule seed {seed}: the file's RAM differs"
                );
            }
        }
        // The same seed again: the same interleaving and digest.
        let again = run(&s, &RunOptions::default());
        assert_eq!(again.digest, r.digest, "schedule seed {seed}");
    }
    assert_eq!(
        interleavings.len(),
        40,
        "every seed interleaves differently"
    );
    println!("{torn_seen} of 40 interleavings tore a copy (each resent)");
}

#[test]
fn a_concurrency_table_that_does_not_fit_its_limits_is_refused_clearly() {
    type Change<'a> = &'a dyn Fn(&mut Scenario);
    let cases: [(Change, &str); 4] = [
        (
            &|s| s.migration.capabilities.clear(),
            "concurrency.channels = 4 needs \"multifd\" in migration.capabilities",
        ),
        (
            &|s| s.concurrency.as_mut().unwrap().channels = 0,
            "migration.capabilities has \"multifd\": concurrency.channels must be at least 1",
        ),
        (
            &|s| s.concurrency.as_mut().unwrap().vcpus = 0,
            "concurrency.vcpus = 0 must be 1..=16",
        ),
        (
            &|s| s.guest.blocks[0].size = migsim_harness::scenario::Size(200 << 30),
            "scheduler steps; the limit is 200000000",
        ),
    ];
    for (change, want) in cases {
        let mut s = scenario();
        change(&mut s);
        let e = s.validate().unwrap_err();
        assert!(e.contains(want), "{e}");
    }
}

/// x-ignore-shared with pc.ram on shared memory, under the scheduler: over
/// many interleavings no channel sends a page of it (the file has pc.ram's
/// header with both offsets 0 and the migration's sends name vga.vram
/// only), the vCPUs keep writing it, and the restore passes (pc.ram left
/// as the dirty destination had it).
#[test]
fn an_ignored_block_is_never_sent_whatever_the_interleaving() {
    use migsim_format::caps::Capability;
    for seed in 0..12 {
        let mut s = scenario();
        s.migration.capabilities.push(Capability::XIgnoreShared);
        s.guest.blocks[0].shared = true;
        s.destination.dirty_memory = true;
        let (_, r) = passing_run(s, seed);
        let restored = r
            .invariants
            .iter()
            .find(|i| i.name.name() == "restored-equals-switchover")
            .unwrap();
        assert!(
            restored.detail.contains("512 of them in blocks ignored"),
            "{}",
            restored.detail
        );
        let f = &r.files[0].file;
        let mut bytes = vec![0u8; f.len() as usize];
        f.read_at(0, &mut bytes).unwrap();
        let info = reader::inspect(&bytes).unwrap();
        assert!(info.blocks[0].ignored && !info.blocks[1].ignored);
        assert_eq!(info.blocks[0].pages_present, 0);
        let c = &r.concurrency.as_ref().unwrap()[0];
        assert!(
            c.pages_sent > 0 && c.pages_sent < 512,
            "schedule seed {seed}: {} pages sent for a 64-page private block",
            c.pages_sent
        );
        // The guest wrote pc.ram during the copy all the same.
        let written = r.switchover[0].iter().filter(|p| p.version > 1).count();
        assert!(
            written > 0,
            "schedule seed {seed}: the vCPUs never wrote pc.ram"
        );
    }
}
