//! QEMU -> `migsim extract`: stopped guests of other sizes and machine
//! types (pc 512 MiB with VGA and a 128 MiB DIMM above 4 GiB; q35 256 MiB;
//! q35 1 GiB split at 4 GiB), with known sparse memory, saved
//! sequentially, with mapped-ram and with mapped-ram + 4 multifd
//! channels: the `migsim` binary's `extract` of every RAMBlock must equal
//! QEMU's `pmemsave` where the block is mapped, the known contents and the
//! other saves.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::guest_memory::{MIB, PAGE, fmt_mib, nonzero_pages, pattern};
use crate::qemu_process::{Qemu, QemuInfo, qemu};
use crate::support::extract;

/// What a block of a stopped guest is known to hold, independently of any
/// migration file: page-aligned runs of bytes (sorted, not overlapping)
/// over zeros.
#[derive(Clone, Default)]
struct Known {
    runs: Vec<(u64, Vec<u8>)>,
}

impl Known {
    /// Runs of [`pattern`] bytes: `count` runs of `pages` pages, one every
    /// `len / count` bytes (each at a different page offset inside its
    /// stride), plus `extra` runs `(offset, pages)`.
    fn spread(seed: u64, len: u64, count: u64, pages: u64, extra: &[(u64, u64)]) -> Known {
        let stride = len / count;
        let mut runs: Vec<(u64, Vec<u8>)> = (0..count)
            .map(|k| {
                let at = k * stride + (k * 5 % 16) * PAGE;
                (at, pattern(seed ^ at, pages))
            })
            .chain(
                extra
                    .iter()
                    .map(|&(at, pages)| (at, pattern(seed ^ at, pages))),
            )
            .collect();
        runs.sort_by_key(|r| r.0);
        for w in runs.windows(2) {
            assert!(w[0].0 + w[0].1.len() as u64 <= w[1].0, "runs overlap");
        }
        assert!(runs.last().is_none_or(|r| r.0 + r.1.len() as u64 <= len));
        Known { runs }
    }

    /// A file's bytes at offset 0 (the rest zeros).
    fn file(bytes: Vec<u8>) -> Known {
        Known {
            runs: vec![(0, bytes)],
        }
    }

    /// The known bytes of page `p`; `None` for a zero page.
    fn page(&self, p: u64) -> Option<&[u8]> {
        let at = p * PAGE;
        let i = self.runs.partition_point(|r| r.0 + r.1.len() as u64 <= at);
        let (start, bytes) = self.runs.get(i)?;
        if *start > at {
            return None;
        }
        let from = (at - start) as usize;
        let to = (from + PAGE as usize).min(bytes.len());
        Some(&bytes[from..to])
    }

    fn nonzero_pages(&self) -> usize {
        self.runs.iter().map(|r| nonzero_pages(&r.1)).sum()
    }

    /// Write the runs into a sparse file of `len` bytes.
    fn write_sparse(&self, path: &Path, len: u64) {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::create(path).unwrap();
        f.set_len(len).unwrap();
        for (at, bytes) in &self.runs {
            f.write_all_at(bytes, *at).unwrap();
        }
    }
}

/// Calls `each(page, got)` for every page of `len` bytes of `path` from
/// `offset`, reading 1 MiB at a time (big blocks are never held whole).
fn for_each_page(path: &Path, offset: u64, len: u64, mut each: impl FnMut(u64, &[u8])) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut buf = vec![0u8; MIB as usize];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(MIB) as usize;
        f.read_exact_at(&mut buf[..n], offset + done)
            .unwrap_or_else(|e| panic!("{} at {:#x}: {e}", path.display(), offset + done));
        for (i, page) in buf[..n].chunks(PAGE as usize).enumerate() {
            each(done / PAGE + i as u64, page);
        }
        done += n as u64;
    }
}

/// Pages (relative to `offset`) where `path` differs from `known`.
fn differs_from_known(path: &Path, offset: u64, len: u64, known: &Known) -> Vec<u64> {
    let mut bad = Vec::new();
    let first = offset / PAGE;
    for_each_page(path, offset, len, |p, got| {
        let ok = match known.page(first + p) {
            Some(want) => got[..want.len()] == *want && got[want.len()..].iter().all(|&b| b == 0),
            None => got.iter().all(|&b| b == 0),
        };
        if !ok {
            bad.push(p);
        }
    });
    bad
}

