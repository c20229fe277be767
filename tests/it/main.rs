//! The integration tests of migsim's crates, one binary: the product's
//! writer and reader through their public API, the harness (channels,
//! scenarios, exploration, properties, fuzz corpora), real QEMU files read
//! from `tests/data/`, the report and the bench. Tests that need a binary
//! of their own live beside it: `tests/malformed/` (a counting global
//! allocator), `tests/qemu/` (the live QEMU tier), `tests/cli/` (the
//! `migsim` command line, and the docs' command examples).

mod architecture;
mod bench;
mod channels;
mod concurrency;
mod explore;
mod extents;
mod faults;
mod fuzz_corpus;
mod guest_binary;
mod properties;
mod qemu_files;
mod qemu_files_damaged;
mod reader;
mod report;
mod scenarios;
mod support;
mod writer;
