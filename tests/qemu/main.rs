//! The QEMU tier: migsim against an installed QEMU (>= 9.0, made against
//! 10.0.2). With `qemu-system-x86_64` >= 9.0 (or `$QEMU`) the live tests
//! run; without it each prints one line saying it was skipped, except under
//! `CI=true`, where they fail ([`support`]).
//!
//! * [`bench`]: `migsim bench --only qemu` on a small guest: each QEMU
//!   restore paired with one of migsim's, the ratios from those pairs.
//! * [`interop`]: migration files both ways, live and stopped guests,
//!   `migsim extract` of QEMU's saves, QEMU 10.0.2's load-side behaviours.
//! * [`caps_differential`]: the capability checker against QEMU's recorded
//!   answers (no QEMU needed) and a live re-asked sample.
//! * [`durable`]: QEMU loads migsim's durable saves (completion mark after
//!   the vmdesc trailer) and files with the integrity trailer with memory
//!   equal, and loads the crash images `migsim faults` judges wrong for
//!   its own protocol with exactly the pages migsim names wrong.

mod bench;
mod caps_differential;
mod durable;
mod interop;
mod support;
