//! The machine a bench ran on (CPU, memory, kernel, disk, free page
//! reporting) and dropping its page cache before a read.

use std::path::Path;

use serde::Serialize;

/// The machine the figures come from.
#[derive(Clone, Debug, Serialize)]
pub struct MachineInfo {
    /// CPUs available to this process.
    pub cpus: usize,
    /// CPU model name.
    pub cpu_model: String,
    /// Total memory, bytes.
    pub mem_total: u64,
    /// Kernel release.
    pub kernel: String,
    /// Directory holding the files.
    pub dir: String,
    /// Whether the page cache could be dropped before reads.
    pub page_cache_dropped: bool,
    /// The machine is a VM whose virtio balloon reports free memory to
    /// the host (free page reporting): memory freed a while ago comes
    /// back through a host fault at first touch, 10x slower or more than
    /// memory freed just now, so fresh-memory figures depend on timing.
    pub free_page_reporting: bool,
}

/// Whether a virtio balloon with free page reporting (feature bit 5,
/// VIRTIO_BALLOON_F_REPORTING) is bound.
pub(super) fn free_page_reporting() -> bool {
    let Ok(devices) = std::fs::read_dir("/sys/bus/virtio/devices") else {
        return false;
    };
    devices.flatten().any(|d| {
        let read = |f: &str| std::fs::read_to_string(d.path().join(f)).unwrap_or_default();
        read("device").trim() == "0x0005" && read("features").as_bytes().get(5) == Some(&b'1')
    })
}

pub(super) fn machine_info(dir: &Path) -> MachineInfo {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpu_model = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_default();
    let mem_total = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024);
    MachineInfo {
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu_model,
        mem_total,
        kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
        dir: dir.display().to_string(),
        page_cache_dropped: false,
        free_page_reporting: free_page_reporting(),
    }
}

/// Write back and drop the page cache (root only); whether it worked.
pub fn drop_page_cache() -> bool {
    // SAFETY: sync(2) has no preconditions.
    unsafe { libc::sync() };
    std::fs::write("/proc/sys/vm/drop_caches", "3\n").is_ok()
}
