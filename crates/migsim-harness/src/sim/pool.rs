//! Memory for the in-memory simulated files ([`super::simfile`]): 2 MiB
//! segments, mapped straight from the kernel (2 MiB-aligned) and, when a
//! file is dropped, kept in one process-wide pool for the next file, up
//! to a bound.
//!
//! The segments are not asked for transparent huge pages: on the bench's
//! VM (THP `madvise`, defrag `madvise`) MADV_HUGEPAGE made a cold 1 GiB
//! run's writes 2.1-2.2 s instead of 0.9 s (two runs each, back to back).
//!
//! Fresh memory is expensive: the kernel zeroes every page on first touch
//! (on the 2-CPU VM of `migsim bench`, 0.5-0.8 GiB/s with 4 KiB pages,
//! against 13-14 GiB/s for memset into touched memory), and that was most
//! of a simulated migration's time. A run that follows another in the
//! same process (the bench's repetitions, `explore`, the tests) takes the
//! segments the previous run's files gave back, already touched.
//!
//! A recycled segment holds the bytes of the file it came from: the file
//! owning it tracks which 4 KiB chunks it wrote and never lets the rest
//! be read, so the bytes, the digest and every report are the same
//! whether a segment is fresh or recycled.

use std::ptr::NonNull;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes per segment (one transparent huge page on x86-64).
pub const SEGMENT: usize = 2 << 20;

/// Idle bytes the pool keeps by default (the rest is unmapped).
pub const DEFAULT_LIMIT: u64 = 1 << 30;

static LIMIT: AtomicU64 = AtomicU64::new(DEFAULT_LIMIT);

/// Idle segments (their addresses).
static IDLE: Mutex<Vec<usize>> = Mutex::new(Vec::new());

/// Keep at most `bytes` of idle segments from now on (rounded down to
/// whole segments); segments over the bound are unmapped at once. 0
/// turns recycling off.
pub fn set_limit(bytes: u64) {
    LIMIT.store(bytes, Ordering::SeqCst);
    let keep = (bytes / SEGMENT as u64) as usize;
    let extra: Vec<usize> = {
        let mut idle = IDLE.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() > keep {
            idle.split_off(keep)
        } else {
            Vec::new()
        }
    };
    for a in extra {
        unmap(a);
    }
}

/// The current bound on idle bytes.
pub fn limit() -> u64 {
    LIMIT.load(Ordering::SeqCst)
}

/// Bytes idle in the pool now.
pub fn idle_bytes() -> u64 {
    IDLE.lock().unwrap_or_else(|e| e.into_inner()).len() as u64 * SEGMENT as u64
}

/// Unmap every idle segment: the next files get fresh memory (a cold
/// run, for the bench).
pub fn clear() {
    let all = std::mem::take(&mut *IDLE.lock().unwrap_or_else(|e| e.into_inner()));
    for a in all {
        unmap(a);
    }
}

fn unmap(addr: usize) {
    // SAFETY: `addr` is the start of a SEGMENT-byte mapping made by `map`
    // that nothing references any more (it was idle or being dropped).
    unsafe {
        libc::munmap(addr as *mut libc::c_void, SEGMENT);
    }
}

/// A fresh SEGMENT-byte, SEGMENT-aligned anonymous mapping (zeroed by the
/// kernel on first touch).
fn map() -> usize {
    let len = 2 * SEGMENT;
    // SAFETY: an anonymous private mapping; no existing memory involved.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        std::alloc::handle_alloc_error(
            std::alloc::Layout::from_size_align(SEGMENT, SEGMENT).expect("a valid layout"),
        );
    }
    let start = p as usize;
    let aligned = start.next_multiple_of(SEGMENT);
    // SAFETY: both ranges lie inside the mapping just made and are not
    // used: only [aligned, aligned + SEGMENT) is kept.
    unsafe {
        if aligned > start {
            libc::munmap(p, aligned - start);
        }
        let tail = start + len - (aligned + SEGMENT);
        if tail > 0 {
            libc::munmap((aligned + SEGMENT) as *mut libc::c_void, tail);
        }
    }
    aligned
}

/// SEGMENT bytes of memory, from the pool or fresh; their contents are
/// unspecified (what the previous owner left, or zeros). Dropping it
/// gives it back to the pool (or unmaps it past the bound).
pub struct Segment {
    ptr: NonNull<u8>,
    fresh: bool,
}

// SAFETY: a Segment owns its mapping exclusively, like a Box<[u8]>.
unsafe impl Send for Segment {}
// SAFETY: shared access only reads (`bytes`).
unsafe impl Sync for Segment {}

impl Segment {
    /// A segment from the pool, or a fresh one.
    pub fn take() -> Segment {
        let idle = IDLE.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let fresh = idle.is_none();
        let addr = idle.unwrap_or_else(map);
        Segment {
            ptr: NonNull::new(addr as *mut u8).expect("mmap never returns null here"),
            fresh,
        }
    }

    /// Whether the segment came fresh from the kernel (all zeros) rather
    /// than from the pool (another file's bytes).
    pub fn fresh(&self) -> bool {
        self.fresh
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping is SEGMENT bytes, readable and writable, and
        // owned by self; every byte was initialised (the kernel zeroes
        // fresh pages).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), SEGMENT) }
    }

    /// The bytes, for writing.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`, and `&mut self` makes the access unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), SEGMENT) }
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        let addr = self.ptr.as_ptr() as usize;
        let keep = (LIMIT.load(Ordering::Relaxed) / SEGMENT as u64) as usize;
        {
            let mut idle = IDLE.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < keep {
                idle.push(addr);
                return;
            }
        }
        unmap(addr);
    }
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Segment({:p})", self.ptr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_aligned_writable_and_recycled_within_the_bound() {
        // Other tests share the pool: only check what holds regardless.
        let mut s = Segment::take();
        assert_eq!(s.bytes().as_ptr() as usize % SEGMENT, 0);
        s.bytes_mut()[SEGMENT - 1] = 7;
        assert_eq!(s.bytes()[SEGMENT - 1], 7);
        drop(s);
        assert!(idle_bytes() <= limit().max(SEGMENT as u64 * 64));
    }
}
