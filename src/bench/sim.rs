//! The `sim` part: a whole simulated migration against memcpy, cold and
//! with recycled memory.

use std::time::Instant;

use migsim_harness::replay_command::{ReplayCommand, RunFlags};
use migsim_harness::run::{RunOptions, run};
use migsim_harness::scenario::{Scenario, Size, Verdict};
use migsim_harness::sim::stages::Clock;

use super::*;

pub(super) fn memcpy_hot(size: u64, reps: usize) -> Result<Timing, String> {
    let chunk = (size as usize).min(256 * MIB);
    let src = vec![0x5Au8; chunk];
    let mut dst = vec![0u8; chunk];
    dst.copy_from_slice(&src); // touch
    let secs = median_of(reps, |_| {
        let t = Instant::now();
        let mut left = size as usize;
        while left > 0 {
            let n = left.min(chunk);
            dst[..n].copy_from_slice(&src[..n]);
            std::hint::black_box(&dst);
            left -= n;
        }
        Ok(t.elapsed().as_secs_f64())
    })?;
    Ok(Timing::new(size, secs))
}

pub(super) fn memcpy_fresh(size: u64, reps: usize) -> Result<Timing, String> {
    let chunk = (size as usize).min(256 * MIB);
    let src = vec![0x5Au8; chunk];
    let secs = median_of(reps, |_| {
        let t = Instant::now();
        let mut left = size as usize;
        while left > 0 {
            let n = left.min(chunk);
            let mut dst = Vec::<u8>::with_capacity(n);
            dst.extend_from_slice(&src[..n]);
            std::hint::black_box(&dst);
            left -= n;
        }
        Ok(t.elapsed().as_secs_f64())
    })?;
    Ok(Timing::new(size, secs))
}

/// The big-guest scenario with pc.ram resized to `size`.
pub fn sim_scenario(size: u64) -> Result<Scenario, String> {
    let mut s = Scenario::from_toml(BIG_GUEST)?;
    s.guest.blocks[0].size = Size(size);
    s.expect.digest = None;
    s.validate()?;
    Ok(s)
}

pub(super) fn sim(o: &BenchOptions, progress: &mut dyn FnMut(&str)) -> Result<SimFigures, String> {
    use migsim_harness::sim::pool;
    let s = sim_scenario(o.size)?;
    let opts = RunOptions {
        channels: o.channels,
        ..RunOptions::default()
    };
    // Room in the pool for a run's files (the fixed-ram file is a little
    // over the guest's size), so the repetitions after the first reuse
    // them; emptied first so the first run is cold, and afterwards so the
    // other parts have the memory.
    let limit = pool::limit();
    pool::clear();
    pool::set_limit(limit.max(2 * o.size + (64 << 20)));
    let mut digests = Vec::new();
    let mut stages = Vec::new();
    let mut guest_bytes = 0;
    let mut one = |label: &str| -> Result<f64, String> {
        let t = Instant::now();
        let clock = Clock::start();
        let r = run(&s, &opts);
        stages.push(clock.stop());
        let dt = t.elapsed().as_secs_f64();
        if r.verdict != Verdict::Pass {
            return Err(format!(
                "sim: the run did not pass ({}); replay: {}",
                r.error
                    .unwrap_or_else(|| format!("{:?}", r.invariants.iter().find(|i| !i.ok))),
                ReplayCommand::Run {
                    scenario: Some("scenarios/big-guest.toml".into()),
                    seed: None,
                    flags: RunFlags {
                        ram: Some(o.size),
                        channels: o.channels,
                        ..RunFlags::default()
                    },
                }
            ));
        }
        guest_bytes = r.ram_bytes;
        digests.push(r.digest);
        progress(&format!("sim {label}: {dt:.2} s"));
        Ok(dt)
    };
    let measured = one("cold (fresh memory)").and_then(|cold| {
        let warm = median_of(o.reps, |i| {
            one(&format!("{}/{} (recycled memory)", i + 1, o.reps))
        })?;
        Ok((cold, warm))
    });
    pool::clear();
    pool::set_limit(limit);
    let (cold, secs) = measured?;
    let run = Timing::new(guest_bytes, secs);
    let median_rep = run
        .seconds
        .iter()
        .position(|&s| s == run.median_s)
        .unwrap_or(0);
    Ok(SimFigures {
        guest_bytes,
        cold: Timing::new(guest_bytes, vec![cold]),
        cold_stages: stages[0],
        stages: stages.get(1 + median_rep).copied().unwrap_or_default(),
        run,
        digest_stable: digests.windows(2).all(|w| w[0] == w[1]),
        digest: digests.pop().unwrap_or_default(),
    })
}
