//! The `save` and `restore` parts: migsim's fixed-ram save of prepared
//! guest RAM to a real file and its restore, against a plain sequential
//! write and read of as many bytes with the same flags.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use migsim_format::caps::{Capabilities, Capability};
use migsim_format::io::{AlignedBuf, DIRECT_ALIGN, DiskFile};
use migsim_format::reader::{LoadOptions, load};
use migsim_format::writer::{MigrationWriter, PageSource, RamBlockDesc};
use migsim_harness::sim::dest::Destination;

use super::*;

/// Fill `buf` with non-zero, page-distinct guest RAM (every page starts
/// with its index, the rest is a cheap keyed stream).
pub(super) fn fill_ram(buf: &mut [u8]) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let share = buf.len().div_ceil(cores).next_multiple_of(4096).max(4096);
    std::thread::scope(|s| {
        for (i, part) in buf.chunks_mut(share).enumerate() {
            s.spawn(move || {
                let first_page = (i * share / 4096) as u64;
                for (k, page) in part.chunks_mut(4096).enumerate() {
                    ram_page(first_page + k as u64, page);
                }
            });
        }
    });
}

pub(super) fn ram_page(index: u64, page: &mut [u8]) {
    let mut x = index.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for w in page.chunks_exact_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        w.copy_from_slice(&(x | 1).to_le_bytes());
    }
    page[..8].copy_from_slice(&(index + 1).to_le_bytes());
}

/// Every page of `ram` through `w` in the completion phase, in batches
/// of 64 Ki pages, then the file finished and closed.
pub(super) fn save_all_pages(
    mut w: MigrationWriter<DiskFile>,
    ram: &[u8],
    channels: usize,
) -> Result<(), String> {
    w.begin_completion().map_err(|e| e.to_string())?;
    let source = RamSource(ram);
    let pages = ram.len() as u64 / 4096;
    let mut batch = Vec::with_capacity(1 << 16);
    let mut p = 0;
    while p < pages {
        batch.clear();
        batch.extend((p..pages.min(p + (1 << 16))).map(|q| (0usize, q)));
        w.save_pages(&batch, &source, channels)
            .map_err(|e| e.to_string())?;
        p += batch.len() as u64;
    }
    let (file, _) = w.finish(&[]).map_err(|e| e.to_string())?;
    drop(file);
    Ok(())
}

/// Guest RAM in memory, lent to the writer without a copy (as QEMU
/// writes from guest RAM).
pub(super) struct RamSource<'a>(&'a [u8]);

impl PageSource for RamSource<'_> {
    fn fill(&self, _: usize, page: u64, buf: &mut [u8]) {
        let s = (page * 4096) as usize;
        buf.copy_from_slice(&self.0[s..s + 4096]);
    }
    fn pages(&self, _: usize, first: u64, count: usize) -> Option<&[u8]> {
        let s = (first * 4096) as usize;
        Some(&self.0[s..s + count * 4096])
    }
}

pub(super) fn bench_blocks(size: u64) -> Vec<RamBlockDesc> {
    vec![RamBlockDesc {
        name: "pc.ram".into(),
        used_length: size,
        shared: false,
    }]
}

/// migsim's fixed-ram save of `ram`: seconds until closed, until durable,
/// and the file length.
pub(super) fn fixed_ram_save(
    ram: &[u8],
    path: &Path,
    direct: bool,
    channels: usize,
) -> Result<SaveTimes, String> {
    let caps = Capabilities::from_enabled(&[Capability::FixedRam]).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(path);
    let t = Instant::now();
    let file = if direct {
        DiskFile::create_direct(path)
    } else {
        DiskFile::create(path)
    }
    .map_err(|e| format!("{}: {e}", path.display()))?;
    let w = MigrationWriter::start(file, MACHINE, &caps, bench_blocks(ram.len() as u64))
        .map_err(|e| e.to_string())?;
    save_all_pages(w, ram, channels)?;
    let closed = t.elapsed().as_secs_f64();
    // fsync flushes the file's data whichever descriptor wrote it.
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let durable = t.elapsed().as_secs_f64();
    let len = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    Ok(SaveTimes {
        closed,
        durable,
        len,
    })
}

