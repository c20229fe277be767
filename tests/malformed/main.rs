//! Malformed-input tests for the reader (`migsim_format::reader`).
//!
//! Every test builds a VALID file with the public writer API, checks that
//! it loads, then corrupts specific bytes (offsets computed from the
//! format or taken from `inspect`'s `StreamInfo`) and asserts the exact
//! `LoadError` variant and the key phrase of its text. The reader must
//! never panic, hang, or allocate more than the file size justifies; the
//! largest single allocation is measured with a tracking global
//! allocator (per thread) and long loops run under a timeout.

//!
//! One module per part of the format a test attacks; the fixture and the
//! allocation tracking are shared. This is its own test binary because
//! the tracking is a global allocator.

mod alloc;
mod fixture;

mod block_list;
mod byte_flips;
mod configuration;
mod destination;
mod fixed_ram_header;
mod header;
mod linear_time;
mod records;
mod sections;
mod truncation;
mod vmdesc;
