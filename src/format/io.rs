//! The one file abstraction every writer and the reader use: positioned
//! reads and writes on something that is seekable (a file) or not (a pipe or
//! socket, where writes may only append).
//!
//! Product code only knows [`MigFile`]. The simulated file with its write
//! log (and its non-seekable variant) lives in the harness
//! (`sim::simfile`); [`DiskFile`] is a real file on disk.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Positioned I/O on a migration file or transport.
pub trait MigFile {
    /// Write all of `data` at absolute `offset`.
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()>;
    /// Read up to `buf.len()` bytes at `offset`; returns how many were read
    /// (fewer only at end of file).
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;
    /// Current logical length in bytes.
    fn len(&self) -> u64;
    /// Whether this is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Whether writes may land anywhere (`true`) or only at the end.
    fn seekable(&self) -> bool;
}

impl<T: MigFile + ?Sized> MigFile for &mut T {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        (**self).write_at(offset, data)
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        (**self).read_at(offset, buf)
    }
    fn len(&self) -> u64 {
        (**self).len()
    }
    fn seekable(&self) -> bool {
        (**self).seekable()
    }
}

/// A real file on disk.
#[derive(Debug)]
pub struct DiskFile {
    file: File,
    len: u64,
}

impl DiskFile {
    /// Create (or truncate) `path` for writing and reading.
    pub fn create(path: &Path) -> io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(Self { file, len: 0 })
    }

    /// Open an existing file read-only.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        Ok(Self { file, len })
    }
}

impl MigFile for DiskFile {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.file.write_all_at(data, offset)?;
        self.len = self.len.max(offset + data.len() as u64);
        Ok(())
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            match self.file.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }
    fn len(&self) -> u64 {
        self.len
    }
    fn seekable(&self) -> bool {
        true
    }
}

/// An in-memory byte buffer, handy for tests and the fuzzer.
impl MigFile for Vec<u8> {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let end = offset as usize + data.len();
        if Vec::len(self) < end {
            self.resize(end, 0);
        }
        self[offset as usize..end].copy_from_slice(data);
        Ok(())
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        Bytes(self).read_at(offset, buf)
    }
    fn len(&self) -> u64 {
        Vec::len(self) as u64
    }
    fn seekable(&self) -> bool {
        true
    }
}

/// A file already in memory, read-only: reading needs no copy. Writes
/// fail.
#[derive(Clone, Copy, Debug)]
pub struct Bytes<'a>(pub &'a [u8]);

impl MigFile for Bytes<'_> {
    fn write_at(&mut self, _: u64, _: &[u8]) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "read-only bytes",
        ))
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let len = self.0.len() as u64;
        if offset >= len {
            return Ok(0);
        }
        let n = buf.len().min((len - offset) as usize);
        buf[..n].copy_from_slice(&self.0[offset as usize..offset as usize + n]);
        Ok(n)
    }
    fn len(&self) -> u64 {
        self.0.len() as u64
    }
    fn seekable(&self) -> bool {
        true
    }
}
