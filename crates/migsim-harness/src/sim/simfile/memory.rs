//! An in-memory file's bytes: segments of recycled memory taken as writes
//! reach them, a lock a segment for the writer's channels.

use std::sync::{Mutex, RwLock};

use super::CHUNK;
use crate::sim::pool::{SEGMENT, Segment};

/// Whether chunk `ci` is set in a written-chunks bitmap.
pub(super) fn chunk_written(written: &[u64], ci: u64) -> bool {
    written
        .get((ci / 64) as usize)
        .is_some_and(|w| w >> (ci % 64) & 1 == 1)
}

/// An in-memory file's bytes: [`SEGMENT`]-byte segments from the
/// [`pool`](crate::sim::pool), taken as writes reach them, so holes of a
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
pub(super) struct Memory {
    segments: RwLock<Vec<Option<Mutex<Slot>>>>,
}

/// Chunks per segment.
pub(super) const SEGMENT_CHUNKS: usize = SEGMENT / CHUNK;

/// One segment of a file, which of its chunks this file wrote, and
/// which of the others are known to hold zeros (all of them in a fresh
/// segment; in a recycled one those the digest zeroed,
/// [`Slot::zero_holes`]).
#[derive(Debug)]
pub(super) struct Slot {
    seg: Segment,
    written: [u64; SEGMENT_CHUNKS / 64],
    zeroed: [u64; SEGMENT_CHUNKS / 64],
}

impl Slot {
    pub(super) fn new(seg: Segment) -> Slot {
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
    pub(super) fn zero_holes(&mut self, first: usize, end: usize) {
        for c in first..end {
            let bit = 1u64 << (c % 64);
            if (self.written[c / 64] | self.zeroed[c / 64]) & bit == 0 {
                self.seg.bytes_mut()[c * CHUNK..(c + 1) * CHUNK].fill(0);
                self.zeroed[c / 64] |= bit;
            }
        }
    }

    /// Write `data` at `at` (inside this segment).
    pub(super) fn write(&mut self, at: usize, data: &[u8]) {
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
        crate::sim::simd::copy_streaming(&mut bytes[at..end], data);
        for c in first..=last {
            self.written[c / 64] |= 1 << (c % 64);
        }
    }
}

/// Walk `[pos, pos + len)` a segment's piece at a time: `f(segment
/// index, offset in it, bytes)`.
pub(super) fn segment_pieces(pos: u64, len: usize, mut f: impl FnMut(usize, usize, usize)) {
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

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Memory {
    /// Write `data` at `offset`, a segment's piece at a time, taking
    /// segments as needed.
    pub(super) fn write(&self, offset: u64, data: &[u8]) {
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
    pub(super) fn for_each(&self, pos: u64, len: usize, mut f: impl FnMut(&[u8])) {
        let segs = self.segments.read().unwrap_or_else(|e| e.into_inner());
        segment_pieces(pos, len, |si, so, n| {
            let slot = segs[si].as_ref().expect("a written chunk has its segment");
            f(&lock(slot).seg.bytes()[so..so + n]);
        });
    }

    /// The file's contents `[pos, pos + len)` (whole chunks; holes as
    /// zeros, zeroed in place where a recycled segment holds other
    /// bytes) into `h`, a segment's piece at a time.
    pub(super) fn hash_range(&self, pos: u64, len: usize, h: &mut blake3::Hasher) {
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
    pub(super) fn pieces(
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
    pub(super) fn read(&self, written: &[u64], offset: u64, buf: &mut [u8]) {
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
pub(super) static ZEROS: [u8; CHUNK * 64] = [0; CHUNK * 64];
