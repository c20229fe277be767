//! Seeded guest workloads: which pages the guest writes each tick.
//!
//! * `idle`: nothing.
//! * `uniform`: `writes_per_tick` pages drawn uniformly from all of RAM.
//! * `hot-set`: a share `hot_share` of writes goes to a fixed hot set of
//!   `hot_fraction` of the pages (chosen from the seed), the rest uniform.
//! * `sweep`: walks RAM in order, `writes_per_tick` pages a tick, wrapping.
//!
//! Any workload can make a share `zero_share` of its writes zero writes,
//! which turn earlier-written pages back into zero pages.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::guest::Guest;
use super::guest_base::GuestBase;
use super::page_index::PageIndex;

/// What a workload writes to: a guest's pages by global index. The
/// byte-level [`Guest`] and the extent mode's guest
/// ([`super::extent::guest::ExtentGuest`]) both are one, so one seed makes
/// the same writes in both.
pub trait GuestMemory {
    /// The guest's pages numbered across its blocks.
    fn page_index(&self) -> &PageIndex;
    /// The guest writes a page (new data, or zeros when `zero`).
    fn write(&mut self, block: usize, page: u64, zero: bool);
    /// Total pages over all blocks.
    fn total_pages(&self) -> u64 {
        self.page_index().total_pages()
    }
    /// Map a global page index to `(block, page)`.
    fn locate(&self, global: u64) -> (usize, u64) {
        self.page_index().locate(global)
    }
}

impl GuestMemory for Guest {
    fn page_index(&self) -> &PageIndex {
        GuestBase::page_index(self)
    }
    fn write(&mut self, block: usize, page: u64, zero: bool) {
        Guest::write(self, block, page, zero)
    }
}

/// The kind of access pattern.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkloadKind {
    /// No writes.
    Idle,
    /// Uniform random pages.
    Uniform,
    /// A hot set takes most writes.
    HotSet,
    /// Sequential sweep.
    Sweep,
}

/// A workload's parameters (the `[workload]` table of a scenario).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSpec {
    /// Access pattern.
    pub kind: WorkloadKind,
    /// Pages written per tick.
    #[serde(default)]
    pub writes_per_tick: u64,
    /// hot-set: fraction of pages in the hot set (0..=1).
    #[serde(default = "default_hot_fraction")]
    pub hot_fraction: f64,
    /// hot-set: share of writes that go to the hot set (0..=1).
    #[serde(default = "default_hot_share")]
    pub hot_share: f64,
    /// Share of writes that are zero writes (0..=1).
    #[serde(default)]
    pub zero_share: f64,
}

fn default_hot_fraction() -> f64 {
    0.1
}
fn default_hot_share() -> f64 {
    0.9
}

impl WorkloadSpec {
    /// Check ranges; returns a message naming the bad field.
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("hot_fraction", self.hot_fraction),
            ("hot_share", self.hot_share),
            ("zero_share", self.zero_share),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("workload.{name} = {v} must be between 0 and 1"));
            }
        }
        if self.kind != WorkloadKind::Idle && self.writes_per_tick == 0 {
            return Err("workload.writes_per_tick must be > 0 unless kind = \"idle\"".into());
        }
        Ok(())
    }
}

/// A running workload.
#[derive(Debug)]
pub struct Workload {
    spec: WorkloadSpec,
    rng: ChaCha8Rng,
    hot: Vec<u64>,
    cursor: u64,
}

impl Workload {
    /// Start a workload on `guest`, drawing from `rng`.
    pub fn new(spec: WorkloadSpec, guest: &impl GuestMemory, mut rng: ChaCha8Rng) -> Self {
        let total = guest.total_pages();
        let hot = if spec.kind == WorkloadKind::HotSet {
            let n = ((total as f64 * spec.hot_fraction).ceil() as u64).clamp(1, total);
            (0..n).map(|_| rng.gen_range(0..total)).collect()
        } else {
            Vec::new()
        };
        Self {
            spec,
            rng,
            hot,
            cursor: 0,
        }
    }

    /// Perform one tick's writes.
    pub fn tick(&mut self, guest: &mut impl GuestMemory) {
        if self.spec.kind == WorkloadKind::Idle {
            return;
        }
        for _ in 0..self.spec.writes_per_tick {
            let (b, p, zero) = self.next_write(&*guest);
            guest.write(b, p, zero);
        }
    }

    /// Writes per tick.
    pub fn writes_per_tick(&self) -> u64 {
        if self.spec.kind == WorkloadKind::Idle {
            0
        } else {
            self.spec.writes_per_tick
        }
    }

    /// The next write the workload makes, as `(block, page, zero)`, without
    /// making it (a vCPU of the concurrency model makes it as one step).
    pub fn next_write(&mut self, guest: &impl GuestMemory) -> (usize, u64, bool) {
        let total = guest.total_pages();
        let global = match self.spec.kind {
            WorkloadKind::Idle | WorkloadKind::Uniform => self.rng.gen_range(0..total),
            WorkloadKind::HotSet => {
                if self.rng.gen_bool(self.spec.hot_share) {
                    self.hot[self.rng.gen_range(0..self.hot.len())]
                } else {
                    self.rng.gen_range(0..total)
                }
            }
            WorkloadKind::Sweep => {
                let g = self.cursor;
                self.cursor = (self.cursor + 1) % total;
                g
            }
        };
        let zero = self.spec.zero_share > 0.0 && self.rng.gen_bool(self.spec.zero_share);
        let (b, p) = guest.locate(global);
        (b, p, zero)
    }

    /// Write a share of the guest's pages once before migration starts
    /// (initial contents), each page with probability `fill`.
    pub fn prefill(guest: &mut Guest, fill: f64, rng: &mut ChaCha8Rng) {
        for g in 0..guest.total_pages() {
            if fill >= 1.0 || rng.gen_bool(fill) {
                let (b, p) = guest.locate(g);
                guest.write(b, p, false);
            }
        }
    }
}
