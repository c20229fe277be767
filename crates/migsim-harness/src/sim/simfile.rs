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

use std::io;
use std::path::Path;
use std::sync::{Mutex, RwLock};

use serde::Serialize;

use migsim_format::io::{DiskFile, MigFile, SharedWrite};

use super::pool::{SEGMENT, Segment};

/// Bytes per chunk of an in-memory file.
pub(crate) const CHUNK: usize = 4096;

/// Bytes per granule of the content hash ([`SimFile::content_hash`]).
pub const GRANULE: usize = 64 << 10;

/// Chunks per granule.
const GRANULE_CHUNKS: usize = GRANULE / CHUNK;

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

/// One event of a file's journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JournalEntry {
    /// A write: absolute offset and the bytes.
    Write {
        /// Absolute offset.
        offset: u64,
        /// What was written.
        data: Vec<u8>,
    },
    /// fdatasync: every write before it is durable.
    Sync,
}

/// A failure injected at one write ([`SimFile::fail_write`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum IoFault {
    /// The write fails with ENOSPC, nothing written.
    Enospc,
    /// The write fails with EIO, nothing written.
    Eio,
    /// Half the write (rounded down to 512 bytes) lands, then ENOSPC: what
    /// `write_all` sees when the disk fills during a write.
    ShortWrite,
}

impl IoFault {
    /// Every kind.
    pub const ALL: [IoFault; 3] = [IoFault::Enospc, IoFault::Eio, IoFault::ShortWrite];

    /// Name as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            IoFault::Enospc => "enospc",
            IoFault::Eio => "eio",
            IoFault::ShortWrite => "short-write",
        }
    }

    /// Bytes of a `len`-byte write that land.
    pub fn landed(self, len: usize) -> usize {
        match self {
            IoFault::ShortWrite => len / 2 / 512 * 512,
            _ => 0,
        }
    }

    fn error(self, index: usize, offset: u64, len: usize) -> io::Error {
        let (kind, what) = match self {
            IoFault::Enospc => (
                io::ErrorKind::StorageFull,
                "No space left on device (os error 28)",
            ),
            IoFault::Eio => (io::ErrorKind::Other, "Input/output error (os error 5)"),
            IoFault::ShortWrite => (
                io::ErrorKind::StorageFull,
                "short write, then No space left on device (os error 28)",
            ),
        };
        io::Error::new(
            kind,
            format!(
                "{what}: write {index} ({len} bytes at {offset:#x}), {} landed (simulated {})",
                self.landed(len),
                self.name()
            ),
        )
    }
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

/// The thread pool the digest hashes subtrees on (one thread per CPU),
/// built once; `None` when no thread can be started (a process limit),
/// and the subtrees are then hashed on the calling thread: the digest is
/// the same either way (BLAKE3 is a tree hash). rayon's global pool
/// would panic instead.
fn hash_pool() -> Option<&'static rayon_core::ThreadPool> {
    static POOL: std::sync::OnceLock<Option<rayon_core::ThreadPool>> = std::sync::OnceLock::new();
    POOL.get_or_init(|| rayon_core::ThreadPoolBuilder::new().build().ok())
        .as_ref()
}

/// Whether chunk `ci` is set in a written-chunks bitmap.
fn chunk_written(written: &[u64], ci: u64) -> bool {
    written
        .get((ci / 64) as usize)
        .is_some_and(|w| w >> (ci % 64) & 1 == 1)
}

/// An in-memory file's bytes: [`SEGMENT`]-byte segments from the
/// [`pool`](super::pool), taken as writes reach them, so holes of a
/// segment's size cost nothing. A segment may be recycled and hold
/// another file's bytes: only chunks the file wrote (its `written`
/// bitmap) are ever read, and a chunk's first write zeroes the bytes of
/// it the write leaves (each slot knows which of its chunks were
/// written), so every byte of a written chunk is either written or zero.
///
/// Writer channels write disjoint ranges at once through `&self`
/// ([`SharedWrite`]): each segment has its own lock (taken once per
/// segment a write or read touches, at most 2 MiB), the list of segments
/// a reader-writer lock taken for writing only to add one.
#[derive(Debug, Default)]
struct Memory {
    segments: RwLock<Vec<Option<Mutex<Slot>>>>,
}

/// Chunks per segment.
const SEGMENT_CHUNKS: usize = SEGMENT / CHUNK;

/// One segment of a file, which of its chunks this file wrote, and
/// which of the others are known to hold zeros (all of them in a fresh
/// segment; in a recycled one those the digest zeroed,
/// [`Slot::zero_holes`]).
#[derive(Debug)]
struct Slot {
    seg: Segment,
    written: [u64; SEGMENT_CHUNKS / 64],
    zeroed: [u64; SEGMENT_CHUNKS / 64],
}

impl Slot {
    fn new(seg: Segment) -> Slot {
        let zeroed = if seg.fresh() { u64::MAX } else { 0 };
        Slot {
            seg,
            written: [0; SEGMENT_CHUNKS / 64],
            zeroed: [zeroed; SEGMENT_CHUNKS / 64],
        }
    }

