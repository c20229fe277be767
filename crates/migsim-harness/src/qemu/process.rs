//! One running QEMU: started with its monitor on a fresh unix socket,
//! driven over QMP, and killed (socket and log removed) when dropped, on
//! every path out.

use std::ffi::OsStr;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::binary::QemuBinary;
use super::qmp::Qmp;

/// How long QEMU may take to open its monitor.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one QMP answer may take by default (a load may keep the
/// monitor busy until it is done).
const REPLY_TIMEOUT: Duration = Duration::from_secs(310);

/// Distinguishes the sockets of processes started by this process.
static SEQ: AtomicU32 = AtomicU32::new(0);

/// QEMU option values double a comma to mean a literal one.
pub fn qemu_opt_escape(s: &str) -> String {
    s.replace(',', ",,")
}

/// A QEMU process with its QMP monitor.
pub struct QemuProcess {
    child: Child,
    qmp: Option<Qmp>,
    sock: PathBuf,
    log: PathBuf,
    /// What it is, for messages (`qemu mapped-ram source`).
    what: String,
}

impl QemuProcess {
    /// Start `bin ARGS... -qmp unix:SOCK,server=on,wait=off` with stdin
    /// and stdout closed and stderr into `log`, and connect to its
    /// monitor. The socket goes to the temporary directory (unix socket
    /// paths are limited to ~107 bytes). `what` names it in messages.
    pub fn start<S: AsRef<OsStr>>(
        bin: &QemuBinary,
        what: &str,
        args: &[S],
        log: &Path,
    ) -> Result<QemuProcess, String> {
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let sock =
            std::env::temp_dir().join(format!("migsim-qemu-{}-{seq}.qmp", std::process::id()));
        let _ = std::fs::remove_file(&sock);
        let stderr = File::create(log).map_err(|e| format!("{what}: {}: {e}", log.display()))?;
        let mut cmd = Command::new(&bin.path);
        cmd.args(args)
            .arg("-qmp")
            .arg(format!(
                "unix:{},server=on,wait=off",
                qemu_opt_escape(&sock.display().to_string())
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        let child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => {
                let _ = std::fs::remove_file(log);
                return Err(format!("{what}: {}: {e}", bin.path.display()));
            }
        };
        let mut p = QemuProcess {
            child,
            qmp: None,
            sock,
            log: log.to_path_buf(),
            what: what.to_string(),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = p.exited() {
                return Err(p.died(status, &format!("before its monitor answered: {cmd:?}")));
            }
            if p.sock.exists()
                && let Ok(qmp) = Qmp::connect(&p.sock, REPLY_TIMEOUT)
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

    /// A fresh destination that has not run: `-M machine -m MIB
    /// -nodefaults -display none -S -accel ACCEL -incoming defer`, stderr
    /// into `log`.
    pub fn start_incoming(
        bin: &QemuBinary,
        what: &str,
        machine: &str,
        mib: u64,
        accel: &str,
        log: &Path,
    ) -> Result<QemuProcess, String> {
        let mib = mib.to_string();
        let args = [
            "-M",
            machine,
            "-m",
            &mib,
            "-nodefaults",
            "-display",
            "none",
            "-S",
            "-accel",
            accel,
            "-incoming",
            "defer",
        ];
        QemuProcess::start(bin, what, &args, log)
    }

    /// Turn on each named migration capability (`mapped-ram`, `multifd`);
    /// none named: no command.
    pub fn enable_caps(&mut self, caps: &[&str]) -> Result<(), String> {
        if caps.is_empty() {
            return Ok(());
        }
        let list: Vec<Value> = caps
            .iter()
            .map(|c| json!({ "capability": c, "state": true }))
            .collect();
        self.cmd("migrate-set-capabilities", json!({ "capabilities": list }))
            .map(|_| ())
    }

    /// What it is, as given to [`QemuProcess::start`].
    pub fn what(&self) -> &str {
        &self.what
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How long a QMP answer may take from now on (a hung load is then
    /// noticed after `timeout`).
    pub fn set_reply_timeout(&self, timeout: Duration) -> Result<(), String> {
        match &self.qmp {
            Some(q) => q.set_reply_timeout(timeout),
            None => Err("no QMP connection".into()),
        }
    }

    /// Resident memory now, from `/proc/PID/status` (`None` once exited).
    pub fn rss_bytes(&self) -> Option<u64> {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let kb: u64 = s
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()?;
        Some(kb * 1024)
    }

    /// The last non-empty line QEMU wrote to stderr.
    pub fn last_stderr_line(&self) -> String {
        self.stderr()
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim()
            .to_string()
    }

    /// Events QEMU sent so far.
    pub fn events(&self) -> &[Value] {
        self.qmp.as_ref().map_or(&[], |q| &q.events)
    }

    /// The exit status, if QEMU has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    fn died(&self, status: ExitStatus, when: &str) -> String {
        format!(
            "{}: QEMU exited ({status}) {when}{}",
            self.what,
            self.stderr_tail()
        )
    }

    /// Everything QEMU wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `"; QEMU stderr: ..."` with the last lines of QEMU's stderr, or "".
    pub fn stderr_tail(&self) -> String {
        let text = self.stderr();
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        if lines.is_empty() {
            return String::new();
        }
        let tail = lines[lines.len().saturating_sub(12)..].join("\n  ");
        format!("; QEMU stderr:\n  {tail}")
    }

    /// Run a QMP command. On failure, say why; when the connection broke
    /// because QEMU died, say how, with its stderr.
    pub fn cmd(&mut self, name: &str, args: Value) -> Result<Value, String> {
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

    /// An HMP command's text output (`human-monitor-command`).
    pub fn hmp(&mut self, line: &str) -> Result<String, String> {
        let v = self.cmd("human-monitor-command", json!({ "command-line": line }))?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    /// Guest-physical memory `[addr, addr + size)` as `pmemsave` writes it,
    /// through the file `scratch` (removed afterwards).
    pub fn pmemsave(&mut self, addr: u64, size: u64, scratch: &Path) -> Result<Vec<u8>, String> {
        let path = scratch
            .to_str()
            .ok_or_else(|| format!("{}: {} is not UTF-8", self.what, scratch.display()))?;
        let r = self.cmd(
            "pmemsave",
            json!({ "val": addr, "size": size, "filename": path }),
        );
        let bytes = r.and_then(|_| {
            std::fs::read(scratch)
                .map_err(|e| format!("{}: pmemsave {}: {e}", self.what, scratch.display()))
        });
        let _ = std::fs::remove_file(scratch);
        let bytes = bytes?;
        if bytes.len() as u64 != size {
            return Err(format!(
                "{}: pmemsave {addr:#x}+{size:#x} gave {} bytes",
                self.what,
                bytes.len()
            ));
        }
        Ok(bytes)
    }

    /// Poll `query-migrate` every `poll` until its status is `completed`,
    /// `failed` or `cancelled`, calling `each` on every other answer;
    /// returns the last answer. `Err` when QEMU died or after `timeout`.
    pub fn wait_migration(
        &mut self,
        timeout: Duration,
        poll: Duration,
        mut each: impl FnMut(&mut QemuProcess, &Value),
    ) -> Result<Value, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let st = self.cmd("query-migrate", Value::Null)?;
            if let Some("completed" | "failed" | "cancelled") = st["status"].as_str() {
                return Ok(st);
            }
            each(self, &st);
            if Instant::now() > deadline {
                return Err(format!(
                    "{}: migration still {} after {timeout:?}: {st}{}",
                    self.what,
                    st["status"],
                    self.stderr_tail()
                ));
            }
            std::thread::sleep(poll);
        }
    }
}

impl Drop for QemuProcess {
    fn drop(&mut self) {
        self.qmp = None;
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.sock);
        let _ = std::fs::remove_file(&self.log);
    }
}
