//! Several channels (the multifd idea) writing and reading one fixed-ram
//! file: pages sit at fixed offsets, so the file's bytes, the restored
//! memory, the verdict and the digest must not depend on the number of
//! channels, on where the file is kept (memory or disk) or on O_DIRECT.

use std::path::Path;

use migsim_format::caps::{Capabilities, Capability};
use migsim_format::io::AlignedBuf;
use migsim_format::io::{DiskFile, MigFile};
use migsim_format::reader::{LoadOptions, load};
use migsim_format::writer::{MigrationWriter, PageSource, RamBlockDesc};
use migsim_harness::run::{RunOptions, RunReport, run};
use migsim_harness::scenario::{Scenario, Verdict};
use migsim_harness::sim::dest::Destination;

use crate::support::migsim_command;
use crate::support::{PAGE_LEN as PAGE, scenario};

fn run_in(s: &Scenario, dir: Option<&Path>, channels: usize, direct_io: bool) -> RunReport {
    run(
        s,
        &RunOptions {
            file_dir: dir.map(Path::to_path_buf),
            direct_io,
            channels,
            ..RunOptions::default()
        },
    )
}

fn bytes_of(r: &RunReport, writer: migsim_format::Layout) -> Vec<u8> {
    r.files
        .iter()
        .find(|f| f.writer == writer)
        .unwrap_or_else(|| panic!("no {writer} file"))
        .file
        .to_vec()
}

#[test]
fn fixed_ram_files_are_byte_identical_for_1_2_and_4_channels_in_memory_and_on_disk() {
    for name in [
        "heavy-redirty",
        "multi-block-one-page",
        "zero-after-data-dirty-destination",
        "mapped-ram-heavy-redirty",
    ] {
        let s = scenario(name);
        let reference = run_in(&s, None, 1, false);
        assert_eq!(reference.verdict, Verdict::Pass, "{name}");
        let want = bytes_of(&reference, migsim_format::Layout::FixedRam);
        for (channels, direct) in [(1, false), (2, false), (4, false), (4, true)] {
            let dir = tempfile::tempdir().unwrap();
            for d in [None, Some(dir.path())] {
                if d.is_none() && direct {
                    continue;
                }
                let r = run_in(&s, d, channels, direct);
                let how = format!(
                    "{name}: {channels} channels, {}{}",
                    if d.is_some() { "disk" } else { "memory" },
                    if direct { ", O_DIRECT" } else { "" }
                );
                assert_eq!(r.verdict, Verdict::Pass, "{how}: {:?}", r.invariants);
                assert!(
                    bytes_of(&r, migsim_format::Layout::FixedRam) == want,
                    "{how}: bytes differ"
                );
                assert_eq!(r.digest, reference.digest, "{how}");
                if let Some(d) = d {
                    let on_disk = std::fs::read(d.join(format!("{name}.fixed-ram.mig"))).unwrap();
                    assert!(on_disk == want, "{how}: the file on disk differs");
                }
            }
        }
    }
}

/// Guest memory lent to the writer (`PageSource::pages`).
struct Lent(Vec<AlignedBuf>);

impl PageSource for Lent {
    fn fill(&self, block: usize, page: u64, buf: &mut [u8]) {
        let s = page as usize * PAGE;
        buf.copy_from_slice(&self.0[block][s..s + PAGE]);
    }
    fn pages(&self, block: usize, first: u64, count: usize) -> Option<&[u8]> {
        let s = first as usize * PAGE;
        Some(&self.0[block][s..s + count * PAGE])
    }
}

