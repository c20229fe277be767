//! Small scenarios through both writers must pass the oracle; see
//! `migsim_harness::fuzz::roundtrip`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use migsim_harness::fuzz::RoundtripInput;

/// AddressSanitizer's defaults for this binary (the environment's
/// `ASAN_OPTIONS` still win): a 32 MiB quarantine instead of 256 MiB keeps
/// the RSS well under `-rss_limit_mb=512`; Rust code needs ASan mostly for
/// the `unsafe` in its dependencies.
#[unsafe(no_mangle)]
pub extern "C" fn __asan_default_options() -> *const std::ffi::c_char {
    c"quarantine_size_mb=32:detect_odr_violation=0".as_ptr()
}

fuzz_target!(|input: RoundtripInput| migsim_harness::fuzz::roundtrip(input));
