//! Where the `cli` target's files go and how its command lines are kept
//! there: one temporary directory per thread, emptied before each input
//! ([`work_dir`]), and [`confine`], which rewrites the words of a command
//! line so that every word clap could take as a path names a place inside
//! it. The oracle checks clap's own reading of the result
//! ([`super::oracle::check_paths_inside`]).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::model::{After, model};

thread_local! {
    static DIR: WorkDir = WorkDir::new();
}

struct WorkDir(PathBuf);

impl WorkDir {
    fn new() -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("migsim-fuzz-cli-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the fuzz directory");
        // Canonical, so a path inside it can be compared with starts_with.
        WorkDir(dir.canonicalize().expect("canonicalize the fuzz directory"))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// This thread's directory, emptied.
pub fn work_dir() -> PathBuf {
    DIR.with(|d| {
        if let Ok(entries) = std::fs::read_dir(&d.0) {
            for e in entries.flatten() {
                let p = e.path();
                // file_type does not follow links: a link is removed, not
                // what it points to.
                let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
                let _ = if is_dir {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
            }
        }
        d.0.clone()
    })
}

/// The argv clap gets for `words`: the program name, then each word,
/// where every word clap could take as a path is a path inside `dir`.
///
/// Kept as they are: a subcommand name where the command reached so far
/// has that subcommand (so `run` after `replay` is a path); a known flag
/// spelling ([`super::model`]); the word after a flag that takes a value
/// that is not a path in every command that has it (`--seed 5`), unless
/// it starts with `-`; `--flag=value` for such a flag or a switch; an
/// unknown `--flag` alone (clap refuses it). Everything else becomes
/// `dir/<word>` with its empty, `.` and `..` components dropped (so it
/// cannot leave `dir`, and it starts with `/`, so it is never a flag):
/// the positionals, the word after a path flag (or after a flag that is a
/// switch in one command and takes a value in another), the value of
/// `--flag=value` for any other flag, the value attached to a short path
/// flag (`-o/x` is `-o` and `dir/x`), other single-dash words (`-x/y`
/// whole), and anything after `--`. `@scenario` is the scenario file and
/// `@dir` the directory itself.
pub fn confine(words: &[String], dir: &Path, scenario: &Path) -> Vec<OsString> {
    let inside = |w: &str| -> OsString {
        match w {
            "@scenario" => return scenario.into(),
            "@dir" => return dir.into(),
            _ => {}
        }
        let mut p = dir.to_path_buf();
        for c in w.split('/') {
            if !matches!(c, "" | "." | "..") {
                p.push(c);
            }
        }
        p.into()
    };
    let joined = |flag: &str, sep: &str, v: &str| -> OsString {
        let mut o = OsString::from(format!("{flag}{sep}"));
        o.push(inside(v));
        o
    };
    let m = model();
    let mut out: Vec<OsString> = vec!["migsim".into()];
    // The command reached so far.
    let mut at: Vec<String> = Vec::new();
    let mut positional_only = false;
    let mut next = After::Nothing;
    for w in words {
        let w = w.as_str();
        if positional_only {
            out.push(inside(w));
            continue;
        }
        match std::mem::replace(&mut next, After::Nothing) {
            After::Confined => {
                out.push(inside(w));
                continue;
            }
            // A value clap would not take (it looks like a flag) is
            // confined all the same.
            After::Value if w.starts_with('-') && w != "-" => {
                out.push(inside(w));
                continue;
            }
            After::Value => {
                out.push(w.into());
                continue;
            }
            After::Nothing => {}
        }
        if m.command(&at)
            .is_some_and(|c| c.children.iter().any(|s| s == w))
        {
            at.push(w.to_string());
            out.push(w.into());
            continue;
        }
        if w == "--" {
            positional_only = true;
            out.push(w.into());
            continue;
        }
        if let Some(a) = m.after(w) {
            next = a;
            out.push(w.into());
            continue;
        }
        if let Some(rest) = w.strip_prefix("--") {
            out.push(match rest.split_once('=') {
                Some((f, v)) => match m.after(&format!("--{f}")) {
                    Some(After::Nothing | After::Value) => w.into(),
                    // A path flag's, an ambiguous one's or an unknown one's.
                    _ => joined(&format!("--{f}"), "=", v),
                },
                // Unknown: clap refuses it.
                None => w.into(),
            });
            continue;
        }
        if let Some(rest) = w.strip_prefix('-') {
            let mut chars = rest.chars();
            if let Some(c) = chars.next() {
                let tail = chars.as_str();
                let short = format!("-{c}");
                if !tail.is_empty() && m.after(&short) == Some(After::Confined) {
                    // clap reads `-oVALUE` and `-o=VALUE` as `-o VALUE`.
                    out.push(joined(&short, "", tail.strip_prefix('=').unwrap_or(tail)));
                    continue;
                }
            }
        }
        out.push(inside(w));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    fn confined(s: &str) -> Vec<String> {
        let argv = confine(
            &words(s),
            Path::new("/tmp/d"),
            Path::new("/tmp/d/scenario.toml"),
        );
        argv.iter().map(|a| a.to_string_lossy().into()).collect()
    }

    #[test]
    fn confine_keeps_every_path_inside() {
        assert_eq!(
            confined(
                "run ../../etc/x --out /etc --seed 5 --file-dir=../.. -o/etc --json -- --out \
                 -ofoo run --writers ../x --bogus=/x"
            ),
            [
                "migsim",
                "run",
                "/tmp/d/etc/x",
                "--out",
                "/tmp/d/etc",
                "--seed",
                "5",
                "--file-dir=/tmp/d",
                "-o/tmp/d/etc",
                "--json",
                "--",
                "/tmp/d/--out",
                "/tmp/d/-ofoo",
                "/tmp/d/run",
                "/tmp/d/--writers",
                "/tmp/d/x",
                "/tmp/d/--bogus=/x",
            ]
        );
    }

    /// Subcommand names are kept only where the command reached has
    /// them; the other rules, one each.
    #[test]
    fn confine_follows_the_commands() {
        assert_eq!(
            confined("replay run qemu"),
            ["migsim", "replay", "/tmp/d/run", "/tmp/d/qemu"]
        );
        assert_eq!(
            confined("qemu run @scenario --out=@dir --accel ../kvm"),
            [
                "migsim",
                "qemu",
                "run",
                "/tmp/d/scenario.toml",
                "--out=/tmp/d",
                "--accel",
                "../kvm"
            ]
        );
        assert_eq!(
            confined("help qemu fuzz"),
            ["migsim", "help", "qemu", "fuzz"]
        );
        // A value that looks like a flag; an unknown flag's value; a
        // switch's value; -o= and a cluster.
        assert_eq!(
            confined("extract --block -o/etc --nope=/etc --json=/etc -o=../x -ho/etc"),
            [
                "migsim",
                "extract",
                "--block",
                "/tmp/d/-o/etc",
                "--nope=/tmp/d/etc",
                "--json=/etc",
                "-o/tmp/d/x",
                "/tmp/d/-ho/etc"
            ]
        );
        // After a path flag, anything: a subcommand name, a flag.
        assert_eq!(
            confined("run --out run --file-dir --json"),
            [
                "migsim",
                "run",
                "--out",
                "/tmp/d/run",
                "--file-dir",
                "/tmp/d/--json"
            ]
        );
    }
}
