//! Real QEMU as the yardstick: how long QEMU itself takes to save a paused
//! guest to a mapped-ram file and to restore it, for `migsim bench`.
//!
//! The guest is `-M pc -nodefaults -display none -S` with its RAM backed by
//! a prepared file of non-zero, never-repeating 8-byte words (so QEMU, which
//! skips zero pages in mapped-ram, really writes every page). The source
//! preallocates that memory (`prealloc=on` with `share=off` copies the file
//! into private anonymous memory), so dropping the page cache before a save
//! does not make the save read guest RAM from disk. The destination gets
//! fresh anonymous memory of the same RAMBlock name, as a real restore does.
//!
//! QEMU is driven over QMP with the harness's driver
//! ([`migsim_harness::qemu`]): capabilities
//! `mapped-ram` (+ `multifd`), parameters `max-bandwidth` (raised from
//! QEMU's 128 MiB/s default), `multifd-channels`, `direct-io`; then
//! `migrate` / `migrate-incoming` with a `file:` URI, polling
//! `query-migrate` until `completed`. Times are wall-clock from the command
//! to the first `completed` answer. Before every save and restore the page
//! cache is dropped (`sync; echo 3 > /proc/sys/vm/drop_caches`) when
//! allowed. QEMU processes are killed, and sockets, logs and files removed,
//! on every path out (drop guards).

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use migsim_harness::qemu::{QemuBinary, QemuProcess, qemu_opt_escape};
use serde_json::{Value, json};

const MIB: u64 = 1 << 20;
const GIB: f64 = (1u64 << 30) as f64;

/// How long one save or restore may take.
const MIGRATION_TIMEOUT: Duration = Duration::from_secs(300);
/// Interval between two `query-migrate` polls.
const POLL: Duration = Duration::from_millis(5);
/// QEMU's `max-bandwidth` for the measurements: 1 TiB/s, i.e. no cap.
const MAX_BANDWIDTH: u64 = 1 << 40;
/// Guest-physical address (and offset in the RAM block) of the range
/// compared with the prepared contents on both sides.
const CHECK_ADDR: u64 = MIB;
const CHECK_LEN: u64 = 64 << 10;

/// One QEMU measurement configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QemuCase {
    /// `None`: plain mapped-ram (one channel); `Some(n)`: mapped-ram with
    /// the `multifd` capability and `n` channels.
    pub multifd_channels: Option<u32>,
    /// QEMU's `direct-io` parameter (O_DIRECT on the multifd channels).
    /// QEMU 10 silently ignores it without multifd, so [`measure`] refuses
    /// that combination.
    pub direct_io: bool,
}

impl QemuCase {
    /// `mapped-ram`, `mapped-ram+4 multifd`, `mapped-ram+4 multifd+direct-io`.
    pub fn name(&self) -> String {
        let mut s = String::from("mapped-ram");
        if let Some(n) = self.multifd_channels {
            s.push_str(&format!("+{n} multifd"));
        }
        if self.direct_io {
            s.push_str("+direct-io");
        }
        s
    }
}

/// Medians (and all samples) of QEMU's save and restore of a paused guest.
#[derive(serde::Serialize, Clone, Debug)]
pub struct QemuFigures {
    /// [`QemuCase::name`].
    pub case: String,
    /// Guest RAM (the `pc.ram` block; all of it non-zero).
    pub ram_bytes: u64,
    /// Bytes the migration file occupies on disk (allocated blocks, not
    /// its apparent size, which QEMU's sparse layout makes about the RAM
    /// size whatever the contents): about `ram_bytes` when every page was
    /// written.
    pub file_bytes: u64,
    /// Every save, seconds.
    pub save_seconds: Vec<f64>,
    /// Every restore, seconds.
    pub restore_seconds: Vec<f64>,
    /// Median save, seconds.
    pub save_median_s: f64,
    /// Median restore, seconds.
    pub restore_median_s: f64,
    /// `ram_bytes` (in GiB) over the median.
    pub save_gib_s: f64,
    /// `ram_bytes` (in GiB) over the median restore.
    pub restore_gib_s: f64,
}

