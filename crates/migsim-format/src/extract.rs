//! `migsim extract`: one block's memory out of a migration file, as raw
//! bytes. Pages the file marks zero, and pages it never mentions, read as
//! zeros (the output is sized sparse at the block's length). The block is
//! matched by its name's exact bytes (control characters included). A file
//! without a vmdesc trailer (QEMU `-machine suppress-vmdesc=on`) is read up
//! to its device sections ([`load_ram`]): RAM comes before them, so every
//! block is complete; the returned [`StreamInfo`] carries the warning.
//!
//! [`extract`] writes into a file the caller opened; it creates, renames
//! and removes nothing. Where the bytes end up, and what happens to them on
//! failure, is the caller's policy: the CLI (`src/files.rs`) extracts into a
//! temporary file it created and renames it over the output only on
//! success, so a failed extract never touches an existing output.

use std::collections::BTreeSet;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use crate::LoadError;
use crate::io::MigFile;
use crate::ram::PAGE_SIZE;
use crate::reader::{LoadOptions, RamSink, StreamInfo, load_ram};

/// Largest block extract will write (a sanity limit against hostile
/// lengths; real guests' blocks are far smaller).
pub const MAX_EXTRACT: u64 = 1 << 40;

struct ExtractSink<'a> {
    want: &'a str,
    out: &'a File,
    /// Why writing the output failed; the load is stopped with a stand-in
    /// error, and this one is reported as an output error.
    out_err: Option<io::Error>,
    index: Option<usize>,
    declared: usize,
    /// Pages written so far (bounded by the page records in the file).
    written: BTreeSet<u64>,
}

impl ExtractSink<'_> {
    /// Run an output operation; a failure is kept in `out_err` (so it is
    /// reported against the output, not the input) and stops the load.
    fn output(&mut self, op: impl FnOnce(&File) -> io::Result<()>) -> Result<(), LoadError> {
        op(self.out).map_err(|e| {
            let stop = io::Error::new(e.kind(), "writing the output failed");
            self.out_err = Some(e);
            LoadError::Io(stop)
        })
    }
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
            // Empty first, so nothing the file held before survives as
            // "page content".
            self.output(|f| {
                f.set_len(0)?;
                f.set_len(used_length)
            })?;
            self.index = Some(self.declared);
        }
        self.declared += 1;
        Ok(())
    }

    fn write_pages(&mut self, block: usize, first: u64, data: &[u8]) -> Result<(), LoadError> {
        if Some(block) == self.index {
            self.output(|f| f.write_all_at(data, first * PAGE_SIZE))?;
            let n = data.len() as u64 / PAGE_SIZE;
            self.written.extend(first..first + n);
        }
        Ok(())
    }

    fn zero_pages(&mut self, block: usize, first: u64, count: u64) -> Result<(), LoadError> {
        // The output starts as a hole of zeros; only pages written earlier
        // (a sequential stream re-sending a page as zero) need clearing.
        if Some(block) == self.index {
            let zero = [0u8; PAGE_SIZE as usize];
            let hit: Vec<u64> = self.written.range(first..first + count).copied().collect();
            for p in hit {
                self.output(|f| f.write_all_at(&zero, p * PAGE_SIZE))?;
                self.written.remove(&p);
            }
        }
        Ok(())
    }
}

/// Why extract failed.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// The migration file could not be read.
    #[error("{0}")]
    Load(#[from] LoadError),
    /// The output could not be written (report it against the output).
    #[error("{0}")]
    Output(io::Error),
    /// The block is ignored under x-ignore-shared: the file holds none of
    /// its memory.
    #[error(
        "RAMBlock {0} is ignored under x-ignore-shared (shared memory): the file holds none of its pages, its memory is the shared backend's"
    )]
    Ignored(String),
    /// No such block.
    #[error("no RAMBlock named {want:?} in the file; it has: {have}")]
    NoBlock {
        /// Asked for.
        want: String,
        /// Present.
        have: String,
    },
}

/// Extract block `name` of `file` into `out`: a seekable file opened for
/// writing, which is truncated and set (sparse) to the block's length when
/// the file declares the block, then written with positioned writes.
///
/// On failure `out` may hold part of the block (or be untouched, if the
/// block was never reached); discarding it is the caller's business.
pub fn extract<F: MigFile + ?Sized>(
    file: &F,
    name: &str,
    out: &File,
) -> Result<StreamInfo, ExtractError> {
    let mut sink = ExtractSink {
        want: name,
        out,
        out_err: None,
        index: None,
        declared: 0,
        written: BTreeSet::new(),
    };
    // The stream may start at an offset (libvirt save image, `offset=`);
    // load_ram: a file without a vmdesc trailer still gives its RAM.
    let opts = LoadOptions {
        stream_offset: crate::container::find_stream(file)?.offset,
        ..LoadOptions::default()
    };
    let result = load_ram(file, &opts, &mut sink);
    if let Some(e) = sink.out_err {
        return Err(ExtractError::Output(e));
    }
    let found = sink.index.is_some();
    match result {
        Ok(info) if info.blocks.iter().any(|b| b.name == name && b.ignored) => Err(
            ExtractError::Ignored(crate::wire::printable(name.as_bytes())),
        ),
        Ok(info) if found => Ok(info),
        Ok(info) => Err(ExtractError::NoBlock {
            want: name.to_string(),
            have: info
                .blocks
                .iter()
                .map(|b| crate::wire::printable(b.name.as_bytes()))
                .collect::<Vec<_>>()
                .join(", "),
        }),
        Err(e) => Err(e.into()),
    }
}
