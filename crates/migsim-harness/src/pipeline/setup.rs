//! What every mode of a run sets up and checks the same way: the guest and
//! its workload, the simulated devices, each writer's capabilities (or the
//! exact refusal), the scenario's own destination.

use std::path::Path;

use migsim_format::caps::{Capabilities, Capability, MigrationConfig, Parameters};
use migsim_format::io::MigFile;
use migsim_format::reader::{LoadOptions, NullSink, load};
use migsim_format::writer::{DeviceState, MigrationWriter, RamBlockDesc};
use migsim_format::{Layout, SaveError};

use super::options::RunOptions;
use super::report::RunEnd;
use crate::bugs::BugHooks;
use crate::oracle::OracleInput;
use crate::scenario::Scenario;
use crate::sim::content::PageState;
use crate::sim::guest::Guest;
use crate::sim::precopy::PageSend;
use crate::sim::rng;
use crate::sim::simfile::SimFile;
use crate::sim::workload::Workload;

/// Simulated devices written after RAM: contents are a pure function of
/// the seed and the guest's write count at switchover.
pub(crate) fn devices(s: &Scenario, guest: &Guest) -> Vec<DeviceState> {
    devices_after(s, guest.writes())
}

/// The simulated devices of a guest that made `writes` writes.
pub(crate) fn devices_after(s: &Scenario, writes: u64) -> Vec<DeviceState> {
    if !s.guest.devices {
        return Vec::new();
    }
    let seed = s.seed;
    let key = rng::derive(seed, "devices") ^ writes;
    [
        ("timer", 2u32, 24usize),
        ("cpu", 12, 128),
        ("serial", 3, 32),
    ]
    .iter()
    .map(|&(name, version, len)| {
        let mut s = rng::derive(key, name);
        let payload = (0..len)
            .map(|_| {
                s = rng::derive(s, "b");
                s as u8
            })
            .collect();
        DeviceState {
            idstr: name.to_string(),
            instance_id: 0,
            version_id: version,
            payload,
        }
    })
    .collect()
}

/// The scenario's guest after its prefill, and a workload on it drawing
/// from the seed's stream `label` (`"workload"`: the simple driver's, and
/// vCPU 0's in the concurrency model).
pub(crate) fn guest_and_workload(s: &Scenario, label: &str) -> (Guest, Workload) {
    let mut guest = Guest::new(s.content_seed(), s.blocks());
    if s.migration
        .has(migsim_format::caps::Capability::XIgnoreShared)
    {
        guest = guest.ignoring_shared();
    }
    let mut prefill_rng = rng::stream(s.seed, "prefill");
    Workload::prefill(&mut guest, s.guest.initial_fill, &mut prefill_rng);
    let workload = Workload::new(s.workload.clone(), &guest, rng::stream(s.seed, label));
    (guest, workload)
}

/// Capabilities a writer runs with, or the exact refusal: capabilities are
/// set, then parameters, then `migrate` is checked against the transport.
pub fn writer_caps(s: &Scenario, kind: Layout) -> Result<Capabilities, String> {
    let m = &s.migration;
    let mut cfg = MigrationConfig::new(m.profile);
    let mut settings: Vec<_> = m.capabilities.iter().map(|&c| (c, true)).collect();
    if kind == Layout::FixedRam {
        settings.push((m.profile.layout_capability(), true));
    }
    cfg.set_capabilities(&settings).map_err(|e| e.to_string())?;
    cfg.set_parameters(Parameters {
        multifd_compression: m.multifd_compression,
        direct_io: m.direct_io,
        tls_creds: String::new(),
    })
    .map_err(|e| e.to_string())?;
    cfg.check_migrate(m.transport).map_err(|e| e.to_string())?;
    Ok(cfg.caps)
}

/// With `destination.fixed_ram`: the refusal of a destination with that
/// layout setting loading `file` (only validated capabilities matter to
/// the load); `None` when it loads or the scenario gives no setting.
pub(crate) fn destination_layout_refusal<F: MigFile>(s: &Scenario, file: &F) -> Option<String> {
    let dest_fixed = s.destination.fixed_ram?;
    // Otherwise like the source: x-ignore-shared, also validated, as the
    // scenario sets it.
    let shared = s
        .migration
        .has(migsim_format::caps::Capability::XIgnoreShared);
    let mut dest_caps = Capabilities::for_profile(s.migration.profile);
    dest_caps
        .set(&[
            (s.migration.profile.layout_capability(), dest_fixed),
            (migsim_format::caps::Capability::XIgnoreShared, shared),
        ])
        .expect("the layout capability and x-ignore-shared are always accepted");
    let opts = LoadOptions {
        machine: Some(s.guest.machine.clone()),
        caps: Some(dest_caps),
        skip_page_data: true,
        ..LoadOptions::default()
    };
    load(file, &opts, &mut NullSink)
        .err()
        .map(|e| e.to_string())
}

