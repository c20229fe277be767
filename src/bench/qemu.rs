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
//! QEMU is driven over QMP (JSON lines on a unix socket): capabilities
//! `mapped-ram` (+ `multifd`), parameters `max-bandwidth` (raised from
//! QEMU's 128 MiB/s default), `multifd-channels`, `direct-io`; then
//! `migrate` / `migrate-incoming` with a `file:` URI, polling
//! `query-migrate` until `completed`. Times are wall-clock from the command
//! to the first `completed` answer. Before every save and restore the page
//! cache is dropped (`sync; echo 3 > /proc/sys/vm/drop_caches`) when
//! allowed. QEMU processes are killed, and sockets, logs and files removed,
//! on every path out (drop guards).

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const MIB: u64 = 1 << 20;
const GIB: f64 = (1u64 << 30) as f64;

/// How long one save or restore may take.
const MIGRATION_TIMEOUT: Duration = Duration::from_secs(300);
/// How long QEMU may take to open its monitor.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Interval between two `query-migrate` polls.
const POLL: Duration = Duration::from_millis(5);
/// QEMU's `max-bandwidth` for the measurements: 1 TiB/s, i.e. no cap.
const MAX_BANDWIDTH: u64 = 1 << 40;
/// Guest-physical address (and offset in the RAM block) of the range
/// compared with the prepared contents on both sides.
const CHECK_ADDR: u64 = MIB;
const CHECK_LEN: u64 = 64 << 10;

/// QEMU found on PATH (or `$MIGSIM_QEMU`, or `$QEMU`), with its version.
#[derive(Clone, Debug)]
pub struct Qemu {
    /// The binary.
    pub path: PathBuf,
    /// E.g. `10.0.2`.
    pub version: String,
    /// The first line of `--version`.
    pub version_line: String,
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// 0 when the version has only two numbers.
    pub patch: u32,
}

impl Qemu {
    /// `(major, minor, patch)`.
    pub fn version_tuple(&self) -> (u32, u32, u32) {
        (self.major, self.minor, self.patch)
    }
}