/// A batch with runs broken by zero pages, several blocks, pages out of
/// order and a re-sent page, written by `save_pages` with N channels to a
/// real file, equals the same pages sent one by one with `save_page`.
#[test]
fn save_pages_with_channels_equals_save_page_one_by_one() {
    let blocks = vec![
        RamBlockDesc {
            name: "pc.ram".into(),
            used_length: 3000 * PAGE as u64,
            shared: false,
        },
        RamBlockDesc {
            name: "vga.vram".into(),
            used_length: 300 * PAGE as u64,
            shared: false,
        },
    ];
    let content = |b: usize, p: u64, buf: &mut [u8]| {
        if p % 7 == 3 || (b == 1 && p < 40) {
            buf.fill(0);
        } else {
            for (i, x) in buf.iter_mut().enumerate() {
                *x = (i as u64 ^ p.wrapping_mul(31) ^ (b as u64) << 5) as u8 | 1;
            }
        }
    };
    let mut pages: Vec<(usize, u64)> = (0..3000).map(|p| (0, p)).collect();
    pages.extend((0..300).rev().map(|p| (1, p)));
    pages.extend([(0, 5), (0, 2999), (1, 0), (0, 6)]);
    let caps = Capabilities::from_enabled(&[Capability::FixedRam]).unwrap();

    let mut one =
        MigrationWriter::start(Vec::new(), "pc-i440fx-10.0", &caps, blocks.clone()).unwrap();
    one.begin_completion().unwrap();
    let mut buf = vec![0u8; PAGE];
    for &(b, p) in &pages {
        content(b, p, &mut buf);
        one.save_page(b, p, &buf).unwrap();
    }
    let (want, want_stats) = one.finish(&[]).unwrap();

    // The same content held in memory and lent without a copy.
    let lent = Lent(
        blocks
            .iter()
            .enumerate()
            .map(|(b, blk)| {
                let mut mem = AlignedBuf::zeroed(blk.used_length as usize);
                for (p, page) in mem.chunks_exact_mut(PAGE).enumerate() {
                    content(b, p as u64, page);
                }
                mem
            })
            .collect(),
    );
    for channels in [1, 2, 3, 4, 8] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.mig");
        for (direct, lend) in [(false, false), (true, false), (false, true), (true, true)] {
            let file = if direct {
                DiskFile::create_direct(&path).unwrap()
            } else {
                DiskFile::create(&path).unwrap()
            };
            let mut w =
                MigrationWriter::start(file, "pc-i440fx-10.0", &caps, blocks.clone()).unwrap();
            w.begin_completion().unwrap();
            // In uneven batches, as the pre-copy driver sends them.
            for batch in pages.chunks(777) {
                let source: &dyn PageSource = if lend { &lent } else { &content };
                w.save_pages(batch, source, channels).unwrap();
            }
            let (f, stats) = w.finish(&[]).unwrap();
            assert_eq!(stats, want_stats, "{channels} channels");
            assert_eq!(f.len(), want.len() as u64);
            let got = std::fs::read(&path).unwrap();
            assert!(
                got == want,
                "{channels} channels (O_DIRECT {direct}, lent {lend}): file differs at byte {:?}",
                got.iter().zip(&want).position(|(a, b)| a != b)
            );
        }
    }
}

/// Reading with N channels straight into destination memory gives the
/// same memory as one channel, for a fresh and for a dirty destination.
#[test]
fn load_with_channels_restores_the_same_memory() {
    let s = scenario("zero-after-data-dirty-destination");
    let r = run_in(&s, None, 1, false);
    let f = r
        .files
        .iter()
        .find(|f| f.writer == migsim_format::Layout::FixedRam)
        .unwrap();
    let caps = Capabilities::from_enabled(&[Capability::FixedRam]).unwrap();
    let opts = LoadOptions {
        machine: Some(s.guest.machine.clone()),
        caps: Some(caps),
        ..LoadOptions::default()
    };
    let blocks = s.blocks();
    for dirty in [false, true] {
        let mut one = Destination::new(&blocks, dirty);
        load(&f.file, &opts, &mut one).unwrap();
        for channels in [2, 3, 4, 16] {
            let mut many = Destination::new(&blocks, dirty);
            let opts = LoadOptions {
                channels,
                ..opts.clone()
            };
            load(&f.file, &opts, &mut many).unwrap();
            for (b, blk) in blocks.iter().enumerate() {
                for p in 0..blk.pages() {
                    assert!(
                        one.page(b, p) == many.page(b, p),
                        "{} page {p:#x} differs with {channels} channels (dirty {dirty})",
                        blk.name
                    );
                }
            }
        }
    }
}

