//! How fast `migsim qemu fuzz` feeds QEMU, for `migsim bench`: the same
//! campaign over the same seeds (`0..SEEDS`), once with one QEMU at a time
//! and once with one per CPU, each repeated `--reps` times; loads per
//! second is seeds run over the campaign's wall-clock time (bases built
//! beforehand; minimising findings afterwards is not counted). The
//! outcome counts must be the same in every repetition and at every job
//! count (the campaign is deterministic); the figures say whether they
//! were.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use migsim_harness::explore::SeedSet;
use migsim_harness::qemu::QemuBinary;
use migsim_harness::qemu::campaign::{CampaignOptions, Limits, run_campaign};
use serde::Serialize;

/// Seeds per campaign.
pub const SEEDS: u64 = 48;

/// Loads per second at one job count.
#[derive(Clone, Debug, Serialize)]
pub struct LoadRate {
    /// QEMU processes at once.
    pub jobs: usize,
    /// Loads per second, per repetition.
    pub loads_per_second: Vec<f64>,
    /// Their median.
    pub median: f64,
}

/// The campaign's throughput.
#[derive(Clone, Debug, Serialize)]
pub struct QemuFuzzFigures {
    /// Seeds per campaign (`0..seeds`).
    pub seeds: u64,
    /// `-accel` of the loads.
    pub accel: String,
    /// One QEMU at a time, then one per CPU.
    pub rates: Vec<LoadRate>,
    /// The outcome counts (the same in every campaign, or `deterministic`
    /// is false).
    pub outcomes: BTreeMap<String, u64>,
    /// Every campaign gave the same outcome counts.
    pub deterministic: bool,
    /// Wall-clock seconds of the whole measurement, bases included.
    pub seconds: f64,
}

/// Run the campaign `reps` times at 1 job and at `cpus` jobs.
pub fn measure(
    q: &QemuBinary,
    cpus: usize,
    reps: usize,
    progress: &mut dyn FnMut(&str),
) -> Result<QemuFuzzFigures, String> {
    let t0 = Instant::now();
    let accel = migsim_harness::qemu::stopped_guest_accel();
    let mut job_counts = vec![1];
    if cpus > 1 {
        job_counts.push(cpus);
    }
    let mut rates = Vec::new();
    let mut outcomes: Option<BTreeMap<String, u64>> = None;
    let mut deterministic = true;
    for &jobs in &job_counts {
        let mut samples = Vec::new();
        for rep in 0..reps {
            progress(&format!(
                "qemu fuzz: seeds 0..{SEEDS}, {jobs} job(s), repetition {} of {reps}",
                rep + 1
            ));
            let opts = CampaignOptions {
                seeds: SeedSet::new(0, SEEDS, None),
                time_limit: None,
                jobs,
                limits: Limits {
                    timeout: Duration::from_secs(20),
                    rss_limit: 2 << 30,
                    accel: accel.clone(),
                },
                out: None,
            };
            let r = run_campaign(q, &opts, &|_, _| {})?;
            samples.push(r.loads_per_second);
            match &outcomes {
                Some(o) if *o != r.outcomes => deterministic = false,
                Some(_) => {}
                None => outcomes = Some(r.outcomes.clone()),
            }
        }
        let mut sorted = samples.clone();
        sorted.sort_by(f64::total_cmp);
        rates.push(LoadRate {
            jobs,
            median: sorted[sorted.len() / 2],
            loads_per_second: samples,
        });
    }
    Ok(QemuFuzzFigures {
        seeds: SEEDS,
        accel,
        rates,
        outcomes: outcomes.unwrap_or_default(),
        deterministic,
        seconds: t0.elapsed().as_secs_f64(),
    })
}
