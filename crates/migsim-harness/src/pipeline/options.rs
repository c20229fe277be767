//! `RunOptions`: how a run keeps its files (memory or disk, O_DIRECT),
//! how many channels write and read them, which bug variant and which
//! opt-in save modes it runs with, and who is told of its progress.

use std::path::PathBuf;

use crate::bugs::Bug;
use crate::sim::simfile::IoFault;
use migsim_format::Layout;
use migsim_format::durable::Durability;

/// Called with the pages sent so far, after every batch.
pub type Progress = std::sync::Arc<dyn Fn(u64) + Send + Sync>;

/// Where a run keeps its files and how many channels write and read them.
/// None of it but `bug` changes the verdict, the files' bytes or the
/// digest.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// A deliberately wrong variant to inject.
    pub bug: Option<Bug>,
    /// Write seekable files into this directory (`<scenario>.<writer>.mig`)
    /// instead of memory: for guests larger than memory.
    pub file_dir: Option<PathBuf>,
    /// Open files with O_DIRECT for page writes (with `file_dir`).
    pub direct_io: bool,
    /// Writer and reader channels (multifd-like); 0 and 1 mean one.
    pub channels: usize,
    /// Told of the pages sent as the migration goes (a progress bar).
    pub progress: Option<Progress>,
    /// How the writers order writes and syncs (QEMU's by default; the
    /// durable mode changes the files' bytes: the completion mark).
    pub durability: Durability,
    /// Append the integrity trailer to every file (changes the files'
    /// bytes), which the restore then verifies.
    pub integrity: bool,
    /// Keep every file's journal (writes with their bytes, syncs) for the
    /// fault model ([`crate::faults`]); files in memory only.
    pub journal: bool,
    /// Fail one write of one writer's file ([`IoFault`]).
    pub io_fault: Option<(Layout, usize, IoFault)>,
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("bug", &self.bug)
            .field("file_dir", &self.file_dir)
            .field("direct_io", &self.direct_io)
            .field("channels", &self.channels)
            .field("progress", &self.progress.is_some())
            .field("durability", &self.durability)
            .field("integrity", &self.integrity)
            .field("journal", &self.journal)
            .field("io_fault", &self.io_fault)
            .finish()
    }
}

impl RunOptions {
    /// Correct code except for `bug`; files in memory, one channel.
    pub fn with_bug(bug: Bug) -> Self {
        RunOptions {
            bug: Some(bug),
            ..RunOptions::default()
        }
    }

    /// Tell whoever asked (`progress`) of the pages sent so far.
    pub fn progress_fn(&self) -> impl Fn(u64) + '_ {
        move |sent| {
            if let Some(p) = &self.progress {
                p(sent)
            }
        }
    }
}
