//! The `migsim` command line as a user meets it. [`docs`]: the command
//! examples of README.md and docs/ run and compared. [`hardening`]: what the
//! CLI and the scenario loader do with hostile and odd input, one test
//! per point of the hardening issue, named after it. [`merge`]: a sweep
//! split with `explore --shard K/N` and merged again.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod docs;
mod hardening;
mod merge;
mod qemu_report;

/// The `migsim` binary this test run built, as a command to add arguments to.
fn migsim_command() -> Command {
    Command::new(env!("CARGO_BIN_EXE_migsim"))
}

fn migsim(args: &[&str]) -> Output {
    migsim_command().args(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn run_default_twice_same_digest_and_identical_files() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let ra = migsim(&["run", "--json", "--out", a.path().to_str().unwrap()]);
    let rb = migsim(&["run", "--json", "--out", b.path().to_str().unwrap()]);
    assert!(ra.status.success(), "{}", stdout(&ra));
    let ja: Value = serde_json::from_slice(&ra.stdout).unwrap();
    let jb: Value = serde_json::from_slice(&rb.stdout).unwrap();
    assert_eq!(ja["verdict"], "pass");
    assert_eq!(ja["digest"].as_str().unwrap().len(), 64);
    assert_eq!(ja["digest"], jb["digest"]);
    for f in ["sequential.mig", "fixed-ram.mig"] {
        let x = std::fs::read(a.path().join(f)).unwrap();
        let y = std::fs::read(b.path().join(f)).unwrap();
        assert!(!x.is_empty());
        assert!(x == y, "{f} differs between two runs");
    }
    // The kept files are real migration files.
    let i = migsim(&[
        "inspect",
        "--json",
        a.path().join("fixed-ram.mig").to_str().unwrap(),
    ]);
    let info: Value = serde_json::from_slice(&i.stdout).unwrap();
    assert_eq!(info["layout"], "fixed-ram");
    assert_eq!(info["capabilities"][0], "fixed-ram");
}

#[test]
fn run_summary_names_the_figures() {
    let o = migsim(&["run"]);
    assert!(o.status.success());
    let s = stdout(&o);
    for word in [
        "verdict    PASS",
        "passes",
        "sequential",
        "fixed-ram",
        "bound",
        "RAM",
        "digest",
    ] {
        assert!(s.contains(word), "summary lacks {word:?}:\n{s}");
    }
}

#[test]
fn replay_reports_a_changed_expectation_and_how_to_rerun() {
    let dir = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/idle.toml");
    let text = std::fs::read_to_string(src).unwrap();
    let bad = with_digest(
        &text,
        "0000000000000000000000000000000000000000000000000000000000000000",
    );
    let p = dir.path().join("idle.toml");
    std::fs::write(&p, bad).unwrap();
    let o = migsim(&["replay", dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let s = stdout(&o);
    assert!(
        s.contains("FAIL") && s.contains("digest") && s.contains("seed 1"),
        "{s}"
    );
    assert!(
        s.contains(&format!("re-run: migsim run {}", p.display())),
        "{s}"
    );
    assert!(s.contains("replay: 0 passed, 1 failed"), "{s}");
}

fn with_digest(text: &str, digest: &str) -> String {
    text.lines()
        .map(|l| {
            if l.starts_with("digest") {
                format!("digest = \"{digest}\"")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn bad_scenario_gets_a_clear_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("typo.toml");
    std::fs::write(
        &p,
        "name = \"x\"\nseed = 1\n[guest]\nblocks = []\n[workload]\nkind = \"idle\"\nbandwith = 3\n",
    )
    .unwrap();
    let o = migsim(&["run", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("typo.toml") && e.contains("bandwith"), "{e}");
    let o = migsim(&["run", "/nonexistent/scenario.toml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("No such file"));
}

#[test]
fn inspect_refuses_a_non_migration_file_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("junk");
    std::fs::write(&p, b"hello world, not a migration stream").unwrap();
    let o = migsim(&["inspect", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("Not a migration stream"));
}

#[test]
fn help_teaches_each_command() {
    let o = migsim(&["--help"]);
    let s = stdout(&o);
    for c in ["run", "replay", "inspect", "extract"] {
        assert!(s.contains(c), "{s}");
    }
    let o = migsim(&["run", "--help"]);
    assert!(stdout(&o).contains("--out"));
}

// ---- inspect/extract: the input and the output (issue 14) ----

/// A real QEMU mapped-ram save of a 16 MiB pc guest, unpacked into `dir`.
fn qemu_save(dir: &Path) -> PathBuf {
    let gz = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/qemu/mapped.mig.gz");
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(gz).unwrap())
        .read_to_end(&mut bytes)
        .unwrap();
    let p = dir.join("vm.mig");
    std::fs::write(&p, bytes).unwrap();
    p
}

/// `migsim extract IN --block pc.ram -o OUT`.
fn extract(input: &Path, out: &Path) -> Output {
    migsim_command()
        .arg("extract")
        .arg(input)
        .args(["--block", "pc.ram", "-o"])
        .arg(out)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Files in `dir` other than `keep` (e.g. a temporary file left behind).
fn others(dir: &Path, keep: &[&str]) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !keep.contains(&n.as_str()))
        .collect()
}

/// Wait for `child` for at most `secs`; a child still running then is
/// killed and the test fails (it hung).
fn wait_or_kill(mut child: Child, secs: u64, what: &str) -> Output {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("{what} hung (killed after {secs} s)");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn mkfifo(p: &Path) {
    assert!(Command::new("mkfifo").arg(p).status().unwrap().success());
}

/// Extracting onto the input must refuse before writing anything, and the
/// input must survive; `link` makes the output path from the input's.
fn check_refused_onto_input(link: impl Fn(&Path, &Path)) {
    let dir = tempfile::tempdir().unwrap();
    let input = qemu_save(dir.path());
    let before = std::fs::read(&input).unwrap();
    let out = dir.path().join("out");
    link(&input, &out);
    let o = extract(&input, &out);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("{}: is the input file", out.display())),
        "{}",
        stderr(&o)
    );
    assert!(
        std::fs::read(&input).unwrap() == before,
        "the input changed"
    );
    assert!(std::fs::read(&out).unwrap() == before, "the link changed");
}

#[test]
fn extract_onto_its_own_input_refuses_and_keeps_the_input() {
    let dir = tempfile::tempdir().unwrap();
    let input = qemu_save(dir.path());
    let before = std::fs::read(&input).unwrap();
    let o = extract(&input, &input);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("is the input file"), "{}", stderr(&o));
    assert!(
        std::fs::read(&input).ok() == Some(before),
        "the input changed or is gone"
    );
    assert_eq!(others(dir.path(), &["vm.mig"]), Vec::<String>::new());
}

#[test]
fn extract_onto_a_hard_link_of_the_input_refuses_and_keeps_the_input() {
    check_refused_onto_input(|input, out| std::fs::hard_link(input, out).unwrap());
}

#[test]
fn extract_onto_a_symlink_to_the_input_refuses_and_keeps_the_input() {
    check_refused_onto_input(|input, out| std::os::unix::fs::symlink(input, out).unwrap());
}

#[test]
fn extract_error_leaves_an_existing_output_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let good = qemu_save(dir.path());
    // Damaged: cut inside pc.ram's pages (the file is ~16 MiB of them).
    let damaged = dir.path().join("damaged.mig");
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(&damaged, &bytes[..bytes.len() / 2]).unwrap();
    let out = dir.path().join("ram.bin");
    std::fs::write(&out, b"an earlier, good extract").unwrap();
    let o = extract(&damaged, &out);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&damaged.display().to_string()),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        std::fs::read(&out).ok().as_deref(),
        Some(&b"an earlier, good extract"[..]),
        "the existing output was changed or removed"
    );
    // Nor does a missing block touch it.
    let o = migsim_command()
        .arg("extract")
        .arg(&good)
        .args(["--block", "nope", "-o"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(std::fs::read(&out).unwrap(), b"an earlier, good extract");
    // No temporary file is left behind.
    assert_eq!(
        others(dir.path(), &["vm.mig", "damaged.mig", "ram.bin"]),
        Vec::<String>::new()
    );
    // And a good extract does replace it.
    let o = extract(&good, &out);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::metadata(&out).unwrap().len(), 16 << 20);
}

#[test]
fn extract_output_errors_name_the_output_path() {
    let dir = tempfile::tempdir().unwrap();
    let input = qemu_save(dir.path());
    let check = |out: &Path, says: &str| {
        let o = extract(&input, out);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{}: {e}", out.display());
        assert!(
            e.starts_with(&format!("migsim: {}: ", out.display())) && e.contains(says),
            "{}: {e}",
            out.display()
        );
        assert!(!e.contains("vm.mig"), "blames the input: {e}");
    };
    check(Path::new("/nonexistent/dir/ram.bin"), "No such file");
    check(Path::new("/dev/full"), "No space left on device");
    // A directory even root cannot create files in: sysfs refuses. (A
    // directory without write permission would not do: tests run as root.)
    if Path::new("/sys/kernel").is_dir() {
        check(Path::new("/sys/migsim-test.bin"), "cannot create");
    }
}

#[test]
fn extract_to_dev_stdout_and_a_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let input = qemu_save(dir.path());
    let file = dir.path().join("ram.bin");
    assert!(extract(&input, &file).status.success());
    let want = std::fs::read(&file).unwrap();
    assert_eq!(want.len(), 16 << 20);
    // stdout, a pipe here.
    let o = extract(&input, Path::new("/dev/stdout"));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(o.stdout == want, "/dev/stdout got {} bytes", o.stdout.len());
    let o = extract(&input, Path::new("/dev/null"));
    assert!(o.status.success(), "{}", stderr(&o));
    // A FIFO, read by a thread.
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    let f = fifo.clone();
    let reader = std::thread::spawn(move || std::fs::read(f).unwrap());
    let child = migsim_command()
        .arg("extract")
        .arg(&input)
        .args(["--block", "pc.ram", "-o"])
        .arg(&fifo)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let o = wait_or_kill(child, 60, "extract to a FIFO");
    if !o.status.success() {
        // Release the reader if migsim never opened the FIFO.
        drop(std::fs::OpenOptions::new().write(true).open(&fifo));
        panic!("extract to a FIFO: {}", stderr(&o));
    }
    assert!(reader.join().unwrap() == want, "the FIFO got other bytes");
    // The spool file is gone.
    assert_eq!(
        others(dir.path(), &["vm.mig", "ram.bin", "fifo"]),
        Vec::<String>::new()
    );
}

/// `migsim ARGS` on a FIFO nobody writes must fail quickly and say why.
fn check_fifo_input(args: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("in.fifo");
    mkfifo(&fifo);
    let out = dir.path().join("out.bin");
    let mut cmd = migsim_command();
    cmd.args(args).arg(&fifo);
    if args[0] == "extract" {
        cmd.args(["--block", "pc.ram", "-o"]).arg(&out);
    }
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let o = wait_or_kill(child, 10, &format!("migsim {} FIFO", args[0]));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains(&format!("{}: is a FIFO", fifo.display()))
            && e.contains("save the stream to a file first"),
        "{e}"
    );
    assert!(!out.exists());
}

#[test]
fn inspect_a_fifo_does_not_hang() {
    check_fifo_input(&["inspect"]);
}

#[test]
fn extract_from_a_fifo_does_not_hang() {
    check_fifo_input(&["extract"]);
}

#[test]
fn inspect_or_extract_of_a_directory_says_it_is_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let out = dir.path().join("out.bin");
    for args in [
        vec!["inspect", &d],
        vec![
            "extract",
            &d,
            "--block",
            "pc.ram",
            "-o",
            out.to_str().unwrap(),
        ],
    ] {
        let o = migsim(&args);
        assert_eq!(o.status.code(), Some(2));
        assert!(
            stderr(&o).contains(&format!(
                "{d}: is a directory; migsim reads migration files"
            )),
            "{}",
            stderr(&o)
        );
    }
    assert!(!out.exists());
}

