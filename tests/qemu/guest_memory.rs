//! Guest memory for the interop modules, shared: what a guest's blocks
//! are expected to hold and how they are compared. Expected memory comes
//! from known patterns ([`pattern`], for `-device loader` regions) or from
//! migsim's side ([`simulate`]: a QEMU-shaped scenario of `scenarios/qemu/`
//! run, its memory at switchover rebuilt from the run's page states,
//! `RunReport::switchover`, contents from `sim::content`). migsim's reader
//! restores a file into a destination that starts as garbage
//! ([`migsim_restore`]); QEMU's memory is compared page for page with
//! block contents wherever QEMU maps a block ([`compare_visible`]); a
//! mapped-ram block's bitmap and page slots are read from the file
//! ([`fixed_ram_block`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use migsim_format::Layout;
use migsim_format::LoadError;
use migsim_format::caps::{Capabilities, Capability, Profile};
use migsim_format::io::{DiskFile, MigFile};
use migsim_format::reader::{LoadOptions, StreamInfo, inspect, load};
use migsim_format::writer::RamBlockDesc;
use migsim_harness::run::{RunOptions, RunReport, run};
use migsim_harness::scenario::{Scenario, Verdict};
use migsim_harness::sim::content::{Identified, fill_page, identify};
use migsim_harness::sim::dest::{Destination, GARBAGE};

use crate::qemu_process::{Mapping, Qemu, QemuInfo};

pub const PAGE: u64 = 4096;
pub const MIB: u64 = 1 << 20;

/// Known contents for a page of a loader region: distinct bytes per
/// region and page (an LCG seeded by both), every seventh page zero.
pub fn pattern(region: u64, pages: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity((pages * PAGE) as usize);
    for k in 0..pages {
        if k % 7 == 3 {
            out.extend(std::iter::repeat_n(0u8, PAGE as usize));
            continue;
        }
        let mut x = (region << 32) ^ (k + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        for _ in 0..PAGE / 8 {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Comparing QEMU's memory with block contents
// ---------------------------------------------------------------------------

/// Block name -> bytes.
pub type Blocks = Vec<(String, Vec<u8>)>;

pub fn block<'a>(blocks: &'a Blocks, name: &str) -> &'a [u8] {
    &blocks
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no block {name}"))
        .1
}

/// Compare, page for page, every guest-physical range below `ram` (and
/// the BIOS mapping that ends at 4 GiB) where QEMU maps one of `blocks`
/// with the bytes of that block. Returns the pages compared per block.
pub fn compare_visible(
    q: &mut Qemu,
    maps: &[Mapping],
    blocks: &Blocks,
    ram: u64,
    what: &str,
    describe: &dyn Fn(&[u8]) -> String,
) -> BTreeMap<String, u64> {
    let mut pages = BTreeMap::new();
    let mut diffs = Vec::new();
    for m in maps {
        let Some((_, bytes)) = blocks.iter().find(|(n, _)| *n == m.region) else {
            continue;
        };
        let end = if m.start < ram {
            m.end.min(ram)
        } else if m.end == 1 << 32 {
            m.end
        } else {
            continue;
        };
        let len = end - m.start;
        let got = q.pmemsave(m.start, len);
        let want = &bytes[m.offset as usize..(m.offset + len) as usize];
        for (i, (g, w)) in got
            .chunks(PAGE as usize)
            .zip(want.chunks(PAGE as usize))
            .enumerate()
        {
            if g != w {
                diffs.push(format!(
                    "guest-physical {:#x} ({} page {:#x}): QEMU has {}, expected {}",
                    m.start + i as u64 * PAGE,
                    m.region,
                    (m.offset / PAGE) + i as u64,
                    describe(g),
                    describe(w)
                ));
            }
        }
        *pages.entry(m.region.clone()).or_insert(0) += len / PAGE;
    }
    assert!(
        diffs.is_empty(),
        "{what}: {} pages differ; first ones:\n  {}",
        diffs.len(),
        diffs[..diffs.len().min(8)].join("\n  ")
    );
    // pmemsave sees pc.ram at least on [0, 0xA0000) and [1 MiB, RAM).
    let min = (ram - 0x60000) / PAGE;
    assert!(
        pages.get("pc.ram").copied().unwrap_or(0) >= min,
        "{what}: only {:?} pc.ram pages are visible; expected at least {min}",
        pages.get("pc.ram")
    );
    pages
}

pub fn describe_bytes(p: &[u8]) -> String {
    if p.iter().all(|&b| b == 0) {
        "zeros".into()
    } else if p.iter().all(|&b| b == GARBAGE) {
        format!("{GARBAGE:#04x} garbage")
    } else {
        format!("bytes {:02x?}...", &p[..8])
    }
}

pub fn nonzero_pages(b: &[u8]) -> usize {
    b.chunks(PAGE as usize)
        .filter(|p| p.iter().any(|&x| x != 0))
        .count()
}

/// Capabilities of a destination with `caps` on (mapped-ram rules).
pub fn caps_of(caps: &[&str]) -> Capabilities {
    let mut c = Capabilities::for_profile(Profile::MappedRam);
    let settings: Vec<_> = caps
        .iter()
        .map(|n| (Capability::from_name(n).unwrap(), true))
        .collect();
    c.set(&settings).unwrap();
    c
}

/// Restore every block of `path` with migsim's reader into a destination
/// with `blocks` (QEMU's), starting as garbage when `dirty`.
pub fn migsim_restore(
    path: &Path,
    blocks: &[RamBlockDesc],
    machine: &str,
    caps: &[&str],
    dirty: bool,
) -> Result<(StreamInfo, Blocks), LoadError> {
    let file = DiskFile::open(path)?;
    let mut dest = Destination::new(blocks, dirty);
    let opts = LoadOptions {
        machine: Some(machine.to_string()),
        caps: Some(caps_of(caps)),
        ..LoadOptions::default()
    };
    let info = load(&file, &opts, &mut dest)?;
    let mem = blocks
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let mut v = Vec::with_capacity(b.used_length as usize);
            for p in 0..b.pages() {
                v.extend_from_slice(dest.page(i, p));
            }
            (b.name.clone(), v)
        })
        .collect();
    Ok((info, mem))
}

