//! QEMU -> migsim: stopped guests with known memory (`-device loader`) and
//! a live guest (a hand-assembled boot sector that keeps rewriting 64
//! pages and, on a key press, zeroes 16 of them) are saved by QEMU over
//! `migrate file:` (sequential, mapped-ram, mapped-ram + multifd);
//! migsim's reader restores every block into a destination that starts as
//! garbage, and that must equal QEMU's own `pmemsave`. The live guest runs
//! under [`live_accel`].

use std::time::{Duration, Instant};

use serde_json::json;

use crate::guest_memory::{
    MIB, PAGE, block, compare_visible, describe_bytes, fixed_ram_block, fmt_mib, migsim_restore,
    nonzero_pages, pattern,
};
use crate::qemu_process::{Qemu, live_accel, qemu};

// ---------------------------------------------------------------------------
// QEMU -> migsim: stopped guests with known memory
// ---------------------------------------------------------------------------

/// Save a stopped `-M pc -m 16` guest whose memory holds two known
/// patterns with `caps`, restore every block with migsim and compare with
/// QEMU's own pmemsave of the source.
fn qemu_stopped_save(caps: &[&str]) {
    let Some(info) = qemu() else { return };
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let regions = [(0x10_0000u64, 48u64), (0x90_0000, 8)];
    let mut loaders = Vec::new();
    for (i, &(addr, pages)) in regions.iter().enumerate() {
        let p = dir.path().join(format!("pattern-{i}.bin"));
        std::fs::write(&p, pattern(addr, pages)).unwrap();
        loaders.push(format!("loader,file={},addr={addr:#x}", p.display()));
    }
    let mut args = vec!["-S"];
    for l in &loaders {
        args.extend(["-device", l.as_str()]);
    }
    let machine = info.machine("pc").to_string();
    let ram = 16 * MIB;
    let mut src = Qemu::start(info, dir.path(), "src", "pc", 16, &info.accel, &args);
    let before = src.pmemsave(0, ram);
    for &(addr, pages) in &regions {
        assert!(
            before[addr as usize..(addr + pages * PAGE) as usize] == pattern(addr, pages)[..],
            "the loader did not put the pattern at {addr:#x}"
        );
    }
    let blocks = src.ramblocks();
    src.set_caps(caps);
    if caps.contains(&"multifd") {
        src.cmd("migrate-set-parameters", json!({ "multifd-channels": 2 }));
    }
    let mig = dir.path().join("saved.mig");
    src.cmd(
        "migrate",
        json!({ "uri": format!("file:{}", mig.display()) }),
    );
    let st = src.wait_migration(Duration::from_secs(60), |_, _| {});
    assert_eq!(st["status"], "completed", "{st}\n{}", src.stderr());
    let after = src.pmemsave(0, ram);
    assert!(
        before == after,
        "a stopped guest's memory changed during the save"
    );
    let maps = src.flatview();

    let (stream, restored) = migsim_restore(&mig, &blocks, &machine, caps, true)
        .unwrap_or_else(|e| panic!("migsim cannot restore QEMU's {caps:?} save: {e}"));
    let pages = compare_visible(
        &mut src,
        &maps,
        &restored,
        ram,
        &format!("QEMU {caps:?} save restored by migsim"),
        &describe_bytes,
    );
    let pc = stream.blocks.iter().find(|b| b.name == "pc.ram").unwrap();
    println!(
        "QEMU {caps:?} save of a stopped guest: {} ({}), {} sections, pc.ram {} pages present; \
         migsim restore (into garbage) equals QEMU's pmemsave: {pages:?}; {} non-zero pc.ram \
         pages; {:.1} s",
        fmt_mib(stream.file_len),
        stream.layout,
        stream.sections.len(),
        pc.pages_present,
        nonzero_pages(block(&restored, "pc.ram")),
        t0.elapsed().as_secs_f64()
    );
}

#[test]
fn qemu_sequential_save_of_stopped_guest_restores_in_migsim() {
    qemu_stopped_save(&[]);
}

#[test]
fn qemu_mapped_ram_save_of_stopped_guest_restores_in_migsim() {
    qemu_stopped_save(&["mapped-ram"]);
}

