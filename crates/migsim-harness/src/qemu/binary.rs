//! Finding `qemu-system-x86_64` and its version.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A QEMU binary found on PATH (or named by `$MIGSIM_QEMU` or `$QEMU`),
/// with its version.
#[derive(Clone, Debug)]
pub struct QemuBinary {
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

impl QemuBinary {
    /// `(major, minor, patch)`.
    pub fn version_tuple(&self) -> (u32, u32, u32) {
        (self.major, self.minor, self.patch)
    }
}

/// Find `qemu-system-x86_64` >= 9.0 (mapped-ram); `$MIGSIM_QEMU` (or
/// `$QEMU`, as the test tiers use) names another binary. `Err(reason)`
/// when missing or too old.
pub fn find() -> Result<QemuBinary, String> {
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
    Ok(QemuBinary {
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
