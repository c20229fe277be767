//! BLAKE3 of a long byte stream that does not lie in one place (the
//! digest's stream of a simulated file: a few header words and the
//! file's segments), hashed a subtree per task on several threads, with
//! exactly the result of hashing the stream serially.
//!
//! BLAKE3 is a binary tree over 1 KiB chunks whose left subtree always
//! holds the largest power of two of chunks shorter than the input
//! (`hazmat::left_subtree_len`). So the stream is split the same way,
//! down to subtrees of at most [`LEAF`] bytes; each is hashed by a
//! `Hasher` told its offset in the stream (`HasherExt::set_input_offset`,
//! `finalize_non_root`), and the chaining values are merged back up
//! (`merge_subtrees_non_root`, then `merge_subtrees_root` at the top).
//! Tested against `blake3::hash` of the whole stream.

use blake3::Hasher;
use blake3::hazmat::{
    ChainingValue, HasherExt, Mode, left_subtree_len, merge_subtrees_non_root, merge_subtrees_root,
};

/// Subtrees up to this long are hashed by one task (1 MiB: long enough
/// for BLAKE3's SIMD to hash many chunks at once, short enough that
/// 2 CPUs share a 36 MiB guest's file evenly).
pub const LEAF: u64 = 1 << 20;

/// BLAKE3 of the `len`-byte stream that `feed(start, n, hasher)` hands to
/// `hasher` a range at a time (it must `update` it with exactly the
/// stream's bytes `start..start + n`). Subtrees run on `pool`'s threads
/// (`rayon_core::join`), or one after another on the calling thread
/// without one; the hash is the same either way.
pub fn hash<F>(len: u64, pool: Option<&rayon_core::ThreadPool>, feed: &F) -> blake3::Hash
where
    F: Fn(u64, u64, &mut Hasher) + Sync,
{
    if len <= LEAF {
        let mut h = Hasher::new();
        feed(0, len, &mut h);
        return h.finalize();
    }
    let split = left_subtree_len(len);
    let halves = |parallel| {
        join(
            parallel,
            || subtree(0, split, parallel, feed),
            || subtree(split, len - split, parallel, feed),
        )
    };
    let (left, right) = match pool {
        Some(pool) => pool.install(|| halves(true)),
        None => halves(false),
    };
    merge_subtrees_root(&left, &right, Mode::Hash)
}

/// The chaining value of the subtree of `len` bytes at `start` (a chunk
/// boundary, `len` within the subtree's maximum: both hold for every
/// split [`hash`] makes).
fn subtree<F>(start: u64, len: u64, parallel: bool, feed: &F) -> ChainingValue
where
    F: Fn(u64, u64, &mut Hasher) + Sync,
{
    if len <= LEAF {
        let mut h = Hasher::new();
        h.set_input_offset(start);
        feed(start, len, &mut h);
        return h.finalize_non_root();
    }
    let split = left_subtree_len(len);
    let (left, right) = join(
        parallel,
        || subtree(start, split, parallel, feed),
        || subtree(start + split, len - split, parallel, feed),
    );
    merge_subtrees_non_root(&left, &right, Mode::Hash)
}

/// Both, on two of the pool's threads when `parallel` (only ever inside
/// `ThreadPool::install`, so rayon's global pool is never started).
fn join<A, B>(parallel: bool, a: impl FnOnce() -> A + Send, b: impl FnOnce() -> B + Send) -> (A, B)
where
    A: Send,
    B: Send,
{
    if parallel {
        rayon_core::join(a, b)
    } else {
        (a(), b())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream of `len` bytes that is a pure function of the offset.
    fn byte(at: u64) -> u8 {
        (at.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8
    }

    fn feed(start: u64, n: u64, h: &mut Hasher) {
        // In uneven pieces, as a file's segments and headers come.
        let mut at = start;
        while at < start + n {
            let piece = (start + n - at).min(1 + at % 7000);
            let bytes: Vec<u8> = (at..at + piece).map(byte).collect();
            h.update(&bytes);
            at += piece;
        }
    }

    #[test]
    fn the_split_hash_is_blake3_of_the_whole_stream() {
        let pool = rayon_core::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let chunk = blake3::CHUNK_LEN as u64;
        for len in [
            0,
            1,
            chunk,
            LEAF,
            LEAF + 1,
            2 * LEAF,
            2 * LEAF + chunk - 1,
            3 * LEAF + 24,
            8 * LEAF + 5 * chunk + 7,
        ] {
            let whole: Vec<u8> = (0..len).map(byte).collect();
            let want = blake3::hash(&whole);
            assert_eq!(hash(len, Some(&pool), &feed), want, "{len} bytes, pool");
            assert_eq!(hash(len, None, &feed), want, "{len} bytes, no pool");
        }
    }
}
