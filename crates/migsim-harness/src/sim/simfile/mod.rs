//! The simulated file: it records every write.
//!
//! Storage is either memory (a vector of optional 4 KiB chunks, so holes
//! cost nothing) or a real file on disk (big guests, benchmarks). Either
//! way the file tracks which 4 KiB chunks were ever written, so "bytes
//! allocated" is reported as a filesystem would and the digest is the same
//! for both stores. Each write is logged with the pass the driver was in,
//! so file size over the course of a migration can be reported and the
//! oracle can check where every write landed. The non-seekable variant
//! refuses any write not at the end, like a socket or pipe.
//!
//! For the fault model ([`crate::faults`]) a file can also keep a
//! *journal*: every write with its bytes and every sync, in order, from
//! which the disk image after a power loss at any write is rebuilt; and it
//! can fail one chosen write with ENOSPC, EIO or a short write
//! ([`IoFault`]), as a full or failing disk does.
//!
//! One job a file: [`memory`] holds an in-memory file's bytes, [`fault`]
//! the journal and the injected failures, [`hash`] the content hash.

use std::io;
use std::path::Path;

use serde::Serialize;

use migsim_format::io::{DiskFile, MigFile, SharedWrite};

mod fault;
mod hash;
mod memory;

pub use fault::{IoFault, JournalEntry};
use memory::{Memory, ZEROS};

/// Bytes per chunk of an in-memory file.
pub(crate) const CHUNK: usize = 4096;

/// Bytes per granule of the content hash ([`SimFile::content_hash`]).
pub const GRANULE: usize = 64 << 10;

/// Chunks per granule.
pub(super) const GRANULE_CHUNKS: usize = GRANULE / CHUNK;

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

#[derive(Debug)]
enum Store {
    Memory(Memory),
    Disk(DiskFile),
}

impl Default for Store {
    fn default() -> Self {
        Store::Memory(Memory::default())
    }
}

/// A sparse file (in memory or on disk) with a write log.
#[derive(Debug, Default)]
pub struct SimFile {
    store: Store,
    /// Chunks ever written, one bit each.
    written: Vec<u64>,
    len: u64,
    seekable: bool,
    /// The pass the driver is in; stamped on every write.
    pub pass: u32,
    log: Vec<WriteRecord>,
    journal: Option<Vec<JournalEntry>>,
    /// Fail the write with this index (0-based, in log order).
    fail: Option<(usize, IoFault)>,
}

impl SimFile {
    /// A seekable in-memory file (`file:` transport).
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

    /// A seekable file stored at `path` on disk (created or truncated);
    /// `direct` adds O_DIRECT for aligned page writes.
    /// The file replaces what is at `path` only on [`SimFile::commit`]
    /// ([`DiskFile::create_replacing`]): a run that fails leaves the
    /// previous file.
    pub fn on_disk(path: &Path, direct: bool) -> io::Result<Self> {
        let disk = DiskFile::create_replacing(path, direct)?;
        Ok(Self {
            store: Store::Disk(disk),
            seekable: true,
            ..Self::default()
        })
    }

    /// A disk-backed file takes its path now (see [`SimFile::on_disk`]);
    /// nothing to do in memory.
    pub fn commit(&mut self) -> io::Result<()> {
        match &mut self.store {
            Store::Disk(d) => d.commit(),
            Store::Memory(_) => Ok(()),
        }
    }

    /// Keep a journal from now on: every write with its bytes, and every
    /// sync ([`SimFile::journal`]).
    pub fn with_journal(mut self) -> Self {
        self.journal = Some(Vec::new());
        self
    }

    /// Fail write number `index` (0-based) with `fault`; every write after
    /// it fails the same way (the disk stays full or broken).
    pub fn fail_write(mut self, index: usize, fault: IoFault) -> Self {
        self.fail = Some((index, fault));
        self
    }

    /// The journal, if one is kept.
    pub fn journal(&self) -> Option<&[JournalEntry]> {
        self.journal.as_deref()
    }

    /// Every write so far, in order.
    pub fn log(&self) -> &[WriteRecord] {
        &self.log
    }

