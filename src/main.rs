//! `migsim`: the command line. Thin: parses flags, calls the library,
//! prints. Exit status: 0 success, 1 a verdict or expectation differed,
//! 2 bad input or usage.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use migsim::bugs::Bug;
use migsim::explore::{ExploreOptions, explore, shard_seeds};
use migsim::format::io::DiskFile;
use migsim::format::reader::{StreamInfo, inspect};
use migsim::run::{RunOptions, RunReport, check_expectations, run, run_opts};
use migsim::scenario::{Scenario, Verdict, WriterKind};

#[derive(Parser)]
#[command(
    name = "migsim",
    version,
    about = "Deterministic simulator and fuzzing harness for VM live migration with fixed-ram (QEMU: mapped-ram)",
    long_about = "Deterministic simulator and fuzzing harness for VM live migration with the \
fixed-ram capability (QEMU: mapped-ram). One seed reproduces everything.\n\n\
Examples:\n  migsim run                          run the embedded heavy re-dirtying scenario\n  \
migsim run scenarios/idle.toml --json\n  migsim replay scenarios/             check every scenario's expectations\n  \
migsim inspect vm.mig                show the layout of any QEMU or migsim migration file\n  \
migsim extract vm.mig --block pc.ram -o ram.bin"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// Flags for big guests and real files (`migsim run`).
#[derive(clap::Args, Clone, Default)]
struct BigArgs {
    /// Resize the first RAMBlock (pc.ram) to SIZE, e.g. 4G or 16G. Page
    /// contents are generated, and the oracle keeps 8 bytes a page, so
    /// with --file-dir a guest may be larger than this machine's memory.
    #[arg(long, value_name = "SIZE", value_parser = parse_size_arg)]
    ram: Option<u64>,
    /// Run only these writers: sequential, fixed-ram (comma-separated).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    writers: Option<Vec<String>>,
    /// Write the migration files into DIR on disk (DIR/<scenario>.<writer>.mig)
    /// instead of keeping them in memory. They are left there.
    #[arg(long, value_name = "DIR")]
    file_dir: Option<PathBuf>,
    /// Open on-disk files with O_DIRECT: page writes bypass the page cache
    /// (needs --file-dir and a filesystem that supports it).
    #[arg(long, requires = "file_dir")]
    direct_io: bool,
    /// Channels (threads) writing and reading fixed-ram pages at once, as
    /// QEMU's multifd channels do. Files, verdict and digest do not change.
    #[arg(long, default_value_t = 1, value_name = "N")]
    channels: usize,
}

impl BigArgs {
    /// The flags again, for a replay command.
    fn replay_flags(&self) -> String {
        let mut c = String::new();
        if let Some(r) = self.ram {
            c.push_str(&format!(" --ram {}", size_text(r)));
        }
        if let Some(w) = &self.writers {
            c.push_str(&format!(" --writers {}", w.join(",")));
        }
        if let Some(d) = &self.file_dir {
            c.push_str(&format!(" --file-dir {}", d.display()));
        }
        if self.direct_io {
            c.push_str(" --direct-io");
        }
        if self.channels > 1 {
            c.push_str(&format!(" --channels {}", self.channels));
        }
        c
    }

    /// Apply --ram and --writers; either makes the scenario's digest
    /// expectation meaningless, so it is dropped.
    fn apply(&self, s: &mut Scenario) -> Result<(), String> {
        if let Some(r) = self.ram {
            if r == 0 || !r.is_multiple_of(4096) {
                return Err(format!("--ram {r}: must be a positive multiple of 4 KiB"));
            }
            let first = s
                .guest
                .blocks
                .first_mut()
                .ok_or("the scenario has no RAMBlock to resize")?;
            first.size = migsim::scenario::Size(r);
            s.expect.digest = None;
        }
        if let Some(ws) = &self.writers {
            let mut kinds = Vec::new();
            for w in ws {
                kinds.push(match w.as_str() {
                    "sequential" => WriterKind::Sequential,
                    "fixed-ram" => WriterKind::FixedRam,
                    other => {
                        return Err(format!(
                            "--writers: unknown writer {other:?} (use sequential, fixed-ram)"
                        ));
                    }
                });
            }
            s.migration.writers = kinds;
            s.expect.digest = None;
            s.expect.min_sequential_ram_ratio = None;
        }
        if self.channels == 0 {
            return Err("--channels must be at least 1".into());
        }
        if let Some(d) = &self.file_dir {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        s.validate()
    }

    fn options(&self, bug: Option<Bug>) -> RunOptions {
        RunOptions {
            bug,
            file_dir: self.file_dir.clone(),
            direct_io: self.direct_io,
            channels: self.channels,
        }
    }
}

fn parse_size_arg(t: &str) -> Result<u64, String> {
    migsim::scenario::parse_size(t)
}

fn size_text(b: u64) -> String {
    match b {
        _ if b.is_multiple_of(1 << 30) => format!("{}G", b >> 30),
        _ if b.is_multiple_of(1 << 20) => format!("{}M", b >> 20),
        _ => b.to_string(),
    }
}

/// Peak resident set size of this process so far, in bytes.
fn peak_rss() -> u64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return 0;
    }
    u.ru_maxrss as u64 * 1024
}

