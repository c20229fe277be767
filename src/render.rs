//! Everything the command line prints for people: the run summary, the
//! explore, merge, replay and report lines, `inspect`'s layout listing and the
//! bench summary. JSON output is [`json`]: one object, pretty-printed.

use std::path::Path;

use migsim::bench::{BenchReport, Timing};
use migsim::report::{Report, join_differences};
use migsim_format::reader::StreamInfo;
use migsim_format::stream::SectionKind;
use migsim_format::{Container, StreamStart};
use migsim_harness::explore::ExploreReport;
use migsim_harness::replay::{ReplayOutcome, Replayed};
use migsim_harness::replay_command::ReplayCommand;
use migsim_harness::run::{Difference, RunReport};
use migsim_harness::scenario::Verdict;

const GIB: f64 = (1u64 << 30) as f64;

/// Text from a migration file (a block or section name, a warning that
/// quotes one) fit for a terminal: control characters escaped (`\t`,
/// `\u{1b}`). The reader gives names back as the file has them.
pub fn term(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return s.into();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().collect()
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

/// Print `v` as one pretty JSON object.
pub fn json<T: serde::Serialize>(v: &T) -> Result<(), String> {
    println!(
        "{}",
        serde_json::to_string_pretty(v).map_err(|e| e.to_string())?
    );
    Ok(())
}

/// Bytes in MiB, or in TiB from 1 TiB on (extent-mode guests).
fn mib(b: u64) -> String {
    let (div, unit) = unit_of(b);
    format!(
        "{:.1$} {unit}",
        b as f64 / div,
        if unit == "TiB" { 3 } else { 1 }
    )
}

/// The divisor and name of the unit sizes up to `max` are shown in.
fn unit_of(max: u64) -> (f64, &'static str) {
    if max >= 1 << 40 {
        ((1u64 << 40) as f64, "TiB")
    } else {
        ((1u64 << 20) as f64, "MiB")
    }
}

/// `migsim run`'s summary, then where the files are, time and memory, and
/// every difference from the scenario's expectations.
pub fn run(
    r: &RunReport,
    replay: &ReplayCommand,
    files: Option<&Path>,
    seconds: f64,
    peak_rss: u64,
    diffs: &[Difference],
) {
    print_summary(r, replay);
    if let Some(dir) = files {
        println!("files      {}", dir.display());
    }
    println!("took       {seconds:.2} s; peak RSS {}", mib(peak_rss));
    for d in diffs {
        println!("DIFFERS    {d}");
    }
}

fn print_summary(r: &RunReport, replay: &ReplayCommand) {
    let held = r.invariants.iter().filter(|i| i.ok).count();
    println!("scenario   {} (seed {})", r.scenario, r.seed);
    match r.verdict {
        Verdict::Pass => println!(
            "verdict    PASS ({held} of {} invariants held)",
            r.invariants.len()
        ),
        Verdict::Fail => println!(
            "verdict    FAIL ({held} of {} invariants held)",
            r.invariants.len()
        ),
        Verdict::Error => println!("verdict    ERROR: {}", r.error.as_deref().unwrap_or("")),
    }
    for i in r.invariants.iter().filter(|i| !i.ok) {
        println!("  FAILED   {} [{}]: {}", i.name, i.writer, i.detail);
    }
    if r.verdict != Verdict::Error {
        println!(
            "passes     {} live + final ({})",
            r.passes,
            if r.converged {
                "converged within the downtime budget"
            } else {
                "max_passes reached, did not converge"
            }
        );
        for c in r.concurrency.iter().flatten() {
            println!(
                "scheduler  {}: {} syncs, {} PART sections, {} steps{}; interleaving {}",
                c.writer,
                c.syncs,
                c.sections,
                c.steps,
                if c.multifd { " (multifd)" } else { "" },
                &c.interleaving[..16]
            );
        }
        println!(
            "pages      {} sent; guest wrote {}",
            r.pages_sent, r.guest_writes
        );
        println!("RAM        {}", mib(r.ram_bytes));
        if let Some(s) = r.sequential_size {
            println!(
                "sequential {} ({:.2}x RAM)",
                mib(s),
                s as f64 / r.ram_bytes as f64
            );
        }
        if let Some(s) = r.fixed_ram_size {
            println!(
                "fixed-ram  {} ({:.2}x RAM; bound {}, {})",
                mib(s),
                s as f64 / r.ram_bytes as f64,
                mib(r.fixed_ram_bound),
                if s <= r.fixed_ram_bound {
                    "within"
                } else {
                    "EXCEEDED"
                }
            );
        }
    }
    for f in &r.files {
        let (div, unit) = unit_of(f.size_after_pass.iter().copied().max().unwrap_or(0));
        println!(
            "{:<10} size after setup, each pass: {} {unit}",
            f.writer,
            size_series(&f.size_after_pass, div)
        );
    }
    println!("digest     {}", r.digest);
    if r.verdict == Verdict::Fail {
        println!("replay     {replay}");
    }
}

/// "0.0 30.8 46.0 … 146.5": up to 16 figures, else the middle elided.
fn size_series(sizes: &[u64], div: f64) -> String {
    let digits = if div > (1u64 << 20) as f64 { 3 } else { 1 };
    let fmt = |b: &u64| format!("{:.digits$}", *b as f64 / div);
    if sizes.len() <= 16 {
        return sizes.iter().map(fmt).collect::<Vec<_>>().join(" ");
    }
    let head: Vec<_> = sizes[..8].iter().map(fmt).collect();
    let tail: Vec<_> = sizes[sizes.len() - 4..].iter().map(fmt).collect();
    format!("{} … {}", head.join(" "), tail.join(" "))
}

/// `migsim explore`'s findings and closing line.
pub fn explore(report: &ExploreReport, seconds: f64) {
    for f in &report.failures {
        println!("FAIL  seed {}", f.seed);
        for d in &f.differences {
            println!("        {d}");
        }
        println!("      shrunk in {} steps to:", f.shrink_steps);
        for l in f.scenario_toml.lines() {
            println!("        | {l}");
        }
        if let Some(p) = &f.written_to {
            println!("      written to {}", p.display());
        }
        println!("      replay: {}", f.replay);
        println!("      rerun the seed unshrunk: {}", f.rerun_seed);
    }
    println!(
        "explore: {} seeds{} in {seconds:.1} s on {} thread(s): {} passed, {} failed",
        report.seeds_run,
        report
            .bug
            .map(|b| format!(" with bug variant {}", b.name()))
            .unwrap_or_default(),
        report.jobs,
        report.passed,
        report.seeds_run - report.passed
    );
}

/// `migsim faults`: counts per layout, the first wrong crashes with their
/// replay commands, the I/O faults, and what the counts mean.
pub fn faults(r: &migsim_harness::faults::FaultsReport, seconds: f64) {
    use migsim_format::Durability;
    use migsim_harness::faults::Outcome;
    let mode = match r.mode {
        Durability::QemuCompatible => "qemu (as QEMU 10: no fsync, bitmaps last)",
        Durability::Durable => {
            "durable (pages, sync, bitmaps + EOF + vmdesc, sync, completion mark, sync)"
        }
    };
    println!("scenario   {} (seed {})", term(&r.scenario), r.seed);
    println!(
        "mode       {mode}{}",
        if r.integrity {
            "; integrity trailer (CRC-32 per 1 MiB) verified before loading"
        } else {
            ""
        }
    );
    if r.ignore_mark && r.mode == Durability::Durable {
        println!("reader     the completion mark is not required (as QEMU reads the file)");
    }
    if let Some(e) = &r.run_error {
        println!("           {}", term(e));
        return;
    }
    for l in &r.layouts {
        if let Some(c) = &l.case {
            println!(
                "{:<10} point {} of {} writes, sample {} ({}; {} unsynced): {}",
                l.layout.name(),
                c.point,
                l.writes,
                c.sample,
                c.survival,
                c.volatile,
                outcome_name(c.outcome)
            );
            println!("           {}", term(&c.detail));
            continue;
        }
        println!(
            "{:<10} {} writes, {} syncs; {} crash points x {} samples = {} crashes: exact {}, refused {}, wrong {} (at {} points)",
            l.layout.name(),
            l.writes,
            l.syncs,
            l.points,
            r.samples,
            l.cases,
            l.exact,
            l.refused,
            l.wrong,
            l.wrong_points
        );
        for c in &l.first_wrong {
            println!(
                "  WRONG    point {}, sample {} ({}; {} unsynced): {}",
                c.point,
                c.sample,
                c.survival,
                c.volatile,
                term(&c.detail)
            );
            println!("           replay: {}", c.replay);
        }
    }
    for c in &r.io {
        let status = match (&c.error, c.outcome) {
            (None, _) => "NOT REPORTED",
            (Some(_), Outcome::Wrong) => "WRONG",
            (Some(_), _) => "ok",
        };
        println!(
            "{:<10} {} at write {}: {status}; writer: {}; file left: {}",
            c.layout.name(),
            c.fault.name(),
            c.write,
            c.error.as_deref().map(term).unwrap_or_default(),
            outcome_name(c.outcome)
        );
        if status != "ok" {
            println!("           replay: {}", c.replay);
        }
    }
    for layout in r.layouts.iter().map(|l| l.layout) {
        let k: Vec<_> = r.kills.iter().filter(|k| k.layout == layout).collect();
        if k.is_empty() {
            continue;
        }
        let failed = k.iter().filter(|k| k.killed_load.is_some()).count();
        let exact = k.iter().filter(|k| k.restart == Outcome::Exact).count();
        println!(
            "{:<10} destination killed mid-load at {} of its {} page writes: {} loads failed (of {}), {} restarts into the half-written memory exact",
            layout.name(),
            k.iter()
                .map(|k| k.at_write.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            k[0].of_writes,
            failed,
            k.len(),
            exact
        );
        for k in k
            .iter()
            .filter(|k| k.killed_load.is_none() || k.restart != Outcome::Exact)
        {
            println!(
                "  WRONG    killed at page write {}: the load {}; the restart {}: {}",
                k.at_write,
                k.killed_load
                    .as_ref()
                    .map_or("REPORTED SUCCESS".to_string(), |e| format!("failed ({e})")),
                outcome_name(k.restart),
                term(&k.detail)
            );
        }
    }
    let wrong: usize = r.layouts.iter().map(|l| l.wrong).sum();
    match (r.mode, wrong) {
        (Durability::QemuCompatible, 0) => {
            println!("verdict    no crash restored wrong memory")
        }
        (Durability::QemuCompatible, n) => println!(
            "verdict    {n} crashes restore wrong memory: expected of QEMU's protocol (it never \
             fsyncs; after a power loss the bitmaps, EOF and vmdesc can be on disk while pages \
             are not, and the file loads); exit 0"
        ),
        (Durability::Durable, n) if r.ignore_mark => println!(
            "verdict    {n} crashes restore wrong memory for a reader that ignores the completion \
             mark (as QEMU); migsim's reader requires it; exit 0"
        ),
        (Durability::Durable, 0) => println!("verdict    PASS: every crash exact or refused"),
        (Durability::Durable, n) => {
            println!("verdict    FAIL: {n} crashes restore wrong memory in durable mode")
        }
    }
    println!("time       {seconds:.1} s");
}

fn outcome_name(o: migsim_harness::faults::Outcome) -> &'static str {
    match o {
        migsim_harness::faults::Outcome::Exact => "exact",
        migsim_harness::faults::Outcome::Refused => "refused",
        migsim_harness::faults::Outcome::Wrong => "wrong",
    }
}

/// `migsim merge`'s closing line, and the failures' seeds and replays.
pub fn merged(r: &migsim_harness::merge::ReportFile, shards: usize) {
    for f in &r.failures {
        let text = |k: &str| f.get(k).and_then(|v| v.as_str()).unwrap_or("?").to_string();
        println!("FAIL  seed {}", f["seed"]);
        println!("      replay: {}", text("replay"));
        println!("      rerun the seed unshrunk: {}", text("rerun_seed"));
    }
    println!(
        "merge: {shards} shard(s) of seeds {}..{}{}: {} seeds, {} passed, {} failed",
        r.seeds.start,
        r.seeds.end,
        r.bug
            .map(|b| format!(" with bug variant {}", b.name()))
            .unwrap_or_default(),
        r.seeds_run,
        r.passed,
        r.failed()
    );
}

/// One replayed scenario file.
pub fn replayed(r: &Replayed) {
    let path = r.path.display();
    match &r.outcome {
        ReplayOutcome::Unreadable(e) => println!("FAIL  {path}: {e}"),
        ReplayOutcome::Ran {
            seed,
            verdict,
            differences,
            blessed,
        } => {
            if differences.is_empty() {
                let blessed = if *blessed { ", digest recorded" } else { "" };
                println!("ok    {path} ({}, seed {seed}{blessed})", verdict.name());
            } else {
                println!("FAIL  {path} (seed {seed})");
                for d in differences {
                    println!("        {d}");
                }
                println!("        re-run: {}", ReplayCommand::run(&r.path));
            }
        }
    }
}

/// `migsim replay`'s closing line.
pub fn replay_total(passed: usize, failed: usize) {
    println!("replay: {passed} passed, {failed} failed");
}

/// `migsim report`'s lines: each run that differed, the counts, the files.
pub fn report(r: &Report, out: &Path, seconds: f64) {
    for r in r
        .runs
        .iter()
        .filter(|r| !r.expectation_differences.is_empty())
    {
        println!(
            "DIFFERS  {}: {}",
            r.scenario.name,
            join_differences(&r.expectation_differences)
        );
        println!("         replay: {}", r.replay);
    }
    let count = |v: Verdict| r.runs.iter().filter(|x| x.verdict == v).count();
    println!(
        "report: {} runs in {seconds:.1} s ({} pass, {} fail, {} error)",
        r.runs.len(),
        count(Verdict::Pass),
        count(Verdict::Fail),
        count(Verdict::Error)
    );
    println!("open   {}", out.join("report.html").display());
    println!("also   {}", out.join("report.md").display());
}

/// `migsim extract`'s closing line and the reader's warnings (to stderr:
/// stdout may be the output).
pub fn extracted(
    block: &str,
    output: &Path,
    used_length: u64,
    pages_present: u64,
    warnings: &[String],
) {
    for w in warnings {
        eprintln!("migsim: warning: {}", term(w));
    }
    eprintln!(
        "{}: wrote {} ({used_length} bytes, {pages_present} pages present)",
        term(block),
        output.display()
    );
}

/// `migsim inspect`'s listing.
pub fn inspect(path: &Path, start: &StreamStart, i: &StreamInfo) {
    println!(
        "{}: QEMU migration stream v{}, {} bytes",
        path.display(),
        i.version,
        i.file_len
    );
    match &start.container {
        Container::Bare => {}
        Container::LibvirtSave {
            version,
            data_len,
            was_running,
            partial,
        } => println!(
            "container     libvirt save image{} (header v{version}, {data_len} bytes of domain XML, {}); stream @{:#x}",
            if *partial {
                ", UNFINISHED (LibvirtQemudPart)"
            } else {
                ""
            },
            if *was_running {
                "was running"
            } else {
                "was paused"
            },
            start.offset
        ),
        Container::Offset => println!(
            "container     none recognised; stream @{:#x} (QEMU file: offset=)",
            start.offset
        ),
    }
    println!("machine       {}", term(&i.machine));
    println!(
        "capabilities  {}",
        if i.capabilities.is_empty() {
            "(none listed)".to_string()
        } else {
            term(&i.capabilities.join(", ")).into_owned()
        }
    );
    println!("layout        {}", i.layout);
    println!("RAM blocks    {}", i.blocks.len());
    for b in &i.blocks {
        print!(
            "  {:<24} used_length {:#12x} ({:>7} pages)  present {:>7}",
            term(&b.name),
            b.used_length,
            b.pages,
            b.pages_present
        );
        if let (true, Some(f)) = (b.ignored, &b.fixed_ram) {
            print!(
                "  header @{:#x} v{} bitmap and pages @0: ignored (x-ignore-shared, shared memory)",
                f.header_offset, f.version
            );
        } else if let Some(f) = &b.fixed_ram {
            print!(
                "  header @{:#x} v{} page_size {} bitmap @{:#x}+{} pages @{:#x}",
                f.header_offset,
                f.version,
                f.page_size,
                f.bitmap_offset,
                f.bitmap_len,
                f.pages_offset
            );
        } else {
            print!("  zero records {}", b.zero_records);
        }
        println!();
    }
    let count = |k: SectionKind| i.sections.iter().filter(|s| s.kind == k).count();
    println!(
        "sections      {} START, {} PART, {} END, {} FULL (devices), {} COMMAND",
        count(SectionKind::Start),
        count(SectionKind::Part),
        count(SectionKind::End),
        count(SectionKind::Full),
        count(SectionKind::Command)
    );
    for s in &i.sections {
        if s.kind == SectionKind::Full {
            continue;
        }
        println!(
            "  @{:#10x} {:<8} id {:<3} {:<16} {} bytes",
            s.offset,
            s.kind,
            s.id,
            term(&s.idstr),
            s.len
        );
    }
    let devices: Vec<String> = i
        .sections
        .iter()
        .filter(|s| s.kind == SectionKind::Full)
        .map(|s| format!("{}({})", term(&s.idstr), s.len))
        .collect();
    if !devices.is_empty() {
        println!("devices       {}", devices.join(" "));
    }
    if let Some(u) = &i.unwalked_devices {
        println!(
            "devices       not walked from @{:#x}: {} (id {}, instance {}, version {}), payload @{:#x} and {} bytes after it unread",
            u.offset,
            term(&u.idstr),
            u.id,
            u.instance_id,
            u.version_id,
            u.payload_offset,
            u.unread_bytes
        );
        println!(
            "EOF           @{:#x} (the file's last byte, after a footer of section {}; not reached by the walk)",
            i.eof_offset, u.last_footer_id
        );
    } else {
        println!("EOF           @{:#x}", i.eof_offset);
    }
    match i.vmdesc_offset {
        Some(o) => println!(
            "vmdesc        @{o:#x} ({} devices described)",
            i.vmdesc_devices
        ),
        None => println!("vmdesc        none"),
    }
    if let Some(o) = i.integrity_trailer {
        println!("integrity     trailer @{o:#x} (CRC-32 per 1 MiB; not verified by inspect)");
    }
    if let Some(o) = i.completion_mark {
        println!("durable       completion mark @{o:#x}");
    }
    for w in &i.warnings {
        println!("warning       {}", term(w));
    }
}

/// `migsim bench`'s summary.
pub fn bench(r: &BenchReport) {
    print!("{}", bench_summary(r));
}

/// The human summary.
fn bench_summary(r: &BenchReport) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let m = &r.machine;
    let _ = writeln!(
        s,
        "machine    {} CPUs, {}, {:.1} GiB RAM, Linux {}; files in {}{}",
        m.cpus,
        m.cpu_model,
        m.mem_total as f64 / GIB,
        m.kernel,
        m.dir,
        if r.restore.is_empty() {
            ""
        } else if m.page_cache_dropped {
            " (page cache dropped before reads)"
        } else {
            " (page cache NOT dropped: not root)"
        }
    );
    if m.free_page_reporting {
        let _ = writeln!(
            s,
            "           a VM whose balloon reports free memory to the host: first touch of fresh memory costs a host fault once the host took it back (the QEMU restores are paired with migsim's for this)"
        );
    }
    let _ = writeln!(
        s,
        "guest      {:.2} GiB, {} channel(s) writing, {} reading, median of {}",
        r.size as f64 / GIB,
        r.channels,
        r.read_channels,
        r.reps
    );
    let rate = |t: &Timing| format!("{:.2} GiB/s ({:.2} s)", t.gib_s, t.median_s);
    if let (Some(h), Some(f)) = (&r.memcpy_hot, &r.memcpy_fresh) {
        let _ = writeln!(s, "memcpy     {} touched, {} fresh", rate(h), rate(f));
    }
    if let Some(x) = &r.sim {
        let _ = writeln!(
            s,
            "sim        {} guest through writer+reader+oracle, memory recycled from the run before; ratio {:.2} vs memcpy (touched); digest {}",
            rate(&x.run),
            r.sim_vs_memcpy_ratio.unwrap_or(0.0),
            if x.digest_stable {
                "stable"
            } else {
                "UNSTABLE"
            }
        );
        let _ = writeln!(
            s,
            "sim cold   {} first run, files in fresh memory; ratio {:.2} vs fresh memcpy",
            rate(&x.cold),
            r.sim_vs_fresh_memcpy_ratio.unwrap_or(0.0),
        );
        let stage_line = |label: &str, t: &migsim_harness::sim::stages::StageTimes| {
            let share = |v: f64| 100.0 * v / t.wall_s.max(f64::MIN_POSITIVE);
            format!(
                "{label} {:.2} s: generate {:.2} s ({:.0}%), write {:.2} s ({:.0}%), read {:.2} s ({:.0}%), verify {:.2} s ({:.0}%), hash {:.2} s ({:.0}%), other {:.2} s ({:.0}%) (thread time; channels overlap)",
                t.wall_s,
                t.generate_s,
                share(t.generate_s),
                t.write_s,
                share(t.write_s),
                t.read_s,
                share(t.read_s),
                t.verify_s,
                share(t.verify_s),
                t.hash_s,
                share(t.hash_s),
                t.other_s(),
                share(t.other_s())
            )
        };
        let _ = writeln!(s, "{}", stage_line("sim time  ", &x.stages));
        let _ = writeln!(s, "{}", stage_line("cold time ", &x.cold_stages));
    }
    for x in &r.save {
        let _ = writeln!(
            s,
            "save       {:<9} fixed-ram {} ({} until closed), sequential write {}; ratio {:.2}; into a presized file {}, ratio {:.2}",
            x.mode,
            rate(&x.fixed_ram),
            rate(&x.fixed_ram_closed),
            rate(&x.sequential_write),
            x.fixed_ram_vs_sequential_write_ratio,
            rate(&x.sequential_write_presized),
            x.fixed_ram_vs_presized_write_ratio
        );
    }
    if let Some(d) = &r.durability {
        let _ = writeln!(
            s,
            "durable    buffered  qemu-compatible {} ({} with an fsync after close), durable {}, durable + integrity trailer {}; ratio durable/qemu-compatible {:.2}, vs +fsync {:.2}, integrity/durable {:.2}",
            rate(&d.qemu_compatible),
            rate(&d.qemu_compatible_fsync),
            rate(&d.durable),
            rate(&d.durable_integrity),
            d.durable_vs_qemu_compatible_ratio,
            d.durable_vs_qemu_compatible_fsync_ratio,
            d.integrity_vs_durable_ratio
        );
    }
    for x in &r.restore {
        let _ = writeln!(
            s,
            "restore    {:<9} fixed-ram {} ({} into fresh memory), sequential read {}; ratio {:.2}{}",
            x.mode,
            rate(&x.fixed_ram),
            rate(&x.fixed_ram_fresh_memory),
            rate(&x.sequential_read),
            x.restore_vs_sequential_read_ratio,
            if x.verified { "; memory verified" } else { "" }
        );
    }
    for c in &r.qemu {
        let _ = writeln!(
            s,
            "qemu       {:<32} save {:.2} s, restore {:.2} s (migsim beside it {:.2} s); migsim/qemu ratio save {:.2}, restore {:.2}",
            c.qemu.case,
            c.qemu.save_median_s,
            c.qemu.restore_median_s,
            c.migsim_restore_paired.median_s,
            c.migsim_vs_qemu_save_ratio,
            c.migsim_vs_qemu_restore_ratio
        );
    }
    if let Some(why) = &r.qemu_skipped {
        let _ = writeln!(s, "qemu       skipped: {why}");
    }
    if let Some(f) = &r.qemu_fuzz {
        let rates: Vec<String> = f
            .rates
            .iter()
            .map(|x| format!("{:.1} loads/s with {} job(s)", x.median, x.jobs))
            .collect();
        let outcomes: Vec<String> = f.outcomes.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(
            s,
            "qemu fuzz  seeds 0..{}, -accel {}: {}; outcomes {}{}",
            f.seeds,
            f.accel,
            rates.join(", "),
            outcomes.join(", "),
            if f.deterministic {
                " (the same in every run)"
            } else {
                " (NOT the same in every run)"
            }
        );
    }
    if let Some(f) = &r.sched {
        let d: Vec<String> = f
            .drivers
            .iter()
            .map(|d| format!("{} {:.0} pages/s", d.driver, d.pages_per_second))
            .collect();
        let _ = writeln!(
            s,
            "scheduler  {}: {}; ratio {:.3}",
            f.scenario,
            d.join(", "),
            f.ratio
        );
    }
    for t in &r.targets {
        let _ = writeln!(
            s,
            "target     {:<55} {:.2} (goal >= {}) {}",
            t.name,
            t.ratio,
            t.goal,
            if t.met { "met" } else { "NOT met" }
        );
    }
    s
}

