//! Replays every fuzz input under stable `cargo test`: each file in
//! `fuzz/corpus/<target>/` and `fuzz/artifacts/<target>/` (crashes,
//! timeouts and slow inputs libFuzzer saved) goes through the same library
//! function the cargo-fuzz target calls (`migsim_harness::fuzz`, and
//! `migsim::fuzz_cli` for the `cli` target, whose body drives the root
//! crate's command line). So an input the fuzzer once found stays guarded
//! without nightly.
//!
//! A target that panics fails the test with the target, the file and the
//! panic message; every file is tried before the test fails.
//!
//! `cargo test --release --test it -- --ignored regenerate_seed_corpus`
//! rewrites the checked-in seeds (`seed_corpus()` plus the smallest real
//! QEMU save, `tests/data/qemu/seq.mig.gz`, made cheap to fuzz by
//! `compact_qemu_seed`).

use std::fs;
use std::io::Read;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::Instant;

use migsim_harness::fuzz::seeds::{QEMU_SEED_DROPPED_DEVICE, compact_qemu_seed};
use migsim_harness::fuzz::{RawTarget, TARGETS, seed_corpus};

/// Every target: the harness's, and `cli` from the root crate.
fn targets() -> Vec<(&'static str, RawTarget)> {
    let mut t = TARGETS.to_vec();
    t.push(("cli", migsim::fuzz_cli::cli_bytes));
    t
}

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// Regular files in `dir`, sorted; none if the directory does not exist.
/// Dot files (libFuzzer's `.state`, editors' files) are skipped.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    files.sort();
    files
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic payload)".into()
    }
}

/// Run `target` on `data`; the panic message if it panicked.
fn run_one(target: fn(&[u8]), data: &[u8]) -> Option<String> {
    panic::catch_unwind(AssertUnwindSafe(|| target(data)))
        .err()
        .map(|p| panic_text(&*p))
}

