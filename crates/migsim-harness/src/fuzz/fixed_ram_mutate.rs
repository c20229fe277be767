//! The `fixed_ram_mutate` target: a valid small fixed-ram file, then
//! targeted mutations of its fields, then every check of the `reader`
//! target.

use arbitrary::Arbitrary;

use crate::sim::dest::GARBAGE;
use migsim_format::caps::{Capabilities, Capability};
use migsim_format::fifo::FifoMap;
use migsim_format::reader::{self, LoadOptions, StreamInfo};
use migsim_format::vmdesc::VmdescCache;
use migsim_format::writer::{DeviceState, MigrationWriter, RamBlockDesc};

use super::{MACHINE, PAGE, PAGE_USIZE, TRAILERS, typed_input};

use super::layout_model::*;
use super::reader::check_file_sharing;
use super::sparse_file::SparseFile;
use crate::mutate::apply_mutations;
pub use crate::mutate::{Mutation, Value32, Value64};

/// Input of the [`fixed_ram_mutate`] target.
#[derive(Clone, Debug, Arbitrary)]
pub struct MutateInput {
    /// Pages - 1 of each block (1..=16 pages), at most 3 blocks.
    pub blocks: Vec<u8>,
    /// Layout of the valid file: the writer's own (1 MiB-aligned page
    /// areas) when `layout % 4 == 0`, otherwise compacted (page areas only
    /// page-aligned, a few KiB instead of a MiB per block: faster).
    pub layout: u8,
    /// Number of devices (FULL sections) after RAM, 0..=2.
    pub devices: u8,
    /// Pages sent per pass as (block, page, fill byte; 0 = zero page); the
    /// last pass is the completion pass.
    pub passes: Vec<Vec<(u8, u8, u8)>>,
    /// What to break.
    pub mutations: Vec<Mutation>,
}

/// Byte `i` of every data page before its fill: `i * 31` (mod 256).
const PAGE_PATTERN: [u8; PAGE_USIZE] = {
    let mut p = [0u8; PAGE_USIZE];
    let mut i = 0;
    while i < PAGE_USIZE {
        p[i] = (i as u8).wrapping_mul(31);
        i += 1;
    }
    p
};

/// The bytes of a page sent with `fill` (0 = a zero page): byte `i` is
/// `fill ^ i*31 ^ block ^ rotl3(page)`, byte 0 the fill. Built eight
/// bytes a step (instrumented code pays per loop iteration).
pub(crate) fn page_bytes(block: usize, page: u64, fill: u8) -> [u8; PAGE_USIZE] {
    let mut p = [0u8; PAGE_USIZE];
    if fill != 0 {
        let key = u64::from_ne_bytes([fill ^ (block as u8) ^ (page as u8).rotate_left(3); 8]);
        for (out, base) in p.chunks_exact_mut(8).zip(PAGE_PATTERN.chunks_exact(8)) {
            let word = u64::from_ne_bytes(base.try_into().expect("8 bytes")) ^ key;
            out.copy_from_slice(&word.to_ne_bytes());
        }
        p[0] = fill;
    }
    p
}

pub(crate) fn devices(n: u8) -> Vec<DeviceState> {
    let all = [("timer", 2u32, 24usize), ("cpu", 12, 64)];
    all.iter()
        .take(usize::from(n % 3))
        .map(|&(idstr, version_id, len)| DeviceState {
            idstr: idstr.into(),
            instance_id: 0,
            version_id,
            payload: (0..len).map(|i| (i as u8).wrapping_mul(7) ^ 0x5a).collect(),
        })
        .collect()
}

/// Sends: per pass, (block, page, fill); the last pass is the completion
/// pass.
pub(crate) type Passes = Vec<Vec<(usize, u64, u8)>>;