#[test]
fn qemu_mapped_ram_multifd_save_of_stopped_guest_restores_in_migsim() {
    qemu_stopped_save(&["mapped-ram", "multifd"]);
}

// ---------------------------------------------------------------------------
// QEMU -> migsim: a live guest that keeps dirtying memory
// ---------------------------------------------------------------------------

/// Boot sector (loaded by SeaBIOS at 0x7C00). It enters 32-bit protected
/// mode and then loops forever: increment a counter C; if a key is waiting
/// in the i8042 (port 0x64 bit 0), read it and enter phase 2; write the
/// dword `a + C` at every dword address `a` in 0x20000..0x60000 (64 pages)
/// -- except that in phase 2 the 16 pages 0x50000..0x60000 get zeros.
#[rustfmt::skip]
const BOOT_CODE: [u8; 118] = [
    0xFA,                               // 0x00 cli
    0xFC,                               // 0x01 cld
    0x31, 0xC0,                         // 0x02 xor ax,ax
    0x8E, 0xD8,                         // 0x04 mov ds,ax
    0x0F, 0x01, 0x16, 0x70, 0x7C,       // 0x06 lgdt [0x7C70]
    0x0F, 0x20, 0xC0,                   // 0x0B mov eax,cr0
    0x0C, 0x01,                         // 0x0E or al,1
    0x0F, 0x22, 0xC0,                   // 0x10 mov cr0,eax
    0xEA, 0x18, 0x7C, 0x08, 0x00,       // 0x13 jmp 0x08:0x7C18
    // 32-bit code from here
    0xB8, 0x10, 0x00, 0x00, 0x00,       // 0x18 mov eax,0x10
    0x8E, 0xD8,                         // 0x1D mov ds,ax
    0x8E, 0xC0,                         // 0x1F mov es,ax
    0x8E, 0xD0,                         // 0x21 mov ss,ax
    0x31, 0xDB,                         // 0x23 xor ebx,ebx       ; C = 0
    0x31, 0xED,                         // 0x25 xor ebp,ebp       ; phase 1
    0x43,                               // 0x27 outer: inc ebx
    0xE4, 0x64,                         // 0x28 in al,0x64        ; i8042 status
    0xA8, 0x01,                         // 0x2A test al,1         ; output buffer full?
    0x74, 0x07,                         // 0x2C jz 0x35
    0xE4, 0x60,                         // 0x2E in al,0x60        ; take the byte
    0xBD, 0x01, 0x00, 0x00, 0x00,       // 0x30 mov ebp,1         ; phase 2
    0xBF, 0x00, 0x00, 0x02, 0x00,       // 0x35 mov edi,0x20000
    0x89, 0xF8,                         // 0x3A inner: mov eax,edi
    0x01, 0xD8,                         // 0x3C add eax,ebx       ; a + C
    0x85, 0xED,                         // 0x3E test ebp,ebp
    0x74, 0x0A,                         // 0x40 jz 0x4C
    0x81, 0xFF, 0x00, 0x00, 0x05, 0x00, // 0x42 cmp edi,0x50000
    0x72, 0x02,                         // 0x48 jb 0x4C
    0x31, 0xC0,                         // 0x4A xor eax,eax       ; phase 2: zeros
    0xAB,                               // 0x4C stosd
    0x81, 0xFF, 0x00, 0x00, 0x06, 0x00, // 0x4D cmp edi,0x60000
    0x72, 0xE5,                         // 0x53 jb 0x3A
    0xEB, 0xD0,                         // 0x55 jmp 0x27
    0x00,                               // 0x57 pad
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // 0x58 GDT: null
    0xFF, 0xFF, 0x00, 0x00, 0x00, 0x9A, 0xCF, 0x00, // 0x60 sel 0x08: code, flat 4 GiB, 32-bit
    0xFF, 0xFF, 0x00, 0x00, 0x00, 0x92, 0xCF, 0x00, // 0x68 sel 0x10: data, flat 4 GiB
    0x17, 0x00, 0x58, 0x7C, 0x00, 0x00, // 0x70 GDTR: limit 23, base 0x7C58
];

const DIRTY_LO: u64 = 0x2_0000;
const ZERO_LO: u64 = 0x5_0000;
const DIRTY_HI: u64 = 0x6_0000;

