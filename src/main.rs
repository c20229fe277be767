//! `migsim`: resolve the flags ([`migsim::cli`]), call the library, print
//! ([`render`]). Exit status: 0 success, 1 a verdict or expectation
//! differed, 2 bad input, usage or environment.

mod render;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use migsim_format::reader::{LoadOptions, NullSink, load_ram};
use migsim_harness::explore::{ExploreOptions, explore};
use migsim_harness::replay::{ReplayOutcome, replay_file};
use migsim_harness::replay_command::{ReplayCommand, RunFlags};
use migsim_harness::run::{check_expectations, run};

use migsim::cli::{Args, Command, RunConfig};
use migsim::files;

fn main() -> ExitCode {
    // Die quietly on a closed pipe (`migsim inspect f | head`), like other
    // Unix tools, instead of panicking in println!.
    // SAFETY: setting a signal disposition to its default at startup,
    // before any threads exist.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    match Args::from_env().resolve().and_then(execute) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("migsim: {e}");
            ExitCode::from(2)
        }
    }
}

fn execute(cmd: Command) -> Result<ExitCode, String> {
    match cmd {
        Command::QemuFuzz { opts, json } => cmd_qemu_fuzz(&opts, json),
        Command::QemuReport { files, output } => {
            for f in migsim::report::qemu::write_qemu_report(&files, &output)? {
                println!("wrote {}", f.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::QemuRun {
            scenario,
            opts,
            json,
        } => {
            let q = migsim_harness::qemu::find()?;
            let quiet = json || !std::io::IsTerminal::is_terminal(&std::io::stderr());
            let r = migsim_harness::qemu::live::run_live(&q, &scenario, &opts, &mut |m| {
                if !quiet {
                    eprintln!("qemu run: {m}");
                }
            })?;
            if json {
                render::json(&r)?;
            } else {
                render::qemu_run(&r);
            }
            Ok(exit_code(r.pass))
        }
        Command::QemuReplay { file, limits, json } => {
            let q = migsim_harness::qemu::find()?;
            let r = migsim_harness::qemu::campaign::replay(&q, &file, &limits)?;
            if json {
                render::json(&r)?;
            } else {
                render::qemu_replayed(&file, &r);
            }
            Ok(exit_code(!r.reproduced))
        }
        Command::Run(c) => cmd_run(&c),
        Command::Faults {
            scenario,
            path,
            opts,
            json,
        } => cmd_faults(&scenario, &path, &opts, json),
        Command::Explore { opts, json } => cmd_explore(&opts, json),
        Command::Merge { reports, json } => cmd_merge(&reports, json),
        Command::Replay { files, bless } => cmd_replay(&files, bless),
        Command::Inspect { file, json } => cmd_inspect(&file, json),
        Command::Extract {
            file,
            block,
            output,
        } => cmd_extract(&file, &block, &output),
        Command::Report {
            scenarios,
            output,
            jobs,
        } => cmd_report(&scenarios, &output, jobs),
        Command::Bench { opts, json } => {
            let quiet = std::env::var_os("MIGSIM_QUIET").is_some();
            let r = migsim::bench::run_bench(&opts, &mut |line: &str| {
                if !quiet {
                    eprintln!("bench: {line}");
                }
            })?;
            if json {
                render::json(&r)?;
            } else {
                render::bench(&r);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// 0 when nothing differed, else 1.
fn exit_code(all_expected: bool) -> ExitCode {
    if all_expected {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
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

fn cmd_run(c: &RunConfig) -> Result<ExitCode, String> {
    let started = Instant::now();
    // A spinner with the pages sent, on a terminal only (indicatif draws
    // nothing when stderr is not one), once the run takes a while.
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {elapsed} {msg}")
            .expect("valid template"),
    );
    let shown = bar.clone();
    let mut options = c.options.clone();
    options.progress = Some(std::sync::Arc::new(move |sent: u64| {
        if started.elapsed().as_millis() > 500 {
            shown.set_message(format!("{sent} pages sent"));
            shown.tick();
        }
    }));
    let report = run(&c.scenario, &options);
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    if let Some(e) = &report.environment_error {
        return Err(e.clone());
    }
    if let Some(dir) = &c.out {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for f in &report.files {
            let p = dir.join(format!("{}.mig", f.writer));
            f.file
                .save(&p)
                .map_err(|e| format!("{}: {e}", p.display()))?;
        }
    }
    let diffs = check_expectations(&c.scenario, &report);
    if c.json {
        let mut v = serde_json::to_value(&report).map_err(|e| e.to_string())?;
        v["expectation_differences"] = serde_json::json!(diffs);
        v["replay"] = serde_json::json!(c.replay.to_string());
        v["seconds"] = serde_json::json!(seconds);
        v["peak_rss_bytes"] = serde_json::json!(peak_rss());
        render::json(&v)?;
    } else {
        let files = c.out.as_deref().or(c.options.file_dir.as_deref());
        render::run(
            &report,
            &c.replay_with_seed,
            files,
            seconds,
            peak_rss(),
            &diffs,
        );
    }
    Ok(exit_code(diffs.is_empty()))
}

fn cmd_explore(opts: &ExploreOptions, json: bool) -> Result<ExitCode, String> {
    let start = Instant::now();
    let bar = indicatif::ProgressBar::new(opts.seeds.len());
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} seeds  {elapsed} (eta {eta})",
        )
        .expect("valid template"),
    );
    let report = explore(opts, &|done, _| bar.set_position(done))?;
    bar.finish_and_clear();
    if json {
        render::json(&report)?;
    } else {
        render::explore(&report, start.elapsed().as_secs_f64());
    }
    Ok(exit_code(report.passed == report.seeds_run))
}

fn cmd_faults(
    s: &migsim_harness::scenario::Scenario,
    path: &Path,
    opts: &migsim_harness::faults::FaultsOptions,
    json: bool,
) -> Result<ExitCode, String> {
    use migsim_format::Durability;
    let start = Instant::now();
    let mut r = migsim_harness::faults::faults(s, opts);
    for l in &mut r.layouts {
        for c in l.first_wrong.iter_mut().chain(l.case.as_mut()) {
            c.replay = ReplayCommand::Faults {
                scenario: path.to_path_buf(),
                mode: opts.mode,
                integrity: opts.integrity,
                ignore_mark: opts.ignore_mark,
                bug: opts.bug,
                crash: Some((c.point, c.sample)),
            }
            .to_string();
        }
    }
    for c in &mut r.io {
        c.replay = ReplayCommand::Run {
            scenario: Some(path.to_path_buf()),
            seed: None,
            flags: RunFlags {
                durable: opts.mode == Durability::Durable,
                integrity: opts.integrity,
                fail_write: Some((c.layout, c.write, c.fault)),
                bug: opts.bug,
                ..RunFlags::default()
            },
        }
        .to_string();
    }
    if json {
        render::json(&r)?;
    } else {
        render::faults(&r, start.elapsed().as_secs_f64());
    }
    if let Some(e) = &r.run_error {
        return Err(e.clone());
    }
    let io_bad =
        r.io.iter()
            .any(|c| c.error.is_none() || c.outcome == migsim_harness::faults::Outcome::Wrong);
    let crash_wrong: usize = r.layouts.iter().map(|l| l.wrong).sum();
    // A killed destination's load must fail and its restart be exact, in
    // every mode (it is the reader's doing, not the save protocol's).
    let kill_bad = r
        .kills
        .iter()
        .any(|k| k.killed_load.is_none() || k.restart != migsim_harness::faults::Outcome::Exact);
    // Wrong crashes fail the durable mode only as migsim reads it.
    let judged_durable = opts.mode == Durability::Durable && !opts.ignore_mark;
    Ok(exit_code(
        !io_bad && !kill_bad && (!judged_durable || crash_wrong == 0),
    ))
}

fn cmd_merge(paths: &[PathBuf], json: bool) -> Result<ExitCode, String> {
    let mut reports = Vec::with_capacity(paths.len());
    for p in paths {
        let name = p.display().to_string();
        let text = files::read_regular(p).map_err(|e| format!("{name}: {e}"))?;
        reports.push((
            name.clone(),
            migsim_harness::merge::parse_report(&name, &text)?,
        ));
    }
    let merged = migsim_harness::merge::merge(&reports)?;
    if json {
        render::json(&merged)?;
    } else {
        render::merged(&merged, reports.len());
    }
    Ok(exit_code(merged.passed == merged.seeds_run))
}

fn cmd_replay(files: &[PathBuf], bless: bool) -> Result<ExitCode, String> {
    let (mut passed, mut failed, mut unreadable) = (0, 0, 0);
    for f in files {
        let r = replay_file(f, bless)?;
        if r.ok() {
            passed += 1;
        } else if matches!(r.outcome, ReplayOutcome::Unreadable(_)) {
            unreadable += 1;
        } else {
            failed += 1;
        }
        render::replayed(&r);
    }
    render::replay_total(passed, failed + unreadable);
    if unreadable > 0 {
        // Bad input outranks a differing verdict.
        return Err(format!(
            "{unreadable} scenario file(s) could not be read (see FAIL lines above)"
        ));
    }
    Ok(exit_code(failed == 0))
}

fn cmd_inspect(path: &Path, json: bool) -> Result<ExitCode, String> {
    let (file, _) = files::open(path)?;
    let at = |e: migsim_format::LoadError| format!("{}: {e}", path.display());
    // The stream may sit inside a libvirt save image or at an `offset=`.
    let start = migsim_format::find_stream(&file).map_err(at)?;
    let opts = LoadOptions {
        skip_page_data: true,
        stream_offset: start.offset,
        ..LoadOptions::default()
    };
    let info = load_ram(&file, &opts, &mut NullSink).map_err(at)?;
    if json {
        let mut v = serde_json::to_value(&info).map_err(|e| e.to_string())?;
        if start.container != migsim_format::Container::Bare {
            v["container"] = serde_json::to_value(&start.container).map_err(|e| e.to_string())?;
        }
        render::json(&v)?;
    } else {
        render::inspect(path, &start, &info);
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_extract(path: &Path, block: &str, output: &Path) -> Result<ExitCode, String> {
    let info = files::extract(path, block, output)?;
    let b = info
        .blocks
        .iter()
        .find(|b| b.name == block)
        .expect("extract found the block");
    render::extracted(
        block,
        output,
        b.used_length,
        b.pages_present,
        &info.warnings,
    );
    Ok(ExitCode::SUCCESS)
}

fn cmd_report(paths: &[PathBuf], out: &Path, jobs: usize) -> Result<ExitCode, String> {
    use migsim::report;
    let start = Instant::now();
    let inputs = if paths.is_empty() {
        report::sweep()
    } else {
        report::load_inputs(paths)?
    };
    for i in &inputs {
        migsim_harness::limits::check_run(&i.scenario, &Default::default())
            .map_err(|e| format!("{}: {e}", i.scenario.name))?;
    }
    let bar = indicatif::ProgressBar::new(inputs.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} runs  {elapsed} (eta {eta})")
            .expect("valid template"),
    );
    let r = report::write_report(&inputs, out, jobs, &|done, _| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    render::report(&r, out, start.elapsed().as_secs_f64());
    Ok(exit_code(r.all_expected()))
}

fn cmd_qemu_fuzz(
    opts: &migsim_harness::qemu::campaign::CampaignOptions,
    json: bool,
) -> Result<ExitCode, String> {
    let q = migsim_harness::qemu::find()?;
    let bar = indicatif::ProgressBar::new(opts.seeds.len());
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} loads  {elapsed} (eta {eta})",
        )
        .expect("valid template"),
    );
    let r =
        migsim_harness::qemu::campaign::run_campaign(&q, opts, &|done, _| bar.set_position(done))?;
    bar.finish_and_clear();
    if json {
        render::json(&r)?;
    } else {
        render::qemu_fuzz(&r);
    }
    Ok(exit_code(r.findings.is_empty()))
}
