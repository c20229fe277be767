//! QEMU under fuzz (`migsim_harness::qemu::campaign`): the campaign's
//! pipeline on real QEMU (bases load equal, seeds are deterministic) and
//! its findings kept under `tests/data/qemu/findings/`, replayed (the
//! mapped-ram page_size 0 SIGFPE also rebuilt by hand).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use migsim_format::reader::inspect;

use crate::qemu_process::qemu;
use crate::support::migsim_command;

/// The campaign's pipeline on real QEMU: every unmutated base loads in
/// QEMU with memory equal to migsim's restore, the same seed gives the same
/// bytes, and a few mutated seeds each get an outcome and a verdict.
#[test]
fn qemu_fuzz_campaign_bases_load_equal_and_seeds_are_deterministic() {
    use migsim_harness::qemu::campaign::{Limits, Verdict, bases, build, input, trial};
    let Some(info) = qemu() else { return };
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let bases = bases();
    let limits = Limits {
        timeout: Duration::from_secs(20),
        rss_limit: 2 << 30,
        accel: info.accel.clone(),
    };
    for (i, b) in bases.iter().enumerate() {
        let clean = build(&bases, 0, i, Vec::new(), None);
        assert!(clean.bytes == b.bytes);
        let t = trial(&info.qemu, &bases, clean, dir.path(), &limits).unwrap();
        assert_eq!(t.verdict, Verdict::BothLoadEqual, "{}: {t:?}", b.name);
    }
    for seed in 0..6 {
        let a = input(&bases, seed);
        assert!(
            a.bytes == input(&bases, seed).bytes,
            "seed {seed}: not deterministic"
        );
        let t = trial(&info.qemu, &bases, a, dir.path(), &limits).unwrap();
        println!(
            "seed {seed}: {} {:?} -> {:?}; migsim {:?}; {:?}",
            t.input.base_name, t.input.mutations, t.outcome, t.migsim_error, t.verdict
        );
    }
    println!(
        "{} bases and 6 seeds through QEMU {} in {:.1} s",
        bases.len(),
        info.short_version(),
        t0.elapsed().as_secs_f64()
    );
}

/// A finding of `migsim qemu fuzz`, kept in
/// `tests/data/qemu/findings/mapped-ram-page-size-0-sigfpe.toml`: QEMU 10.0.2
/// divides a mapped-ram block's length by the header's page_size without
/// checking it, so a header saying 0 kills QEMU with SIGFPE during
/// `migrate-incoming`. The test rebuilds the input from QEMU's own save
/// (one be64 patched) and checks QEMU 10.0.x still dies of it (another
/// QEMU version: the outcome is printed, not asserted), and that migsim
/// refuses the file.
#[test]
fn qemu_10_dies_of_sigfpe_on_a_mapped_ram_page_size_of_0() {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    let Some(info) = qemu() else { return };
    let dir = tempfile::tempdir().unwrap();
    let gz = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/qemu/mapped.mig.gz");
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(gz).unwrap())
        .read_to_end(&mut bytes)
        .unwrap();
    let stream = inspect(&bytes).unwrap();
    let h = stream.blocks.iter().find(|b| b.name == "pc.ram").unwrap();
    let at = h.fixed_ram.as_ref().unwrap().header_offset as usize + 4;
    bytes[at..at + 8].copy_from_slice(&0u64.to_be_bytes());
    let file = dir.path().join("page-size-0.mig");
    std::fs::write(&file, &bytes).unwrap();
    // migsim refuses it.
    let e = inspect(&bytes).unwrap_err();
    assert!(e.to_string().contains("page size 0"), "{e}");
    // QEMU: -S, the capability as a -global, the file on the command line.
    let st = Command::new(&info.bin)
        .args([
            "-M",
            "pc",
            "-m",
            "16",
            "-nodefaults",
            "-display",
            "none",
            "-S",
        ])
        .args(["-accel", &info.accel, "-global", "migration.mapped-ram=on"])
        .arg("-incoming")
        .arg(format!("file:{}", file.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = wait_exit(st, Duration::from_secs(30));
    println!(
        "QEMU {} loading a mapped-ram file with page_size 0: {out:?}",
        info.short_version()
    );
    if info.is_10_0() {
        assert_eq!(
            out.and_then(|s| s.signal()),
            Some(8),
            "QEMU 10.0.x no longer dies of SIGFPE on page_size 0: {out:?}"
        );
    }
}

/// The child's exit status, or `None` (killed) if it is still running
/// after `timeout` (a QEMU that loaded waits, paused, for ever).
fn wait_exit(
    mut child: std::process::Child,
    timeout: Duration,
) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every finding of `migsim qemu fuzz` kept under
/// `tests/data/qemu/findings/` (a reproducer TOML each: base, exact
/// mutations, input SHA-256, QEMU's recorded outcome) replayed through
/// `migsim qemu replay --json` against the installed QEMU: the rebuilt
/// input is byte for byte the recorded one (same base, same mutations,
/// same SHA-256: the campaign is deterministic), and with QEMU 10.0.x the
/// recorded outcome comes back and the command exits 1 (on another QEMU
/// version the outcome is printed, not asserted).
#[test]
fn every_saved_qemu_finding_reproduces() {
    let Some(info) = qemu() else { return };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/qemu/findings");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "{}: {files:?}", dir.display());
    for f in &files {
        let out = migsim_command()
            .args(["qemu", "replay", "--json"])
            .arg(f)
            .env("QEMU", &info.bin)
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; stderr: {}",
                f.display(),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        println!(
            "{}: recorded {}, now {} (QEMU {})",
            f.file_name().unwrap().to_string_lossy(),
            v["recorded"],
            v["now"],
            info.short_version()
        );
        assert_eq!(
            v["same_input"],
            true,
            "{}: the rebuilt input is not the recorded one: migsim's base files changed; \
             re-record with `migsim qemu fuzz --seeds N..N+1 --out DIR` (seed in the file)",
            f.display()
        );
        if info.is_10_0() {
            assert_eq!(v["reproduced"], true, "{}: {v}", f.display());
            assert_eq!(out.status.code(), Some(1), "{}", f.display());
        }
    }
}
