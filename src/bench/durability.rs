//! The `durable` part: the fixed-ram save as QEMU finishes it, then
//! fsync'd, in the durable mode, and with the integrity trailer.

use std::path::Path;
use std::time::Instant;

use migsim_format::caps::{Capabilities, Capability};
use migsim_format::io::DiskFile;
use migsim_format::writer::MigrationWriter;

use super::*;

/// migsim's fixed-ram save of `ram` (buffered) finishing as `mode`, with
/// or without the integrity trailer: seconds until the writer is done and
/// the file closed, plus one fsync after that when `fsync`.
pub(super) fn save_finishing(
    ram: &[u8],
    path: &Path,
    mode: migsim_format::Durability,
    integrity: bool,
    fsync: bool,
    channels: usize,
) -> Result<(f64, u64), String> {
    let caps = Capabilities::from_enabled(&[Capability::FixedRam]).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(path);
    let t = Instant::now();
    let file = DiskFile::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let w = MigrationWriter::start(file, MACHINE, &caps, bench_blocks(ram.len() as u64))
        .map_err(|e| e.to_string())?
        .with_durability(mode)
        .with_integrity(integrity);
    save_all_pages(w, ram, channels)?;
    if fsync {
        std::fs::File::open(path)
            .and_then(|f| f.sync_all())
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let secs = t.elapsed().as_secs_f64();
    let len = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    Ok((secs, len))
}

/// The durable save against the QEMU-compatible one, same RAM, same
/// file, the four modes interleaved `o.reps` times.
pub(super) fn durability(
    o: &BenchOptions,
    ram: &[u8],
    progress: &mut dyn FnMut(&str),
) -> Result<DurabilityFigures, String> {
    use migsim_format::Durability::{Durable, QemuCompatible};
    let path = o.dir.join("bench-durable.mig");
    let cases = [
        (QemuCompatible, false, false),
        (QemuCompatible, false, true),
        (Durable, false, false),
        (Durable, true, false),
    ];
    let mut secs: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    let mut lens = [0u64; 4];
    for i in 0..o.reps {
        for (k, &(mode, integrity, fsync)) in cases.iter().enumerate() {
            let (t, len) = save_finishing(ram, &path, mode, integrity, fsync, o.channels)?;
            secs[k].push(t);
            lens[k] = len;
        }
        progress(&format!(
            "durable {}/{}: qemu-compatible {:.2} s (+fsync {:.2} s), durable {:.2} s, durable+integrity {:.2} s",
            i + 1,
            o.reps,
            secs[0][i],
            secs[1][i],
            secs[2][i],
            secs[3][i]
        ));
    }
    let _ = std::fs::remove_file(&path);
    let mut t = secs.into_iter().zip(lens).map(|(s, l)| Timing::new(l, s));
    let (q, qf, d, di) = (
        t.next().expect("4"),
        t.next().expect("4"),
        t.next().expect("4"),
        t.next().expect("4"),
    );
    Ok(DurabilityFigures {
        durable_vs_qemu_compatible_ratio: d.gib_s / q.gib_s,
        durable_vs_qemu_compatible_fsync_ratio: d.gib_s / qf.gib_s,
        integrity_vs_durable_ratio: di.gib_s / d.gib_s,
        qemu_compatible: q,
        qemu_compatible_fsync: qf,
        durable: d,
        durable_integrity: di,
    })
}
