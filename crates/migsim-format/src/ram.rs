//! RAM section records (section "ram", instance 0, version 4).
//!
//! Every record starts with a be64 word `W`: `W & 0xfff` are flags, the
//! rest a page-aligned byte offset inside a RAMBlock.
//!
//! ```text
//! START payload: be64 total|MEM_SIZE, then per block
//!     short idstr, be64 used_length, [28-byte fixed-ram header],
//!   then be64 EOS
//! ZERO:  be64 offset|ZERO[|CONTINUE], [short idstr], u8 0
//! PAGE:  be64 offset|PAGE[|CONTINUE], [short idstr], 4096 raw bytes
//! EOS:   be64 0x10
//! ```
//! `idstr` is present iff CONTINUE is clear; CONTINUE means "same block as
//! the previous ZERO/PAGE record", a state that persists across sections.

/// Guest page size (x86 target page).
pub const PAGE_SIZE: u64 = 4096;

/// Record flags.
pub mod flag {
    /// Obsolete, never sent.
    pub const FULL: u64 = 0x01;
    /// All-zero page; a fill byte (0) follows.
    pub const ZERO: u64 = 0x02;
    /// Block list follows (START only).
    pub const MEM_SIZE: u64 = 0x04;
    /// Raw page follows.
    pub const PAGE: u64 = 0x08;
    /// End of this section's RAM data.
    pub const EOS: u64 = 0x10;
    /// Same block as the previous record.
    pub const CONTINUE: u64 = 0x20;
    /// XBZRLE-encoded page.
    pub const XBZRLE: u64 = 0x40;
    /// RDMA hook.
    pub const HOOK: u64 = 0x80;
    /// Removed compressed page.
    pub const COMPRESS_PAGE: u64 = 0x100;
    /// multifd sync point.
    pub const MULTIFD_FLUSH: u64 = 0x200;
}

/// Mask of the flag bits of a record word.
pub const FLAG_MASK: u64 = PAGE_SIZE - 1;

/// Whether a page's bytes are all zero.
pub fn is_zero_page(data: &[u8]) -> bool {
    // Word-wise compare is several times faster than a byte loop.
    let words = data.chunks_exact(8);
    let tail = words.remainder();
    words
        .map(|w| u64::from_ne_bytes(w.try_into().expect("8 bytes")))
        .all(|w| w == 0)
        && tail.iter().all(|&b| b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_page_check_covers_every_byte_of_any_length() {
        assert!(is_zero_page(&[0; 4096]));
        assert!(is_zero_page(&[]));
        assert!(is_zero_page(&[0; 13]));
        for len in [1usize, 7, 8, 9, 13, 4096, 4097] {
            for at in [0, len / 2, len - 1] {
                let mut p = vec![0u8; len];
                p[at] = 0x80;
                assert!(!is_zero_page(&p), "len {len}, non-zero byte at {at}");
            }
        }
    }
}