/// Pages where `len` bytes of `a` from `a_off` differ from `b` from `b_off`.
fn differing_pages(a: &Path, a_off: u64, b: &Path, b_off: u64, len: u64) -> Vec<u64> {
    use std::os::unix::fs::FileExt;
    let fb = std::fs::File::open(b).unwrap_or_else(|e| panic!("{}: {e}", b.display()));
    let mut other = vec![0u8; PAGE as usize];
    let mut bad = Vec::new();
    for_each_page(a, a_off, len, |p, got| {
        let o = &mut other[..got.len()];
        fb.read_exact_at(o, b_off + p * PAGE).unwrap();
        if got != o {
            bad.push(p);
        }
    });
    bad
}

fn first_pages(pages: &[u64]) -> String {
    let shown: Vec<String> = pages.iter().take(6).map(|p| format!("{p:#x}")).collect();
    format!("{} pages ({}...)", pages.len(), shown.join(", "))
}

/// A firmware file from QEMU's data directories (`-L help`).
fn firmware(info: &QemuInfo, name: &str) -> Option<PathBuf> {
    let out = Command::new(&info.bin)
        .args(["-L", "help"])
        .stdin(Stdio::null())
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|d| Path::new(d.trim()).join(name))
        .find(|p| p.is_file())
}

/// One guest for [`qemu_saves_extract`].
struct ExtractGuest {
    /// `-M` argument (alias and options).
    machine: &'static str,
    /// RAM size in MiB (`-m`).
    mib: u64,
    /// More `-m` options (QEMU merges a second `-m`).
    memory_opts: Option<&'static str>,
    /// pc.ram from a prepared sparse `memory-backend-file` (`share=off`)
    /// instead of anonymous RAM and `-device loader` blobs.
    file_backed: bool,
    /// Add `-device VGA` (blocks `0000:00:02.0/vga.vram`, `.../vga.rom`).
    vga: bool,
    /// A file-backed `pc-dimm` of this many MiB (block `dimm0.ram`).
    dimm_mib: Option<u64>,
}