/// Write a valid file with the public writer. Returns the file and, per
/// block and page, the fill byte of the last send (`None`: never sent).
pub(crate) fn write_file(
    blocks: &[RamBlockDesc],
    fixed: bool,
    passes: &Passes,
    devs: &[DeviceState],
) -> (SparseFile, Vec<Vec<Option<u8>>>) {
    let enabled: &[Capability] = if fixed { &[Capability::FixedRam] } else { &[] };
    let caps = Capabilities::from_enabled(enabled).expect("valid capabilities");
    let mut w = MigrationWriter::start(SparseFile::default(), MACHINE, &caps, blocks.to_vec())
        .expect("writer starts");
    let mut last: Vec<Vec<Option<u8>>> = blocks
        .iter()
        .map(|b| vec![None; (b.used_length / PAGE) as usize])
        .collect();
    let n = passes.len();
    for (k, pass) in passes.iter().enumerate() {
        if k + 1 == n {
            w.begin_completion().expect("begin_completion");
        } else {
            w.begin_iteration().expect("begin_iteration");
        }
        for &(b, p, fill) in pass {
            w.save_page(b, p, &page_bytes(b, p, fill))
                .expect("save_page");
            last[b][p as usize] = Some(fill);
        }
        if k + 1 != n {
            w.end_iteration().expect("end_iteration");
        }
    }
    let (file, _) = w.finish(devs).expect("finish");
    (file, last)
}

/// Check a freshly written file restores what was sent: for fixed-ram every
/// page (never-sent and zero pages read as zero), for sequential the pages
/// sent (the rest keep the destination's garbage).
pub(crate) fn check_valid_file(
    file: &SparseFile,
    blocks: &[RamBlockDesc],
    last: &[Vec<Option<u8>>],
    fixed: bool,
    cache: &VmdescCache,
) -> StreamInfo {
    let mut dest = super::reader::dirty_destination(blocks);
    let caps = Capabilities::from_enabled(if fixed { &[Capability::FixedRam] } else { &[] })
        .expect("valid");
    let opts = LoadOptions {
        machine: Some(MACHINE.into()),
        caps: Some(caps),
        vmdesc_cache: Some(cache.clone()),
        ..LoadOptions::default()
    };
    let info = reader::load(file, &opts, &mut dest)
        .unwrap_or_else(|e| panic!("a valid file written by migsim does not load: {e}"));
    for (b, pages) in last.iter().enumerate() {
        for (p, fill) in pages.iter().enumerate() {
            let want = match fill {
                Some(f) => page_bytes(b, p as u64, *f),
                None if fixed => [0; PAGE_USIZE],
                None => [GARBAGE; PAGE_USIZE],
            };
            assert!(
                dest.page(b, p as u64) == want,
                "valid file: block {b} page {p} (last sent with fill {fill:?}) restored wrong"
            );
        }
    }
    super::reader::DIRTY.set(Some(dest));
    info
}

/// What decides an input's valid file: block sizes, sends, devices and
/// layout (everything of [`MutateInput`] but the mutations).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ValidKey {
    pages: Vec<u64>,
    passes: Passes,
    devices: u8,
    compact: bool,
}

/// A valid file written and checked, with its description and the
/// comparing trailer cache that holds its vmdesc answer. Cheap to clone:
/// the file's bytes and the description are shared.
#[derive(Clone, Debug)]
struct Valid {
    file: SparseFile,
    info: std::sync::Arc<StreamInfo>,
    cache: VmdescCache,
}

/// Valid files by [`ValidKey`], kept across inputs: most inputs are
/// mutated in their mutations, not their configuration, and writing and
/// checking the same configuration again runs the same deterministic
/// code on the same bytes (its coverage came with the first input that
/// had it). At most [`VALID_ENTRIES`] files and [`VALID_BYTES`] of their
/// chunks, oldest dropped first. A fresh process (a replayed input)
/// starts empty, so a reproducer writes and checks its file.
static VALID: std::sync::LazyLock<std::sync::Mutex<FifoMap<ValidKey, Valid>>> =
    std::sync::LazyLock::new(|| std::sync::Mutex::new(FifoMap::new(VALID_ENTRIES, VALID_BYTES)));

const VALID_ENTRIES: usize = 512;
const VALID_BYTES: usize = 64 << 20;

/// Write the input's valid file and check it: headers against the
/// layout model, then a load that must restore every page sent.
fn write_valid(input: &MutateInput, blocks: &[RamBlockDesc], passes: &Passes) -> Valid {
    let devs = devices(input.devices);
    let (written, last) = write_file(blocks, true, passes, &devs);
    let layout = model_layout(blocks);
    check_headers(&written, blocks, &layout);
    let file = if !input.layout.is_multiple_of(4) {
        compact(&written, &layout)
    } else {
        written
    };
    // One trailer search serves the valid file and, when the mutations
    // left the trailer alone, the mutated one: compared once, then
    // pinned for its five loads.
    let cache = VmdescCache::new().remembering(&TRAILERS);
    let info = check_valid_file(&file, blocks, &last, true, &cache);
    Valid {
        file,
        info: info.into(),
        cache,
    }
}