/// `destination.blocks`, as the destination declares them.
pub(crate) fn destination_blocks(s: &Scenario) -> Option<Vec<RamBlockDesc>> {
    s.destination
        .blocks
        .as_ref()
        .map(|d| d.iter().map(crate::scenario::BlockSpec::desc).collect())
}

/// What only the drive of a run knows, for the oracle: the page states at
/// switchover, the sends, and how many PART sections the driver wrote and
/// may write.
pub struct Driven<'a> {
    /// Page states at switchover (none in the extent mode, whose guest
    /// keeps extents).
    pub states: &'a [Vec<PageState>],
    /// Every page send (none in the extent mode: it logs runs).
    pub sends: &'a [PageSend],
    /// Live passes.
    pub passes: u32,
    /// RAM PART sections written.
    pub part_sections: u64,
    /// The most PART sections the driver may write.
    pub max_part_sections: u64,
    /// Reader channels for the restore.
    pub channels: usize,
}

/// The oracle's input for a run of `s` with `o`: the scenario's and the
/// options' parts here, the drive's from `driven`. The one place an
/// [`OracleInput`] is built.
pub fn oracle_input<'a>(
    s: &'a Scenario,
    o: &RunOptions,
    blocks: &'a [RamBlockDesc],
    devices: &'a [DeviceState],
    driven: Driven<'a>,
) -> OracleInput<'a> {
    OracleInput {
        seed: s.content_seed(),
        machine: &s.guest.machine,
        blocks,
        states: driven.states,
        sends: driven.sends,
        passes: driven.passes,
        max_passes: s.parameters.max_passes,
        part_sections: driven.part_sections,
        max_part_sections: driven.max_part_sections,
        devices,
        dirty_destination: s.destination.dirty_memory,
        profile: s.migration.profile,
        bug: o.bug,
        channels: driven.channels,
        durability: o.durability,
        integrity: o.integrity,
        ignore_shared: s.migration.has(Capability::XIgnoreShared),
    }
}

/// The started writers of a byte-level run, in one canonical order (so
/// the digest does not depend on the order a scenario or `--writers` lists
/// them in), each with its capabilities.
pub struct Writers {
    /// The writers.
    pub writers: Vec<MigrationWriter<SimFile, BugHooks>>,
    /// Each writer's layout and capabilities, in the same order.
    pub caps: Vec<(Layout, Capabilities)>,
}

/// Start every writer of `s` on a file in memory or under `o.file_dir`;
/// a refusal must leave its file untouched. `Err`: the run ended here,
/// refused, or its environment failed (a file that cannot be created or
/// written).
pub fn start_writers(s: &Scenario, o: &RunOptions) -> Result<Writers, RunEnd> {
    let blocks = s.blocks();
    let mut out = Writers {
        writers: Vec::new(),
        caps: Vec::new(),
    };
    let kinds = Layout::ALL
        .into_iter()
        .filter(|l| s.migration.writers.contains(l));
    for kind in kinds {
        let file = match &o.file_dir {
            _ if !s.migration.transport.seekable() => SimFile::non_seekable(),
            Some(dir) => {
                let path = dir.join(format!("{}.{}.mig", s.name, kind.name()));
                match SimFile::on_disk(&path, o.direct_io) {
                    Ok(f) => f,
                    Err(e) => {
                        return Err(RunEnd::Environment(format!(
                            "cannot create {}: {e}",
                            path.display()
                        )));
                    }
                }
            }
            None => SimFile::new(),
        };
        let file = if o.journal { file.with_journal() } else { file };
        let file = match o.io_fault {
            Some((layout, at, fault)) if layout == kind => file.fail_write(at, fault),
            _ => file,
        };
        let caps = match writer_caps(s, kind) {
            Ok(c) => c,
            Err(e) => return Err(RunEnd::refused(e, &file)),
        };
        match MigrationWriter::start(file, &s.guest.machine, &caps, blocks.clone()) {
            Ok(w) => out.writers.push(
                w.with_durability(o.durability)
                    .with_integrity(o.integrity)
                    .with_hooks(BugHooks(o.bug)),
            ),
            // The header could not be written (a full or failing disk):
            // the environment, not a verdict, as for the writes later.
            Err(SaveError::Io(e)) if o.file_dir.is_some() => {
                return Err(RunEnd::Environment(disk_failed(o, &e)));
            }
            Err(e) => return Err(RunEnd::refused(e.to_string(), &SimFile::new())),
        }
        out.caps.push((kind, caps));
    }
    Ok(out)
}

/// The message of a run whose files on disk could not be written.
pub fn disk_failed(o: &RunOptions, e: &dyn std::fmt::Display) -> String {
    format!(
        "writing the migration files in {}: {e}",
        o.file_dir.as_deref().unwrap_or(Path::new("")).display()
    )
}
