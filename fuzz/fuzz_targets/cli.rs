//! Any scenario text and command line must end in exit 0, 1 or 2, never a
//! panic; see `migsim::fuzz_cli`. Raw bytes, not a typed input: the first
//! byte says whether the rest is a structured input or a plain scenario
//! file, so the corpus can hold the checked-in scenarios as they are.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// AddressSanitizer's defaults for this binary (the environment's
/// `ASAN_OPTIONS` still win): a 32 MiB quarantine instead of 256 MiB keeps
/// the RSS well under `-rss_limit_mb=512`; Rust code needs ASan mostly for
/// the `unsafe` in its dependencies.
#[unsafe(no_mangle)]
pub extern "C" fn __asan_default_options() -> *const std::ffi::c_char {
    c"quarantine_size_mb=32:detect_odr_violation=0".as_ptr()
}

fuzz_target!(|data: &[u8]| migsim::fuzz_cli::cli_bytes(data));