// ---- saves without vmdesc, and names with control characters (issue 14) ----

/// A real QEMU save made with `-machine suppress-vmdesc=on` (no vmdesc
/// trailer), unpacked into `dir`.
fn qemu_save_without_vmdesc(dir: &Path, layout: &str) -> PathBuf {
    let gz = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("tests/data/qemu/{layout}-novmdesc.mig.gz"));
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(gz).unwrap())
        .read_to_end(&mut bytes)
        .unwrap();
    let p = dir.join(format!("{layout}.mig"));
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Issue 14, point 5: inspect lists what it can walk and says why it
/// stopped (exit 0, text and JSON); extract gives all of pc.ram, the same
/// bytes as from the same guest's save with a vmdesc trailer.
#[test]
fn inspect_and_extract_of_a_qemu_save_without_vmdesc() {
    let dir = tempfile::tempdir().unwrap();
    let with_vmdesc = dir.path().join("with-vmdesc.bin");
    let o = extract(&qemu_save(dir.path()), &with_vmdesc);
    assert!(o.status.success(), "{}", stderr(&o));
    for layout in ["seq", "mapped"] {
        let input = qemu_save_without_vmdesc(dir.path(), layout);
        let o = migsim(&["inspect", input.to_str().unwrap()]);
        assert!(o.status.success(), "{layout}: {}", stderr(&o));
        let s = stdout(&o);
        for want in [
            "RAM blocks    6",
            "pc.ram ",
            "/rom@etc/acpi/rsdp",
            "devices       not walked from @",
            "warning       no vmdesc trailer: device sections after offset 0x",
            "cannot be walked (QEMU -machine suppress-vmdesc=on)",
        ] {
            assert!(s.contains(want), "{layout}: no {want:?} in\n{s}");
        }
        let o = migsim(&["inspect", "--json", input.to_str().unwrap()]);
        assert!(o.status.success(), "{layout}: {}", stderr(&o));
        let j: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(j["unwalked_devices"]["idstr"], "timer");
        assert_eq!(j["blocks"].as_array().unwrap().len(), 6);
        assert!(
            j["warnings"][0]
                .as_str()
                .unwrap()
                .contains("no vmdesc trailer")
        );

        let out = dir.path().join(format!("{layout}.bin"));
        let o = extract(&input, &out);
        assert!(o.status.success(), "{layout}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("warning: no vmdesc trailer")
                && stderr(&o).contains("pc.ram: wrote"),
            "{}",
            stderr(&o)
        );
        assert!(
            std::fs::read(&out).unwrap() == std::fs::read(&with_vmdesc).unwrap(),
            "{layout}: pc.ram differs from the vmdesc save's"
        );
    }
}

