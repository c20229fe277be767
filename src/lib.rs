//! The `migsim` binary's library half: the report and the bench. The
//! product is [`migsim_format`]; simulation, oracle, scenarios and the
//! QEMU driver are [`migsim_harness`].

pub mod bench;
pub mod report;
