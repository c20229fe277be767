//! Shared by the QEMU tier's modules: finding QEMU, the tier's rule and
//! running the `migsim` binary. With `qemu-system-x86_64` >= 9.0 (or
//! `$QEMU`) the tier runs; without it, one line says it was skipped and
//! how to enable it, except under `CI=true`, where a missing or old QEMU
//! fails the test.

use std::io::Write;
use std::path::Path;
use std::sync::{Once, OnceLock};

use migsim_harness::qemu::{QemuBinary, find};

/// The installed QEMU, or `None` (after saying so once) when the tier is
/// skipped; panics under `CI=true` instead of skipping.
pub fn qemu_or_skip() -> Option<&'static QemuBinary> {
    static FOUND: OnceLock<Result<QemuBinary, String>> = OnceLock::new();
    match FOUND.get_or_init(find) {
        Ok(q) => Some(q),
        Err(why) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!(
                    "qemu interop tier: qemu-system-x86_64 >= 9.0 is required under CI=true ({why}); \
                     install qemu-system-x86 from bookworm-backports (see .ci/run)"
                );
            }
            static SAID: Once = Once::new();
            SAID.call_once(|| {
                // Straight to the stream, past the test harness's capture,
                // so a plain `cargo test` shows it.
                let _ = writeln!(
                    std::io::stderr(),
                    "qemu interop tier skipped: qemu-system-x86_64 >= 9.0 not found ({why}); \
                     install qemu-system-x86 from bookworm-backports (see .ci/run) to enable it"
                );
            });
            None
        }
    }
}

pub use migsim_harness::qemu::stopped_guest_accel;

/// The `migsim` binary this test run built, as a command to add arguments to.
pub fn migsim_command() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_migsim"))
}

/// Run `migsim extract --block NAME -o OUT` on `mig`; returns the pages
/// present it reports.
pub fn extract(mig: &Path, block: &str, out: &Path) -> u64 {
    let o = migsim_command()
        .args(["extract", "--block", block, "-o"])
        .arg(out)
        .arg(mig)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "migsim extract --block {block} {}: {}",
        mig.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    // `pc.ram: wrote PATH (N bytes, P pages present)`, on stderr.
    let text = String::from_utf8_lossy(&o.stderr);
    text.rsplit_once(", ")
        .and_then(|(_, t)| t.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("cannot read pages present from {text:?}"))
}