#[derive(Subcommand)]
enum Cmd {
    /// Simulate a live migration through the sequential and fixed-ram
    /// writers, restore both files, and judge them with the oracle.
    ///
    /// With no SCENARIO, runs the embedded default: a guest that keeps
    /// re-dirtying memory, so the sequential file grows to several times
    /// guest RAM while the fixed-ram file stays within its bound.
    Run {
        /// Scenario file (TOML). Default: the embedded heavy-redirty scenario.
        scenario: Option<PathBuf>,
        /// Override the scenario's seed.
        #[arg(long)]
        seed: Option<u64>,
        /// Print one JSON object (with a top-level "digest") instead of the summary.
        #[arg(long)]
        json: bool,
        /// Keep the files written: DIR/sequential.mig and DIR/fixed-ram.mig.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Inject a deliberately wrong variant (builds with the
        /// bug-variants feature only), e.g. to replay what explore found.
        #[arg(long, value_enum)]
        bug: Option<Bug>,
        #[command(flatten)]
        big: BigArgs,
    },
    /// Generate random scenarios from seeds, run them, and shrink every
    /// failure to a minimal scenario written to scenarios/regressions/
    /// with its seed and the command that replays it.
    ///
    /// Same seeds give the same results whatever --jobs. A progress bar
    /// shows on a terminal; a summary follows.
    Explore {
        /// Seed range A..B (end exclusive), e.g. 0..200.
        #[arg(long, value_parser = parse_range)]
        seeds: (u64, u64),
        /// Worker threads (default: available cores).
        #[arg(long)]
        jobs: Option<usize>,
        /// Run only shard K of N (1-based), e.g. 2/4, for splitting a sweep
        /// across machines.
        #[arg(long, value_parser = parse_shard)]
        shard: Option<(u64, u64)>,
        /// Print one JSON object instead of the summary.
        #[arg(long)]
        json: bool,
        /// Inject a deliberately wrong variant (bug-variants builds only).
        #[arg(long, value_enum)]
        bug: Option<Bug>,
        /// Report failures as found, without shrinking.
        #[arg(long)]
        no_shrink: bool,
        /// Where shrunk failures are written.
        #[arg(long, value_name = "DIR", default_value = "scenarios/regressions")]
        regressions: PathBuf,
        /// Do not write regression files.
        #[arg(long)]
        dry_run: bool,
        /// Stop shrinking after this many failures (0 = all).
        #[arg(long, default_value_t = 5)]
        max_failures: usize,
    },
    /// Run every scenario and check its expectations (verdict, error text,
    /// digest, size ratio). Exits 1 on any difference and says how to
    /// re-run the scenario that differed.
    Replay {
        /// Scenario files or directories (searched recursively for *.toml).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Write each run's digest into its scenario file's [expect] table
        /// (after a deliberate format change; say why in the commit).
        #[arg(long)]
        bless: bool,
    },
    /// Show the layout of a migration file (migsim's or a real QEMU save,
    /// sequential or fixed-ram/mapped-ram): header, configuration,
    /// capabilities, sections, RAM blocks with offsets and pages present.
    Inspect {
        /// The migration file (a regular file: pipes, FIFOs and devices are
        /// refused; save a stream to a file first).
        file: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write one RAMBlock's memory as raw bytes (absent or zero pages as
    /// zeros), e.g. to compare with QEMU's pmemsave.
    Extract {
        /// The migration file (a regular file, as for inspect).
        file: PathBuf,
        /// Block name, e.g. pc.ram.
        #[arg(long)]
        block: String,
        /// Output file: replaced only when the extract succeeded (never the
        /// input itself). May also be a pipe or device, e.g. /dev/stdout.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Run a sweep (or the given scenarios) and write a report with
    /// charts: DIR/report.html (self-contained), DIR/report.md with
    /// DIR/*.svg, DIR/report.csv and DIR/sizes.csv.
    ///
    /// With no SCENARIO, sweeps the embedded default scenario over the
    /// guest's dirty rate and max_passes, and writes each point's scenario
    /// to DIR/scenarios/ so `migsim run` can replay it.
    Report {
        /// Scenario files or directories (searched recursively for *.toml).
        scenarios: Vec<PathBuf>,
        /// Output directory.
        #[arg(short, long, value_name = "DIR")]
        output: PathBuf,
        /// Worker threads (default: available cores).
        #[arg(long)]
        jobs: Option<usize>,
    },
    /// Measure migsim against the machine's limits and against QEMU:
    /// simulation throughput vs memcpy, fixed-ram save to a real file vs a
    /// plain sequential write (buffered and O_DIRECT; timed until fsync'd,
    /// and until closed for the QEMU comparison), restore vs a plain
    /// sequential read (buffered and O_DIRECT), and QEMU's own mapped-ram save
    /// and restore (plain, 4 multifd channels, 4 channels + direct-io) of
    /// a paused guest of the same size when QEMU >= 9 is installed.
    ///
    /// Prints medians and ratios (migsim's throughput over the
    /// reference's: above 1 is faster), and the performance targets: the
    /// simulation at 0.3x memcpy or more, the save at 0.8x an O_DIRECT
    /// write or more, the restore at 0.8x a read or more, the save faster
    /// than QEMU with 4 multifd channels. Needs
    /// about 2x SIZE of memory and 2x SIZE of disk in DIR. Run as root to
    /// drop the page cache before reads.
    Bench {
        /// Guest RAM size, e.g. 1G or 4G (a multiple of 1 MiB).
        #[arg(long, default_value = "1G", value_parser = parse_size_arg)]
        size: u64,
        /// Repetitions of each measurement (medians are reported).
        #[arg(long, default_value_t = 3)]
        reps: usize,
        /// Directory for the files; it must support O_DIRECT (not tmpfs).
        #[arg(long, value_name = "DIR", default_value = "target/migsim-bench")]
        dir: PathBuf,
        /// Channels writing and reading fixed-ram pages (multifd-like).
        /// Default: one per CPU.
        #[arg(long)]
        channels: Option<usize>,
        /// Do not measure QEMU even if it is installed.
        #[arg(long)]
        no_qemu: bool,
        /// Run only these parts: sim, save, restore, qemu (comma-separated).
        #[arg(long, value_delimiter = ',', value_name = "PARTS")]
        only: Vec<String>,
        /// Print one JSON object instead of the summary (progress still
        /// goes to stderr).
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    // Die quietly on a closed pipe (`migsim inspect f | head`), like other
    // Unix tools, instead of panicking in println!.
    // SAFETY: setting a signal disposition to its default at startup,
    // before any threads exist.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Run {
            scenario,
            seed,
            json,
            out,
            bug,
            big,
        } => cmd_run(scenario.as_deref(), seed, json, out.as_deref(), bug, &big),
        Cmd::Explore {
            seeds,
            jobs,
            shard,
            json,
            bug,
            no_shrink,
            regressions,
            dry_run,
            max_failures,
        } => {
            let opts = ExploreOptions {
                seeds: shard_seeds(seeds.0, seeds.1, shard),
                jobs: jobs
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
                bug,
                shrink: !no_shrink,
                max_failures,
                regressions: (!dry_run).then_some(regressions),
            };
            cmd_explore(&opts, json)
        }
        Cmd::Replay { paths, bless } => cmd_replay(&paths, bless),
        Cmd::Inspect { file, json } => cmd_inspect(&file, json),
        Cmd::Extract {
            file,
            block,
            output,
        } => cmd_extract(&file, &block, &output),
        Cmd::Report {
            scenarios,
            output,
            jobs,
        } => cmd_report(&scenarios, &output, jobs),
        Cmd::Bench {
            size,
            reps,
            dir,
            channels,
            no_qemu,
            only,
            json,
        } => cmd_bench(
            &migsim::bench::BenchOptions {
                size,
                reps,
                dir,
                channels: channels
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
                    .max(1),
                qemu: !no_qemu,
                only,
            },
            json,
        ),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("migsim: {e}");
            ExitCode::from(2)
        }
    }
}