    fn written_chunks(&self) -> impl Iterator<Item = usize> + '_ {
        self.written.iter().enumerate().flat_map(|(wi, &w)| {
            (0..64)
                .filter(move |b| w & (1u64 << b) != 0)
                .map(move |b| wi * 64 + b)
        })
    }

    /// Bytes backed by storage (4 KiB granules), as `du` would count.
    pub fn allocated(&self) -> u64 {
        self.written
            .iter()
            .map(|w| u64::from(w.count_ones()))
            .sum::<u64>()
            * CHUNK as u64
    }

    /// Total bytes written (counting overwrites).
    pub fn bytes_written(&self) -> u64 {
        self.log.iter().map(|w| w.len).sum()
    }

    /// The logical contents (holes as zeros).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.len as usize];
        let n = self
            .read_at(0, &mut out)
            .expect("reading the simulated file");
        debug_assert_eq!(n, out.len());
        out
    }

    /// Write the logical contents to a real file, keeping holes sparse.
    pub fn save(&self, path: &Path) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::create(path)?;
        f.set_len(self.len)?;
        let mut buf = vec![0u8; CHUNK];
        for i in self.written_chunks() {
            let start = (i * CHUNK) as u64;
            let n = (self.len - start).min(CHUNK as u64) as usize;
            self.read_at(start, &mut buf[..n])?;
            f.write_all_at(&buf[..n], start)?;
        }
        Ok(())
    }

    fn record(&mut self, offset: u64, len: u64) {
        let end = offset + len;
        if len > 0 {
            let (first, last) = (offset as usize / CHUNK, (end as usize - 1) / CHUNK);
            if self.written.len() <= last / 64 {
                self.written.resize(last / 64 + 1, 0);
            }
            for i in first..=last {
                self.written[i / 64] |= 1u64 << (i % 64);
            }
        }
        self.len = self.len.max(end);
        self.log.push(WriteRecord {
            offset,
            len,
            pass: self.pass,
            file_len: self.len,
        });
    }
}

impl MigFile for SimFile {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        if let Some((at, fault)) = self.fail
            && self.log.len() >= at
        {
            let index = self.log.len();
            let landed = if index == at {
                fault.landed(data.len())
            } else {
                0
            };
            if landed > 0 {
                self.store_write(offset, &data[..landed])?;
            }
            return Err(fault.error(index, offset, data.len()));
        }
        self.store_write(offset, data)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.read_stored(offset, buf)
    }

    /// In memory, the bytes where they lie (chunks never written as
    /// zeros): the reader's pages reach the destination without a copy.
    fn lend(&self, offset: u64, len: usize, f: &mut dyn FnMut(&[u8])) -> bool {
        let Store::Memory(mem) = &self.store else {
            return false;
        };
        if offset
            .checked_add(len as u64)
            .is_none_or(|end| end > self.len)
        {
            return false;
        }
        mem.pieces(&self.written, offset, len, |piece, n| match piece {
            Some(m) => f(m),
            None => {
                for at in (0..n).step_by(ZEROS.len()) {
                    f(&ZEROS[..(n - at).min(ZEROS.len())]);
                }
            }
        });
        true
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn seekable(&self) -> bool {
        self.seekable
    }

    fn shared(&self) -> Option<&dyn SharedWrite> {
        match &self.store {
            // A write chosen to fail must go through write_at.
            _ if self.fail.is_some() => None,
            Store::Disk(d) => Some(d),
            // Channels write disjoint ranges; a non-seekable transport
            // takes its writes one at a time, at the end (write_at).
            Store::Memory(_) if self.seekable => Some(self),
            Store::Memory(_) => None,
        }
    }

    fn note_shared_write(&mut self, offset: u64, len: u64) {
        self.record(offset, len);
        if self.journal.is_some() {
            // The channels' writes are disjoint and done: read them back.
            let mut data = vec![0u8; len as usize];
            let n = self.read_stored(offset, &mut data).unwrap_or(0);
            data.truncate(n);
            if let Some(j) = &mut self.journal {
                j.push(JournalEntry::Write { offset, data });
            }
        }
    }

    fn sync(&mut self) -> io::Result<()> {
        if let Store::Disk(d) = &mut self.store {
            d.sync()?;
        }
        if let Some(j) = &mut self.journal {
            j.push(JournalEntry::Sync);
        }
        Ok(())
    }
}

