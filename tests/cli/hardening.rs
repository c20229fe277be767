//! Hostile and odd input to the command line and the scenario loader: each
//! must end in exit 0, 1 or 2 with a clear message, promptly, never a
//! panic, an abort, a hang or unbounded memory. One test per finding,
//! named after what broke.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::{migsim, stderr, stdout, wait_or_kill};

use crate::migsim_command;

/// The default scenario with `edit` applied (its digest expectation
/// removed), written into `dir` as `name.toml`.
fn scenario(dir: &Path, name: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let base = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/heavy-redirty.toml"),
    )
    .unwrap();
    let base: String = base
        .lines()
        .filter(|l| !l.starts_with("digest"))
        .map(|l| format!("{l}\n"))
        .collect();
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(&p, edit(base)).unwrap();
    p
}

fn set(key: &str, value: &str) -> impl Fn(String) -> String {
    let (key, value) = (key.to_string(), value.to_string());
    move |t: String| {
        t.lines()
            .map(|l| {
                if l.starts_with(&format!("{key} = ")) {
                    format!("{key} = {value}\n")
                } else {
                    format!("{l}\n")
                }
            })
            .collect()
    }
}

fn append(extra: &str) -> impl Fn(String) -> String {
    let extra = extra.to_string();
    move |t: String| t + "\n" + &extra + "\n"
}

/// Exit 2 with `phrase` in the message, within `secs` seconds.
fn refused(args: &[&str], phrase: &str, secs: u64) {
    let start = Instant::now();
    let child = migsim_command()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let o = wait_or_kill(child, secs, &args.join(" "));
    assert_eq!(
        o.status.code(),
        Some(2),
        "{args:?}: exit {:?} after {:?}\nstdout: {}\nstderr: {}",
        o.status,
        start.elapsed(),
        stdout(&o),
        stderr(&o)
    );
    assert!(
        stderr(&o).contains(phrase),
        "{args:?}: message lacks {phrase:?}: {}",
        stderr(&o)
    );
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

// 2. Aborts.

#[test]
fn destination_block_of_1048576g_is_refused_not_aborted() {
    let d = tempfile::tempdir().unwrap();
    let s = scenario(
        d.path(),
        "s",
        append("[destination]\nblocks = [{ name = \"pc.ram\", size = \"1048576G\" }]"),
    );
    refused(&["run", path(&s)], "destination.blocks", 20);
    refused(&["run", path(&s)], "limit", 20);
}

/// As an unprivileged user with one process allowed (RLIMIT_NPROC counts
/// threads), no thread can be started: run with channels, explore and
/// report used to panic; now they do the work on the main thread. Needs
/// root (to switch user) and util-linux's setpriv and prlimit.
#[test]
fn thread_spawn_failure_falls_back_in_run_explore_and_report() {
    let tools = ["setpriv", "prlimit"]
        .iter()
        .all(|t| Command::new(t).arg("--version").output().is_ok());
    // SAFETY: geteuid(2) has no preconditions.
    if !tools || unsafe { libc::geteuid() } != 0 {
        eprintln!("thread_spawn_failure test skipped: needs root, setpriv and prlimit");
        return;
    }
    // A copy of the binary and a directory the nobody user can use.
    let d = tempfile::tempdir().unwrap();
    let bin = d.path().join("migsim");
    std::fs::copy(env!("CARGO_BIN_EXE_migsim"), &bin).unwrap();
    let chmod = |p: &Path, mode: u32| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    chmod(d.path(), 0o777);
    chmod(&bin, 0o755);
    let report_dir = d.path().join("report");
    let report_dir = path(&report_dir).to_string();
    for args in [
        vec!["run", "--channels", "2"],
        vec!["explore", "--seeds", "0..6", "--jobs", "2", "--dry-run"],
        vec!["report", "-o", &report_dir, "--jobs", "2"],
    ] {
        let o = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .args(["prlimit", "--nproc=1"])
            .arg(&bin)
            .args(&args)
            .current_dir(d.path())
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{args:?} with no threads to spare: {:?}\n{}",
            o.status,
            stderr(&o)
        );
        assert!(!stderr(&o).contains("panicked"), "{args:?}: {}", stderr(&o));
    }
}

// 3. Unbounded work and memory.

#[test]
fn writes_per_tick_of_2_to_the_40_is_refused_before_running() {
    let d = tempfile::tempdir().unwrap();
    let s = scenario(d.path(), "s", set("writes_per_tick", "1099511627776"));
    refused(&["run", path(&s)], "guest writes; the limit is", 20);
}

#[test]
fn max_passes_1000_in_memory_is_refused_and_points_to_file_dir() {
    let d = tempfile::tempdir().unwrap();
    let s = scenario(d.path(), "s", set("max_passes", "1000"));
    refused(&["run", path(&s)], "use --file-dir DIR", 20);
}

