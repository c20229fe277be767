//! A sparse in-memory file for the fuzz targets.

use std::collections::BTreeMap;
use std::io;

use migsim_format::io::MigFile;

use super::{PAGE, PAGE_USIZE, read_exact};

/// A sparse in-memory file (4 KiB chunks; holes read as zeros) that can
/// be truncated and extended: a 1 MiB-aligned fixed-ram file costs only
/// the chunks written.
#[derive(Clone, Debug, Default)]
pub(crate) struct SparseFile {
    len: u64,
    chunks: BTreeMap<u64, Box<[u8; PAGE_USIZE]>>,
}

impl SparseFile {
    pub(crate) fn set_len(&mut self, len: u64) {
        if len < self.len {
            let keep = len.div_ceil(PAGE);
            self.chunks.split_off(&keep);
            if let Some(c) = self.chunks.get_mut(&(len / PAGE)) {
                c[(len % PAGE) as usize..].fill(0);
            }
        }
        self.len = len;
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
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "write past 2^64"))?;
        let mut done = 0usize;
        while done < data.len() {
            let pos = offset + done as u64;
            let (ci, co) = (pos / PAGE, (pos % PAGE) as usize);
            let n = (PAGE_USIZE - co).min(data.len() - done);
            let chunk = self
                .chunks
                .entry(ci)
                .or_insert_with(|| Box::new([0u8; PAGE_USIZE]));
            chunk[co..co + n].copy_from_slice(&data[done..done + n]);
            done += n;
        }
        self.len = self.len.max(end);
        Ok(())
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        if offset >= self.len {
            return Ok(0);
        }
        let n = buf.len().min((self.len - offset) as usize);
        let mut done = 0usize;
        while done < n {
            let pos = offset + done as u64;
            let (ci, co) = (pos / PAGE, (pos % PAGE) as usize);
            let m = (PAGE_USIZE - co).min(n - done);
            match self.chunks.get(&ci) {
                Some(c) => buf[done..done + m].copy_from_slice(&c[co..co + m]),
                None => buf[done..done + m].fill(0),
            }
            done += m;
        }
        Ok(n)
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn seekable(&self) -> bool {
        true
    }
}