/// A fixed-ram block's bitmap bits and page slots, read from the file.
pub struct FixedRamBlock {
    pub bits: Vec<bool>,
    pub slots_nonzero: Vec<bool>,
}

pub fn fixed_ram_block(path: &Path, name: &str) -> FixedRamBlock {
    let file = DiskFile::open(path).unwrap();
    let info = inspect(&file).unwrap();
    let b = info.blocks.iter().find(|b| b.name == name).unwrap();
    let fr = b.fixed_ram.as_ref().expect("a mapped-ram file");
    let mut bitmap = vec![0u8; fr.bitmap_len as usize];
    file.read_at(fr.bitmap_offset, &mut bitmap).unwrap();
    let mut slot = vec![0u8; PAGE as usize];
    let mut bits = Vec::new();
    let mut slots_nonzero = Vec::new();
    for p in 0..b.pages {
        bits.push(bitmap[(p / 8) as usize] & (1 << (p % 8)) != 0);
        let n = file.read_at(fr.pages_offset + p * PAGE, &mut slot).unwrap();
        slots_nonzero.push(slot[..n].iter().any(|&x| x != 0));
    }
    FixedRamBlock {
        bits,
        slots_nonzero,
    }
}

pub fn fmt_mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / MIB as f64)
}

// ---------------------------------------------------------------------------
// migsim's side: a QEMU-shaped scenario and its expected memory
// ---------------------------------------------------------------------------

pub struct Simulated {
    pub scenario: Scenario,
    pub report: RunReport,
    /// Every block's bytes at switchover, rebuilt from the page states.
    pub memory: Blocks,
    content_seed: u64,
}

impl Simulated {
    pub fn ram(&self) -> u64 {
        self.scenario.blocks()[0].used_length
    }

    /// Save the run's files; returns (writer, path).
    pub fn save(&self, dir: &Path) -> Vec<(Layout, PathBuf)> {
        self.report
            .files
            .iter()
            .map(|f| {
                let p = dir.join(format!("{}.mig", f.writer));
                f.file.save(&p).unwrap();
                (f.writer, p)
            })
            .collect()
    }

    pub fn describe(&self) -> impl Fn(&[u8]) -> String + '_ {
        move |p: &[u8]| match identify(self.content_seed, p) {
            Identified::Zero => "zeros".into(),
            Identified::Data {
                block,
                page,
                version,
            } => format!("v{version} of block {block} page {page:#x}"),
            Identified::Garbage => describe_bytes(p),
        }
    }
}

/// Run `scenarios/qemu/NAME` (with the installed QEMU's versioned machine
/// type) and rebuild the guest's memory at switchover.
pub fn simulate(info: &QemuInfo, name: &str) -> Simulated {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios/qemu")
        .join(name);
    let mut s = Scenario::load(&path).unwrap();
    assert!(
        !s.guest.devices,
        "{name}: a QEMU-loadable scenario has devices = false"
    );
    let alias = if s.guest.machine.starts_with("pc-q35") {
        "q35"
    } else {
        "pc"
    };
    let local = info.machine(alias).to_string();
    if local != s.guest.machine {
        // The stream's machine type must equal the destination's.
        println!(
            "{name}: using {local} (this QEMU's `{alias}`) instead of {}",
            s.guest.machine
        );
        s.guest.machine = local;
    }
    let report = run(&s, &RunOptions::default());
    assert_eq!(
        report.verdict,
        Verdict::Pass,
        "{name}: {:?}",
        report.invariants
    );

    // The guest's memory at switchover, from the run's own page states.
    let blocks = s.blocks();
    let content_seed = report.content_seed;
    let mut buf = vec![0u8; PAGE as usize];
    let memory: Blocks = blocks
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let mut v = Vec::with_capacity(b.used_length as usize);
            for p in 0..b.pages() {
                fill_page(
                    content_seed,
                    i as u32,
                    p,
                    report.switchover[i][p as usize],
                    &mut buf,
                );
                v.extend_from_slice(&buf);
            }
            (b.name.clone(), v)
        })
        .collect();
    Simulated {
        scenario: s,
        report,
        memory,
        content_seed,
    }
}