#[test]
fn max_passes_of_1e9_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let s = scenario(d.path(), "s", set("max_passes", "1000000000"));
    refused(&["run", path(&s)], "exceeds the limit of 1000", 20);
}

#[test]
fn more_blocks_than_the_limit_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let blocks: Vec<String> = (0..65_537)
        .map(|i| format!("{{name=\"b{i}\",size=4096}}"))
        .collect();
    let s = d.path().join("many.toml");
    std::fs::write(
        &s,
        format!(
            "name = \"many\"\nseed = 1\n[guest]\nblocks = [{}]\n[workload]\nkind = \"idle\"\n\
             [parameters]\nbandwidth = 512\ndowntime_ticks = 1\nmax_passes = 1\n",
            blocks.join(", ")
        ),
    )
    .unwrap();
    refused(&["run", path(&s)], "the limit is 65536", 30);
}

/// `explore --seeds 0..10^12` allocated 8 bytes a seed before running one.
#[test]
fn explore_of_10_to_the_12_seeds_starts_at_once_in_little_memory() {
    let mut child = migsim_command()
        .args([
            "explore",
            "--seeds",
            "0..1000000000000",
            "--dry-run",
            "--jobs",
            "1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
    let exited = child.try_wait().unwrap();
    let _ = child.kill();
    let o = child.wait_with_output().unwrap();
    assert!(
        exited.is_none(),
        "explore ended early: {:?}\n{}",
        exited,
        stderr(&o)
    );
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS in /proc status");
    assert!(
        rss_kb < 200 * 1024,
        "explore holds {rss_kb} KiB after 1.5 s"
    );
}

#[test]
fn run_of_dev_zero_is_refused_without_reading_forever() {
    refused(&["run", "/dev/zero"], "at most 4194304 bytes", 20);
}

#[test]
fn explore_jobs_400000_is_clamped_to_the_cores() {
    let o = migsim(&[
        "explore",
        "--seeds",
        "0..4",
        "--jobs",
        "400000",
        "--dry-run",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["passed"], 4);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(v["jobs"], cores as u64, "{v}");
}

// 4. Hangs.

/// Two symlinks back to the top make a tree of 2^40 paths: replay and
/// report walked it; each directory is now walked once.
#[test]
fn replay_of_a_directory_with_a_symlink_cycle_walks_each_directory_once() {
    let d = tempfile::tempdir().unwrap();
    let sub = d.path().join("a");
    std::fs::create_dir(&sub).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/idle.toml"),
        sub.join("idle.toml"),
    )
    .unwrap();
    std::os::unix::fs::symlink(d.path(), sub.join("loop1")).unwrap();
    std::os::unix::fs::symlink(d.path(), sub.join("loop2")).unwrap();
    let child = migsim_command()
        .args(["replay", path(d.path())])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let o = wait_or_kill(child, 30, "replay of a symlink cycle");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("replay: 1 passed, 0 failed"),
        "{}",
        stdout(&o)
    );
}

// 6. Wrong verdicts from bad scenarios.

#[test]
fn layout_capability_in_capabilities_is_refused_at_load() {
    let d = tempfile::tempdir().unwrap();
    for cap in ["fixed-ram", "mapped-ram"] {
        let s = scenario(
            d.path(),
            cap,
            append(&format!("[migration]\ncapabilities = [\"{cap}\"]")),
        );
        refused(&["run", path(&s)], "is the layout capability", 20);
    }
}

/// Byte-identical files must give one digest whatever order the writers
/// are named in.
#[test]
fn writers_in_either_order_give_the_same_digest() {
    let digest = |writers: &str| {
        let o = migsim(&["run", "--json", "--writers", writers]);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["digest"].as_str().unwrap().to_string()
    };
    let default = {
        let o = migsim(&["run", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["digest"].as_str().unwrap().to_string()
    };
    assert_eq!(digest("fixed-ram,sequential"), default);
    assert_eq!(digest("sequential,fixed-ram"), default);
}

#[test]
fn scenario_name_with_a_path_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let s = scenario(d.path(), "s", set("name", "\"../../x\""));
    let files = d.path().join("files");
    refused(
        &["run", path(&s), "--file-dir", path(&files)],
        "it names files",
        20,
    );
    assert!(!d.path().join("x.sequential.mig").exists());
}

#[test]
fn malformed_expect_values_are_refused_at_load() {
    let d = tempfile::tempdir().unwrap();
    type Edit = Box<dyn Fn(String) -> String>;
    let cases: [(&str, Edit, &str); 5] = [
        (
            "digest",
            Box::new(set("verdict", "\"pass\"\ndigest = \"xyz\"")),
            "must be 64 lower-case hex digits",
        ),
        (
            "nan",
            Box::new(set("min_sequential_ram_ratio", "nan")),
            "must be a finite number >= 0",
        ),
        (
            "negative",
            Box::new(set("min_sequential_ram_ratio", "-1.0")),
            "must be a finite number >= 0",
        ),
        (
            "error-with-pass",
            Box::new(set("verdict", "\"pass\"\nerror = \"boom\"")),
            "only meaningful with expect.verdict = \"error\"",
        ),
        (
            "duplicate-writers",
            Box::new(append(
                "[migration]\nwriters = [\"fixed-ram\", \"fixed-ram\"]",
            )),
            "lists fixed-ram twice",
        ),
    ];
    for (name, edit, phrase) in cases {
        let s = scenario(d.path(), name, edit);
        refused(&["run", path(&s)], phrase, 20);
    }
}

#[test]
fn jobs_0_and_channels_0_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("r");
    refused(
        &["explore", "--seeds", "0..2", "--jobs", "0", "--dry-run"],
        "--jobs must be at least 1",
        20,
    );
    refused(
        &["report", "-o", path(&out), "--jobs", "0"],
        "--jobs must be at least 1",
        20,
    );
    refused(
        &["run", "--channels", "0"],
        "--channels must be at least 1",
        20,
    );
    refused(
        &["bench", "--channels", "0", "--no-qemu", "--only", "sim"],
        "--channels must be at least 1",
        20,
    );
}

// 7. Exit codes and wording.

/// A full disk under --file-dir was reported as a verdict (exit 1) with
/// meaningless DIFFERS lines. Needs root to mount a small tmpfs.
#[test]
fn full_file_dir_is_exit_2_not_a_verdict() {
    let d = tempfile::tempdir().unwrap();
    let mnt = d.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2M", "tmpfs", path(&mnt)])
        .output()
        .is_ok_and(|o| o.status.success());
    if !mounted {
        eprintln!("full_file_dir test skipped: cannot mount a tmpfs (needs root)");
        return;
    }
    let o = migsim(&["run", "--file-dir", path(&mnt)]);
    let _ = Command::new("umount").arg(&mnt).output();
    assert_eq!(o.status.code(), Some(2), "{}\n{}", stdout(&o), stderr(&o));
    assert!(
        stderr(&o).contains("No space left on device"),
        "{}",
        stderr(&o)
    );
    assert!(!stdout(&o).contains("DIFFERS"), "{}", stdout(&o));
}

#[test]
fn unwritable_file_dir_and_out_are_refused_before_running() {
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    refused(
        &["run", "--file-dir", path(&file)],
        "is not a directory",
        20,
    );
    refused(&["run", "--out", path(&file)], "is not a directory", 20);
    refused(
        &["run", "--file-dir", "/proc/migsim-x"],
        "cannot create",
        20,
    );
    let o = migsim_command()
        .args(["report", "-o", path(&file)])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
}

#[test]
fn replay_of_a_toml_parse_error_exits_2() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("broken.toml"), "name = \n").unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/idle.toml"),
        d.path().join("idle.toml"),
    )
    .unwrap();
    let o = migsim(&["replay", path(d.path())]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    // The readable one still ran.
    assert!(stdout(&o).contains("ok    "), "{}", stdout(&o));
    assert!(stdout(&o).contains("FAIL  "), "{}", stdout(&o));
}