/// Save a paused guest with `ram_bytes` of non-zero RAM to a mapped-ram
/// file in `dir` (`dir/qemu-bench.mig`) and restore it, `reps` times each;
/// returns the figures.
///
/// `paired`, when given, is a measurement of the caller's (migsim's own
/// restore) run once beside each QEMU restore: before it in odd
/// repetitions, after it in even ones, so both see the same state of the
/// machine (page cache, how much free memory the host took back). It
/// returns seconds, shown in the progress line.
///
/// Every save starts a fresh source (QEMU 10 does not migrate a guest a
/// second time) and every restore a fresh destination (`-incoming defer`);
/// QEMU's start-up is not timed, and each QEMU is gone before the next
/// starts. Temporary files in `dir`: `qemu-bench-ram.img` (the prepared
/// RAM contents), `qemu-bench.mig`, QEMU logs and `pmemsave` dumps; all
/// removed before returning. QMP sockets go to the temporary directory.
pub fn measure(
    q: &QemuBinary,
    ram_bytes: u64,
    dir: &Path,
    case: &QemuCase,
    reps: usize,
    mut paired: Option<&mut dyn FnMut() -> Result<f64, String>>,
    progress: &mut dyn FnMut(&str),
) -> Result<QemuFigures, String> {
    let name = case.name();
    if ram_bytes == 0 || !ram_bytes.is_multiple_of(MIB) {
        return Err(format!(
            "qemu {name}: guest RAM must be a positive whole number of MiB, not {ram_bytes} bytes"
        ));
    }
    if ram_bytes < 2 * MIB {
        return Err(format!("qemu {name}: guest RAM must be at least 2 MiB"));
    }
    if reps == 0 {
        return Err(format!("qemu {name}: reps must be at least 1"));
    }
    if case.multifd_channels == Some(0) {
        return Err(format!("qemu {name}: multifd needs at least one channel"));
    }
    if case.direct_io && case.multifd_channels.is_none() {
        return Err(format!(
            "qemu {name}: QEMU only applies direct-io with multifd (it silently ignores it otherwise); \
             use multifd_channels: Some(1) for a single O_DIRECT channel"
        ));
    }
    let dir = std::path::absolute(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let dir_str = dir
        .to_str()
        .ok_or_else(|| format!("qemu {name}: {} is not UTF-8", dir.display()))?;
    if dir_str.contains(',') {
        return Err(format!(
            "qemu {name}: {dir_str} contains a comma, which QEMU's file: URI cannot take"
        ));
    }
    if case.direct_io && !supports_o_direct(&dir) {
        return Err(format!(
            "qemu {name}: the filesystem of {dir_str} refuses O_DIRECT (tmpfs?); pick another directory"
        ));
    }

    let mig = dir.join("qemu-bench.mig");
    let img = dir.join("qemu-bench-ram.img");
    let _cleanup = RemoveOnDrop(vec![mig.clone(), img.clone()]);
    write_ram_image(&img, ram_bytes).map_err(|e| format!("qemu {name}: {}: {e}", img.display()))?;
    let mut expected = vec![0u8; CHECK_LEN as usize];
    fill(CHECK_ADDR, &mut expected);

    let mib = ram_bytes / MIB;
    let uri = format!("file:{}", mig.display());
    let mut caches = CacheDropper::default();

    // Saves, each from a fresh source: QEMU 10 refuses to migrate a guest
    // again once a migration completed ("Can't migrate the vm that was
    // paused due to previous migration"), and `cont` would run its BIOS.
    let backend = format!(
        "memory-backend-file,id=ram0,size={mib}M,mem-path={},share=off,prealloc=on",
        qemu_opt_escape(&img.display().to_string())
    );
    let mut save_seconds = Vec::with_capacity(reps);
    for i in 1..=reps {
        let mut src = start_guest(q, &dir, "source", &name, mib, &["-object", &backend])?;
        check_memory(&mut src, &dir, &expected)?;
        configure(&mut src, case)?;
        match std::fs::remove_file(&mig) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("qemu {name}: {}: {e}", mig.display())),
        }
        caches.drop_caches(progress);
        let t0 = Instant::now();
        src.cmd("migrate", json!({ "uri": uri }))?;
        let st = wait_completed(&mut src, "save")?;
        let secs = t0.elapsed().as_secs_f64();
        save_seconds.push(secs);
        // QEMU's own total-time stops before the migration's cleanup, whose
        // close() of a buffered file may take a second on ext4 (delayed
        // allocation flushed on close); the wall clock is what a management
        // application waits for.
        let qemu_ms = st["total-time"].as_u64().map_or_else(String::new, |ms| {
            format!(" (QEMU total-time {:.2} s)", ms as f64 / 1000.0)
        });
        progress(&format!(
            "qemu {name}: save {i}/{reps} {secs:.2} s{qemu_ms}"
        ));
    }
    let meta = std::fs::metadata(&mig).map_err(|e| format!("{}: {e}", mig.display()))?;
    let file_bytes = meta.blocks() * 512;
    if file_bytes < ram_bytes {
        return Err(format!(
            "qemu {name}: the migration file occupies only {file_bytes} bytes for {ram_bytes} bytes \
             of non-zero guest RAM: QEMU did not write every page"
        ));
    }

    // Restores, each into a fresh destination.
    let mut restore_seconds = Vec::with_capacity(reps);
    let backend = format!("memory-backend-ram,id=ram0,size={mib}M");
    for i in 1..=reps {
        let migsim_first = i % 2 == 1;
        let mut beside = None;
        if migsim_first && let Some(f) = paired.as_mut() {
            beside = Some(f()?);
        }
        caches.drop_caches(progress);
        let mut dst = start_guest(
            q,
            &dir,
            "destination",
            &name,
            mib,
            &["-object", &backend, "-incoming", "defer"],
        )?;
        configure(&mut dst, case)?;
        let mut args = json!({ "uri": uri });
        if (q.major, q.minor) >= (9, 1) {
            // Keep QEMU alive on a failed load, to ask it why.
            args["exit-on-error"] = json!(false);
        }
        let t0 = Instant::now();
        dst.cmd("migrate-incoming", args)?;
        wait_completed(&mut dst, "restore")?;
        let secs = t0.elapsed().as_secs_f64();
        restore_seconds.push(secs);
        check_memory(&mut dst, &dir, &expected)?;
        // Its memory goes back before migsim's restore, as it went back
        // before QEMU's when migsim's came first.
        drop(dst);
        if !migsim_first && let Some(f) = paired.as_mut() {
            beside = Some(f()?);
        }
        let beside = beside.map_or_else(String::new, |m| {
            format!(
                " (migsim {m:.2} s, {} it)",
                if migsim_first { "before" } else { "after" }
            )
        });
        progress(&format!(
            "qemu {name}: restore {i}/{reps} {secs:.2} s{beside}"
        ));
    }

    let save_median_s = median(&save_seconds);
    let restore_median_s = median(&restore_seconds);
    let gib = ram_bytes as f64 / GIB;
    Ok(QemuFigures {
        case: name,
        ram_bytes,
        file_bytes,
        save_seconds,
        restore_seconds,
        save_median_s,
        restore_median_s,
        save_gib_s: gib / save_median_s,
        restore_gib_s: gib / restore_median_s,
    })
}