/// `migsim qemu fuzz`'s table and findings.
pub fn qemu_fuzz(r: &migsim_harness::qemu::campaign::CampaignReport) {
    println!("qemu       {}", r.qemu);
    println!(
        "loads      {} in {:.1} s ({:.1} a second)",
        r.seeds_run, r.seconds, r.loads_per_second
    );
    let list = |m: &std::collections::BTreeMap<String, u64>| {
        m.iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("outcomes   {}", list(&r.outcomes));
    println!("verdicts   {}", list(&r.verdicts));
    if !r.divergences.is_empty() {
        println!("named      {}", list(&r.divergences));
    }
    for f in &r.findings {
        println!("FINDING    {} ({} seed(s))", term(&f.key), f.count);
        if let Some(p) = &f.reproducer {
            println!("           reproducer {}", p.display());
        }
        println!("           replay: {}", f.replay);
    }
    println!("findings   {}", r.findings.len());
}

/// `migsim qemu replay`'s lines.
pub fn qemu_replayed(file: &Path, r: &migsim_harness::qemu::campaign::Replayed) {
    use migsim_harness::qemu::campaign::Outcome;
    let t = &r.trial;
    println!("reproducer {}", file.display());
    println!(
        "input      seed {} {} {}; {} bytes, sha256 {}{}",
        t.input.seed,
        t.input.base_name,
        t.input.mutations.join(", "),
        t.input.file_len,
        &t.input.sha256[..16],
        if r.same_input {
            " (as recorded)"
        } else {
            " (NOT the recorded input: migsim's base files changed since it was written)"
        }
    );
    let detail = match &t.outcome {
        Outcome::Refused { error } => format!(": {}", term(error)),
        Outcome::Crashed { last_stderr, .. } if !last_stderr.is_empty() => {
            format!("; last stderr line: {}", term(last_stderr))
        }
        Outcome::MemoryBlowup { rss } => format!(": {rss} bytes resident"),
        _ => String::new(),
    };
    println!("qemu       {}{detail} ({:.2} s)", r.now, t.seconds);
    println!(
        "migsim     {}",
        t.migsim_error.as_deref().map_or("loads".into(), term)
    );
    println!(
        "verdict    {}",
        serde_json::to_value(&t.verdict)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    );
    if r.reproduced {
        println!("REPRODUCED the recorded outcome ({})", r.recorded);
    } else {
        println!("not reproduced: recorded {}, now {}", r.recorded, r.now);
    }
}

/// `migsim qemu run`'s summary: per layout, the save (syncs, file size at
/// each sync), the restores and the bound.
pub fn qemu_run(r: &migsim_harness::qemu::live::LiveReport) {
    const MIB: f64 = (1u64 << 20) as f64;
    let mib = |b: u64| format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64);
    println!("scenario   {} (seed {})", r.scenario, r.seed);
    println!("qemu       {}; source -accel {}", r.qemu, r.accel);
    let g = &r.guest;
    println!(
        "guest      pc.ram {}; work region pages {:#x}..{:#x} ({} pages), {:?}, {} writes per tick of {} ms{}",
        mib(r.ram),
        g.first_page,
        g.first_page + g.pages,
        g.pages,
        g.kind,
        g.writes_per_tick,
        r.tick_ms,
        if g.hot_pages > 0 {
            format!(", hot set {} pages", g.hot_pages)
        } else {
            String::new()
        }
    );
    println!(
        "link       max-bandwidth {}/s, downtime-limit {} ms; switchover forced after {} syncs",
        mib(r.max_bandwidth),
        r.downtime_limit_ms,
        r.force_after_syncs
    );
    for x in &r.runs {
        println!(
            "{:<10} {}: {} syncs{}, file {} = {:.2}x RAM, sent {}, {} ms ({} ms down), guest {:.0} writes/s",
            x.layout.name(),
            if x.pass { "PASS" } else { "FAIL" },
            x.dirty_syncs,
            x.forced_at_sync
                .map_or(String::new(), |s| format!(" (forced at {s})")),
            mib(x.file_len),
            x.file_over_ram,
            mib(x.transferred),
            x.total_time_ms,
            x.downtime_ms,
            x.guest_writes_per_second
        );
        if let Some(what) = &x.sabotaged {
            println!("           SABOTAGED  {what}");
        }
        let sizes: Vec<String> = x
            .at_sync
            .iter()
            .map(|a| format!("{}:{}", a.sync, mib(a.file_len)))
            .collect();
        println!("           file at each sync  {}", sizes.join("  "));
        let c = &x.source_pages;
        println!(
            "           source work region: {} data pages (up to v{}), {} zero, {} foreign{}",
            c.data,
            c.max_version,
            c.zero,
            c.foreign,
            match c.foreign {
                0 => "",
                1 => " (the page being written when the vCPU stopped, torn)",
                _ => " (the guest wrote bytes that are not migsim's page contents)",
            }
        );
        for c in &x.restores {
            match &c.error {
                Some(e) => println!("           {} restore FAILED: {}", c.by, term(e)),
                None if c.differing == 0 => println!(
                    "           {} restore equals the stopped source: {} pages",
                    c.by, c.pages
                ),
                None => {
                    println!(
                        "           {} restore DIFFERS from the stopped source: {} of {} pages",
                        c.by, c.differing, c.pages
                    );
                    for n in &c.named {
                        println!("             {n}");
                    }
                }
            }
        }
        if let Some(b) = &x.bound {
            println!(
                "           bound {}: page areas end at {} (migsim's layout{}), then {} bytes ({} PART sections, device state, vmdesc)",
                if b.within { "held" } else { "EXCEEDED" },
                mib(b.ram_end),
                if b.offsets_match {
                    ""
                } else {
                    ": QEMU's offsets DIFFER"
                },
                b.tail,
                b.parts
            );
        }
    }
    match (&r.simulation, &r.simulation_skipped) {
        (Some(sim), _) => {
            println!(
                "simulated  {}: {} live passes + final ({}), {} pages sent; file size after each pass beside QEMU's at each sync:",
                sim.verdict.to_uppercase(),
                sim.passes,
                if sim.converged {
                    "converged"
                } else {
                    "forced at max_passes"
                },
                sim.pages_sent
            );
            for (layout, sizes) in &sim.size_after_pass {
                let s: Vec<String> = sizes
                    .iter()
                    .map(|b| format!("{:.1}", *b as f64 / MIB))
                    .collect();
                println!(
                    "           {:<10} sim  MiB after setup, then each pass {}",
                    layout.name(),
                    s.join(" ")
                );
                if let Some(x) = r.runs.iter().find(|x| x.layout == *layout) {
                    let q: Vec<String> = x
                        .at_sync
                        .iter()
                        .map(|a| format!("{}:{:.1}", a.sync, a.file_len as f64 / MIB))
                        .collect();
                    println!(
                        "           {:<10} qemu MiB at sync:size {}",
                        "",
                        q.join(" ")
                    );
                }
            }
            let parts: Vec<String> = r
                .runs
                .iter()
                .map(|x| format!("{} {}", x.layout.name(), x.parts))
                .collect();
            let syncs: Vec<String> = r
                .runs
                .iter()
                .map(|x| format!("{} {}", x.layout.name(), x.dirty_syncs))
                .collect();
            println!(
                "differs    syncs: the simulation syncs once per pass ({} + the final), QEMU {} (setup, then whenever its pending estimate falls under the threshold, and at completion); RAM PART sections: one per pass simulated, QEMU one per iteration slice ({}); pages sent: simulated {} (all blocks), QEMU {}; the simulated guest writes every block, the real one only pc.ram from page {:#x} (the ROM blocks are read-only to it)",
                sim.passes,
                syncs.join(", "),
                parts.join(", "),
                sim.pages_sent,
                r.runs
                    .iter()
                    .map(|x| format!(
                        "{} {} data + {} zero",
                        x.layout.name(),
                        x.pages_sent.0,
                        x.pages_sent.1
                    ))
                    .collect::<Vec<_>>()
                    .join(", "),
                r.guest.first_page
            );
        }
        (None, Some(why)) => println!("simulated  not run: {why}"),
        (None, None) => {}
    }
    println!("verdict    {}", if r.pass { "PASS" } else { "FAIL" });
    println!("note       {}", r.deterministic);
}
