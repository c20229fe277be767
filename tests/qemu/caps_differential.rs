//! migsim's mapped-ram capability checker against real QEMU 10.0.2.
//!
//! `tests/data/qemu/caps/differential.json` holds QEMU's answers (accept or
//! the exact error) to every combination of mapped-ram, multifd, xbzrle
//! and postcopy-ram, multifd-compression none/zlib, direct-io off/on, over
//! file, tcp, unix, exec and fd, set together, one at a time in both
//! orders, and parameters first (made by make_differential.py over QMP; no
//! migsim code involved). Each step is replayed against
//! `MigrationConfig` and must agree, except for named divergences:
//!
//! * `qemu-checks-current-parameters`: QEMU's migrate-set-parameters checks
//!   the stored values, so it accepts multifd-compression=zlib with
//!   mapped-ram on (and then refuses `migrate` with "Cannot use compression
//!   with mapped-ram"); migsim refuses the setting itself. Every later step
//!   of such a record is counted under this divergence.
//!
//! Outcomes that are not decisions of the checker (a refused connection,
//! postcopy never finishing on a file) are not compared.
//!
//! `tls.json` (`make_differential.py --tls`) adds tls-creds to mapped-ram,
//! multifd and compression, and is replayed the same way: with both TLS and
//! compression stored, QEMU's `migrate` reports TLS first.
//!
//! Interop tier: `live_qemu_sample_agrees_with_migsim_and_the_table` has an
//! installed QEMU (>= 9.0; `QEMU` names another binary) answer a
//! deterministic sample of the same records again (`make_differential.py
//! --sample N --seed S`, Python 3 stdlib), replays them against migsim as
//! above, and checks that live QEMU 10.0.x still gives the recorded answers,
//! so the table cannot go stale unnoticed; it does the same with the whole
//! of `tls.json` (`--tls`, 64 records). Without QEMU it prints one line and
//! passes, unless `CI=true`, where it fails.
//! `MIGSIM_CAPS_SAMPLE` (default 96) and `MIGSIM_CAPS_SAMPLE_SEED` (default
//! 10) pick another sample.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use migsim_format::caps::{
    Capabilities, Capability, MigrationConfig, MultifdCompression, Parameters, Profile, Transport,
};
use serde_json::Value;

fn data() -> Value {
    table("differential.json")
}

fn table(name: &str) -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/qemu/caps")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn cap(name: &str) -> Capability {
    Capability::from_name(name).unwrap_or_else(|| panic!("unknown capability {name}"))
}

fn transport(name: &str) -> Transport {
    match name {
        "file" => Transport::File,
        "tcp-refused" | "tcp-listener" | "tcp" => Transport::Tcp,
        "unix-refused" | "unix-listener" | "unix" => Transport::Unix,
        "exec" => Transport::Exec,
        "fd" => Transport::Fd,
        other => panic!("unknown transport {other}"),
    }
}

fn params(rec: &Value) -> Parameters {
    Parameters {
        multifd_compression: match rec["multifd_compression"].as_str().unwrap() {
            "none" => MultifdCompression::None,
            "zlib" => MultifdCompression::Zlib,
            other => panic!("compression {other}"),
        },
        direct_io: rec["direct_io"].as_bool().unwrap(),
        // Only the records of tls.json set tls-creds.
        tls_creds: rec["tls_creds"].as_str().unwrap_or("").to_string(),
    }
}

/// QEMU's answer to a synchronous step: None = accepted.
fn qemu(step: &Value) -> Option<String> {
    if step["ok"].as_bool().unwrap() {
        None
    } else {
        Some(step["error"].as_str().unwrap().to_string())
    }
}

fn ours(r: Result<(), migsim_format::caps::CapsError>) -> Option<String> {
    r.err().map(|e| e.to_string())
}

#[derive(Default)]
struct Tally {
    compared: u64,
    agreed: u64,
    divergent: BTreeMap<&'static str, u64>,
    disagreements: Vec<String>,
}

impl Tally {
    /// Print the figures; fail on any disagreement, and when the named
    /// divergence (expected in every recorded table) never showed.
    fn report(&self, table: &str) {
        println!(
            "{table}: {} steps compared, {} agree, divergences {:?}, disagreements {}",
            self.compared,
            self.agreed,
            self.divergent,
            self.disagreements.len()
        );
        assert!(
            self.disagreements.is_empty(),
            "{} disagreements:\n{}",
            self.disagreements.len(),
            self.disagreements.join("\n")
        );
        assert!(
            self.divergent.values().sum::<u64>() > 0,
            "{table}: the named divergence is expected to show in the data"
        );
    }

