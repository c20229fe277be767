//! A file's content hash (the digest's costly part): the written granules,
//! then the written-chunks bitmap and the length, hashed as one BLAKE3
//! tree on every CPU, wherever the bytes lie.

use super::{CHUNK, GRANULE, SimFile, Store};
use migsim_format::io::MigFile;

/// The thread pool the digest hashes subtrees on (one thread per CPU),
/// built once; `None` when no thread can be started (a process limit),
/// and the subtrees are then hashed on the calling thread: the digest is
/// the same either way (BLAKE3 is a tree hash). rayon's global pool
/// would panic instead.
pub(super) fn hash_pool() -> Option<&'static rayon_core::ThreadPool> {
    static POOL: std::sync::OnceLock<Option<rayon_core::ThreadPool>> = std::sync::OnceLock::new();
    POOL.get_or_init(|| rayon_core::ThreadPoolBuilder::new().build().ok())
        .as_ref()
}

impl SimFile {
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
        crate::sim::stages::timed(crate::sim::stages::Stage::Hash, || self.hash_contents())
    }

    /// Indexes of the granules holding a written chunk, in order.
    fn written_granules(&self) -> Vec<u64> {
        const PER_WORD: usize = 64 / super::GRANULE_CHUNKS;
        const MASK: u64 = (1 << super::GRANULE_CHUNKS) - 1;
        let mut out = Vec::new();
        for (wi, &w) in self.written.iter().enumerate() {
            for g in 0..PER_WORD {
                if (w >> (g * super::GRANULE_CHUNKS)) & MASK != 0 {
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
        crate::sim::tree_hash::hash(data_len + trailer.len() as u64, hash_pool(), &feed)
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
}