/// The input's valid file, from [`VALID`] when an earlier input had the
/// same configuration.
fn valid_file(input: &MutateInput, blocks: &[RamBlockDesc], passes: Passes) -> Valid {
    let key = ValidKey {
        pages: blocks.iter().map(|b| b.used_length / PAGE).collect(),
        passes,
        devices: input.devices % 3,
        compact: !input.layout.is_multiple_of(4),
    };
    let lock = || VALID.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(v) = lock().get(&key) {
        return v.clone();
    }
    let v = write_valid(input, blocks, &key.passes);
    let size = v.file.stored_bytes();
    lock().insert(key, v.clone(), size);
    v
}

/// Structure-aware fixed-ram mutation target (see the module docs).
pub fn fixed_ram_mutate(input: MutateInput) {
    let blocks = input.blocks();
    let passes = input.passes(&blocks);
    let Valid {
        mut file,
        info,
        cache,
    } = valid_file(&input, &blocks, passes);
    apply_mutations(&mut file, &info, &input.mutations);
    // An in-memory SparseFile cannot fail a read; were the search to
    // fail, the loads meet the same error and check it.
    let pinned = cache
        .pinned_to(&file)
        .unwrap_or_else(|_| VmdescCache::for_one_file().remembering(&TRAILERS));
    check_file_sharing(&file, &blocks, pinned);
}

/// [`fixed_ram_mutate`] from raw bytes, as libFuzzer's typed target builds
/// its input.
pub fn fixed_ram_mutate_bytes(data: &[u8]) {
    if let Some(input) = typed_input::<MutateInput>(data) {
        fixed_ram_mutate(input);
    }
}

impl MutateInput {
    fn blocks(&self) -> Vec<RamBlockDesc> {
        let names = ["pc.ram", "vga.vram", "pc.bios"];
        let pages: Vec<u8> = if self.blocks.is_empty() {
            vec![3]
        } else {
            self.blocks.iter().take(3).copied().collect()
        };
        pages
            .iter()
            .zip(names)
            .map(|(&p, name)| RamBlockDesc {
                name: name.into(),
                used_length: (1 + u64::from(p % 16)) * PAGE,
                shared: false,
            })
            .collect()
    }

    fn passes(&self, blocks: &[RamBlockDesc]) -> Passes {
        let mut passes: Passes = self
            .passes
            .iter()
            .take(5)
            .map(|pass| {
                pass.iter()
                    .take(32)
                    .map(|&(b, p, fill)| {
                        let b = usize::from(b) % blocks.len();
                        (b, u64::from(p) % (blocks[b].used_length / PAGE), fill)
                    })
                    .collect()
            })
            .collect();
        if passes.is_empty() {
            passes.push(Vec::new());
        }
        passes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(layout: u8, fill: u8) -> MutateInput {
        MutateInput {
            blocks: vec![2, 0],
            layout,
            devices: 1,
            passes: vec![vec![(0, 1, 7), (1, 0, fill)], vec![(0, 2, 0), (0, 1, 9)]],
            mutations: Vec::new(),
        }
    }

    /// An input whose configuration an earlier input had gets the valid
    /// file that configuration writes: the same bytes and description as
    /// writing it afresh, for both layouts; another configuration gets
    /// its own.
    #[test]
    fn a_remembered_valid_file_is_the_one_written_again() {
        for layout in [0, 1] {
            let i = input(layout, 0x31);
            let (blocks, passes) = (i.blocks(), i.passes(&i.blocks()));
            let first = valid_file(&i, &blocks, passes.clone());
            let again = valid_file(&i, &blocks, passes.clone());
            let fresh = write_valid(&i, &blocks, &passes);
            for v in [&first, &again] {
                assert!(
                    v.file.to_vec() == fresh.file.to_vec(),
                    "layout {layout}: bytes"
                );
                assert_eq!(v.info, fresh.info, "layout {layout}: description");
            }
            let other = input(layout, 0x32);
            let o = valid_file(&other, &blocks, other.passes(&blocks));
            assert!(
                o.file.to_vec() != fresh.file.to_vec(),
                "another fill, other bytes"
            );
        }
    }
}
