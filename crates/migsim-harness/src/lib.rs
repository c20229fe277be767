//! migsim's harness: everything around the product crate
//! ([`migsim_format`]) that makes it a simulator and a fuzzing harness.
//!
//! * [`sim`]: the guest with its RAMBlocks, seeded workloads, the pre-copy
//!   driver, page contents, the simulated file and the destinations.
//! * [`oracle`]: the named invariants every run is judged by.
//! * [`scenario`]: scenario files (TOML), their schema and limits.
//! * [`run`]: one scenario end to end, with its digest; [`replay`]:
//!   scenario files against their recorded expectations (and `--bless`).
//! * [`explore`]: seeded scenario generation and shrinking.
//! * [`faults`]: power loss at every write (lost, kept, torn writes),
//!   ENOSPC/EIO/short writes, and the verdict per crash point.
//! * [`merge`]: the reports of a sweep split into shards, merged into one.
//! * [`bugs`]: deliberately wrong variants, injected through the product's
//!   [`migsim_format::SaveHooks`] and the driver.
//! * [`qemu`]: the QEMU driver (finder, QMP client, process guard), and
//!   `migsim qemu fuzz`'s campaign.
//! * [`mutate`]: mutations of a valid migration file, shared by the
//!   `fixed_ram_mutate` fuzz target and `migsim qemu fuzz`.
//! * `fuzz` (feature `fuzz`): the bodies of the cargo-fuzz targets.

pub mod bugs;
pub mod explore;
pub mod faults;
#[cfg(feature = "fuzz")]
pub mod fuzz;
pub mod limits;
pub mod merge;
pub mod mutate;
pub mod oracle;
pub mod pipeline;
pub mod qemu;
pub mod replay;
pub mod replay_command;
pub mod run;
pub mod scenario;
pub mod sched;
pub mod sim;
