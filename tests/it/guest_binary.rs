//! The committed guest program (`guest/migsim-guest.elf`, embedded by
//! `migsim qemu run`) is what its source builds to, and the parameter page
//! migsim writes for it says what the scenario says.

use std::path::Path;
use std::process::Command;

use migsim_harness::qemu::guest::{GUEST_ELF, GuestParams, GuestStatus, PARAMS_GPA, WORK_FROM};
use migsim_harness::scenario::Scenario;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Build `guest/` for x86_64-unknown-none and compare with the committed
/// binary. Without the target (`rustup target add x86_64-unknown-none`)
/// or with another rustc than the one recorded in
/// `guest/migsim-guest.rustc`, say so and stop; under CI=true a missing
/// target fails (`.ci/run` installs it).
#[test]
fn committed_guest_binary_is_what_its_source_builds_to() {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("x86_64-unknown-none"))
        .unwrap_or(false);
    if !installed {
        assert!(
            !ci,
            "the x86_64-unknown-none target is required under CI=true: rustup target add x86_64-unknown-none"
        );
        eprintln!(
            "guest binary check skipped: no x86_64-unknown-none target (rustup target add x86_64-unknown-none)"
        );
        return;
    }
    let recorded = std::fs::read_to_string(root().join("guest/migsim-guest.rustc")).unwrap();
    let rustc = Command::new("rustc").arg("--version").output().unwrap();
    let rustc = String::from_utf8_lossy(&rustc.stdout).to_string();
    if rustc.trim() != recorded.trim() {
        eprintln!(
            "guest binary check skipped: it was built with {}, this is {}",
            recorded.trim(),
            rustc.trim()
        );
        return;
    }
    let target = tempfile::tempdir().unwrap();
    let out = Command::new("cargo")
        .args(["build", "--release", "--target-dir"])
        .arg(target.path())
        .current_dir(root().join("guest"))
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "building guest/: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let built = std::fs::read(
        target
            .path()
            .join("x86_64-unknown-none/release/migsim-guest"),
    )
    .unwrap();
    assert!(
        built == GUEST_ELF,
        "guest/migsim-guest.elf ({} bytes) is not what guest/src builds to ({} bytes): run guest/build.sh",
        GUEST_ELF.len(),
        built.len()
    );
}

/// The parameter page of the 16 MiB QEMU scenario: the work region starts
/// at 4 MiB and ends with pc.ram, the hot set is its share of it, the
/// shares are thresholds out of 2^64, and the guest's status area starts
/// empty.
#[test]
fn guest_parameter_page_follows_the_scenario() {
    let s = Scenario::load(&root().join("scenarios/qemu/pc-16m-redirty.toml")).unwrap();
    let g = GuestParams::for_scenario(&s, 1234).unwrap();
    assert_eq!(g.first_page, WORK_FROM / 4096);
    assert_eq!(g.first_page + g.pages, (16 << 20) / 4096);
    assert_eq!(
        g.hot_pages,
        (g.pages as f64 * s.workload.hot_fraction).ceil() as u64
    );
    let p = g.encode();
    let at = |o: usize| u64::from_le_bytes(p[o..o + 8].try_into().unwrap());
    assert_eq!(&p[0..8], b"MIGSIMGP");
    assert_eq!(at(8), 1 | (2 << 32), "layout 1, hot-set");
    assert_eq!(at(16), s.seed);
    assert_eq!(at(40), g.first_page);
    assert_eq!(at(48), g.pages);
    assert_eq!(at(56), s.workload.writes_per_tick);
    let share = |v: f64| (v * 2f64.powi(64)) as u64;
    assert_eq!(at(72), share(s.workload.hot_share));
    assert_eq!(at(80), share(s.workload.zero_share));
    assert_eq!(at(96), 1234);
    // Versions and hot set lie between the parameter page and the region.
    assert!(at(104) > PARAMS_GPA && at(112) + g.hot_pages * 8 <= WORK_FROM);
    assert_eq!(GuestStatus::parse(&p), GuestStatus::default());
    // A guest too small for a work region is refused, with the reason.
    let mut tiny = s.clone();
    tiny.guest.blocks[0].size.0 = 4 << 20;
    let e = GuestParams::for_scenario(&tiny, 0).unwrap_err();
    assert!(e.contains("at least 8 MiB"), "{e}");
}
