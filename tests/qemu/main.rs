//! The QEMU tier: migsim against an installed QEMU (>= 9.0, made against
//! 10.0.2). With `qemu-system-x86_64` >= 9.0 (or `$QEMU`) the live tests
//! run; without it each prints one line saying it was skipped, except under
//! `CI=true`, where they fail ([`support`]).
//!
//! * [`bench`]: `migsim bench --only qemu` on a small guest: each QEMU
//!   restore paired with one of migsim's, the ratios from those pairs.
//! * [`migsim_files_in_qemu`]: migsim's files (sequential, mapped-ram)
//!   load into QEMU with memory equal to the guest's at switchover.
//! * [`qemu_saves_in_migsim`]: QEMU's saves of stopped guests with known
//!   memory and of a live guest that keeps dirtying memory, restored by
//!   migsim's reader equal to QEMU's `pmemsave`.
//! * [`extract_machine_shapes`]: QEMU's saves of other sizes, machine
//!   types and RAMBlocks through the `migsim extract` binary.
//! * [`qemu_10_0_behaviours`]: QEMU 10.0.2's load-side behaviours and
//!   divergences (clear-bit pages left as they were, used_length not
//!   checked, x-ignore-shared under mapped-ram).
//! * [`stream_offset`]: streams at `offset=N` both ways, and behind a
//!   libvirt save image header.
//! * [`qemu_run`]: `migsim qemu run`, QEMU running a scenario live.
//! * [`qemu_fuzz`]: the fuzz campaign on real QEMU and its saved findings.
//! * [`qemu_process`] and [`guest_memory`]: shared by the modules above:
//!   the installed QEMU and a test's QEMU process (QMP, `pmemsave`, the
//!   FlatView); expected guest memory, migsim's restore and the page for
//!   page comparison with QEMU's.
//! * [`caps_differential`]: the capability checker against QEMU's recorded
//!   answers (no QEMU needed) and a live re-asked sample.
//! * [`durable`]: QEMU loads migsim's durable saves (completion mark after
//!   the vmdesc trailer) and files with the integrity trailer with memory
//!   equal, and loads the crash images `migsim faults` judges wrong for
//!   its own protocol with exactly the pages migsim names wrong.

mod bench;
mod caps_differential;
mod durable;
mod extract_machine_shapes;
mod guest_memory;
mod migsim_files_in_qemu;
mod qemu_10_0_behaviours;
mod qemu_fuzz;
mod qemu_process;
mod qemu_run;
mod qemu_saves_in_migsim;
mod stream_offset;
mod support;
