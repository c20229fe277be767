//! The `migsim` command line as a user meets it.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn migsim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_migsim"))
        .args(args)
        .output()
        .unwrap()
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

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
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

/// `migsim ARGS` on a FIFO nobody writes must fail quickly and say why.
fn check_fifo_input(args: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("in.fifo");
    mkfifo(&fifo);
    let out = dir.path().join("out.bin");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_migsim"));
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