/// Issue 14, point 6: a block whose name holds a tab, a terminal escape
/// and a newline is extracted by giving that name's raw bytes; what
/// migsim prints about it is escaped, its JSON has the name itself.
#[test]
fn extract_a_block_named_with_control_characters_by_its_raw_name() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("odd.toml");
    std::fs::write(
        &scenario,
        "name = \"odd\"\nseed = 1\n[guest]\nblocks = [{ name = \"pc.ram\", size = \"64K\" }, \
         { name = \"a\\tb\\u001b[2J\\nc\", size = \"16K\" }]\ninitial_fill = 1.0\n\
         [workload]\nkind = \"idle\"\n[parameters]\nbandwidth = 1024\ndowntime_ticks = 1\nmax_passes = 3\n",
    )
    .unwrap();
    let files = dir.path().join("files");
    let o = migsim(&[
        "run",
        scenario.to_str().unwrap(),
        "--out",
        files.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stdout(&o));
    let odd = "a\tb\x1b[2J\nc";
    let mut got = Vec::new();
    for f in ["sequential.mig", "fixed-ram.mig"] {
        let input = files.join(f);
        let out = dir.path().join(format!("{f}.bin"));
        let o = migsim_command()
            .arg("extract")
            .arg(&input)
            .args(["--block", odd, "-o"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{f}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("a\\tb\\u{1b}[2J\\nc: wrote") && !stderr(&o).contains('\x1b'),
            "{}",
            stderr(&o)
        );
        let bytes = std::fs::read(&out).unwrap();
        assert_eq!(bytes.len(), 16 << 10);
        assert!(bytes.iter().any(|&b| b != 0), "{f}: the block is filled");
        got.push(bytes);
        // inspect: escaped on the terminal, the name itself in JSON.
        let o = migsim(&["inspect", input.to_str().unwrap()]);
        assert!(stdout(&o).contains("a\\tb\\u{1b}[2J\\nc"), "{}", stdout(&o));
        assert!(!stdout(&o).contains('\x1b'), "raw escape on the terminal");
        let o = migsim(&["inspect", "--json", input.to_str().unwrap()]);
        let j: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(j["blocks"][1]["name"], odd);
        // The escaped spelling is not the name.
        let o = migsim_command()
            .arg("extract")
            .arg(&input)
            .args(["--block", "a\\tb\\u{1b}[2J\\nc", "-o"])
            .arg(&out)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2));
        assert!(!stderr(&o).contains('\x1b'), "{}", stderr(&o));
    }
    assert!(got[0] == got[1], "both layouts give the same block");
}

