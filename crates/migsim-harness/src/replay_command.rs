//! The commands migsim prints so that a user can replay what it found: a
//! run that failed, a crash that restored wrong memory, an explored seed, a
//! QEMU finding. One type spells every replay line, so the command line's
//! words for replaying live here and nowhere else in the harness or the
//! binary, and a path that a shell would split is quoted.

use std::fmt;
use std::path::{Path, PathBuf};

use migsim_format::{Durability, Layout};

use crate::bugs::Bug;
use crate::sim::simfile::IoFault;

/// The flags of `migsim run` that change what a run does; its replay
/// repeats them. The default is a plain `migsim run`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunFlags {
    /// `--ram`: pc.ram's size in bytes.
    pub ram: Option<u64>,
    /// `--writers`.
    pub writers: Option<Vec<Layout>>,
    /// `--extents`.
    pub extents: bool,
    /// `--file-dir`.
    pub file_dir: Option<PathBuf>,
    /// `--direct-io`.
    pub direct_io: bool,
    /// `--channels`, printed when above 1.
    pub channels: usize,
    /// `--durable`.
    pub durable: bool,
    /// `--integrity`.
    pub integrity: bool,
    /// `--fail-write WRITER:INDEX:KIND`.
    pub fail_write: Option<(Layout, usize, IoFault)>,
    /// `--bug`.
    pub bug: Option<Bug>,
}

/// A command that replays one finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplayCommand {
    /// `migsim run [SCENARIO] [--seed N] FLAGS` (the embedded scenario
    /// without a path).
    Run {
        /// The scenario file.
        scenario: Option<PathBuf>,
        /// `--seed`.
        seed: Option<u64>,
        /// The run's flags.
        flags: RunFlags,
    },
    /// `migsim faults SCENARIO --mode MODE [...] [--point P --sample S]`.
    Faults {
        /// The scenario file.
        scenario: PathBuf,
        /// `--mode`: QEMU's protocol or the durable save.
        mode: Durability,
        /// `--integrity`.
        integrity: bool,
        /// `--ignore-mark`.
        ignore_mark: bool,
        /// `--bug`.
        bug: Option<Bug>,
        /// `--point P --sample S`: one crash.
        crash: Option<(usize, u32)>,
    },
    /// `migsim explore --seeds N..N+1 --no-shrink --dry-run [--faults]
    /// [--bug X]`: one seed as generated.
    ExploreSeed {
        /// The seed.
        seed: u64,
        /// `--faults`.
        faults: bool,
        /// `--bug`.
        bug: Option<Bug>,
    },
    /// `migsim qemu replay FILE.toml`: a saved QEMU finding.
    QemuReplay {
        /// The reproducer written by `qemu fuzz --out`.
        reproducer: PathBuf,
    },
    /// `migsim qemu fuzz --seeds N..N+1`: a QEMU finding not saved.
    QemuFuzzSeed {
        /// The seed.
        seed: u64,
    },
}

impl ReplayCommand {
    /// `migsim run SCENARIO` with no flags.
    pub fn run(scenario: &Path) -> Self {
        ReplayCommand::Run {
            scenario: Some(scenario.to_path_buf()),
            seed: None,
            flags: RunFlags::default(),
        }
    }
}

/// A word as a POSIX shell reads it back: as it is when it holds only
/// characters no shell treats specially, otherwise in single quotes.
pub fn shell_quote(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-./@%+=:,".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn path(p: &Path) -> String {
    shell_quote(&p.display().to_string())
}

/// A size as `--ram` reads it: whole GiB or MiB with a suffix, else bytes.
fn size_text(b: u64) -> String {
    match b {
        0 => "0".to_string(),
        _ if b.is_multiple_of(1 << 30) => format!("{}G", b >> 30),
        _ if b.is_multiple_of(1 << 20) => format!("{}M", b >> 20),
        _ => b.to_string(),
    }
}

fn bug_flag(f: &mut fmt::Formatter<'_>, bug: Option<Bug>) -> fmt::Result {
    match bug {
        Some(b) => write!(f, " --bug {}", b.name()),
        None => Ok(()),
    }
}

impl fmt::Display for RunFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(r) = self.ram {
            write!(f, " --ram {}", size_text(r))?;
        }
        if let Some(w) = &self.writers {
            let names: Vec<&str> = w.iter().map(|l| l.name()).collect();
            write!(f, " --writers {}", names.join(","))?;
        }
        if self.extents {
            f.write_str(" --extents")?;
        }
        if let Some(d) = &self.file_dir {
            write!(f, " --file-dir {}", path(d))?;
        }
        if self.direct_io {
            f.write_str(" --direct-io")?;
        }
        if self.channels > 1 {
            write!(f, " --channels {}", self.channels)?;
        }
        if self.durable {
            f.write_str(" --durable")?;
        }
        if self.integrity {
            f.write_str(" --integrity")?;
        }
        if let Some((l, i, k)) = self.fail_write {
            write!(f, " --fail-write {}:{i}:{}", l.name(), k.name())?;
        }
        bug_flag(f, self.bug)
    }
}

