#!/usr/bin/env bash
# Rebuild the committed guest binary from source (needs
# `rustup target add x86_64-unknown-none`). tests/it/guest_binary.rs
# checks the committed file equals a fresh build with the recorded rustc.
set -euo pipefail
cd "$(dirname "$0")"
cargo build --release --target-dir target
cp target/x86_64-unknown-none/release/migsim-guest migsim-guest.elf
rustc --version > migsim-guest.rustc
ls -l migsim-guest.elf