/// Have QEMU save a stopped guest with known, mostly sparse memory three
/// ways (sequential; mapped-ram; mapped-ram + multifd with 4 channels),
/// each from its own fresh source, and run the `migsim extract` binary for
/// every RAMBlock of every save. Each block's output must be its used
/// length, equal QEMU's `pmemsave` of that source wherever `info mtree -f`
/// maps the block (low RAM, above 4 GiB, ROMs, a DIMM), equal what is known
/// without QEMU (the prepared pc.ram and DIMM contents over zeros, the
/// firmware files, a zero VRAM, ACPI signatures), and be the same in all
/// three saves.
fn qemu_saves_extract(g: &ExtractGuest) {
    let Some(info) = qemu() else { return };
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ram = g.mib * MIB;
    let mut args: Vec<String> = vec!["-S".into()];
    if let Some(o) = g.memory_opts {
        args.push("-m".into());
        args.push(o.into());
    }
    let mut known: BTreeMap<String, Known> = BTreeMap::new();
    let pc_ram = if g.file_backed {
        // A run every 16 MiB, one across the 640 KiB boundary (pc.ram the
        // guest cannot see: VGA window and ROMs), one at page 0 and one
        // ending at the last page.
        let k = Known::spread(
            0x5043_5241_4d00 ^ ram,
            ram,
            g.mib / 16,
            24,
            &[(0x9_E000, 8), (ram - 12 * PAGE, 12)],
        );
        let path = d.join("pc.ram.backing");
        k.write_sparse(&path, ram);
        args.push("-object".into());
        args.push(format!(
            "memory-backend-file,id=pc.ram,size={}M,mem-path={},share=off",
            g.mib,
            path.display()
        ));
        args.push("-machine".into());
        args.push("memory-backend=pc.ram".into());
        k
    } else {
        // Loader blobs (ROM blobs copied into RAM at reset).
        let mut runs = Vec::new();
        for (i, (at, pages)) in [
            (0x1_0000u64, 16u64),
            (0x90_0000, 40),
            (ram / 2 + 0x3000, 9),
            (ram - 16 * PAGE, 16),
        ]
        .into_iter()
        .enumerate()
        {
            let bytes = pattern(at ^ ram, pages);
            let p = d.join(format!("blob-{i}.bin"));
            std::fs::write(&p, &bytes).unwrap();
            args.push("-device".into());
            args.push(format!("loader,file={},addr={at:#x}", p.display()));
            runs.push((at, bytes));
        }
        Known { runs }
    };
    let pc_nonzero = pc_ram.nonzero_pages();
    known.insert("pc.ram".into(), pc_ram);
    if let Some(dm) = g.dimm_mib {
        let k = Known::spread(0x4449_4d4d, dm * MIB, dm / 16, 20, &[]);
        let path = d.join("dimm0.backing");
        k.write_sparse(&path, dm * MIB);
        args.push("-object".into());
        args.push(format!(
            "memory-backend-file,id=dimm0.ram,size={dm}M,mem-path={},share=off",
            path.display()
        ));
        args.push("-device".into());
        args.push("pc-dimm,id=dimm0,memdev=dimm0.ram".into());
        known.insert("dimm0.ram".into(), k);
    }
    if g.vga {
        args.push("-device".into());
        args.push("VGA".into());
        known.insert("0000:00:02.0/vga.vram".into(), Known::default());
        if let Some(p) = firmware(info, "vgabios-stdvga.bin") {
            known.insert(
                "0000:00:02.0/vga.rom".into(),
                Known::file(std::fs::read(p).unwrap()),
            );
        }
    }
    if let Some(p) = firmware(info, "bios-256k.bin") {
        known.insert("pc.bios".into(), Known::file(std::fs::read(p).unwrap()));
    }
    // Nothing is ever loaded into pc.rom without option ROMs.
    known.insert("pc.rom".into(), Known::default());
    // ACPI blobs QEMU builds: only their signatures are known.
    let acpi: [(&str, &[&[u8]]); 3] = [
        (
            "/rom@etc/acpi/tables",
            &[b"FACS", b"DSDT", b"FACP", b"APIC"],
        ),
        ("/rom@etc/acpi/rsdp", &[b"RSD PTR "]),
        (
            "/rom@etc/table-loader",
            &[b"etc/acpi/rsdp", b"etc/acpi/tables"],
        ),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let alias = g.machine.split(',').next().unwrap();
    let versioned = info.machine(alias).to_string();

    let saves: [(&str, &[&str]); 3] = [
        ("sequential", &[]),
        ("mapped-ram", &["mapped-ram"]),
        ("mapped-ram+multifd", &["mapped-ram", "multifd"]),
    ];
    let mut first: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut lines = Vec::new();
    let mut blocks_seen = Vec::new();
    let mut visible = BTreeMap::new();
    for (tag, caps) in saves {
        let ts = Instant::now();
        let mut src = Qemu::start(info, d, tag, g.machine, g.mib, &info.accel, &args);
        let blocks = src.ramblocks();
        let maps = src.flatview();
        src.set_caps(caps);
        src.cmd(
            "migrate-set-parameters",
            json!({ "max-bandwidth": 1u64 << 40, "multifd-channels": 4 }),
        );
        let mig = d.join(format!("{tag}.mig"));
        src.cmd(
            "migrate",
            json!({ "uri": format!("file:{}", mig.display()) }),
        );
        let st = src.wait_migration(Duration::from_secs(120), |_, _| {});
        assert_eq!(st["status"], "completed", "{tag}: {st}\n{}", src.stderr());
        let saved_s = ts.elapsed().as_secs_f64();

        // QEMU's view of every guest-physical range a block backs.
        let mut dumps = Vec::new();
        for (i, m) in maps.iter().enumerate() {
            if blocks.iter().any(|b| b.name == m.region) {
                let p = d.join(format!("{tag}.pmem{i}"));
                src.cmd(
                    "pmemsave",
                    json!({ "val": m.start, "size": m.end - m.start, "filename": p.to_str().unwrap() }),
                );
                dumps.push((m.clone(), p));
            }
        }
        drop(src);

        let mut present = BTreeMap::new();
        for b in &blocks {
            let out = d.join(format!("{tag}.{}.bin", b.name.replace('/', "_")));
            present.insert(b.name.clone(), extract(&mig, &b.name, &out));
            let len = out.metadata().unwrap().len();
            assert_eq!(
                len, b.used_length,
                "{tag}: extract of {} is {len} bytes; QEMU's used_length is {}",
                b.name, b.used_length
            );
            let what = format!("{} -m {} {tag} save, block {}", g.machine, g.mib, b.name);
            if let Some(k) = known.get(&b.name) {
                let bad = differs_from_known(&out, 0, len, k);
                assert!(
                    bad.is_empty(),
                    "{what}: extract differs from the known contents in {}",
                    first_pages(&bad)
                );
                // A stopped guest is saved in one pass: each non-zero page
                // once (a PAGE record, or a set bit), zero pages never.
                assert_eq!(
                    present[&b.name],
                    k.nonzero_pages() as u64,
                    "{what}: pages present vs known non-zero pages"
                );
            }
            if let Some((_, sigs)) = acpi.iter().find(|(n, _)| *n == b.name) {
                let bytes = std::fs::read(&out).unwrap();
                for s in *sigs {
                    assert!(
                        bytes.windows(s.len()).any(|w| w == *s),
                        "{what}: no {:?} in the extracted block",
                        String::from_utf8_lossy(s)
                    );
                }
            }
            for (m, dump) in dumps.iter().filter(|(m, _)| m.region == b.name) {
                let bad = differing_pages(dump, 0, &out, m.offset, m.end - m.start);
                assert!(
                    bad.is_empty(),
                    "{what}: extract differs from QEMU's pmemsave of {:#x}..{:#x} in {}",
                    m.start,
                    m.end,
                    first_pages(&bad)
                );
                *visible.entry(b.name.clone()).or_insert(0) += (m.end - m.start) / PAGE;
            }
            match first.get(&b.name) {
                None => {
                    first.insert(b.name.clone(), out);
                }
                Some(f) => {
                    let bad = differing_pages(&out, 0, f, 0, len);
                    assert!(
                        bad.is_empty(),
                        "{what}: differs from the sequential save's in {}",
                        first_pages(&bad)
                    );
                    let _ = std::fs::remove_file(&out);
                }
            }
        }
        for (_, p) in dumps {
            let _ = std::fs::remove_file(p);
        }
        if blocks_seen.is_empty() {
            blocks_seen = blocks
                .iter()
                .map(|b| format!("{} {}", b.name, fmt_mib(b.used_length)))
                .collect();
        }
        let meta = mig.metadata().unwrap();
        use std::os::unix::fs::MetadataExt;
        lines.push(format!(
            "{tag}: file {} ({} allocated), saved in {saved_s:.2} s, pc.ram {} pages present",
            fmt_mib(meta.len()),
            fmt_mib(meta.blocks() * 512),
            present["pc.ram"]
        ));
        let _ = std::fs::remove_file(&mig);
    }
    let unchecked: Vec<&String> = first
        .keys()
        .filter(|n| !known.contains_key(*n) && !acpi.iter().any(|(a, _)| a == n))
        .collect();
    let missing = known.keys().filter(|n| !first.contains_key(*n)).count();
    assert_eq!(missing, 0, "a known block is not among QEMU's blocks");
    println!(
        "{} ({versioned}) -m {}M (accel {}): blocks [{}]; pc.ram has {pc_nonzero} known non-zero \
         pages; `migsim extract` of every block of every save equals QEMU's pmemsave where \
         mapped ({visible:?} pages over 3 saves), the known contents and the other saves; \
         blocks with no independent expectation: {unchecked:?}; {}; {:.1} s",
        g.machine,
        g.mib,
        info.accel,
        blocks_seen.join(", "),
        lines.join("; "),
        t0.elapsed().as_secs_f64()
    );
}

/// pc with 512 MiB of file-backed RAM, a VGA card (16 MiB VRAM, its ROM)
/// and a 128 MiB file-backed DIMM mapped above 4 GiB.
#[test]
fn qemu_pc_512m_vga_dimm_saves_extract_exactly() {
    qemu_saves_extract(&ExtractGuest {
        machine: "pc",
        mib: 512,
        memory_opts: Some("slots=2,maxmem=2G"),
        file_backed: true,
        vga: true,
        dimm_mib: Some(128),
    });
}

/// q35 with 256 MiB of anonymous RAM holding `-device loader` blobs.
#[test]
fn qemu_q35_256m_saves_extract_exactly() {
    qemu_saves_extract(&ExtractGuest {
        machine: "q35",
        mib: 256,
        memory_opts: None,
        file_backed: false,
        vga: false,
        dimm_mib: None,
    });
}

/// q35 with 1 GiB of file-backed RAM split by `max-ram-below-4g=512M`:
/// the second half of pc.ram is mapped at 4 GiB.
#[test]
fn qemu_q35_1g_split_at_4g_saves_extract_exactly() {
    qemu_saves_extract(&ExtractGuest {
        machine: "q35,max-ram-below-4g=512M",
        mib: 1024,
        memory_opts: None,
        file_backed: true,
        vga: false,
        dimm_mib: None,
    });
}