/// `migsim faults`: QEMU's protocol reports wrong crashes as its
/// documented behaviour (exit 0), the durable mode passes, its bug
/// variant fails with a replay command that reproduces the crash, and bad
/// flags are usage errors.
#[test]
fn faults_reports_per_mode_and_exits_as_documented() {
    let sc = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/power-loss-small.toml");
    let sc = sc.to_str().unwrap();
    let q = migsim(&["faults", sc]);
    assert_eq!(q.status.code(), Some(0), "{}", stdout(&q));
    let out = stdout(&q);
    assert!(
        out.contains("mode       qemu (as QEMU 10: no fsync, bitmaps last)"),
        "{out}"
    );
    assert!(out.contains("expected of QEMU's protocol"), "{out}");
    assert!(out.contains("enospc at write 0: ok"), "{out}");

    let d = migsim(&["faults", sc, "--mode", "durable", "--json"]);
    assert_eq!(d.status.code(), Some(0), "{}", stdout(&d));
    let j: Value = serde_json::from_slice(&d.stdout).unwrap();
    assert_eq!(j["mode"], "durable");
    for l in j["layouts"].as_array().unwrap() {
        assert_eq!(l["wrong"], 0, "{l}");
        assert_eq!(l["syncs"], 3);
    }

    let b = migsim(&[
        "faults",
        sc,
        "--mode",
        "durable",
        "--bug",
        "durable-mark-unsynced",
        "--io-points",
        "0",
    ]);
    assert_eq!(b.status.code(), Some(1), "{}", stdout(&b));
    let out = stdout(&b);
    assert!(out.contains("FAIL"), "{out}");
    let replay = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("replay: "))
        .unwrap_or_else(|| panic!("no replay command: {out}"));
    let args: Vec<&str> = replay.split(' ').skip(1).collect();
    let r = migsim(&args);
    assert_eq!(r.status.code(), Some(1), "{}", stdout(&r));
    assert!(stdout(&r).contains(": wrong"), "{}", stdout(&r));

    for bad in [
        &["faults", sc, "--points", "0"][..],
        &["faults", sc, "--mode", "fast"],
        &["faults", sc, "--point", "3"],
        &["faults", "/nonexistent.toml"],
    ] {
        assert_eq!(migsim(bad).status.code(), Some(2), "{bad:?}");
    }
}

