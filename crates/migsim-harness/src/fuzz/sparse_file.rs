//! A sparse in-memory file for the fuzz targets.

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;

use migsim_format::io::MigFile;

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

/// Files whose bytes end by this offset are kept as one slice
/// ([`MigFile::contiguous`]), so the reader reads them in place.
const FLAT_MAX: u64 = 1 << 20;

/// One written chunk, shared by clones until one of them writes to it.
type Chunk = Arc<[u8; CHUNK]>;

static ZERO_CHUNK: [u8; CHUNK] = [0; CHUNK];

/// How a [`SparseFile`] keeps its bytes.
#[derive(Clone, Debug)]
enum Store {
    /// The bytes up to the last one written (a file whose writes all end
    /// by [`FLAT_MAX`]), shared by clones until one of them writes; zeros
    /// after them to the file's length (an extension costs nothing).
    Flat(Arc<Vec<u8>>),
    /// The written [`CHUNK`]-byte chunks by index (a file written past
    /// [`FLAT_MAX`]); holes read as zeros.
    Chunks(BTreeMap<u64, Chunk>),
}

/// An in-memory file that can be truncated and extended. A file written
/// only below [`FLAT_MAX`] (the compacted layouts) keeps its bytes as one
/// slice, which the reader reads in place, as it reads the `reader`
/// target's inputs, while nothing extends it past them; a file written
/// further (the writer's 1 MiB-aligned layout) keeps only the 4 KiB
/// chunks written, so a hole costs nothing. Either way a clone shares the
/// bytes until it writes: the mutation target clones a remembered valid
/// file for every input and copies only what its mutations touch (the
/// slice of a flat file, the touched chunks of a sparse one).
#[derive(Clone, Debug)]
pub(crate) struct SparseFile {
    len: u64,
    store: Store,
}

impl Default for SparseFile {
    fn default() -> Self {
        Self {
            len: 0,
            store: Store::Flat(Arc::default()),
        }
    }
}

impl SparseFile {
    pub(crate) fn set_len(&mut self, len: u64) {
        let old = std::mem::replace(&mut self.len, len);
        match &mut self.store {
            Store::Flat(bytes) => {
                if (len as usize) < bytes.len() {
                    match Arc::get_mut(bytes) {
                        Some(own) => own.truncate(len as usize),
                        None => *bytes = Arc::new(bytes[..len as usize].to_vec()),
                    }
                }
            }
            Store::Chunks(chunks) => {
                if len < old {
                    chunks.split_off(&len.div_ceil(CHUNK as u64));
                    let cut = (len % CHUNK as u64) as usize;
                    if let Some(c) = chunks.get_mut(&(len / CHUNK as u64)) {
                        Arc::make_mut(c)[cut..].fill(0);
                    }
                }
                // Cut back to where a slice can hold it: read in place.
                if len <= FLAT_MAX {
                    self.store = Store::Flat(Arc::new(self.to_vec()));
                }
            }
        }
    }

    /// Bytes held in memory (shared with clones or not).
    pub(crate) fn stored_bytes(&self) -> usize {
        match &self.store {
            Store::Flat(bytes) => bytes.len(),
            Store::Chunks(chunks) => chunks.len() * CHUNK,
        }
    }

    pub(crate) fn to_vec(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.len as usize];
        self.read_at(0, &mut out).expect("in memory");
        out
    }

    /// Keep the bytes as chunks from now on (a write past
    /// [`FLAT_MAX`]); chunks of zeros are holes.
    fn store_as_chunks(&mut self) {
        if let Store::Flat(bytes) = &self.store {
            let chunks = bytes
                .chunks(CHUNK)
                .enumerate()
                .filter(|(_, c)| *c != &ZERO_CHUNK[..c.len()])
                .map(|(i, c)| {
                    let mut chunk = [0u8; CHUNK];
                    chunk[..c.len()].copy_from_slice(c);
                    (i as u64, Arc::new(chunk))
                })
                .collect();
            self.store = Store::Chunks(chunks);
        }
    }
}

/// Fill `buf` from the sparse `chunks` at `offset`, zeros in holes.
fn read_chunks(chunks: &BTreeMap<u64, Chunk>, offset: u64, buf: &mut [u8]) {
    for_each_chunk(offset, buf.len(), |ci, co, r| match chunks.get(&ci) {
        Some(c) => buf[r.clone()].copy_from_slice(&c[co..co + r.len()]),
        None => buf[r].fill(0),
    });
}

