//! The QEMU driver shared by `migsim bench`, the interop tests and the
//! `migsim qemu` commands: [`find`] picks the binary ([`QemuBinary`]),
//! [`Qmp`] speaks QMP on a unix socket, [`QemuProcess`] is one running
//! QEMU, killed (its socket and log removed) when dropped. [`guest`] is
//! the guest program migsim boots in QEMU and [`live`] runs a scenario's
//! workload in it (`migsim qemu run`).

mod binary;
pub mod campaign;
pub mod guest;
pub mod live;
mod process;
mod qmp;

pub use binary::{QemuBinary, find};
pub use process::{QemuProcess, qemu_opt_escape};
pub use qmp::Qmp;

/// Where the qemu commands keep scratch files (inputs, `pmemsave`
/// output): `/dev/shm` (memory: a load reads no disk) unless `TMPDIR`
/// names another place or there is no `/dev/shm`.
pub fn scratch_root() -> std::path::PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    if std::env::var_os("TMPDIR").is_none() && shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// Accelerator for guests that never run code (`-S`): `MIGSIM_QEMU_ACCEL`,
/// else kvm when /dev/kvm opens, else tcg.
pub fn stopped_guest_accel() -> String {
    std::env::var("MIGSIM_QEMU_ACCEL").unwrap_or_else(|_| {
        let kvm = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .is_ok();
        if kvm { "kvm" } else { "tcg" }.to_string()
    })
}