fn replay_command(path: Option<&Path>, seed_override: Option<u64>) -> String {
    let mut c = "migsim run".to_string();
    if let Some(p) = path {
        c.push(' ');
        c.push_str(&p.display().to_string());
    }
    if let Some(s) = seed_override {
        c.push_str(&format!(" --seed {s}"));
    }
    c
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1 << 20) as f64)
}

fn check_bug_build(bug: Option<Bug>) -> Result<(), String> {
    if bug.is_some() && !migsim::bugs::ENABLED {
        return Err(
            "this migsim was built without bug variants; rebuild with `--features bug-variants`"
                .into(),
        );
    }
    Ok(())
}

fn parse_range(s: &str) -> Result<(u64, u64), String> {
    let (a, b) = s.split_once("..").ok_or("expected A..B, e.g. 0..200")?;
    let a: u64 = a.trim().parse().map_err(|e| format!("{a}: {e}"))?;
    let b: u64 = b.trim().parse().map_err(|e| format!("{b}: {e}"))?;
    if b <= a {
        return Err(format!("empty range {a}..{b}"));
    }
    Ok((a, b))
}

fn parse_shard(s: &str) -> Result<(u64, u64), String> {
    let (k, n) = s.split_once('/').ok_or("expected K/N, e.g. 2/4")?;
    let k: u64 = k.trim().parse().map_err(|e| format!("{k}: {e}"))?;
    let n: u64 = n.trim().parse().map_err(|e| format!("{n}: {e}"))?;
    if n == 0 || k == 0 || k > n {
        return Err(format!("shard {k}/{n}: need 1 <= K <= N"));
    }
    Ok((k, n))
}

