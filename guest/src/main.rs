//! migsim's guest program: booted by QEMU (`-kernel migsim-guest`, PVH
//! boot, no OS), it runs a scenario's workload on guest RAM, writing into
//! each page exactly the bytes `migsim_harness::sim::content::fill_page`
//! gives for `(seed, block, page, version)`, so a page restored from a
//! migration file can be named (`pc.ram page 0x1234: v7`).
//!
//! Boot: QEMU's PVH option ROM enters [`pvh_start32`] in 32-bit protected
//! mode, paging off. It maps the first 4 GiB 1:1 with 2 MiB pages, enters
//! long mode and calls [`guest_main`], which never returns.
//!
//! Parameters come from one page at [`PARAMS`] that migsim loads with
//! `-device loader` (layout below; `migsim_harness::qemu::guest` writes
//! it), and the guest reports its progress in the same page:
//!
//! ```text
//! off  size  (little-endian)
//!   0   8    magic "MIGSIMGP"
//!   8   4    layout version, 1
//!  12   4    workload: 0 idle, 1 uniform, 2 hot-set, 3 sweep
//!  16   8    content seed (the scenario's seed)
//!  24   8    workload seed (the guest's splitmix64 stream)
//!  32   4    block index written in each page header
//!  40   8    first page of the work region (GPA / 4096 = the block's page)
//!  48   8    pages in the work region
//!  56   8    writes per tick
//!  64   8    hot-set pages
//!  72   8    hot_share   as a threshold: a write goes to the hot set when
//!  80   8    zero_share    the next draw is below it (share x 2^64)
//!  88   8    initial_fill
//!  96   8    TSC cycles per tick (0: as fast as it can)
//! 104   8    GPA of the version counters (u32 per work-region page)
//! 112   8    GPA of the hot set (u64 work-region page indexes)
//! -- written by the guest --
//! 512   8    status: 1 initial fill, 2 workload running, 0xBAD bad page
//! 520   8    ticks done
//! 528   8    workload writes done (the initial fill not counted)
//! 536   8    zero writes among them
//! 544   8    TSC when the workload started
//! 552   8    TSC at the last tick
//! ```
//!
//! First every page of the work region is written once: the content of
//! version 1 (a share `initial_fill`) or zeros. Then each write: pick a
//! work-region page (uniform, hot set or sweep, as
//! `sim::workload`), increment its version, and write zeros (a share
//! `zero_share` of writes) or the page's content for that version.

#![no_std]
#![no_main]

use core::arch::{asm, global_asm};
use core::ptr::{read_volatile, write_volatile};

/// Where migsim loads the parameter page.
const PARAMS: usize = 0x1F_0000;
const MAGIC: u64 = u64::from_le_bytes(*b"MIGSIMGP");
const PAGE_MAGIC: u64 = u64::from_le_bytes(*b"MIGSIMPG");

// The PVH ELF note (XEN_ELFNOTE_PHYS32_ENTRY = 18, name "Xen"): QEMU's
// -kernel loader finds it and enters at the address it holds.
global_asm!(
    r#"
    .section .note.pvh, "a"
    .balign 4
    .long 4
    .long 8
    .long 18
    .asciz "Xen"
    .balign 4
    .quad pvh_start32
    "#
);

// 32-bit entry: page tables for 0..4 GiB (2 MiB pages), PAE, EFER.LME,
// paging, then a far jump to 64-bit code.
global_asm!(
    r#"
    .section .text.boot, "ax"
    .code32
    .globl pvh_start32
pvh_start32:
    cli
    cld
    movl $boot_stack_top, %esp
    # PML4[0] -> PDPT; PDPT[0..4] -> PD0..PD3
    movl $boot_pdpt, %eax
    orl $3, %eax
    movl %eax, boot_pml4
    movl $boot_pd, %eax
    orl $3, %eax
    movl $boot_pdpt, %edi
    movl $4, %ecx
1:  movl %eax, (%edi)
    movl $0, 4(%edi)
    addl $4096, %eax
    addl $8, %edi
    loop 1b
    # PD entries: 2048 x 2 MiB, present | writable | large
    movl $boot_pd, %edi
    movl $0x83, %eax
    movl $2048, %ecx
2:  movl %eax, (%edi)
    movl $0, 4(%edi)
    addl $0x200000, %eax
    addl $8, %edi
    loop 2b
    movl %cr4, %eax
    orl $0x20, %eax
    movl %eax, %cr4
    movl $boot_pml4, %eax
    movl %eax, %cr3
    movl $0xC0000080, %ecx
    rdmsr
    orl $0x100, %eax
    wrmsr
    movl %cr0, %eax
    orl $0x80000001, %eax
    movl %eax, %cr0
    lgdt boot_gdt_ptr
    ljmp $0x08, $boot_long
    .code64
boot_long:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw %ax, %fs
    movw %ax, %gs
    movq $boot_stack_top, %rsp
    call guest_main
3:  hlt
    jmp 3b

    .section .rodata.boot, "a"
    .balign 8
boot_gdt:
    .quad 0
    .quad 0x00209A0000000000
    .quad 0x0000920000000000
boot_gdt_ptr:
    .word 23
    .long boot_gdt

    .section .bss.boot, "aw", @nobits
    .balign 4096
boot_pml4: .skip 4096
boot_pdpt: .skip 4096
boot_pd: .skip 4 * 4096
boot_stack: .skip 65536
boot_stack_top:
    "#,
    options(att_syntax)
);

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The filler's key, as `sim::content::key`.
fn key(seed: u64, block: u32, page: u64, version: u32) -> u64 {
    let mut s = seed;
    let mut k = splitmix(&mut s);
    for v in [u64::from(block), page, u64::from(version)] {
        s ^= v.wrapping_mul(0xA24B_AED4_963E_E407);
        k ^= splitmix(&mut s);
    }
    k
}

