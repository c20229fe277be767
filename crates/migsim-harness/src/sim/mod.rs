//! The harness's simulation: the guest, its seeded workloads, the
//! pre-copy driver, page contents, the simulated file and its recycled
//! memory (`pool`), and where a run's time goes (`stages`).

pub mod content;
pub mod dest;
pub mod dirty_log;
pub mod extent;
pub mod guest;
pub mod guest_base;
pub mod page_index;
pub mod pool;
pub mod precopy;
pub mod rng;
pub(crate) mod simd;
pub mod simfile;
pub mod stages;
pub mod tree_hash;
pub mod workload;
