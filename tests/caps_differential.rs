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

use std::collections::BTreeMap;
use std::path::Path;

use migsim::caps::{
    Capabilities, Capability, MigrationConfig, MultifdCompression, Parameters, Profile, Transport,
};
use serde_json::Value;

fn data() -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/qemu/caps/differential.json");
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
        tls_creds: String::new(),
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

fn ours(r: Result<(), migsim::caps::CapsError>) -> Option<String> {
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

#[test]
fn mapped_ram_checker_agrees_with_qemu_10() {
    let d = data();
    let mut t = Tally::default();
    let records = d["records"].as_array().unwrap();
    assert_eq!(records.len(), 1792);
    for rec in records {
        let caps: Vec<Capability> = rec["caps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| cap(c.as_str().unwrap()))
            .collect();
        let all: Vec<_> = caps.iter().map(|&c| (c, true)).collect();
        let order = rec["order"].as_str().unwrap();
        let tr = rec["transport"].as_str().unwrap();
        let id = format!(
            "{:?} {order} {} dio={} {tr}",
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
            let m =
                ours(dst.check_incoming_transport(transport(inc["transport"].as_str().unwrap())));
            t.step(
                format!("{id} migrate-incoming"),
                qemu(&inc["migrate_incoming"]),
                m,
                &mut div,
            );
        }
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
    println!(
        "QEMU 10.0.2 differential: {} steps compared, {} agree, divergences {:?}, disagreements {}",
        t.compared,
        t.agreed,
        t.divergent,
        t.disagreements.len()
    );
    assert!(
        t.disagreements.is_empty(),
        "{} disagreements:\n{}",
        t.disagreements.len(),
        t.disagreements.join("\n")
    );
    assert!(
        t.divergent.values().sum::<u64>() > 0,
        "the named divergence is expected to show in the data"
    );
}