/// Write page `page` (at GPA `page * 4096`): zeros, or the content of
/// `version`, as `sim::content::fill_page`.
///
/// # Safety
/// `page` lies in the work region.
unsafe fn write_page(seed: u64, block: u32, page: u64, version: u32, zero: bool) {
    let p = (page * 4096) as *mut u64;
    // SAFETY: the work region is guest RAM this program owns.
    unsafe {
        if zero {
            for i in 0..512 {
                write_volatile(p.add(i), 0);
            }
            return;
        }
        write_volatile(p, PAGE_MAGIC);
        write_volatile(p.add(1), u64::from(block));
        write_volatile(p.add(2), page);
        write_volatile(p.add(3), u64::from(version));
        let mut s = key(seed, block, page, version);
        for i in 4..512 {
            write_volatile(p.add(i), splitmix(&mut s));
        }
    }
}

fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: rdtsc has no side effects.
    unsafe { asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack)) };
    (u64::from(hi) << 32) | u64::from(lo)
}

fn param(off: usize) -> u64 {
    // SAFETY: the parameter page is guest RAM at a fixed address.
    unsafe { read_volatile((PARAMS + off) as *const u64) }
}

fn report(off: usize, v: u64) {
    // SAFETY: as `param`.
    unsafe { write_volatile((PARAMS + off) as *mut u64, v) }
}

/// A draw in `0..n` (n > 0).
fn below(rng: &mut u64, n: u64) -> u64 {
    ((u128::from(splitmix(rng)) * u128::from(n)) >> 64) as u64
}

/// The guest: fill, then run the workload for ever.
#[unsafe(no_mangle)]
pub extern "C" fn guest_main() -> ! {
    if param(0) != MAGIC || param(8) as u32 != 1 {
        report(512, 0xBAD);
        halt();
    }
    let kind = (param(8) >> 32) as u32;
    let seed = param(16);
    let mut rng = param(24);
    let block = param(32) as u32;
    let first = param(40);
    let count = param(48);
    let per_tick = param(56);
    let hot_n = param(64);
    let (hot_share, zero_share, fill) = (param(72), param(80), param(88));
    let tsc_per_tick = param(96);
    let versions = param(104) as *mut u32;
    let hot = param(112) as *mut u64;
    if count == 0 || (kind == 2 && hot_n == 0) {
        report(512, 0xBAD);
        halt();
    }
    report(512, 1);
    // SAFETY: versions and hot set lie in RAM migsim set aside (below the
    // work region), the work region is RAM.
    unsafe {
        for i in 0..count {
            write_volatile(versions.add(i as usize), 0);
        }
        for i in 0..hot_n {
            write_volatile(hot.add(i as usize), below(&mut rng, count));
        }
        // Every page of the region is written once: version 1 (a share
        // `initial_fill`) or zeros, so nothing the firmware left there
        // remains.
        for i in 0..count {
            if splitmix(&mut rng) < fill {
                write_volatile(versions.add(i as usize), 1);
                write_page(seed, block, first + i, 1, false);
            } else {
                write_page(seed, block, first + i, 0, true);
            }
        }
    }
    let start = rdtsc();
    report(544, start);
    report(512, 2);
    let (mut ticks, mut writes, mut zeros, mut cursor) = (0u64, 0u64, 0u64, 0u64);
    loop {
        if kind != 0 {
            for _ in 0..per_tick {
                let i = match kind {
                    1 => below(&mut rng, count),
                    2 => {
                        if splitmix(&mut rng) < hot_share {
                            // SAFETY: below(hot_n) < hot_n.
                            unsafe { read_volatile(hot.add(below(&mut rng, hot_n) as usize)) }
                        } else {
                            below(&mut rng, count)
                        }
                    }
                    _ => {
                        let i = cursor;
                        cursor = (cursor + 1) % count;
                        i
                    }
                };
                let zero = zero_share != 0 && splitmix(&mut rng) < zero_share;
                // SAFETY: i < count.
                unsafe {
                    let v = read_volatile(versions.add(i as usize)).wrapping_add(1);
                    write_volatile(versions.add(i as usize), v);
                    write_page(seed, block, first + i, v, zero);
                }
                writes += 1;
                zeros += u64::from(zero);
            }
        }
        ticks += 1;
        report(520, ticks);
        report(528, writes);
        report(536, zeros);
        let now = rdtsc();
        report(552, now);
        if tsc_per_tick != 0 {
            let due = start.wrapping_add(ticks.wrapping_mul(tsc_per_tick));
            while rdtsc() < due {
                core::hint::spin_loop();
            }
        }
    }
}

fn halt() -> ! {
    loop {
        // SAFETY: hlt with interrupts off stops the vCPU.
        unsafe { asm!("hlt", options(nomem, nostack)) };
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    report(512, 0xBAD);
    halt()
}
