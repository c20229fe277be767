//! A sparse in-memory file: the fuzz targets' and `migsim qemu fuzz`'s
//! migration files, mutated in place.

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

/// One written chunk, shared by clones until one of them writes to it.
type Chunk = Arc<[u8; CHUNK]>;

static ZERO_CHUNK: [u8; CHUNK] = [0; CHUNK];

/// An in-memory file that can be truncated and extended: the
/// [`CHUNK`]-byte chunks written, by index (holes read as zeros, so an
/// extension or the writer's 1 MiB-aligned gaps cost nothing). A clone
/// shares the chunk map and every chunk until it writes: the mutation
/// target clones a remembered valid file for every input and copies only
/// the map and the chunks its mutations touch. The reader reads it in
/// place, a chunk at a time ([`MigFile::slice_at`], [`MigFile::lend`]).
#[derive(Clone, Debug, Default)]
pub(crate) struct SparseFile {
    len: u64,
    chunks: Arc<BTreeMap<u64, Chunk>>,
}

impl SparseFile {
    pub(crate) fn set_len(&mut self, len: u64) {
        if len < self.len {
            let chunks = Arc::make_mut(&mut self.chunks);
            chunks.split_off(&len.div_ceil(CHUNK as u64));
            let cut = (len % CHUNK as u64) as usize;
            if cut > 0
                && let Some(c) = chunks.get_mut(&(len / CHUNK as u64))
            {
                Arc::make_mut(c)[cut..].fill(0);
            }
        }
        self.len = len;
    }

    /// Bytes held in memory (shared with clones or not): what the fuzz
    /// targets' cache of valid files counts.
    #[cfg(any(test, feature = "fuzz"))]
    pub(crate) fn stored_bytes(&self) -> usize {
        self.chunks.len() * CHUNK
    }

    pub(crate) fn to_vec(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.len as usize];
        self.read_at(0, &mut out).expect("in memory");
        out
    }

    /// Chunk `ci`'s bytes (zeros for a hole).
    fn chunk(&self, ci: u64) -> &[u8; CHUNK] {
        self.chunks.get(&ci).map_or(&ZERO_CHUNK, |c| c)
    }
}

impl MigFile for SparseFile {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "write past 2^64"))?;
        if data.is_empty() {
            return Ok(());
        }
        let chunks = Arc::make_mut(&mut self.chunks);
        for_each_chunk(offset, data.len(), |ci, co, r| {
            let chunk = chunks.entry(ci).or_insert_with(|| Arc::new([0u8; CHUNK]));
            Arc::make_mut(chunk)[co..co + r.len()].copy_from_slice(&data[r]);
        });
        self.len = self.len.max(end);
        Ok(())
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        if offset >= self.len {
            return Ok(0);
        }
        let n = buf.len().min((self.len - offset) as usize);
        for_each_chunk(offset, n, |ci, co, r| {
            buf[r.clone()].copy_from_slice(&self.chunk(ci)[co..co + r.len()]);
        });
        Ok(n)
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn seekable(&self) -> bool {
        true
    }

    /// A range inside one chunk, in place.
    fn slice_at(&self, offset: u64, n: usize) -> Option<&[u8]> {
        let (ci, co) = (offset / CHUNK as u64, (offset % CHUNK as u64) as usize);
        let fits = co + n <= CHUNK && offset.checked_add(n as u64)? <= self.len;
        fits.then(|| &self.chunk(ci)[co..co + n])
    }

    /// Chunk by chunk, in place (holes as zeros).
    fn lend(&self, offset: u64, len: usize, f: &mut dyn FnMut(&[u8])) -> bool {
        if offset
            .checked_add(len as u64)
            .is_none_or(|end| end > self.len)
        {
            return false;
        }
        for_each_chunk(
            offset,
            len,
            |ci, co, r| f(&self.chunk(ci)[co..co + r.len()]),
        );
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes, truncations and extensions give the bytes a plain vector
    /// given the same changes holds, read whole, in pieces, in place
    /// (inside a chunk) and lent; a clone keeps its bytes when the
    /// original changes after it.
    #[test]
    fn reads_back_what_a_plain_vector_holds() {
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let span = 64 * CHUNK as u64;
        let mut file = SparseFile::default();
        let mut want: Vec<u8> = Vec::new();
        let mut clones: Vec<(SparseFile, Vec<u8>)> = Vec::new();
        let (mut in_place, mut lent) = (0, 0);
        for step in 0..400 {
            match next(4) {
                0 | 1 => {
                    let at = next(span);
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
                    let len = next(span + 4 * CHUNK as u64);
                    file.set_len(len);
                    want.resize(len as usize, 0);
                }
                _ => clones.push((file.clone(), want.clone())),
            }
            assert_eq!(file.len(), want.len() as u64, "step {step}");
            let at = next(want.len() as u64 + 1);
            let mut piece = vec![0xee; next(2 * CHUNK as u64) as usize];
            let n = file.read_at(at, &mut piece).unwrap();
            let upto = (at as usize + piece.len()).min(want.len());
            assert_eq!(
                &piece[..n],
                &want[at as usize..upto],
                "step {step}: piece at {at}"
            );
            let small = next(64) as usize;
            match file.slice_at(at, small) {
                Some(here) => {
                    in_place += 1;
                    assert_eq!(here, &want[at as usize..at as usize + small], "step {step}");
                }
                None => assert!(
                    at as usize + small > want.len() || (at as usize % CHUNK) + small > CHUNK,
                    "step {step}: {small} bytes at {at} inside one chunk not in place"
                ),
            }
            let mut got = Vec::new();
            if file.lend(at, piece.len(), &mut |p| got.extend_from_slice(p)) {
                lent += 1;
                assert_eq!(
                    got,
                    &want[at as usize..at as usize + piece.len()],
                    "step {step}"
                );
            } else {
                assert!(upto < at as usize + piece.len(), "step {step}: not lent");
            }
        }
        assert!(file.to_vec() == want);
        assert!(clones.len() > 20 && in_place > 100 && lent > 100);
        for (i, (c, bytes)) in clones.iter().enumerate() {
            assert!(c.to_vec() == *bytes, "clone {i} changed with the original");
        }
    }

    /// A hole costs nothing: an extension stores no chunk, and chunks
    /// cut off by a truncation are dropped.
    #[test]
    fn holes_and_cut_chunks_are_not_stored() {
        let mut f = SparseFile::default();
        f.write_at(3 * CHUNK as u64, b"x").unwrap();
        assert_eq!(f.stored_bytes(), CHUNK);
        f.set_len(1 << 30);
        assert_eq!(f.stored_bytes(), CHUNK);
        assert_eq!(f.slice_at((1 << 30) - 8, 8), Some(&[0u8; 8][..]));
        f.set_len(3 * CHUNK as u64);
        assert_eq!(f.stored_bytes(), 0);
        f.set_len(4 * CHUNK as u64);
        assert_eq!(
            f.slice_at(3 * CHUNK as u64, 1),
            Some(&[0u8][..]),
            "cut bytes stay cut"
        );
    }
}