pub(super) struct SaveTimes {
    closed: f64,
    durable: f64,
    len: u64,
}

/// A plain sequential write of `len` bytes from `ram` (repeated as
/// needed) in 1 MiB writes, with or without O_DIRECT, fsync included;
/// `presized`: into a file first set (sparse) to `len`.
pub(super) fn sequential_write(
    ram: &[u8],
    len: u64,
    path: &Path,
    direct: bool,
    presized: bool,
) -> Result<f64, String> {
    let _ = std::fs::remove_file(path);
    let t = Instant::now();
    let mut oo = std::fs::OpenOptions::new();
    oo.write(true).create(true).truncate(true);
    if direct {
        oo.custom_flags(libc::O_DIRECT);
    }
    let mut f = oo
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if presized {
        f.set_len(len).map_err(|e| e.to_string())?;
    }
    let mut left = len;
    let mut at = 0usize;
    while left > 0 {
        // O_DIRECT needs whole aligned blocks; round the tail up.
        let want = (left as usize).min(MIB);
        let n = if direct {
            want.next_multiple_of(DIRECT_ALIGN)
        } else {
            want
        };
        if at + n > ram.len() {
            at = 0;
        }
        f.write_all(&ram[at..at + n])
            .map_err(|e| format!("{}: {e}", path.display()))?;
        at += n;
        left -= want as u64;
    }
    f.sync_all().map_err(|e| e.to_string())?;
    Ok(t.elapsed().as_secs_f64())
}

pub(super) fn sequential_read(path: &Path, direct: bool) -> Result<(f64, u64), String> {
    let mut buf = AlignedBuf::zeroed(MIB);
    let t = Instant::now();
    let mut oo = std::fs::OpenOptions::new();
    oo.read(true);
    if direct {
        oo.custom_flags(libc::O_DIRECT);
    }
    let mut f = oo
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    Ok((t.elapsed().as_secs_f64(), total))
}

pub(super) fn save(
    o: &BenchOptions,
    ram: &[u8],
    direct: bool,
    progress: &mut dyn FnMut(&str),
) -> Result<SaveFigures, String> {
    let mode = if direct { "O_DIRECT" } else { "buffered" };
    let fixed_path = fixed_ram_path(o);
    let plain_path = o.dir.join("bench-sequential.bin");
    let mut file_len = 0;
    let (mut fixed, mut closed, mut plain, mut presized) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // Interleaved, so a slow phase of a shared machine hits all three.
    for i in 0..o.reps {
        let t = fixed_ram_save(ram, &fixed_path, direct, o.channels)?;
        file_len = t.len;
        fixed.push(t.durable);
        closed.push(t.closed);
        let dt2 = sequential_write(ram, t.len, &plain_path, direct, false)?;
        plain.push(dt2);
        let dt3 = sequential_write(ram, t.len, &plain_path, direct, true)?;
        presized.push(dt3);
        progress(&format!(
            "save {mode} {}/{}: fixed-ram {:.2} s ({:.2} s until closed), sequential write {dt2:.2} s, into a presized file {dt3:.2} s",
            i + 1,
            o.reps,
            t.durable,
            t.closed,
        ));
    }
    let _ = std::fs::remove_file(&plain_path);
    let fixed_ram = Timing::new(file_len, fixed);
    let sequential_write = Timing::new(file_len, plain);
    let sequential_write_presized = Timing::new(file_len, presized);
    Ok(SaveFigures {
        mode,
        fixed_ram_vs_sequential_write_ratio: fixed_ram.gib_s / sequential_write.gib_s,
        fixed_ram_vs_presized_write_ratio: fixed_ram.gib_s / sequential_write_presized.gib_s,
        fixed_ram,
        fixed_ram_closed: Timing::new(file_len, closed),
        sequential_write,
        sequential_write_presized,
    })
}