    /// Zero the chunks `first..end` this file never wrote that may still
    /// hold a previous file's bytes, so the range holds the file's
    /// contents, holes as zeros.
    fn zero_holes(&mut self, first: usize, end: usize) {
        for c in first..end {
            let bit = 1u64 << (c % 64);
            if (self.written[c / 64] | self.zeroed[c / 64]) & bit == 0 {
                self.seg.bytes_mut()[c * CHUNK..(c + 1) * CHUNK].fill(0);
                self.zeroed[c / 64] |= bit;
            }
        }
    }

    /// Write `data` at `at` (inside this segment).
    fn write(&mut self, at: usize, data: &[u8]) {
        let end = at + data.len();
        let (first, last) = (at / CHUNK, (end - 1) / CHUNK);
        let bytes = self.seg.bytes_mut();
        // A chunk written for the first time: zero what this write leaves
        // of it (the segment may hold a previous file's bytes).
        for c in [first, last] {
            if self.written[c / 64] >> (c % 64) & 1 == 0 {
                let (cs, ce) = (c * CHUNK, (c + 1) * CHUNK);
                bytes[cs..at.clamp(cs, ce)].fill(0);
                bytes[end.clamp(cs, ce)..ce].fill(0);
            }
        }
        super::simd::copy_streaming(&mut bytes[at..end], data);
        for c in first..=last {
            self.written[c / 64] |= 1 << (c % 64);
        }
    }
}

