//! The extent mode's side of the pre-copy driver: the pass loop of
//! [`crate::sim::precopy::drive`] (ticks, passes, the downtime budget, the
//! forced switchover, the driver bug variants) with a sink that sends
//! pages as runs ([`RunBatches`]).
//! A pass takes the dirty sets at its sync and sends them as runs of
//! consecutive pages, `bandwidth` pages a tick (the bulk stage: whole
//! blocks, split only at tick boundaries), each run through
//! [`MigrationWriter::save_run`]. The guest ticks before each batch, as
//! in the byte-level driver, so one seed gives the same passes, sends and
//! writes in both.

use migsim_format::SaveError;
use migsim_format::writer::{DeviceState, MigrationWriter, RunContent, RunSource};

use super::dirty::DirtySet;
use super::file::ExtentFile;
use super::guest::ExtentGuest;
use crate::bugs::{Bug, BugHooks};
use crate::sim::precopy::{PassSink, PrecopyGuest, PrecopyOutcome, PrecopyParams, drive};
use crate::sim::workload::Workload;

/// A run of pages sent, as the oracle sees it: one content (zero or not).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunSend {
    /// Pass (1-based; the final pass is `passes + 1`).
    pub pass: u32,
    /// Block index.
    pub block: u32,
    /// First page.
    pub first: u64,
    /// Pages.
    pub count: u64,
    /// Whether the pages were all zero when sent.
    pub zero: bool,
}

/// Why the driver stopped before the end.
#[derive(Debug)]
pub enum DriveError {
    /// The writer or the file refused.
    Save(SaveError),
    /// The guest re-dirtied more distinct pages than the mode keeps
    /// (`max_exceptions`): the message says how many and what to lower.
    Exceptions(String),
}

impl From<SaveError> for DriveError {
    fn from(e: SaveError) -> Self {
        DriveError::Save(e)
    }
}

impl PrecopyGuest for ExtentGuest {
    type Set = DirtySet;
}

/// The extent mode's sink: the dirty sets as runs of consecutive pages,
/// `bandwidth` pages a batch (a run split only at a batch's end), each
/// run through [`MigrationWriter::save_run`]; every run sent is logged for
/// the oracle.
pub struct RunBatches {
    /// The fixed-ram writer.
    pub writer: MigrationWriter<ExtentFile, BugHooks>,
    /// Every run sent, in order.
    pub sends: Vec<RunSend>,
}

impl PassSink<ExtentGuest> for RunBatches {
    fn begin_pass(&mut self, pass: u32, completion: bool) -> Result<(), SaveError> {
        self.writer.file_mut().pass = pass;
        if completion {
            self.writer.begin_completion()
        } else {
            self.writer.begin_iteration()
        }
    }

    fn send_pass(
        &mut self,
        guest: &mut ExtentGuest,
        pass: u32,
        to_send: &[DirtySet],
        bandwidth: u64,
        sent_before: u64,
        progress: &dyn Fn(u64),
        before_batch: &mut dyn FnMut(&mut ExtentGuest) -> bool,
    ) -> Result<u64, SaveError> {
        let runs: Vec<(usize, u64, u64)> = to_send
            .iter()
            .enumerate()
            .flat_map(|(b, d)| d.runs().into_iter().map(move |(f, n)| (b, f, n)))
            .collect();
        // The next run, and how much of it was sent already.
        let (mut next, mut done) = (0usize, 0u64);
        let mut sent = 0;
        while next < runs.len() {
            if !before_batch(guest) {
                break;
            }
            let mut room = bandwidth;
            while room > 0 && next < runs.len() {
                let (b, f, n) = runs[next];
                let take = (n - done).min(room);
                self.send_run(guest, pass, b, f + done, take)?;
                room -= take;
                done += take;
                if done == n {
                    (next, done) = (next + 1, 0);
                }
            }
            sent += bandwidth - room;
            progress(sent_before + sent);
        }
        Ok(sent)
    }

    fn end_pass(&mut self) -> Result<(), SaveError> {
        self.writer.end_iteration()
    }
}

