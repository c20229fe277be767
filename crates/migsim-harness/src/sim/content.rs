//! Page contents as a pure function of `(seed, block, page, version)`.
//!
//! A data page is a 32-byte header followed by filler from a keyed
//! splitmix64 stream:
//!
//! ```text
//! 0   8  b"MIGSIMPG"
//! 8   4  block index (LE)
//! 12  4  reserved, 0
//! 16  8  page index (LE)
//! 24  8  version (LE, >= 1)
//! 32  .. filler: splitmix64 words keyed by all of the above and the seed
//! ```
//! Version 0 and zero writes are all-zero pages. So the oracle needs only
//! each page's expected `(version, zero)`, and a wrong page can be named:
//! `identify` reads the header back to say which version it holds.
//!
//! The guest program `migsim qemu run` boots (`guest/src/main.rs`, a
//! `no_std` crate of its own) writes the same bytes with its own copy of
//! `splitmix` and `key`; `qemu run` checks every page it wrote with
//! [`identify`], so the two cannot drift apart unnoticed.

use migsim_format::ram::PAGE_SIZE;

const MAGIC: &[u8; 8] = b"MIGSIMPG";

/// What the guest last did to a page.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PageState {
    /// Number of writes so far (0 = never written).
    pub version: u32,
    /// The last write was a zero write (or the page was never written).
    pub zero: bool,
}

impl PageState {
    /// A fresh, never-written page.
    pub const FRESH: PageState = PageState {
        version: 0,
        zero: true,
    };
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn key(seed: u64, block: u32, page: u64, version: u32) -> u64 {
    let mut s = seed;
    let mut k = splitmix(&mut s);
    for v in [u64::from(block), page, u64::from(version)] {
        s ^= v.wrapping_mul(0xA24B_AED4_963E_E407);
        k ^= splitmix(&mut s);
    }
    k
}

/// Fill `buf` (one page) with the content of `state` for this page.
pub fn fill_page(seed: u64, block: u32, page: u64, state: PageState, buf: &mut [u8]) {
    debug_assert_eq!(buf.len() as u64, PAGE_SIZE);
    if state.zero || state.version == 0 {
        buf.fill(0);
        return;
    }
    buf[0..8].copy_from_slice(MAGIC);
    buf[8..12].copy_from_slice(&block.to_le_bytes());
    buf[12..16].fill(0);
    buf[16..24].copy_from_slice(&page.to_le_bytes());
    buf[24..32].copy_from_slice(&u64::from(state.version).to_le_bytes());
    let mut s = key(seed, block, page, state.version);
    for chunk in buf[32..].chunks_exact_mut(8) {
        chunk.copy_from_slice(&splitmix(&mut s).to_le_bytes());
    }
}

/// What a page's bytes are, read back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Identified {
    /// All zero.
    Zero,
    /// A well-formed data page.
    Data {
        /// Block index in the header.
        block: u32,
        /// Page index in the header.
        page: u64,
        /// Version in the header.
        version: u32,
    },
    /// Neither: torn, stale garbage, or foreign bytes.
    Garbage,
}

/// Read a page's header back; the filler is checked too.
pub fn identify(seed: u64, buf: &[u8]) -> Identified {
    if migsim_format::ram::is_zero_page(buf) {
        return Identified::Zero;
    }
    if buf.len() as u64 != PAGE_SIZE || &buf[0..8] != MAGIC {
        return Identified::Garbage;
    }
    let block = u32::from_le_bytes(buf[8..12].try_into().expect("4 bytes"));
    let page = u64::from_le_bytes(buf[16..24].try_into().expect("8 bytes"));
    let version = u64::from_le_bytes(buf[24..32].try_into().expect("8 bytes"));
    let version = match u32::try_from(version) {
        Ok(v) if v > 0 => v,
        // Version 0 is the all-zero page: no data page carries it.
        _ => return Identified::Garbage,
    };
    // The filler must be exactly the generated one (compared as it is
    // generated: no page-sized allocation, this runs for every page).
    let mut s = key(seed, block, page, version);
    let filler_ok = buf[12..16] == [0; 4]
        && buf[32..]
            .chunks_exact(8)
            .all(|c| c == splitmix(&mut s).to_le_bytes());
    if !filler_ok {
        return Identified::Garbage;
    }
    Identified::Data {
        block,
        page,
        version,
    }
}

/// Human description of a page state: `v5`, `zero (v6)`, `never written`.
pub fn describe(state: PageState) -> String {
    match (state.version, state.zero) {
        (0, _) => "never written (zero)".into(),
        (v, true) => format!("zero (zero write, v{v})"),
        (v, false) => format!("v{v}"),
    }
}