    /// Compare one step; `diverged` says the record already hit a named
    /// divergence.
    fn step(
        &mut self,
        what: String,
        q: Option<String>,
        m: Option<String>,
        diverged: &mut Option<&'static str>,
    ) {
        self.compared += 1;
        if q == m {
            self.agreed += 1;
            return;
        }
        let param_quirk = what.contains("set_parameters")
            && q.is_none()
            && m.as_deref()
                == Some("Mapped-ram only available for non-compressed non-TLS multifd migration");
        if param_quirk {
            *diverged = Some("qemu-checks-current-parameters");
        }
        match diverged {
            Some(name) => *self.divergent.entry(name).or_default() += 1,
            None => self
                .disagreements
                .push(format!("{what}: QEMU {q:?}, migsim {m:?}")),
        }
    }
}

/// Replay one record of the table (QEMU's answers at every step) against
/// `MigrationConfig` under the mapped-ram profile.
fn replay_record(rec: &Value, t: &mut Tally) {
    let caps: Vec<Capability> = rec["caps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| cap(c.as_str().unwrap()))
        .collect();
    let all: Vec<_> = caps.iter().map(|&c| (c, true)).collect();
    let order = rec["order"].as_str().unwrap();
    let tr = rec["transport"].as_str().unwrap();
    let tls = rec["tls_creds"]
        .as_str()
        .map(|t| format!(" tls-creds={t:?}"))
        .unwrap_or_default();
    let id = format!(
        "{:?} {order} {} dio={}{tls} {tr}",
        rec["caps"], rec["multifd_compression"], rec["direct_io"]
    );
    let mut cfg = MigrationConfig::new(Profile::MappedRam);
    let mut diverged = None;
    let p = params(rec);
    if order == "params-first" {
        let m = ours(cfg.set_parameters(p.clone()));
        t.step(
            format!("{id} set_parameters"),
            qemu(&rec["set_parameters"]),
            m,
            &mut diverged,
        );
    }
    match order {
        "together" | "params-first" => {
            let m = ours(cfg.set_capabilities(&all));
            t.step(
                format!("{id} set_capabilities"),
                qemu(&rec["set_capabilities"]),
                m,
                &mut diverged,
            );
        }
        _ => {
            for step in rec["set_capabilities"]["steps"].as_array().unwrap() {
                let c = cap(step["cap"].as_str().unwrap());
                let m = ours(cfg.set_capabilities(&[(c, true)]));
                t.step(
                    format!("{id} set_capabilities {c}"),
                    qemu(step),
                    m,
                    &mut diverged,
                );
            }
        }
    }
    if order != "params-first" {
        let m = ours(cfg.set_parameters(p.clone()));
        t.step(
            format!("{id} set_parameters"),
            qemu(&rec["set_parameters"]),
            m,
            &mut diverged,
        );
    }
    let m = ours(cfg.set_parameters(p.clone()));
    t.step(
        format!("{id} set_parameters (repeat)"),
        qemu(&rec["set_parameters_repeat"]),
        m,
        &mut diverged,
    );
    let enabled: Vec<&str> = cfg
        .caps
        .enabled()
        .into_iter()
        .map(Capability::name)
        .collect();
    let mut qemu_enabled: Vec<&str> = rec["caps_enabled"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let mut ours_sorted = enabled.clone();
    qemu_enabled.sort();
    ours_sorted.sort();
    t.step(
        format!("{id} capabilities enabled"),
        Some(qemu_enabled.join(",")),
        Some(ours_sorted.join(",")),
        &mut diverged,
    );
    let m = ours(cfg.check_migrate(transport(tr)));
    t.step(
        format!("{id} migrate"),
        qemu(&rec["migrate"]),
        m,
        &mut diverged,
    );
    if let Some(inc) = rec["incoming"].as_object() {
        let mut dst = MigrationConfig::new(Profile::MappedRam);
        let mut div = None;
        let m = ours(dst.set_capabilities(&all));
        t.step(
            format!("{id} incoming set_capabilities"),
            qemu(&inc["set_capabilities"]),
            m,
            &mut div,
        );
        let m = ours(dst.set_parameters(p.clone()));
        t.step(
            format!("{id} incoming set_parameters"),
            qemu(&inc["set_parameters"]),
            m,
            &mut div,
        );
        let m = ours(dst.check_incoming_transport(transport(inc["transport"].as_str().unwrap())));
        t.step(
            format!("{id} migrate-incoming"),
            qemu(&inc["migrate_incoming"]),
            m,
            &mut div,
        );
    }
}

#[test]
fn mapped_ram_checker_agrees_with_qemu_10() {
    let d = data();
    let mut t = Tally::default();
    let records = d["records"].as_array().unwrap();
    assert_eq!(records.len(), 1792);
    for rec in records {
        replay_record(rec, &mut t);
    }
    // Load-time validation of the layout capability.
    for rec in d["load_mismatch"].as_array().unwrap() {
        let dest: Vec<Capability> = rec["destination_caps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| cap(c.as_str().unwrap()))
            .collect();
        let dest = Capabilities::from_enabled_in(Profile::MappedRam, &dest).unwrap();
        let stream: Vec<String> = if rec["file_written_with_caps"]
            .as_str()
            .unwrap()
            .starts_with("mapped-ram")
        {
            vec!["mapped-ram".into()]
        } else {
            vec![]
        };
        let q = rec["stderr"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|l| l.as_str()?.strip_prefix("qemu-system-x86_64: Capability "))
            .map(|l| format!("Capability {l}"))
            .next();
        let m = ours(dest.check_incoming(&stream));
        t.step(format!("load {rec}"), q, m, &mut None);
    }
    t.report("QEMU 10.0.2 differential");
}

#[test]
fn mapped_ram_tls_checks_agree_with_qemu_10() {
    let d = table("tls.json");
    let mut t = Tally::default();
    let records = d["records"].as_array().unwrap();
    assert_eq!(records.len(), 64);
    for rec in records {
        replay_record(rec, &mut t);
    }
    // With mapped-ram on, QEMU takes tls-creds once (it checks the stored
    // values) and migsim refuses it: the named divergence shows here too.
    t.report("QEMU 10.0.2 TLS table");
}

// ---------------------------------------------------------------------------
// Interop tier: the same questions to a live QEMU
// ---------------------------------------------------------------------------

/// The installed QEMU (path, `--version` line, version) when it is >= 9.0,
/// else `None` (the tier rule of `tests/qemu/support.rs`).
fn live_qemu() -> Option<(String, String, (u32, u32, u32))> {
    let q = crate::support::qemu_or_skip()?;
    Some((
        q.path.display().to_string(),
        q.version_line.clone(),
        q.version_tuple(),
    ))
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name}={v:?}")))
        .unwrap_or(default)
}

/// A record's identity: its dimensions.
fn record_key(rec: &Value) -> String {
    format!(
        "{} {} {} dio={} tls={} {}",
        rec["caps"],
        rec["order"],
        rec["multifd_compression"],
        rec["direct_io"],
        rec["tls_creds"],
        rec["transport"]
    )
}

/// Fields that differ between two records, as `path: live vs recorded`.
/// `listener_connections` (how many channels a draining listener had
/// accepted 0.5 s after the migration ended) is timing, not a decision:
/// it is left out, and reported apart.
fn record_diffs(path: &str, live: &Value, recorded: &Value, out: &mut Vec<String>) {
    match (live, recorded) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                if k == "listener_connections" {
                    continue;
                }
                let null = Value::Null;
                record_diffs(
                    &format!("{path}.{k}"),
                    a.get(k).unwrap_or(&null),
                    b.get(k).unwrap_or(&null),
                    out,
                );
            }
        }
        _ if live != recorded => out.push(format!("{path}: live {live} vs recorded {recorded}")),
        _ => {}
    }
}