/// Writer channels writing an in-memory file at once (disjoint ranges);
/// [`MigFile::note_shared_write`] records each write afterwards.
impl SharedWrite for SimFile {
    fn write_shared(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        offset
            .checked_add(data.len() as u64)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "write past 2^64"))?;
        match &self.store {
            Store::Memory(mem) => {
                super::stages::timed(super::stages::Stage::Write, || mem.write(offset, data))
            }
            Store::Disk(d) => d.write_shared(offset, data)?,
        }
        Ok(())
    }
}

impl SimFile {
    fn store_write(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        if !self.seekable && offset != self.len {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "transport is not seekable: write at offset {offset:#x} but the stream is at {:#x}",
                    self.len
                ),
            ));
        }
        offset
            .checked_add(data.len() as u64)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "write past 2^64"))?;
        match &mut self.store {
            Store::Disk(d) => d.write_at(offset, data)?,
            Store::Memory(mem) => {
                super::stages::timed(super::stages::Stage::Write, || mem.write(offset, data))
            }
        }
        self.record(offset, data.len() as u64);
        if let Some(j) = &mut self.journal {
            j.push(JournalEntry::Write {
                offset,
                data: data.to_vec(),
            });
        }
        Ok(())
    }

    /// Read up to `buf.len()` bytes at `offset` (holes read as zeros).
    fn read_stored(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        super::stages::timed(super::stages::Stage::Read, || self.read_store(offset, buf))
    }

    fn read_store(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        if offset >= self.len {
            return Ok(0);
        }
        let n = buf.len().min((self.len - offset) as usize);
        match &self.store {
            Store::Disk(d) => {
                let got = d.read_at(offset, &mut buf[..n])?;
                // A file extended by a write past its end reads zeros.
                buf[got..n].fill(0);
            }
            Store::Memory(mem) => mem.read(&self.written, offset, &mut buf[..n]),
        }
        Ok(n)
    }

    /// Logical length in bytes.
    pub fn len_bytes(&self) -> u64 {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::pool::SEGMENT;

    /// Writes of every shape (inside a chunk, across chunks and segments,
    /// past the end) into a file whose segments come back dirty from the
    /// pool read back as a plain byte vector says, holes as zeros.
    #[test]
    fn recycled_segments_never_show_through() {
        let _only = crate::sim::stages::exclusive();
        // Leave dirty segments in the pool (same thread: taken back first).
        {
            let mut dirty = SimFile::new();
            let junk = vec![0xEEu8; 3 * SEGMENT];
            dirty.write_at(0, &junk).unwrap();
        }
        let mut f = SimFile::new();
        let mut want: Vec<u8> = Vec::new();
        let mut x = 0x1234_5678u64;
        let mut next = |m: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % m
        };
        for i in 0..300u64 {
            let offset = next(3 * SEGMENT as u64 + 5000);
            let len = match i % 4 {
                0 => next(64) + 1,
                1 => next(3 * CHUNK as u64) + 1,
                2 => CHUNK as u64,
                _ => next(SEGMENT as u64 / 2) + 1,
            } as usize;
            let data: Vec<u8> = (0..len).map(|k| (i as usize + k) as u8 | 1).collect();
            f.write_at(offset, &data).unwrap();
            let end = offset as usize + len;
            if want.len() < end {
                want.resize(end, 0);
            }
            want[offset as usize..end].copy_from_slice(&data);
        }
        assert_eq!(f.len_bytes(), want.len() as u64);
        assert!(f.to_vec() == want, "contents differ");
        // Reads at odd offsets and lengths, across holes and the end.
        for _ in 0..200 {
            let offset = next(want.len() as u64 + 100);
            let len = next(2 * CHUNK as u64 + 77) as usize;
            let mut buf = vec![0xAAu8; len];
            let got = f.read_at(offset, &mut buf).unwrap();
            let from = (offset as usize).min(want.len());
            let to = (from + len).min(want.len());
            assert_eq!(got, to - from);
            assert!(buf[..got] == want[from..to], "read at {offset:#x}+{len}");
        }
    }

    /// Channels writing disjoint ranges at once, inside one chunk too,
    /// give the bytes one writer would.
    #[test]
    fn shared_writes_from_several_threads_land_as_serial_ones() {
        let _only = crate::sim::stages::exclusive();
        {
            let mut dirty = SimFile::new();
            dirty.write_at(0, &vec![0xEEu8; 2 * SEGMENT]).unwrap();
        }
        // Thread t writes bytes [k*96 + t*48, +48) for every k: pieces of
        // every chunk come from both threads, the chunks' edges too.
        let total = SEGMENT + 3 * CHUNK + 7;
        let mut want = vec![0u8; total];
        let mut f = SimFile::new();
        let writes: Vec<Vec<(u64, Vec<u8>)>> = (0..2)
            .map(|t| {
                (0..total / 96)
                    .map(|k| {
                        let at = k * 96 + t * 48;
                        let data: Vec<u8> = (0..48).map(|i| (k + i + t) as u8 | 1).collect();
                        want[at..at + 48].copy_from_slice(&data);
                        (at as u64, data)
                    })
                    .collect()
            })
            .collect();
        want.truncate(
            writes
                .iter()
                .flatten()
                .map(|(o, d)| *o as usize + d.len())
                .max()
                .unwrap(),
        );
        {
            let shared = f.shared().expect("memory files take shared writes");
            std::thread::scope(|s| {
                for w in &writes {
                    s.spawn(move || {
                        for (at, data) in w {
                            shared.write_shared(*at, data).unwrap();
                        }
                    });
                }
            });
        }
        for (at, data) in writes.iter().flatten() {
            f.note_shared_write(*at, data.len() as u64);
        }
        assert!(f.to_vec() == want, "contents differ");
        assert!(SimFile::non_seekable().shared().is_none());
    }

    /// The content hash is BLAKE3 of the granules holding a written chunk
    /// (holes and bytes past the end as zeros), then the written-chunk
    /// bitmap up to the end, then the length; spelled out for one file.
    #[test]
    fn content_hash_is_the_documented_stream() {
        let _only = crate::sim::stages::exclusive();
        // Segments come back dirty from the pool: the holes in a granule
        // must still hash as zeros.
        {
            let mut dirty = SimFile::new();
            dirty.write_at(0, &vec![0xEEu8; 3 * SEGMENT]).unwrap();
        }
        let mut f = SimFile::new();
        // Chunks 2..8 (the last one partly), in granule 0.
        f.write_at(CHUNK as u64 * 2, &vec![3u8; 5 * CHUNK + 100])
            .unwrap();
        // Chunks 511..514: granule 31 (end of segment 0) and 32.
        let at = SEGMENT as u64 * 2 - CHUNK as u64;
        f.write_at(at, &vec![9u8; 3 * CHUNK]).unwrap();
        let granule = |g: usize| -> Vec<u8> {
            let mut v = vec![0u8; GRANULE];
            let base = g * GRANULE;
            for (i, b) in v.iter_mut().enumerate() {
                let o = base + i;
                if (2 * CHUNK..7 * CHUNK + 100).contains(&o) {
                    *b = 3;
                }
                if (at as usize..at as usize + 3 * CHUNK).contains(&o) {
                    *b = 9;
                }
            }
            v
        };
        let mut h = blake3::Hasher::new();
        let last = (at as usize) / GRANULE;
        for g in [0, last, last + 1] {
            h.update(&granule(g));
        }
        // Chunks up to the end: 1026, in 17 words.
        let chunks = f.len_bytes().div_ceil(CHUNK as u64);
        assert_eq!(chunks, 2 * SEGMENT as u64 / CHUNK as u64 + 2);
        let mut words = vec![0u64; chunks.div_ceil(64) as usize];
        for c in (2..8).chain(1023..1026) {
            words[c / 64] |= 1 << (c % 64);
        }
        for w in words {
            h.update(&w.to_le_bytes());
        }
        h.update(&f.len_bytes().to_le_bytes());
        assert_eq!(f.content_hash(), h.finalize());
    }

    /// The stream [`SimFile::content_hash`] documents, hashed serially.
    fn documented_hash(f: &SimFile) -> blake3::Hash {
        let mut h = blake3::Hasher::new();
        let mut padded = f.to_vec();
        padded.resize(padded.len().next_multiple_of(GRANULE), 0);
        let chunks = f.len_bytes().div_ceil(CHUNK as u64) as usize;
        let written = |c: usize| {
            f.written
                .get(c / 64)
                .is_some_and(|w| w >> (c % 64) & 1 == 1)
        };
        for g in 0..padded.len() / GRANULE {
            if (g * GRANULE_CHUNKS..(g + 1) * GRANULE_CHUNKS).any(written) {
                h.update(&padded[g * GRANULE..(g + 1) * GRANULE]);
            }
        }
        for wi in 0..chunks.div_ceil(64) {
            let w: u64 = (0..64)
                .filter(|b| written(wi * 64 + b))
                .map(|b| 1 << b)
                .sum();
            h.update(&w.to_le_bytes());
        }
        h.update(&f.len_bytes().to_le_bytes());
        h.finalize()
    }

    #[test]
    fn a_file_of_many_hashed_subtrees_hashes_as_its_documented_stream() {
        // Runs longer than a subtree, shorter, across segments, and a
        // last chunk past the end: in memory and on disk.
        let dir = std::env::temp_dir().join(format!("migsim-tree-hash-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut mem = SimFile::new();
        let mut disk = SimFile::on_disk(&dir.join("f"), false).unwrap();
        let mut at = 3 * CHUNK as u64;
        for (i, len) in [3 << 20, 5 * CHUNK + 17, 1, SEGMENT + 3 * CHUNK, 700_001]
            .into_iter()
            .enumerate()
        {
            let data: Vec<u8> = (0..len).map(|k| (k * 31 + i * 7) as u8 | 1).collect();
            mem.write_at(at, &data).unwrap();
            disk.write_at(at, &data).unwrap();
            at += len as u64 + (i as u64 + 1) * 5 * CHUNK as u64 + 123;
        }
        assert!(mem.len_bytes() > 5 * super::super::tree_hash::LEAF);
        let want = documented_hash(&mem);
        assert_eq!(mem.content_hash(), want, "in memory");
        assert_eq!(disk.content_hash(), want, "on disk");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn lent_bytes_are_the_bytes_read_holes_as_zeros() {
        let mut f = SimFile::new();
        f.write_at(CHUNK as u64, &vec![5u8; 3 * CHUNK]).unwrap();
        let at = SEGMENT as u64 - CHUNK as u64;
        f.write_at(at, &vec![6u8; 2 * CHUNK + 100]).unwrap();
        f.write_at(SEGMENT as u64 * 3, &[7u8; 10]).unwrap();
        let len = f.len_bytes();
        for (offset, n) in [
            (0, len as usize),
            (CHUNK as u64, 5000),
            (at, SEGMENT),
            (len - 10, 10),
        ] {
            let mut want = vec![0u8; n];
            assert_eq!(f.read_at(offset, &mut want).unwrap(), n);
            let mut got = Vec::new();
            assert!(f.lend(offset, n, &mut |b| got.extend_from_slice(b)));
            assert_eq!(got, want, "{n} bytes at {offset:#x}");
        }
        // Past the end it does not lend (the reader reads, and reports
        // the truncation); nor does a file on disk.
        assert!(!f.lend(len - 10, 11, &mut |_| panic!("lent past the end")));
        let dir = std::env::temp_dir().join(format!("migsim-lend-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut disk = SimFile::on_disk(&dir.join("f"), false).unwrap();
        disk.write_at(0, &[1u8; 100]).unwrap();
        assert!(!disk.lend(0, 100, &mut |_| panic!("a file on disk lent")));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