/// Find `qemu-system-x86_64` >= 9.0 (mapped-ram); `$MIGSIM_QEMU` (or
/// `$QEMU`, as the test tiers use) names another binary. `Err(reason)`
/// when missing or too old.
pub fn find() -> Result<Qemu, String> {
    let named = std::env::var_os("MIGSIM_QEMU")
        .filter(|v| !v.is_empty())
        .or_else(|| std::env::var_os("QEMU").filter(|v| !v.is_empty()));
    let path = match named {
        Some(p) => {
            let p = PathBuf::from(p);
            if p.components().count() > 1 {
                p
            } else {
                which(&p)
                    .ok_or_else(|| format!("MIGSIM_QEMU={}: not found on PATH", p.display()))?
            }
        }
        None => which(Path::new("qemu-system-x86_64"))
            .ok_or_else(|| "qemu-system-x86_64 not found on PATH".to_string())?,
    };
    let out = Command::new(&path)
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().next().unwrap_or("").trim();
    let version = line
        .split("version ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or("")
        .to_string();
    let mut nums = version.split('.').map(|n| n.parse::<u32>());
    let (Some(Ok(major)), Some(Ok(minor))) = (nums.next(), nums.next()) else {
        return Err(format!(
            "{} --version said {line:?}: no version",
            path.display()
        ));
    };
    if major < 9 {
        return Err(format!(
            "{} is QEMU {version}: mapped-ram needs 9.0 or later",
            path.display()
        ));
    }
    let patch = nums.next().and_then(Result::ok).unwrap_or(0);
    Ok(Qemu {
        path,
        version_line: line.to_string(),
        version,
        major,
        minor,
        patch,
    })
}

/// `name` in one of the `$PATH` directories, executable.
fn which(name: &Path) -> Option<PathBuf> {
    let dirs = std::env::var_os("PATH")?;
    std::env::split_paths(&dirs)
        .map(|d| d.join(name))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

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
/// Every save starts a fresh source (QEMU 10 does not migrate a guest a
/// second time) and every restore a fresh destination (`-incoming defer`);
/// QEMU's start-up is not timed, and each QEMU is gone before the next
/// starts. Temporary files in `dir`: `qemu-bench-ram.img` (the prepared
/// RAM contents), `qemu-bench.mig`, QEMU logs and `pmemsave` dumps; all
/// removed before returning. QMP sockets go to the temporary directory.
pub fn measure(
    q: &Qemu,
    ram_bytes: u64,
    dir: &Path,
    case: &QemuCase,
    reps: usize,
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
        let mut src = Proc::start(q, &dir, "source", &name, mib, &["-object", &backend])?;
        src.check_memory(&dir, &expected)?;
        src.configure(case)?;
        match std::fs::remove_file(&mig) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("qemu {name}: {}: {e}", mig.display())),
        }
        caches.drop_caches(progress);
        let t0 = Instant::now();
        src.cmd("migrate", json!({ "uri": uri }))?;
        let st = src.wait_completed("save")?;
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
        caches.drop_caches(progress);
        let mut dst = Proc::start(
            q,
            &dir,
            "destination",
            &name,
            mib,
            &["-object", &backend, "-incoming", "defer"],
        )?;
        dst.configure(case)?;
        let mut args = json!({ "uri": uri });
        if (q.major, q.minor) >= (9, 1) {
            // Keep QEMU alive on a failed load, to ask it why.
            args["exit-on-error"] = json!(false);
        }
        let t0 = Instant::now();
        dst.cmd("migrate-incoming", args)?;
        dst.wait_completed("restore")?;
        let secs = t0.elapsed().as_secs_f64();
        restore_seconds.push(secs);
        dst.check_memory(&dir, &expected)?;
        progress(&format!("qemu {name}: restore {i}/{reps} {secs:.2} s"));
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

/// QEMU option values double a comma to mean a literal one.
fn qemu_opt_escape(s: &str) -> String {
    s.replace(',', ",,")
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
// QMP and the QEMU process
// ---------------------------------------------------------------------------

/// A QMP connection: JSON lines on a unix socket.
struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    fn connect(path: &Path) -> Result<Self, String> {
        let s = UnixStream::connect(path).map_err(|e| e.to_string())?;
        // A load may keep QEMU's main loop (and so its monitor) busy until
        // it is done.
        s.set_read_timeout(Some(MIGRATION_TIMEOUT + Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        let mut q = Self {
            reader: BufReader::new(s.try_clone().map_err(|e| e.to_string())?),
            writer: s,
        };
        q.read()?; // greeting
        q.execute("qmp_capabilities", Value::Null)?;
        Ok(q)
    }

    fn read(&mut self) -> Result<Value, String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => Err("QMP connection closed".into()),
            Ok(_) => serde_json::from_str(&line).map_err(|e| format!("bad QMP line {line:?}: {e}")),
            Err(e) => Err(format!("QMP read: {e}")),
        }
    }

    /// Run a command; `Err` holds QEMU's error description.
    fn execute(&mut self, name: &str, args: Value) -> Result<Value, String> {
        let mut msg = json!({ "execute": name });
        if !args.is_null() {
            msg["arguments"] = args;
        }
        writeln!(self.writer, "{msg}").map_err(|e| format!("QMP {name}: {e}"))?;
        loop {
            let r = self.read().map_err(|e| format!("QMP {name}: {e}"))?;
            if r.get("event").is_some() {
                continue;
            }
            if let Some(e) = r.get("error") {
                let desc = e["desc"].as_str().unwrap_or("(no description)");
                return Err(format!("QMP {name}: {desc}"));
            }
            return Ok(r.get("return").cloned().unwrap_or(Value::Null));
        }
    }
}

/// Distinguishes the sockets of processes started by this process.
static SEQ: AtomicU32 = AtomicU32::new(0);

/// A QEMU process, killed (and its socket and log removed) on drop.
struct Proc {
    child: Child,
    qmp: Option<Qmp>,
    sock: PathBuf,
    log: PathBuf,
    /// `qemu mapped-ram source`, for messages.
    what: String,
}

impl Proc {
    /// Start a paused `pc` guest of `mib` MiB whose RAM is the backend
    /// `ram0` defined in `extra`, and connect to its monitor.
    fn start(
        q: &Qemu,
        dir: &Path,
        role: &str,
        case: &str,
        mib: u64,
        extra: &[&str],
    ) -> Result<Proc, String> {
        let what = format!("qemu {case} {role}");
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        // Unix socket paths are limited to ~107 bytes; `dir` may be long.
        let sock = std::env::temp_dir().join(format!("migsim-qemu-{pid}-{seq}.qmp"));
        let log = dir.join(format!("qemu-bench-{role}-{pid}-{seq}.log"));
        let _ = std::fs::remove_file(&sock);
        let stderr = File::create(&log).map_err(|e| format!("{what}: {}: {e}", log.display()))?;
        let mut cmd = Command::new(&q.path);
        cmd.args(["-M", "pc,memory-backend=ram0", "-m"])
            .arg(format!("{mib}M"))
            .args(["-nodefaults", "-display", "none", "-S"])
            // KVM if it opens, else TCG: the guest never runs.
            .args(["-accel", "kvm", "-accel", "tcg"])
            .arg("-qmp")
            .arg(format!(
                "unix:{},server=on,wait=off",
                qemu_opt_escape(&sock.display().to_string())
            ))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        let child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => {
                let _ = std::fs::remove_file(&log);
                return Err(format!("{what}: {}: {e}", q.path.display()));
            }
        };
        let mut p = Proc {
            child,
            qmp: None,
            sock,
            log,
            what,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = p.exited() {
                return Err(p.died(status, "before its monitor answered"));
            }
            if p.sock.exists()
                && let Ok(qmp) = Qmp::connect(&p.sock)
            {
                p.qmp = Some(qmp);
                return Ok(p);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{}: no QMP monitor after {START_TIMEOUT:?}{}",
                    p.what,
                    p.stderr_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The exit status, if QEMU has exited.
    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    fn died(&self, status: ExitStatus, when: &str) -> String {
        format!(
            "{}: QEMU exited ({status}) {when}{}",
            self.what,
            self.stderr_tail()
        )
    }

    /// `"; QEMU stderr: ..."` with the last lines of QEMU's stderr, or "".
    fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        if lines.is_empty() {
            return String::new();
        }
        let tail = lines[lines.len().saturating_sub(12)..].join("\n  ");
        format!("; QEMU stderr:\n  {tail}")
    }

    /// Run a QMP command; on failure, say why, with QEMU's stderr.
    fn cmd(&mut self, name: &str, args: Value) -> Result<Value, String> {
        let r = match self.qmp.as_mut() {
            Some(qmp) => qmp.execute(name, args),
            None => Err("no QMP connection".into()),
        };
        r.map_err(|e| {
            // A closed connection usually means QEMU died: give it a moment
            // to be reaped, then report its status.
            let deadline = Instant::now() + Duration::from_millis(500);
            loop {
                if let Some(status) = self.exited() {
                    return self.died(status, &format!("({e})"));
                }
                if Instant::now() > deadline {
                    return format!("{}: {e}{}", self.what, self.stderr_tail());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    }

    /// Capabilities and parameters for `case`, identical on both sides.
    fn configure(&mut self, case: &QemuCase) -> Result<(), String> {
        let mut caps = vec![json!({ "capability": "mapped-ram", "state": true })];
        if case.multifd_channels.is_some() {
            caps.push(json!({ "capability": "multifd", "state": true }));
        }
        self.cmd("migrate-set-capabilities", json!({ "capabilities": caps }))?;
        let mut params = json!({ "max-bandwidth": MAX_BANDWIDTH });
        if let Some(n) = case.multifd_channels {
            params["multifd-channels"] = json!(n);
        }
        if case.direct_io {
            params["direct-io"] = json!(true);
        }
        self.cmd("migrate-set-parameters", params)?;
        Ok(())
    }

    /// Poll `query-migrate` until `completed`; `Err` on `failed`,
    /// `cancelled`, QEMU's death or after [`MIGRATION_TIMEOUT`]. Returns
    /// the last answer.
    ///
    /// QEMU 10.0.2's monitor does not answer while its main loop is busy:
    /// on the destination the first `query-migrate` after
    /// `migrate-incoming` (which returns at once) comes back only when the
    /// whole load is done, saying `active` (the answer has no other key),
    /// and the next one says `completed`; on the source, answers stall
    /// during the `device` phase and while the cleanup closes the file.
    fn wait_completed(&mut self, op: &str) -> Result<Value, String> {
        let deadline = Instant::now() + MIGRATION_TIMEOUT;
        loop {
            let st = self.cmd("query-migrate", Value::Null)?;
            match st["status"].as_str() {
                Some("completed") => return Ok(st),
                Some(s @ ("failed" | "cancelled")) => {
                    let desc = st["error-desc"].as_str().unwrap_or("no error-desc");
                    return Err(format!(
                        "{}: {op} {s}: {desc}{}",
                        self.what,
                        self.stderr_tail()
                    ));
                }
                _ => {}
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{}: {op} not completed after {MIGRATION_TIMEOUT:?}: {st}",
                    self.what
                ));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Compare guest-physical `[CHECK_ADDR, +len)` (inside `pc.ram`, whose
    /// offsets equal guest-physical addresses there) with `expected`.
    fn check_memory(&mut self, dir: &Path, expected: &[u8]) -> Result<(), String> {
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("qemu-bench-{}-{seq}.pmem", std::process::id()));
        let _cleanup = RemoveOnDrop(vec![path.clone()]);
        let path_str = path
            .to_str()
            .ok_or_else(|| format!("{}: {} is not UTF-8", self.what, path.display()))?;
        self.cmd(
            "pmemsave",
            json!({ "val": CHECK_ADDR, "size": expected.len(), "filename": path_str }),
        )?;
        let got = std::fs::read(&path)
            .map_err(|e| format!("{}: pmemsave {}: {e}", self.what, path.display()))?;
        if got != expected {
            let first = got
                .iter()
                .zip(expected)
                .position(|(a, b)| a != b)
                .unwrap_or(got.len().min(expected.len()));
            return Err(format!(
                "{}: guest memory at {:#x} differs from the prepared contents (first at +{first:#x}, {} bytes read)",
                self.what,
                CHECK_ADDR,
                got.len()
            ));
        }
        Ok(())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.qmp = None;
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.sock);
        let _ = std::fs::remove_file(&self.log);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The installed QEMU, or `None` after one line; under `CI=true` a
    /// missing QEMU fails instead (the interop tier rule).
    fn qemu_or_skip(test: &str) -> Option<Qemu> {
        match find() {
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
        let f = measure(&q, 64 * MIB, dir.path(), &case, 2, &mut |l| {
            lines.push(l.to_string())
        })
        .unwrap();
        check(&f, 64 * MIB, "mapped-ram", 2);
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("qemu mapped-ram: save 2/2 "))
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("qemu mapped-ram: restore 2/2 "))
        );
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
        let f = measure(&q, 64 * MIB, dir.path(), &case, 1, &mut |_| {}).unwrap();
        check(&f, 64 * MIB, &case.name(), 1);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn bad_arguments_are_refused_before_qemu_starts() {
        let q = Qemu {
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
        let e = measure(&q, 64 * MIB + 4096, dir.path(), &plain, 1, &mut |_| {}).unwrap_err();
        assert!(e.contains("whole number of MiB"), "{e}");
        let e = measure(&q, 64 * MIB, dir.path(), &plain, 0, &mut |_| {}).unwrap_err();
        assert!(e.contains("reps"), "{e}");
        let dio = QemuCase {
            multifd_channels: None,
            direct_io: true,
        };
        let e = measure(&q, 64 * MIB, dir.path(), &dio, 1, &mut |_| {}).unwrap_err();
        assert!(e.contains("direct-io"), "{e}");
        // A QEMU that cannot start is an error, and leaves nothing behind.
        let e = measure(&q, 4 * MIB, dir.path(), &plain, 1, &mut |_| {}).unwrap_err();
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
