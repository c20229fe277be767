//! A map bounded by entry count and by bytes, dropping the oldest entry
//! first: the memos that keep parsed vmdesc trees (`vmdesc::ParseMemo`)
//! and the fuzz targets' valid files across inputs.

use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// At most `max_entries` entries of at most `max_bytes` together (each
/// entry's size as given to [`FifoMap::insert`]), oldest dropped first.
#[derive(Debug)]
pub struct FifoMap<K, V> {
    map: HashMap<K, (V, usize)>,
    order: VecDeque<K>,
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
}

impl<K: Hash + Eq + Clone, V> FifoMap<K, V> {
    /// An empty map with these bounds.
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        Self {
            map: HashMap::new(),
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

#[cfg(test)]
mod tests {
    use super::*;

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
