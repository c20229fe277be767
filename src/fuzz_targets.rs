//! The bodies of the cargo-fuzz targets, as plain functions, so stable
//! `cargo test` can replay every corpus and artifact file through them.
