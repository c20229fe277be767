//! The QEMU driver shared by `migsim bench`, the interop tests and the
//! `migsim qemu` commands: [`find`] picks the binary ([`QemuBinary`]),
//! [`Qmp`] speaks QMP on a unix socket, [`QemuProcess`] is one running
//! QEMU, killed (its socket and log removed) when dropped.

mod binary;
#[cfg(feature = "fuzz")]
pub mod campaign;
mod process;
mod qmp;

pub use binary::{QemuBinary, find};
pub use process::{QemuProcess, qemu_opt_escape};
pub use qmp::Qmp;