#[test]
fn bless_does_not_record_the_digest_of_a_failing_scenario() {
    let d = tempfile::tempdir().unwrap();
    // Fails its expectation (the sequential file is far below 50x RAM).
    let s = scenario(d.path(), "s", set("min_sequential_ram_ratio", "50.0"));
    let before = std::fs::read_to_string(&s).unwrap();
    let o = migsim(&["replay", "--bless", path(&s)]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert_eq!(std::fs::read_to_string(&s).unwrap(), before);
    // A passing one is blessed.
    let ok = scenario(d.path(), "ok", |t| t);
    let o = migsim(&["replay", "--bless", path(&ok)]);
    assert!(o.status.success(), "{}", stdout(&o));
    assert!(
        std::fs::read_to_string(&ok)
            .unwrap()
            .contains("digest = \"")
    );
}

// 8. Progress and defaults.

/// On a terminal (`script` gives one) report shows a progress bar.
#[test]
fn report_shows_progress_on_a_terminal() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("report progress test skipped: no `script`");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("r");
    let scen = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let cmd = format!(
        "{} report {} -o {}",
        env!("CARGO_BIN_EXE_migsim"),
        scen.join("idle.toml").display(),
        out.display()
    );
    let o = Command::new("script")
        .args(["-q", "-e", "-c", &cmd, "/dev/null"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("1/1 runs"),
        "no progress bar: {}",
        stdout(&o)
    );
}

#[test]
fn bench_says_where_it_writes_and_that_it_drops_the_page_cache() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("bench");
    let o: Output = migsim(&[
        "bench",
        "--size",
        "8M",
        "--reps",
        "1",
        "--only",
        "sim",
        "--no-qemu",
        "--dir",
        path(&dir),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains(&format!("files go to {}", dir.display())), "{e}");
    assert!(e.contains("page cache"), "{e}");
}