/// The oracle judges with reader channels too: a broken reader is still
/// caught, with the same story, however many channels read.
#[test]
fn a_broken_reader_is_caught_the_same_way_with_channels() {
    use migsim_harness::bugs::Bug;
    let s = scenario("zero-after-data-dirty-destination");
    let story = |channels| {
        let r = run(
            &s,
            &RunOptions {
                bug: Some(Bug::ReaderSkipsClearBits),
                channels,
                ..RunOptions::default()
            },
        );
        assert_eq!(r.verdict, Verdict::Fail, "{channels} channels");
        r.invariants
            .iter()
            .filter(|i| !i.ok)
            .map(|i| format!("{} [{}]: {}", i.name, i.writer, i.detail))
            .collect::<Vec<_>>()
    };
    let one = story(1);
    assert!(
        one.iter().any(|s| s.contains("restored garbage")),
        "{one:?}"
    );
    assert_eq!(story(4), one);
}

/// A big guest with its file on disk: the oracle keeps 8 bytes a page, not
/// the guest's memory, so peak RSS stays far under the guest size.
#[test]
fn big_guest_on_disk_stays_far_under_guest_size_in_rss() {
    let dir = tempfile::tempdir().unwrap();
    let out = migsim_command()
        .args([
            "run",
            "scenarios/idle.toml",
            "--ram",
            "512M",
            "--writers",
            "fixed-ram",
        ])
        .arg("--file-dir")
        .arg(dir.path())
        .args(["--channels", "2", "--json"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verdict"], "pass");
    assert_eq!(v["ram_bytes"].as_u64().unwrap(), 512 << 20);
    let rss = v["peak_rss_bytes"].as_u64().unwrap();
    assert!(rss > 0 && rss < (512 << 20) / 4, "peak RSS {rss} bytes");
    let file = dir.path().join("idle.fixed-ram.mig");
    assert_eq!(
        std::fs::metadata(&file).unwrap().len(),
        v["fixed_ram_size"].as_u64().unwrap()
    );
    assert!(
        v["replay"]
            .as_str()
            .unwrap()
            .contains("--ram 512M --writers fixed-ram --file-dir"),
        "{}",
        v["replay"]
    );
}

/// A source that lends the wrong number of bytes gets an error, not a
/// panic or a silently short bitmap.
#[test]
fn a_source_lending_the_wrong_length_is_an_error() {
    struct Short;
    impl PageSource for Short {
        fn fill(&self, _: usize, _: u64, buf: &mut [u8]) {
            buf.fill(1);
        }
        fn pages(&self, _: usize, _: u64, count: usize) -> Option<&[u8]> {
            static MEM: [u8; 2 * PAGE] = [1; 2 * PAGE];
            Some(&MEM[..(count.min(2) * PAGE).saturating_sub(1)])
        }
    }
    let caps = Capabilities::from_enabled(&[Capability::FixedRam]).unwrap();
    let blocks = vec![RamBlockDesc {
        name: "pc.ram".into(),
        used_length: 8 * PAGE as u64,
        shared: false,
    }];
    let mut w = MigrationWriter::start(Vec::new(), "pc-i440fx-10.0", &caps, blocks).unwrap();
    w.begin_completion().unwrap();
    let err = w
        .save_pages(&[(0, 0), (0, 1)], &Short, 1)
        .expect_err("a short loan must be refused");
    assert!(
        err.to_string().contains("lent 8191 bytes for 2 pages"),
        "{err}"
    );
}

/// A fixed-ram file of one block of `pages` pages (every seventh page
/// zero, so the bitmap has holes; the others distinct).
fn many_mib_file(pages: u64) -> (Vec<u8>, Vec<RamBlockDesc>, LoadOptions) {
    let blocks = vec![RamBlockDesc {
        name: "pc.ram".into(),
        used_length: pages * PAGE as u64,
        shared: false,
    }];
    let caps = Capabilities::from_enabled(&[Capability::FixedRam]).unwrap();
    let mut w =
        MigrationWriter::start(Vec::new(), "pc-i440fx-10.0", &caps, blocks.clone()).unwrap();
    w.begin_completion().unwrap();
    let mut buf = vec![0u8; PAGE];
    for p in 0..pages {
        if p % 7 == 3 {
            buf.fill(0);
        } else {
            for (i, x) in buf.chunks_exact_mut(8).enumerate() {
                x.copy_from_slice(&(p << 20 | i as u64 | 1).to_le_bytes());
            }
        }
        w.save_page(0, p, &buf).unwrap();
    }
    let (file, _) = w.finish(&[]).unwrap();
    let opts = LoadOptions {
        machine: Some("pc-i440fx-10.0".into()),
        caps: Some(caps),
        ..LoadOptions::default()
    };
    (file, blocks, opts)
}

/// A block of many MiB is cut into 1 MiB pieces that the channels take in
/// file order: the memory is the same for any number of channels, into
/// fresh and dirty memory, a last piece shorter than the others included.
#[test]
fn a_block_dealt_to_channels_piece_by_piece_restores_the_same_memory() {
    // 20 MiB and 5 pages: 21 pieces, the last of 5 pages.
    let (file, blocks, opts) = many_mib_file(20 * 256 + 5);
    for dirty in [false, true] {
        let mut one = Destination::new(&blocks, dirty);
        load(&file, &opts, &mut one).unwrap();
        assert_eq!(one.page(0, 11)[8..16], (11u64 << 20 | 1).to_le_bytes());
        assert!(one.page(0, 3).iter().all(|&b| b == 0));
        for channels in [2, 3, 4, 16, 64] {
            let mut many = Destination::new(&blocks, dirty);
            let opts = LoadOptions {
                channels,
                ..opts.clone()
            };
            load(&file, &opts, &mut many).unwrap();
            assert!(
                one.block(0) == many.block(0),
                "{channels} channels (dirty {dirty}): memory differs at byte {:?}",
                one.block(0)
                    .iter()
                    .zip(many.block(0))
                    .position(|(a, b)| a != b)
            );
        }
    }
}

/// A sink whose parts refuse two pages: `late` at the start of its piece,
/// at once, and `early` (an earlier piece) only after a pause, so in time
/// `late` fails first.
struct Refusing {
    early: u64,
    late: u64,
}

struct RefusingPart {
    early: u64,
    late: u64,
}

fn refuse(first: u64, count: u64, early: u64, late: u64) -> Result<(), migsim_format::LoadError> {
    let range = first..first + count;
    if range.contains(&early) {
        std::thread::sleep(std::time::Duration::from_millis(30));
        return Err(std::io::Error::other(format!("page {early} refused")).into());
    }
    if range.contains(&late) {
        return Err(std::io::Error::other(format!("page {late} refused")).into());
    }
    Ok(())
}

impl migsim_format::reader::BlockPart for RefusingPart {
    fn write_pages(&mut self, first: u64, data: &[u8]) -> Result<(), migsim_format::LoadError> {
        refuse(first, (data.len() / PAGE) as u64, self.early, self.late)
    }
    fn zero_pages(&mut self, _: u64, _: u64) -> Result<(), migsim_format::LoadError> {
        Ok(())
    }
}

impl migsim_format::reader::RamSink for Refusing {
    fn declare_block(&mut self, _: &str, _: u64) -> Result<(), migsim_format::LoadError> {
        Ok(())
    }
    fn write_pages(
        &mut self,
        _: usize,
        first: u64,
        data: &[u8],
    ) -> Result<(), migsim_format::LoadError> {
        refuse(first, (data.len() / PAGE) as u64, self.early, self.late)
    }
    fn zero_pages(&mut self, _: usize, _: u64, _: u64) -> Result<(), migsim_format::LoadError> {
        Ok(())
    }
    fn split(
        &mut self,
        _: usize,
        bounds: &[u64],
    ) -> Option<Vec<Box<dyn migsim_format::reader::BlockPart + Send + '_>>> {
        Some(
            bounds
                .windows(2)
                .map(|_| {
                    Box::new(RefusingPart {
                        early: self.early,
                        late: self.late,
                    }) as Box<dyn migsim_format::reader::BlockPart + Send>
                })
                .collect(),
        )
    }
}

/// When pieces fail on several channels, the load reports the failure
/// one channel would: the first in file order, not the first in time.
#[test]
fn channels_report_the_first_failing_page_in_file_order_not_in_time() {
    let (file, _, opts) = many_mib_file(12 * 256);
    // A page 2.5 MiB in (piece 2; not a zero page) fails after a pause; page 4 MiB in
    // (piece 4, the start of a read) fails at once.
    let mut sink = Refusing {
        early: 2 * 256 + 129,
        late: 4 * 256,
    };
    for channels in [1, 2, 4, 16] {
        for _ in 0..3 {
            let opts = LoadOptions {
                channels,
                ..opts.clone()
            };
            let e = load(&file, &opts, &mut sink).unwrap_err().to_string();
            assert!(e.contains("page 641 refused"), "{channels} channels: {e}");
        }
    }
}
