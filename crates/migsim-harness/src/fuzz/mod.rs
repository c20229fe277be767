//! The bodies of the cargo-fuzz targets, as plain functions, so stable
//! `cargo test` can replay every corpus and artifact file through them
//! (`tests/it/fuzz_corpus.rs`) and `cargo +nightly fuzz run <target>` drives
//! them with libFuzzer (`fuzz/fuzz_targets/<target>.rs`).
//!
//! Every target panics only when a property fails; the panic message names
//! the property and shows enough of the input to read the failure.
//!
//! * [`reader`]: arbitrary bytes as a migration file of either layout. The
//!   reader must answer `Ok` or `Err`: never panic, nor hang (libFuzzer's
//!   `-timeout`), nor allocate past libFuzzer's `-malloc_limit_mb`. Beyond
//!   that: [`inspect`](migsim_format::reader::inspect) (which loads into a
//!   [`NullSink`](migsim_format::reader::NullSink) without page data) and
//!   a full load into a sink that accepts every block like `NullSink` but
//!   checks the [`RamSink`] contract (whole pages, inside a declared
//!   block) agree: the same description or the same error (save the two
//!   divergences the reader documents: a stream without RAM END, and one
//!   without a vmdesc trailer, which `inspect` reads up to its first
//!   device section and a load refuses at that section); a file that
//!   loads has the layout docs/reference/reader-guarantees.md promises (page areas page-aligned,
//!   after their bitmaps, inside the file, blocks in order); a fixed-ram
//!   file loaded into a dirty [`Destination`] holds exactly the file's
//!   page where the bitmap bit is set and zeros where it is clear; a load
//!   checked against a destination's machine and fixed-ram setting only
//!   succeeds when the stream lists exactly that setting, and then
//!   describes the file as the unchecked load does.
//! * [`caps`] (structure-aware, [`CapsInput`]): a profile (fixed-ram or
//!   mapped-ram) and a sequence of `MigrationConfig::set_capabilities` and
//!   `set_parameters` calls. The checker must agree, call by call, with an
//!   independent table-driven model of both rule sets in this file:
//!   capabilities a profile lacks, incompatible pairs checked in order with
//!   their exact messages (the proposal's four; QEMU 10.0.2's postcopy +
//!   multifd, multifd + xbzrle, mapped-ram + xbzrle, mapped-ram +
//!   postcopy), compression and TLS refused while mapped-ram is on, and
//!   for every transport `check_transport`, `check_migrate` (seekable
//!   transport for the layout, multi-channel transport for multifd without
//!   mapped-ram, then TLS, then compression with mapped-ram) and
//!   `check_incoming_transport`, `direct_io_effective` (mapped-ram +
//!   multifd only); a refused call changes nothing; the load-time
//!   `check_incoming` messages. The final capabilities must not depend on
//!   the order of the settings that succeeded: replayed reversed and
//!   rotated, one call at a time or as one call, they reach the same
//!   state, and every call succeeds.
//! * [`roundtrip`] (structure-aware, [`RoundtripInput`]): a small scenario
//!   (1-3 blocks of 1-64 pages with distinct names, one-page blocks
//!   included; any workload; bandwidth, downtime, up to 6 passes, initial
//!   fill, zeroed or dirty destination) run through both writers. The
//!   verdict must be `pass` (every oracle invariant) and the run digest
//!   must be the same when the scenario is run twice. A failure prints the
//!   failed invariants and the scenario as TOML, ready to save under
//!   `scenarios/regressions/`.
//! * [`fixed_ram_mutate`] (structure-aware, [`MutateInput`]): writes a
//!   VALID small fixed-ram file with [`MigrationWriter`] (with the
//!   writer's 1 MiB-aligned page areas in a sparse in-memory file, or
//!   compacted so page areas are only page-aligned), checks its headers
//!   against a layout computed here from the format and that it restores
//!   what was sent, then applies targeted mutations (header version, page
//!   size, bitmap and page-area offsets of block k, bitmap bits, used_length
//!   with or without the MEM_SIZE total, the total alone, truncation,
//!   extension, overwrites in a page area, the stream tail or anywhere) so
//!   the fuzzer gets past the header checks, then runs every check of
//!   [`reader`] on the result.
//!
//! The `*_bytes` functions build a structure-aware input from raw bytes
//! exactly as `libfuzzer-sys` does (`Arbitrary::arbitrary_take_rest`), so a
//! corpus or crash file replays the same way under `cargo test`.
//! [`seed_corpus`] produces the checked-in seeds (see `fuzz/README.md`).
//!
//! One module per target ([`reader`](mod@reader), [`caps`](mod@caps),
//! [`roundtrip`](mod@roundtrip), [`fixed_ram_mutate`](mod@fixed_ram_mutate)),
//! the two independent models they check against ([`caps_model`]: the
//! capability rules; [`layout_model`]: where the fixed-ram writer puts
//! each block), the [`sparse_file`] the mutation target writes into
//! (shared with `migsim qemu fuzz`, as its mutations are: [`crate::mutate`]), and
//! the [`seeds`] of the checked-in corpus.

