//! The harness's simulation: the guest, its seeded workloads, the
//! pre-copy driver, page contents and the simulated file.

pub mod content;
pub mod dest;
pub mod extent;
pub mod guest;
pub mod precopy;
pub mod rng;
pub mod simfile;
pub mod workload;
