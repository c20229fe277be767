//! Helpers every module of this test binary uses: the machine type, page
//! and block builders, the fixed-ram capability set, load options, and
//! loading a curated scenario by name.

use std::path::Path;

use migsim_format::SaveError;
use migsim_format::caps::{Capabilities, Capability};
use migsim_format::reader::LoadOptions;
use migsim_format::writer::{MigrationWriter, RamBlockDesc};
use migsim_harness::scenario::Scenario;

/// The machine type the tests' streams carry.
pub const MACHINE: &str = "pc-i440fx-10.0";
/// Guest page size.
pub const PAGE: u64 = 4096;
/// Guest page size, as a length.
pub const PAGE_LEN: usize = PAGE as usize;

/// Capabilities with only fixed-ram on.
pub fn fixed_ram() -> Capabilities {
    Capabilities::from_enabled(&[Capability::FixedRam]).unwrap()
}

/// A RAMBlock of `pages` pages.
pub fn block(name: &str, pages: u64) -> RamBlockDesc {
    RamBlockDesc {
        name: name.into(),
        used_length: pages * PAGE,
        shared: false,
    }
}

/// A recognisable non-zero page: byte `i` is `i*13 ^ tag`.
pub fn page(tag: u8) -> Vec<u8> {
    (0..PAGE_LEN)
        .map(|i| (i as u8).wrapping_mul(13) ^ tag)
        .collect()
}

/// A page of zeros.
pub fn zero_page() -> Vec<u8> {
    vec![0; PAGE_LEN]
}

/// A page whose every byte is `byte`: easy to find in a file by its bytes.
pub fn filled_page(byte: u8) -> Vec<u8> {
    vec![byte; PAGE_LEN]
}

/// Load options of a destination with machine [`MACHINE`] and `caps`.
pub fn load_opts(caps: Capabilities) -> LoadOptions {
    LoadOptions {
        machine: Some(MACHINE.into()),
        caps: Some(caps),
        ..LoadOptions::default()
    }
}

/// `scenarios/NAME.toml`.
pub fn scenario(name: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("scenarios/{name}.toml"));
    Scenario::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A writer into memory with machine [`MACHINE`].
pub fn start(
    caps: &Capabilities,
    blocks: Vec<RamBlockDesc>,
) -> Result<MigrationWriter<Vec<u8>>, SaveError> {
    MigrationWriter::start(Vec::new(), MACHINE, caps, blocks)
}

/// The `migsim` binary this test run built, as a command to add arguments to.
pub fn migsim_command() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_migsim"))
}