/// Run `make_differential.py ARGS --jobs 2 --accel ACCEL` against `bin`
/// into a scratch directory; its records.
fn live_records(bin: &str, accel: &str, args: &[String], dir: &Path) -> Vec<Value> {
    let out = dir.join("live.json");
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/qemu/caps/make_differential.py");
    let run = Command::new("python3")
        .arg(&script)
        .args(args)
        .args(["--jobs", "2", "--accel", accel])
        .arg("--scratch")
        .arg(dir.join("scratch"))
        .arg("--out")
        .arg(&out)
        .env("QEMU", bin)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("python3 {}: {e}", script.display()));
    assert!(
        run.status.success(),
        "make_differential.py {args:?} failed:\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let live: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    live["records"].as_array().unwrap().clone()
}

/// What one live run showed.
#[derive(Default)]
struct LiveCheck {
    tally: Tally,
    records: usize,
    records_agreed: usize,
    records_diverged: usize,
    /// Fields where live QEMU differs from the recorded table.
    stale: Vec<String>,
    /// Listener connection counts that differ (timing, not asserted).
    timing: Vec<String>,
}

impl LiveCheck {
    /// Replay live `records` against migsim and compare them with the
    /// recorded table `name`.
    fn new(records: &[Value], name: &str) -> LiveCheck {
        let mut c = LiveCheck {
            records: records.len(),
            ..LiveCheck::default()
        };
        let t = &mut c.tally;
        for rec in records {
            let before = (t.agreed, t.compared, t.disagreements.len());
            replay_record(rec, t);
            if t.disagreements.len() == before.2 {
                if t.agreed - before.0 == t.compared - before.1 {
                    c.records_agreed += 1;
                } else {
                    c.records_diverged += 1;
                }
            }
        }
        let recorded = table(name);
        let by_key: BTreeMap<String, &Value> = recorded["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (record_key(r), r))
            .collect();
        for rec in records {
            let key = record_key(rec);
            let old = by_key
                .get(&key)
                .unwrap_or_else(|| panic!("live record {key} is not in {name}"));
            let mut diffs = Vec::new();
            record_diffs("", rec, old, &mut diffs);
            c.stale
                .extend(diffs.into_iter().map(|d| format!("{name}: {key}{d}")));
            let conns = |r: &Value| r["migrate"]["listener_connections"].clone();
            if conns(rec) != conns(old) {
                c.timing.push(format!(
                    "{key}: {} listener connections live, {} recorded",
                    conns(rec),
                    conns(old)
                ));
            }
        }
        c
    }

    fn summary(&self) -> String {
        let t = &self.tally;
        format!(
            "{} records: {} agree with migsim at every step, {} diverge only as named, {} \
             disagree (steps: {} compared, {} agree, divergences {:?}, disagreements {}); live \
             answers differ from the recorded table in {} fields{}",
            self.records,
            self.records_agreed,
            self.records_diverged,
            self.records - self.records_agreed - self.records_diverged,
            t.compared,
            t.agreed,
            t.divergent,
            t.disagreements.len(),
            self.stale.len(),
            if self.timing.is_empty() {
                String::new()
            } else {
                format!(" (and listener connection counts: {:?})", self.timing)
            },
        )
    }
}

#[test]
fn live_qemu_sample_agrees_with_migsim_and_the_table() {
    let Some((bin, version_line, version)) = live_qemu() else {
        return;
    };
    let t0 = Instant::now();
    let n = env_u64("MIGSIM_CAPS_SAMPLE", 96);
    let seed = env_u64("MIGSIM_CAPS_SAMPLE_SEED", 10);
    let accel = crate::support::stopped_guest_accel();
    let dir = tempfile::tempdir().unwrap();

    // A sample of the main table, and the whole (small) TLS table.
    let sample_args: Vec<String> = ["--sample", &n.to_string(), "--seed", &seed.to_string()]
        .iter()
        .map(|s| s.to_string())
        .chain(["--no-load".to_string()])
        .collect();
    let main = live_records(&bin, &accel, &sample_args, &dir.path().join("main"));
    assert_eq!(main.len() as u64, n.min(1792));
    let main = LiveCheck::new(&main, "differential.json");
    let tls = live_records(&bin, &accel, &["--tls".into()], &dir.path().join("tls"));
    let tls = LiveCheck::new(&tls, "tls.json");

    println!(
        "live {version_line} (accel {accel}): differential.json sample (seed {seed}) of {}; \
         tls.json, all {}; {:.1} s",
        main.summary(),
        tls.summary(),
        t0.elapsed().as_secs_f64()
    );
    let disagreements: Vec<&String> = main
        .tally
        .disagreements
        .iter()
        .chain(&tls.tally.disagreements)
        .collect();
    let stale: Vec<&String> = main.stale.iter().chain(&tls.stale).collect();
    if (version.0, version.1) != (10, 0) {
        // The tables and the checker are QEMU 10.0.2's; another version may
        // have changed. Show it, do not fail.
        println!(
            "QEMU {}.{}.{} is not 10.0.x: not asserting; disagreements {disagreements:?}; \
             differences from the tables {stale:?}",
            version.0, version.1, version.2
        );
        return;
    }
    assert!(
        disagreements.is_empty(),
        "{} disagreements between migsim and live QEMU:\n{}",
        disagreements.len(),
        disagreements
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        stale.is_empty(),
        "live QEMU no longer gives the answers recorded in the tables (regenerate them with \
         make_differential.py and re-check caps.rs):\n{}",
        stale
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
}
