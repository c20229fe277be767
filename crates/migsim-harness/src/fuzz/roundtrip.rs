//! The `roundtrip` target: a small generated scenario through both
//! writers, judged by the oracle, run twice for the same digest.

use arbitrary::Arbitrary;
use serde_json::json;

use crate::run;
use crate::scenario::{Scenario, Verdict};
use migsim_format::Layout;

use super::{MACHINE, PAGE, typed_input};

/// Input of the [`roundtrip`] target: everything is reduced into range.
#[derive(Clone, Debug, Arbitrary)]
pub struct RoundtripInput {
    /// Scenario seed.
    pub seed: u64,
    /// (name choice, pages - 1), at most 3 blocks; empty means one block.
    pub blocks: Vec<(u8, u8)>,
    /// Make the last block a single page.
    pub one_page_block: bool,
    /// Workload kind: idle, uniform, hot-set, sweep.
    pub workload: u8,
    /// Pages written per tick.
    pub writes_per_tick: u8,
    /// Hot-set fraction, /255.
    pub hot_fraction: u8,
    /// Hot-set share, /255.
    pub hot_share: u8,
    /// Share of zero writes, /255.
    pub zero_share: u8,
    /// Pages sent per tick.
    pub bandwidth: u8,
    /// Downtime budget in ticks.
    pub downtime_ticks: u8,
    /// Forced switchover after this many passes (1..=6).
    pub max_passes: u8,
    /// Share of pages written before migration, /255.
    pub initial_fill: u8,
    /// Destination memory starts as garbage.
    pub dirty_destination: bool,
}

pub(crate) fn block_names() -> Vec<String> {
    let mut names: Vec<String> = [
        "pc.ram",
        "vga.vram",
        "pc.bios",
        "pc.rom",
        "/rom@etc/acpi/tables",
        "/rom@etc/table-loader",
        "ram",
        "x",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    names.push("n".repeat(255));
    names
}

impl RoundtripInput {
    /// The scenario this input describes (always a valid one).
    pub fn scenario(&self) -> Scenario {
        let names = block_names();
        let mut used = vec![false; names.len()];
        let mut blocks = Vec::new();
        let specs: Vec<(u8, u8)> = if self.blocks.is_empty() {
            vec![(0, 15)]
        } else {
            self.blocks.iter().take(3).copied().collect()
        };
        for (n, &(choice, pages)) in specs.iter().enumerate() {
            let mut i = usize::from(choice) % names.len();
            while used[i] {
                i = (i + 1) % names.len();
            }
            used[i] = true;
            let mut pages = 1 + u64::from(pages % 64);
            if self.one_page_block && n + 1 == specs.len() {
                pages = 1;
            }
            blocks.push(json!({ "name": names[i], "size": pages * PAGE }));
        }
        let ratio = |b: u8| f64::from(b) / 255.0;
        let kind = ["idle", "uniform", "hot-set", "sweep"][usize::from(self.workload % 4)];
        let writes = if kind == "idle" {
            0
        } else {
            1 + u64::from(self.writes_per_tick % 64)
        };
        let value = json!({
            "name": "fuzz-roundtrip",
            "description": "built by the roundtrip fuzz target",
            "seed": self.seed,
            "guest": {
                "machine": MACHINE,
                "blocks": blocks,
                "initial_fill": ratio(self.initial_fill),
            },
            "workload": {
                "kind": kind,
                "writes_per_tick": writes,
                "hot_fraction": ratio(self.hot_fraction),
                "hot_share": ratio(self.hot_share),
                "zero_share": ratio(self.zero_share),
            },
            "parameters": {
                "bandwidth": 1 + u64::from(self.bandwidth % 128),
                "downtime_ticks": u64::from(self.downtime_ticks % 4),
                "max_passes": 1 + u32::from(self.max_passes % 6),
            },
            "destination": { "dirty_memory": self.dirty_destination },
        });
        let s: Scenario = serde_json::from_value(value)
            .unwrap_or_else(|e| panic!("fuzz harness built a scenario that does not parse: {e}"));
        if let Err(e) = s.validate() {
            panic!(
                "fuzz harness built an invalid scenario: {e}\n{}",
                scenario_toml(&s)
            );
        }
        s
    }
}

pub(crate) fn scenario_toml(s: &Scenario) -> String {
    toml::to_string(s).unwrap_or_else(|e| format!("(scenario does not serialize: {e})\n{s:#?}"))
}

/// Structure-aware round-trip target (see the module docs).
pub fn roundtrip(input: RoundtripInput) {
    let s = input.scenario();
    let r = run::run(&s, &run::RunOptions::default());
    let failed: Vec<String> = r
        .invariants
        .iter()
        .filter(|i| !i.ok)
        .map(|i| format!("  {} [{}]: {}", i.name, i.writer, i.detail))
        .collect();
    let writers: Vec<Layout> = r.files.iter().map(|f| f.writer).collect();
    let held = r.invariants.iter().filter(|i| i.ok).count();
    if r.verdict != Verdict::Pass || !failed.is_empty() || writers != Layout::ALL || held == 0 {
        panic!(
            "roundtrip verdict {} (error {:?}; writers {writers:?}; {held} invariants held), \
             failed invariants:\n{}\nscenario (save as scenarios/regressions/NAME.toml):\n{}",
            r.verdict.name(),
            r.error,
            failed.join("\n"),
            scenario_toml(&s)
        );
    }
    let again = run::run(&s, &run::RunOptions::default());
    assert_eq!(
        r.digest,
        again.digest,
        "the same scenario gave two digests:\n{}",
        scenario_toml(&s)
    );
}

/// [`roundtrip`] from raw bytes, as libFuzzer's typed target builds its
/// input.
pub fn roundtrip_bytes(data: &[u8]) {
    if let Some(input) = typed_input::<RoundtripInput>(data) {
        roundtrip(input);
    }
}
