//! `migsim bench` on a small guest: the JSON has every measurement and
//! ratio the issue asks for, the figures are consistent with their
//! samples, and bad options get clear errors. (Speed itself is measured
//! by running the bench, never asserted in a test.)

use serde_json::Value;

use crate::support::migsim_command;

fn bench(args: &[&str]) -> std::process::Output {
    migsim_command()
        .arg("bench")
        .args(args)
        .env("MIGSIM_QUIET", "1")
        .output()
        .unwrap()
}

fn timing_ok(t: &Value, what: &str) -> f64 {
    let secs: Vec<f64> = t["seconds"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: no seconds"))
        .iter()
        .map(|s| s.as_f64().unwrap())
        .collect();
    assert_eq!(secs.len(), 3, "{what}");
    assert!(secs.iter().all(|&s| s > 0.0), "{what}: {secs:?}");
    let mut sorted = secs.clone();
    sorted.sort_by(f64::total_cmp);
    let median = t["median_s"].as_f64().unwrap();
    assert_eq!(median, sorted[1], "{what}: median of {secs:?}");
    let bytes = t["bytes"].as_u64().unwrap() as f64;
    let gib_s = t["gib_s"].as_f64().unwrap();
    assert!(
        (gib_s - bytes / (1u64 << 30) as f64 / median).abs() < 1e-9 * gib_s.max(1.0),
        "{what}: {gib_s} GiB/s is not bytes/median"
    );
    gib_s
}

#[test]
fn bench_json_has_every_measurement_and_ratio() {
    let dir = tempfile::tempdir().unwrap();
    let out = bench(&[
        "--size",
        "32M",
        "--reps",
        "3",
        "--channels",
        "2",
        "--read-channels",
        "3",
        "--no-qemu",
        "--json",
        "--dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    // The scheduler against the simple driver, same scenario.
    let sched = &v["sched"];
    let drivers = sched["drivers"].as_array().expect("sched.drivers");
    assert_eq!(drivers.len(), 2);
    assert_eq!(drivers[0]["driver"], "qemu");
    assert_eq!(drivers[1]["driver"], "simple");
    assert!(drivers[0]["steps"].as_u64().unwrap() > drivers[0]["pages_sent"].as_u64().unwrap());
    assert_eq!(drivers[1]["steps"], 0);
    let rates: Vec<f64> = drivers
        .iter()
        .map(|d| d["pages_per_second"].as_f64().unwrap())
        .collect();
    assert!(rates.iter().all(|&r| r > 0.0), "{rates:?}");
    assert!((sched["ratio"].as_f64().unwrap() - rates[0] / rates[1]).abs() < 1e-9);
    assert_eq!(v["size"], 32 << 20);
    assert_eq!(v["channels"], 2);
    assert_eq!(v["read_channels"], 3);
    assert!(v["machine"]["cpus"].as_u64().unwrap() >= 1);

    let hot = timing_ok(&v["memcpy_hot"], "memcpy_hot");
    let fresh = timing_ok(&v["memcpy_fresh"], "memcpy_fresh");
    let sim = timing_ok(&v["sim"]["run"], "sim");
    assert_eq!(v["sim"]["digest_stable"], true);
    assert_eq!(v["sim"]["digest"].as_str().unwrap().len(), 64);
    let ratio = v["sim_vs_memcpy_ratio"].as_f64().unwrap();
    assert!((ratio - sim / hot).abs() < 1e-9, "{ratio} vs {sim}/{hot}");
    // The first run alone, into fresh memory, against fresh memcpy.
    let c = &v["sim"]["cold"];
    assert_eq!(c["seconds"].as_array().unwrap().len(), 1);
    assert_eq!(c["seconds"][0], c["median_s"]);
    let cold = c["gib_s"].as_f64().unwrap();
    assert!(cold > 0.0);
    let ratio = v["sim_vs_fresh_memcpy_ratio"].as_f64().unwrap();
    assert!((ratio - cold / fresh).abs() < 1e-9);

    let saves = v["save"].as_array().unwrap();
    let modes: Vec<&str> = saves.iter().map(|s| s["mode"].as_str().unwrap()).collect();
    assert_eq!(modes, ["buffered", "O_DIRECT"]);
    for s in saves {
        let f = timing_ok(&s["fixed_ram"], "save fixed_ram");
        timing_ok(&s["fixed_ram_closed"], "save fixed_ram_closed");
        let p = timing_ok(&s["sequential_write"], "save sequential_write");
        let pp = timing_ok(&s["sequential_write_presized"], "save presized");
        let r = s["fixed_ram_vs_presized_write_ratio"].as_f64().unwrap();
        assert!((r - f / pp).abs() < 1e-9);
        // Until closed comes before until durable, sample by sample.
        for (c, d) in s["fixed_ram_closed"]["seconds"]
            .as_array()
            .unwrap()
            .iter()
            .zip(s["fixed_ram"]["seconds"].as_array().unwrap())
        {
            assert!(c.as_f64().unwrap() <= d.as_f64().unwrap());
        }
        // The plain write moves as many bytes as the fixed-ram file has.
        assert_eq!(s["fixed_ram"]["bytes"], s["sequential_write"]["bytes"]);
        assert!(s["fixed_ram"]["bytes"].as_u64().unwrap() > 32 << 20);
        let r = s["fixed_ram_vs_sequential_write_ratio"].as_f64().unwrap();
        assert!((r - f / p).abs() < 1e-9);
    }

    let restores = v["restore"].as_array().unwrap();
    let modes: Vec<&str> = restores
        .iter()
        .map(|s| s["mode"].as_str().unwrap())
        .collect();
    assert_eq!(modes, ["buffered", "O_DIRECT"]);
    for r in restores {
        assert_eq!(r["verified"], true);
        let f = timing_ok(&r["fixed_ram"], "restore fixed_ram");
        timing_ok(
            &r["fixed_ram_fresh_memory"],
            "restore fixed_ram_fresh_memory",
        );
        let p = timing_ok(&r["sequential_read"], "restore sequential_read");
        assert_eq!(r["fixed_ram"]["bytes"], 32 << 20);
        let ratio = r["restore_vs_sequential_read_ratio"].as_f64().unwrap();
        assert!((ratio - f / p).abs() < 1e-9);
    }

    assert_eq!(v["qemu_skipped"], "--no-qemu");
    let targets = v["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 4, "{targets:?}");
    for t in targets {
        let met = t["ratio"].as_f64().unwrap() >= t["goal"].as_f64().unwrap();
        assert_eq!(t["met"], met, "{t}");
    }
    // Every ratio field is named so.
    fn ratio_keys(v: &Value, out: &mut Vec<String>) {
        if let Value::Object(m) = v {
            for (k, x) in m {
                if k.contains("ratio") && x.is_number() {
                    out.push(k.clone());
                }
                ratio_keys(x, out);
            }
        } else if let Value::Array(a) = v {
            a.iter().for_each(|x| ratio_keys(x, out));
        }
    }
    let mut keys = Vec::new();
    ratio_keys(&v, &mut keys);
    for want in [
        "sim_vs_memcpy_ratio",
        "fixed_ram_vs_sequential_write_ratio",
        "restore_vs_sequential_read_ratio",
    ] {
        assert!(keys.iter().any(|k| k == want), "{want} missing: {keys:?}");
    }
    // The bench cleans up after itself.
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "files left: {left:?}");
}

#[test]
fn bench_refuses_bad_options_clearly() {
    for (args, want) in [
        (vec!["--size", "1000"], "multiple of 1 MiB"),
        (vec!["--reps", "0"], "--reps must be at least 1"),
        (vec!["--only", "disk"], "unknown part \"disk\""),
        (
            vec!["--read-channels", "0"],
            "--read-channels must be at least 1",
        ),
        (
            vec!["--read-channels", "65"],
            "--read-channels 65: at most 64",
        ),
        (vec!["--channels", "65"], "--channels 65: at most 64"),
    ] {
        let out = bench(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
}
