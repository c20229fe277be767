//! Allocation tracking and a timeout for the malformed-input tests.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::mpsc;
use std::time::Duration;

// ---------------------------------------------------------------------------
// Allocation tracking: the largest single allocation request of the current
// thread. Const-initialised `Cell<usize>` thread-locals need no lazy
// registration, so using them from the allocator is safe.

pub(crate) struct Tracking;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

pub(crate) fn note_alloc(n: usize) {
    let _ = LARGEST.try_with(|c| {
        if n > c.get() {
            c.set(n);
        }
    });
}

unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        note_alloc(l.size());
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        note_alloc(l.size());
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        note_alloc(new_size);
        unsafe { System.realloc(p, l, new_size) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
pub(crate) static GLOBAL: Tracking = Tracking;

/// Run `f`, returning its result and the largest single allocation it made
/// on this thread.
pub(crate) fn largest_alloc<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|c| c.set(0));
    let r = f();
    (r, LARGEST.with(Cell::get))
}

/// Slack over the file length a load may allocate in one piece (the
/// cursor's 64 KiB window is bounded by the bytes left, so this is generous).
pub(crate) const ALLOC_SLACK: usize = 64 * 1024;

/// Run `f` on its own thread; fail if it does not finish in time (a hang)
/// or panics.
pub(crate) fn within<T: Send + 'static>(
    secs: u64,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what} did not finish within {secs} s (hang?)")
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what} panicked"),
    }
}