fn boot_image() -> Vec<u8> {
    let mut img = BOOT_CODE.to_vec();
    img.resize(510, 0);
    img.extend_from_slice(&[0x55, 0xAA]);
    img
}

/// Migrate the running boot-sector guest to a file with `caps`: the
/// bandwidth is capped at 1 MiB/s and the downtime limit at 1 ms, so the
/// guest's 64 re-dirtied pages never fit; after the 3rd dirty sync the test
/// presses a key (the guest zeroes 16 pages it had written), and two syncs
/// after it sees them zeroed it raises the downtime limit so the migration
/// completes. The source,
/// stopped, is then compared with migsim's restore of the file.
fn qemu_live_save(caps: &[&str]) {
    let Some(info) = qemu() else { return };
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("boot.img");
    std::fs::write(&img, boot_image()).unwrap();
    let drive = format!("file={},format=raw,if=ide", img.display());
    let accel = live_accel();
    let ram = 16 * MIB;
    let mut src = Qemu::start(
        info,
        dir.path(),
        "live",
        "pc",
        16,
        &accel,
        &["-drive", drive.as_str()],
    );
    let machine = info.machine("pc").to_string();

    // Wait until the guest loops: all 64 pages written, counter moving.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = None;
    loop {
        let m = src.pmemsave(DIRTY_LO, DIRTY_HI - DIRTY_LO);
        let c = u32::from_le_bytes(m[..4].try_into().unwrap()).wrapping_sub(DIRTY_LO as u32);
        if nonzero_pages(&m) == 64 && last.is_some_and(|l| l != c) {
            break;
        }
        last = Some(c);
        assert!(
            Instant::now() < deadline,
            "the boot-sector guest did not start looping (accel {accel})\n{}",
            src.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let boot_s = t0.elapsed().as_secs_f64();

    let blocks = src.ramblocks();
    src.set_caps(caps);
    src.cmd(
        "migrate-set-parameters",
        json!({ "max-bandwidth": MIB, "downtime-limit": 1 }),
    );
    if caps.contains(&"multifd") {
        src.cmd("migrate-set-parameters", json!({ "multifd-channels": 2 }));
    }
    let mig = dir.path().join("live.mig");
    src.cmd(
        "migrate",
        json!({ "uri": format!("file:{}", mig.display()) }),
    );
    let mut key_at = None;
    let mut zeroed_at = None;
    let mut released_at = None;
    let st = src.wait_migration(Duration::from_secs(120), |q, st| {
        let syncs = st["ram"]["dirty-sync-count"].as_u64().unwrap_or(0);
        if key_at.is_none() && syncs >= 3 {
            q.cmd(
                "send-key",
                json!({ "keys": [{ "type": "qcode", "data": "a" }] }),
            );
            key_at = Some(syncs);
        }
        // However fast the guest runs: wait until it has zeroed the pages,
        // then for two more syncs, before letting the migration converge.
        if key_at.is_some()
            && zeroed_at.is_none()
            && q.pmemsave(ZERO_LO, DIRTY_HI - ZERO_LO)
                .iter()
                .all(|&b| b == 0)
        {
            zeroed_at = Some(syncs);
        }
        if let Some(z) = zeroed_at
            && released_at.is_none()
            && syncs >= z + 2
        {
            q.cmd("migrate-set-parameters", json!({ "downtime-limit": 2000 }));
            released_at = Some(syncs);
        }
    });
    assert_eq!(st["status"], "completed", "{st}\n{}", src.stderr());
    let syncs = st["ram"]["dirty-sync-count"].as_u64().unwrap();
    let released = released_at.unwrap_or_else(|| {
        panic!(
            "the migration converged on its own (dirty-sync-count {}, key at {key_at:?}, zeroed at \
             {zeroed_at:?}) before the test raised the downtime limit: the guest dirties too \
             slowly under accel {accel}; MIGSIM_QEMU_LIVE_ACCEL=tcg (the default) avoids it",
            st["ram"]["dirty-sync-count"]
        )
    });
    assert!(syncs > released, "{st}");
    let state = src.status();
    assert_eq!(state, "postmigrate");

    // The guest did what it was told, up to the switchover.
    let mem = src.pmemsave(0, ram);
    let counters: Vec<u32> = mem[DIRTY_LO as usize..ZERO_LO as usize]
        .chunks(4)
        .enumerate()
        .map(|(i, d)| {
            u32::from_le_bytes(d.try_into().unwrap()).wrapping_sub(DIRTY_LO as u32 + 4 * i as u32)
        })
        .collect();
    let (lo, hi) = (
        *counters.iter().min().unwrap(),
        *counters.iter().max().unwrap(),
    );
    assert!(hi - lo <= 1 && lo >= 1, "counter values {lo}..={hi}");
    assert!(
        mem[ZERO_LO as usize..DIRTY_HI as usize]
            .iter()
            .all(|&b| b == 0),
        "the guest did not zero 0x50000..0x60000 after the key press"
    );

    let maps = src.flatview();
    let (stream, restored) = migsim_restore(&mig, &blocks, &machine, caps, true)
        .unwrap_or_else(|e| panic!("migsim cannot restore QEMU's live {caps:?} save: {e}"));
    let pages = compare_visible(
        &mut src,
        &maps,
        &restored,
        ram,
        &format!("live QEMU {caps:?} save restored by migsim"),
        &describe_bytes,
    );
    let pc = stream.blocks.iter().find(|b| b.name == "pc.ram").unwrap();
    let parts = stream
        .sections
        .iter()
        .filter(|s| s.kind == migsim_format::SectionKind::Part && s.idstr == "ram")
        .count();
    let detail = if caps.contains(&"mapped-ram") {
        // The pages the guest zeroed after they were sent with data: bit
        // clear, stale bytes still in the file, restored as zeros.
        let fr = fixed_ram_block(&mig, "pc.ram");
        let zeroed: Vec<u64> = (ZERO_LO / PAGE..DIRTY_HI / PAGE).collect();
        for &p in &zeroed {
            assert!(
                !fr.bits[p as usize] && fr.slots_nonzero[p as usize],
                "pc.ram page {p:#x}: expected a clear bit over stale data (bit {}, slot non-zero {})",
                fr.bits[p as usize],
                fr.slots_nonzero[p as usize]
            );
        }
        let stale = fr
            .bits
            .iter()
            .zip(&fr.slots_nonzero)
            .filter(|(b, s)| !**b && **s)
            .count();
        format!(
            "{} pc.ram bits set, {stale} clear-bit slots hold stale data (the {} zeroed pages among them)",
            pc.pages_present,
            zeroed.len()
        )
    } else {
        // Besides every non-zero page once, at least the passes after the
        // 2nd and 3rd syncs (before the key press) re-sent the 48 pages the
        // guest keeps rewriting.
        let nonzero = nonzero_pages(block(&restored, "pc.ram")) as u64;
        assert!(
            pc.pages_present >= nonzero + 2 * 48,
            "{} PAGE records for {nonzero} non-zero pages over {syncs} syncs",
            pc.pages_present
        );
        format!(
            "{} pc.ram PAGE records and {} ZERO records for {nonzero} non-zero pages",
            pc.pages_present, pc.zero_records
        )
    };
    println!(
        "live QEMU {caps:?} save (accel {accel}, guest looping after {boot_s:.1} s): \
         dirty-sync-count {syncs} (key pressed at sync {}, pages zeroed by sync {}, \
         downtime-limit raised at sync {released}), {parts} RAM PART sections, transferred {}, file {}, guest counter \
         {hi}, total-time {} ms, downtime {} ms; {detail}; migsim restore equals the stopped \
         source's pmemsave: {pages:?}; {:.1} s",
        key_at.unwrap(),
        zeroed_at.unwrap(),
        fmt_mib(st["ram"]["transferred"].as_u64().unwrap_or(0)),
        fmt_mib(stream.file_len),
        st["total-time"],
        st["downtime"],
        t0.elapsed().as_secs_f64()
    );
}

#[test]
fn qemu_live_mapped_ram_save_of_dirtying_guest_restores_in_migsim() {
    qemu_live_save(&["mapped-ram"]);
}

#[test]
fn qemu_live_sequential_save_of_dirtying_guest_restores_in_migsim() {
    qemu_live_save(&[]);
}

#[test]
fn qemu_live_mapped_ram_multifd_save_of_dirtying_guest_restores_in_migsim() {
    qemu_live_save(&["mapped-ram", "multifd"]);
}
