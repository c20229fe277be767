//! The seeded scheduler: which actor takes the next step.
//!
//! Every actor of the concurrency model (vCPUs, the migration thread, send
//! channels, the destination's loader and receive channels) advances one
//! step at a time, and the scheduler picks the next one among those that
//! can run, from its own `rand_chacha` stream. Each actor gets a speed
//! when it first appears (1, 2, 8 or 32, drawn from the same stream), and
//! is picked in proportion to it: a slow channel next to a fast migration
//! thread is how the ordering bugs of multifd show up. The same seed gives
//! the same interleaving on any machine; the trace digest names it.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::sim::rng;

/// One actor of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Actor {
    /// A guest vCPU, writing pages.
    Vcpu(u32),
    /// The source's migration thread.
    Migration,
    /// A source multifd send channel.
    SendChannel(u32),
    /// The destination's main loader thread.
    Loader,
    /// A destination multifd receive channel.
    RecvChannel(u32),
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Actor::Vcpu(i) => write!(f, "vcpu {i}"),
            Actor::Migration => f.write_str("migration thread"),
            Actor::SendChannel(i) => write!(f, "send channel {i}"),
            Actor::Loader => f.write_str("loader thread"),
            Actor::RecvChannel(i) => write!(f, "receive channel {i}"),
        }
    }
}

/// Picks actors; counts steps; hashes the interleaving.
pub struct Scheduler {
    rng: ChaCha8Rng,
    speeds: std::collections::BTreeMap<Actor, u32>,
    weights: Vec<u32>,
    steps: u64,
    trace: blake3::Hasher,
}

impl Scheduler {
    /// A scheduler for interleaving seed `seed` (its own stream).
    pub fn new(seed: u64) -> Self {
        Self {
            rng: rng::stream(seed, "schedule"),
            speeds: std::collections::BTreeMap::new(),
            weights: Vec::new(),
            steps: 0,
            trace: blake3::Hasher::new(),
        }
    }

    /// Pick one of `runnable` (not empty) for the next step.
    pub fn pick(&mut self, runnable: &[Actor]) -> Actor {
        self.weights.clear();
        for a in runnable {
            let rng = &mut self.rng;
            let w = *self
                .speeds
                .entry(*a)
                .or_insert_with(|| [1, 2, 8, 32][rng.gen_range(0..4)]);
            self.weights.push(w);
        }
        let total: u32 = self.weights.iter().sum();
        let mut x = self.rng.gen_range(0..total);
        let mut k = 0;
        while x >= self.weights[k] {
            x -= self.weights[k];
            k += 1;
        }
        let a = runnable[k];
        self.steps += 1;
        let tag: [u8; 5] = match a {
            Actor::Vcpu(i) => tag(0, i),
            Actor::Migration => tag(1, 0),
            Actor::SendChannel(i) => tag(2, i),
            Actor::Loader => tag(3, 0),
            Actor::RecvChannel(i) => tag(4, i),
        };
        self.trace.update(&tag);
        a
    }

    /// Steps taken so far (the model's clock).
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Digest of the interleaving so far (which actor took each step).
    pub fn trace_digest(&self) -> String {
        self.trace.finalize().to_hex().to_string()
    }
}

fn tag(kind: u8, i: u32) -> [u8; 5] {
    let b = i.to_le_bytes();
    [kind, b[0], b[1], b[2], b[3]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_picks_the_same_actors_and_another_seed_does_not() {
        let actors = [Actor::Vcpu(0), Actor::Migration, Actor::SendChannel(1)];
        let run = |seed| {
            let mut s = Scheduler::new(seed);
            let picks: Vec<Actor> = (0..200).map(|_| s.pick(&actors)).collect();
            (picks, s.trace_digest())
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7).1, run(8).1);
        assert_eq!(run(7).0.len(), 200);
    }
}
