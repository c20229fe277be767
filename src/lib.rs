//! migsim: a deterministic simulator and fuzzing harness for VM
//! live-migration semantics around the fixed-ram (QEMU: mapped-ram)
//! capability.
//!
//! Product (what a VMM would take): [`caps`], [`format`].
//! Harness (simulation, oracle, scenarios): [`sim`], [`oracle`],
//! [`scenario`], [`run`].

pub mod bench;
pub mod bugs;
pub mod caps;
pub mod explore;
pub mod extract;
pub mod format;
pub mod fuzz_targets;
pub mod oracle;
pub mod report;
pub mod run;
pub mod scenario;
pub mod sim;