/// Walk `[pos, pos + len)` a segment's piece at a time: `f(segment
/// index, offset in it, bytes)`.
fn segment_pieces(pos: u64, len: usize, mut f: impl FnMut(usize, usize, usize)) {
    let mut done = 0;
    while done < len {
        let at = pos + done as u64;
        let (si, so) = (
            (at / SEGMENT as u64) as usize,
            (at % SEGMENT as u64) as usize,
        );
        let n = (SEGMENT - so).min(len - done);
        f(si, so, n);
        done += n;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Memory {
    /// Write `data` at `offset`, a segment's piece at a time, taking
    /// segments as needed.
    fn write(&self, offset: u64, data: &[u8]) {
        let mut done = 0;
        while done < data.len() {
            let at = offset + done as u64;
            let (si, so) = (
                (at / SEGMENT as u64) as usize,
                (at % SEGMENT as u64) as usize,
            );
            let n = (SEGMENT - so).min(data.len() - done);
            {
                let segs = self.segments.read().unwrap_or_else(|e| e.into_inner());
                if let Some(Some(slot)) = segs.get(si) {
                    lock(slot).write(so, &data[done..done + n]);
                    done += n;
                    continue;
                }
            }
            let mut segs = self.segments.write().unwrap_or_else(|e| e.into_inner());
            if segs.len() <= si {
                segs.resize_with(si + 1, || None);
            }
            segs[si].get_or_insert_with(|| Mutex::new(Slot::new(Segment::take())));
            // Written on the next turn, under the read lock.
        }
    }

    /// The stored bytes `[pos, pos + len)`, a segment's piece at a time;
    /// the range must lie in written chunks.
    fn for_each(&self, pos: u64, len: usize, mut f: impl FnMut(&[u8])) {
        let segs = self.segments.read().unwrap_or_else(|e| e.into_inner());
        segment_pieces(pos, len, |si, so, n| {
            let slot = segs[si].as_ref().expect("a written chunk has its segment");
            f(&lock(slot).seg.bytes()[so..so + n]);
        });
    }

    /// The file's contents `[pos, pos + len)` (whole chunks; holes as
    /// zeros, zeroed in place where a recycled segment holds other
    /// bytes) into `h`, a segment's piece at a time.
    fn hash_range(&self, pos: u64, len: usize, h: &mut blake3::Hasher) {
        let segs = self.segments.read().unwrap_or_else(|e| e.into_inner());
        segment_pieces(pos, len, |si, so, n| match segs.get(si) {
            Some(Some(slot)) => {
                let mut slot = lock(slot);
                slot.zero_holes(so / CHUNK, (so + n).div_ceil(CHUNK));
                h.update(&slot.seg.bytes()[so..so + n]);
            }
            // A segment no write reached: all holes.
            _ => {
                for z in (0..n).step_by(ZEROS.len()) {
                    h.update(&ZEROS[..(n - z).min(ZEROS.len())]);
                }
            }
        });
    }

    /// The bytes `offset..offset + len` in order, as pieces inside one
    /// segment each: `f(Some(bytes))` for written chunks, where they lie,
    /// `f(None, n)` for `n` bytes of chunks never written (zeros).
    fn pieces(
        &self,
        written: &[u64],
        offset: u64,
        len: usize,
        mut f: impl FnMut(Option<&[u8]>, usize),
    ) {
        let chunk = CHUNK as u64;
        let mut done = 0;
        while done < len {
            let pos = offset + done as u64;
            let ci = pos / chunk;
            let w = chunk_written(written, ci);
            // As far as the chunks stay written (or not), in this segment.
            let seg_end = (pos / SEGMENT as u64 + 1) * SEGMENT as u64;
            let want_end = pos + (len - done) as u64;
            let mut stop = (ci + 1) * chunk;
            while stop < seg_end.min(want_end) && chunk_written(written, stop / chunk) == w {
                stop += chunk;
            }
            let n = (stop.min(seg_end).min(want_end) - pos) as usize;
            if w {
                self.for_each(pos, n, |m| f(Some(m), n));
            } else {
                f(None, n);
            }
            done += n;
        }
    }

    /// Fill `buf` from `offset`: written chunks from memory, the rest as
    /// zeros.
    fn read(&self, written: &[u64], offset: u64, buf: &mut [u8]) {
        let mut done = 0;
        self.pieces(written, offset, buf.len(), |piece, n| {
            let out = &mut buf[done..done + n];
            match piece {
                Some(m) => out.copy_from_slice(m),
                None => out.fill(0),
            }
            done += n;
        });
    }
}

/// Zeros lent for chunks never written ([`SimFile`]'s `lend`).
static ZEROS: [u8; CHUNK * 64] = [0; CHUNK * 64];

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

    /// BLAKE3 of the logical contents, as the stream
    ///
    /// ```text
    /// G_1 ‖ … ‖ G_k ‖ W ‖ len
    /// ```
    ///
    /// where `G_i` are the 64 KiB granules of the file ([`GRANULE`]), in
    /// file order, that hold a written chunk (their unwritten chunks and
    /// anything past the end as zeros), `W` the written-chunk bitmap (bit
    /// `c % 64` of little-endian word `c / 64` set when 4 KiB chunk `c`
    /// was written, one word per 64 chunks up to the end of the file) and
    /// `len` the file length, little-endian. Holes and written zeros
    /// differ, as they do on disk; granules no write reached cost
    /// nothing. Every granule starts at a multiple of 64 KiB of the
    /// stream, so BLAKE3 hashes it 16 chunks at a time with no partial
    /// chunk at any piece's edge. In memory the granules are hashed where
    /// they lie; on disk they are read 1 MiB at a time. The stream is
    /// hashed a 1 MiB subtree per task on every CPU
    /// ([`tree_hash`](super::tree_hash): BLAKE3 is a tree hash, so the
    /// result is the serial one); it depends on the contents only, not
    /// on the store.
    pub fn content_hash(&self) -> blake3::Hash {
        super::stages::timed(super::stages::Stage::Hash, || self.hash_contents())
    }

    /// Indexes of the granules holding a written chunk, in order.
    fn written_granules(&self) -> Vec<u64> {
        const PER_WORD: usize = 64 / GRANULE_CHUNKS;
        const MASK: u64 = (1 << GRANULE_CHUNKS) - 1;
        let mut out = Vec::new();
        for (wi, &w) in self.written.iter().enumerate() {
            for g in 0..PER_WORD {
                if (w >> (g * GRANULE_CHUNKS)) & MASK != 0 {
                    out.push((wi * PER_WORD + g) as u64);
                }
            }
        }
        out
    }

    fn hash_contents(&self) -> blake3::Hash {
        let granules = self.written_granules();
        let data_len = granules.len() as u64 * GRANULE as u64;
        // W and len.
        let words = self.len.div_ceil(CHUNK as u64).div_ceil(64) as usize;
        let mut trailer = Vec::with_capacity(8 * words + 8);
        for wi in 0..words {
            let w = self.written.get(wi).copied().unwrap_or(0);
            trailer.extend_from_slice(&w.to_le_bytes());
        }
        trailer.extend_from_slice(&self.len.to_le_bytes());
        let g = GRANULE as u64;
        // The stream's bytes `start..start + n`, into `h`: granules that
        // follow each other in the file in one piece.
        let feed = |start: u64, n: u64, h: &mut blake3::Hasher| {
            let (mut pos, stop) = (start, start + n);
            let data_stop = stop.min(data_len);
            while pos < data_stop {
                let i = (pos / g) as usize;
                let mut j = i + 1;
                while (j as u64) * g < data_stop && granules[j] == granules[j - 1] + 1 {
                    j += 1;
                }
                let end = (j as u64 * g).min(data_stop);
                self.hash_file_bytes(granules[i] * g + pos % g, (end - pos) as usize, h);
                pos = end;
            }
            if pos < stop {
                h.update(&trailer[(pos - data_len) as usize..(stop - data_len) as usize]);
            }
        };
        super::tree_hash::hash(data_len + trailer.len() as u64, hash_pool(), &feed)
    }

    /// The file's contents `[offset, offset + n)`, holes and anything past
    /// the end as zeros, into `h`: in memory where they lie; on disk read
    /// 1 MiB at a time.
    fn hash_file_bytes(&self, offset: u64, n: usize, h: &mut blake3::Hasher) {
        if let Store::Memory(mem) = &self.store {
            mem.hash_range(offset, n, h);
            return;
        }
        let mut buf = vec![0u8; n.min(1 << 20)];
        let mut done = 0;
        while done < n {
            let b = &mut buf[..(n - done).min(1 << 20)];
            let got = self
                .read_at(offset + done as u64, b)
                .expect("reading the simulated file");
            b[got..].fill(0);
            h.update(b);
            done += b.len();
        }
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
