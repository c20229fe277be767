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
use migsim_harness::replay::{ReplayOutcome, Replayed, replay_command};
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

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1 << 20) as f64)
}

/// `migsim run`'s summary, then where the files are, time and memory, and
/// every difference from the scenario's expectations.
pub fn run(
    r: &RunReport,
    replay: &str,
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

fn print_summary(r: &RunReport, replay: &str) {
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
        println!(
            "{:<10} size after setup, each pass: {} MiB",
            f.writer,
            size_series(&f.size_after_pass)
        );
    }
    println!("digest     {}", r.digest);
    if r.verdict == Verdict::Fail {
        println!("replay     {replay}");
    }
}

/// "0.0 30.8 46.0 … 146.5": up to 16 figures, else the middle elided.
fn size_series(sizes: &[u64]) -> String {
    let fmt = |b: &u64| format!("{:.1}", *b as f64 / (1 << 20) as f64);
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
                println!("        re-run: {}", replay_command(Some(&r.path), None));
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
        if let Some(f) = &b.fixed_ram {
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
    let _ = writeln!(
        s,
        "guest      {:.2} GiB, {} channel(s), median of {}",
        r.size as f64 / GIB,
        r.channels,
        r.reps
    );
    let rate = |t: &Timing| format!("{:.2} GiB/s ({:.2} s)", t.gib_s, t.median_s);
    if let (Some(h), Some(f)) = (&r.memcpy_hot, &r.memcpy_fresh) {
        let _ = writeln!(s, "memcpy     {} touched, {} fresh", rate(h), rate(f));
    }
    if let Some(x) = &r.sim {
        let _ = writeln!(
            s,
            "sim        {} guest through writer+reader+oracle; ratio {:.2} vs memcpy, {:.2} vs fresh memcpy; digest {}",
            rate(&x.run),
            r.sim_vs_memcpy_ratio.unwrap_or(0.0),
            r.sim_vs_fresh_memcpy_ratio.unwrap_or(0.0),
            if x.digest_stable {
                "stable"
            } else {
                "UNSTABLE"
            }
        );
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
            "qemu       {:<32} save {:.2} s, restore {:.2} s; migsim/qemu ratio save {:.2}, restore {:.2}",
            c.qemu.case,
            c.qemu.save_median_s,
            c.qemu.restore_median_s,
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