/// The median of `xs` (mean of the middle two for an even count); 0 when
/// empty.
fn median(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

// ---------------------------------------------------------------------------
// Guest RAM contents
// ---------------------------------------------------------------------------

/// The 8-byte word at byte offset `8 * index` of the guest's RAM: a
/// bijective mix (splitmix64's finaliser) of the index, so no two words are
/// equal (every page is distinct) and at most one word of the RAM is zero
/// (no page is all zero).
fn word(index: u64) -> u64 {
    let mut z = index.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Fill `buf` with the RAM contents starting at byte `offset` (a multiple
/// of 8; `buf.len()` too).
fn fill(offset: u64, buf: &mut [u8]) {
    for (i, chunk) in buf.chunks_exact_mut(8).enumerate() {
        chunk.copy_from_slice(&word(offset / 8 + i as u64).to_le_bytes());
    }
}

/// Write the prepared RAM image of `size` bytes.
fn write_ram_image(path: &Path, size: u64) -> std::io::Result<()> {
    let mut f = File::create(path)?;
    let mut buf = vec![0u8; (4 * MIB).min(size) as usize];
    let mut off = 0;
    while off < size {
        let n = (size - off).min(buf.len() as u64) as usize;
        fill(off, &mut buf[..n]);
        f.write_all(&buf[..n])?;
        off += n as u64;
    }
    Ok(())
}

/// Whether files in `dir` can be opened with O_DIRECT.
fn supports_o_direct(dir: &Path) -> bool {
    let probe = dir.join(format!("qemu-bench-odirect-{}", std::process::id()));
    let ok = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(&probe)
        .is_ok();
    let _ = std::fs::remove_file(&probe);
    ok
}

/// Removes its files when dropped.
struct RemoveOnDrop(Vec<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Drops the page cache, saying once when it cannot.
#[derive(Default)]
struct CacheDropper {
    failed: bool,
}

impl CacheDropper {
    fn drop_caches(&mut self, progress: &mut dyn FnMut(&str)) {
        if self.failed {
            return;
        }
        // SAFETY: sync(2) takes no arguments and cannot fail.
        unsafe { libc::sync() };
        let r = std::fs::OpenOptions::new()
            .write(true)
            .open("/proc/sys/vm/drop_caches")
            .and_then(|mut f| f.write_all(b"3\n"));
        if let Err(e) = r {
            self.failed = true;
            progress(&format!(
                "qemu: cannot drop the page cache ({e}); timing with a warm cache"
            ));
        }
    }
}

// ---------------------------------------------------------------------------
// The QEMU processes of a measurement
// ---------------------------------------------------------------------------

/// Distinguishes the logs and dumps of processes started by this process.
static SEQ: AtomicU32 = AtomicU32::new(0);

/// Start a paused `pc` guest of `mib` MiB whose RAM is the backend `ram0`
/// defined in `extra` (KVM if it opens, else TCG: the guest never runs).
fn start_guest(
    q: &QemuBinary,
    dir: &Path,
    role: &str,
    case: &str,
    mib: u64,
    extra: &[&str],
) -> Result<QemuProcess, String> {
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let log = dir.join(format!(
        "qemu-bench-{role}-{}-{seq}.log",
        std::process::id()
    ));
    let m = format!("{mib}M");
    let mut args = vec!["-M", "pc,memory-backend=ram0", "-m", &m];
    args.extend(["-nodefaults", "-display", "none", "-S"]);
    args.extend(["-accel", "kvm", "-accel", "tcg"]);
    args.extend(extra);
    QemuProcess::start(q, &format!("qemu {case} {role}"), &args, &log)
}

/// Capabilities and parameters for `case`, identical on both sides.
fn configure(p: &mut QemuProcess, case: &QemuCase) -> Result<(), String> {
    let mut caps = vec![json!({ "capability": "mapped-ram", "state": true })];
    if case.multifd_channels.is_some() {
        caps.push(json!({ "capability": "multifd", "state": true }));
    }
    p.cmd("migrate-set-capabilities", json!({ "capabilities": caps }))?;
    let mut params = json!({ "max-bandwidth": MAX_BANDWIDTH });
    if let Some(n) = case.multifd_channels {
        params["multifd-channels"] = json!(n);
    }
    if case.direct_io {
        params["direct-io"] = json!(true);
    }
    p.cmd("migrate-set-parameters", params)?;
    Ok(())
}

/// Poll `query-migrate` until `completed`; `Err` on `failed`,
/// `cancelled`, QEMU's death or after [`MIGRATION_TIMEOUT`]. Returns the
/// last answer.
///
/// QEMU 10.0.2's monitor does not answer while its main loop is busy: on
/// the destination the first `query-migrate` after `migrate-incoming`
/// (which returns at once) comes back only when the whole load is done,
/// saying `active` (the answer has no other key), and the next one says
/// `completed`; on the source, answers stall during the `device` phase
/// and while the cleanup closes the file.
fn wait_completed(p: &mut QemuProcess, op: &str) -> Result<Value, String> {
    let st = p.wait_migration(MIGRATION_TIMEOUT, POLL, |_, _| {})?;
    match st["status"].as_str() {
        Some("completed") => Ok(st),
        s => {
            let desc = st["error-desc"].as_str().unwrap_or("no error-desc");
            Err(format!(
                "{}: {op} {}: {desc}{}",
                p.what(),
                s.unwrap_or("?"),
                p.stderr_tail()
            ))
        }
    }
}

/// Compare guest-physical `[CHECK_ADDR, +len)` (inside `pc.ram`, whose
/// offsets equal guest-physical addresses there) with `expected`.
fn check_memory(p: &mut QemuProcess, dir: &Path, expected: &[u8]) -> Result<(), String> {
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let path = dir.join(format!("qemu-bench-{}-{seq}.pmem", std::process::id()));
    let got = p.pmemsave(CHECK_ADDR, expected.len() as u64, &path)?;
    if got != expected {
        let first = got
            .iter()
            .zip(expected)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(expected.len()));
        return Err(format!(
            "{}: guest memory at {:#x} differs from the prepared contents (first at +{first:#x}, {} bytes read)",
            p.what(),
            CHECK_ADDR,
            got.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The installed QEMU, or `None` after one line; under `CI=true` a
    /// missing QEMU fails instead (the interop tier rule).
    fn qemu_or_skip(test: &str) -> Option<QemuBinary> {
        match migsim_harness::qemu::find() {
            Ok(q) => Some(q),
            Err(why) => {
                if std::env::var("CI").is_ok_and(|v| v == "true") {
                    panic!("{test}: qemu-system-x86_64 >= 9.0 is required under CI=true ({why})");
                }
                // Once, and past the test harness's capture, so a plain
                // `cargo test` shows it.
                static SAID: std::sync::Once = std::sync::Once::new();
                SAID.call_once(|| {
                    let _ = writeln!(
                        std::io::stderr(),
                        "bench::qemu QEMU tests skipped ({test} first): {why}"
                    );
                });
                None
            }
        }
    }

    fn check(f: &QemuFigures, ram: u64, case: &str, reps: usize) {
        assert_eq!(f.case, case);
        assert_eq!(f.ram_bytes, ram);
        assert!(f.file_bytes >= ram, "{f:?}");
        assert!(
            f.file_bytes < ram + 16 * MIB,
            "file much larger than RAM: {f:?}"
        );
        assert_eq!(f.save_seconds.len(), reps);
        assert_eq!(f.restore_seconds.len(), reps);
        assert!(f.save_median_s > 0.0 && f.restore_median_s > 0.0, "{f:?}");
        assert!(f.save_gib_s > 0.0 && f.restore_gib_s > 0.0, "{f:?}");
    }

    /// Two repetitions: each needs its own QEMU processes.
    #[test]
    fn measure_plain_mapped_ram_64_mib() {
        let Some(q) = qemu_or_skip("bench::qemu::measure_plain_mapped_ram_64_mib") else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let mut lines = Vec::new();
        let case = QemuCase {
            multifd_channels: None,
            direct_io: false,
        };
        // The caller's measurement beside each restore: first before
        // QEMU's, then after it.
        let mut paired_calls = 0;
        let mut paired = || {
            paired_calls += 1;
            Ok(0.25)
        };
        let f = measure(
            &q,
            64 * MIB,
            dir.path(),
            &case,
            2,
            Some(&mut paired),
            &mut |l| lines.push(l.to_string()),
        )
        .unwrap();
        check(&f, 64 * MIB, "mapped-ram", 2);
        assert_eq!(paired_calls, 2);
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("qemu mapped-ram: save 2/2 "))
        );
        let restores: Vec<_> = lines
            .iter()
            .filter(|l| l.starts_with("qemu mapped-ram: restore "))
            .collect();
        assert_eq!(restores.len(), 2, "{lines:?}");
        assert!(restores[0].starts_with("qemu mapped-ram: restore 1/2 "));
        assert!(
            restores[0].ends_with(" s (migsim 0.25 s, before it)"),
            "{restores:?}"
        );
        assert!(restores[1].starts_with("qemu mapped-ram: restore 2/2 "));
        assert!(
            restores[1].ends_with(" s (migsim 0.25 s, after it)"),
            "{restores:?}"
        );
        // A failure of the caller's measurement stops the measurement
        // with its message.
        let mut failing = || Err("migsim's restore failed".to_string());
        let e = measure(
            &q,
            64 * MIB,
            dir.path(),
            &case,
            1,
            Some(&mut failing),
            &mut |_| {},
        )
        .unwrap_err();
        assert!(e.contains("migsim's restore failed"), "{e}");
        // Nothing left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn measure_multifd_64_mib() {
        let Some(q) = qemu_or_skip("bench::qemu::measure_multifd_64_mib") else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let direct_io = supports_o_direct(dir.path());
        if !direct_io {
            let _ = writeln!(
                std::io::stderr(),
                "bench::qemu::measure_multifd_64_mib: no O_DIRECT in {:?}, measuring without direct-io",
                dir.path()
            );
        }
        let case = QemuCase {
            multifd_channels: Some(4),
            direct_io,
        };
        let f = measure(&q, 64 * MIB, dir.path(), &case, 1, None, &mut |_| {}).unwrap();
        check(&f, 64 * MIB, &case.name(), 1);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn bad_arguments_are_refused_before_qemu_starts() {
        let q = QemuBinary {
            path: PathBuf::from("/nonexistent/qemu"),
            version: "10.0.2".into(),
            version_line: "QEMU emulator version 10.0.2".into(),
            major: 10,
            minor: 0,
            patch: 2,
        };
        let dir = tempfile::tempdir().unwrap();
        let plain = QemuCase {
            multifd_channels: None,
            direct_io: false,
        };
        let e = measure(
            &q,
            64 * MIB + 4096,
            dir.path(),
            &plain,
            1,
            None,
            &mut |_| {},
        )
        .unwrap_err();
        assert!(e.contains("whole number of MiB"), "{e}");
        let e = measure(&q, 64 * MIB, dir.path(), &plain, 0, None, &mut |_| {}).unwrap_err();
        assert!(e.contains("reps"), "{e}");
        let dio = QemuCase {
            multifd_channels: None,
            direct_io: true,
        };
        let e = measure(&q, 64 * MIB, dir.path(), &dio, 1, None, &mut |_| {}).unwrap_err();
        assert!(e.contains("direct-io"), "{e}");
        // A QEMU that cannot start is an error, and leaves nothing behind.
        let e = measure(&q, 4 * MIB, dir.path(), &plain, 1, None, &mut |_| {}).unwrap_err();
        assert!(e.contains("/nonexistent/qemu"), "{e}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn case_names_and_median() {
        let c = |m, d| QemuCase {
            multifd_channels: m,
            direct_io: d,
        };
        assert_eq!(c(None, false).name(), "mapped-ram");
        assert_eq!(c(Some(4), false).name(), "mapped-ram+4 multifd");
        assert_eq!(c(Some(4), true).name(), "mapped-ram+4 multifd+direct-io");
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn ram_contents_are_distinct_non_zero_pages() {
        let mut a = vec![0u8; 8192];
        fill(0, &mut a);
        let mut b = vec![0u8; 4096];
        fill(4096, &mut b);
        assert_eq!(&a[4096..], &b[..]);
        assert_ne!(&a[..4096], &a[4096..]);
        let words: std::collections::HashSet<u64> = (0..1u64 << 16).map(word).collect();
        assert_eq!(words.len(), 1 << 16);
        assert!(a.chunks(4096).all(|p| p.iter().any(|&x| x != 0)));
    }
}
