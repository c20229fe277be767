//! A sparse in-memory file for the fuzz targets.

use std::collections::BTreeMap;
use std::io;
use std::sync::OnceLock;

use migsim_format::io::MigFile;

use super::{PAGE, read_exact};
use crate::sim::simfile::CHUNK;

/// Walk `[offset, offset + len)` chunk by chunk: `f(chunk index, offset in
/// the chunk, range in the caller's buffer)`, for sparse stores of
/// [`CHUNK`]-byte chunks.
fn for_each_chunk(offset: u64, len: usize, mut f: impl FnMut(u64, usize, std::ops::Range<usize>)) {
    let mut done = 0usize;
    while done < len {
        let pos = offset + done as u64;
        let (ci, co) = (pos / CHUNK as u64, (pos % CHUNK as u64) as usize);
        let n = (CHUNK - co).min(len - done);
        f(ci, co, done..done + n);
        done += n;
    }
}

/// Fill `buf` from the sparse chunks at `offset`: each chunk `chunk(i)`
/// gives, or zeros where it gives none (a hole).
fn read_chunks<'c>(offset: u64, buf: &mut [u8], chunk: impl Fn(u64) -> Option<&'c [u8; CHUNK]>) {
    for_each_chunk(offset, buf.len(), |ci, co, r| match chunk(ci) {
        Some(c) => buf[r.clone()].copy_from_slice(&c[co..co + r.len()]),
        None => buf[r].fill(0),
    });
}

/// Files up to this long are also offered as one slice
/// ([`MigFile::contiguous`]), so the reader reads them in place.
const FLAT_MAX: u64 = 1 << 20;

/// A sparse in-memory file (4 KiB chunks; holes read as zeros) that can
/// be truncated and extended: a 1 MiB-aligned fixed-ram file costs only
/// the chunks written. A file of at most [`FLAT_MAX`] bytes (the
/// compacted layouts, even extended) is also one slice in memory, made
/// on first use after a change: the reader then reads it in place, as it
/// reads the `reader` target's inputs, instead of filling windows; the
/// 1 MiB-aligned files, larger, keep going through `read_at`.
#[derive(Clone, Debug, Default)]
pub(crate) struct SparseFile {
    len: u64,
    chunks: BTreeMap<u64, Box<[u8; CHUNK]>>,
    flat: OnceLock<Vec<u8>>,
}

impl SparseFile {
    pub(crate) fn set_len(&mut self, len: u64) {
        self.flat = OnceLock::new();
        if len < self.len {
            let keep = len.div_ceil(PAGE);
            self.chunks.split_off(&keep);
            if let Some(c) = self.chunks.get_mut(&(len / PAGE)) {
                c[(len % PAGE) as usize..].fill(0);
            }
        }
        self.len = len;
    }

    /// Drop the flat copy (made again on next use).
    pub(crate) fn forget_flat(&mut self) {
        self.flat = OnceLock::new();
    }

    /// Bytes held in memory: the written chunks and the flat copy.
    pub(crate) fn stored_bytes(&self) -> usize {
        self.chunks.len() * CHUNK + self.flat.get().map_or(0, Vec::len)
    }

    pub(crate) fn to_vec(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.len as usize];
        let n = out.len();
        read_exact(self, 0, &mut out[..n]);
        out
    }
}

impl MigFile for SparseFile {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.flat = OnceLock::new();
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "write past 2^64"))?;
        for_each_chunk(offset, data.len(), |ci, co, r| {
            let chunk = self
                .chunks
                .entry(ci)
                .or_insert_with(|| Box::new([0u8; CHUNK]));
            chunk[co..co + r.len()].copy_from_slice(&data[r]);
        });
        self.len = self.len.max(end);
        Ok(())
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        if offset >= self.len {
            return Ok(0);
        }
        let n = buf.len().min((self.len - offset) as usize);
        read_chunks(offset, &mut buf[..n], |i| self.chunks.get(&i).map(|c| &**c));
        Ok(n)
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn seekable(&self) -> bool {
        true
    }

    fn contiguous(&self) -> Option<&[u8]> {
        (self.len <= FLAT_MAX).then(|| self.flat.get_or_init(|| self.to_vec()).as_slice())
    }
}