/// migsim's reader set up to restore the bench's fixed-ram file
/// ([`fixed_ram_path`], left by the save part) with one set of flags.
pub(super) struct Restorer {
    path: PathBuf,
    file: DiskFile,
    opts: LoadOptions,
    blocks: Vec<RamBlockDesc>,
}

impl Restorer {
    pub(super) fn new(o: &BenchOptions, direct: bool) -> Result<Self, String> {
        let path = fixed_ram_path(o);
        let file = if direct {
            DiskFile::open_direct(&path)
        } else {
            DiskFile::open(&path)
        }
        .map_err(|e| format!("{}: {e}", path.display()))?;
        let caps =
            Capabilities::from_enabled(&[Capability::FixedRam]).map_err(|e| e.to_string())?;
        let opts = LoadOptions {
            machine: Some(MACHINE.into()),
            caps: Some(caps),
            channels: o.read_channels,
            ..LoadOptions::default()
        };
        Ok(Self {
            path,
            file,
            opts,
            blocks: bench_blocks(o.size),
        })
    }

    /// Seconds to load the file into `dest`.
    pub(super) fn load_into(&self, dest: &mut Destination) -> Result<f64, String> {
        let t = Instant::now();
        load(&self.file, &self.opts, dest).map_err(|e| e.to_string())?;
        Ok(t.elapsed().as_secs_f64())
    }

    /// Into fresh memory, the page cache dropped first: the memory is
    /// allocated (lazily, as a VMM maps guest RAM before
    /// `migrate-incoming`) and then the load is timed from its start to
    /// its end, as QEMU's restore is; giving the memory back afterwards
    /// is not timed (QEMU's exit is not either). Seconds to load and
    /// seconds to free.
    pub(super) fn load_fresh_memory(&self) -> Result<(f64, f64), String> {
        drop_page_cache();
        let mut dest = Destination::new(&self.blocks, false);
        let secs = self.load_into(&mut dest)?;
        let t = Instant::now();
        drop(dest);
        Ok((secs, t.elapsed().as_secs_f64()))
    }
}

pub(super) fn restore(
    o: &BenchOptions,
    direct: bool,
    progress: &mut dyn FnMut(&str),
    dropped: &mut bool,
) -> Result<RestoreFigures, String> {
    let mode = if direct { "O_DIRECT" } else { "buffered" };
    let restorer = Restorer::new(o, direct)?;
    let (mut fixed, mut fresh, mut plain) = (Vec::new(), Vec::new(), Vec::new());
    let mut file_len = 0;
    for i in 0..o.reps {
        // Destination RAM touched beforehand (filled with garbage), as a
        // VMM's guest RAM would be mapped and ready.
        let mut dest = Destination::new(&restorer.blocks, true);
        *dropped = drop_page_cache();
        let dt = restorer.load_into(&mut dest)?;
        fixed.push(dt);
        if i == 0 {
            let mut want = vec![0u8; 4096];
            let same = (0..o.size / 4096).all(|p| {
                ram_page(p, &mut want);
                dest.page(0, p) == want.as_slice()
            });
            if !same {
                return Err(format!(
                    "restore ({mode}): the restored memory differs from the saved RAM"
                ));
            }
        }
        drop(dest);
        *dropped = drop_page_cache();
        let (dt2, len) = sequential_read(&restorer.path, direct)?;
        file_len = len;
        plain.push(dt2);
        let (dt3, freed) = restorer.load_fresh_memory()?;
        fresh.push(dt3);
        progress(&format!(
            "restore {mode} {}/{}: fixed-ram {dt:.2} s ({dt3:.2} s into fresh memory, {freed:.2} s to free it), sequential read {dt2:.2} s",
            i + 1,
            o.reps
        ));
    }
    let fixed_ram = Timing::new(o.size, fixed);
    let sequential_read = Timing::new(file_len, plain);
    Ok(RestoreFigures {
        mode,
        restore_vs_sequential_read_ratio: fixed_ram.gib_s / sequential_read.gib_s,
        fixed_ram,
        fixed_ram_fresh_memory: Timing::new(o.size, fresh),
        sequential_read,
        verified: true,
    })
}
