//! Where a simulation's time goes, for `migsim bench`: the thread time
//! spent generating page contents, writing them into the simulated file,
//! reading them back, verifying what the destination received, and
//! hashing the files for the digest.
//!
//! Counting is off unless a [`Clock`] is running (one per process at a
//! time: the counters are global), so runs pay one relaxed atomic load
//! per timed call. A stage entered while another is being timed on the
//! same thread (the hash reads the file) counts for the outer one only,
//! so the stages never count the same nanosecond twice on a thread.
//! Threads (channels, the hashing threads) add up: with several, the
//! stages can sum to more than the wall-clock time. The hash counts the
//! wall time of each file's hashing call: the rayon workers it hands
//! pieces to are not counted on their own. Nothing here reaches
//! a file, a report's figures or a digest.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use serde::Serialize;

/// A part of the simulation's work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Page contents generated (`content::fill_page`).
    Generate = 0,
    /// Bytes written into the simulated file.
    Write = 1,
    /// Bytes read from the simulated file.
    Read = 2,
    /// Restored pages identified (`content::identify`).
    Verify = 3,
    /// The files hashed for the digest.
    Hash = 4,
}

const STAGES: usize = 5;

static ON: AtomicBool = AtomicBool::new(false);
static NANOS: [AtomicU64; STAGES] = [const { AtomicU64::new(0) }; STAGES];

thread_local! {
    static INSIDE: Cell<bool> = const { Cell::new(false) };
}

/// Run `f`, counting its time for `stage` while a [`Clock`] runs.
#[inline]
pub fn timed<T>(stage: Stage, f: impl FnOnce() -> T) -> T {
    if !ON.load(Ordering::Relaxed) || INSIDE.with(Cell::get) {
        return f();
    }
    count(stage, 1, f)
}

/// Run `f` (a clock runs, no stage is being timed on this thread) and
/// count its time `times` times for `stage`.
fn count<T>(stage: Stage, times: u64, f: impl FnOnce() -> T) -> T {
    INSIDE.with(|c| c.set(true));
    let t = Instant::now();
    let r = f();
    let ns = t.elapsed().as_nanos() as u64 * times;
    INSIDE.with(|c| c.set(false));
    NANOS[stage as usize].fetch_add(ns, Ordering::Relaxed);
    r
}

/// Like [`timed`] for a call made very often on equal pieces of work
/// (one page): only one call in [`SAMPLE`] on each thread is timed, and
/// counted [`SAMPLE`] times, so the clock's own cost (two clock reads,
/// about 60 ns on the bench's VM, 3.5% of a 4 GiB run's CPU when every
/// page was timed) stays out of the run it measures.
#[inline]
pub fn timed_sampled<T>(stage: Stage, f: impl FnOnce() -> T) -> T {
    thread_local! {
        static CALLS: Cell<u32> = const { Cell::new(0) };
    }
    if !ON.load(Ordering::Relaxed) || INSIDE.with(Cell::get) {
        return f();
    }
    let n = CALLS.with(|c| {
        let n = c.get().wrapping_add(1);
        c.set(n);
        n
    });
    if !n.is_multiple_of(SAMPLE) {
        return f();
    }
    count(stage, u64::from(SAMPLE), f)
}

/// One call in this many is timed by [`timed_sampled`].
pub const SAMPLE: u32 = 16;

/// Seconds of thread time per stage, and the wall-clock time they were
/// counted over.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub struct StageTimes {
    /// Wall-clock seconds while the clock ran.
    pub wall_s: f64,
    /// Generating page contents.
    pub generate_s: f64,
    /// Writing into the simulated file.
    pub write_s: f64,
    /// Reading from the simulated file.
    pub read_s: f64,
    /// Identifying restored pages.
    pub verify_s: f64,
    /// Hashing the files.
    pub hash_s: f64,
}

impl StageTimes {
    /// Wall-clock time not in any stage on the calling thread's account:
    /// the pre-copy driver, the oracle, allocation (negative when
    /// channels overlap stages).
    pub fn other_s(&self) -> f64 {
        self.wall_s - self.generate_s - self.write_s - self.read_s - self.verify_s - self.hash_s
    }
}

/// Counts stage times from [`Clock::start`] to [`Clock::stop`].
#[derive(Debug)]
pub struct Clock {
    started: Instant,
}

impl Clock {
    /// Zero the counters and start counting.
    pub fn start() -> Clock {
        for n in &NANOS {
            n.store(0, Ordering::Relaxed);
        }
        ON.store(true, Ordering::SeqCst);
        Clock {
            started: Instant::now(),
        }
    }

    /// Stop counting; what was counted.
    pub fn stop(self) -> StageTimes {
        let wall_s = self.started.elapsed().as_secs_f64();
        ON.store(false, Ordering::SeqCst);
        let s = |st: Stage| NANOS[st as usize].load(Ordering::Relaxed) as f64 / 1e9;
        StageTimes {
            wall_s,
            generate_s: s(Stage::Generate),
            write_s: s(Stage::Write),
            read_s: s(Stage::Read),
            verify_s: s(Stage::Verify),
            hash_s: s(Stage::Hash),
        }
    }
}

impl Drop for Clock {
    fn drop(&mut self) {
        ON.store(false, Ordering::SeqCst);
    }
}

/// Held by unit tests that time stages or check the counters, so tests
/// running in parallel in this crate do not count into each other's
/// clock (the counters are global).
#[cfg(test)]
pub(crate) fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_only_while_running_and_not_nested_twice() {
        let _only = exclusive();
        // Before a clock runs nothing is counted.
        timed(Stage::Generate, || {
            std::thread::sleep(std::time::Duration::from_millis(5))
        });
        let clock = Clock::start();
        timed(Stage::Hash, || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            // Nested: counts for the hash only.
            timed(Stage::Read, || {
                std::thread::sleep(std::time::Duration::from_millis(20))
            });
        });
        let t = clock.stop();
        assert_eq!(t.generate_s, 0.0, "{t:?}");
        assert_eq!(t.read_s, 0.0, "{t:?}");
        assert!(t.hash_s >= 0.04 && t.hash_s <= t.wall_s, "{t:?}");
        timed(Stage::Write, || ());
        assert!(t.other_s() >= 0.0 && t.other_s() < t.wall_s);
    }

    #[test]
    fn sampled_calls_count_about_what_they_took() {
        let _only = exclusive();
        let clock = Clock::start();
        let wall = Instant::now();
        for _ in 0..4 * SAMPLE {
            timed_sampled(Stage::Generate, || {
                std::thread::sleep(std::time::Duration::from_millis(2))
            });
        }
        let took = wall.elapsed().as_secs_f64();
        let t = clock.stop();
        // 4 of the 64 calls timed, each counted 16 times: an estimate of
        // the loop's time (the calls take about the same time each).
        assert!(
            (t.generate_s - took).abs() <= 0.25 * took,
            "{t:?}, loop {took}"
        );
    }
}
