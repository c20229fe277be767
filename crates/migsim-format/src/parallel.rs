//! Running a few jobs at once on scoped threads (the writer's and the
//! reader's channels), so that a system that refuses a new thread (its
//! thread limit reached, `ulimit -u`) slows a save or a load down instead
//! of aborting it: a job whose thread cannot be started runs on the
//! calling thread. Results come back in job order.

use std::sync::Mutex;

/// Run every job, each on its own scoped thread where one can be started,
/// else on this thread; the results in the jobs' order. A panicking job
/// panics the caller.
pub fn run_jobs<T: Send, F: FnOnce() -> T + Send>(jobs: Vec<F>) -> Vec<T> {
    // Each job sits in a slot the thread takes it from; if the thread
    // cannot be started, the job is still in its slot.
    let slots: Vec<Mutex<Option<F>>> = jobs.into_iter().map(|j| Mutex::new(Some(j))).collect();
    let take = |slot: &Mutex<Option<F>>| slot.lock().unwrap_or_else(|e| e.into_inner()).take();
    std::thread::scope(|s| {
        let handles: Vec<_> = slots
            .iter()
            .map(|slot| {
                std::thread::Builder::new()
                    .spawn_scoped(s, move || take(slot).map(|job| job()))
                    .ok()
            })
            .collect();
        handles
            .into_iter()
            .zip(&slots)
            .map(|(h, slot)| {
                let ran = match h {
                    Some(h) => h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
                    None => None,
                };
                ran.or_else(|| take(slot).map(|job| job()))
                    .expect("every job runs once")
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_job_order() {
        let jobs: Vec<_> = (0..8u64)
            .map(|i| move || (i, std::thread::current().id()))
            .collect();
        let r = run_jobs(jobs);
        assert_eq!(
            r.iter().map(|x| x.0).collect::<Vec<_>>(),
            (0..8).collect::<Vec<_>>()
        );
    }
}
