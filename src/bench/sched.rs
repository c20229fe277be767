//! How fast the concurrency model simulates, for `migsim bench`: the
//! embedded `scenarios/concurrency/multifd-4ch-2vcpu.toml`, its pc.ram
//! scaled to 64 MiB (4 send
//! channels, 2 receive channels, 2 vCPUs, every step picked by the
//! scheduler) against the same scenario without its `[concurrency]` table
//! (the simple driver), each run `--reps` times; pages per second is pages
//! sent over the run's wall-clock time (oracle and digest included, as
//! `migsim run` does them).

use std::time::Instant;

use migsim_harness::run::{RunOptions, run};
use migsim_harness::scenario::{Scenario, Size, Verdict};
use serde::Serialize;

/// The scenario measured.
pub const SCENARIO: &str = include_str!("../../scenarios/concurrency/multifd-4ch-2vcpu.toml");

/// One driver's speed.
#[derive(Clone, Debug, Serialize)]
pub struct DriverSpeed {
    /// `qemu` (the scheduler) or `simple`.
    pub driver: &'static str,
    /// Pages sent per run.
    pub pages_sent: u64,
    /// Scheduler steps per run (0 for the simple driver).
    pub steps: u64,
    /// Seconds per run.
    pub seconds: Vec<f64>,
    /// Pages per second at the median time.
    pub pages_per_second: f64,
}

/// Both drivers on one scenario.
#[derive(Clone, Debug, Serialize)]
pub struct SchedFigures {
    /// Scenario name.
    pub scenario: String,
    /// The scheduler's QEMU driver, then the simple one.
    pub drivers: Vec<DriverSpeed>,
    /// Scheduler pages/s over simple-driver pages/s.
    pub ratio: f64,
}

fn measure_one(s: &Scenario, driver: &'static str, reps: usize) -> Result<DriverSpeed, String> {
    let mut seconds = Vec::new();
    let mut pages = 0;
    let mut steps = 0;
    for _ in 0..reps {
        let t = Instant::now();
        let r = run(s, &RunOptions::default());
        seconds.push(t.elapsed().as_secs_f64());
        if r.verdict != Verdict::Pass {
            return Err(format!("{driver} driver: verdict {:?}", r.verdict));
        }
        pages = r.pages_sent;
        steps = r
            .concurrency
            .as_ref()
            .map_or(0, |c| c.iter().map(|f| f.steps).sum());
    }
    let mut sorted = seconds.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    Ok(DriverSpeed {
        driver,
        pages_sent: pages,
        steps,
        seconds,
        pages_per_second: pages as f64 / median,
    })
}

/// Measure both drivers, `reps` runs each (at least 3).
pub fn measure(reps: usize, progress: &mut dyn FnMut(&str)) -> Result<SchedFigures, String> {
    let reps = reps.max(3);
    let mut sched = Scenario::from_toml(SCENARIO).map_err(|e| e.to_string())?;
    // Scaled up 32 times (pc.ram 64 MiB, bandwidth and writes with it) so
    // the run's fixed costs do not dominate.
    sched.guest.blocks[0].size = Size(64 << 20);
    sched.parameters.bandwidth *= 32;
    sched.workload.writes_per_tick *= 32;
    sched.expect.digest = None;
    let mut simple = sched.clone();
    simple.concurrency = None;
    simple.migration.capabilities.clear();
    simple.expect.digest = None;
    let q = measure_one(&sched, "qemu", reps)?;
    let s = measure_one(&simple, "simple", reps)?;
    progress(&format!(
        "scheduler: {:.0} pages/s ({} steps a run); simple driver {:.0} pages/s",
        q.pages_per_second, q.steps, s.pages_per_second
    ));
    Ok(SchedFigures {
        scenario: sched.name,
        ratio: q.pages_per_second / s.pages_per_second,
        drivers: vec![q, s],
    })
}
