//! The installed QEMU and a test's QEMU process, shared by the interop
//! modules: [`QemuInfo`] (version, the `pc` and `q35` machine aliases, the
//! accelerators), [`Qemu`] (the harness's driver with panics for a test:
//! QMP and HMP, capabilities, `pmemsave`, `info ramblock`, the
//! guest-physical FlatView of `info mtree -f`, waiting for a migration)
//! and [`qemu_load`] (a paused destination loading a file with
//! `migrate-incoming`). Also the test that the installed QEMU is one the
//! tier can use.
//!
//! `QEMU` names another binary; `MIGSIM_QEMU_ACCEL` (default: kvm when
//! /dev/kvm opens, else tcg) and `MIGSIM_QEMU_LIVE_ACCEL` (default tcg, see
//! [`live_accel`]) pick the accelerator.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use migsim_format::writer::RamBlockDesc;
use migsim_harness::qemu::{QemuBinary, QemuProcess};

// ---------------------------------------------------------------------------
// Finding QEMU
// ---------------------------------------------------------------------------

/// The installed QEMU.
#[derive(Debug)]
pub struct QemuInfo {
    pub qemu: QemuBinary,
    pub bin: String,
    pub version_line: String,
    pub version: (u32, u32, u32),
    /// Accelerator for guests that never run code (`-S`).
    pub accel: String,
    /// `pc` -> `pc-i440fx-10.0`, `q35` -> `pc-q35-10.0`, from `-M help`.
    machines: BTreeMap<String, String>,
}

impl QemuInfo {
    /// The versioned machine type `alias` stands for.
    pub fn machine(&self, alias: &str) -> &str {
        self.machines
            .get(alias)
            .unwrap_or_else(|| panic!("`{} -M help` names no alias {alias:?}", self.bin))
    }

    /// `10.0.2`.
    pub fn short_version(&self) -> String {
        let (a, b, c) = self.version;
        format!("{a}.{b}.{c}")
    }

    /// QEMU 10.0.x, the version the load-side behaviours were recorded on.
    pub fn is_10_0(&self) -> bool {
        (self.version.0, self.version.1) == (10, 0)
    }
}

