//! The `migsim` binary's library half: the command line ([`cli`]: flags
//! parsed and resolved, nothing run), the files it reads and writes
//! ([`files`]), the report and the bench, and (feature `fuzz-cli`) the
//! body of the `cli` fuzz target (`fuzz_cli`). The product is
//! [`migsim_format`]; simulation, oracle, scenarios and the QEMU driver
//! are [`migsim_harness`].

pub mod bench;
pub mod cli;
pub mod files;
#[cfg(feature = "fuzz-cli")]
pub mod fuzz_cli;
pub mod report;