fn cmd_explore(opts: &ExploreOptions, json: bool) -> Result<ExitCode, String> {
    check_bug_build(opts.bug)?;
    let start = std::time::Instant::now();
    let bar = indicatif::ProgressBar::new(opts.seeds.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} seeds  {elapsed} (eta {eta})",
        )
        .expect("valid template"),
    );
    let report = explore(opts, &|done, _| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
        );
    } else {
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
            "explore: {} seeds{} in {:.1} s: {} passed, {} failed",
            report.seeds_run,
            opts.bug
                .map(|b| format!(" with bug variant {}", b.name()))
                .unwrap_or_default(),
            start.elapsed().as_secs_f64(),
            report.passed,
            report.seeds_run - report.passed
        );
    }
    Ok(if report.passed == report.seeds_run {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn cmd_bench(o: &migsim::bench::BenchOptions, json: bool) -> Result<ExitCode, String> {
    let quiet = std::env::var_os("MIGSIM_QUIET").is_some();
    let mut progress = |line: &str| {
        if !quiet {
            eprintln!("bench: {line}");
        }
    };
    let r = migsim::bench::run_bench(o, &mut progress)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&r).map_err(|e| e.to_string())?
        );
    } else {
        print!("{}", migsim::bench::summary(&r));
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_run(
    path: Option<&Path>,
    seed: Option<u64>,
    json: bool,
    out: Option<&Path>,
    bug: Option<Bug>,
    big: &BigArgs,
) -> Result<ExitCode, String> {
    check_bug_build(bug)?;
    let mut s = match path {
        Some(p) => Scenario::load(p)?,
        None => Scenario::default_scenario(),
    };
    if let Some(seed) = seed {
        s.seed = seed;
        s.expect.digest = None;
    }
    big.apply(&mut s)?;
    let started = std::time::Instant::now();
    let report = run_opts(&s, &big.options(bug));
    let elapsed = started.elapsed().as_secs_f64();
    let replay = replay_command(path, seed) + &big.replay_flags();
    let replay_failure = replay_command(path, seed.or(Some(s.seed))) + &big.replay_flags();
    if let Some(dir) = out {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for f in &report.files {
            let p = dir.join(format!("{}.mig", f.writer));
            f.file
                .save(&p)
                .map_err(|e| format!("{}: {e}", p.display()))?;
        }
    }
    let diffs = check_expectations(&s, &report);
    if json {
        let mut v = serde_json::to_value(&report).map_err(|e| e.to_string())?;
        v["expectation_differences"] = serde_json::json!(diffs);
        v["replay"] = serde_json::json!(replay);
        v["seconds"] = serde_json::json!(elapsed);
        v["peak_rss_bytes"] = serde_json::json!(peak_rss());
        println!(
            "{}",
            serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?
        );
    } else {
        print_summary(&report, &replay_failure);
        if let Some(dir) = out.or(big.file_dir.as_deref()) {
            println!("files      {}", dir.display());
        }
        println!("took       {elapsed:.2} s; peak RSS {}", mib(peak_rss()));
        for d in &diffs {
            println!("DIFFERS    {d}");
        }
    }
    Ok(if diffs.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
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

fn cmd_replay(paths: &[PathBuf], bless: bool) -> Result<ExitCode, String> {
    let files = migsim::scenario::scenario_files(paths)?;
    if files.is_empty() {
        return Err("no scenario files (*.toml) found".into());
    }
    let (mut passed, mut failed) = (0, 0);
    for f in &files {
        let s = match Scenario::load(f) {
            Ok(s) => s,
            Err(e) => {
                println!("FAIL  {}: {e}", f.display());
                failed += 1;
                continue;
            }
        };
        let report = run(&s);
        if bless {
            bless_digest(f, &report.digest)?;
        }
        let mut diffs = check_expectations(&s, &report);
        if bless {
            diffs.retain(|d| !d.starts_with("digest "));
        }
        if diffs.is_empty() {
            passed += 1;
            println!(
                "ok    {} ({}, seed {})",
                f.display(),
                report.verdict.name(),
                s.seed
            );
        } else {
            failed += 1;
            println!("FAIL  {} (seed {})", f.display(), s.seed);
            for d in diffs {
                println!("        {d}");
            }
            println!("        re-run: {}", replay_command(Some(f), None));
        }
    }
    println!("replay: {passed} passed, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Set `digest = "..."` in the file's [expect] table, keeping the rest.
fn bless_digest(path: &Path, digest: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let line = format!("digest = \"{digest}\"");
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    if let Some(l) = lines
        .iter_mut()
        .find(|l| l.trim_start().starts_with("digest"))
    {
        *l = line;
    } else if let Some(i) = lines.iter().position(|l| l.trim() == "[expect]") {
        lines.insert(i + 1, line);
    } else {
        lines.push(String::new());
        lines.push("[expect]".into());
        lines.push(line);
    }
    std::fs::write(path, lines.join("\n") + "\n").map_err(|e| e.to_string())
}

/// What a non-regular file is, in words.
fn file_kind(t: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "not a regular file"
    }
}

/// Open the migration file `path` for inspect and extract, with its
/// metadata (which extract compares with the output's).
///
/// Only regular files are read: the reader reads at random offsets and
/// needs the length, which a pipe, FIFO, socket or device does not give,
/// and opening a FIFO for reading would block until some writer came. So
/// the type is checked with `metadata` *before* opening, and anything else
/// is refused with what it is and what to do. A stream in a pipe is
/// deliberately not spooled to a temporary file: it is as large as the
/// guest's RAM, and the user knows better than migsim where that fits
/// (`cat FIFO > vm.mig`). (A path swapped for a FIFO between the check and
/// the open could still block; that race is not defended against.)
fn open(path: &Path) -> Result<(DiskFile, std::fs::Metadata), String> {
    let p = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("{p}: {e}"))?;
    if meta.is_dir() {
        return Err(format!(
            "{p}: is a directory; migsim reads migration files, give the path of one"
        ));
    }
    if !meta.is_file() {
        return Err(format!(
            "{p}: is {}; migsim reads migration files (at random offsets), \
             save the stream to a file first, e.g. cat {p} > vm.mig",
            file_kind(meta.file_type())
        ));
    }
    let file = DiskFile::open(path).map_err(|e| format!("{p}: {e}"))?;
    Ok((file, meta))
}

fn cmd_inspect(path: &Path, json: bool) -> Result<ExitCode, String> {
    let (file, _) = open(path)?;
    let info = inspect(&file).map_err(|e| format!("{}: {e}", path.display()))?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&info).map_err(|e| e.to_string())?
        );
    } else {
        print_inspect(path, &info);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_inspect(path: &Path, i: &StreamInfo) {
    println!(
        "{}: QEMU migration stream v{}, {} bytes",
        path.display(),
        i.version,
        i.file_len
    );
    println!("machine       {}", i.machine);
    println!(
        "capabilities  {}",
        if i.capabilities.is_empty() {
            "(none listed)".to_string()
        } else {
            i.capabilities.join(", ")
        }
    );
    println!("layout        {}", i.layout);
    println!("RAM blocks    {}", i.blocks.len());
    for b in &i.blocks {
        print!(
            "  {:<24} used_length {:#12x} ({:>7} pages)  present {:>7}",
            b.name, b.used_length, b.pages, b.pages_present
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
    let count = |k: &str| i.sections.iter().filter(|s| s.kind == k).count();
    println!(
        "sections      {} START, {} PART, {} END, {} FULL (devices), {} COMMAND",
        count("START"),
        count("PART"),
        count("END"),
        count("FULL"),
        count("COMMAND")
    );
    for s in &i.sections {
        if s.kind == "FULL" {
            continue;
        }
        println!(
            "  @{:#10x} {:<8} id {:<3} {:<16} {} bytes",
            s.offset, s.kind, s.id, s.idstr, s.len
        );
    }
    let devices: Vec<String> = i
        .sections
        .iter()
        .filter(|s| s.kind == "FULL")
        .map(|s| format!("{}({})", s.idstr, s.len))
        .collect();
    if !devices.is_empty() {
        println!("devices       {}", devices.join(" "));
    }
    println!("EOF           @{:#x}", i.eof_offset);
    match i.vmdesc_offset {
        Some(o) => println!(
            "vmdesc        @{o:#x} ({} devices described)",
            i.vmdesc_devices
        ),
        None => println!("vmdesc        none"),
    }
    for w in &i.warnings {
        println!("warning       {w}");
    }
}

/// A file migsim created itself (`create_new`, so never anyone else's),
/// removed when dropped unless [`TempOut::rename_to`] moved it into place.
struct TempOut {
    path: PathBuf,
    file: std::fs::File,
    keep: bool,
}

impl TempOut {
    /// Create `DIR/.NAME.migsim-PID-N.tmp` with the first free N.
    fn create(dir: &Path, name: &str) -> std::io::Result<Self> {
        let pid = std::process::id();
        for n in 0..1000 {
            let path = dir.join(format!(".{name}.migsim-{pid}-{n}.tmp"));
            match std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(file) => {
                    return Ok(Self {
                        path,
                        file,
                        keep: false,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!("no free temporary file name in {}", dir.display()),
        ))
    }

    /// Rename over `to` (atomically replacing whatever was there).
    fn rename_to(mut self, to: &Path) -> std::io::Result<()> {
        std::fs::rename(&self.path, to)?;
        self.keep = true;
        Ok(())
    }
}

impl Drop for TempOut {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Where extract's bytes go.
enum Dest {
    /// A regular file (`path`, symlinks resolved; it may not exist yet):
    /// extract into a temporary file beside it, rename over it on success.
    /// `perms`: an existing file's permissions, kept.
    Replace {
        path: PathBuf,
        perms: Option<std::fs::Permissions>,
    },
    /// Not a regular file (/dev/stdout on a pipe, /dev/null, a FIFO):
    /// extract into a spool file, then copy into it.
    Stream,
}

/// Decide how to write `output`, refusing the input itself (same device
/// and inode after following symlinks: the same path, a hard link or a
/// symlink to it) and directories.
fn extract_dest(output: &Path, input: &std::fs::Metadata) -> Result<Dest, String> {
    use std::os::unix::fs::MetadataExt;
    let o = output.display();
    match std::fs::metadata(output) {
        Ok(m) if (m.dev(), m.ino()) == (input.dev(), input.ino()) => Err(format!(
            "{o}: is the input file (or a link to it); refusing to write over it, \
             give another output path"
        )),
        Ok(m) if m.is_dir() => Err(format!("{o}: is a directory; give an output file path")),
        Ok(m) if m.is_file() => Ok(Dest::Replace {
            path: std::fs::canonicalize(output).map_err(|e| format!("{o}: {e}"))?,
            perms: Some(m.permissions()),
        }),
        Ok(_) => Ok(Dest::Stream),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if std::fs::symlink_metadata(output).is_ok() {
                return Err(format!(
                    "{o}: is a symbolic link to nothing; remove it or give its target"
                ));
            }
            Ok(Dest::Replace {
                path: output.to_path_buf(),
                perms: None,
            })
        }
        Err(e) => Err(format!("{o}: {e}")),
    }
}

/// `migsim extract`. The input is opened and checked first; the output is
/// only written once the whole extract succeeded: a regular output is
/// replaced by renaming a temporary file from its own directory over it,
/// anything else (a pipe, FIFO, /dev/stdout, /dev/null) gets a copy of a
/// spool file in the temporary directory, which is unlinked as soon as it
/// is created (so nothing is left behind, even if migsim is killed). A
/// failed extract leaves any existing output as it was, and migsim only
/// ever removes its own temporary file. Errors about the output name the
/// output.
fn cmd_extract(path: &Path, block: &str, output: &Path) -> Result<ExitCode, String> {
    use std::io::{Seek, Write};
    let (file, meta) = open(path)?;
    let dest = extract_dest(output, &meta)?;
    let o = output.display();
    let run = |out: &std::fs::File| {
        migsim::extract::extract(&file, block, out).map_err(|e| match e {
            migsim::extract::ExtractError::Output(e) => format!("{o}: {e}"),
            e => format!("{}: {e}", path.display()),
        })
    };
    let info = match dest {
        Dest::Replace { path: to, perms } => {
            let dir = match to.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            // Short enough that the temporary name fits in NAME_MAX.
            let name: String = to
                .file_name()
                .map_or("out".into(), |n| n.to_string_lossy())
                .chars()
                .scan(0, |len, c| {
                    *len += c.len_utf8();
                    (*len <= 200).then_some(c)
                })
                .collect();
            let tmp =
                TempOut::create(dir, &name).map_err(|e| format!("{o}: cannot create: {e}"))?;
            if let Some(p) = perms {
                tmp.file
                    .set_permissions(p)
                    .map_err(|e| format!("{o}: {e}"))?;
            }
            let info = run(&tmp.file)?;
            tmp.rename_to(&to)
                .map_err(|e| format!("{o}: cannot replace: {e}"))?;
            info
        }
        Dest::Stream => {
            let dir = std::env::temp_dir();
            let mut tmp = TempOut::create(&dir, "extract").map_err(|e| {
                format!("{o}: cannot create a spool file in {}: {e}", dir.display())
            })?;
            // Unlinked now; the descriptor keeps it until it is closed.
            if std::fs::remove_file(&tmp.path).is_ok() {
                tmp.keep = true;
            }
            let info = run(&tmp.file)?;
            let mut out = std::fs::OpenOptions::new()
                .write(true)
                .open(output)
                .map_err(|e| format!("{o}: {e}"))?;
            tmp.file.rewind().map_err(|e| format!("{o}: {e}"))?;
            std::io::copy(&mut tmp.file, &mut out)
                .and_then(|_| out.flush())
                .map_err(|e| format!("{o}: {e}"))?;
            info
        }
    };
    let b = info
        .blocks
        .iter()
        .find(|b| b.name == block)
        .expect("extract found the block");
    eprintln!(
        "{}: wrote {} ({} bytes, {} pages present)",
        block,
        output.display(),
        b.used_length,
        b.pages_present
    );
    Ok(ExitCode::SUCCESS)
}

fn cmd_report(paths: &[PathBuf], out: &Path, jobs: Option<usize>) -> Result<ExitCode, String> {
    use migsim::report;
    let start = std::time::Instant::now();
    let inputs = if paths.is_empty() {
        report::sweep()
    } else {
        report::load_inputs(paths)?
    };
    let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let r = report::write_report(&inputs, out, jobs)?;
    for r in r
        .runs
        .iter()
        .filter(|r| !r.expectation_differences.is_empty())
    {
        println!(
            "DIFFERS  {}: {}",
            r.scenario.name,
            r.expectation_differences.join("; ")
        );
        println!("         replay: {}", r.replay);
    }
    let count = |v: Verdict| r.runs.iter().filter(|x| x.verdict == v).count();
    println!(
        "report: {} runs in {:.1} s ({} pass, {} fail, {} error)",
        r.runs.len(),
        start.elapsed().as_secs_f64(),
        count(Verdict::Pass),
        count(Verdict::Fail),
        count(Verdict::Error)
    );
    println!("open   {}", out.join("report.html").display());
    println!("also   {}", out.join("report.md").display());
    Ok(if r.all_expected() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