/// A full disk under `--file-dir` (here /dev/full, which answers every
/// write with ENOSPC) is the environment: exit 2 with the OS's message.
#[test]
fn run_on_a_full_disk_is_an_environment_error() {
    if !Path::new("/dev/full").exists() {
        eprintln!("skipped: no /dev/full");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(
        "/dev/full",
        dir.path().join("power-loss-small.fixed-ram.mig"),
    )
    .unwrap();
    let sc = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/power-loss-small.toml");
    let o = migsim(&[
        "run",
        sc.to_str().unwrap(),
        "--file-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("No space left on device"), "{err}");
}

/// `migsim run` with the durable mode and the integrity trailer keeps
/// files that `inspect` shows with their trailers; `--fail-write` makes
/// the chosen write fail: exit 2 with the disk's error under --file-dir,
/// and a bad spec is a usage error.
#[test]
fn run_durable_integrity_and_a_failing_write() {
    let sc = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/power-loss-small.toml");
    let sc = sc.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let o = migsim(&["run", sc, "--durable", "--integrity", "--file-dir", d]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let f = dir.path().join("power-loss-small.fixed-ram.mig");
    let i = stdout(&migsim(&["inspect", f.to_str().unwrap()]));
    assert!(i.contains("integrity     trailer @0x"), "{i}");
    assert!(i.contains("durable       completion mark @0x"), "{i}");
    assert!(!i.contains("warning"), "{i}");

    let before = std::fs::read(&f).unwrap();
    let o = migsim(&[
        "run",
        sc,
        "--file-dir",
        d,
        "--fail-write",
        "fixed-ram:20:eio",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("Input/output error (os error 5): write 20"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&f).unwrap(),
        before,
        "the previous file stays"
    );

    for bad in [
        "fixed-ram:x:eio",
        "fixed-ram:1:fire",
        "disk:1:eio",
        "fixed-ram:1",
    ] {
        let o = migsim(&["run", sc, "--fail-write", bad]);
        assert_eq!(o.status.code(), Some(2), "{bad}");
    }
}

/// A run with a bug variant that fails prints a replay command that
/// fails the same way: the variant is part of it (it used to be left
/// out, so the printed command passed).
#[test]
fn a_bug_variant_run_replays_with_its_bug() {
    let sc = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios/zero-after-data-dirty-destination.toml");
    let sc = sc.to_str().unwrap();
    let o = migsim(&["run", sc, "--bug", "reader-skips-clear-bits"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let out = stdout(&o);
    let replay = out
        .lines()
        .find_map(|l| l.strip_prefix("replay"))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no replay line: {out}"));
    assert!(
        replay.ends_with(" --bug reader-skips-clear-bits"),
        "{replay}"
    );
    let args: Vec<&str> = replay.split(' ').skip(1).collect();
    let r = migsim(&args);
    assert_eq!(r.status.code(), Some(1), "{}", stdout(&r));
    let failed = |s: &str| {
        s.lines()
            .filter(|l| l.trim_start().starts_with("FAILED"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert!(!failed(&out).is_empty(), "{out}");
    assert_eq!(failed(&stdout(&r)), failed(&out));
}

/// `--fail-write` drops the scenario's recorded verdict and error along
/// with its digest: on a scenario that expects a refusal, it used to keep
/// the verdict without the error, which validation then refused (exit 2,
/// `expect.verdict = "error" needs expect.error`).
#[test]
fn fail_write_on_a_scenario_expecting_an_error_runs_instead_of_being_refused() {
    let o = migsim(&[
        "run",
        "scenarios/destination-fixed-ram-off.toml",
        "--fail-write",
        "fixed-ram:3:eio",
    ]);
    let out = stdout(&o) + &String::from_utf8_lossy(&o.stderr);
    assert!(!out.contains("needs expect.error"), "{out}");
    assert_eq!(
        o.status.code(),
        Some(1),
        "the failed write is a verdict that differs: {out}"
    );
    assert!(out.contains("simulated eio"), "{out}");
}