impl MigFile for SparseFile {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "write past 2^64"))?;
        if end > FLAT_MAX {
            self.store_as_chunks();
        }
        match &mut self.store {
            Store::Flat(bytes) => {
                let bytes: &mut Vec<u8> = Arc::make_mut(bytes);
                if Vec::len(bytes) < end as usize {
                    bytes.resize(end as usize, 0);
                }
                bytes[offset as usize..end as usize].copy_from_slice(data);
            }
            Store::Chunks(chunks) => for_each_chunk(offset, data.len(), |ci, co, r| {
                let chunk = chunks.entry(ci).or_insert_with(|| Arc::new([0u8; CHUNK]));
                Arc::make_mut(chunk)[co..co + r.len()].copy_from_slice(&data[r]);
            }),
        }
        self.len = self.len.max(end);
        Ok(())
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        if offset >= self.len {
            return Ok(0);
        }
        let n = buf.len().min((self.len - offset) as usize);
        match &self.store {
            Store::Flat(bytes) => {
                let at = (offset as usize).min(bytes.len());
                let held = (bytes.len() - at).min(n);
                buf[..held].copy_from_slice(&bytes[at..at + held]);
                buf[held..n].fill(0);
            }
            Store::Chunks(chunks) => read_chunks(chunks, offset, &mut buf[..n]),
        }
        Ok(n)
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn seekable(&self) -> bool {
        true
    }

    fn contiguous(&self) -> Option<&[u8]> {
        match &self.store {
            Store::Flat(bytes) if bytes.len() as u64 == self.len => Some(bytes),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes, truncations and extensions across the flat bound give the
    /// bytes a plain vector given the same changes holds, read whole, in
    /// pieces and in place; a clone keeps its bytes when the original
    /// changes after it. A file written only below the bound and not
    /// extended is one slice.
    #[test]
    fn reads_back_what_a_plain_vector_holds_across_the_flat_bound() {
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let mut file = SparseFile::default();
        let mut want: Vec<u8> = Vec::new();
        let mut clones: Vec<(SparseFile, Vec<u8>)> = Vec::new();
        for step in 0..400 {
            match next(4) {
                0 | 1 => {
                    let at = next(FLAT_MAX + 3 * CHUNK as u64);
                    let data: Vec<u8> = (0..next(3 * CHUNK as u64))
                        .map(|i| (i as u8) ^ (step as u8) | 1)
                        .collect();
                    file.write_at(at, &data).unwrap();
                    let end = at as usize + data.len();
                    if want.len() < end {
                        want.resize(end, 0);
                    }
                    want[at as usize..end].copy_from_slice(&data);
                }
                2 => {
                    let len = next(FLAT_MAX + 4 * CHUNK as u64);
                    file.set_len(len);
                    want.resize(len as usize, 0);
                }
                _ => clones.push((file.clone(), want.clone())),
            }
            assert_eq!(file.len(), want.len() as u64, "step {step}");
            if let Some(all) = file.contiguous() {
                assert!(all == want, "step {step}: in place");
            }
            let at = next(want.len() as u64 + 1);
            let mut piece = vec![0xee; next(2 * CHUNK as u64) as usize];
            let n = file.read_at(at, &mut piece).unwrap();
            let expect = &want[at as usize..(at as usize + piece.len()).min(want.len())];
            assert_eq!(&piece[..n], expect, "step {step}: a piece at {at}");
        }
        assert!(file.to_vec() == want);
        assert!(clones.len() > 20);
        let mut small = SparseFile::default();
        small.write_at(100, b"abc").unwrap();
        assert_eq!(small.contiguous().map(<[u8]>::len), Some(103));
        small.set_len(5000);
        assert!(small.contiguous().is_none(), "zeros after the bytes");
        small.write_at(4999, b"z").unwrap();
        assert_eq!(small.contiguous().map(<[u8]>::len), Some(5000));
        small.write_at(FLAT_MAX, b"!").unwrap();
        assert!(small.contiguous().is_none(), "written past the bound");
        small.set_len(10);
        assert!(small.contiguous() == Some(&small.to_vec()[..]));
        for (i, (c, bytes)) in clones.iter().enumerate() {
            assert!(c.to_vec() == *bytes, "clone {i} changed with the original");
        }
    }
}
