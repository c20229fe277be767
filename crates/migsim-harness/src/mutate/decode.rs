//! Mutations read from bytes as `arbitrary` 1.x's derived impls read them
//! (`#[derive(Arbitrary)]` on [`Mutation`], [`Value32`], [`Value64`]), for
//! `migsim qemu fuzz`: a seed's random bytes become the same mutations
//! whether or not the `arbitrary` crate is linked, and whatever version of
//! it the fuzz targets use. The reading rules, all infallible:
//!
//! * an integer: its size in bytes, little-endian, zeros past the end;
//! * a `bool`: one byte, its low bit;
//! * an enum: a `u32` `x`, variant `(x * count) >> 32`, then its fields
//!   in order;
//! * a `Vec<u8>`: while a `bool` reads true, one more byte.
//!
//! The test `decode_matches_arbitrary` (feature `fuzz`) compares both on
//! random bytes.

use super::{Mutation, Value32, Value64};

/// Bytes read front to back; past the end every read is zero.
pub struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    /// Read from `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Bytes(data)
    }

    /// Bytes not read yet.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether every byte was read.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut b = [0u8; N];
        let n = N.min(self.0.len());
        b[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        b
    }

    fn u8(&mut self) -> u8 {
        self.take::<1>()[0]
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.take())
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }

    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take())
    }

    fn i16(&mut self) -> i16 {
        i16::from_le_bytes(self.take())
    }

    fn i32(&mut self) -> i32 {
        i32::from_le_bytes(self.take())
    }

    fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    /// An enum's variant, of `count`.
    fn variant(&mut self, count: u64) -> u64 {
        (u64::from(self.u32()) * count) >> 32
    }

    fn byte_vec(&mut self) -> Vec<u8> {
        let mut v = Vec::new();
        while self.bool() {
            v.push(self.u8());
        }
        v
    }

    /// The next [`Value32`].
    pub fn value32(&mut self) -> Value32 {
        match self.variant(2) {
            0 => Value32::Exact(self.u32()),
            _ => Value32::Special(self.u8()),
        }
    }

    /// The next [`Value64`].
    pub fn value64(&mut self) -> Value64 {
        match self.variant(4) {
            0 => Value64::Exact(self.u64()),
            1 => Value64::Delta(self.i32()),
            2 => Value64::DeltaPages(self.i16()),
            _ => Value64::Special(self.u8()),
        }
    }

    /// The next [`Mutation`].
    pub fn mutation(&mut self) -> Mutation {
        match self.variant(13) {
            0 => Mutation::HeaderVersion {
                block: self.u8(),
                value: self.value32(),
            },
            1 => Mutation::HeaderPageSize {
                block: self.u8(),
                value: self.value64(),
            },
            2 => Mutation::BitmapOffset {
                block: self.u8(),
                value: self.value64(),
            },
            3 => Mutation::PagesOffset {
                block: self.u8(),
                value: self.value64(),
            },
            4 => Mutation::UsedLength {
                block: self.u8(),
                value: self.value64(),
                fix_total: self.bool(),
            },
            5 => Mutation::MemSizeWord {
                value: self.value64(),
            },
            6 => Mutation::FlipBitmapBit {
                block: self.u8(),
                bit: self.u16(),
            },
            7 => Mutation::BitmapByte {
                block: self.u8(),
                index: self.u16(),
                value: self.u8(),
            },
            8 => Mutation::PageArea {
                block: self.u8(),
                offset: self.u32(),
                bytes: self.byte_vec(),
            },
            9 => Mutation::Tail {
                offset: self.u16(),
                bytes: self.byte_vec(),
            },
            10 => Mutation::Anywhere {
                offset: self.u32(),
                bytes: self.byte_vec(),
            },
            11 => Mutation::Truncate { at: self.value64() },
            _ => Mutation::Extend { by: self.u32() },
        }
    }
}

#[cfg(all(test, feature = "fuzz"))]
mod tests {
    use super::*;
    use arbitrary::{Arbitrary, Unstructured};
    use rand::{Rng, SeedableRng};

    /// Every variant of every type, on random bytes of every length up
    /// to 80 (short ones run out mid-value): the same mutations as
    /// `arbitrary`'s, and the same bytes left.
    #[test]
    fn decode_matches_arbitrary() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(29);
        let mut seen = std::collections::HashSet::new();
        for i in 0..40_000 {
            let data: Vec<u8> = (0..i % 81).map(|_| rng.r#gen()).collect();
            let mut u = Unstructured::new(&data);
            let mut b = Bytes::new(&data);
            for _ in 0..3 {
                let want = Mutation::arbitrary(&mut u).expect("never fails");
                let got = b.mutation();
                assert_eq!(format!("{got:?}"), format!("{want:?}"), "{data:?}");
                assert_eq!(b.len(), u.len(), "{data:?}");
                let name = format!("{want:?}");
                seen.insert(name[..name.find([' ', '{', '(']).unwrap_or(name.len())].to_string());
            }
        }
        assert_eq!(seen.len(), 13, "variants seen: {seen:?}");
    }
}