pub mod caps;
pub mod caps_model;
pub mod fixed_ram_mutate;
pub mod layout_model;
pub mod reader;
pub mod roundtrip;
pub mod seeds;
pub use crate::mutate::sparse_file;

use arbitrary::{Arbitrary, Unstructured};

use migsim_format::vmdesc::ParseMemo;
use migsim_format::writer::RamBlockDesc;

pub use self::caps::{CapsInput, CapsStep, ReceivedName, caps, caps_bytes};
pub use self::fixed_ram_mutate::{
    MutateInput, Mutation, Value32, Value64, fixed_ram_mutate, fixed_ram_mutate_bytes,
};
pub use self::reader::reader;
pub use self::roundtrip::{RoundtripInput, roundtrip, roundtrip_bytes};
pub use self::seeds::seed_corpus;

pub(crate) const PAGE: u64 = 4096;
pub(crate) const PAGE_USIZE: usize = PAGE as usize;
pub(crate) const MACHINE: &str = "pc-i440fx-10.0";

/// The destination blocks of the [`reader`] target; the seed files use the
/// same blocks, so the fuzzer starts from files this destination accepts.
pub fn reader_blocks() -> Vec<RamBlockDesc> {
    vec![
        RamBlockDesc {
            name: "pc.ram".into(),
            used_length: 4 * PAGE,
            shared: false,
        },
        RamBlockDesc {
            name: "vga.vram".into(),
            used_length: PAGE,
            shared: false,
        },
    ]
}

/// The trailers the targets parsed, kept across inputs: most inputs
/// are mutated away from their trailer, and parsing the same JSON again
/// finds nothing the first parse did not (the JSON parser is still fuzzed
/// by every input whose trailer is new). A fresh process, as when one
/// input is replayed, starts empty and parses.
pub(crate) static TRAILERS: std::sync::LazyLock<ParseMemo> =
    std::sync::LazyLock::new(ParseMemo::new);

/// Fill `buf` from `file` at `offset`, which must hold that many bytes.
pub(crate) fn read_exact<F: migsim_format::io::MigFile + ?Sized>(
    file: &F,
    offset: u64,
    buf: &mut [u8],
) {
    let n = file.read_at(offset, buf).expect("in-memory read");
    assert_eq!(
        n,
        buf.len(),
        "short read at {offset:#x} inside a region the reader accepted"
    );
}

/// The input libfuzzer-sys's typed `fuzz_target!` would build from `data`
/// (`None` where it skips the input: shorter than the type's size hint, or
/// `arbitrary_take_rest` fails).
pub(crate) fn typed_input<'a, T: Arbitrary<'a>>(data: &'a [u8]) -> Option<T> {
    if data.len() < T::size_hint(0).0 {
        return None;
    }
    T::arbitrary_take_rest(Unstructured::new(data)).ok()
}

/// A target's raw-bytes entry point.
pub type RawTarget = fn(&[u8]);

/// The fuzz targets by directory name, with their raw-bytes entry points.
pub const TARGETS: [(&str, RawTarget); 4] = [
    ("reader", reader),
    ("caps", caps_bytes),
    ("roundtrip", roundtrip_bytes),
    ("fixed_ram_mutate", fixed_ram_mutate_bytes),
];