#[test]
fn every_corpus_and_artifact_file_passes_its_target() {
    // Panics are caught and reported below, one line each.
    let hook = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    let mut failures = Vec::new();
    let mut counts = Vec::new();
    for (name, target) in targets() {
        let mut n = 0;
        for kind in ["corpus", "artifacts"] {
            for path in files_in(&fuzz_dir().join(kind).join(name)) {
                let data = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                let start = Instant::now();
                if let Some(msg) = run_one(target, &data) {
                    failures.push(format!(
                        "target {name} panicked on {} ({} bytes): {msg}",
                        path.display(),
                        data.len()
                    ));
                }
                let took = start.elapsed();
                if took.as_secs() >= 2 {
                    failures.push(format!(
                        "target {name} took {took:?} on {} (libFuzzer -timeout=2 calls that a hang)",
                        path.display()
                    ));
                }
                n += 1;
            }
        }
        counts.push(format!("{name}: {n}"));
    }
    panic::set_hook(hook);
    assert!(
        failures.is_empty(),
        "{} fuzz input(s) fail (reproduce with `cargo +nightly fuzz run TARGET FILE` in fuzz/):\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The seeds are checked in: an empty corpus means a broken checkout.
    for c in &counts {
        assert!(!c.ends_with(": 0"), "no corpus files found ({c})");
    }
    eprintln!("fuzz corpus replayed: {}", counts.join(", "));
}

/// Every cargo-fuzz target (`fuzz/fuzz_targets/*.rs`) is replayed here.
#[test]
fn every_fuzz_target_is_replayed() {
    let names: Vec<&str> = targets().iter().map(|(n, _)| *n).collect();
    for f in files_in(&fuzz_dir().join("fuzz_targets")) {
        let stem = f.file_stem().unwrap().to_string_lossy().into_owned();
        assert!(
            names.contains(&stem.as_str()),
            "fuzz target {stem} is not in tests/it/fuzz_corpus.rs's targets()"
        );
    }
}

/// The seeds as generated now (not only as checked in) pass their targets,
/// and the reader seeds are files the reader accepts.
#[test]
fn generated_seeds_pass_their_targets() {
    for (name, file, data) in seed_corpus() {
        let (_, target) = TARGETS
            .iter()
            .find(|(t, _)| *t == name)
            .unwrap_or_else(|| panic!("seed for unknown target {name}"));
        if let Some(msg) = run_one(*target, &data) {
            panic!("seed {name}/{file} panics: {msg}");
        }
        if name == "reader" {
            let info = migsim_format::reader::inspect(&data)
                .unwrap_or_else(|e| panic!("reader seed {file} does not inspect: {e}"));
            let want = if file.starts_with("fixed-ram") {
                "fixed-ram"
            } else {
                "sequential"
            };
            assert_eq!(info.layout.name(), want, "{file}");
        }
    }
}

/// Rewrite `fuzz/corpus/<target>/` seeds. Files the fuzzer added (other
/// names) are left alone.
#[test]
#[ignore = "writes fuzz/corpus; run by hand to regenerate the seeds"]
fn regenerate_seed_corpus() {
    let corpus = fuzz_dir().join("corpus");
    for (target, file, data) in seed_corpus() {
        let dir = corpus.join(target);
        fs::create_dir_all(&dir).expect("create corpus dir");
        fs::write(dir.join(&file), data).expect("write seed");
    }
    let gz = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/qemu/seq.mig.gz");
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(fs::File::open(&gz).expect("open seq.mig.gz"))
        .read_to_end(&mut raw)
        .expect("gunzip seq.mig.gz");
    let seed = compact_qemu_seed(&raw).expect("compact the QEMU seed");
    fs::write(corpus.join("reader").join("qemu-seq.mig"), seed).expect("write QEMU seed");
}

/// The compacted QEMU seed is still a real QEMU save to the reader: the
/// same blocks, sections and devices (less the one left out), its vmdesc
/// found, and a fraction of the size.
#[test]
fn compacted_qemu_seed_keeps_the_structure_of_the_save() {
    let gz = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/qemu/seq.mig.gz");
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(fs::File::open(&gz).expect("open seq.mig.gz"))
        .read_to_end(&mut raw)
        .expect("gunzip seq.mig.gz");
    let seed = compact_qemu_seed(&raw).expect("compact");
    let a = migsim_format::reader::inspect(&raw).expect("the save inspects");
    let b = migsim_format::reader::inspect(&seed).expect("the compacted seed inspects");
    assert!(
        seed.len() * 5 < raw.len(),
        "{} of {} bytes",
        seed.len(),
        raw.len()
    );
    assert_eq!((a.layout, &a.machine), (b.layout, &b.machine));
    let blocks = |i: &migsim_format::reader::StreamInfo| {
        i.blocks
            .iter()
            .map(|b| (b.name.clone(), b.used_length))
            .collect::<Vec<_>>()
    };
    assert_eq!(blocks(&a), blocks(&b));
    let kinds = |i: &migsim_format::reader::StreamInfo, drop: &str| {
        i.sections
            .iter()
            .filter(|s| s.idstr != drop)
            .map(|s| (s.kind, s.idstr.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(kinds(&a, QEMU_SEED_DROPPED_DEVICE), kinds(&b, ""));
    assert_eq!(b.vmdesc_devices + 1, a.vmdesc_devices);
    // Each block keeps its first page's data; the other pages are zero records.
    for (x, y) in a.blocks.iter().zip(&b.blocks) {
        assert!(y.pages_present >= 1 || x.pages_present == 0, "{}", x.name);
        assert!(y.pages_present <= x.pages_present, "{}", x.name);
    }
    // The checked-in seed is this file.
    let checked_in = fs::read(fuzz_dir().join("corpus/reader/qemu-seq.mig")).unwrap();
    assert!(
        checked_in == seed,
        "fuzz/corpus/reader/qemu-seq.mig is not compact_qemu_seed(seq.mig.gz): regenerate"
    );
}

/// The `reader` target shares one `VmdescCache` between its reads of an
/// input; a cache handed one file after another (as here, one cache for
/// every `reader` input, each read twice) must give every file exactly
/// what a read without it gives, trailer found or not.
#[test]
fn a_shared_vmdesc_cache_never_changes_what_a_read_gives() {
    use migsim_format::io::Bytes;
    use migsim_format::reader::{LoadOptions, NullSink, inspect, inspect_sharing, load};
    use migsim_format::vmdesc::VmdescCache;
    let outcome = |r: Result<migsim_format::StreamInfo, migsim_format::LoadError>| {
        r.map_err(|e| e.to_string())
    };
    let cache = VmdescCache::new();
    let shared = LoadOptions {
        vmdesc_cache: Some(cache.clone()),
        ..LoadOptions::default()
    };
    let files = files_in(&fuzz_dir().join("corpus/reader"));
    assert!(files.len() > 10, "the reader corpus is missing");
    let mut with_trailer = 0;
    for path in &files {
        let data = fs::read(path).expect("corpus file");
        let file = Bytes(&data);
        let plain = outcome(inspect(&file));
        let loaded = outcome(load(&file, &LoadOptions::default(), &mut NullSink));
        with_trailer += usize::from(plain.as_ref().is_ok_and(|i| i.vmdesc_offset.is_some()));
        for round in 0..2 {
            assert_eq!(
                outcome(inspect_sharing(&file, Some(&cache))),
                plain,
                "{} (inspect, round {round})",
                path.display()
            );
            assert_eq!(
                outcome(load(&file, &shared, &mut NullSink)),
                loaded,
                "{} (load, round {round})",
                path.display()
            );
        }
    }
    assert!(
        with_trailer > 5,
        "only {with_trailer} inputs have a vmdesc trailer"
    );
}
