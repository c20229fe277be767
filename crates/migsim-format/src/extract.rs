//! `migsim extract`: one block's memory out of a migration file, as raw
//! bytes. Pages the file marks zero, and pages it never mentions, read as
//! zeros (the output is created sparse at the block's length).

use std::collections::BTreeSet;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::LoadError;
use crate::io::MigFile;
use crate::ram::PAGE_SIZE;
use crate::reader::{LoadOptions, RamSink, StreamInfo, load};

/// Largest block extract will write (a sanity limit against hostile
/// lengths; real guests' blocks are far smaller).
pub const MAX_EXTRACT: u64 = 1 << 40;

struct ExtractSink<'a> {
    want: &'a str,
    out_path: &'a Path,
    out: Option<File>,
    index: Option<usize>,
    declared: usize,
    /// Pages written so far (bounded by the page records in the file).
    written: BTreeSet<u64>,
}

impl RamSink for ExtractSink<'_> {
    fn declare_block(&mut self, name: &str, used_length: u64) -> Result<(), LoadError> {
        if name == self.want && self.index.is_none() {
            if used_length > MAX_EXTRACT {
                return Err(LoadError::BadUsedLength {
                    name: name.to_string(),
                    used_length,
                });
            }
            let f = File::create(self.out_path)?;
            f.set_len(used_length)?;
            self.out = Some(f);
            self.index = Some(self.declared);
        }
        self.declared += 1;
        Ok(())
    }

    fn write_pages(&mut self, block: usize, first: u64, data: &[u8]) -> Result<(), LoadError> {
        if Some(block) == self.index
            && let Some(f) = &self.out
        {
            f.write_all_at(data, first * PAGE_SIZE)?;
            let n = data.len() as u64 / PAGE_SIZE;
            self.written.extend(first..first + n);
        }
        Ok(())
    }

    fn zero_pages(&mut self, block: usize, first: u64, count: u64) -> Result<(), LoadError> {
        // The output starts as a hole of zeros; only pages written earlier
        // (a sequential stream re-sending a page as zero) need clearing.
        if Some(block) == self.index
            && let Some(f) = &self.out
        {
            let zero = [0u8; PAGE_SIZE as usize];
            let hit: Vec<u64> = self.written.range(first..first + count).copied().collect();
            for p in hit {
                f.write_all_at(&zero, p * PAGE_SIZE)?;
                self.written.remove(&p);
            }
        }
        Ok(())
    }
}

/// Why extract failed.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// The file could not be read.
    #[error("{0}")]
    Load(#[from] LoadError),
    /// No such block.
    #[error("no RAMBlock named {want:?} in the file; it has: {have}")]
    NoBlock {
        /// Asked for.
        want: String,
        /// Present.
        have: String,
    },
}

/// Extract block `name` of `file` into `out`. On failure the output is
/// removed.
pub fn extract<F: MigFile + ?Sized>(
    file: &F,
    name: &str,
    out: &Path,
) -> Result<StreamInfo, ExtractError> {
    let mut sink = ExtractSink {
        want: name,
        out_path: out,
        out: None,
        index: None,
        declared: 0,
        written: BTreeSet::new(),
    };
    let result = load(file, &LoadOptions::default(), &mut sink);
    let found = sink.index.is_some();
    match result {
        Ok(info) if found => Ok(info),
        Ok(info) => Err(ExtractError::NoBlock {
            want: name.to_string(),
            have: info
                .blocks
                .iter()
                .map(|b| b.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
        Err(e) => {
            if found {
                let _ = std::fs::remove_file(out);
            }
            Err(e.into())
        }
    }
}
