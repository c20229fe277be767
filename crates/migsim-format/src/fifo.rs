//! A map bounded by entry count and by bytes, dropping the oldest entry
//! first: the memos that keep parsed vmdesc trees (`vmdesc::ParseMemo`)
//! and the fuzz targets' valid files across inputs; and [`BytesHash`], a
//! hasher for long byte-string keys that costs little under the fuzz
//! targets' coverage instrumentation.

use std::borrow::Borrow;
use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hash, Hasher};

/// At most `max_entries` entries of at most `max_bytes` together (each
/// entry's size as given to [`FifoMap::insert`]), oldest dropped first.
/// `S` hashes the keys.
#[derive(Debug)]
pub struct FifoMap<K, V, S = RandomState> {
    map: HashMap<K, (V, usize), S>,
    order: VecDeque<K>,
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
}

impl<K: Hash + Eq + Clone, V> FifoMap<K, V> {
    /// An empty map with these bounds.
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        Self::with_hasher(max_entries, max_bytes, RandomState::new())
    }
}

impl<K: Hash + Eq + Clone, V, S: BuildHasher> FifoMap<K, V, S> {
    /// An empty map with these bounds, hashing keys with `hasher`.
    pub fn with_hasher(max_entries: usize, max_bytes: usize, hasher: S) -> Self {
        Self {
            map: HashMap::with_hasher(hasher),
            order: VecDeque::new(),
            bytes: 0,
            max_entries,
            max_bytes,
        }
    }

    /// The value kept under `key`.
    pub fn get<Q: Hash + Eq + ?Sized>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        self.map.get(key).map(|(v, _)| v)
    }

    /// Keep `value` of `size` bytes under `key`, dropping the oldest
    /// entries until it fits; nothing when `key` is kept already (another
    /// thread's answer stays) or `size` exceeds the byte bound.
    pub fn insert(&mut self, key: K, value: V, size: usize) {
        if size > self.max_bytes || self.map.contains_key(&key) {
            return;
        }
        while self.order.len() >= self.max_entries || self.bytes + size > self.max_bytes {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some((_, n)) = self.map.remove(&old) {
                self.bytes -= n;
            }
        }
        self.bytes += size;
        self.order.push_back(key.clone());
        self.map.insert(key, (value, size));
    }

    /// The keys kept, oldest first.
    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.order.iter()
    }

    /// Entries kept.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Bytes of the entries kept together.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

/// Hashes byte strings (keys such as `Arc<[u8]>` or `Vec<u8>`, looked up
/// by `&[u8]`) 32 bytes a step: four 64-bit lanes, each word xor-ed in,
/// multiplied and rotated, then folded. SipHash, the standard map's,
/// takes a byte-wise path through code that the fuzz targets' build
/// instruments compare by compare; a 30 KiB vmdesc JSON cost a tenth of a
/// `reader` input in hashing alone. Not keyed: fine where the keys are
/// not chosen to collide (a collision costs a byte comparison, never a
/// wrong answer: the map compares keys).
#[derive(Debug, Clone, Copy, Default)]
pub struct BytesHash;

impl BuildHasher for BytesHash {
    type Hasher = BytesHasher;
    fn build_hasher(&self) -> BytesHasher {
        BytesHasher(SEED)
    }
}

/// The [`BytesHash`] state.
#[derive(Debug, Clone, Copy)]
pub struct BytesHasher(u64);

const SEED: u64 = 0x243f_6a88_85a3_08d3;
const MUL: u64 = 0x9e37_79b9_7f4a_7c15;

/// One word into a lane: the multiply carries each bit upwards, the
/// shift carries the high bits down.
fn mix(h: u64, word: u64) -> u64 {
    let x = (h ^ word).wrapping_mul(MUL);
    x ^ (x >> 29)
}

/// MurmurHash3's 64-bit finaliser: every input bit reaches every output
/// bit.
fn avalanche(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

fn word(b: &[u8]) -> u64 {
    u64::from_le_bytes(b.try_into().expect("8 bytes"))
}

impl Hasher for BytesHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut lanes = [self.0, SEED ^ 1, SEED ^ 2, SEED ^ 3];
        let (blocks, rest) = bytes.as_chunks::<32>();
        for b in blocks {
            lanes[0] = mix(lanes[0], word(&b[0..8]));
            lanes[1] = mix(lanes[1], word(&b[8..16]));
            lanes[2] = mix(lanes[2], word(&b[16..24]));
            lanes[3] = mix(lanes[3], word(&b[24..32]));
        }
        let mut last = [0u8; 32];
        last[..rest.len()].copy_from_slice(rest);
        let mut h = mix(SEED, bytes.len() as u64);
        for (lane, w) in lanes.iter().zip(last.as_chunks::<8>().0) {
            h = mix(h ^ avalanche(*lane), u64::from_le_bytes(*w));
        }
        self.0 = avalanche(h);
    }

    fn write_usize(&mut self, n: usize) {
        self.0 = mix(self.0, n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every byte and the length reach the hash: strings that differ in
    /// one byte anywhere, or in length by trailing zeros, hash apart; the
    /// same bytes hash the same.
    #[test]
    fn bytes_hash_sees_every_byte_and_the_length() {
        let h = |b: &[u8]| BytesHash.hash_one(b);
        let base: Vec<u8> = (0..200u32).map(|i| (i * 37) as u8).collect();
        let mut seen = std::collections::HashSet::new();
        for len in 0..base.len() {
            // A key kept as `Arc<[u8]>` is found by its `&[u8]`.
            let kept: std::sync::Arc<[u8]> = base[..len].into();
            assert_eq!(h(&base[..len]), BytesHash.hash_one(&kept));
            assert!(seen.insert(h(&base[..len])), "length {len}");
        }
        for at in 0..base.len() {
            for bit in [0x01, 0x80] {
                let mut m = base.clone();
                m[at] ^= bit;
                assert!(seen.insert(h(&m)), "byte {at} bit {bit:#x}");
            }
        }
        let zeros = |n: usize| vec![0u8; n];
        assert_ne!(h(&zeros(31)), h(&zeros(32)));
        assert_ne!(h(&zeros(32)), h(&zeros(33)));
    }

    #[test]
    fn keeps_its_bounds_and_drops_the_oldest_first() {
        let mut m = FifoMap::new(3, 100);
        for k in 0..5u32 {
            m.insert(k, k * 10, 30);
            assert!(
                m.len() <= 3 && m.bytes() <= 100,
                "{} entries, {} bytes",
                m.len(),
                m.bytes()
            );
            assert_eq!(m.bytes(), 30 * m.len());
        }
        assert_eq!(
            (m.get(&1), m.get(&2), m.get(&4)),
            (None, Some(&20), Some(&40))
        );
        assert_eq!(m.keys().copied().collect::<Vec<_>>(), [2, 3, 4]);
        // Bytes bind too: a 70-byte entry leaves room for one of 30.
        m.insert(9, 90, 70);
        assert_eq!((m.len(), m.bytes(), m.get(&3)), (2, 100, None));
        // Too large, or kept already: nothing changes.
        m.insert(10, 0, 101);
        m.insert(9, 0, 1);
        assert_eq!((m.len(), m.bytes(), m.get(&9)), (2, 100, Some(&90)));
    }
}