fn detect(q: &QemuBinary) -> Result<QemuInfo, String> {
    let bin = q.path.display().to_string();
    let version_line = q.version_line.clone();
    let version = q.version_tuple();
    let help = Command::new(&bin)
        .args(["-M", "help"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{bin} -M help: {e}"))?;
    let mut machines = BTreeMap::new();
    for line in String::from_utf8_lossy(&help.stdout).lines() {
        if let (Some(alias), Some((_, rest))) = (
            line.split_whitespace().next(),
            line.split_once("(alias of "),
        ) {
            machines.insert(alias.to_string(), rest.trim_end_matches(')').to_string());
        }
    }
    let accel = crate::support::stopped_guest_accel();
    Ok(QemuInfo {
        qemu: q.clone(),
        bin,
        version_line,
        version,
        accel,
        machines,
    })
}

/// The installed QEMU, or `None` when the tier is skipped (see
/// `tests/qemu/support.rs`).
pub fn qemu() -> Option<&'static QemuInfo> {
    static INFO: OnceLock<QemuInfo> = OnceLock::new();
    let q = crate::support::qemu_or_skip()?;
    Some(INFO.get_or_init(|| detect(q).unwrap_or_else(|e| panic!("qemu interop tier: {e}"))))
}

/// Accelerator for the live guest: TCG unless `MIGSIM_QEMU_LIVE_ACCEL`
/// says otherwise. The guest's loop must outrun a 1 MiB/s migration on
/// every host. Under some KVM implementations (the machine this tier was
/// written on has the `kvm_pvm` module) 16/32-bit guest code is emulated
/// at about 7 loop iterations per second and SeaBIOS takes 2.5-6 s to
/// boot, so the migration may converge on its own; TCG boots in 0.2 s and
/// runs about 2,000 iterations per second. The file format does not depend
/// on the accelerator.
pub fn live_accel() -> String {
    std::env::var("MIGSIM_QEMU_LIVE_ACCEL").unwrap_or_else(|_| "tcg".into())
}

// ---------------------------------------------------------------------------
// The QEMU process (the harness's driver, with panics for a test)
// ---------------------------------------------------------------------------

/// A QEMU process in a test's scratch directory, killed on drop.
pub struct Qemu {
    proc: QemuProcess,
    dir: PathBuf,
    name: String,
    dumps: u32,
}

impl Qemu {
    /// Start `qemu -M machine -m mib -nodefaults -display none -accel accel
    /// EXTRA... -qmp unix:SOCK` and connect to its monitor.
    pub fn start(
        info: &QemuInfo,
        dir: &Path,
        name: &str,
        machine: &str,
        mib: u64,
        accel: &str,
        extra: &[&str],
    ) -> Qemu {
        let m = mib.to_string();
        let mut args = vec!["-M", machine, "-m", &m];
        args.extend(["-nodefaults", "-display", "none", "-accel", accel]);
        args.extend(extra);
        let log = dir.join(format!("{name}.log"));
        let proc =
            QemuProcess::start(&info.qemu, name, &args, &log).unwrap_or_else(|e| panic!("{e}"));
        Qemu {
            proc,
            dir: dir.to_path_buf(),
            name: name.to_string(),
            dumps: 0,
        }
    }

    pub fn stderr(&self) -> String {
        self.proc.stderr()
    }

    fn try_cmd(&mut self, name: &str, args: Value) -> Result<Value, String> {
        self.proc.cmd(name, args)
    }

    pub fn cmd(&mut self, name: &str, args: Value) -> Value {
        match self.proc.cmd(name, args) {
            Ok(v) => v,
            Err(e) => panic!("{}: {e}\nQEMU stderr:\n{}", self.name, self.stderr()),
        }
    }

    fn hmp(&mut self, line: &str) -> String {
        self.proc
            .hmp(line)
            .unwrap_or_else(|e| panic!("{}: {e}\nQEMU stderr:\n{}", self.name, self.stderr()))
    }

    pub fn set_caps(&mut self, caps: &[&str]) {
        if !caps.is_empty() {
            let list: Vec<Value> = caps
                .iter()
                .map(|c| json!({ "capability": c, "state": true }))
                .collect();
            self.cmd("migrate-set-capabilities", json!({ "capabilities": list }));
        }
    }

    pub fn status(&mut self) -> String {
        self.cmd("query-status", Value::Null)["status"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Guest-physical memory `[addr, addr + size)` as QEMU's `pmemsave`
    /// writes it.
    pub fn pmemsave(&mut self, addr: u64, size: u64) -> Vec<u8> {
        self.dumps += 1;
        let path = self.dir.join(format!("{}.dump{}", self.name, self.dumps));
        self.proc
            .pmemsave(addr, size, &path)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The RAMBlocks as QEMU's `info ramblock` lists them (used lengths).
    pub fn ramblocks(&mut self) -> Vec<RamBlockDesc> {
        let text = self.hmp("info ramblock");
        let blocks: Vec<_> = text
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                if f.len() < 6 || f[0] == "Block" {
                    return None;
                }
                let used = u64::from_str_radix(f[4].trim_start_matches("0x"), 16).ok()?;
                Some(RamBlockDesc {
                    name: f[0].to_string(),
                    used_length: used,
                    shared: false,
                })
            })
            .collect();
        assert!(!blocks.is_empty(), "cannot parse `info ramblock`:\n{text}");
        blocks
    }

    /// Where guest-physical memory maps RAM-backed regions (`info mtree -f`,
    /// the FlatView of address space "memory").
    pub fn flatview(&mut self) -> Vec<Mapping> {
        let text = self.hmp("info mtree -f");
        let maps = parse_flatview(&text);
        assert!(
            maps.iter().any(|m| m.region == "pc.ram"),
            "no pc.ram in `info mtree -f`:\n{text}"
        );
        maps
    }

    /// Poll `query-migrate` until completed or failed, calling `each` on
    /// every answer; returns the last answer (`exited` when QEMU < 9.1,
    /// which has no exit-on-error, exited on a failed load).
    pub fn wait_migration(
        &mut self,
        timeout: Duration,
        mut each: impl FnMut(&mut Qemu, &Value),
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let st = match self.try_cmd("query-migrate", Value::Null) {
                Ok(st) => st,
                Err(e) => json!({ "status": "exited", "error-desc": e }),
            };
            if let Some("completed" | "failed" | "cancelled" | "exited") = st["status"].as_str() {
                return st;
            }
            each(self, &st);
            if Instant::now() > deadline {
                panic!(
                    "{}: migration still {} after {timeout:?}: {st}\n{}",
                    self.name,
                    st["status"],
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// One range of the guest-physical FlatView.
#[derive(Debug, Clone)]
pub struct Mapping {
    pub start: u64,
    /// Exclusive.
    pub end: u64,
    pub region: String,
    /// Offset inside the region.
    pub offset: u64,
}

fn parse_flatview(text: &str) -> Vec<Mapping> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with("FlatView") {
            inside = false;
        } else if line.trim() == "AS \"memory\", root: system" {
            inside = true;
        } else if inside && let Some(m) = parse_flat_entry(line) {
            out.push(m);
        }
    }
    out
}

/// `  00000000000e0000-00000000000fffff (prio 0, rom): pc.bios @0000000000020000 KVM`
fn parse_flat_entry(line: &str) -> Option<Mapping> {
    let (range, rest) = line.trim().split_once(" (")?;
    let (a, b) = range.split_once('-')?;
    let start = u64::from_str_radix(a, 16).ok()?;
    let last = u64::from_str_radix(b, 16).ok()?;
    let (_, tail) = rest.split_once("): ")?;
    let mut toks = tail.split_whitespace();
    let region = toks.next()?.to_string();
    let offset = match toks.next() {
        Some(t) if t.starts_with('@') => u64::from_str_radix(&t[1..], 16).ok()?,
        _ => 0,
    };
    Some(Mapping {
        start,
        end: last + 1,
        region,
        offset,
    })
}

/// Start a paused destination, set its capabilities and load `file` with
/// `migrate-incoming`. Returns QEMU, its blocks before the load and the
/// final `query-migrate`.
#[allow(clippy::too_many_arguments)]
pub fn qemu_load(
    info: &QemuInfo,
    dir: &Path,
    name: &str,
    machine: &str,
    mib: u64,
    file: &Path,
    caps: &[&str],
    extra: &[&str],
) -> (Qemu, Vec<RamBlockDesc>, Value) {
    let mut args = vec!["-S", "-incoming", "defer"];
    args.extend_from_slice(extra);
    let mut q = Qemu::start(info, dir, name, machine, mib, &info.accel, &args);
    let blocks = q.ramblocks();
    q.set_caps(caps);
    if caps.contains(&"multifd") {
        q.cmd("migrate-set-parameters", json!({ "multifd-channels": 2 }));
    }
    let mut args = json!({ "uri": format!("file:{}", file.display()) });
    if info.version >= (9, 1, 0) {
        args["exit-on-error"] = json!(false);
    }
    q.cmd("migrate-incoming", args);
    let st = q.wait_migration(Duration::from_secs(60), |_, _| {});
    (q, blocks, st)
}

#[test]
fn qemu_is_at_least_9_0_with_pc_and_q35() {
    let Some(info) = qemu() else { return };
    println!(
        "{}: {} (accel {}, live guest accel {}), pc = {}, q35 = {}",
        info.bin,
        info.version_line,
        info.accel,
        live_accel(),
        info.machine("pc"),
        info.machine("q35")
    );
    assert!(info.version >= (9, 0, 0));
}