impl RunBatches {
    fn send_run(
        &mut self,
        guest: &ExtentGuest,
        pass: u32,
        block: usize,
        first: u64,
        count: u64,
    ) -> Result<(), SaveError> {
        let sends = &mut self.sends;
        guest.runs(block, first, count, &mut |f, n, c| {
            sends.push(RunSend {
                pass,
                block: block as u32,
                first: f,
                count: n,
                zero: c == RunContent::Zero,
            })
        });
        self.writer.save_run(block, first, count, guest)
    }
}

/// Migrate `guest` through `writer` (fixed-ram) with the pass loop of
/// [`crate::sim::precopy::drive`], stopping with
/// [`DriveError::Exceptions`] once the guest holds more than
/// `max_exceptions` re-dirtied pages (checked after every tick). Returns
/// what the driver did (its `sends` empty: see the run sends), the run
/// sends and the file.
#[allow(clippy::too_many_arguments)]
pub fn run_precopy(
    guest: &mut ExtentGuest,
    workload: &mut Workload,
    params: &PrecopyParams,
    writer: MigrationWriter<ExtentFile, BugHooks>,
    devices: impl Fn(&ExtentGuest) -> Vec<DeviceState>,
    bug: Option<Bug>,
    max_exceptions: u64,
    progress: &dyn Fn(u64),
) -> Result<(PrecopyOutcome, Vec<RunSend>, ExtentFile), DriveError> {
    let mut sink = RunBatches {
        writer,
        sends: Vec::new(),
    };
    let driven = drive(
        guest,
        workload,
        params,
        &mut sink,
        bug,
        |g| g.exceptions() <= max_exceptions,
        progress,
    )?;
    if let Some(pass) = driven.cut_short {
        return Err(DriveError::Exceptions(format!(
            "the guest re-dirtied more than {max_exceptions} distinct pages in pass {pass}; \
             the extent mode keeps at most that many (about 400 bytes each): lower \
             workload.writes_per_tick or parameters.max_passes, or raise bandwidth"
        )));
    }
    let (file, _) = sink.writer.finish(&devices(guest))?;
    Ok((driven.outcome, sink.sends, file))
}

#[cfg(test)]
mod tests {
    //! The driver stops with a clear error once the guest re-dirtied more
    //! pages than the mode keeps.

    use super::*;
    use crate::sim::rng;
    use crate::sim::workload::{WorkloadKind, WorkloadSpec};
    use migsim_format::caps::{Capabilities, Capability};
    use migsim_format::writer::RamBlockDesc;

    fn drive(max_exceptions: u64) -> Result<PrecopyOutcome, DriveError> {
        let blocks = vec![RamBlockDesc {
            name: "pc.ram".into(),
            used_length: 256 * 4096,
            shared: false,
        }];
        let mut guest = ExtentGuest::new(5, blocks.clone(), 1.0).unwrap();
        let spec = WorkloadSpec {
            kind: WorkloadKind::Uniform,
            writes_per_tick: 16,
            hot_fraction: 0.1,
            hot_share: 0.9,
            zero_share: 0.0,
        };
        let mut workload = Workload::new(spec, &guest, rng::stream(5, "workload"));
        let caps = Capabilities::from_enabled(&[Capability::FixedRam]).unwrap();
        let writer = MigrationWriter::start(ExtentFile::new(5), "pc", &caps, blocks)
            .unwrap()
            .with_hooks(BugHooks(None));
        let params = PrecopyParams {
            bandwidth: 8,
            downtime_ticks: 1,
            max_passes: 3,
        };
        run_precopy(
            &mut guest,
            &mut workload,
            &params,
            writer,
            |_| Vec::new(),
            None,
            max_exceptions,
            &|_| {},
        )
        .map(|(o, _, _)| o)
    }

    #[test]
    fn too_many_redirtied_pages_stop_the_run_with_the_limit_named() {
        match drive(20) {
            Err(DriveError::Exceptions(e)) => assert!(e.contains("more than 20"), "{e}"),
            other => panic!("expected the exceptions limit, got {other:?}"),
        }
        let o = drive(1 << 20).unwrap();
        assert_eq!(o.passes, 3);
    }
}
