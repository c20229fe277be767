//! A simulated sparse file that records every write.
//!
//! Storage is a vector of optional 4 KiB chunks, so holes cost nothing and
//! "bytes allocated" can be reported as a filesystem would. Each write is
//! logged with the pass the driver was in, so file size over the course of
//! a migration can be reported and the oracle can check where every write
//! landed. The non-seekable variant refuses any write not at the end, like
//! a socket or pipe.

use std::io;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::format::io::MigFile;

const CHUNK: usize = 4096;

/// One logged write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct WriteRecord {
    /// Absolute offset.
    pub offset: u64,
    /// Length.
    pub len: u64,
    /// The pass during which it happened (0 = setup, then 1, 2, ...).
    pub pass: u32,
    /// File length after the write.
    pub file_len: u64,
}

/// A sparse in-memory file with a write log.
#[derive(Clone, Debug, Default)]
pub struct SimFile {
    chunks: Vec<Option<Box<[u8; CHUNK]>>>,
    len: u64,
    seekable: bool,
    /// The pass the driver is in; stamped on every write.
    pub pass: u32,
    log: Vec<WriteRecord>,
}

impl SimFile {
    /// A seekable file (`file:` transport).
    pub fn new() -> Self {
        Self {
            seekable: true,
            ..Self::default()
        }
    }

    /// A non-seekable transport (socket, pipe).
    pub fn non_seekable() -> Self {
        Self {
            seekable: false,
            ..Self::default()
        }
    }

    /// Every write so far, in order.
    pub fn log(&self) -> &[WriteRecord] {
        &self.log
    }

    /// Bytes backed by storage (4 KiB granules), as `du` would count.
    pub fn allocated(&self) -> u64 {
        self.chunks.iter().filter(|c| c.is_some()).count() as u64 * CHUNK as u64
    }

    /// Total bytes written (counting overwrites).
    pub fn bytes_written(&self) -> u64 {
        self.log.iter().map(|w| w.len).sum()
    }

    /// The logical contents (holes as zeros).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.len as usize];
        for (i, c) in self.chunks.iter().enumerate() {
            if let Some(c) = c {
                let start = i * CHUNK;
                let end = (start + CHUNK).min(out.len());
                out[start..end].copy_from_slice(&c[..end - start]);
            }
        }
        out
    }

    /// Feed the logical contents into a hash: the length, then every
    /// allocated chunk with its index (holes and written zeros differ, as
    /// they do on disk).
    pub fn hash_into(&self, h: &mut Sha256) {
        h.update(self.len.to_le_bytes());
        for (i, c) in self.chunks.iter().enumerate() {
            if let Some(c) = c {
                h.update((i as u64).to_le_bytes());
                h.update(&c[..]);
            }
        }
    }

    /// Write the logical contents to a real file, keeping holes sparse.
    pub fn save(&self, path: &std::path::Path) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::create(path)?;
        f.set_len(self.len)?;
        for (i, c) in self.chunks.iter().enumerate() {
            if let Some(c) = c {
                let start = (i * CHUNK) as u64;
                let n = (self.len - start).min(CHUNK as u64) as usize;
                f.write_all_at(&c[..n], start)?;
            }
        }
        Ok(())
    }
}

impl MigFile for SimFile {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        if !self.seekable && offset != self.len {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "transport is not seekable: write at offset {offset:#x} but the stream is at {:#x}",
                    self.len
                ),
            ));
        }
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "write past 2^64"))?;
        let last_chunk = end.div_ceil(CHUNK as u64) as usize;
        if self.chunks.len() < last_chunk {
            self.chunks.resize_with(last_chunk, || None);
        }
        let mut done = 0usize;
        while done < data.len() {
            let pos = offset as usize + done;
            let (ci, co) = (pos / CHUNK, pos % CHUNK);
            let n = (CHUNK - co).min(data.len() - done);
            let chunk = self.chunks[ci].get_or_insert_with(|| Box::new([0u8; CHUNK]));
            chunk[co..co + n].copy_from_slice(&data[done..done + n]);
            done += n;
        }
        self.len = self.len.max(end);
        self.log.push(WriteRecord {
            offset,
            len: data.len() as u64,
            pass: self.pass,
            file_len: self.len,
        });
        Ok(())
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        if offset >= self.len {
            return Ok(0);
        }
        let n = buf.len().min((self.len - offset) as usize);
        let mut done = 0usize;
        while done < n {
            let pos = offset as usize + done;
            let (ci, co) = (pos / CHUNK, pos % CHUNK);
            let m = (CHUNK - co).min(n - done);
            match &self.chunks[ci] {
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
        self.seekable
    }
}

impl SimFile {
    /// Logical length in bytes.
    pub fn len_bytes(&self) -> u64 {
        self.len
    }
}
