//! The stages every mode of a run shares (byte-level, extent, the
//! concurrency model): [`setup`] (guest, workload, devices, writers'
//! capabilities, the scenario's own destination), [`options`] (where the
//! files go, channels, the bug variant) and [`report`] (the report every
//! mode fills, and its digest). [`crate::run`] picks the mode; the modes
//! use these stages and never call back into it.

pub mod options;
pub mod report;
pub mod setup;
