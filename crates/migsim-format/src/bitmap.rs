//! A page bitmap: one bit per page, stored as 64-bit words.
//!
//! Serves both as the source's dirty bitmap and as the fixed-ram file
//! bitmap. On disk (fixed-ram) it is the raw dump of the words in
//! little-endian order, i.e. bit `i` is bit `i % 8` (LSB first) of byte
//! `i / 8`, exactly as QEMU on x86_64 writes it; bits at and past `len`
//! are zero.

/// One bit per page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageBitmap {
    words: Vec<u64>,
    len: u64,
}

impl PageBitmap {
    /// All bits clear, for `len` pages.
    pub fn new(len: u64) -> Self {
        Self {
            words: vec![0; len.div_ceil(64) as usize],
            len,
        }
    }

    /// All bits set, for `len` pages.
    pub fn full(len: u64) -> Self {
        let mut b = Self::new(len);
        b.words.iter_mut().for_each(|w| *w = u64::MAX);
        b.clear_tail();
        b
    }

    fn clear_tail(&mut self) {
        let rem = self.len % 64;
        if rem != 0
            && let Some(last) = self.words.last_mut()
        {
            *last &= (1u64 << rem) - 1;
        }
    }

    /// Number of pages covered.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the bitmap covers no page.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether page `i` is set. Pages past the end read as clear.
    pub fn get(&self, i: u64) -> bool {
        i < self.len && self.words[(i / 64) as usize] & (1 << (i % 64)) != 0
    }

    /// Set or clear page `i`. Panics if `i` is out of range (a caller bug).
    pub fn set(&mut self, i: u64, on: bool) {
        assert!(i < self.len, "page {i} out of bitmap range {}", self.len);
        let w = &mut self.words[(i / 64) as usize];
        if on {
            *w |= 1 << (i % 64);
        } else {
            *w &= !(1 << (i % 64));
        }
    }

    /// Set or clear pages `first..first + count` a word at a time. Panics
    /// if the range leaves the bitmap (a caller bug).
    pub fn set_range(&mut self, first: u64, count: u64, on: bool) {
        let end = first.checked_add(count).filter(|&e| e <= self.len);
        assert!(
            end.is_some(),
            "pages {first}+{count} out of bitmap range {}",
            self.len
        );
        let end = first + count;
        let mut i = first;
        while i < end {
            let (w, bit) = ((i / 64) as usize, i % 64);
            let n = (64 - bit).min(end - i);
            let mask = if n == 64 {
                u64::MAX
            } else {
                ((1u64 << n) - 1) << bit
            };
            if on {
                self.words[w] |= mask;
            } else {
                self.words[w] &= !mask;
            }
            i += n;
        }
    }

    /// Number of set bits.
    pub fn count_ones(&self) -> u64 {
        self.words.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    /// Indices of the set bits, ascending.
    pub fn iter_ones(&self) -> impl Iterator<Item = u64> + '_ {
        self.words.iter().enumerate().flat_map(|(wi, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let bit = w.trailing_zeros() as u64;
                w &= w - 1;
                Some(wi as u64 * 64 + bit)
            })
        })
    }

    /// Take the current contents and clear them (a dirty-bitmap sync).
    pub fn take(&mut self) -> PageBitmap {
        let empty = PageBitmap::new(self.len);
        std::mem::replace(self, empty)
    }

    /// The first set bit at or after `from` (QEMU's `find_next_bit`).
    pub fn next_one(&self, from: u64) -> Option<u64> {
        if from >= self.len {
            return None;
        }
        let mut wi = (from / 64) as usize;
        let mut w = self.words[wi] & (u64::MAX << (from % 64));
        loop {
            if w != 0 {
                let i = wi as u64 * 64 + u64::from(w.trailing_zeros());
                return (i < self.len).then_some(i);
            }
            wi += 1;
            w = *self.words.get(wi)?;
        }
    }

    /// Set every bit that is set in `other` (same length).
    pub fn or_assign(&mut self, other: &PageBitmap) {
        debug_assert_eq!(self.len, other.len);
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a |= *b;
        }
    }

    /// Size in bytes of the on-disk form: whole 64-bit words.
    pub fn encoded_len(pages: u64) -> u64 {
        pages.div_ceil(64) * 8
    }

    /// The on-disk form: little-endian 64-bit words.
    pub fn to_le_bytes(&self) -> Vec<u8> {
        self.words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    /// Parse the on-disk form for `len` pages. `bytes` must be exactly
    /// [`PageBitmap::encoded_len`] long. Bits at and past `len` are
    /// ignored (QEMU writes them as zero).
    pub fn from_le_bytes(bytes: &[u8], len: u64) -> Self {
        debug_assert_eq!(bytes.len() as u64, Self::encoded_len(len));
        let mut b = Self {
            words: bytes
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().expect("8-byte chunk")))
                .collect(),
            len,
        };
        b.clear_tail();
        b
    }
}

#[cfg(test)]
mod tests {
    //! Range updates touch exactly their bits, across word edges.

    use super::*;

    #[test]
    fn set_range_matches_bit_by_bit() {
        for (first, count) in [(0, 0), (3, 5), (60, 10), (0, 200), (64, 64), (130, 70)] {
            let mut a = PageBitmap::new(200);
            let mut b = PageBitmap::full(200);
            a.set_range(first, count, true);
            b.set_range(first, count, false);
            for i in 0..200 {
                let inside = i >= first && i < first + count;
                assert_eq!(a.get(i), inside, "{first}+{count} bit {i}");
                assert_eq!(b.get(i), !inside, "{first}+{count} bit {i}");
            }
        }
    }

    #[test]
    fn next_one_finds_each_set_bit_in_order_and_none_past_the_end() {
        let mut b = PageBitmap::new(200);
        for i in [3, 63, 64, 130, 199] {
            b.set(i, true);
        }
        let mut found = Vec::new();
        let mut at = 0;
        while let Some(i) = b.next_one(at) {
            found.push(i);
            at = i + 1;
        }
        assert_eq!(found, vec![3, 63, 64, 130, 199]);
        assert_eq!(b.next_one(200), None);
        assert_eq!(PageBitmap::full(70).next_one(69), Some(69));
    }

    #[test]
    fn or_assign_sets_the_union() {
        let mut a = PageBitmap::new(100);
        let mut b = PageBitmap::new(100);
        a.set(1, true);
        b.set(99, true);
        a.or_assign(&b);
        assert_eq!(a.iter_ones().collect::<Vec<_>>(), vec![1, 99]);
    }
}