impl fmt::Display for ReplayCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplayCommand::Run {
                scenario,
                seed,
                flags,
            } => {
                f.write_str("migsim run")?;
                if let Some(p) = scenario {
                    write!(f, " {}", path(p))?;
                }
                if let Some(s) = seed {
                    write!(f, " --seed {s}")?;
                }
                write!(f, "{flags}")
            }
            ReplayCommand::Faults {
                scenario,
                mode,
                integrity,
                ignore_mark,
                bug,
                crash,
            } => {
                write!(f, "migsim faults {} --mode {}", path(scenario), mode.name())?;
                if *integrity {
                    f.write_str(" --integrity")?;
                }
                if *ignore_mark {
                    f.write_str(" --ignore-mark")?;
                }
                bug_flag(f, *bug)?;
                if let Some((point, sample)) = crash {
                    write!(f, " --point {point} --sample {sample}")?;
                }
                Ok(())
            }
            ReplayCommand::ExploreSeed { seed, faults, bug } => {
                write!(
                    f,
                    "migsim explore --seeds {seed}..{} --no-shrink --dry-run",
                    seed.saturating_add(1)
                )?;
                if *faults {
                    f.write_str(" --faults")?;
                }
                bug_flag(f, *bug)
            }
            ReplayCommand::QemuReplay { reproducer } => {
                write!(f, "migsim qemu replay {}", path(reproducer))
            }
            ReplayCommand::QemuFuzzSeed { seed } => {
                write!(
                    f,
                    "migsim qemu fuzz --seeds {seed}..{}",
                    seed.saturating_add(1)
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_run_is_migsim_run_and_its_path() {
        let c = ReplayCommand::run(Path::new("scenarios/idle.toml"));
        assert_eq!(c.to_string(), "migsim run scenarios/idle.toml");
        let embedded = ReplayCommand::Run {
            scenario: None,
            seed: Some(7),
            flags: RunFlags::default(),
        };
        assert_eq!(embedded.to_string(), "migsim run --seed 7");
    }

    #[test]
    fn a_run_repeats_every_flag_that_changes_it_in_the_cli_order() {
        let c = ReplayCommand::Run {
            scenario: Some("big.toml".into()),
            seed: Some(3),
            flags: RunFlags {
                ram: Some(16 << 30),
                writers: Some(vec![Layout::FixedRam]),
                extents: true,
                file_dir: Some("/var/tmp/a b".into()),
                direct_io: true,
                channels: 2,
                durable: true,
                integrity: true,
                fail_write: Some((Layout::Sequential, 4, IoFault::Enospc)),
                bug: Some(Bug::ZeroPageKeepsBit),
            },
        };
        assert_eq!(
            c.to_string(),
            "migsim run big.toml --seed 3 --ram 16G --writers fixed-ram --extents \
             --file-dir '/var/tmp/a b' --direct-io --channels 2 --durable --integrity \
             --fail-write sequential:4:enospc --bug zero-page-keeps-bit"
        );
    }

    #[test]
    fn sizes_print_as_ram_reads_them() {
        assert_eq!(size_text(16 << 30), "16G");
        assert_eq!(size_text(48 << 20), "48M");
        assert_eq!(size_text(4096), "4096");
        assert_eq!(size_text(0), "0");
    }

    #[test]
    fn a_path_a_shell_would_split_is_quoted() {
        assert_eq!(shell_quote("scenarios/a.toml"), "scenarios/a.toml");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
        let c = ReplayCommand::QemuReplay {
            reproducer: "my findings/seed-1.toml".into(),
        };
        assert_eq!(
            c.to_string(),
            "migsim qemu replay 'my findings/seed-1.toml'"
        );
    }

    #[test]
    fn faults_explore_and_qemu_lines() {
        let c = ReplayCommand::Faults {
            scenario: "s.toml".into(),
            mode: Durability::Durable,
            integrity: true,
            ignore_mark: true,
            bug: Some(Bug::DurableMarkUnsynced),
            crash: Some((65, 7)),
        };
        assert_eq!(
            c.to_string(),
            "migsim faults s.toml --mode durable --integrity --ignore-mark \
             --bug durable-mark-unsynced --point 65 --sample 7"
        );
        let e = ReplayCommand::ExploreSeed {
            seed: u64::MAX - 1,
            faults: true,
            bug: None,
        };
        assert_eq!(
            e.to_string(),
            format!(
                "migsim explore --seeds {}..{} --no-shrink --dry-run --faults",
                u64::MAX - 1,
                u64::MAX
            )
        );
        assert_eq!(
            ReplayCommand::QemuFuzzSeed { seed: 9 }.to_string(),
            "migsim qemu fuzz --seeds 9..10"
        );
    }
}
